"""Model outputs -> boxes, scores and labels (box order, scaling back to the image, NMS, thresholds, labels).

Pure, vectorised NumPy helpers. Where Viam's mlmodel vision service defines semantics they are kept
(``xmin_ymin_xmax_ymax_order``, classifier softmax), and where it has known bugs they are fixed on purpose:
``label_confidences`` stacks on ``default_minimum_confidence`` instead of replacing it, out-of-range class ids
get a numeric label instead of failing the whole call, and quantised scores are dequantised instead of divided
by 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from module.vision.imaging import Letterbox

DEFAULT_BOX_ORDER: Final = (1, 0, 3, 2)
"""Viam's default ``xmin_ymin_xmax_ymax_order``: boxes arrive as (ymin, xmin, ymax, xmax), as SSD models emit."""
NORMALIZED_RANGE: Final = (-0.1, 1.1)
_PROBABILITY_TOLERANCE: Final = 1e-6


def _check_permutation(values: Sequence[int], what: str) -> tuple[int, ...]:
    order = tuple(int(v) for v in values)
    if len(order) != 4:
        raise ValueError(f"{what} must have 4 entries, got {len(order)}: {list(order)}")
    if sorted(order) != [0, 1, 2, 3]:
        raise ValueError(f"{what} must be a permutation of 0, 1, 2, 3, got {list(order)}")
    return order


def to_xyxy(boxes: NDArray[np.generic], order: Sequence[int] = DEFAULT_BOX_ORDER) -> NDArray[np.float32]:
    """Reorder boxes to (xmin, ymin, xmax, ymax).

    Args:
        boxes: ``(..., 4)`` array of boxes.
        order: Viam ``xmin_ymin_xmax_ymax_order``: ``order[i]`` is the coordinate (0 = xmin, 1 = ymin, 2 = xmax,
            3 = ymax) found at position ``i`` of each box. Default (1, 0, 3, 2) reads (ymin, xmin, ymax, xmax).

    Returns:
        ``(..., 4)`` float32 array in (xmin, ymin, xmax, ymax) order.

    Raises:
        ValueError: ``order`` is not a permutation of 0..3, or ``boxes`` does not end in 4.
    """
    perm = _check_permutation(order, "xmin_ymin_xmax_ymax_order")
    arr = np.asarray(boxes)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"boxes must have a last dimension of 4, got shape {arr.shape}")
    # Coordinate c sits at position inverse[c].
    return arr[..., np.argsort(perm)].astype(np.float32, copy=False)


def viam_order_from_tflite_index(index: Sequence[int]) -> tuple[int, ...]:
    """Convert TFLite metadata ``BoundingBoxProperties.index`` to a Viam ``xmin_ymin_xmax_ymax_order``.

    ``index[k]`` is the position of coordinate k (left, top, right, bottom) in each box; an empty index means the
    default (left, top, right, bottom). The Viam order is the inverse permutation.

    Args:
        index: The metadata index (4 entries, or none).

    Returns:
        The Viam order, e.g. ``(1, 0, 3, 2)`` for SSD's ``index = [1, 0, 3, 2]``.

    Raises:
        ValueError: ``index`` is neither empty nor a permutation of 0..3.
    """
    if len(index) == 0:
        return (0, 1, 2, 3)
    positions = _check_permutation(index, "BoundingBoxProperties.index")
    return tuple(int(c) for c in np.argsort(positions))


