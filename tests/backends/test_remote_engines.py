"""The remote backend: prefetch and its fairness, task_timeout, and the pool as a worker's engine."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest

from executors import TaskTimeout, WorkerCrashed, get_executor, with_timeout
from executors.backends.remote import RemoteExecutor
from executors.demo import square
from executors.testing import touch
from tests.backends.remote_tasks import KEY, die, ident, kill_self, pid_after, pids_after

Start = Callable[..., "subprocess.Popen[str]"]


def _hub_with_workers(*names: str) -> tuple[RemoteExecutor, list[str]]:
    """An executor no real worker can reach, with fake workers registered on its hub."""
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    wids = [ex._hub.register({"name": name})["wid"] for name in names]
    for wid in wids:  # each says it runs one task at a time; nothing is pending yet
        assert ex._hub.take(wid, (1, 0, 1), 0.0) == ("ok", [])
    return ex, wids


def _stop_fakes(ex: RemoteExecutor, wids: list[str]) -> None:
    ex._hub.fail_all("the test is over")  # no fake worker will send a result
    for wid in wids:
        ex._hub.bye(wid)
    ex.shutdown(wait=True)


# -- prefetch ---------------------------------------------------------------------------


def test_prefetch_leaves_enough_for_idle_workers() -> None:
    ex, (a, b) = _hub_with_workers("a", "b")
    hub = ex._hub
    futures = [ex.submit(square, i) for i in range(4)]
    # a may hold up to 63 beyond the one it runs, but b is idle: a gets one to run
    # and half of what b's free slot leaves over, b the rest.
    _, got_a = hub.take(a, (1, 63, 1), 0.0)
    _, got_b = hub.take(b, (1, 63, 1), 0.0)
    assert [len(got_a), len(got_b)] == [2, 2]
    many = [ex.submit(square, i) for i in range(200)]
    _, more = hub.take(a, (0, 62, 1), 0.0)
    assert len(more) == 62  # plenty pending: a full prefetch window
    _stop_fakes(ex, [a, b])
    assert all(f.done() for f in futures + many)


def test_a_lost_workers_prefetched_tasks_go_back_without_an_attempt() -> None:
    ex, (a, b) = _hub_with_workers("a", "b")
    hub = ex._hub
    futures = [ex.submit(square, i) for i in range(10)]
    _, got = hub.take(a, (1, 9, 1), 0.0)
    ran, waited = got[0][0], [tid for tid, _ in got[1:]]
    assert waited  # a prefetched some
    hub.lose(a, "it was killed")
    assert hub.tasks[ran].attempts == 1  # it may have been running: an attempt
    assert all(hub.tasks[t].attempts == 0 and hub.tasks[t].suspect for t in waited)
    assert list(hub.pending)[: len(got)] == [ran, *waited]  # back at the head, in order
    # A suspect starts at once or not at all: b gets the first to run and prefetches no
    # suspect behind it.
    _, got_b = hub.take(b, (1, 9, 1), 0.0)
    assert [tid for tid, _ in got_b] == [ran]
    _, got_b = hub.take(b, (1, 9, 1), 0.0)
    assert [tid for tid, _ in got_b] == [waited[0]]
    assert not hub.tasks[waited[0]].suspect
    # Results count only from the worker that holds the task, once.
    hub.put(b, [(ran, True, b"\x80\x05K\x07.")])
    assert futures[ran].result(timeout=5) == 7
    _stop_fakes(ex, [a, b])


def test_a_few_slow_tasks_use_every_worker_after_fast_ones() -> None:
    with get_executor("remote", max_workers=2) as ex:
        assert isinstance(ex, RemoteExecutor)
        deadline = time.monotonic() + 20
        while len(ex._hub.workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # both workers connected
        fs = [ex.submit(ident, i) for i in range(500)]  # workers learn tasks are tiny
        assert [f.result(timeout=30) for f in fs] == list(range(500))
        assert len({pid for _, pid in ex.map(pid_after, [0.3] * 4)}) == 2


# -- task_timeout -----------------------------------------------------------------------


def test_timeout_kills_and_replaces_a_local_worker_running_only_that_task() -> None:
    with get_executor("remote", max_workers=1, task_timeout=0.5) as ex:
        assert isinstance(ex, RemoteExecutor)
        first = ex.submit(pid_after, 0.0).result(timeout=30)[1]
        future = ex.submit(time.sleep, 30)
        with pytest.raises(TaskTimeout, match=r"time\.sleep.*task_timeout=0\.5s.*killed and is"):
            future.result(timeout=20)
        _, pid = ex.submit(pid_after, 0.0).result(timeout=30)  # usable, on a new worker
        assert pid != first
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"


def test_timeout_on_threads_drops_the_late_result(start_worker: Start) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY, task_timeout=0.3)
    proc = start_worker(
        ex.address, "--workers", "2", "--backend", "thread"
    )  # not ours to kill: its thread runs on
    slow = ex.submit(pid_after, 1.0, "late")
    with pytest.raises(TaskTimeout, match=r"task_timeout=0\.3s; it runs on in a thread"):
        slow.result(timeout=20)
    assert ex.submit(square, 3).result(timeout=30) == 9  # the other thread serves
    time.sleep(1.0)  # the late result arrives, and is dropped
    assert isinstance(slow.exception(), TaskTimeout)
    ex.shutdown()
    assert proc.wait(timeout=10) == 0


def test_timeout_covers_a_worker_that_hangs(start_worker: Start) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY, task_timeout=0.5)
    proc = start_worker(ex.address, "--workers", "2")
    assert ex.submit(square, 2).result(timeout=30) == 4
    future = ex.submit(pid_after, 0.3)
    deadline = time.monotonic() + 20
    while not future.running() and time.monotonic() < deadline:
        time.sleep(0.01)  # handed out: the master's clock runs
    os.kill(proc.pid, signal.SIGSTOP)  # frozen (heartbeats are 10 s apart): only the clock
    try:
        with pytest.raises(TaskTimeout, match=r"task_timeout=0\.5s"):
            future.result(timeout=20)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert ex.submit(square, 5).result(timeout=30) == 25
    ex.shutdown()
    assert proc.wait(timeout=10) == 0


def test_timeout_with_the_pool_engine_kills_the_task() -> None:
    # the next task's clock starts when it is handed out, before the pool engine has
    # replaced its process: leave that start time to spare on a loaded machine
    with get_executor("remote", max_workers=1, worker_backend="pool", task_timeout=2.0) as ex:
        future = ex.submit(time.sleep, 30)
        with pytest.raises(TaskTimeout, match=r"task_timeout=2s"):
            future.result(timeout=20)
        # The one pool process that slept was killed and replaced: the slot is free.
        assert ex.submit(square, 4).result(timeout=20) == 16


def test_with_timeout_on_the_pool_engine_kills_the_task(tmp_path: Path) -> None:
    # One task's own deadline reaches the worker's engine, which kills it as it would
    # under task_timeout (the file the task would write late never appears).
    late = tmp_path / "late"
    with get_executor("remote", max_workers=1, worker_backend="pool") as ex:
        future = ex.submit(with_timeout(1.0)(touch), str(late), "x", 3.0)
        # The master's deadline or the worker engine's (which starts later) may fire first:
        # either kills it, and either names the task.
        with pytest.raises(
            TaskTimeout,
            match=r"touch\(\) ran longer than task_timeout=1s; worker .* (kills it|was killed)",
        ):
            future.result(timeout=20)
        assert ex.submit(square, 4).result(timeout=20) == 16
        time.sleep(3.0)
        assert not late.exists()


def test_task_timeout_is_checked() -> None:
    from executors import InvalidOption

    with pytest.raises(InvalidOption, match="task_timeout must be a positive number"):
        get_executor("remote", task_timeout=-1)
    with pytest.raises(InvalidOption, match="prefetch must be an int >= 0"):
        get_executor("remote", prefetch=-1)


# -- the pool as a worker's engine ------------------------------------------------------


def test_pool_engine_runs_tasks_in_its_own_processes() -> None:
    with get_executor("remote", max_workers=2, local_workers=1, worker_backend="pool") as ex:
        assert list(ex.map(square, range(20))) == [i * i for i in range(20)]
        pairs = {ex.submit(pids_after, 0.2).result(timeout=30) for _ in range(2)}
        remote_workers = {parent for _, parent in pairs}
        assert len(remote_workers) == 1  # one remote worker...
        assert not remote_workers & {pid for pid, _ in pairs}  # ...its pool ran them


@pytest.mark.parametrize("task", [die, kill_self], ids=["os._exit", "SIGKILL"])
def test_a_task_that_kills_its_pool_process_fails_alone(task: Callable[[], None]) -> None:
    with get_executor("remote", max_workers=2, local_workers=1, worker_backend="pool") as ex:
        _, worker = ex.submit(pids_after, 0.0).result(timeout=30)
        with pytest.raises(WorkerCrashed, match=r"worker \d+ .*(exit|SIGKILL)"):
            ex.submit(task).result(timeout=30)
        _, still = ex.submit(pids_after, 0.0).result(timeout=30)
        assert still == worker  # the remote worker kept serving; its pool replaced the process
        assert ex.submit(square, 7).result(timeout=30) == 49


def test_external_pool_worker_leaves_nothing_running(start_worker: Start) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    proc = start_worker(ex.address, "--backend", "pool", "--workers", "2")
    assert sorted(ex.map(square, range(10))) == [i * i for i in range(10)]
    pool = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert len(pool) >= 2
    with pytest.raises(WorkerCrashed):
        ex.submit(die).result(timeout=30)
    assert ex.submit(square, 3).result(timeout=30) == 9
    pool += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    ex.shutdown()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    deadline = time.monotonic() + 5
    while any(psutil.pid_exists(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pool if psutil.pid_exists(pid)]
