"""The remote backend: master and workers over loopback, keys, lost workers, shutdown."""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.managers import BaseManager
from typing import Any, Callable

import psutil
import pytest

from executors import BrokenExecutor, InvalidOption, WorkerLost, get_executor
from executors.backends.remote import RemoteExecutor
from executors.demo import square
from tests.backends.remote_tasks import KEY, die, ident, pid_after, worker_env

Start = Callable[..., "subprocess.Popen[str]"]


def local_worker_pids(ex: RemoteExecutor, n: int, timeout: float = 10.0) -> list[int]:
    """The pids of this process's worker children, once *n* of them run."""
    deadline = time.monotonic() + timeout
    while True:
        pids = []
        for p in psutil.Process().children():
            try:
                command = " ".join(p.cmdline())
            except psutil.Error:  # killed a moment ago, a zombie until the monitor reaps it
                continue
            if "worker" in command and f"{ex.address[1]}" in command:
                pids.append(p.pid)
        if len(pids) >= n or time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def test_default_needs_no_setup_and_runs_in_other_processes() -> None:
    with get_executor("remote", max_workers=2) as ex:
        assert isinstance(ex, RemoteExecutor)
        assert ex.address[0] == "127.0.0.1"
        assert ex.address[1] > 0
        results = [ex.submit(pid_after, 0.2, i) for i in range(4)]
        pids = {pid for _, pid in (f.result(timeout=30) for f in results)}
        assert list(ex.map(square, range(10))) == [i * i for i in range(10)]
    assert os.getpid() not in pids
    assert len(pids) == 2  # two local workers ran them, side by side


def test_key_is_random_and_never_on_a_command_line() -> None:
    with get_executor("remote", max_workers=1) as ex, get_executor("remote", max_workers=1) as ex2:
        assert ex._authkey != ex2._authkey
        assert len(ex._authkey) >= 16
        for pid in local_worker_pids(ex, 1):
            assert ex._authkey.decode() not in " ".join(psutil.Process(pid).cmdline())
        assert ex.submit(square, 3).result(timeout=30) == 9


def test_spec_address_waits_for_external_workers(
    start_worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTORS_AUTHKEY", KEY)
    ex = get_executor("remote://127.0.0.1:0")
    assert isinstance(ex, RemoteExecutor)
    assert ex.max_workers is None
    future = ex.submit(pid_after, 0.0, "hello")
    time.sleep(0.2)
    assert not future.done()  # nobody is connected yet
    proc = start_worker(ex.address, "--workers", "3", "--backend", "thread")
    value, pid = future.result(timeout=30)
    assert (value, pid) == ("hello", proc.pid)
    ex.shutdown(wait=True)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err  # the master's shutdown stops the worker cleanly


def test_external_workers_need_a_long_enough_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXECUTORS_AUTHKEY", raising=False)
    with pytest.raises(InvalidOption, match=r"authkey is required.*EXECUTORS_AUTHKEY"):
        get_executor("remote://127.0.0.1:0")
    with pytest.raises(InvalidOption, match=r"5 bytes long, too short"):
        get_executor("remote://127.0.0.1:0", authkey="short")
    monkeypatch.setenv("EXECUTORS_AUTHKEY", "")
    with pytest.raises(InvalidOption, match="authkey is required"):
        get_executor("remote", address="127.0.0.1:0")


def test_wrong_key_is_rejected_at_connect_and_nothing_runs(start_worker: Start) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    future = ex.submit(square, 4)

    class Client(BaseManager):
        pass

    Client.register("get_hub")
    with pytest.raises(AuthenticationError):
        Client(ex.address, authkey=b"another-key-0123456789").connect()
    proc = start_worker(ex.address, key="another-key-0123456789")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "refused our authkey" in err
    assert not future.done()
    ex.shutdown(cancel_futures=True)
    assert future.cancelled()


def test_killed_local_worker_tasks_finish_on_another() -> None:
    with get_executor("remote", max_workers=2, max_retries=1) as ex:
        assert isinstance(ex, RemoteExecutor)
        pids = local_worker_pids(ex, 2)
        assert ex.submit(square, 2).result(timeout=30) == 4
        futures = [ex.submit(pid_after, 0.4, i) for i in range(4)]
        time.sleep(0.2)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)
        results = [f.result(timeout=30) for f in futures]
        assert [v for v, _ in results] == list(range(4))
        assert all(pid != victim for _, pid in results)  # its task ran again elsewhere
        # the dead worker was replaced: two workers serve again
        assert len(local_worker_pids(ex, 2)) == 2


