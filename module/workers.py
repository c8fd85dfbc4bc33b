"""The gRPC server's worker threads: each call runs on the thread that went idle most recently.

grpcio hands every call to a ``concurrent.futures`` executor. The standard ThreadPoolExecutor wakes whichever of
its idle threads the queue picks, so with 32 workers and two clients back to back the calls rotate over many
threads, each with a cold stack and caches, and the scheduler juggles more runnable threads than there are cores:
on 2 cores that cost about a tenth of the throughput (bench/cases/defaults.py, issue 13). Here idle threads wait
on a stack and a new call goes to the top one, so a steady load runs on as few threads as it keeps busy; the others
stay asleep until a burst (or a slow call, such as a camera read) needs them. The bound on threads and the queue
beyond it are ThreadPoolExecutor's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

_Task = tuple[futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Worker:
    """One thread's mailbox: the task it was handed while idle, or None to exit."""

    __slots__ = ("task", "wake")

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.task: _Task | None = None


class RecentFirstExecutor(futures.Executor):
    """At most ``max_workers`` threads; a submitted call goes to the most recently idle thread, else to a new
    thread while fewer than ``max_workers`` exist, else waits in a first-come-first-served queue.

    A thread whose call has just completed counts as the most recently idle one from the moment before its
    future is resolved: a caller that submits again as soon as it sees the result gets the same thread (its next
    call waits for it in the queue) rather than waking or starting another.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "rpc") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the last one to go idle is woken first
        self._queue: deque[_Task] = deque()
        self._threads: list[threading.Thread] = []
        self._finishing = 0  # threads between their call's end and their next task or sleep
        self._shut_down = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()
        task: _Task = (future, fn, args, kwargs)
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._finishing > len(self._queue):  # a thread that just finished a call takes it next
                self._queue.append(task)
                return future
            if self._idle:
                worker = self._idle.pop()
                worker.task = task
                worker.wake.set()
                return future
            if len(self._threads) >= self._max_workers:
                self._queue.append(task)
                return future
            thread = threading.Thread(target=self._run, args=(task,), name=f"{self._prefix}_{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()
        return future

    def _run(self, task: _Task | None) -> None:
        worker = _Worker()
        while task is not None:
            self._execute(task)
            task = None  # let go of the call's objects before sleeping
            task = self._next(worker)

    def _execute(self, task: _Task) -> None:
        future, fn, args, kwargs = task
        ran = future.set_running_or_notify_cancel()  # False: cancelled while queued
        result: Any = None
        failure: BaseException | None = None
        if ran:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the future, as ThreadPoolExecutor does
                failure = exc
        with self._lock:
            self._finishing += 1  # from now on, the next submitted call waits for this thread (class docstring)
        if not ran:
            return
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(result)

    def _next(self, worker: _Worker) -> _Task | None:
        """The next queued task, else sleep on the idle stack until handed one (None: shut down)."""
        with self._lock:
            self._finishing -= 1
            if self._queue:
                return self._queue.popleft()
            if self._shut_down:
                return None
            worker.task = None
            worker.wake.clear()
            self._idle.append(worker)
        worker.wake.wait()
        return worker.task

    def idle_threads(self) -> int:
        """How many threads sleep waiting for a call right now (a snapshot)."""
        with self._lock:
            return len(self._idle)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls, let running and (unless ``cancel_futures``) queued ones finish, end the threads."""
        with self._lock:
            self._shut_down = True
            idle, self._idle = self._idle, []
            cancelled = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            threads = list(self._threads)
        for worker in idle:
            worker.task = None
            worker.wake.set()
        for future, *_ in cancelled:
            future.cancel()
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

