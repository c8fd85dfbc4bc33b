"""Output layouts: which one a model has (metadata, graph, shapes, attribute) and the vectorised decoders."""

from __future__ import annotations

import numpy as np
import pytest

from module.errors import ConfigError, FailedPreconditionError
from module.vision.boxes import nms
from module.vision.layouts import (
    ModelHints,
    OutputTensor,
    Quantization,
    choose_layout,
    decode,
)

HW640 = ModelHints(input_hw=(640, 640))


def out(name: str, *shape: int, dtype: str = "float32", role: str = "") -> OutputTensor:
    return OutputTensor(name, tuple(shape), dtype, role)


# --- choosing ------------------------------------------------------------------------------------------------------

def test_ssd_tf2_order_from_the_graph() -> None:
    outputs = [out("StatefulPartitionedCall:1", 1, 10, role="scores"), out("StatefulPartitionedCall:3", 1, 10, 4, role="boxes"),
               out("StatefulPartitionedCall:0", 1, role="count"), out("StatefulPartitionedCall:2", 1, 10, role="classes")]
    layout = choose_layout(outputs)
    assert layout.kind == "ssd" and "graph" in layout.reason
    assert dict(layout.roles) == {"location": "StatefulPartitionedCall:3", "category": "StatefulPartitionedCall:2",
                                  "score": "StatefulPartitionedCall:1", "n_detections": "StatefulPartitionedCall:0"}


def test_ssd_names_from_metadata_win() -> None:
    outputs = [out("score", 1, 10), out("location", 1, 10, 4), out("number of detections", 1), out("category", 1, 10)]
    layout = choose_layout(outputs)
    assert layout.roles["category"] == "category" and layout.roles["score"] == "score"


def test_ssd_without_names_or_graph_says_it_assumed_the_order() -> None:
    tf2 = [out("a", 1, 10), out("b", 1, 10, 4), out("c", 1), out("d", 1, 10)]
    layout = choose_layout(tf2)
    assert (layout.roles["score"], layout.roles["category"]) == ("a", "d")
    assert "assumed" in layout.reason and "TF2" in layout.reason


@pytest.mark.parametrize(("shape", "kind", "transposed", "classes"), [
    ((1, 84, 8400), "yolov8", False, 80),
    ((1, 8400, 84), "yolov8", True, 80),
    ((1, 5, 8400), "yolov8", False, 1),
    ((1, 25200, 85), "yolov5", False, 80),
    ((1, 25200, 6), "yolov5", False, 1),   # one-class YOLOv5: 25200 rows are anchors, not end-to-end slots
    ((1, 300, 6), "end2end", False, None),
    ((1, 1001), "classifier", False, 1001),
    ((2,), "classifier", False, 2),
])
def test_by_shape(shape: tuple[int, ...], kind: str, transposed: bool, classes: int | None) -> None:
    layout = choose_layout([out("y", *shape)], HW640)
    assert (layout.kind, layout.transposed, layout.num_classes) == (kind, transposed, classes)
    assert layout.reason


def test_anchor_counts_follow_the_input_size() -> None:
    assert choose_layout([out("y", 1, 5, 3549)], ModelHints(input_hw=(416, 416))).kind == "yolov8"
    assert choose_layout([out("y", 1, 3549, 5)], ModelHints(input_hw=(416, 416))).transposed is True


def test_ultralytics_metadata_decides_end2end_and_class_count() -> None:
    hints = ModelHints(task="detect", end2end=True, class_count=80, ultralytics=True, input_hw=(320, 320))
    assert choose_layout([out("Identity", 1, 300, 6)], hints).kind == "end2end"
    hints = ModelHints(task="detect", class_count=2, ultralytics=True, input_hw=(640, 640))
    layout = choose_layout([out("Identity", 1, 8400, 6)], hints)
    assert (layout.kind, layout.transposed, layout.num_classes) == ("yolov8", True, 2)


def test_pose_keypoint_rows_are_never_classes() -> None:
    hints = ModelHints(task="pose", kpt_shape=(5, 3), class_count=1, ultralytics=True, input_hw=(640, 640))
    layout = choose_layout([out("Identity", 1, 20, 8400)], hints)
    assert (layout.kind, layout.num_classes, layout.extra) == ("yolov8", 1, 15)
    assert "keypoint" in layout.note
    # Without class names the keypoint shape still separates the rows.
    hints = ModelHints(task="pose", kpt_shape=(5, 3), ultralytics=True, input_hw=(640, 640))
    assert choose_layout([out("Identity", 1, 20, 8400)], hints).num_classes == 1


def test_pose_without_kpt_shape_or_names_is_refused() -> None:
    with pytest.raises(FailedPreconditionError, match="keypoint"):
        choose_layout([out("Identity", 1, 20, 8400)], ModelHints(task="pose", ultralytics=True, input_hw=(640, 640)))


