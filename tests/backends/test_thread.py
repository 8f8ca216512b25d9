"""What is special to the thread backend: names, contextvars, thread reuse, GC."""

from __future__ import annotations

import contextvars
import gc
import threading
import time

import pytest

from executors import BrokenExecutor, context, get_executor
from executors.backends.thread import ThreadExecutor

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_workers_are_named_after_the_prefix() -> None:
    with get_executor("thread", max_workers=2, thread_name_prefix="crawler") as ex:
        barrier = threading.Barrier(2)

        def name() -> str:
            barrier.wait(timeout=10)
            return threading.current_thread().name

        names = {f.result() for f in [ex.submit(name), ex.submit(name)]}
    assert names == {"crawler_0", "crawler_1"}


def test_default_size_matches_the_standard_library() -> None:
    with ThreadExecutor() as ex:
        assert ex.max_workers == ThreadExecutor.default_max_workers()
    assert 5 <= ThreadExecutor.default_max_workers() <= 32


def test_caller_contextvars_reach_the_task_and_task_changes_stay_inside() -> None:
    def read_and_set() -> str:
        seen = request_id.get()
        request_id.set("changed by task")
        return seen

    with get_executor("thread", max_workers=1) as ex:
        token = request_id.set("req-42")
        try:
            assert ex.submit(read_and_set).result() == "req-42"
            assert request_id.get() == "req-42"
        finally:
            request_id.reset(token)
        assert ex.submit(request_id.get).result() == "-"


def test_idle_threads_are_reused() -> None:
    with get_executor("thread", max_workers=8) as ex:
        for i in range(20):
            assert ex.submit(abs, -i).result() == i
            time.sleep(0.01)  # let the worker get back to waiting before the next task
        assert len(ex._threads) <= 2  # type: ignore[attr-defined]


def test_max_workers_tasks_run_at_once() -> None:
    with get_executor("thread", max_workers=4) as ex:
        barrier = threading.Barrier(4)
        futures = [ex.submit(barrier.wait, 10) for _ in range(4)]
        assert sorted(f.result() for f in futures) == [0, 1, 2, 3]


def test_worker_state_is_per_thread() -> None:
    def setup() -> None:
        context.worker.conn = f"conn-of-{threading.current_thread().name}"

    def use() -> tuple[str, str]:
        time.sleep(0.05)
        return context.worker.conn, threading.current_thread().name

    with get_executor("thread", max_workers=2, initializer=setup) as ex:
        pairs = [f.result() for f in [ex.submit(use) for _ in range(6)]]
    assert all(conn == f"conn-of-{name}" for conn, name in pairs)


def test_failing_initializer_names_it() -> None:
    def bad_init() -> None:
        raise OSError("database unreachable")

    ex = get_executor("thread", max_workers=2, initializer=bad_init)
    with pytest.raises(BrokenExecutor, match="database unreachable") as info:
        ex.submit(abs, 1).result(timeout=10)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BrokenExecutor):
        ex.submit(abs, 1)
    ex.shutdown()


def test_dropped_executor_stops_its_threads() -> None:
    ex = get_executor("thread", max_workers=2)
    assert ex.submit(abs, -1).result() == 1
    threads = list(ex._threads)  # type: ignore[attr-defined]
    del ex
    gc.collect()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()


def test_shutdown_without_wait_lets_running_tasks_finish() -> None:
    ex = get_executor("thread", max_workers=1)
    future = ex.submit(time.sleep, 0.2)
    queued = ex.submit(abs, -5)
    ex.shutdown(wait=False)
    assert queued.result(timeout=10) == 5
    assert future.done()


def test_bad_options() -> None:
    from executors import InvalidOption

    with pytest.raises(InvalidOption, match="initializer must be callable"):
        get_executor("thread", initializer="setup")
    with pytest.raises(InvalidOption, match="max_workers must be an int"):
        get_executor("thread", max_workers="4")
