"""Fault tests of the pool backend: crashes, hangs, cancel, pickling, logging, leaks."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

import pytest

from executors import SerializationError, TaskTimeout, WorkerCrashed, get_executor
from executors.backends.pool import PoolExecutor
from executors.testing import (
    add,
    echo,
    read_worker_value,
    set_worker_value,
)

from . import proc_tasks as t
from .scripts import run_script

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def pool() -> Iterator[PoolExecutor]:
    ex = PoolExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def _fds() -> int:
    """Open descriptors, but for multiprocessing's shared-memory heap.

    multiprocessing keeps the heap's small arenas (each an open file) for reuse
    until the process exits; their number depends on what ran before, not on a leak.
    """
    if not os.path.isdir("/proc/self/fd"):
        return 0
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += not os.readlink(f"/proc/self/fd/{fd}").startswith("/dev/shm/pym-")
    return count


@pytest.mark.parametrize(
    ("task", "args", "words"),
    [
        (t.kill_self, (), "died with SIGKILL(-9) while running kill_self()"),
        (t.exit_with, (3,), "exited with code 3 while running exit_with()"),
        (t.segfault, (), "died with SIGSEGV(-11) while running segfault()"),
    ],
    ids=["sigkill", "exit", "segfault"],
)
def test_dead_worker_fails_only_its_task(pool: PoolExecutor, task, args, words) -> None:
    before = pool.submit(add, 1, 1).result(timeout=30)
    crashed = pool.submit(task, *args)
    with pytest.raises(
        WorkerCrashed,
        match=r"worker \d+ "
        + words.replace("(", r"\(").replace(")", r"\)")
        + "; the pool replaced it and is still usable",
    ):
        crashed.result(timeout=30)
    assert before == 2
    assert [pool.submit(add, i, 1).result(timeout=30) for i in range(5)] == [1, 2, 3, 4, 5]


def test_crash_requeues_the_tasks_queued_behind_it() -> None:
    with PoolExecutor(max_workers=1) as ex:
        crashed = ex.submit(t.kill_self)
        behind = [ex.submit(add, i, 10) for i in range(20)]
        assert isinstance(crashed.exception(timeout=30), WorkerCrashed)
        assert crashed.exception().exitcode == -signal.SIGKILL
        assert [f.result(timeout=30) for f in behind] == list(range(10, 30))


def test_task_timeout_kills_and_replaces_the_worker() -> None:
    with PoolExecutor(max_workers=2, task_timeout=0.5) as ex:
        start = time.monotonic()
        hung = ex.submit(t.sleep_then, 30)
        others = [ex.submit(add, i, 1) for i in range(10)]
        with pytest.raises(TaskTimeout, match=r"sleep_then\(\) ran longer than task_timeout=0.5s"):
            hung.result(timeout=30)
        assert time.monotonic() - start < 10
        assert [f.result(timeout=30) for f in others] == list(range(1, 11))
        assert ex.submit(add, 2, 2).result(timeout=30) == 4


def test_cancel_a_running_task_kills_its_worker(pool: PoolExecutor, tmp_path: Path) -> None:
    flag = str(tmp_path / "started")
    running = pool.submit(t.sleep_then, 30, None, flag)
    t.wait_for_file(flag)
    start = time.monotonic()
    assert running.cancel()
    assert running.cancelled()
    with pytest.raises(cf.CancelledError):
        running.result(timeout=1)
    assert pool.submit(add, 20, 22).result(timeout=30) == 42
    assert time.monotonic() - start < 10


def test_running_is_true_only_while_a_worker_runs_it(tmp_path: Path) -> None:
    with PoolExecutor(max_workers=1) as ex:
        t.check_running(ex, str(tmp_path / "started"))


def test_unpicklable_argument_is_refused_by_submit(pool: PoolExecutor) -> None:
    with pytest.raises(SerializationError, match=r"cannot pickle argument 2 \(<.*lock.*>\)"):
        pool.submit(echo, 1, threading.Lock())
    assert pool.submit(echo, 5).result(timeout=30) == 5


def test_lambda_error_with_plain_pickle_says_how_to_fix_it() -> None:
    with PoolExecutor(max_workers=1, serializer="pickle") as ex:
        with pytest.raises(SerializationError, match="serializer='auto'"):
            ex.submit(lambda: 1)


def test_cloudpickle_serializer_runs_lambdas_and_closures() -> None:
    pytest.importorskip("cloudpickle", reason="the cloudpickle extra is not installed")
    base = 40
    with PoolExecutor(max_workers=1, serializer="cloudpickle") as ex:
        assert ex.submit(lambda x: x + base, 2).result(timeout=30) == 42
        assert list(ex.map(lambda x: x * base, [1, 2])) == [40, 80]


def test_unpicklable_result_fails_only_that_future(pool: PoolExecutor) -> None:
    bad = pool.submit(t.return_lock)
    good = pool.submit(echo, "fine")
    with pytest.raises(SerializationError, match="cannot pickle the result"):
        bad.result(timeout=30)
    assert good.result(timeout=30) == "fine"


def test_exception_that_does_not_round_trip_keeps_message_and_traceback(
    pool: PoolExecutor,
) -> None:
    exc = pool.submit(t.raise_needs_two_args).exception(timeout=30)
    assert exc is not None
    assert type(exc).__name__ == "NeedsTwoArgs"  # rebuilt without calling __init__
    assert "left and right" in str(exc)
    assert "raise_needs_two_args" in str(exc.__cause__)


def test_max_tasks_per_child_replaces_workers() -> None:
    with PoolExecutor(max_workers=1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(t.pid).result(timeout=30) for _ in range(6)]
    assert len(set(pids)) == 3


def test_worker_log_records_reach_the_parent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with PoolExecutor(max_workers=1) as ex:
        worker = ex.submit(t.log_warning, "disk almost full").result(timeout=30)
        ex.submit(t.log_exception).result(timeout=30)
    records = [r for r in caplog.records if r.name == "executors.tests.worker"]
    assert [r.getMessage() for r in records] == ["disk almost full", "task failed"]
    assert records[0].processName == worker
    assert "ZeroDivisionError" in (records[1].exc_text or "")


def test_workers_ignore_ctrl_c(pool: PoolExecutor) -> None:
    pids = {pool.submit(t.pid).result(timeout=30) for _ in range(4)}
    for p in pids:
        os.kill(p, signal.SIGINT)
    time.sleep(0.2)
    assert pool.submit(add, 1, 2).result(timeout=30) == 3


def test_keyboard_interrupt_during_map_leaves_nothing_behind() -> None:
    def consume() -> None:
        with PoolExecutor(max_workers=2) as ex:
            for _ in ex.map(t.sleep_then, [0.05] * 20):
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        consume()


def test_unclosed_executor_is_cleaned_up_by_gc() -> None:
    fds = _fds()
    ex = PoolExecutor(max_workers=2)
    assert ex.submit(add, 1, 1).result(timeout=30) == 2
    del ex
    gc.collect()
    deadline = time.monotonic() + 10
    while _fds() > fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fds() <= fds


def test_shutdown_without_wait_and_cancel_leaves_no_fd(tmp_path: Path) -> None:
    fds = _fds()
    ex = PoolExecutor(max_workers=2)
    flag = tmp_path / "go"
    futures = [ex.submit(t.wait_for_file, str(flag)) for _ in range(10)]
    deadline = time.monotonic() + 30
    while not any(f.running() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.01)
    ex.shutdown(wait=False, cancel_futures=True)
    assert not all(f.done() for f in futures)  # it did not wait for the running ones
    assert any(f.cancelled() for f in futures)
    flag.touch()
    ex._pool.thread.join(30)
    assert _fds() <= fds


def test_forked_workers_state_holds_no_descriptor() -> None:
    # multiprocessing's shared arrays live in arenas of its heap, each holding two
    # descriptors for good; on PyPy, which frees arrays late, a run of short-lived
    # pools kept adding arenas. A forked worker's state is an anonymous mapping instead.
    # A fresh interpreter: this one's heap may have arenas from earlier tests already.
    import subprocess
    import sys

    script = (
        "import os\n"
        "from executors.backends.pool import PoolExecutor\n"
        "pools = [PoolExecutor(max_workers=2, start_method='fork') for _ in range(4)]\n"
        "assert [p.submit(pow, 2, i).result(timeout=60) for i, p in enumerate(pools)]"
        " == [1, 2, 4, 8]\n"
        "names = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        names.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "    except OSError:\n"
        "        pass  # listdir's own descriptor, closed by now\n"
        "print(sum('pym-' in name for name in names), flush=True)\n"
        "for p in pools:\n"
        "    p.shutdown()\n"
    )
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts descriptors in /proc/self/fd (Linux)")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]


def test_map_chooses_a_chunksize(pool: PoolExecutor) -> None:
    assert pool._default_chunksize((range(1_000_000),)) == 50_000
    assert pool._default_chunksize((range(10),)) == 1
    assert list(pool.map(add, range(100_000), range(100_000))) == [2 * i for i in range(100_000)]
    assert sum(pool.map(add, iter(range(1000)))) == sum(range(1000))


def test_small_map_of_slow_tasks_uses_every_worker(pool: PoolExecutor) -> None:
    assert len(set(pool.map(_pid_after, [0.3] * 4))) == 2


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"start_method 'fork-please' is not available"):
        get_executor("pool", start_method="fork-please")
    with pytest.raises(ValueError, match=r"max_tasks_per_child must be a positive int"):
        get_executor("pool", max_tasks_per_child=0)
    with pytest.raises(ValueError, match=r"task_timeout must be a positive number"):
        get_executor("pool", task_timeout=-1)


# -- the other start methods -----------------------------------------------------------


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods_replace_a_dead_worker(method: str) -> None:
    # The conformance matrix runs on these start methods too (tests/conftest.py).
    with PoolExecutor(
        max_workers=2, start_method=method, initializer=set_worker_value, initargs=("db",)
    ) as ex:
        with pytest.raises(WorkerCrashed, match=r"SIGKILL\(-9\)"):
            ex.submit(t.kill_self).result(timeout=60)
        assert ex.submit(read_worker_value).result(timeout=60) == "db"


def test_workers_leave_when_the_parent_dies_without_shutdown(tmp_path: Path) -> None:
    import subprocess
    import sys

    psutil = pytest.importorskip("psutil", reason="psutil checks the orphaned workers")
    script = (
        "import os, sys\n"
        "from executors.backends.pool import PoolExecutor\n"
        "ex = PoolExecutor(max_workers=2)\n"
        "ex.submit(pow, 2, 2).result()\n"
        "print(*[w.pid for w in ex._pool.workers], flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
        assert time.monotonic() < deadline, f"orphaned workers {pids} still alive"
        time.sleep(0.1)


_FORK_BESIDE_A_POOL = """
import os, sys
from executors import get_executor

if __name__ == "__main__":
    with get_executor("pool", max_workers=1) as ex, get_executor("process") as one:
        assert ex.submit(abs, -1).result(timeout=60) == 1
        assert one.submit(abs, -2).result(timeout=60) == 2
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: atexit handlers run in the child
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_program_that_forks_beside_a_pool_exits_cleanly_in_the_child(tmp_path: Path) -> None:
    """The child does not try to join its parent's workers at exit (multiprocessing would)."""
    run = run_script(tmp_path, "fork_beside.py", _FORK_BESIDE_A_POOL)
    assert run.returncode == 0, run.stderr
    assert "child 0" in run.stdout
    assert "can only join a child process" not in run.stderr
    assert "Traceback" not in run.stderr  # (3.12+ warns of the fork itself: not ours)
