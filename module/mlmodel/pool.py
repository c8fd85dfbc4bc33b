"""A fixed pool of interpreters: each call leases one, so no interpreter is ever used by two threads at once."""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final, Generic, TypeVar

from module import call_state
from module.errors import CancelledError

T = TypeVar("T")
_WAIT_SLICE_S: Final = 0.05  # how often a waiting caller checks whether its call is still wanted


class Pool(Generic[T]):
    """Hands out items one caller at a time; callers beyond the pool size wait for a free item.

    A caller whose call is abandoned (module/call_state.py: the client cancelled, or the deadline passed) stops
    waiting, and one that gets an item only after that gives it straight back: the interpreter goes to a call
    that still wants a result instead of running for nobody.

    ``close()`` fails nobody: a call that looked the model up just before it was replaced or removed still leases
    and finishes on it (calls in flight finish on the resource they started on, module/lifecycle.py). The items
    are freed with the model object, as soon as the last such call lets go of it.
    """

    def __init__(self, items: Iterable[T]) -> None:
        self._free: queue.SimpleQueue[T] = queue.SimpleQueue()
        self.size = 0
        for item in items:
            self._free.put(item)
            self.size += 1
        self.closed = False

    @contextmanager
    def lease(self) -> Iterator[T]:
        item = self._acquire()
        try:
            yield item
        finally:
            self._free.put(item)

    def _acquire(self) -> T:
        while True:
            try:
                item = self._free.get(timeout=_WAIT_SLICE_S)
            except queue.Empty:
                if call_state.abandoned():
                    raise CancelledError("the call was cancelled or its deadline passed while it waited for a free "
                                         "interpreter") from None
                continue
            if call_state.abandoned():
                self._free.put(item)
                raise CancelledError("the call was cancelled or its deadline passed before an interpreter was free")
            return item

    def close(self) -> None:
        """Mark the pool out of service (see the class docstring: leases keep working)."""
        self.closed = True
