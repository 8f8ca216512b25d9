"""Ctrl-C and SIGKILL of a program that uses an executor, as a user would meet them.

Each case runs a small script as ``__main__`` in a child interpreter, with
``EXECUTORS_BACKEND`` set, and signals that child for real. The processes the
script started (workers, and the grandchildren their tasks started) are
collected with psutil before the signal, and must all be gone after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from executors import registry

ROOT = Path(__file__).resolve().parents[2]

PROCESS_BACKENDS = ["fork", "process", "pool", "subprocess", "remote"]

SCRIPT = textwrap.dedent(
    """
    import sys
    from executors import get_executor
    from tests.faults.fault_tasks import slow_marked

    if __name__ == "__main__":
        marker_dir, seconds, grandchild = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
        n = 8
        with get_executor(max_workers=2) as ex:
            results = list(
                ex.map(slow_marked, range(n), [marker_dir] * n, [seconds] * n, [grandchild] * n)
            )
        print("finished", results)
    """
)

#: Seconds a process may take to go away after the signal (the machine may be loaded).
GRACE = 10.0


def _params(names: list[str], *more: pytest.MarkDecorator) -> list[object]:
    params = []
    for name in names:
        reason = registry.unavailable_reason(name)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason)), *more]
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def _start(
    tmp_path: Path, backend: str, seconds: float, grandchild: bool
) -> subprocess.Popen[bytes]:
    script = tmp_path / "main.py"
    script.write_text(SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {
        **os.environ,
        "EXECUTORS_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, str(script), str(markers), str(seconds), "1" if grandchild else "0"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )


def _wait_started(proc: subprocess.Popen[bytes], markers: Path, count: int) -> list[int]:
    """Wait until *count* tasks run; the pids their markers name (workers, grandchildren)."""
    deadline = time.monotonic() + 60.0
    while len(list(markers.glob("started-*[0-9]"))) < count:
        if proc.poll() is not None:
            pytest.fail(f"the script ended early: {_output(markers.parent)}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the tasks never started")
        time.sleep(0.05)
    return [int(pid) for f in markers.glob("started-*[0-9]") for pid in f.read_text().split()]


def _output(tmp_path: Path) -> str:
    return (tmp_path / "out").read_text() + (tmp_path / "err").read_text()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes of *procs* still running after *timeout* seconds (zombies are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _cleanup(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.parametrize("backend", _params(PROCESS_BACKENDS) + _params(["thread"]))
def test_ctrl_c_during_map_stops_the_program_and_leaves_nothing(
    backend: str, tmp_path: Path
) -> None:
    # Threads cannot be stopped: the running tasks are short there, and what the
    # program must do is not start the queued ones and leave once those end.
    seconds = 3.0 if backend == "thread" else 60.0
    proc = _start(tmp_path, backend, seconds, grandchild=False)
    try:
        _wait_started(proc, tmp_path / "markers", 2)
        below = _descendants(proc.pid)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=GRACE + (seconds if backend == "thread" else 0))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script was still running {GRACE:g} s after Ctrl-C")
        took = time.monotonic() - started
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in _output(tmp_path), _output(tmp_path)
        left = _alive(below, GRACE)
        assert not left, f"left running after Ctrl-C: {left}"
        n_started = len(list((tmp_path / "markers").glob("started-*[0-9]")))
        assert n_started < 8, "Ctrl-C did not cancel the tasks that had not started"
        print(f"{backend}: exited {took:.1f} s after Ctrl-C")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", _params(PROCESS_BACKENDS))
def test_sigkill_of_the_caller_takes_every_worker_and_grandchild_within_5s(
    backend: str, tmp_path: Path
) -> None:
    proc = _start(tmp_path, backend, 60.0, grandchild=True)
    below: list[psutil.Process] = []
    try:
        pids = _wait_started(proc, tmp_path / "markers", 2)
        below = _descendants(proc.pid)
        assert set(pids) <= {p.pid for p in below}
        proc.kill()
        proc.wait()
        left = _alive(below, 5.0)
        assert not left, f"still running 5 s after the caller was killed: {left}"
    finally:
        proc.kill()
        proc.wait()
        _cleanup(below)
