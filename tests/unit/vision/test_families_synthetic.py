"""Each layout's edge cases on synthetic models (devkit.models.yolo_model): transposed outputs, pixel vs normalised
boxes, int8 outputs, end-to-end rows left empty, pose heads, unknown layouts and remap mistakes at AddResource."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from devkit import models as model_factory
from module.errors import ConfigError, FailedPreconditionError
from tests.support.vision_harness import BOX_PX, HEIGHT, WIDTH, Harness, boxes_of, check_detection, harness, image_bytes

__all__ = ["harness"]  # the fixture

SIZE = 64  # model input 64 x 64: anchors 8x8 + 4x4 + 2x2 = 84 (YOLOv5: 3 x 84)
ANCHORS = 84
# BOX_PX (20, 20, 120, 90) on the 200 x 100 photo, letterboxed into 64 x 64: scale 0.32, 16 px grey above.
MODEL_BOX = np.array([20 * 0.32, 16 + 20 * 0.32, 120 * 0.32, 16 + 90 * 0.32])  # x1 y1 x2 y2 in input pixels
CXCYWH = np.array([(MODEL_BOX[0] + MODEL_BOX[2]) / 2, (MODEL_BOX[1] + MODEL_BOX[3]) / 2,
                   MODEL_BOX[2] - MODEL_BOX[0], MODEL_BOX[3] - MODEL_BOX[1]]) / SIZE


def v8_rows(classes: int, *, box_class: int = 1, score: float = 0.9, extra: int = 0) -> np.ndarray:
    """[4 + classes + extra, ANCHORS]: one real box (plus a weak decoy), everything else zero."""
    rows = np.zeros((4 + classes + extra, ANCHORS))
    rows[:4, 0] = CXCYWH
    rows[4 + box_class, 0] = score
    rows[:4, 1] = [0.5, 0.5, 0.1, 0.1]
    rows[4, 1] = 0.1  # under the YOLO default of 0.25
    if extra:
        rows[4 + classes :, :] = 0.97  # keypoint / mask rows: never classes
    return rows


def detect(h: Harness, data: bytes, **attrs: Any) -> list[Any]:
    vision = h.service(data, **attrs)
    found = vision.detections(image_bytes())
    for d in found:
        check_detection(d, WIDTH, HEIGHT)
    return found


def assert_one_box(found: list[Any], label: str, score: float, tol_px: int = 1) -> None:
    assert len(found) == 1, [(d.class_name, d.confidence) for d in found]
    assert found[0].class_name == label and found[0].confidence == pytest.approx(score, abs=0.01)
    np.testing.assert_allclose(boxes_of(found)[0], BOX_PX, atol=tol_px)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("pixels", [False, True])
def test_yolov8_normalised_or_pixel_boxes_either_orientation(harness: Harness, transposed: bool, pixels: bool) -> None:
    rows = v8_rows(3)
    if pixels:
        rows[:4] *= SIZE
    out = rows.T[None] if transposed else rows[None]
    found = detect(harness, model_factory.yolo_model(out), label_path=harness.labels(["a", "b", "c"]))
    assert_one_box(found, "b", 0.9)


def test_yolov8_int8_output(harness: Harness) -> None:
    data = model_factory.yolo_model(v8_rows(2)[None], dtype="int8", quant=(1 / 255, -128), input_dtype="int8")
    assert_one_box(detect(harness, data), "1", 0.9, tol_px=2)


def test_yolov5_uint8_output_objectness_times_class(harness: Harness) -> None:
    rows = np.zeros((3 * ANCHORS, 5 + 2))
    rows[0, :4] = CXCYWH
    rows[0, 4], rows[0, 6] = 0.9, 0.8  # objectness x class 1 = 0.72
    rows[1, :5] = [0.5, 0.5, 0.1, 0.1, 0.2]  # objectness under 0.25
    rows[1, 5] = 1.0
    data = model_factory.yolo_model(rows[None], dtype="uint8", quant=(1 / 250, 0), input_dtype="uint8")
    assert_one_box(detect(harness, data), "1", 0.72, tol_px=2)


def test_end2end_with_empty_rows(harness: Harness) -> None:
    rows = np.zeros((300, 6))
    rows[0] = [*(MODEL_BOX / SIZE), 0.88, 2]
    rows[1] = [0.1, 0.1, 0.2, 0.2, 0.2, 0]  # under 0.25; rows 2.. are all zero (score 0)
    data = model_factory.yolo_model(rows[None], ultralytics={"task": "detect", "end2end": True,
                                                             "names": {"0": "x", "1": "y", "2": "z"}})
    vision = harness.service(data)
    assert vision.do_command({"command": "get_config"})["layout"]["layout"] == "end2end"
    found = vision.detections(image_bytes())
    assert_one_box(found, "z", 0.88)


def test_pose_keypoint_rows_are_dropped_not_read_as_classes(harness: Harness) -> None:
    rows = v8_rows(1, box_class=0, extra=15)
    data = model_factory.yolo_model(rows[None], ultralytics={"task": "pose", "kpt_shape": [5, 3], "names": {"0": "face"}})
    vision = harness.service(data)
    config = vision.do_command({"command": "get_config"})
    assert config["layout"]["num_classes"] == 1 and config["layout"]["dropped"] == 15
    assert "keypoint" in config["layout"]["note"]
    assert_one_box(vision.detections(image_bytes()), "face", 0.9)


def test_unknown_layout_fails_at_add_resource(harness: Harness) -> None:
    data = model_factory.yolo_model(np.zeros((1, 7, 7, 5)), output_name="heatmap")
    harness.model(data)
    with pytest.raises(FailedPreconditionError) as err:
        harness.vision()
    message = str(err.value)
    assert "'heatmap' float32 [1, 7, 7, 5]" in message and "yolov8" in message and "end2end" in message


def test_remap_naming_no_output_fails_at_add_resource(harness: Harness) -> None:
    harness.model(model_factory.yolo_model(v8_rows(2)[None]))
    with pytest.raises(ConfigError, match="'boxes'"):
        harness.vision(remap_output_names={"boxes": "location"})
    with pytest.raises(ConfigError, match="'Identity'.*yolov8"):
        harness.vision(remap_output_names={"Identity": "location"})


def test_forcing_a_layout(harness: Harness) -> None:
    rows = np.zeros((20, 6))  # 20 rows: no anchor count for a 64 x 64 input, so auto takes it for end2end
    rows[0] = [*(MODEL_BOX / SIZE), 0.9, 0]
    harness.model(model_factory.yolo_model(rows[None]))
    assert harness.vision().do_command({"command": "get_config"})["layout"]["layout"] == "end2end"
    forced = harness.vision(output_layout="yolov5")
    assert forced.do_command({"command": "get_config"})["layout"]["layout"] == "yolov5"
    with pytest.raises(ConfigError, match="output_layout"):
        harness.vision(output_layout="yolo")


def test_max_candidates_caps_what_reaches_nms(harness: Harness) -> None:
    rows = np.zeros((5, ANCHORS))
    rows[0] = np.linspace(0.05, 0.95, ANCHORS)  # small boxes side by side: none overlaps another
    rows[1], rows[2], rows[3] = 0.5, 0.005, 0.005
    rows[4] = np.linspace(0.3, 0.9, ANCHORS)
    data = model_factory.yolo_model(rows[None])
    found_all = detect(harness, data, iou_threshold=1.0)
    found_capped = detect(harness, data, iou_threshold=1.0, max_candidates=5)
    assert len(found_all) == ANCHORS and len(found_capped) == 5
    assert [d.confidence for d in found_capped] == [d.confidence for d in found_all[:5]]


def test_ultralytics_classifier_gets_its_own_preprocessing(harness: Harness) -> None:
    data = model_factory.yolo_model(np.array([[0.1, 0.7, 0.2]]), ultralytics={"task": "classify",
                                                                             "names": {"0": "a", "1": "b", "2": "c"}})
    vision = harness.service(data)
    config = vision.do_command({"command": "get_config"})
    assert (config["layout"]["layout"], config["resize_mode"]) == ("classifier", "center_crop")
    assert config["input_normalization"]["std"] == [1.0, 1.0, 1.0]
    got = vision.classifications(image_bytes(), n=1)
    assert got[0].class_name == "b" and got[0].confidence == pytest.approx(0.7)
