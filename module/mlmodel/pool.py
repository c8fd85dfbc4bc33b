"""A fixed pool of interpreters: each call leases one, so no interpreter is ever used by two threads at once.

With the default attributes the pool also holds one *solo* interpreter that uses every core: a call that is alone
(no other call working in this process, nor lately: module/call_state.py ``alone``) runs on it and gets the latency
of all cores, while calls that overlap each run on a single-thread interpreter and together get the throughput of
all cores (two all-core interpreters side by side oversubscribe the cores: bench/cases/defaults.py).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from module import call_state
from module.errors import CancelledError, DeadlineError, ModuleError

T = TypeVar("T")
_WAIT_SLICE_S: Final = 0.05  # how often a waiting caller checks whether its call is still wanted


def _not_alone() -> bool:
    return not call_state.alone()


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot: items leased now (the solo item included, so at most size + 1), callers waiting now, and callers
    that gave up (abandoned) since the start."""

    size: int
    busy: int
    queued: int
    gave_up: int


class _Waiter(Generic[T]):
    __slots__ = ("item",)

    def __init__(self) -> None:
        self.item: T | None = None


class Pool(Generic[T]):
    """Hands out items one caller at a time; callers beyond the pool size wait for a free item, first come first
    served (a released item goes straight to the longest waiter, so no caller can be overtaken for ever).

    A caller whose call is abandoned (module/call_state.py: the client cancelled, or the deadline passed) stops
    waiting, and one that gets an item only after that gives it straight back (to the next waiter): the
    interpreter goes to a call that still wants a result instead of running for nobody.

    ``close()`` fails nobody: a call that looked the model up just before it was replaced or removed still leases
    and finishes on it (calls in flight finish on the resource they started on, module/lifecycle.py). The items
    are freed with the model object, as soon as the last such call lets go of it.

    ``solo`` (optional) is handed out only to a caller that is alone: no item of this pool is leased, nobody waits,
    and ``others_busy()`` is false (by default: no other call of this process is working, nor was when any of the
    last few calls started, call_state.alone). Every other caller gets one of ``items`` (waiting, first come first
    served, when all are leased); waiters are never handed ``solo``.

    ``abandoned`` says whether the calling thread's call is still wanted (call_state.abandoned; a test passes its
    own).
    """

    def __init__(self, items: Iterable[T], *, abandoned: Callable[[], bool] = call_state.abandoned,
                 solo: T | None = None, others_busy: Callable[[], bool] = _not_alone) -> None:
        self._free: deque[T] = deque(items)
        if not self._free:
            raise ValueError("a pool needs at least one item")
        self.size = len(self._free)
        self._solo = solo
        self._solo_free = solo is not None
        self._others_busy = others_busy
        self.solo_leases = 0  # how many leases got the solo item (status and tests)
        self._waiters: deque[_Waiter[T]] = deque()
        self._changed = threading.Condition(threading.Lock())
        self._abandoned = abandoned
        self._gave_up = 0
        self.closed = False

    @property
    def has_solo(self) -> bool:
        return self._solo is not None

    @contextmanager
    def lease(self) -> Iterator[T]:
        item = self._acquire()
        try:
            yield item
        finally:
            self._release(item)

    def stats(self) -> PoolStats:
        with self._changed:
            return self._stats_locked()

    def wait_until(self, predicate: Callable[[PoolStats], bool], timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds (re-checked on every change of the pool) or ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._stats_locked()), timeout)

    def _stats_locked(self) -> PoolStats:
        solo_busy = int(self._solo is not None and not self._solo_free)
        return PoolStats(size=self.size, busy=self.size - len(self._free) + solo_busy, queued=len(self._waiters),
                         gave_up=self._gave_up)

    def _solo_for_me_locked(self) -> bool:
        """The caller is alone and the solo item is free (others_busy is asked first: a test's fake learns that
        the caller is deciding)."""
        return (self._solo_free and not self._others_busy() and len(self._free) == self.size
                and not self._waiters)

    def _acquire(self) -> T:
        with self._changed:
            if self._abandoned():
                self._give_up_locked()
                raise _gave_up("before it reached an interpreter")
            if self._solo_for_me_locked():
                assert self._solo is not None
                self._solo_free = False
                self.solo_leases += 1
                return self._solo
            if self._free and not self._waiters:
                return self._free.popleft()
            waiter: _Waiter[T] = _Waiter()
            self._waiters.append(waiter)
            self._changed.notify_all()
            while waiter.item is None:
                self._changed.wait(_WAIT_SLICE_S)
                if waiter.item is None and self._abandoned():
                    self._waiters.remove(waiter)
                    self._give_up_locked()
                    raise _gave_up("while it waited for a free interpreter")
            item = waiter.item
        if self._abandoned():
            self._release(item)
            with self._changed:
                self._give_up_locked()
            raise _gave_up("before an interpreter was free")
        return item

    def _give_up_locked(self) -> None:
        self._gave_up += 1
        self._changed.notify_all()

    def _release(self, item: T) -> None:
        with self._changed:
            if self._solo is not None and item is self._solo:
                self._solo_free = True
                self._changed.notify_all()
            else:
                self._release_locked(item)

    def _release_locked(self, item: T) -> None:
        if self._waiters:
            self._waiters.popleft().item = item  # hand over: busy count unchanged, one waiter fewer
        else:
            self._free.append(item)
        self._changed.notify_all()

    def close(self) -> None:
        """Mark the pool out of service (see the class docstring: leases keep working)."""
        self.closed = True


def _gave_up(when: str) -> ModuleError:
    """DEADLINE_EXCEEDED for a call whose time ran out (the status its client expects, whichever side notices the
    deadline first), CANCELLED for one its client cancelled."""
    left = call_state.time_left()
    if left is not None and left <= 0:
        return DeadlineError(f"the call's deadline passed {when}")
    return CancelledError(f"the call was cancelled {when}")