def test_killed_external_worker_tasks_finish_on_another(start_worker: Start) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY, heartbeat_timeout=2.0)
    a = start_worker(ex.address, "--workers", "2", "--backend", "thread")
    b = start_worker(ex.address, "--workers", "2", "--backend", "thread")
    futures = [ex.submit(pid_after, 0.4, i) for i in range(8)]
    time.sleep(0.2)  # both have taken two
    a.kill()
    results = [f.result(timeout=30) for f in futures]
    assert [v for v, _ in results] == list(range(8))
    assert any(pid == b.pid for _, pid in results)
    ex.shutdown()
    assert b.wait(timeout=10) == 0


def test_frozen_worker_is_dropped_and_its_late_result_ignored() -> None:
    with get_executor("remote", max_workers=2, heartbeat_timeout=1.0) as ex:
        assert isinstance(ex, RemoteExecutor)
        pids = local_worker_pids(ex, 2)
        assert sorted(ex.map(ident, range(4))) == [0, 1, 2, 3]
        futures = [ex.submit(pid_after, 0.5, i) for i in range(2)]
        time.sleep(0.1)
        frozen = pids[0]
        os.kill(frozen, signal.SIGSTOP)  # alive and connected, but silent: "cut off"
        try:
            results = [f.result(timeout=30) for f in futures]
        finally:
            os.kill(frozen, signal.SIGCONT)
        assert [v for v, _ in results] == [0, 1]
        assert all(pid != frozen for _, pid in results)
        time.sleep(0.6)  # the thawed worker sends its stale result, which is dropped
        assert ex.submit(square, 5).result(timeout=30) == 25


def test_task_that_kills_every_worker_raises_worker_lost() -> None:
    with get_executor("remote", max_workers=1, max_retries=1) as ex:
        future = ex.submit(die)
        with pytest.raises(WorkerLost, match=r"lost with 2 worker.*max_retries=1"):
            future.result(timeout=30)
        assert ex.submit(square, 6).result(timeout=30) == 36  # still usable


def test_random_kills_lose_and_duplicate_nothing() -> None:
    n = 10_000
    done: list[int] = []
    finished = threading.Condition()

    def count(f: cf.Future[Any]) -> None:
        with finished:
            done.append(f.result()[0])
            finished.notify_all()

    rng = random.Random(6)
    kill_at = sorted(rng.sample(range(500, n - 1000), 4))
    with get_executor("remote", max_workers=8, local_workers=2, max_retries=50) as ex:
        assert isinstance(ex, RemoteExecutor)
        local_worker_pids(ex, 2)
        futures = [ex.submit(pid_after, 0.0002, i) for i in range(n)]
        for f in futures:
            f.add_done_callback(count)
        killed = []
        for threshold in kill_at:
            with finished:
                finished.wait_for(lambda t=threshold: len(done) >= t, timeout=30)
            victim = rng.choice(local_worker_pids(ex, 1))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        results = [f.result(timeout=30) for f in futures]
    assert [v for v, _ in results] == list(range(n))
    assert sorted(done) == list(range(n))  # each future completed once, none twice
    assert not {pid for _, pid in results[-500:]} & set(killed[:-1])
    assert len(killed) == 4


