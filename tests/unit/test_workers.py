"""module/workers.py: the server's executor runs each call on the most recently idle thread, never more than
max_workers threads at once, and queues the rest first come first served. Ordering is driven by events and
barriers, never by sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import pytest

from module.workers import RecentFirstExecutor

WAIT_S = 10.0  # only a bound on a hang; every wait below is released by an event


@pytest.fixture
def executor() -> Iterator[RecentFirstExecutor]:
    pool = RecentFirstExecutor(3, thread_name_prefix="test")
    yield pool
    pool.shutdown(wait=True)


def _thread_name() -> str:
    return threading.current_thread().name


def _held(pool: RecentFirstExecutor, count: int) -> tuple[list[futures.Future[str]], threading.Event]:
    """``count`` calls that each wait for the returned event; returns once all of them are running."""
    release = threading.Event()
    started = threading.Barrier(count + 1)

    def hold() -> str:
        started.wait(WAIT_S)
        release.wait(WAIT_S)
        return _thread_name()

    calls = [pool.submit(hold) for _ in range(count)]
    started.wait(WAIT_S)
    return calls, release


def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (a state reached, re-checked every millisecond; WAIT_S only bounds a hang)."""
    checked = threading.Event()
    for _ in range(int(WAIT_S * 1000)):
        if condition():
            return
        checked.wait(0.001)
    raise AssertionError("the condition never held")


def test_results_and_exceptions_reach_the_future(executor: RecentFirstExecutor) -> None:
    assert executor.submit(lambda a, b=0: a + b, 2, b=3).result(WAIT_S) == 5
    with pytest.raises(ZeroDivisionError):
        executor.submit(lambda: 1 // 0).result(WAIT_S)
    assert executor.submit(lambda: "still serving").result(WAIT_S) == "still serving"


def test_back_to_back_calls_stay_on_one_thread(executor: RecentFirstExecutor) -> None:
    """A client calling again as soon as it has its answer keeps one warm thread, not a rotation over all."""
    names = [executor.submit(_thread_name).result(WAIT_S) for _ in range(50)]
    assert set(names) == {names[0]}


def test_after_a_burst_a_steady_caller_settles_on_one_thread(executor: RecentFirstExecutor) -> None:
    calls, release = _held(executor, 3)  # three threads exist now
    release.set()
    assert len({c.result(WAIT_S) for c in calls}) == 3
    _until(lambda: executor.idle_threads() == 3)  # all three have gone back to sleep
    names = [executor.submit(_thread_name).result(WAIT_S) for _ in range(50)]
    assert set(names) == {names[0]}


def test_the_most_recently_idle_thread_takes_the_next_call(executor: RecentFirstExecutor) -> None:
    started = threading.Barrier(4)
    releases = [threading.Event() for _ in range(3)]

    def hold(release: threading.Event) -> str:
        started.wait(WAIT_S)
        release.wait(WAIT_S)
        return _thread_name()

    calls = [executor.submit(hold, release) for release in releases]
    started.wait(WAIT_S)
    for idle, (call, release) in enumerate(zip(calls, releases, strict=True), start=1):  # they go idle in order
        release.set()
        call.result(WAIT_S)
        _until(lambda idle=idle: executor.idle_threads() == idle)
    assert executor.submit(_thread_name).result(WAIT_S) == calls[-1].result()


def test_a_busy_thread_is_left_alone(executor: RecentFirstExecutor) -> None:
    (held,), release = _held(executor, 1)
    names = {executor.submit(_thread_name).result(WAIT_S) for _ in range(20)}
    release.set()
    assert len(names) == 1
    assert names.isdisjoint({held.result(WAIT_S)})


def test_no_more_threads_than_max_workers(executor: RecentFirstExecutor) -> None:
    calls, release = _held(executor, 3)
    queued = [executor.submit(_thread_name) for _ in range(5)]
    assert not any(q.done() for q in queued)  # all three threads are held: nothing else can have run
    release.set()
    names = {c.result(WAIT_S) for c in calls} | {q.result(WAIT_S) for q in queued}
    assert names == {"test_0", "test_1", "test_2"}


def test_calls_beyond_max_workers_run_first_come_first_served() -> None:
    pool = RecentFirstExecutor(1)
    _, release = _held(pool, 1)
    order: list[int] = []
    queued = [pool.submit(order.append, i) for i in range(5)]
    release.set()
    for q in queued:
        q.result(WAIT_S)
    pool.shutdown()
    assert order == [0, 1, 2, 3, 4]


def test_shutdown_refuses_new_calls_and_finishes_queued_ones() -> None:
    pool = RecentFirstExecutor(1)
    (held,), release = _held(pool, 1)
    queued = pool.submit(lambda: "queued")
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    release.set()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert held.result(WAIT_S) and queued.result(WAIT_S) == "queued"
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(_thread_name)


def test_shutdown_with_cancel_futures_cancels_the_queue() -> None:
    pool = RecentFirstExecutor(1)
    (held,), release = _held(pool, 1)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert queued.cancelled()
    assert held.result(WAIT_S)  # the running call still finished


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        RecentFirstExecutor(0)
