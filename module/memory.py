"""Keep memory the process freed for its next call instead of handing it back to the kernel (glibc only).

A YOLO-sized call allocates and frees several megabytes (a 640x640 float input of 4.9 MB, a [1, 84, 8400]
output copy of 2.8 MB, the decoded frame): by default glibc serves such blocks with mmap and unmaps them on
free, or trims the heap top, so every call faulted ~1,600 fresh pages back in (about 6 MB zeroed by the
kernel, 2-3 ms of a 35 ms call on this machine; bench/cases/defaults.py). Raising the two thresholds makes
those blocks come from the heap and stay there: RSS settles at the largest call's working set and stays flat.
"""

from __future__ import annotations

import ctypes
from typing import Final

_M_TRIM_THRESHOLD: Final = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 32 * 1024 * 1024  # the largest value glibc accepts on 64-bit
TRIM_THRESHOLD_BYTES: Final = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False where there is no glibc ``mallopt`` (or it refused)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                      TRIM_THRESHOLD_BYTES))
