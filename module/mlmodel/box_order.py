"""Viam's ``xmin_ymin_xmax_ymax_order``: entry i says which coordinate (0 xmin, 1 ymin, 2 xmax, 3 ymax) sits at
position i of each box. Shared by the mlmodel's Metadata (``boxOrder``) and the vision service's box decoding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_box_order(values: Sequence[float], what: str) -> tuple[int, ...]:
    """``values`` as a tuple of 4 ints, or ValueError saying why it is not a permutation of 0..3 (``what`` names it)."""
    if any(float(v) != int(v) for v in values):
        raise ValueError(f"{what} must hold whole numbers, got {list(values)}")
    order = tuple(int(v) for v in values)
    if len(order) != 4:
        raise ValueError(f"{what} must have 4 entries, got {len(order)}: {list(order)}")
    if sorted(order) != [0, 1, 2, 3]:
        raise ValueError(f"{what} must be a permutation of 0, 1, 2, 3, got {list(order)}")
    return order



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
    positions = check_box_order(index, "BoundingBoxProperties.index")
    return tuple(int(c) for c in np.argsort(positions))
