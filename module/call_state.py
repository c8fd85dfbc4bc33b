"""Whether the RPC this thread is serving is still wanted, and how long its caller still waits, for code far below
the servicer (the interpreter pool, a wait for a resource being replaced).

The error boundary (module/server.py) binds each call's ``is_active`` and ``time_remaining`` here for the duration
of the handler. A call whose client cancelled it or whose deadline passed is *abandoned*: nobody will read its
result, so work not yet started for it (waiting for an interpreter, then running it) should be skipped.
"""

from __future__ import annotations

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
