"""The two-terminal workflow: a master here, ``python -m executors worker`` as its own process.

Each test starts real worker processes on loopback, bounds every wait, and
checks that nothing it started is left running.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import psutil
import pytest

from executors import BrokenExecutor, SerializationError
from executors._remote.hub import EAGER_BYTES
from executors._remote.worker import EXIT_CANNOT_START
from executors._validate import cpu_count
from executors.backends.remote import RemoteExecutor
from executors.demo import square
from executors.testing import _multiprocessing_helpers
from tests.backends.remote_tasks import KEY, fail_init, pids_after

Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    """After each test (and its workers' reaping), no process this test started lives on."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 15
    while True:
        kept = before | _multiprocessing_helpers()  # the resource tracker lives till exit
        left = [
            p for p in psutil.Process().children(recursive=True) if p.pid not in kept and _alive(p)
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, [p.cmdline() for p in left if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def master(**options: Any) -> RemoteExecutor:
    return RemoteExecutor(address="127.0.0.1:0", authkey=KEY, **options)


def finish(proc: subprocess.Popen[str], seen: str = "") -> tuple[int, str]:
    """Wait (bounded) for a worker to exit; its status and stderr (after *seen*)."""
    _, err = proc.communicate(timeout=30)
    return proc.returncode, seen + err


def read_until(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """The worker's stderr up to (at least) the line holding *text* (it is then past start-up).

    Reads the descriptor itself: ``select`` on it and then ``readline`` from the buffered
    stream would miss a line already taken into the stream's buffer with the one before
    it (the start-up line and the next one often arrive together under load), and wait
    the whole timeout for bytes that never come.
    """
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not logged within {timeout} s: {seen!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"the worker exited before logging {text!r}: {seen!r}"
            seen += decoder.decode(chunk)
    return seen


def test_default_engine_runs_tasks_in_processes_sized_to_the_cpus(start_worker: Start) -> None:
    ex = master()
    proc = start_worker(ex.address)
    [worker] = ex.wait_for_workers(1, timeout=60)
    assert (worker.pid, worker.backend) == (proc.pid, "pool")
    assert worker.slots == cpu_count()
    pids = [ex.submit(pids_after, 0.0) for _ in range(4)]
    children = {pid for pid, parent in (f.result(timeout=60) for f in pids)}
    assert proc.pid not in children  # run in the worker's pool processes
    assert ex.workers() == [worker]
    ex.shutdown()
    status, err = finish(proc)
    assert status == 0, err
    port = ex.address[1]
    assert "engine pool:" in err
    assert "one per CPU" in err
    assert f"connected to the master at 127.0.0.1:{port}" in err
    assert "is shutting down: stopping" in err
    assert "4 task(s) done" in err
    assert "Traceback" not in err
    assert not any(psutil.pid_exists(pid) and _alive(psutil.Process(pid)) for pid in children)


def test_thread_engine_on_request_and_workers_is_how_many_at_once(start_worker: Start) -> None:
    ex = master()
    proc = start_worker(ex.address, "--backend", "thread", "--workers", "3")
    [worker] = ex.wait_for_workers(1, timeout=60)
    assert (worker.backend, worker.slots) == ("thread", 3)
    assert ex.submit(pids_after, 0.0).result(timeout=30)[0] == proc.pid  # in the worker itself
    ex.shutdown()
    status, err = finish(proc)
    assert status == 0, err
    assert "engine thread: 3 threads" in err


def test_quiet_and_verbose(start_worker: Start) -> None:
    ex = master(prefetch=0)  # a worker holds only the task it runs
    quiet = start_worker(ex.address, "--backend", "thread", "--workers", "1", "-q")
    loud = start_worker(ex.address, "--backend", "thread", "--workers", "1", "-v")
    ex.wait_for_workers(2, timeout=60)
    # Each worker runs one task at a time, holds no more, and each task waits: both get
    # some (with quick tasks and prefetch, one worker could take all, the loud one none).
    done = [ex.submit(time.sleep, 0.2) for _ in range(10)]
    assert all(f.result(timeout=60) is None for f in done)
    ex.shutdown()
    assert finish(quiet) == (0, "")
    status, err = finish(loud)
    assert status == 0, err
    assert re.search(r"took \d+ task\(s\)", err), err  # -v: one line per batch taken


def test_keep_alive_serves_one_master_after_another(start_worker: Start) -> None:
    first = master()
    port = first.address[1]
    proc = start_worker(first.address, "--backend", "thread", "--keep-alive")
    seen = read_until(proc, "serves one master after another")
    assert first.submit(square, 2).result(timeout=60) == 4
    first.shutdown()
    time.sleep(0.5)
    assert proc.poll() is None  # waits for the next master
    second = RemoteExecutor(address=f"127.0.0.1:{port}", authkey=KEY)
    try:
        assert second.wait_for_workers(1, timeout=60)[0].pid == proc.pid
        assert second.submit(square, 3).result(timeout=60) == 9
    finally:
        second.shutdown()
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    status, err = finish(proc, seen)
    assert status == 0, err
    assert err.count(f"connected to the master at 127.0.0.1:{port}") >= 2, err


def test_master_without_workers_says_how_to_start_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="executors.remote")
    ex = master(warn_no_workers=0.2)
    try:
        ex.submit(square, 2)
        deadline = time.monotonic() + 20
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
        [record] = caplog.records
        message = record.getMessage()
        assert f"python -m executors worker 127.0.0.1:{ex.address[1]}" in message
        assert "1 task(s) waiting" in message
        assert KEY not in message
        with pytest.raises(TimeoutError, match="0 of 1 worker.*python -m executors worker"):
            ex.wait_for_workers(1, timeout=0.1)
    finally:
        ex.shutdown(cancel_futures=True)


def test_initializer_module_missing_on_the_worker_fails_the_futures(
    start_worker: Start, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "only_on_the_master.py"
    module.write_text("def setup():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from only_on_the_master import setup  # type: ignore[import-not-found]

    module.unlink()  # the worker cannot import it
    ex = master(initializer=setup)
    future = ex.submit(square, 2)
    proc = start_worker(ex.address, "--backend", "thread")
    with pytest.raises(BrokenExecutor, match="could not load the initializer.*only_on_the_master"):
        future.result(timeout=60)
    status, err = finish(proc)
    assert status == EXIT_CANNOT_START
    assert err.strip().splitlines()[-1].startswith("error: worker ")
    assert "Traceback" not in err
    ex.shutdown(cancel_futures=True)


def test_initializer_that_raises_fails_the_futures_and_the_worker_leaves(
    start_worker: Start,
) -> None:
    ex = master(initializer=fail_init)
    future = ex.submit(square, 2)
    proc = start_worker(ex.address, "--backend", "thread")
    with pytest.raises(BrokenExecutor, match="no database"):
        future.result(timeout=60)
    ex.submit(square, 3)  # the worker, broken, takes it, fails it and leaves
    status, err = finish(proc)
    assert status == EXIT_CANNOT_START
    assert "error: initializer fail_init() raised RuntimeError: no database" in err
    assert "Traceback" not in err
    ex.shutdown(cancel_futures=True)


def test_a_backlog_of_large_arguments_is_not_all_held_pickled(start_worker: Start) -> None:
    ex = master()
    data = b"x" * (4 * 1024 * 1024)
    futures = [ex.submit(len, data) for _ in range(20)]  # 80 MB of arguments, no worker yet
    assert ex._hub.held <= EAGER_BYTES + len(data) + 1024
    late = ex.submit(square, threading.Lock())  # beyond the budget: pickled on the way out
    proc = start_worker(ex.address, "--backend", "thread", "--workers", "2")
    assert [f.result(timeout=120) for f in futures] == [len(data)] * 20
    with pytest.raises(SerializationError, match=r"cannot pickle argument 1 \(.*lock"):
        late.result(timeout=60)
    assert ex._hub.held == 0
    assert ex.submit(square, 4).result(timeout=60) == 16
    ex.shutdown()
    assert finish(proc)[0] == 0


def test_arguments_pickled_on_the_way_out_use_the_executors_serializer(
    start_worker: Start,
) -> None:
    pytest.importorskip("cloudpickle")
    ex = master(serializer="cloudpickle")
    data = b"x" * (4 * 1024 * 1024)
    futures = [ex.submit(len, data) for _ in range(12)]
    late = ex.submit(len, [lambda: 1])  # beyond the budget; only cloudpickle takes a lambda
    proc = start_worker(ex.address, "--backend", "thread")
    assert late.result(timeout=120) == 1
    assert [f.result(timeout=120) for f in futures] == [len(data)] * 12
    ex.shutdown()
    assert finish(proc)[0] == 0


def test_a_keep_alive_worker_waiting_for_a_master_stops_on_sigterm(start_worker: Start) -> None:
    with socket.socket() as s:
        # Bound and never listening for the whole test: connections are refused, and
        # no other test's master can take the port meanwhile.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        proc = start_worker(("127.0.0.1", port), "--backend", "thread", "--keep-alive")
        seen = read_until(proc, f"waiting for a master at 127.0.0.1:{port}", timeout=40)
        time.sleep(0.5)
        assert proc.poll() is None  # waits for a master as long as it takes
        proc.send_signal(signal.SIGTERM)
        status, err = finish(proc, seen)
    assert status == 0, err
    assert "error" not in err


def test_a_worker_at_a_port_that_never_answers_keeps_waiting_and_says_so(
    start_worker: Start,
) -> None:
    # Something listens there (the kernel accepts) but never speaks the protocol: the
    # handshake times out and counts as "no master yet" (it waited silently for ever).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        proc = start_worker(("127.0.0.1", port), "--backend", "thread", "--keep-alive")
        seen = read_until(proc, f"waiting for a master at 127.0.0.1:{port}", timeout=45)
        proc.send_signal(signal.SIGTERM)
        status, err = finish(proc, seen)
    assert status == 0, err
    assert "Traceback" not in err


def test_workers_started_by_hand_share_the_masters_queue_lock_and_dict(
    start_worker: Start,
) -> None:
    from executors.testing import add_under_lock, consume, produce

    ex = master()
    procs = [start_worker(ex.address, "--backend", "pool", "--workers", "2") for _ in range(2)]
    ex.wait_for_workers(2, timeout=60)
    q, lock, counts = ex.Queue(), ex.Lock(), ex.dict(n=0)
    consumer = ex.submit(consume, q)
    producer = ex.submit(produce, q, list(range(50)))
    adders = [ex.submit(add_under_lock, counts, lock, "n", 25) for _ in range(4)]
    assert producer.result(timeout=60) is None
    assert consumer.result(timeout=60) == list(range(50))
    for adder in adders:
        adder.result(timeout=60)
    assert counts["n"] == 100  # no update lost: the lock is the master's
    ex.shutdown()
    for proc in procs:
        status, err = finish(proc)
        assert status == 0, err
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.Queue()


def test_a_master_shutting_down_turns_new_workers_away() -> None:
    from executors._remote.hub import Hub

    hub = Hub(None, 0, 10.0, None)
    assert "wid" in hub.register({"name": "a"})
    hub.stop()
    assert hub.register({"name": "b"}) == {"stop": True}  # a worker ends, or waits past it


def test_no_warning_when_asked_and_bad_counts_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from executors import InvalidOption

    caplog.set_level(logging.WARNING, logger="executors.remote")
    ex = master(warn_no_workers=None)
    try:
        time.sleep(0.5)
        with pytest.raises(InvalidOption, match="n must be an int >= 1"):
            ex.wait_for_workers(0)
        assert ex.workers() == []
    finally:
        ex.shutdown()
    assert not caplog.records
