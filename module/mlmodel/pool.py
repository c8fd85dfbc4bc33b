"""A fixed pool of interpreters: each call leases one, so no interpreter is ever used by two threads at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from module.errors import FailedPreconditionError

T = TypeVar("T")
_CLOSED = object()


class Pool(Generic[T]):
    """Hands out items one caller at a time; callers beyond the pool size wait for a free item."""

    def __init__(self, items: Iterable[T]) -> None:
        self._free: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.size = 0
        for item in items:
            self._free.put(item)
            self.size += 1
        self._closed = threading.Event()

    @contextmanager
    def lease(self) -> Iterator[T]:
        item = self._free.get()
        if item is _CLOSED:
            self._free.put(_CLOSED)  # wake the next waiter too
            raise FailedPreconditionError("the model was closed (reconfigured or removed) while this call waited; retry")
        try:
            yield item  # type: ignore[misc]
        finally:
            # After close() items are dropped as they come back: in-flight calls finish, then memory is freed.
            if not self._closed.is_set():
                self._free.put(item)

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                break
        self._free.put(_CLOSED)
