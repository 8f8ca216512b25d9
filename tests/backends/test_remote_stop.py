"""The remote backend stops what it started: cancelled tasks, and workers whose master is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from executors import get_executor, run_command
from executors.demo import square
from tests.backends.remote_tasks import KEY, pid_after, worker_env

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="uses POSIX signals and process groups"
)


def sleeps_below(root: psutil.Process, timeout: float = 20.0) -> list[psutil.Process]:
    """The ``sleep`` processes below *root*, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p for p in root.children(recursive=True) if p.name() == "sleep"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def gone(procs: list[psutil.Process], within: float) -> list[psutil.Process]:
    """Those of *procs* still alive (not zombies) after *within* seconds."""
    _, alive = psutil.wait_procs(procs, timeout=within)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("engine", ["thread", "pool"])
def test_cancel_kills_a_running_command(engine: str) -> None:
    with get_executor("remote", max_workers=2, worker_backend=engine) as ex:
        future = ex.submit(run_command, ["sleep", "30"])
        (sleep,) = sleeps_below(psutil.Process())
        assert future.running()
        assert future.cancel()
        assert future.cancelled()
        assert not gone([sleep], within=5.0)
        assert ex.submit(square, 7).result(timeout=30) == 49  # the executor keeps working


def test_cancel_stops_a_plain_function_on_a_pool_engine_and_on_local_threads() -> None:
    with get_executor("remote", max_workers=1, worker_backend="pool") as ex:
        first = ex.submit(pid_after, 30)
        while not first.running():
            time.sleep(0.01)
        time.sleep(0.3)  # handed to the worker: now it runs there
        assert first.cancel()
        assert ex.submit(pid_after, 0, "next").result(timeout=30)[0] == "next"
    with get_executor("remote", max_workers=1) as ex:
        running = ex.submit(pid_after, 30, "done")
        while not running.running():
            time.sleep(0.01)
        time.sleep(0.3)  # handed to the worker: now it runs there
        start = time.monotonic()
        assert running.cancel()  # a thread cannot be stopped: its local worker is killed
        assert ex.submit(pid_after, 0, "next").result(timeout=30)[0] == "next"
    assert time.monotonic() - start < 20


def test_shutdown_cancel_futures_lets_running_commands_finish_and_terminate_stops_them() -> None:
    """cancel_futures cancels what has not started (as concurrent.futures);
    terminate_workers() is the explicit "stop everything now"."""
    ex = get_executor("remote", max_workers=2)
    futures = [ex.submit(run_command, ["sleep", "30"]) for _ in range(3)]
    deadline = time.monotonic() + 30
    sleeps = sleeps_below(psutil.Process())
    while len(sleeps) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        sleeps = sleeps_below(psutil.Process())
    assert len(sleeps) == 2
    ex.shutdown(wait=False, cancel_futures=True)
    assert futures[2].cancelled()
    assert not any(f.done() for f in futures[:2])  # running: left to finish
    start = time.monotonic()
    ex.terminate_workers()
    assert time.monotonic() - start < 10
    assert all(f.done() for f in futures)
    assert not gone(sleeps, within=5.0)


MASTER = textwrap.dedent(
    """
    import sys, time
    from executors import get_executor, run_command
    ex = get_executor("remote", max_workers=2, worker_backend=sys.argv[1])
    futures = [ex.submit(run_command, ["sleep", "60"]) for _ in range(2)]
    print("started", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("engine", ["thread", "pool"])
def test_local_workers_and_their_tasks_die_with_their_master(engine: str) -> None:
    master = subprocess.Popen(
        [sys.executable, "-c", MASTER, engine],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert master.stdout is not None
        assert master.stdout.readline() == "started\n"
        root = psutil.Process(master.pid)
        deadline = time.monotonic() + 20
        while len(sleeps_below(root)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        below = root.children(recursive=True)
        assert len([p for p in below if p.name() == "sleep"]) == 2
        master.send_signal(signal.SIGKILL)
        master.wait()
        assert not gone(below, within=5.0), "processes outlived their master"
    finally:
        if master.poll() is None:
            master.kill()
        master.communicate()


EXTERNAL_MASTER = textwrap.dedent(
    """
    import time
    from executors import get_executor, run_command
    ex = get_executor("remote", address="127.0.0.1:0", authkey=%r)
    print(ex.address[1], flush=True)
    future = ex.submit(run_command, ["sleep", "60"])
    time.sleep(60)
    """
)


def test_a_worker_that_gives_up_on_its_master_kills_its_tasks() -> None:
    env = worker_env()
    master = subprocess.Popen(
        [sys.executable, "-c", EXTERNAL_MASTER % KEY], stdout=subprocess.PIPE, text=True, env=env
    )
    worker = None
    try:
        assert master.stdout is not None
        port = int(master.stdout.readline())
        worker = subprocess.Popen(
            [sys.executable, "-m", "executors", "worker", f"127.0.0.1:{port}", "--retry-for", "1"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        (sleep,) = sleeps_below(psutil.Process(worker.pid))
        master.kill()
        master.wait()
        _, err = worker.communicate(timeout=15)
        assert worker.returncode == 4, err
        assert "lost the master" in err
        assert not gone([sleep], within=5.0)
    finally:
        for proc in (master, worker):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
