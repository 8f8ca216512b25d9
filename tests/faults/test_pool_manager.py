"""The pool's manager pairs each outcome with its own task, and never sleeps on pending work."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest

from executors import TaskTimeout, WorkerCrashed, get_executor
from executors.backends.pool import PoolExecutor

from . import fault_tasks as t

PROCESS_BACKENDS = ["pool", "fork", "process", "pool?start_method=spawn"]


@pytest.mark.parametrize("spec", PROCESS_BACKENDS)
def test_unpicklable_log_extra_keeps_every_result_in_place(
    spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with get_executor(spec, max_workers=2) as ex:
        logging_futures = [ex.submit(t.log_unpicklable_extra, i) for i in range(20)]
        plain = [ex.submit(t.double, i) for i in range(20, 40)]
        assert [f.result(timeout=60) for f in logging_futures] == [i * 2 for i in range(20)]
        assert [f.result(timeout=60) for f in plain] == [i * 2 for i in range(20, 40)]
        # nothing left in flight, and the executor still serves
        assert ex.submit(t.log_unpicklable_extra, 50).result(timeout=60) == 100
        assert ex.submit(t.double, 51).result(timeout=60) == 102
    records = [r for r in caplog.records if r.name == "executors.tests.faults"]
    assert sorted(r.getMessage() for r in records) == sorted(
        f"task {i} logs" for i in [*range(20), 50]
    )
    assert all("lock" in str(r.__dict__["lk"]).lower() for r in records)


class _WindowLock:
    """The pool's lock, with a submit forced into every moment the manager lets it go.

    The lost wake-up needs a submit to land after the manager last looked at its
    pending queue and before it decides to sleep. Each time the manager thread
    releases the lock after finding nothing to send and nothing in flight,
    another thread submits (and this waits for it), so a manager that lets the
    lock go between that look and its decision to sleep misses the task.
    """

    def __init__(self, inner: Any, submit_one: Any) -> None:
        self.inner = inner
        self.submit_one = submit_one
        self.armed = 0
        self.manager: threading.Thread | None = None
        self.looked = False

    def __enter__(self) -> bool:
        return bool(self.inner.__enter__())

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)
        if self.armed and self.looked and threading.current_thread() is self.manager:
            self.looked = False
            helper = threading.Thread(target=self.submit_one)
            helper.start()
            helper.join()
            self.armed -= 1  # after the submit: the test counts the futures once this is 0

    def acquire(self, *args: Any) -> bool:
        return bool(self.inner.acquire(*args))

    def release(self) -> None:
        self.inner.release()


def test_a_submit_between_dispatch_and_sleep_is_not_missed() -> None:
    ex = PoolExecutor(max_workers=2)
    futures: list[tuple[int, Any]] = []
    numbers = itertools.count(1)

    def submit_one() -> None:
        n = next(numbers)
        futures.append((n, ex.submit(t.double, n)))

    pool = ex._pool
    lock = _WindowLock(pool.lock, submit_one)
    lock.manager = pool.thread
    try:
        assert ex.submit(t.double, 0).result(timeout=30) == 0  # the manager is asleep now
        dispatch = pool.dispatch

        def looking() -> Any:
            batches = dispatch()
            # the window that loses a task: nothing sent, nothing in flight to wake us later
            lock.looked = not batches and not any(w.inflight for w in pool.workers)
            return batches

        pool.dispatch = looking
        pool.lock = lock
        lock.armed = 40
        submit_one()
        deadline = time.monotonic() + 20
        while lock.armed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.armed == 0, "the manager stopped taking its lock: a task waits unseen"
        assert len(futures) == 41
        for n, future in futures:
            assert future.result(timeout=10) == 2 * n
    finally:
        lock.armed = 0
        ex.shutdown(wait=True, cancel_futures=True)


def test_a_task_that_ends_its_worker_is_a_crash_when_the_manager_looks_late() -> None:
    """Past the task's deadline, a worker that already exited is reported as crashed.

    The manager thread may be descheduled between select() and its deadline check
    (PyPy under load did so), and then see a worker that its task ended, with the
    deadline passed: that is the task's crash, not a timeout.
    """
    with PoolExecutor(max_workers=1, task_timeout=0.3) as ex:
        assert ex.submit(t.double, 1).result(timeout=60) == 2
        selector = ex._pool.selector
        select = selector.select
        late: list[float] = []

        def select_late(timeout: float | None = None) -> Any:
            events = select(timeout)
            deaths = [key for key, _ in events if key.data and key.fd == key.data.sentinel]
            if deaths and not late:
                late.append(time.monotonic())
                time.sleep(0.6)  # the deadline passes before the manager sees the death
                return []
            return events

        selector.select = select_late  # type: ignore[method-assign]
        with pytest.raises(WorkerCrashed, match=r"exited with code 3 while running"):
            ex.submit(t.crash_or_hang_or_double, 3).result(timeout=60)
        assert late, "the manager never saw the worker's sentinel"
        assert ex.submit(t.double, 2).result(timeout=60) == 4


# A soak (the slowest test here): tox runs it in py311 and one other env (tests/conftest.py).
@pytest.mark.exhaustive
def test_submit_one_wait_one_with_crashes_and_timeouts_never_leaves_a_task_pending() -> None:
    """The user's view of the same race: one task at a time, faults mixed in."""
    outcomes = {"ok": 0, "crash": 0, "timeout": 0}
    with get_executor("pool", max_workers=2, task_timeout=0.3) as ex:
        for x in range(400):
            future = ex.submit(t.crash_or_hang_or_double, x)
            try:
                assert future.result(timeout=20) == x * 2  # never pending for ever
                outcomes["ok"] += 1
            except WorkerCrashed:
                assert x % 7 == 3
                outcomes["crash"] += 1
            except TaskTimeout:
                assert x % 11 == 5
                outcomes["timeout"] += 1
    assert outcomes["crash"] == len([x for x in range(400) if x % 7 == 3])
    assert outcomes["timeout"] == len([x for x in range(400) if x % 11 == 5 and x % 7 != 3])