def looks_normalized(xyxy: NDArray[np.generic]) -> bool:
    """Guess whether boxes are normalised (0..1) rather than pixels, for models whose metadata does not say.

    All finite coordinates within [-0.1, 1.1] (SSD outputs slightly overshoot 0..1) means normalised. Viam's own
    heuristic (sum of the first box < 4) misreads a first box that is tiny in pixels or zero padding; a pixel box
    entirely inside [-0.1, 1.1] is at most ~1 pixel, so this test errs far less. No finite coordinate -> True.

    Args:
        xyxy: ``(..., 4)`` boxes.

    Returns:
        True when the boxes look normalised.
    """
    arr = np.asarray(xyxy, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = NORMALIZED_RANGE
    return bool(finite.size == 0 or (finite.min() >= lo and finite.max() <= hi))


def boxes_to_original(
    xyxy: NDArray[np.generic],
    *,
    normalized: bool,
    model_size: tuple[int, int],
    letterbox: Letterbox,
    original_size: tuple[int, int],
) -> NDArray[np.float64]:
    """Map (xmin, ymin, xmax, ymax) boxes from model-input space back to original-image pixels.

    Args:
        xyxy: ``(N, 4)`` boxes, normalised to the model input or in model-input pixels.
        normalized: Whether the boxes are relative to the model input (0..1).
        model_size: Model input ``(width, height)`` in pixels.
        letterbox: The mapping returned by ``to_model_input``.
        original_size: Original image ``(width, height)``.

    Returns:
        ``(N, 4)`` float64 pixel boxes, clamped to ``[0, W] x [0, H]``, corners sorted (xmin <= xmax,
        ymin <= ymax); NaN coordinates become 0, infinities clamp to the border.
    """
    boxes = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
    np.nan_to_num(boxes, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)  # +-inf survive and clamp below
    if normalized:
        boxes *= np.array([model_size[0], model_size[1]] * 2, dtype=np.float64)
    boxes -= np.array([letterbox.pad_x, letterbox.pad_y] * 2)
    boxes /= np.array([letterbox.scale_x, letterbox.scale_y] * 2)
    np.clip(boxes, 0.0, np.array([original_size[0], original_size[1]] * 2, dtype=np.float64), out=boxes)
    lo = np.minimum(boxes[:, :2], boxes[:, 2:])
    hi = np.maximum(boxes[:, :2], boxes[:, 2:])
    return np.concatenate([lo, hi], axis=1)


def nms(
    xyxy: NDArray[np.generic],
    scores: NDArray[np.generic],
    classes: NDArray[np.generic] | None,
    iou_threshold: float,
    class_agnostic: bool = False,
) -> NDArray[np.intp]:
    """Greedy non-maximum suppression.

    A box is suppressed when its IoU with a higher-scoring kept box is greater than ``iou_threshold`` and (unless
    ``class_agnostic`` or ``classes`` is None) both have the same class. Boxes with NaN scores are dropped.

    Args:
        xyxy: ``(N, 4)`` boxes (xmin, ymin, xmax, ymax).
        scores: ``(N,)`` scores.
        classes: ``(N,)`` class ids, or None.
        iou_threshold: Suppression threshold in [0, 1].
        class_agnostic: Suppress across classes.

    Returns:
        Indices of kept boxes, by descending score (ties keep input order).
    """
    boxes = np.nan_to_num(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(score) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(score)} scores")
    cls = None if class_agnostic or classes is None else np.asarray(classes).reshape(-1)
    if cls is not None and len(cls) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(cls)} classes")
    x1, y1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
    x2, y2 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
    areas = (x2 - x1) * (y2 - y1)
    candidates = np.flatnonzero(~np.isnan(score))
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        suppress = iou > iou_threshold
        if cls is not None:
            suppress &= cls[rest] == cls[best]
        order = rest[~suppress]
    return np.asarray(keep, dtype=np.intp)


def dequantize(values: NDArray[np.generic], scale: float, zero_point: int) -> NDArray[np.float32]:
    """``(q - zero_point) * scale`` as float32; float input or ``scale == 0`` is only cast to float32."""
    arr = np.asarray(values)
    if scale == 0 or np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    out = arr.astype(np.float32)
    out -= np.float32(zero_point)
    out *= np.float32(scale)
    return out


def scores_to_probabilities(values: NDArray[np.generic]) -> NDArray[np.float32]:
    """Classifier outputs -> probabilities (same shape, float32, never NaN).

    * All values in [0, 1] (within 1e-6, NaN counted as 0): already probabilities, returned clipped.
    * More than one value and any outside [0, 1]: logits -> softmax over all values. NaN counts as -inf;
      +inf entries share the probability equally; all -inf gives zeros.
    * A single value outside [0, 1]: a logit -> sigmoid (NaN -> 0).

    Viam uses [-1, 1] instead of [0, 1] for the single-value case; a value in [-1, 0) cannot be a probability,
    so it is treated as a logit here.
    """
    v = np.array(values, dtype=np.float32)
    if v.size == 0:
        return v
    tol = _PROBABILITY_TOLERANCE
    nan = np.isnan(v)
    if bool(np.all(nan | ((v >= -tol) & (v <= 1 + tol)))):
        return np.clip(np.where(nan, np.float32(0), v), 0.0, 1.0).astype(np.float32)
    if v.size == 1:
        with np.errstate(over="ignore"):
            out = np.where(nan, np.float32(0), 1.0 / (1.0 + np.exp(-np.where(nan, 0, v))))
        return out.astype(np.float32)
    v[nan] = -np.inf
    posinf = np.isposinf(v)
    if posinf.any():
        return (posinf / np.float32(posinf.sum())).astype(np.float32)
    top = v.max()
    if np.isneginf(top):
        return np.zeros_like(v)
    exp = np.exp(v - top)
    return (exp / exp.sum()).astype(np.float32)