def test_segment_drops_mask_rows_and_ignores_the_prototypes() -> None:
    hints = ModelHints(task="segment", class_count=80, ultralytics=True, input_hw=(640, 640))
    layout = choose_layout([out("output0", 1, 116, 8400), out("output1", 1, 160, 160, 32)], hints)
    assert (layout.kind, layout.num_classes, layout.extra, layout.roles["predictions"]) == ("yolov8", 80, 32, "output0")


def test_obb_is_refused() -> None:
    with pytest.raises(FailedPreconditionError, match="obb"):
        choose_layout([out("y", 1, 20, 8400)], ModelHints(task="obb", class_count=15, ultralytics=True, input_hw=(640, 640)))


def test_detect_with_more_rows_than_names_is_refused() -> None:
    with pytest.raises(FailedPreconditionError, match="rows per anchor"):
        choose_layout([out("y", 1, 20, 8400)], ModelHints(task="detect", class_count=1, ultralytics=True, input_hw=(640, 640)))


def test_unknown_layout_lists_outputs_and_supported_layouts() -> None:
    outputs = [out("regressors", 1, 896, 16), out("classificators", 1, 896, 1)]
    with pytest.raises(FailedPreconditionError) as err:
        choose_layout(outputs, ModelHints(input_hw=(128, 128)))
    message = str(err.value)
    assert "'regressors' float32 [1, 896, 16]" in message and "'classificators' float32 [1, 896, 1]" in message
    for kind in ("ssd", "yolov8", "yolov5", "end2end", "classifier"):
        assert kind in message
    assert "output_layout" in message


def test_a_4d_output_is_never_a_classifier() -> None:
    with pytest.raises(FailedPreconditionError):
        choose_layout([out("heatmap", 1, 64, 64, 17)], HW640)


def test_forced_layout() -> None:
    layout = choose_layout([out("y", 1, 25200, 85)], HW640, forced="yolov5")
    assert layout.kind == "yolov5" and "output_layout" in layout.reason
    assert choose_layout([out("y", 1, 100, 6)], HW640, forced="end2end").kind == "end2end"
    assert choose_layout([out("y", 1, 100, 6)], HW640, forced="yolov8").transposed is True
    with pytest.raises(FailedPreconditionError, match="classifier"):
        choose_layout([out("y", 1, 84, 8400)], HW640, forced="classifier")
    with pytest.raises(ConfigError, match="output_layout"):
        choose_layout([out("y", 1, 84, 8400)], HW640, forced="yolov9")


def test_remap_entry_naming_no_output() -> None:
    with pytest.raises(ConfigError, match="'detection_boxes'"):
        choose_layout([out("y", 1, 84, 8400)], HW640, remap={"detection_boxes": "location"})


def test_remap_role_the_layout_cannot_use() -> None:
    with pytest.raises(ConfigError, match="'y'.*yolov8.*'location'"):
        choose_layout([out("y", 1, 84, 8400)], HW640, remap={"y": "location"})


def test_remap_names_ssd_roles() -> None:
    outputs = [out("a", 1, 10, 4), out("b", 1, 10), out("c", 1, 10), out("d", 1)]
    layout = choose_layout(outputs, remap={"a": "location", "b": "score", "c": "category", "d": "n_detections"})
    assert (layout.roles["score"], layout.roles["category"]) == ("b", "c")


# --- decoding ------------------------------------------------------------------------------------------------------

def v8_output(boxes_cxcywh: np.ndarray, scores: np.ndarray, anchors: int = 8400) -> np.ndarray:
    """[1, 4+C, N] with the given rows first and zeros elsewhere."""
    n, c = scores.shape
    grid = np.zeros((4 + c, anchors), np.float32)
    grid[:4, :n] = boxes_cxcywh.T
    grid[4:, :n] = scores.T
    return grid[None]


BOXES = np.array([[0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]], np.float32)
SCORES = np.array([[0.9, 0.0], [0.8, 0.1], [0.1, 0.6]], np.float32)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("pixels", [False, True])
def test_v8_decode_normalised_or_pixel_and_transposed(transposed: bool, pixels: bool) -> None:
    raw = v8_output(BOXES * (640 if pixels else 1), SCORES)
    if transposed:
        raw = np.ascontiguousarray(raw.transpose(0, 2, 1))
    layout = choose_layout([out("y", *raw.shape)], HW640)
    assert layout.transposed is transposed
    got = decode(layout, raw, Quantization(), input_size=(640, 640), min_score=0.25)
    assert got.classes.tolist() == [0, 0, 1]
    np.testing.assert_allclose(got.scores, [0.9, 0.8, 0.6])
    np.testing.assert_allclose(got.boxes[0], [256, 256, 384, 384], atol=1e-3)
    keep = nms(got.boxes, got.scores, got.classes, 0.7)
    assert keep.tolist() == [0, 2]  # box 1 overlaps box 0 (IoU 0.82), same class


