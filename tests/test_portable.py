"""The portable fallbacks of Linux-only calls, forced on Linux with ``EXECUTORS_PORTABLE=1``.

``memfd_create`` (a subprocess worker's shared state), ``pidfd_open`` (its exit)
and ``/proc`` (the processes below a worker) each have a fallback for macOS and
the BSDs; here the Linux calls are made to fail loudly if used, so the tests
prove the fallbacks carry the same behaviour.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from executors import TaskTimeout, WorkerCrashed, get_executor, run_command
from executors import command as command_module
from executors._runtime import LINUX_ONLY, linux_only


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTORS_PORTABLE", "1")

    def forbidden(*args: object) -> None:
        raise AssertionError("a Linux-only call was made with EXECUTORS_PORTABLE=1")

    for name in ("memfd_create", "pidfd_open"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, forbidden)


def test_the_switch_covers_each_facility(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXECUTORS_PORTABLE", raising=False)
    assert all(linux_only(f) for f in LINUX_ONLY)
    monkeypatch.setenv("EXECUTORS_PORTABLE", "1")
    assert not any(linux_only(f) for f in LINUX_ONLY)
    with pytest.raises(ValueError, match="facility must be one of"):
        linux_only("epoll")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="compares with Linux's /proc")
def test_descendants_from_ps_are_those_from_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(command_module.descendants(tree.pid)) < 2:
            assert time.monotonic() < deadline, "the shell did not start its two sleeps"
            time.sleep(0.02)
        from_proc = command_module.descendants(tree.pid)
        monkeypatch.setenv("EXECUTORS_PORTABLE", "1")
        assert command_module._parents_from_proc() is None
        assert sorted(command_module.descendants(tree.pid)) == sorted(from_proc)
        procs = [psutil.Process(pid) for pid in from_proc]
        command_module.kill_process_tree(tree.pid)
        tree.wait(timeout=10)
        _, alive = psutil.wait_procs(procs, timeout=10)
        assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive)
    finally:
        if tree.poll() is None:
            tree.kill()
            tree.wait()


@pytest.mark.usefixtures("portable")
def test_subprocess_workers_without_memfd_and_pidfd() -> None:
    with get_executor("subprocess", max_workers=1) as ex:
        assert ex.submit(pow, 2, 10).result(timeout=60) == 1024
        data = os.urandom(3 << 20)
        assert ex.submit(bytes, data).result(timeout=60) == data
        with pytest.raises(WorkerCrashed, match="exited with code 3"):
            ex.submit(os._exit, 3).result(timeout=60)
        assert ex.submit(pow, 3, 3).result(timeout=60) == 27  # a new worker took over


@pytest.mark.usefixtures("portable")
@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_timed_out_task_takes_its_commands_along_without_proc() -> None:
    marker = f"{40 + os.getpid() % 1000 / 1000:.3f}"
    with get_executor("pool", max_workers=1, task_timeout=1.0) as ex:
        with pytest.raises(TaskTimeout):
            ex.submit(run_command, ["sleep", marker]).result(timeout=60)
        assert ex.submit(pow, 2, 4).result(timeout=60) == 16
    sleeps = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]
    _, alive = psutil.wait_procs(sleeps, timeout=5)
    assert not alive
