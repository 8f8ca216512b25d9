"""Shared dask and Ray clusters for the test matrix: started once per test process.

Starting a LocalCluster or a local Ray costs seconds, too much for each of the
matrix's tests; so the matrix's ``dask`` and ``ray`` executors attach to one
cluster of two single-thread workers each (``$DASK_SCHEDULER_ADDRESS`` /
``$RAY_ADDRESS`` semantics). The cluster runs detached from pytest (its launcher
exits), so its worker processes are not counted as children a test left behind.

Nothing it starts outlives the test session:

- each command runs under a guard (this file run as a script), the leader of a
  session of its own: when the pytest process that started it is gone (it ended,
  crashed, or was killed by a timeout), the guard stops every process of its session;
- :func:`stop_all` stops them at session end (tests/conftest.py), and
  :func:`leftovers` is the check that none is left.

``ray stop`` is not used: it stops every Ray of the machine, other programs' too.
``tests/backends/test_dask.py`` and ``test_ray.py`` cover the executors that start
their own cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "RAY_CLIENT",
    "Detached",
    "leftovers",
    "start_dask",
    "start_ray",
    "stop_all",
    "warm_dask",
    "warm_dask_threads",
]

BIN = Path(sys.executable).parent
# Tasks from tests/ travel by name, and dask's scheduler unpickles them too: the
# cluster's processes must be able to import them.
ROOT = str(Path(__file__).resolve().parents[1])
#: This file, run as the guard of each command (see :func:`guard`).
GUARD = str(Path(__file__).resolve())
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}


#: Every command started by this process, stopped by :func:`stop_all`.
_STARTED: list[Detached] = []


class Detached:
    """A command started outside pytest's process tree, stopped by its session."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        me = psutil.Process()
        guard = [sys.executable, GUARD, "guard", str(me.pid), repr(me.create_time()), *command]
        # sh starts the guard in a session of its own and exits: the guard is then
        # nobody's child here, and its session id names everything it starts.
        out = subprocess.run(
            ["sh", "-c", 'setsid "$@" >"$0" 2>&1 </dev/null & echo $!', str(log), *guard],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.pid = int(out.stdout.strip())
        _STARTED.append(self)

    def processes(self) -> list[psutil.Process]:
        """The live processes of the command's session (the guard included)."""
        return _session_members(self.pid)

    def stop(self) -> None:
        _terminate(self.processes())


def _session_members(sid: int, exclude: int | None = None) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter(["pid", "status"]):
        if p.pid == exclude or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getsid(p.pid) == sid:
                members.append(p)
        except OSError:
            pass
    return members


def _terminate(procs: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL what is still there after 15 s."""
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def stop_all() -> None:
    """Stop every cluster process this test process started (the session's finalizer)."""
    for proc in reversed(_STARTED):
        proc.stop()


def leftovers() -> list[psutil.Process]:
    """Processes of the sessions started here that are still alive (none, after stop_all)."""
    return [p for proc in _STARTED for p in proc.processes()]


def _owner_alive(pid: int, created: float) -> bool:
    try:
        owner = psutil.Process(pid)
        same = abs(owner.create_time() - created) < 1.0  # not a new process with a reused pid
        return same and owner.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def guard(owner: int, created: float, command: list[str]) -> int:
    """Run *command* while process *owner* lives; then stop everything in this session.

    Runs as its session's leader: whatever the command starts (a scheduler's
    workers, Ray's raylet and its workers) is in this session, whichever parent or
    process group it has; so a pytest that dies without its teardown leaves nothing.
    """
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    child = subprocess.Popen(command)
    while not stopping and child.poll() is None and _owner_alive(owner, created):
        time.sleep(0.5)
    _terminate(_session_members(os.getsid(0), exclude=os.getpid()))
    return child.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: object, what: str, proc: Detached, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{what} did not start in {timeout} s:\n{proc.log.read_text()}")
        time.sleep(0.2)


def start_dask(workers: int = 2) -> tuple[str, list[Detached]]:
    """A scheduler and *workers* single-thread worker processes on 127.0.0.1."""
    tmp = Path(tempfile.mkdtemp(prefix="executors-dask-"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = Detached(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        tmp / "scheduler.log",
        ENV,
    )
    _wait_for(lambda: _listening(port), "dask scheduler", scheduler)
    worker = Detached(
        [
            str(BIN / "dask"),
            "worker",
            address,
            "--nworkers",
            str(workers),
            "--nthreads",
            "1",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
            "--local-directory",
            str(tmp),
        ],
        tmp / "workers.log",
        ENV,
    )
    from distributed import Client

    try:
        with Client(address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(workers, timeout=90)
            warm_dask(client)
    except BaseException:
        worker.stop()
        scheduler.stop()
        raise
    return address, [worker, scheduler]


def warm_dask(client: object) -> None:
    """Start the threads dask keeps for the rest of the process (its callback and
    offload pools), so the leak check does not blame the first test that needs them."""
    import threading

    import dask

    done = threading.Event()
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 PiB"}):
        future = client.submit(len, b"x" * (11 * 1024**2), pure=False)  # type: ignore[attr-defined]
    future.add_done_callback(lambda f: done.set())
    future.result()
    done.wait(30)


def warm_dask_threads() -> None:
    """Start the two threads dask keeps for the rest of the process without a cluster
    (its offload pool, and the pool that runs future callbacks): as :func:`warm_dask`."""
    from concurrent.futures import ThreadPoolExecutor

    from distributed import client, utils

    utils._offload_executor.submit(int).result()
    future = client.Future
    if future._cb_executor is None or future._cb_executor_pid != os.getpid():
        future._cb_executor = ThreadPoolExecutor(1, thread_name_prefix="Dask-Callback-Thread")
        future._cb_executor_pid = os.getpid()
    future._cb_executor.submit(int).result()


#: The Ray Client address (``host:port``, for ``ray://``) of each Ray started here, by
#: its cluster address.
RAY_CLIENT: dict[str, str] = {}


def start_ray(cpus: int = 2) -> tuple[str, list[Detached]]:
    """A one-node Ray with *cpus* CPUs and a small object store, no dashboard; its Ray
    Client server on a free port (not 10001: each pytest worker starts a Ray)."""
    tmp = Path(tempfile.mkdtemp(prefix="executors-ray-"))
    port, client_port = _free_port(), _free_port()
    head = Detached(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            "--include-dashboard=false",
            f"--object-store-memory={300 * 1024**2}",
            "--disable-usage-stats",
            f"--ray-client-server-port={client_port}",
        ],
        tmp / "ray.log",
        # Token authentication would need the token shared through ~/.ray, which
        # other programs on this machine use too; this cluster only listens locally.
        env={**ENV, "RAY_AUTH_MODE": "disabled"},
    )
    _wait_for(lambda: "Ray runtime started" in head.log.read_text(), "ray", head)
    from ray._private.services import get_node_ip_address

    # Ray names a node by its network address, even when told 127.0.0.1.
    address = f"{get_node_ip_address()}:{port}"
    RAY_CLIENT[address] = f"127.0.0.1:{client_port}"
    return address, [head]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["guard"] or len(sys.argv) < 5:
        sys.exit(f"usage: {sys.argv[0]} guard OWNER_PID OWNER_CREATE_TIME COMMAND...")
    sys.exit(guard(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))


def stop_sharing(executor: Any) -> None:
    """Stop the manager serving *executor*'s shared objects now: it is a child of this
    process (the leak check runs after each test), and a later test starts another."""
    executor._close_shared()
    del executor._sharing_state