def top_n(probs: NDArray[np.generic], n: int) -> NDArray[np.intp]:
    """Indices of the ``n`` largest values of the flattened array, descending, ties in index order; NaN last.

    ``n <= 0`` returns all indices.
    """
    flat = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-flat, kind="stable")
    return order if n <= 0 else order[:n]


@dataclass(frozen=True, slots=True)
class ConfidenceRule:
    """Which detections/classifications to keep, from the vision service config.

    Attributes:
        default: ``default_minimum_confidence`` (0 keeps everything).
        per_label: ``label_confidences``; keys compared case-insensitively (stored lower-cased).
        allow: Class allow-list compared case-insensitively (stored lower-cased), or None for all labels.
    """

    default: float = 0.0
    per_label: Mapping[str, float] = field(default_factory=dict)
    allow: frozenset[str] | None = None

    def __post_init__(self) -> None:
        lowered = {str(k).lower(): float(v) for k, v in self.per_label.items()}
        object.__setattr__(self, "per_label", MappingProxyType(lowered))
        if self.allow is not None:
            object.__setattr__(self, "allow", frozenset(str(a).lower() for a in self.allow))

    def minimums(self, labels: Sequence[str]) -> NDArray[np.float64]:
        """The score each entry needs to be kept (``score >= minimum``; NaN never is): its label's threshold, or +inf
        when the label is not allowed.

        A label listed in ``per_label`` uses its own threshold; every other label uses ``default`` (stacking, unlike
        Viam, where listing any label drops all unlisted ones).
        """
        if not self.per_label and self.allow is None:
            return np.full(len(labels), self.default, dtype=np.float64)
        if not len(labels):
            return np.zeros(0, dtype=np.float64)
        # Per distinct label, not per entry: detections repeat few labels.
        unique, inverse = np.unique(np.strings.lower(np.asarray(labels, dtype=np.str_)), return_inverse=True)
        names = [str(u) for u in unique]
        needed = np.array([self.per_label.get(u, self.default) if self.allow is None or u in self.allow else np.inf
                           for u in names], dtype=np.float64)
        return needed[inverse].reshape(-1)


@dataclass(frozen=True, slots=True)
class ClassTable:
    """A classifier's classes, by output index: the label reported and the score needed to be kept.

    Built once per (labels, thresholds, class count) rather than per call: for the 1,001 ImageNet classes, naming
    every class and matching the names against the thresholds cost 1-5 ms a call, more than some models' invoke.
    """

    names: tuple[str, ...]
    minimums: NDArray[np.float64]

    @classmethod
    def build(cls, labels: Sequence[str], rule: ConfidenceRule, count: int) -> ClassTable:
        names = tuple(label_for(i, labels) for i in range(count))
        return cls(names, rule.minimums(names))

    def top(self, probs: NDArray[np.floating[Any]], n: int) -> list[tuple[str, float]]:
        """(label, probability) of the kept classes, most probable first (ties in index order), at most ``n``
        (``n <= 0``: all). NaN is never kept."""
        flat = np.asarray(probs).reshape(-1)
        if flat.size != len(self.names):
            raise ValueError(f"{flat.size} probabilities for a table of {len(self.names)} classes")
        kept = np.flatnonzero(flat >= self.minimums)
        order = kept[np.argsort(-flat[kept], kind="stable")]
        if n > 0:
            order = order[:n]
        return [(self.names[i], float(flat[i])) for i in order]


def label_for(index: int, labels: Sequence[str]) -> str:
    """``labels[index]`` when in range and non-empty, else the index as text (e.g. ``"91"``). Never raises."""
    try:
        i = int(index)
        if 0 <= i < len(labels) and labels[i]:
            return str(labels[i])
        return str(i)
    except Exception:  # noqa: BLE001 - NaN/inf/odd objects: fall back to their text
        return str(index)