def test_master_restart_worker_reconnects(start_worker: Start, tmp_path: Any) -> None:
    script = tmp_path / "master.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        from executors.backends.remote import RemoteExecutor
        ex = RemoteExecutor(address="127.0.0.1:0", authkey={KEY!r})
        print(ex.address[1], flush=True)
        time.sleep(60)
    """)
    )
    first = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=worker_env()
    )
    try:
        assert first.stdout is not None
        port = int(first.stdout.readline())
        worker = start_worker(("127.0.0.1", port), "--retry-for", "20", "--backend", "thread")
        time.sleep(0.3)
        first.kill()  # the master vanishes without a word
    finally:
        first.communicate(timeout=10)
    time.sleep(0.3)
    assert worker.poll() is None  # still trying to reconnect
    ex = RemoteExecutor(address=f"127.0.0.1:{port}", authkey=KEY)
    try:
        assert ex.submit(pid_after, 0.0, "again").result(timeout=30) == ("again", worker.pid)
    finally:
        ex.shutdown()
    assert worker.wait(timeout=10) == 0


def test_shutdown_fails_tasks_no_worker_can_run() -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY, heartbeat_timeout=0.3)
    future = ex.submit(square, 2)
    ex.shutdown(wait=True)
    with pytest.raises(BrokenExecutor, match=r"shut down with 1 task\(s\) not run"):
        future.result(timeout=5)


def test_initializer_and_context_travel_to_external_workers(start_worker: Start) -> None:
    from executors import context
    from executors.testing import read_context, read_worker_value, set_worker_value

    ex = RemoteExecutor(
        address="127.0.0.1:0", authkey=KEY, initializer=set_worker_value, initargs=("db",)
    )
    start_worker(ex.address, "--workers", "2")
    with context.bind(user="alice"):
        user = ex.submit(read_context, "user")
    assert ex.submit(read_worker_value).result(timeout=30) == "db"
    assert user.result(timeout=30) == "alice"
    ex.shutdown()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"local_workers": 0}, "local_workers=0 without an address"),
        ({"worker_backend": "remote"}, "would start a master inside every worker"),
        ({"worker_backend": "thraed"}, "did you mean 'thread'"),
        ({"address": "localhost"}, "address must be HOST:PORT"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"heartbeat_timeout": 0}, "heartbeat_timeout must be a positive number"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises((InvalidOption, LookupError), match=message):
        get_executor("remote", authkey=KEY, **options)


def test_inline_engine_and_repr() -> None:
    with get_executor("remote", max_workers=4, local_workers=1, worker_backend="inline") as ex:
        assert "address='127.0.0.1:" in repr(ex)
        assert list(ex.map(square, range(100), chunksize=3)) == [i * i for i in range(100)]


def test_exit_without_shutdown_finishes_tasks_and_reaps_workers(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "forgetful.py"
    script.write_text(
        textwrap.dedent(f"""
        from executors import get_executor
        from executors.testing import touch
        ex = get_executor("remote", max_workers=2)
        ex.submit(touch, {str(marker)!r}, None, 0.2)
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert marker.exists()


def test_what_does_not_pickle_is_named() -> None:
    from executors import SerializationError

    with get_executor("remote", max_workers=1) as ex:
        with pytest.raises(SerializationError, match=r"cannot pickle argument 1 \(.*lock"):
            ex.submit(square, threading.Lock())
        result = ex.submit(threading.Lock)  # runs, but its result cannot travel back
        with pytest.raises(SerializationError, match="cannot pickle the result of"):
            result.result(timeout=30)
        assert ex.submit(square, 2).result(timeout=30) == 4


def test_a_task_the_worker_cannot_load_fails_alone() -> None:
    import pickle

    from executors import SerializationError
    from executors._remote.worker import execute
    from executors.serialization import unpack_exception

    ok, data = execute((b"c__main__\nno_such_function\n.", pickle.dumps(((), None, None))))
    assert not ok
    exc = unpack_exception(pickle.loads(data))
    assert isinstance(exc, SerializationError)
    assert "could not load the task" in str(exc)
    assert "importable on the worker" in str(exc)


@pytest.mark.parametrize(("engine", "slots"), [("thread", 2), ("inline", 1)])
def test_sigterm_lets_a_worker_finish_what_it_runs(
    start_worker: Start, engine: str, slots: int
) -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    proc = start_worker(ex.address, "--workers", str(slots), "--backend", engine)
    assert ex.submit(square, 2).result(timeout=30) == 4
    running = [ex.submit(pid_after, 0.5, i) for i in range(slots)]
    time.sleep(0.2)
    proc.terminate()
    assert [f.result(timeout=30) for f in running] == [(i, proc.pid) for i in range(slots)]
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    later = ex.submit(square, 3)
    time.sleep(0.2)
    assert not later.done()  # the worker has left: nobody runs it
    ex.shutdown(cancel_futures=True)


def test_local_workers_that_cannot_start_break_the_executor() -> None:
    from executors import register_backend, unregister_backend
    from executors.backends.thread import ThreadExecutor

    register_backend("only-in-the-master", ThreadExecutor)  # unknown to the workers
    try:
        ex = get_executor("remote", max_workers=1, worker_backend="only-in-the-master")
    finally:
        unregister_backend("only-in-the-master")
    future = ex.submit(square, 2)
    with pytest.raises(BrokenExecutor, match="keep exiting before connecting"):
        future.result(timeout=30)
    with pytest.raises(BrokenExecutor, match="keep exiting before connecting"):
        ex.submit(square, 3)
    ex.shutdown()
