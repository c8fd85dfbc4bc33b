"""Tests for module.vision.plan: which input gets the image and which outputs mean what, from metadata and config."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devkit import models as model_factory
from devkit.testdata import require_testdata
from module.errors import FailedPreconditionError
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.mlmodel.types import ModelInfo, TensorInfo
from module.vision.config import VisionConfig
from module.vision.plan import Plan, make_plan

SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
SSD_NO_META = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite"
BLAZEFACE = "models/face_detection_short_range.tflite"


def tensor(name: str, shape: tuple[int, ...], dtype: str = "float32", **extra: Any) -> TensorInfo:
    return TensorInfo(name=name, dtype=dtype, shape=shape, extra=extra)


IMAGE = tensor("image", (1, 300, 300, 3), "uint8", scale=0.0078125, zero_point=128)


def info(outputs: list[TensorInfo], inputs: list[TensorInfo] | None = None) -> ModelInfo:
    return ModelInfo(name="m", type="", description="", inputs=tuple(inputs or [IMAGE]), outputs=tuple(outputs))


def plan_of(model: ModelInfo, **attrs: Any) -> Plan:
    return make_plan(model, VisionConfig.parse({"mlmodel_name": "m", **attrs}))


def ssd_outputs(names: tuple[str, str, str, str], *, category_dtype: str = "float32") -> list[TensorInfo]:
    boxes, classes, scores, count = names
    return [tensor(boxes, (1, 10, 4)), tensor(classes, (1, 10), category_dtype), tensor(scores, (1, 10)),
            tensor(count, (1,))]


def load(path: Path) -> ModelInfo:
    model = TFLiteModel(TFLiteConfig(model_path=str(path), pool_size=1))
    try:
        return model.metadata()
    finally:
        model.close()


# --- detectors -------------------------------------------------------------------------------------------------------

def test_viam_role_names() -> None:
    plan = plan_of(info(ssd_outputs(("location", "category", "score", "n_detections"))))
    d = plan.detector
    assert d is not None and plan.classifier is None
    assert (d.location, d.category, d.score, d.count) == ("location", "category", "score", "n_detections")
    assert d.box_order == (1, 0, 3, 2)  # Viam's default: [ymin, xmin, ymax, xmax]
    assert d.normalized is None  # nothing said: decided per call by the heuristic
    assert plan.input_name == "image"


def test_role_names_are_found_whatever_the_output_order() -> None:
    # Each name with the shape of its role, in a different order from SSD's.
    shaped = [tensor("score", (1, 10)), tensor("n_detections", (1,)), tensor("location", (1, 10, 4)),
              tensor("category", (1, 10))]
    d = plan_of(info(shaped)).detector
    assert d is not None
    assert (d.location, d.category, d.score, d.count) == ("location", "category", "score", "n_detections")


def test_tflite_metadata_names_of_the_coco_ssd() -> None:
    d = plan_of(info(ssd_outputs(("locations", "classes", "scores", "number of detections")))).detector
    assert d is not None
    assert (d.location, d.category, d.score, d.count) == ("locations", "classes", "scores", "number of detections")


def test_real_ssd_with_metadata() -> None:
    data = require_testdata(SSD)
    plan = plan_of(load(data / SSD))
    d = plan.detector
    assert d is not None and plan.classifier is None
    assert (d.location, d.category, d.score, d.count) == ("locations", "classes", "scores", "number of detections")
    assert d.box_order == (1, 0, 3, 2)  # from the metadata's BoundingBoxProperties
    assert d.normalized is True  # metadata: RATIO
    assert plan.input.size == (300, 300) and plan.input.dtype == np.uint8 and not plan.input.channels_first
    assert len(plan.labels) == 90 and plan.labels[16] == "cat"  # embedded labelmap.txt


def test_real_ssd_without_metadata_by_shape() -> None:
    data = require_testdata(SSD_NO_META)
    plan = plan_of(load(data / SSD_NO_META))
    d = plan.detector
    assert d is not None
    # TFLite_Detection_PostProcess order: boxes, classes, scores, count.
    assert d.location == "TFLite_Detection_PostProcess"
    assert d.category == "TFLite_Detection_PostProcess:1"
    assert d.score == "TFLite_Detection_PostProcess:2"
    assert d.count == "TFLite_Detection_PostProcess:3"
    assert d.box_order == (1, 0, 3, 2) and d.normalized is None
    assert plan.input_name == "normalized_input_image_tensor"
    assert plan.labels == ()


def test_by_shape_prefers_the_integer_tensor_as_category() -> None:
    outputs = [tensor("a", (1, 10, 4)), tensor("b", (1, 10)), tensor("c", (1, 10), "int32"), tensor("d", (1,))]
    d = plan_of(info(outputs)).detector
    assert d is not None
    assert (d.location, d.category, d.score, d.count) == ("a", "c", "b", "d")


def test_by_shape_with_dynamic_count() -> None:
    outputs = [tensor("a", (1, -1, 4)), tensor("b", (1, -1)), tensor("c", (1, -1)), tensor("d", (-1,))]
    d = plan_of(info(outputs)).detector
    assert d is not None and d.count == "d" and d.location == "a"


def test_remap_output_names_overrides_the_shape_guess() -> None:
    # Scores come before classes here, both float: the shape guess alone would swap them.
    outputs = [tensor("out0", (1, 10, 4)), tensor("out1", (1, 10)), tensor("out2", (1, 10)), tensor("out3", (1,))]
    guessed = plan_of(info(outputs)).detector
    assert guessed is not None and guessed.category == "out1"
    remapped = plan_of(info(outputs), remap_output_names={
        "out0": "location", "out1": "score", "out2": "category", "out3": "n_detections"}).detector
    assert remapped is not None
    assert (remapped.location, remapped.category, remapped.score, remapped.count) == ("out0", "out2", "out1", "out3")


def test_remap_output_names_to_a_classifier() -> None:
    outputs = [tensor("logits", (1, 5)), tensor("embedding", (1, 128))]
    with pytest.raises(FailedPreconditionError):
        plan_of(info(outputs))  # two outputs, neither named probability
    plan = plan_of(info(outputs), remap_output_names={"logits": "probability"})
    assert plan.classifier is not None and plan.classifier.probability == "logits"
    assert plan.detector is None


def test_detector_without_category_uses_class_scores() -> None:
    outputs = [tensor("boxes", (1, 100, 4)), tensor("class_scores", (1, 100, 7))]
    d = plan_of(info(outputs)).detector
    assert d is not None
    assert d.location == "boxes" and d.score == "class_scores" and d.category is None and d.count is None


def test_detector_without_category_by_name() -> None:
    outputs = [tensor("location", (1, 100, 4)), tensor("score", (1, 100, 3))]
    d = plan_of(info(outputs)).detector
    assert d is not None and d.category is None and d.score == "score"


def test_detector_with_scores_only_has_no_category() -> None:
    outputs = [tensor("boxes", (1, 5, 4)), tensor("scores", (1, 5))]
    d = plan_of(info(outputs)).detector
    assert d is not None and d.category is None and d.score == "scores"


def test_score_and_location_quantization_are_kept() -> None:
    outputs = [tensor("location", (1, 10, 4), "uint8", scale=0.01, zero_point=3),
               tensor("score", (1, 10), "int8", scale=0.5, zero_point=-128)]
    d = plan_of(info(outputs)).detector
    assert d is not None
    assert (d.location_quant.scale, d.location_quant.zero_point) == (0.01, 3)
    assert (d.score_quant.scale, d.score_quant.zero_point) == (0.5, -128)


# --- box order and units --------------------------------------------------------------------------------------------

def test_box_order_precedence_config_then_metadata_then_default() -> None:
    with_meta = ssd_outputs(("location", "category", "score", "n_detections"))
    with_meta[0] = tensor("location", (1, 10, 4), boxOrder=[0, 1, 2, 3])
    assert plan_of(info(with_meta)).detector.box_order == (0, 1, 2, 3)  # type: ignore[union-attr]
    configured = plan_of(info(with_meta), xmin_ymin_xmax_ymax_order=[3, 2, 1, 0]).detector
    assert configured is not None and configured.box_order == (3, 2, 1, 0)
    plain = plan_of(info(ssd_outputs(("location", "category", "score", "n_detections")))).detector
    assert plain is not None and plain.box_order == (1, 0, 3, 2)


@pytest.mark.parametrize(("units", "normalized"), [("ratio", True), ("pixel", False), (None, None)])
def test_box_units_from_metadata(units: str | None, normalized: bool | None) -> None:
    outputs = ssd_outputs(("location", "category", "score", "n_detections"))
    if units is not None:
        outputs[0] = tensor("location", (1, 10, 4), box_coordinate_type=units)
    d = plan_of(info(outputs)).detector
    assert d is not None and d.normalized is normalized


@pytest.mark.parametrize("index", [(1, 0, 3, 2), (0, 1, 2, 3), (1, 2, 3, 0), (3, 0, 2, 1)])
def test_metadata_box_index_becomes_the_viam_order(tmp_path: Path, index: tuple[int, int, int, int]) -> None:
    # TFLite's BoundingBoxProperties.index[k] is the position of coordinate k; Viam's order is the inverse.
    path = tmp_path / "det.tflite"
    path.write_bytes(model_factory.detector_model([[0.1, 0.2, 0.3, 0.4]], [0], [0.9], box_order=index,
                                                  metadata=True))
    d = plan_of(load(path)).detector
    assert d is not None
    assert [index[c] for c in range(4)] == [d.box_order.index(c) for c in range(4)]


# --- classifiers -----------------------------------------------------------------------------------------------------

def test_classifier_by_probability_name() -> None:
    plan = plan_of(info([tensor("features", (1, 64)), tensor("probability", (1, 1001), "uint8", scale=1 / 256,
                                                                zero_point=0)]))
    assert plan.detector is None
    assert plan.classifier is not None and plan.classifier.probability == "probability"
    assert (plan.classifier.quant.scale, plan.classifier.quant.zero_point) == (1 / 256, 0)


def test_classifier_by_single_output() -> None:
    plan = plan_of(info([tensor("MobilenetV1/Predictions/Reshape_1", (1, 1001))]))
    assert plan.classifier is not None and plan.classifier.probability == "MobilenetV1/Predictions/Reshape_1"
    assert plan.classifier.quant.scale == 0.0  # float: nothing to dequantize


def test_neither_lists_names_and_shapes() -> None:
    outputs = [tensor("heatmap", (1, 64, 64, 17)), tensor("offsets", (1, 64, 64, 34))]
    with pytest.raises(FailedPreconditionError) as err:
        plan_of(info(outputs))
    message = str(err.value)
    assert "'heatmap'" in message and "[1, 64, 64, 17]" in message
    assert "'offsets'" in message and "[1, 64, 64, 34]" in message
    assert "remap_output_names" in message


def test_blazeface_raw_outputs_are_explained() -> None:
    data = require_testdata(BLAZEFACE)
    with pytest.raises(FailedPreconditionError) as err:
        plan_of(load(data / BLAZEFACE))
    message = str(err.value)
    assert "'regressors'" in message and "[1, 896, 16]" in message
    assert "'classificators'" in message and "[1, 896, 1]" in message


# --- the image input -------------------------------------------------------------------------------------------------

def test_nchw_input() -> None:
    image = tensor("input", (1, 3, 224, 160))
    plan = plan_of(info([tensor("probability", (1, 10))], [image]))
    assert plan.input.channels_first is True
    assert (plan.input.height, plan.input.width) == (224, 160)
    assert plan.input.size == (160, 224)


def test_real_nchw_model(tmp_path: Path) -> None:
    path = tmp_path / "nchw.tflite"
    path.write_bytes(model_factory.nchw_model((8, 12)))
    plan = plan_of(load(path))
    assert plan.input.channels_first is True and plan.input.size == (12, 8)
    assert plan.classifier is not None and plan.classifier.probability == "mean"


def test_nhwc_input_with_three_rows_is_not_channels_first() -> None:
    plan = plan_of(info([tensor("probability", (1, 10))], [tensor("image", (1, 3, 3, 3))]))
    assert plan.input.channels_first is False


def test_dynamic_input_keeps_the_image_size(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(model_factory.dynamic_model())
    plan = plan_of(load(path))
    assert plan.input.size is None and plan.input.height is None and plan.input.width is None


def test_remap_input_names_picks_the_image_input() -> None:
    inputs = [tensor("scale", (1,)), tensor("pixels", (1, 64, 64, 3), "uint8")]
    with pytest.raises(FailedPreconditionError) as err:
        plan_of(info([tensor("probability", (1, 4))], inputs))
    assert "'scale'" in str(err.value) and "'pixels'" in str(err.value) and "remap_input_names" in str(err.value)
    plan = plan_of(info([tensor("probability", (1, 4))], inputs), remap_input_names={"pixels": "image"})
    assert plan.input_name == "pixels" and plan.input.size == (64, 64)


def test_input_named_image_among_several() -> None:
    inputs = [tensor("threshold", (1,)), tensor("image", (1, 32, 32, 3), "uint8")]
    assert plan_of(info([tensor("probability", (1, 4))], inputs)).input_name == "image"


@pytest.mark.parametrize("image", [
    tensor("image", (1, 32, 32), "uint8"),  # not 4-D
    tensor("image", (1, 32, 32, 1), "uint8"),  # grey
    tensor("image", (1, 32, 32, 3), "int32"),  # dtype
])
def test_unusable_image_input(image: TensorInfo) -> None:
    with pytest.raises(FailedPreconditionError) as err:
        plan_of(info([tensor("probability", (1, 4))], [image]))
    assert "image" in str(err.value) and str(list(image.shape)) in str(err.value)


def test_float_input_normalization_from_metadata() -> None:
    image = tensor("image", (1, 8, 8, 3), normalization_mean=[127.5], normalization_std=[127.5])
    spec = plan_of(info([tensor("probability", (1, 4))], [image])).input
    assert spec.mean == pytest.approx((0.5, 0.5, 0.5)) and spec.std == pytest.approx((0.5, 0.5, 0.5))
    image = tensor("image", (1, 8, 8, 3), normalization_mean=[0.0, 10.0, 20.0], normalization_std=[255.0, 1.0, 2.0])
    spec = plan_of(info([tensor("probability", (1, 4))], [image])).input
    assert spec.mean == pytest.approx((0.0, 10 / 255, 20 / 255))
    assert spec.std == pytest.approx((1.0, 1 / 255, 2 / 255))


def test_config_normalization_beats_metadata() -> None:
    image = tensor("image", (1, 8, 8, 3), normalization_mean=[127.5], normalization_std=[127.5])
    spec = plan_of(info([tensor("probability", (1, 4))], [image]), input_image_mean_value=[0.1, 0.2, 0.3],
                   input_image_std_dev=[0.4, 0.5, 0.6], input_image_bgr=True).input
    assert spec.mean == pytest.approx((0.1, 0.2, 0.3)) and spec.std == pytest.approx((0.4, 0.5, 0.6))
    assert spec.bgr is True


def test_config_mean_alone_keeps_the_metadata_std() -> None:
    image = tensor("image", (1, 8, 8, 3), normalization_mean=[127.5], normalization_std=[63.75])
    spec = plan_of(info([tensor("probability", (1, 4))], [image]), input_image_mean_value=[0.1, 0.2, 0.3]).input
    assert spec.mean == pytest.approx((0.1, 0.2, 0.3)) and spec.std == pytest.approx((0.25, 0.25, 0.25))


def test_uint8_input_ignores_metadata_normalization() -> None:
    # The SSD's metadata declares 127.5/127.5, but a uint8 input takes raw pixels (its quantization normalises).
    image = tensor("image", (1, 8, 8, 3), "uint8", normalization_mean=[127.5], normalization_std=[127.5],
                   scale=0.0078125, zero_point=128)
    spec = plan_of(info([tensor("probability", (1, 4))], [image])).input
    assert spec.mean is None and spec.std is None
    assert spec.dtype == np.uint8 and (spec.scale, spec.zero_point) == (0.0078125, 128)


def test_int8_input_quantization_is_kept() -> None:
    image = tensor("image", (1, 96, 96, 3), "int8", scale=0.003921569, zero_point=-128)
    spec = plan_of(info([tensor("probability", (1, 2), "int8")], [image])).input
    assert spec.dtype == np.int8 and spec.zero_point == -128 and spec.scale == pytest.approx(0.003921569)
    # Its range (1/255, -128) covers 0..1: the pixel / 255, quantised with that scale and zero point (= pixel - 128).
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)
    pixels = np.resize(np.arange(256, dtype=np.uint8), (96, 96, 3))  # every grey level
    from module.vision.tensorize import image_to_tensor
    np.testing.assert_array_equal(image_to_tensor(pixels, spec)[0], pixels.astype(np.int16) - 128)


def test_int8_input_with_an_odd_range_is_quantised_with_its_own_scale() -> None:
    image = tensor("image", (1, 640, 640, 3), "int8", scale=0.018658448, zero_point=-14)
    yolo = tensor("Identity", (1, 84, 8400), "int8", scale=0.0039860238, zero_point=-128, ultralytics_task="detect",
                  ultralytics_classes=80)
    spec = plan_of(info([yolo], [image])).input
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)  # the YOLO family's RGB / 255
    from module.vision.tensorize import image_to_tensor
    got = image_to_tensor(np.full((640, 640, 3), 255, np.uint8), spec)
    assert int(got.max()) == round(1.0 / 0.018658448 - 14) == 40  # not 255 - 128


# --- labels ----------------------------------------------------------------------------------------------------------

def write_labels(path: Path, labels: list[str]) -> str:
    path.write_text("\n".join(labels) + "\n")
    return str(path)


def test_labels_from_label_path_beat_the_mlmodels(tmp_path: Path) -> None:
    mlmodel_labels = write_labels(tmp_path / "mlmodel.txt", ["a", "b"])
    vision_labels = write_labels(tmp_path / "vision.txt", ["x", "y", "z"])
    outputs = [tensor("probability", (1, 3), labels=mlmodel_labels)]
    assert plan_of(info(outputs)).labels == ("a", "b")
    assert plan_of(info(outputs), label_path=vision_labels).labels == ("x", "y", "z")
    assert plan_of(info([tensor("probability", (1, 3))])).labels == ()


def test_plan_inputs_are_plain_mappings() -> None:
    # extra may be any mapping (the remote mlmodel path builds it from a Struct).
    extra: Mapping[str, Any] = {"boxOrder": [0.0, 1.0, 2.0, 3.0]}
    outputs = [TensorInfo("location", "float32", (1, 3, 4), extra=extra), tensor("score", (1, 3))]
    d = plan_of(info(outputs)).detector
    assert d is not None and d.box_order == (0, 1, 2, 3)
