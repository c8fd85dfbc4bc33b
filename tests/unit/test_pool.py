"""module/mlmodel/pool.py without a process: leases, first-come-first-served hand-off, and calls that are
abandoned (cancelled, or past their deadline) giving their interpreter up.

Each caller runs in a thread under ``call_state.serving`` with a FakeCall the test cancels when it chooses; the
test waits on the pool's own state (``Pool.wait_until``), never on time, so every interleaving is the one intended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from module import call_state
from module.errors import CancelledError, DeadlineError
from module.mlmodel.pool import Pool, PoolStats

pytestmark = pytest.mark.timeout(30)
WAIT_S = 10.0  # an upper bound for a state change that follows at once; reached only when the code is broken


class FakeCall:
    """The call state a gRPC call would have: wanted until the test cancels it."""

    def __init__(self) -> None:
        self.wanted = True
        self.remaining: float | None = None  # no deadline

    def is_active(self) -> bool:
        return self.wanted and (self.remaining is None or self.remaining > 0)

    def time_remaining(self) -> float | None:
        return self.remaining

    def cancel(self) -> None:
        self.wanted = False

    def expire(self) -> None:
        self.remaining = 0.0


class Caller(threading.Thread):
    """Leases an item from ``pool`` as one call would, and records what it got (or the error)."""

    def __init__(self, pool: Pool[Any], call: FakeCall, used: list[tuple[str, Any]], name: str,
                 body: Callable[[], None] = lambda: None) -> None:
        super().__init__(name=name, daemon=True)
        self.pool, self.call, self.used, self.body = pool, call, used, body
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with call_state.serving(self.call.is_active, self.call.time_remaining), self.pool.lease() as item:
                self.used.append((self.name, item))
                self.body()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to assert on
            self.error = exc

    def result(self) -> BaseException | None:
        self.join(WAIT_S)
        assert not self.is_alive(), f"{self.name} is still waiting"
        return self.error


def wait_for(pool: Pool[Any], predicate: Callable[[PoolStats], bool]) -> None:
    assert pool.wait_until(predicate, WAIT_S), pool.stats()


def test_a_free_item_is_leased_and_returned() -> None:
    pool = Pool(["a", "b"])
    with pool.lease() as first, pool.lease() as second:
        assert {first, second} == {"a", "b"}
        assert pool.stats() == PoolStats(size=2, busy=2, queued=0, gave_up=0)
    assert pool.stats().busy == 0


def test_an_error_in_the_lease_returns_the_item() -> None:
    pool = Pool(["a"])
    with pytest.raises(ZeroDivisionError), pool.lease():
        _ = 1 / 0
    with pool.lease() as item:
        assert item == "a"


def test_no_item_is_ever_used_by_two_callers_at_once() -> None:
    pool = Pool(range(3))
    in_use: set[int] = set()
    clashes: list[int] = []
    guard = threading.Lock()

    def work() -> None:
        for _ in range(200):
            with pool.lease() as item:
                with guard:
                    if item in in_use:
                        clashes.append(item)
                    in_use.add(item)
                with guard:
                    in_use.discard(item)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert clashes == [] and pool.stats() == PoolStats(size=3, busy=0, queued=0, gave_up=0)


def test_waiters_are_served_first_come_first_served() -> None:
    pool = Pool(["only"])
    used: list[tuple[str, Any]] = []
    with pool.lease():
        callers = []
        for i, name in enumerate(("first", "second", "third")):
            caller = Caller(pool, FakeCall(), used, name)
            caller.start()
            wait_for(pool, lambda s, n=i + 1: s.queued == n)  # queued in this order
            callers.append(caller)
    assert [c.result() for c in callers] == [None, None, None]
    assert [name for name, _ in used] == ["first", "second", "third"]


def test_a_waiting_call_that_is_cancelled_gives_up_without_the_item() -> None:
    pool = Pool(["only"])
    used: list[tuple[str, Any]] = []
    call = FakeCall()
    with pool.lease():
        waiter = Caller(pool, call, used, "waiter")
        waiter.start()
        wait_for(pool, lambda s: s.queued == 1)
        call.cancel()
        assert isinstance(waiter.result(), CancelledError)
        assert pool.stats() == PoolStats(size=1, busy=1, queued=0, gave_up=1)
    assert used == []  # it never ran
    with pool.lease() as item:  # the item is free again for the next call
        assert item == "only"


def test_an_expired_call_gets_deadline_exceeded_and_a_cancelled_one_cancelled() -> None:
    """Whichever side notices an expired deadline first, the client sees DEADLINE_EXCEEDED."""
    pool = Pool(["only"])
    used: list[tuple[str, Any]] = []
    expired, cancelled = FakeCall(), FakeCall()
    with pool.lease():
        waiters = [Caller(pool, expired, used, "expired"), Caller(pool, cancelled, used, "cancelled")]
        for i, waiter in enumerate(waiters):
            waiter.start()
            wait_for(pool, lambda s, n=i + 1: s.queued == n)
        expired.expire()
        cancelled.cancel()
        assert [type(w.result()) for w in waiters] == [DeadlineError, CancelledError]
    assert used == []


def test_a_call_abandoned_before_it_asks_gets_nothing_even_from_a_free_pool() -> None:
    pool = Pool(["only"])
    used: list[tuple[str, Any]] = []
    call = FakeCall()
    call.cancel()
    assert isinstance(_run(pool, call, used), CancelledError)
    assert used == [] and pool.stats() == PoolStats(size=1, busy=0, queued=0, gave_up=1)


def _run(pool: Pool[Any], call: FakeCall, used: list[tuple[str, Any]]) -> BaseException | None:
    caller = Caller(pool, call, used, "caller")
    caller.start()
    return caller.result()


def test_a_call_handed_the_item_after_it_was_abandoned_passes_it_on_unused() -> None:
    """The race the old end-to-end test hit by chance: the holder releases at the very moment the first waiter's
    call is cancelled. Forced here by doing both under the pool's lock, so the waiter sees the cancellation only
    once it holds the item: it must hand the item to the next waiter without running."""
    pool = Pool(["only"])
    used: list[tuple[str, Any]] = []
    abandoned_call, wanted_call = FakeCall(), FakeCall()
    item = pool._acquire()
    first = Caller(pool, abandoned_call, used, "abandoned")
    first.start()
    wait_for(pool, lambda s: s.queued == 1)
    second = Caller(pool, wanted_call, used, "wanted")
    second.start()
    wait_for(pool, lambda s: s.queued == 2)
    with pool._changed:
        abandoned_call.cancel()
        pool._release_locked(item)  # handed to "abandoned", the longest waiter
    assert isinstance(first.result(), CancelledError)
    assert second.result() is None
    assert used == [("wanted", "only")]
    assert pool.stats() == PoolStats(size=1, busy=0, queued=0, gave_up=1)


def test_twelve_abandoned_calls_never_run_and_the_wanted_ones_all_do() -> None:
    """The scenario of the old flaky end-to-end test, deterministic: 2 holders keep a pool of 1 busy; 8 calls pass
    their deadline and 4 are cancelled while they wait; then the holders finish. 0 of the 12 ran; the holders and
    one more call did."""
    pool = Pool(["interpreter"])
    used: list[tuple[str, Any]] = []
    gate = threading.Event()
    holders = [Caller(pool, FakeCall(), used, f"holder{i}", body=lambda: gate.wait(WAIT_S)) for i in range(2)]
    holders[0].start()
    wait_for(pool, lambda s: s.busy == 1)
    holders[1].start()
    wait_for(pool, lambda s: s.queued == 1)
    calls = [FakeCall() for _ in range(12)]
    abandoned = [Caller(pool, c, used, f"abandoned{i}") for i, c in enumerate(calls)]
    for caller in abandoned:
        caller.start()
    wait_for(pool, lambda s: s.queued == 13)
    for call in calls:  # 8 deadlines pass, 4 clients cancel: to the pool both are "no longer wanted"
        call.cancel()
    wait_for(pool, lambda s: s.gave_up == 12)
    gate.set()
    assert [type(c.result()) for c in abandoned] == [CancelledError] * 12
    assert [h.result() for h in holders] == [None, None]
    assert _run(pool, FakeCall(), used) is None
    assert [name for name, _ in used] == ["holder0", "holder1", "caller"]
    assert pool.stats() == PoolStats(size=1, busy=0, queued=0, gave_up=12)


def test_outside_a_call_nothing_is_abandoned() -> None:
    pool = Pool(["only"])
    assert not call_state.abandoned()
    with pool.lease() as item:
        assert item == "only"
