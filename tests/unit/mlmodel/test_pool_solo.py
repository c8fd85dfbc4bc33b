"""Tests for the solo item of module/mlmodel/pool.py and call_state.working: which interpreter a call gets, alone or
not (leases, hand-over and abandonment in general: tests/unit/test_pool.py).

Deterministic: the "another call is working" signal is a fake or a thread parked on an event; no sleeps, no timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from module import call_state
from module.errors import CancelledError
from module.mlmodel.pool import Pool


class Busy:
    """A fake ``others_busy``: a switch, and an event set each time the pool asks (so a test knows a caller is
    past its check and about to wait)."""

    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.asked = threading.Event()

    def __call__(self) -> bool:
        self.asked.set()
        return self.busy


def test_a_call_that_is_alone_gets_the_solo_item() -> None:
    pool = Pool(["a", "b"], solo="S", others_busy=Busy(False))
    with pool.lease() as item:
        assert item == "S"
    assert pool.solo_leases == 1


def test_a_call_while_another_works_gets_a_single_thread_item() -> None:
    pool = Pool(["a", "b"], solo="S", others_busy=Busy(True))
    with pool.lease() as first, pool.lease() as second:
        assert {first, second} == {"a", "b"}
    assert pool.solo_leases == 0


def test_a_second_lease_of_the_same_pool_never_gets_the_solo_item() -> None:
    pool = Pool(["a", "b"], solo="S", others_busy=Busy(False))
    with pool.lease() as first:
        assert first == "S"
        with pool.lease() as second, pool.lease() as third:
            assert {second, third} == {"a", "b"}
    with pool.lease() as again:  # everything released: alone again
        assert again == "S"


def test_the_solo_item_is_not_taken_while_a_single_thread_item_is_leased() -> None:
    busy = Busy(True)
    pool = Pool(["a", "b"], solo="S", others_busy=busy)
    with pool.lease() as first:
        busy.busy = False  # the other call ended, but this pool still has a lease out
        with pool.lease() as second:
            assert (first, second) in (("a", "b"), ("b", "a"))


def test_without_a_solo_item_a_lone_call_gets_a_normal_one() -> None:
    pool = Pool(["a"], others_busy=Busy(False))
    assert not pool.has_solo
    with pool.lease() as item:
        assert item == "a"


def test_a_waiting_call_is_handed_a_single_thread_item_never_the_solo_one() -> None:
    """Waiters are served first come first served with the item released (module/mlmodel/pool.py): a waiter exists
    only while calls overlap, so the solo item is not for it even if the others finish meanwhile."""
    busy = Busy(True)
    pool = Pool(["a"], solo="S", others_busy=busy)
    got: list[str] = []
    with pool.lease() as held:
        assert held == "a"
        waiter = threading.Thread(target=lambda: got.append(_lease_once(pool)))
        waiter.start()
        assert pool.wait_until(lambda stats: stats.queued == 1, 30)
        busy.busy = False
    waiter.join(30)
    assert got == ["a"]
    assert pool.solo_leases == 0


def test_the_solo_item_counts_as_busy_in_the_stats() -> None:
    pool = Pool(["a", "b"], solo="S", others_busy=Busy(False))
    with pool.lease() as item:
        assert item == "S"
        assert pool.stats().busy == 1
    assert pool.stats().busy == 0


def test_an_abandoned_call_takes_nothing_not_even_the_solo_item() -> None:
    pool = Pool(["a"], solo="S", others_busy=Busy(False))
    with call_state.serving(lambda: False), pytest.raises(CancelledError, match="before it reached an interpreter"):
        with pool.lease():
            pass
    with pool.lease() as item:  # nothing was kept
        assert item == "S"
    with pool.lease() as first, pool.lease() as second:
        assert (first, second) == ("S", "a")


def test_a_waiting_call_stops_waiting_when_it_is_abandoned() -> None:
    busy = Busy(True)
    pool = Pool(["a"], solo="S", others_busy=busy)
    active = [True]
    errors: list[BaseException] = []

    def wait_for_an_item() -> None:
        with call_state.serving(lambda: active[0]):
            try:
                _lease_once(pool)
            except CancelledError as exc:
                errors.append(exc)

    with pool.lease():
        busy.asked.clear()
        waiter = threading.Thread(target=wait_for_an_item)
        waiter.start()
        assert busy.asked.wait(30)
        active[0] = False  # the client cancelled
        waiter.join(30)
        assert not waiter.is_alive()
    assert len(errors) == 1 and "while it waited" in str(errors[0])
    assert pool.solo_leases == 0


def _lease_once(pool: Pool[str]) -> str:
    with pool.lease() as item:
        return item


# --- call_state.working: the default signal ----------------------------------------------------------------------

@pytest.fixture
def other_call() -> Iterator[threading.Event]:
    """Another thread inside call_state.working() until the test ends."""
    inside, leave = threading.Event(), threading.Event()

    def work() -> None:
        with call_state.working():
            inside.set()
            leave.wait(60)

    thread = threading.Thread(target=work)
    thread.start()
    assert inside.wait(30)
    yield inside
    leave.set()
    thread.join(30)


def test_working_counts_a_thread_once_and_not_itself() -> None:
    assert call_state.others_working() == 0
    with call_state.working(), call_state.working():  # nested: the vision pipeline around infer
        assert call_state.others_working() == 0
    assert call_state.others_working() == 0


def test_others_working_sees_another_thread(other_call: Any) -> None:
    assert call_state.others_working() == 1
    with call_state.working():
        assert call_state.others_working() == 1


def _calls_alone(count: int) -> None:
    for _ in range(count):
        with call_state.working():
            pass


def test_default_signal_gives_solo_only_when_no_other_thread_works(other_call: Any) -> None:
    pool = Pool(["a", "b"], solo="S")
    with call_state.working(), pool.lease() as item:
        assert item in ("a", "b")


def test_default_signal_alone() -> None:
    _calls_alone(call_state.RECENT_CALLS)  # whatever earlier tests left behind
    assert call_state.alone()
    pool = Pool(["a", "b"], solo="S")
    with call_state.working(), pool.lease() as item:
        assert item == "S"


def test_a_call_is_not_alone_until_recent_calls_started_alone(other_call: threading.Event) -> None:
    """Several clients: a call that starts in another client's gap between two requests is still not alone."""
    with call_state.working():  # starts while the other call works: an overlapped start
        assert not call_state.alone()


def test_recent_overlap_is_forgotten_after_recent_calls_alone() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with call_state.working():
            inside.set()
            leave.wait(60)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(30)
    with call_state.working():
        pass  # this start saw the other call working
    leave.set()
    thread.join(30)
    pool = Pool(["a", "b"], solo="S")
    for _ in range(call_state.RECENT_CALLS - 1):  # each of these lone calls still has the overlap in its window
        assert not call_state.alone()
        with call_state.working(), pool.lease() as item:
            assert item in ("a", "b")
    with call_state.working(), pool.lease() as item:  # the overlapped start is out of the window now
        assert item == "S"
