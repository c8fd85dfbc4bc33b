"""Whether the RPC this thread is serving is still wanted, for code far below the servicer (the interpreter pool).

The error boundary (module/server.py) binds each call's ``is_active`` here for the duration of the handler. A call
whose client cancelled it or whose deadline passed is *abandoned*: nobody will read its result, so work not yet
started for it (waiting for an interpreter, then running it) should be skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_IS_ACTIVE: ContextVar[Callable[[], bool] | None] = ContextVar("rpc_is_active", default=None)


@contextmanager
def serving(is_active: Callable[[], bool]) -> Iterator[None]:
    """Mark the current thread as serving a call for which ``is_active()`` says whether it is still wanted."""
    token = _IS_ACTIVE.set(is_active)
    try:
        yield
    finally:
        _IS_ACTIVE.reset(token)


def abandoned() -> bool:
    """True when the current thread serves a call that was cancelled or ran out of time (False outside a call)."""
    is_active = _IS_ACTIVE.get()
    return is_active is not None and not is_active()