def test_v8_int8_output_is_thresholded_then_dequantised() -> None:
    scale, zp = 1 / 255, -128
    q = np.clip(np.round(v8_output(BOXES, SCORES) / scale + zp), -128, 127).astype(np.int8)
    layout = choose_layout([out("y", 1, 6, 8400, dtype="int8")], HW640)
    got = decode(layout, q, Quantization(scale, zp), input_size=(640, 640), min_score=0.25)
    np.testing.assert_allclose(got.scores, [0.9, 0.8, 0.6], atol=scale)
    np.testing.assert_allclose(got.boxes[0], [256, 256, 384, 384], atol=640 * scale * 2)


def test_max_candidates_keeps_the_best() -> None:
    layout = choose_layout([out("y", 1, 6, 8400)], HW640)
    got = decode(layout, v8_output(BOXES, SCORES), Quantization(), input_size=(640, 640), min_score=0.25,
                 max_candidates=2)
    np.testing.assert_allclose(got.scores, [0.9, 0.8])


def test_v5_score_is_objectness_times_class() -> None:
    grid = np.zeros((25200, 7), np.float32)
    grid[0] = [0.5, 0.5, 0.1, 0.1, 0.9, 0.5, 0.8]   # 0.72 class 1
    grid[1] = [0.2, 0.2, 0.1, 0.1, 0.3, 0.9, 0.1]   # 0.27 class 0
    grid[2] = [0.2, 0.2, 0.1, 0.1, 0.2, 1.0, 0.0]   # objectness under the threshold
    layout = choose_layout([out("y", 1, 25200, 7)], HW640)
    got = decode(layout, grid[None], Quantization(), input_size=(640, 640), min_score=0.25)
    assert got.classes.tolist() == [1, 0]
    np.testing.assert_allclose(got.scores, [0.72, 0.27], rtol=1e-5)


def test_end2end_skips_empty_rows() -> None:
    rows = np.zeros((300, 6), np.float32)
    rows[0] = [0.1, 0.1, 0.5, 0.5, 0.9, 16]
    rows[1] = [0.6, 0.6, 0.9, 0.9, 0.3, 0]
    layout = choose_layout([out("y", 1, 300, 6)], HW640)
    got = decode(layout, rows[None], Quantization(), input_size=(320, 320), min_score=0.25)
    assert got.classes.tolist() == [16, 0]
    np.testing.assert_allclose(got.boxes[0], [32, 32, 160, 160], atol=1e-4)
    empty = decode(layout, np.zeros((1, 300, 6), np.float32), Quantization(), input_size=(320, 320), min_score=0.25)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


def test_nms_per_class_and_agnostic() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    classes = np.array([0, 0, 1])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, None, 0.5).tolist() == [0]
    assert nms(boxes, scores, classes, 0.5, max_detections=1).tolist() == [0]
    assert nms(boxes[:0], scores[:0], classes[:0], 0.5).tolist() == []


# --- family defaults -------------------------------------------------------------------------------------------------

def test_family_defaults() -> None:
    from module.vision.families import defaults_for

    v8 = defaults_for(choose_layout([out("y", 1, 84, 8400)], HW640))
    v5 = defaults_for(choose_layout([out("y", 1, 25200, 85)], HW640))
    e2e = defaults_for(choose_layout([out("y", 1, 300, 6)], HW640))
    ssd = defaults_for(choose_layout([out("b", 1, 10, 4), out("c", 1, 10), out("s", 1, 10), out("n", 1)]))
    assert (v8.min_confidence, v8.iou_threshold, v8.max_detections, v8.resize_mode, v8.fill) == (0.25, 0.7, 300, "letterbox", 114)
    assert (v5.iou_threshold, e2e.iou_threshold, e2e.min_confidence) == (0.45, None, 0.25)
    assert (ssd.min_confidence, ssd.iou_threshold, ssd.max_detections, ssd.resize_mode, ssd.mean) == (0.0, None, None, "stretch", None)


@pytest.mark.parametrize(("dtype", "scale", "zp", "expected_std"), [
    ("int8", 1 / 255, -128, (1.0, 1.0, 1.0)),          # VWW: 0..1
    ("int8", 0.0078125, 0, (0.5, 0.5, 0.5)),          # -1..1
    ("uint8", 1 / 255, 0, (1.0, 1.0, 1.0)),            # YOLOv5 uint8
    ("uint8", 0.0078125, 128, (0.5, 0.5, 0.5)),       # the COCO SSD: -1..1
    ("int8", 0.018658448, -14, None),                  # calibrated on ImageNet-normalised data: says nothing
    ("float32", 0.0, 0, None),
])
def test_normalization_from_quantization(dtype: str, scale: float, zp: int, expected_std: tuple[float, ...] | None) -> None:
    from module.vision.tensorize import normalization_from_quantization

    found = normalization_from_quantization(dtype, scale, zp)
    assert (found[1] if found else None) == expected_std
