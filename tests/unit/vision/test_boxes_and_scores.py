"""Tests for module.vision.postprocess."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from module.mlmodel.box_order import viam_order_from_tflite_index
from module.vision.boxes import boxes_to_original, looks_normalized, nms, to_xyxy
from module.vision.imaging import Letterbox
from module.vision.layouts import Quantization, dequantize
from module.vision.scores import ClassTable, ConfidenceRule, label_for, scores_to_probabilities

XYXY = np.array([[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
PERMUTATIONS = list(itertools.permutations(range(4)))


def reference_to_xyxy(boxes: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Straight from Viam's definition: position i of each box holds coordinate order[i]."""
    out = np.empty_like(boxes)
    for row in range(len(boxes)):
        for i in range(4):
            out[row, order[i]] = boxes[row, i]
    return out


@pytest.mark.parametrize("order", PERMUTATIONS)
def test_to_xyxy_all_orders(order: tuple[int, ...]) -> None:
    raw = np.empty_like(XYXY)
    for i in range(4):
        raw[:, i] = XYXY[:, order[i]]  # how a model with this order would emit XYXY
    out = to_xyxy(raw, order)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, XYXY)
    np.testing.assert_array_equal(out, reference_to_xyxy(raw, order))


def test_to_xyxy_default_is_ssd() -> None:
    ssd = np.array([[0.1, 0.2, 0.3, 0.4]])  # ymin, xmin, ymax, xmax
    np.testing.assert_allclose(to_xyxy(ssd), [[0.2, 0.1, 0.4, 0.3]])
    batched = np.zeros((1, 10, 4))
    assert to_xyxy(batched, (0, 1, 2, 3)).shape == (1, 10, 4)


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 1, 2, 3, 4), (0, 0, 1, 2), (1, 2, 3, 4), (-1, 0, 1, 2)])
def test_to_xyxy_invalid_order(order: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="xmin_ymin_xmax_ymax_order"):
        to_xyxy(XYXY, order)


def test_to_xyxy_bad_shape() -> None:
    with pytest.raises(ValueError, match="last dimension"):
        to_xyxy(np.zeros((3, 5)), (0, 1, 2, 3))


@pytest.mark.parametrize("index", PERMUTATIONS)
def test_viam_order_from_tflite_index(index: tuple[int, ...]) -> None:
    raw = np.empty_like(XYXY)
    for k in range(4):  # index[k] = position of coordinate k (left, top, right, bottom)
        raw[:, index[k]] = XYXY[:, k]
    np.testing.assert_array_equal(to_xyxy(raw, viam_order_from_tflite_index(index)), XYXY)


def test_viam_order_from_tflite_index_examples() -> None:
    assert viam_order_from_tflite_index([1, 0, 3, 2]) == (1, 0, 3, 2)  # SSD metadata
    assert viam_order_from_tflite_index([]) == (0, 1, 2, 3)
    assert viam_order_from_tflite_index([1, 2, 3, 0]) == (3, 0, 1, 2)  # not self-inverse: checks the direction
    with pytest.raises(ValueError):
        viam_order_from_tflite_index([0, 1, 2])


def test_looks_normalized() -> None:
    assert looks_normalized(np.array([[0.054, -0.009, 0.985, 1.014], [0, 0, 0, 0]]))  # SSD overshoot, padding
    assert not looks_normalized(np.array([[10.0, 20.0, 100.0, 200.0]]))
    assert not looks_normalized(np.array([[0.1, 0.1, 0.5, 1.5]]))
    assert looks_normalized(np.array([[np.nan, 0.2, np.inf, 0.4]]))  # non-finite values ignored
    assert looks_normalized(np.zeros((0, 4)))


def test_boxes_to_original_stretch() -> None:
    lb = Letterbox(300 / 640, 300 / 480, 0.0, 0.0)
    norm = np.array([[0.25, 0.5, 0.75, 1.0]])
    out = boxes_to_original(norm, normalized=True, model_size=(300, 300), letterbox=lb, original_size=(640, 480))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[160, 240, 480, 480]])
    pixels = norm * 300
    out2 = boxes_to_original(pixels, normalized=False, model_size=(300, 300), letterbox=lb, original_size=(640, 480))
    np.testing.assert_allclose(out2, out)


@pytest.mark.filterwarnings("error")
def test_boxes_to_original_letterbox_clamp_sort_nan() -> None:
    lb = Letterbox(0.5, 0.5, 0.0, 60.0)  # 600x360 into 300x300: content 300x180 at y 60..240
    boxes = np.array(
        [
            [0, 60, 300, 240],  # the whole content
            [-10, 0, 310, 300],  # padding and overshoot -> clamped
            [200, 200, 100, 100],  # swapped corners
            [np.nan, 60, 150, np.inf],
        ],
        dtype=np.float32,
    )
    out = boxes_to_original(boxes, normalized=False, model_size=(300, 300), letterbox=lb, original_size=(600, 360))
    np.testing.assert_allclose(out[0], [0, 0, 600, 360])
    np.testing.assert_allclose(out[1], [0, 0, 600, 360])
    np.testing.assert_allclose(out[2], [200, 80, 400, 280])
    np.testing.assert_allclose(out[3], [0, 0, 300, 360])
    assert np.isfinite(out).all()
    empty = boxes_to_original(np.zeros((0, 4)), normalized=True, model_size=(1, 1), letterbox=lb, original_size=(5, 5))
    assert empty.shape == (0, 4)


