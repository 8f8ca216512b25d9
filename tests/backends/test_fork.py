"""The fork backend: lambdas, the cap on live children, crashes, timeouts, cancel."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import pytest

from executors import TaskTimeout, WorkerCrashed, context, get_executor
from executors._proc.forking import forking
from executors.backends.fork import ForkExecutor

from . import proc_tasks as t

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def ex() -> Iterator[ForkExecutor]:
    executor = ForkExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def test_lambdas_and_closures_run_in_a_child(ex: ForkExecutor) -> None:
    offset = 40
    child = ex.submit(lambda x: (os.getpid(), x + offset), 2).result(timeout=30)
    assert child[1] == 42
    assert child[0] != os.getpid()


def test_max_workers_caps_the_children_alive_at_once(ex: ForkExecutor) -> None:
    def span() -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(0.2)
        return start, time.monotonic()

    spans = [f.result(timeout=30) for f in [ex.submit(span) for _ in range(5)]]
    for start, _ in spans:
        overlapping = sum(1 for s, e in spans if s <= start < e)
        assert overlapping <= 2


@pytest.mark.parametrize(
    ("task", "args", "words"),
    [
        (t.kill_self, (), r"died with SIGKILL\(-9\) while running kill_self\(\)"),
        (t.kill_self, (signal.SIGTERM,), r"died with SIGTERM\(-15\)"),
        (t.segfault, (), r"died with SIGSEGV\(-11\) while running segfault\(\)"),
        (t.exit_with, (7,), r"exited with code 7 while running exit_with\(\)"),
    ],
    ids=["sigkill", "sigterm", "segfault", "exit"],
)
def test_a_dead_child_names_its_signal_or_exit_code(ex: ForkExecutor, task, args, words) -> None:
    with pytest.raises(WorkerCrashed, match=words + ".*still usable"):
        ex.submit(task, *args).result(timeout=30)
    assert ex.submit(pow, 2, 5).result(timeout=30) == 32


def test_task_timeout_kills_the_child() -> None:
    with ForkExecutor(max_workers=1, task_timeout=0.3) as ex:
        with pytest.raises(TaskTimeout, match=r"sleep\(\) ran longer than task_timeout=0.3s"):
            ex.submit(time.sleep, 30).result(timeout=30)
        assert ex.submit(pow, 3, 2).result(timeout=30) == 9


def test_cancel_a_running_task_kills_its_child(ex: ForkExecutor, tmp_path: Path) -> None:
    flag = str(tmp_path / "started")
    running = ex.submit(t.sleep_then, 30, None, flag)
    t.wait_for_file(flag)
    assert running.cancel()
    assert running.cancelled()
    assert ex.submit(pow, 2, 2).result(timeout=30) == 4


def test_running_is_true_only_while_the_child_runs(tmp_path: Path) -> None:
    with ForkExecutor(max_workers=1) as ex:
        t.check_running(ex, str(tmp_path / "started"))


def test_children_leave_ctrl_c_to_the_caller(ex: ForkExecutor, tmp_path: Path) -> None:
    flag = str(tmp_path / "started")
    running = ex.submit(t.sleep_then, 0.5, "done", flag)
    t.wait_for_file(flag)
    os.kill(running.pid, signal.SIGINT)  # type: ignore[attr-defined]
    assert running.result(timeout=30) == "done"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_context_and_logging_cross_the_fork(
    ex: ForkExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with context.bind(user="alice"):
        assert ex.submit(lambda: context.user).result(timeout=30) == "alice"
    ex.submit(t.log_warning, "from the child").result(timeout=30)
    assert "from the child" in [r.getMessage() for r in caplog.records]


def test_unpicklable_result_fails_that_task(ex: ForkExecutor) -> None:
    with pytest.raises(TypeError, match="cannot pickle the result"):
        ex.submit(t.return_lock).result(timeout=30)


def test_registry_name_and_alias() -> None:
    with get_executor("os.fork", max_workers=1) as executor:
        assert executor.backend == "fork"
        assert executor.max_workers == 1


def test_unclosed_executor_is_cleaned_up_by_gc() -> None:
    import gc

    executor = ForkExecutor(max_workers=1)
    assert executor.submit(pow, 2, 2).result(timeout=30) == 4
    del executor
    gc.collect()  # the autouse leak check then waits for its manager thread to end


@pytest.mark.parametrize("where", ["holding", "inside-acquire"])
def test_a_child_forked_while_another_thread_holds_an_import_lock_can_import(where: str) -> None:
    # PyPy's `import` of a loaded module takes its lock (pickle imports the module of
    # every function it loads): pool workers forked at the wrong moment hung for ever.
    # "inside-acquire": the thread is within the module lock's own inner lock.
    import importlib._bootstrap as bootstrap

    held, go = threading.Event(), threading.Event()

    def hold() -> None:
        module_lock = bootstrap._get_module_lock("json")  # type: ignore[attr-defined]
        lock = module_lock if where == "holding" else module_lock.lock
        lock.acquire()
        held.set()
        go.wait()
        lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        with forking():
            pid = os.fork()
            if pid == 0:
                __import__("json")
                os._exit(0)
    finally:
        go.set()
        holder.join()
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child waited for ever on an import lock its parent's thread held")
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["fork", "process"])
def test_big_arrays_come_back_out_of_band_whole_and_writable(backend: str) -> None:
    """Arrays of a result cross as they are (no pickled copy) and are rebuilt on the
    frame the caller read: values, layout and writability as with any pickle."""
    np = pytest.importorskip("numpy", reason="numpy is optional (the test extra installs it)")
    from executors import SerializationError

    count = 1 << 18  # 2 MiB of float64: out of band
    with get_executor(backend, max_workers=1) as ex:
        got = ex.submit(t.arrays_and_more, count).result(timeout=60)
        assert np.array_equal(got["a"], np.arange(count, dtype=np.float64))
        assert got["b"] == b"small" and np.array_equal(got["c"][0], np.zeros(3))
        ones = got["c"][1]
        assert ones.shape == (count // 2, 2) and ones.flags.f_contiguous and ones.sum() == count
        got["a"][0] = -1.0  # the caller's own
        with pytest.raises(SerializationError, match="cannot pickle this"):
            ex.submit(t.array_and_unpicklable, count).result(timeout=60)
        with pytest.raises(SerializationError, match="refuses to load in the caller"):
            ex.submit(t.array_and_unloadable, count).result(timeout=60)
        assert ex.submit(t.arrays_and_more, 8).result(timeout=60)["a"].sum() == 28.0
