"""Boxes: reorder to (xmin, ymin, xmax, ymax), tell normalised from pixel boxes, map them back to the original
image through the resize/letterbox, and non-maximum suppression. Pure, vectorised NumPy."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from module.mlmodel.box_order import check_box_order
from module.vision.imaging import Letterbox

DEFAULT_BOX_ORDER: Final = (1, 0, 3, 2)
"""Viam's default ``xmin_ymin_xmax_ymax_order``: boxes arrive as (ymin, xmin, ymax, xmax), as SSD models emit."""
NORMALIZED_RANGE: Final = (-0.1, 1.1)


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
    positions = _positions(tuple(order))
    arr = np.asarray(boxes)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"boxes must have a last dimension of 4, got shape {arr.shape}")
    return arr[..., positions].astype(np.float32, copy=False)


@functools.lru_cache(maxsize=64)
def _positions(order: tuple[float, ...]) -> list[int]:
    """Where each coordinate (xmin, ymin, xmax, ymax) sits in a box of this order (checked once per order)."""
    return [int(i) for i in np.argsort(check_box_order(order, "xmin_ymin_xmax_ymax_order"))]


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
    np.copyto(boxes, 0.0, where=np.isnan(boxes))  # +-inf survive and clamp below
    if normalized:
        boxes *= np.array([model_size[0], model_size[1]] * 2, dtype=np.float64)
    boxes -= np.array([letterbox.pad_x, letterbox.pad_y] * 2)
    boxes /= np.array([letterbox.scale_x, letterbox.scale_y] * 2)
    np.maximum(boxes, 0.0, out=boxes)  # a clip in two ufuncs: np.clip's own checks cost more than the work here
    np.minimum(boxes, np.array([original_size[0], original_size[1]] * 2, dtype=np.float64), out=boxes)
    lo = np.minimum(boxes[:, :2], boxes[:, 2:])
    hi = np.maximum(boxes[:, :2], boxes[:, 2:])
    return np.concatenate([lo, hi], axis=1)


def nms(
    xyxy: NDArray[np.generic],
    scores: NDArray[np.generic],
    classes: NDArray[np.generic] | None,
    iou_threshold: float,
    class_agnostic: bool = False,
    *,
    max_detections: int = 0,
) -> NDArray[np.intp]:
    """Greedy non-maximum suppression (every family: SSD-style rows and decoded YOLO candidates).

    A box is suppressed when its IoU with a higher-scoring kept box is greater than ``iou_threshold`` and (unless
    ``class_agnostic`` or ``classes`` is None) both have the same class. Boxes with NaN scores are dropped.

    Args:
        xyxy: ``(N, 4)`` boxes (xmin, ymin, xmax, ymax).
        scores: ``(N,)`` scores.
        classes: ``(N,)`` class ids, or None.
        iou_threshold: Suppression threshold in [0, 1].
        class_agnostic: Suppress across classes.
        max_detections: Stop after this many kept boxes (``<= 0``: no limit): the loop runs once per kept box.

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
    limit = max_detections if max_detections > 0 else order.size
    while order.size and len(keep) < limit:
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