# A, B overlap (IoU 81/119 = 0.68); C is B's twin in another class; D is far away; E ties A's score.
BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60], [100, 0, 110, 10]], float)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.9])
CLASSES = np.array([0, 0, 1, 0, 2])


def test_nms_per_class_and_agnostic() -> None:
    assert nms(BOXES, SCORES, CLASSES, 0.5).tolist() == [0, 4, 2, 3]
    assert nms(BOXES, SCORES, CLASSES, 0.5, class_agnostic=True).tolist() == [0, 4, 3]
    assert nms(BOXES, SCORES, None, 0.5).tolist() == [0, 4, 3]
    assert nms(BOXES, SCORES, CLASSES, 0.7).tolist() == [0, 4, 1, 2, 3]  # 0.68 is not > 0.7
    assert nms(BOXES, SCORES, CLASSES.astype(np.float32), 0.5).dtype == np.intp


def test_nms_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), None, 0.5).tolist() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings for zero-area boxes
        zero_area = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 1, 1]], float)
        assert nms(zero_area, np.array([0.5, 0.4, 0.3]), None, 0.5).tolist() == [0, 1, 2]
    scores = np.array([np.nan, 0.5, 0.6])
    assert nms(BOXES[:3], scores, None, 0.5).tolist() == [2]  # NaN-scored box 0 dropped, B suppressed by its twin
    identical = np.repeat(BOXES[:1], 4, axis=0)
    assert nms(identical, np.full(4, 0.5), None, 0.0).tolist() == [0]
    with pytest.raises(ValueError):
        nms(BOXES, SCORES[:2], None, 0.5)


def test_nms_many_boxes_matches_reference() -> None:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 100, size=(200, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, size=(200, 2))], axis=1)
    scores = rng.uniform(size=200)
    classes = rng.integers(0, 3, size=200)

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    expected: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(classes[k] != classes[i] or iou(boxes[k], boxes[i]) <= 0.45 for k in expected):
            expected.append(int(i))
    assert nms(boxes, scores, classes, 0.45).tolist() == expected


def test_dequantize() -> None:
    q = np.array([0, 128, 255], dtype=np.uint8)
    np.testing.assert_allclose(dequantize(q, Quantization(0.00390625, 0)), [0, 0.5, 0.99609375])
    vww = np.array([-128, 0, 127], dtype=np.int8)
    np.testing.assert_allclose(dequantize(vww, Quantization(0.00390625, -128)), [0, 0.5, 0.99609375])
    f = np.array([0.25, 0.5], dtype=np.float32)
    assert dequantize(f, Quantization(0.5, 3)) is f  # float input: untouched, no copy
    out = dequantize(np.array([3, 4], dtype=np.uint8), Quantization(0.0, 0))
    assert out.dtype == np.float32 and out.tolist() == [3.0, 4.0]


