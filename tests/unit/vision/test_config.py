"""Tests for module.vision.config: Viam's attribute names and meanings, our extensions, and every rejection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from module.errors import ConfigError
from module.vision.config import Thresholds, VisionConfig


def parse(**attrs: Any) -> VisionConfig:
    return VisionConfig.parse({"mlmodel_name": "model", **attrs})


def test_minimal_config_has_viam_defaults() -> None:
    config = VisionConfig.parse({"mlmodel_name": "detector"})
    assert config.mlmodel_name == "detector"
    assert config.camera_name == ""
    assert config.label_path == "" and config.labels is None
    assert dict(config.remap_input_names) == {} and dict(config.remap_output_names) == {}
    assert config.box_order is None  # decided later: metadata, then the SSD default
    assert config.input_image_bgr is False
    assert config.mean is None and config.std is None  # decided later: metadata, then 0.5/0.5
    assert config.resize_mode is None  # the model family decides: stretch (like Viam) unless a YOLO export
    thresholds = config.thresholds
    assert thresholds.default_minimum_confidence is None  # unset: the family default (Viam: 0 = no filter; YOLO 0.25)
    assert dict(thresholds.label_confidences) == {}
    assert thresholds.allowed_labels is None
    assert thresholds.iou_threshold is None  # no NMS unless asked for
    assert thresholds.class_agnostic_nms is False
    assert thresholds.max_detections is None


def test_every_attribute_parses(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("person\ncat\n\ndog\n")
    config = parse(
        camera_name="cam",
        label_path=str(labels),
        remap_input_names={"normalized_input_image_tensor": "image"},
        remap_output_names={"boxes_out": "location", "classes_out": "category", "scores_out": "score",
                            "count_out": "n_detections"},
        xmin_ymin_xmax_ymax_order=[1.0, 0.0, 3.0, 2.0],  # Struct numbers arrive as floats
        input_image_bgr=True,
        input_image_mean_value=[0.485, 0.456, 0.406],
        input_image_std_dev=[0.229, 0.224, 0.225],
        default_minimum_confidence=0.4,
        label_confidences={"Cat": 0.8, "dog": 0.25},
        allowed_labels=["Cat", "DOG"],
        iou_threshold=0.45,
        class_agnostic_nms=True,
        max_detections=20.0,
        resize_mode="letterbox",
    )
    assert config.camera_name == "cam"
    assert config.label_path == str(labels)
    assert config.labels == ("person", "cat", "", "dog")  # a blank line keeps its index
    assert dict(config.remap_input_names) == {"normalized_input_image_tensor": "image"}
    assert config.remap_output_names["scores_out"] == "score"
    assert config.box_order == (1, 0, 3, 2)
    assert all(isinstance(v, int) for v in config.box_order)
    assert config.input_image_bgr is True
    assert config.mean == pytest.approx((0.485, 0.456, 0.406))
    assert config.std == pytest.approx((0.229, 0.224, 0.225))
    assert config.resize_mode == "letterbox"
    t = config.thresholds
    assert t.default_minimum_confidence == 0.4
    assert dict(t.label_confidences) == {"Cat": 0.8, "dog": 0.25}
    assert t.allowed_labels == frozenset({"cat", "dog"})  # compared case-insensitively
    assert t.iou_threshold == 0.45
    assert t.class_agnostic_nms is True
    assert t.max_detections == 20 and isinstance(t.max_detections, int)


def test_mean_and_std_keep_the_first_three_values() -> None:
    # Viam requires "at least 3"; extra values (e.g. an alpha channel) are ignored.
    config = parse(input_image_mean_value=[0.1, 0.2, 0.3, 0.4], input_image_std_dev=[1, 2, 3, 4])
    assert config.mean == (0.1, 0.2, 0.3)
    assert config.std == (1.0, 2.0, 3.0)


def test_thresholds_at_their_bounds_are_accepted() -> None:
    config = parse(default_minimum_confidence=1, iou_threshold=0, label_confidences={"a": 0, "b": 1})
    assert config.thresholds.default_minimum_confidence == 1.0
    assert config.thresholds.iou_threshold == 0.0
    assert dict(config.thresholds.label_confidences) == {"a": 0.0, "b": 1.0}


@pytest.mark.parametrize(("attrs", "attribute"), [
    ({"mlmodel_name": None}, "mlmodel_name"),
    ({"mlmodel_name": ""}, "mlmodel_name"),
    ({"mlmodel_name": 3}, "mlmodel_name"),
    ({"camera_name": ["cam"]}, "camera_name"),
    ({"label_path": 7}, "label_path"),
    ({"xmin_ymin_xmax_ymax_order": [0, 1, 2]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": [0, 1, 2, 3, 0]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": [0, 1, 2, 2]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": [1, 2, 3, 4]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": [-1, 0, 1, 2]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": [0.5, 1, 2, 3]}, "xmin_ymin_xmax_ymax_order"),
    ({"xmin_ymin_xmax_ymax_order": "0123"}, "xmin_ymin_xmax_ymax_order"),
    ({"input_image_bgr": "true"}, "input_image_bgr"),
    ({"input_image_mean_value": [0.5, 0.5]}, "input_image_mean_value"),
    ({"input_image_mean_value": 0.5}, "input_image_mean_value"),
    ({"input_image_mean_value": [0.5, "a", 0.5]}, "input_image_mean_value"),
    ({"input_image_std_dev": [0.5, 0, 0.5]}, "input_image_std_dev"),
    ({"input_image_std_dev": [0.5]}, "input_image_std_dev"),
    ({"default_minimum_confidence": 1.5}, "default_minimum_confidence"),
    ({"default_minimum_confidence": -0.1}, "default_minimum_confidence"),
    ({"default_minimum_confidence": "high"}, "default_minimum_confidence"),
    ({"default_minimum_confidence": True}, "default_minimum_confidence"),
    ({"label_confidences": {"cat": "high"}}, "label_confidences"),
    ({"label_confidences": {"cat": 1.2}}, "label_confidences"),
    ({"label_confidences": {"cat": -0.5}}, "label_confidences"),
    ({"label_confidences": [0.5]}, "label_confidences"),
    ({"iou_threshold": 1.01}, "iou_threshold"),
    ({"iou_threshold": -0.2}, "iou_threshold"),
    ({"class_agnostic_nms": 1}, "class_agnostic_nms"),
    ({"max_detections": 0}, "max_detections"),
    ({"max_detections": 2.5}, "max_detections"),
    ({"allowed_labels": "cat"}, "allowed_labels"),
    ({"allowed_labels": ["cat", 3]}, "allowed_labels"),
    ({"resize_mode": "crop"}, "resize_mode"),
    ({"resize_mode": "Letterbox "}, "resize_mode"),
    ({"remap_output_names": {"boxes": "boxes"}}, "remap_output_names"),
    ({"remap_output_names": {"x": "image"}}, "remap_output_names"),
    ({"remap_output_names": ["location"]}, "remap_output_names"),
    ({"remap_input_names": {"input_1": "img"}}, "remap_input_names"),
    ({"remap_input_names": {"input_1": 1}}, "remap_input_names"),
    ({"confidence_threshold": 0.5}, "confidence_threshold"),  # unknown attribute (a typo)
    ({"model_path": "/x.tflite"}, "model_path"),  # belongs to the mlmodel, not the vision service
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_values_name_the_attribute(attrs: dict[str, Any], attribute: str) -> None:
    raw = {"mlmodel_name": "model", **attrs}
    if raw["mlmodel_name"] is None:
        del raw["mlmodel_name"]
    with pytest.raises(ConfigError) as info:
        VisionConfig.parse(raw)
    assert attribute in str(info.value)


def test_unknown_attribute_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse(min_confidence=0.5)
    message = str(info.value)
    assert "min_confidence" in message
    assert "default_minimum_confidence" in message and "label_confidences" in message


def test_box_order_messages_explain_the_meaning() -> None:
    with pytest.raises(ConfigError, match="permutation"):
        parse(xmin_ymin_xmax_ymax_order=[0, 0, 1, 2])
    with pytest.raises(ConfigError, match="exactly 4"):
        parse(xmin_ymin_xmax_ymax_order=[0, 1, 2])


def test_std_zero_says_division() -> None:
    with pytest.raises(ConfigError, match="divid"):
        parse(input_image_std_dev=[0.0, 0.0, 0.0])


def test_remap_output_names_lists_the_roles() -> None:
    with pytest.raises(ConfigError) as info:
        parse(remap_output_names={"out": "boxes"})
    for role in ("location", "category", "score", "n_detections", "probability"):
        assert role in str(info.value)


def test_missing_label_path_file_names_attribute_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as info:
        parse(label_path=str(missing))
    assert "'label_path'" in str(info.value)  # the attribute itself, not just the path (which holds the test name)
    assert str(missing) in str(info.value)


def test_empty_label_file_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ConfigError, match="'label_path'.*empty"):
        parse(label_path=str(empty))


def test_dependencies_are_the_mlmodel_and_the_camera() -> None:
    assert parse(camera_name="cam").dependencies().required == ("model", "cam")
    assert parse().dependencies().required == ("model",)
    assert parse().dependencies().optional == ()


def test_thresholds_as_dict_round_trips_through_parse() -> None:
    from module.resource.attributes import Attributes

    original = parse(default_minimum_confidence=0.3, label_confidences={"cat": 0.6}, allowed_labels=["Cat"],
                     iou_threshold=0.5, class_agnostic_nms=True, max_detections=7).thresholds
    again = Thresholds.parse(Attributes(original.as_dict()))
    assert again == original


# --- GetObjectPointClouds -------------------------------------------------------------------------------------------

def test_point_cloud_attributes_default_to_rdks_documented_values() -> None:
    settings = parse().point_clouds
    assert (settings.mean_k, settings.sigma) == (50, 2.0)  # Viam's detector_3d_segmenter example config
    assert (settings.depth_gap_m, settings.min_points, settings.max_points) == (0.05, 10, 25_000)


def test_point_cloud_attributes_parse_in_their_units() -> None:
    settings = parse(mean_k=0, sigma=1.25, depth_gap_mm=80, min_object_points=3, max_object_points=1000).point_clouds
    assert (settings.mean_k, settings.sigma, settings.min_points, settings.max_points) == (0, 1.25, 3, 1000)
    assert settings.depth_gap_m == pytest.approx(0.08)  # millimetres in the config, metres inside


@pytest.mark.parametrize(("attrs", "message"), [
    ({"mean_k": 2.5}, "'mean_k' must be a whole number from 0 to 1000"),
    ({"mean_k": -1}, "'mean_k' must be a whole number from 0 to 1000"),
    ({"sigma": -0.5}, "'sigma' must be a number from 0 to 100"),
    ({"sigma": "1.25"}, "'sigma' must be a number"),
    ({"depth_gap_mm": -1}, "'depth_gap_mm' must be a number from 0"),
    ({"min_object_points": 0}, "'min_object_points' must be a whole number from 1"),
    ({"max_object_points": 50}, "'max_object_points' must be a whole number from 100"),
])
def test_bad_point_cloud_attributes_name_the_attribute(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(**attrs)
