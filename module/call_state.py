"""Whether the RPC this thread is serving is still wanted, and how long its caller still waits, for code far below
the servicer (the interpreter pool, a wait for a resource being replaced).

The error boundary (module/server.py) binds each call's ``is_active`` and ``time_remaining`` here for the duration
of the handler. A call whose client cancelled it or whose deadline passed is *abandoned*: nobody will read its
result, so work not yet started for it (waiting for an interpreter, then running it) should be skipped.

It also counts the calls doing work right now (:func:`working`): the interpreter pool gives a call that is alone
the interpreter with every core, and overlapping calls one single-thread interpreter each (module/mlmodel/pool.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

_IS_ACTIVE: ContextVar[Callable[[], bool] | None] = ContextVar("rpc_is_active", default=None)
_TIME_REMAINING: ContextVar[Callable[[], float | None] | None] = ContextVar("rpc_time_remaining", default=None)
NO_DEADLINE_S: Final = 1e9  # grpc reports ~9.2e18 s (2**63 ns) for a call without a deadline


@contextmanager
def serving(is_active: Callable[[], bool], time_remaining: Callable[[], float | None] | None = None) -> Iterator[None]:
    """Mark the current thread as serving a call for which ``is_active()`` says whether it is still wanted and
    ``time_remaining()`` (grpc's ``context.time_remaining``) how many seconds its caller still waits."""
    token = _IS_ACTIVE.set(is_active)
    time_token = _TIME_REMAINING.set(time_remaining)
    try:
        yield
    finally:
        _TIME_REMAINING.reset(time_token)
        _IS_ACTIVE.reset(token)


def abandoned() -> bool:
    """True when the current thread serves a call that was cancelled or ran out of time (False outside a call)."""
    is_active = _IS_ACTIVE.get()
    return is_active is not None and not is_active()


def time_left() -> float | None:
    """Seconds until the current call's deadline; None outside a call or for a call without a deadline."""
    remaining = _TIME_REMAINING.get()
    value = remaining() if remaining is not None else None
    return None if value is None or value > NO_DEADLINE_S else max(value, 0.0)


# --- how many calls are working right now (the interpreter pool's signal for "this call is alone") -----------------

RECENT_CALLS: Final = 4
"""A call counts as alone only if none of the last this-many calls to start found another call working: with
several clients, one client's call often starts while the others' calls are between two requests (their response
on the wire, the next request not yet in); it is not alone, and giving it every core would oversubscribe them."""


class _Depth(threading.local):
    value = 0


class _Activity:
    """The calls working now and whether each of the last RECENT_CALLS started next to another one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.working = 0
        self.overlapped = 0  # how many of `recent` are True
        self._recent = [False] * RECENT_CALLS
        self._next = 0

    def enter(self) -> None:
        with self.lock:
            self.working += 1
            overlapped = self.working > 1
            self.overlapped += int(overlapped) - int(self._recent[self._next])
            self._recent[self._next] = overlapped
            self._next = (self._next + 1) % RECENT_CALLS

    def leave(self) -> None:
        with self.lock:
            self.working -= 1


_depth = _Depth()
_activity = _Activity()


@contextmanager
def working() -> Iterator[None]:
    """Count the current thread as doing a call's work (the whole RPC, or decode, infer...) until the block ends;
    nesting counts once."""
    outer = _depth.value == 0
    if outer:
        _activity.enter()
    _depth.value += 1
    try:
        yield
    finally:
        _depth.value -= 1
        if outer:
            _activity.leave()


def others_working() -> int:
    """How many threads other than this one are inside :func:`working` (a snapshot: it may change at once)."""
    return _activity.working - (1 if _depth.value > 0 else 0)


def alone() -> bool:
    """No other call is working, and none of the last RECENT_CALLS calls started while another one was working."""
    return others_working() == 0 and _activity.overlapped == 0
