"""Shared dask and Ray clusters for the test matrix: started once per test process.

Starting a LocalCluster or a local Ray costs seconds, too much for each of the
matrix's tests; so the matrix's ``dask`` and ``ray`` executors attach to one
cluster of two single-thread workers each (``$DASK_SCHEDULER_ADDRESS`` /
``$RAY_ADDRESS`` semantics). The cluster runs detached from pytest (its launcher
exits), so its worker processes are not counted as children a test left behind;
it is stopped by the pids recorded here. ``tests/backends/test_dask.py`` and
``test_ray.py`` cover the executors that start their own cluster.
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

import psutil

__all__ = ["Detached", "start_dask", "start_ray"]

BIN = Path(sys.executable).parent
# Tasks from tests/ travel by name, and dask's scheduler unpickles them too: the
# cluster's processes must be able to import them.
ROOT = str(Path(__file__).resolve().parents[1])
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}


class Detached:
    """A command started outside pytest's process tree, stopped by its process group."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        # sh starts the command in a session of its own and exits: the command is
        # then nobody's child here, and its session id names everything it starts.
        out = subprocess.run(
            ["sh", "-c", 'setsid "$@" >"$0" 2>&1 </dev/null & echo $!', str(log), *command],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.pid = int(out.stdout.strip())

    def stop(self) -> None:
        procs = [p for p in psutil.process_iter(["pid"]) if _session(p) == self.pid]
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


def _session(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except OSError:
        return None


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

    with Client(address, set_as_default=False, timeout=60) as client:
        client.wait_for_workers(workers, timeout=90)
        warm_dask(client)
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


def start_ray(cpus: int = 2) -> tuple[str, list[Detached]]:
    """A one-node Ray with *cpus* CPUs and a small object store, no dashboard."""
    tmp = Path(tempfile.mkdtemp(prefix="executors-ray-"))
    port = _free_port()
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
        ],
        tmp / "ray.log",
        # Token authentication would need the token shared through ~/.ray, which
        # other programs on this machine use too; this cluster only listens locally.
        env={**ENV, "RAY_AUTH_MODE": "disabled"},
    )
    _wait_for(lambda: "Ray runtime started" in head.log.read_text(), "ray", head)
    from ray._private.services import get_node_ip_address

    # Ray names a node by its network address, even when told 127.0.0.1.
    return f"{get_node_ip_address()}:{port}", [head]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