def test_probabilities_left_alone() -> None:
    p = np.array([0.1, 0.7, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(scores_to_probabilities(p), p)
    assert scores_to_probabilities(np.array([0.3]))[0] == pytest.approx(0.3)
    assert scores_to_probabilities(np.array([1.0 + 1e-7, -1e-7])).tolist() == [1.0, 0.0]  # float noise clipped


def test_softmax_for_logits() -> None:
    logits = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = scores_to_probabilities(logits)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    big = scores_to_probabilities(np.array([1000.0, 1001.0], dtype=np.float32))  # no overflow
    np.testing.assert_allclose(big, [1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)
    assert scores_to_probabilities(np.array([[-1.0, 0.5]])).shape == (1, 2)


def test_sigmoid_for_single_logit() -> None:
    assert scores_to_probabilities(np.array([2.0]))[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert scores_to_probabilities(np.array([-0.5]))[0] == pytest.approx(1 / (1 + np.exp(0.5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scores_to_probabilities(np.array([-1000.0]))[0] == pytest.approx(0.0)
        assert scores_to_probabilities(np.array([np.inf]))[0] == 1.0


def test_probabilities_nan_inf() -> None:
    cases = [
        np.array([np.nan, 0.4, 0.6]),
        np.array([np.nan, 2.0, 3.0]),
        np.array([np.inf, 1.0, np.inf]),
        np.array([-np.inf, -np.inf]),
        np.array([np.nan, np.nan]),
        np.array([np.nan]),
        np.array([-np.inf, 5.0]),
    ]
    for values in cases:
        out = scores_to_probabilities(values.astype(np.float32))
        assert out.dtype == np.float32 and not np.isnan(out).any(), values
        assert ((out >= 0) & (out <= 1)).all()
    np.testing.assert_allclose(scores_to_probabilities(cases[2]), [0.5, 0, 0.5])
    np.testing.assert_allclose(scores_to_probabilities(cases[6]), [0, 1])
    assert scores_to_probabilities(np.zeros(0)).shape == (0,)


LABELS = ["cat", "dog", "CAT", "Dog", "bird", "person"]
SCORES6 = np.array([0.3, 0.4, 0.25, 0.6, 0.55, 0.1])


def kept(rule: ConfidenceRule, labels: list[str], scores: np.ndarray) -> np.ndarray:
    """What detections and ClassTable keep: ``score >= minimum``."""
    return np.asarray(scores, dtype=np.float64) >= rule.minimums(labels)


def test_thresholds_stack() -> None:
    rule = ConfidenceRule(default=0.5, per_label={"Cat": 0.2}, allow=None)
    # cat listed (0.2), others use the default 0.5. Viam would drop dog/bird entirely once label_confidences is set.
    assert kept(rule, LABELS, SCORES6).tolist() == [True, False, True, True, True, False]
    stricter = ConfidenceRule(default=0.5, per_label={"dog": 0.9}, allow=None)
    assert kept(stricter, LABELS, SCORES6).tolist() == [False, False, False, False, True, False]


def test_thresholds_allow_list_and_defaults() -> None:
    rule = ConfidenceRule(default=0.0, per_label={}, allow=frozenset({"DOG", "person"}))
    assert kept(rule, LABELS, SCORES6).tolist() == [False, True, False, True, False, True]
    keep_all = ConfidenceRule(default=0.0, per_label={}, allow=None)
    assert kept(keep_all, LABELS, np.zeros(6)).all()  # score >= 0 kept
    assert kept(ConfidenceRule(0.4, {}, None), ["a", "b"], np.array([0.4, 0.39])).tolist() == [True, False]
    assert not kept(ConfidenceRule(0.0, {}, None), ["a"], np.array([np.nan]))[0]
    assert not kept(ConfidenceRule(0.0, {"a": 0.1}, None), ["a"], np.array([np.nan]))[0]
    assert kept(ConfidenceRule(0.5, {"x": 0.1}, None), [], np.zeros(0)).shape == (0,)
    assert ConfidenceRule(0.5, {"x": 0.1}, None).minimums(["x", "X", "y"]).tolist() == [0.1, 0.1, 0.5]
    assert ConfidenceRule(0.5, {}, frozenset({"x"})).minimums(["x", "y"]).tolist() == [0.5, np.inf]


def test_confidence_rule_normalises_keys() -> None:
    rule = ConfidenceRule(0.5, {"CaT": 0.1}, frozenset({"Cat"}))
    assert dict(rule.per_label) == {"cat": 0.1} and rule.allow == frozenset({"cat"})


def test_label_for() -> None:
    labels = ["person", "", "cat"]
    assert label_for(0, labels) == "person"
    assert label_for(2, labels) == "cat"
    assert label_for(1, labels) == "1"  # empty placeholder
    assert label_for(3, labels) == "3"
    assert label_for(-1, labels) == "-1"
    assert label_for(np.int64(2), labels) == "cat"
    assert label_for(2.0, labels) == "cat"  # type: ignore[arg-type]
    assert label_for(float("nan"), labels) == "nan"  # type: ignore[arg-type]
    assert label_for(5, []) == "5"


def test_class_table_names_every_index_and_orders_kept_classes() -> None:
    p = np.array([0.1, 0.5, 0.2, 0.5, np.nan, 0.05], np.float32)
    table = ClassTable.build(["bg", "cat", "", "dog"], ConfidenceRule(), p.size)
    assert table.names == ("bg", "cat", "2", "dog", "4", "5")  # empty and missing labels: the index
    assert table.top(p, 2) == [("cat", 0.5), ("dog", 0.5)]  # ties keep index order
    everything = [name for name, _ in table.top(p, 0)]
    assert everything == ["cat", "dog", "2", "bg", "5"]  # NaN never kept
    assert table.top(p, -1) == table.top(p, 0) == table.top(p, 100)
    assert [name for name, _ in table.top(p[None], 1)] == ["cat"]
    with pytest.raises(ValueError, match="7 probabilities for a table of 6"):
        table.top(np.zeros(7, np.float32), 1)


def test_class_table_applies_the_rule() -> None:
    rng = np.random.default_rng(3)
    for rule in (ConfidenceRule(0.3), ConfidenceRule(0.5, {"Cat": 0.2, "bird": 0.9}),
                 ConfidenceRule(0.0, {}, frozenset({"DOG", "person"})), ConfidenceRule(0.4, {"dog": 0.1}, frozenset({"dog"}))):
        table = ClassTable.build(LABELS, rule, len(LABELS))
        for _ in range(20):
            p = rng.random(len(LABELS)).astype(np.float32)
            expected = [label for label, score in zip(LABELS, p.tolist(), strict=True)
                        if (rule.allow is None or label.lower() in rule.allow)
                        and score >= rule.per_label.get(label.lower(), rule.default)]
            assert sorted(name for name, _ in table.top(p, 0)) == sorted(expected)
