"""A detector's raw outputs -> Detections in original-image pixels (thresholds, NMS, labels, box mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from module.vision.boxes import boxes_to_original, looks_normalized, nms, to_xyxy
from module.vision.config import Thresholds
from module.vision.imaging import Letterbox
from module.vision.layouts import Layout, decode, dequantize
from module.vision.plan import DetectorPlan, YoloPlan, read_output
from module.vision.scores import ConfidenceRule, label_for, rule_of


@dataclass(frozen=True, slots=True)
class Detection:
    """A box in original-image pixels (all four set) plus the same box normalised to the image size."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    x_min_normalized: float
    y_min_normalized: float
    x_max_normalized: float
    y_max_normalized: float
    confidence: float
    class_name: str


def detections(outputs: Mapping[str, NDArray[Any]], plan: DetectorPlan, labels: tuple[str, ...],
               thresholds: Thresholds, *, model_size: tuple[int, int], letterbox: Letterbox,
               original_size: tuple[int, int]) -> list[Detection]:
    """SSD-style outputs (boxes, scores, classes, count; or boxes and a [1, N, classes] score table) -> Detections.

    Every step after the score filter works on the rows that passed it only: a call's cost is a few dozen NumPy
    calls whatever the output size, and these run just after ``invoke()`` has evicted the caches.
    """
    boxes = dequantize(read_output(outputs, plan.location), plan.location_quant).reshape(-1, 4)
    raw_scores = dequantize(read_output(outputs, plan.score), plan.score_quant)
    per_class = plan.category is None and raw_scores.ndim == 3  # [1, N, classes]: the class is the best-scoring one
    if per_class:
        table = raw_scores.reshape(raw_scores.shape[-2], raw_scores.shape[-1])
        best = table.argmax(axis=1)
        scores = np.take_along_axis(table, best[:, np.newaxis], axis=1).reshape(-1)
        raw_classes: NDArray[Any] = best
    else:
        scores = raw_scores.reshape(-1)
        raw_classes = (read_output(outputs, plan.category).reshape(-1) if plan.category
                       else np.zeros(scores.shape, np.float32))
    n = min(len(boxes), len(scores), len(raw_classes))
    if plan.count is not None:  # fixed-size outputs are zero-padded past the valid count
        count = read_output(outputs, plan.count).reshape(-1)
        if count.size and np.isfinite(count[0]):
            n = max(0, min(n, int(count[0])))
    boxes, scores, raw_classes = boxes[:n], scores[:n], raw_classes[:n]
    rule = rule_of(thresholds)
    # A NaN/Inf class id names no class; a box with a NaN/Inf coordinate has no place: such rows are dropped.
    valid = np.isfinite(boxes).all(axis=1)
    if not per_class:
        valid &= np.isfinite(raw_classes)
    index = np.flatnonzero((scores >= rule.floor) & valid)
    classes = _class_ids(raw_classes[index])
    passed: NDArray[np.float64] = scores[index].astype(np.float64)
    if not rule.uniform:  # the floor let through rows some labels' thresholds refuse
        keep = _passing(classes, passed, labels, rule)
        index, classes, passed = index[keep], classes[keep], passed[keep]
    xyxy = to_xyxy(boxes[index], plan.box_order)
    if thresholds.iou_threshold is not None and len(index):
        kept = nms(xyxy, passed, classes, thresholds.iou_threshold, thresholds.class_agnostic_nms)
    else:
        kept = np.argsort(-passed, kind="stable")
    if thresholds.max_detections is not None:
        kept = kept[: thresholds.max_detections]
    xyxy, passed, classes = xyxy[kept], passed[kept], classes[kept]
    normalized = plan.normalized if plan.normalized is not None else looks_normalized(xyxy)
    pixels = boxes_to_original(xyxy, normalized=normalized, model_size=model_size, letterbox=letterbox,
                               original_size=original_size)
    return _to_detections(pixels, passed, [label_for(c, labels) for c in classes.tolist()], original_size)


def _class_ids(raw: NDArray[Any]) -> NDArray[np.int64]:
    """Finite class ids (float outputs of the post-process op, or argmax indices) as int64, rounded and clamped."""
    return np.rint(np.minimum(np.maximum(raw.astype(np.float64), -(2.0**31)), 2.0**31)).astype(np.int64)


def yolo_detections(outputs: Mapping[str, NDArray[Any]], plan: YoloPlan, layout: Layout, labels: tuple[str, ...],
                    thresholds: Thresholds, *, max_candidates: int, model_size: tuple[int, int], letterbox: Letterbox,
                    original_size: tuple[int, int]) -> list[Detection]:
    """YOLO-family and end-to-end outputs -> Detections: score filter first (on the raw tensor), the best
    ``max_candidates``, per-label thresholds, NMS unless the model did it, ``max_detections``, then the box mapping.

    ``thresholds`` must have the family defaults filled in (``Thresholds.with_defaults``).
    """
    rule = rule_of(thresholds)
    found = decode(layout, read_output(outputs, plan.output), plan.quant, input_size=model_size, min_score=rule.floor,
                   max_candidates=max_candidates)
    found = found.take(_passing(found.classes, found.scores, labels, rule))
    limit = thresholds.max_detections or 0
    if thresholds.iou_threshold is not None and len(found):
        kept = nms(found.boxes, found.scores, found.classes, thresholds.iou_threshold, thresholds.class_agnostic_nms,
                   max_detections=limit)
    else:
        kept = np.arange(len(found))[: limit or None]  # already best first
    found = found.take(kept)
    pixels = boxes_to_original(found.boxes, normalized=False, model_size=model_size, letterbox=letterbox,
                               original_size=original_size)
    return _to_detections(pixels, found.scores.astype(np.float64),
                          [label_for(c, labels) for c in found.classes.tolist()], original_size)


def _passing(classes: NDArray[np.integer[Any]], scores: NDArray[np.floating[Any]], labels: tuple[str, ...],
             rule: ConfidenceRule) -> NDArray[np.intp]:
    """The rows whose score reaches their label's threshold (a label not allowed: none). Labels are looked up per
    distinct class id, not per row: a raw [1, N, classes] output has thousands of rows."""
    if rule.uniform:
        return np.flatnonzero(scores >= rule.default)
    ids, row_id = np.unique(classes, return_inverse=True)
    return np.flatnonzero(scores >= rule.minimums([label_for(int(c), labels) for c in ids])[row_id])


def _to_detections(pixels: NDArray[np.float64], scores: NDArray[np.float64], names: list[str],
                   size: tuple[int, int]) -> list[Detection]:
    width, height = size
    ints = np.rint(pixels).astype(np.int64)
    # viam-server recomputes the image size as x_max / x_max_normalized: keep the max corner at least 1 px.
    ints[:, 2:] = np.maximum(ints[:, 2:], np.minimum(ints[:, :2] + 1, (width, height)))
    norm = ints / np.array([width, height, width, height], dtype=np.float64)
    return [Detection(b[0], b[1], b[2], b[3], r[0], r[1], r[2], r[3], s, name)
            for b, r, s, name in zip(ints.tolist(), norm.tolist(), scores.tolist(), names, strict=True)]
