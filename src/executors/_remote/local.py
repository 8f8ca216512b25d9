"""Local workers: the worker processes a master starts on its own machine, restarts and reaps.

Each runs ``python -m executors worker HOST:PORT --parent-pid PID`` in a session
of its own (Ctrl-C in the terminal reaches the master only, which then stops
them in order). The master's monitor thread calls :meth:`LocalWorkers.check`
to restart one that died; three that exit before connecting break the executor.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from .. import command
from .._proc.exits import signal_name
from .wire import AUTHKEY_ENV, LOG_LEVEL_ENV, NAME_ENV

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["LocalWorkers", "kill_local"]


class LocalWorkers:
    """The worker processes started here, by name; only the master's threads use it.

    :meth:`spawn` runs in the constructor of the executor, then only in its
    monitor thread, as do :meth:`check` and :meth:`reap`; :meth:`kill` also runs
    in a caller's thread that cancels a task (it only reads ``procs``).
    """

    def __init__(self, hub: Hub, authkey: bytes, engine: str) -> None:
        self.hub, self.authkey, self.engine = hub, authkey, engine
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.failed_starts = 0
        hub.kill_local = self.kill_if_local  # cancel() of a task a thread cannot stop

    def __bool__(self) -> bool:
        return bool(self.procs)

    def spawn(self, slots: int, where: tuple[str, int]) -> None:
        """Start a worker with *slots* task slots that connects to the master at *where*."""
        name = f"local-{secrets.token_hex(4)}"
        env = dict(os.environ)  # the worker adjusts it (see executors._env)
        env[LOG_LEVEL_ENV] = str(logging.getLogger().getEffectiveLevel())
        env[AUTHKEY_ENV] = os.fsdecode(self.authkey)
        env[NAME_ENV] = name
        env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
        host, port = where
        # One task at a time on threads is one task at a time in the worker's main
        # thread (as in a multiprocessing.Pool worker), minus a thread hop per task.
        engine = "inline" if slots == 1 and self.engine == "thread" else self.engine
        argv = [
            sys.executable,
            "-m",
            "executors",
            "worker",
            f"{host}:{port}",
            "--workers",
            str(slots),
            "--backend",
            engine,
            "--retry-for",
            "3",
            "--parent-pid",
            str(os.getpid()),
            "-q",  # the master's terminal gets their warnings and errors only
        ]
        # A session of their own: Ctrl-C in the terminal reaches the master only,
        # which then stops its workers in order.
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = (proc, slots)

    def check(self, where: tuple[str, int]) -> str | None:
        """Restart the workers that exited (losing their tasks to the hub).

        :returns: why the executor must break (they keep exiting before they
            connect), or None.
        """
        for name, (proc, slots) in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            command.kill_group(proc.pid)  # it leads its session: what its tasks started
            how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with {code}"
            wids = [w for w, info in self._worker_infos() if info.get("name") == name]
            with self.hub.cond:
                connected = name in self.hub.seen
                self.hub.seen.discard(name)
            if not connected and code > 0:  # it gave up on its own before connecting
                self.failed_starts += 1
            else:  # a task that exits ends a worker that had connected: no failed start
                self.failed_starts = 0
            for wid in wids:
                with self.hub.cond:
                    worker = self.hub.workers.get(wid)
                    doomed = worker is not None and worker.doomed  # killed on purpose
                self.hub.lose(wid, None if doomed else f"local worker process {proc.pid} {how}")
            if self.failed_starts >= 3:
                return (
                    f"local worker processes keep exiting before connecting (the last, "
                    f"{proc.pid}, {how}); see their error output above"
                )
            self.spawn(slots, where)
        return None

    def is_local(self, info: dict[str, Any]) -> bool:
        """Whether the worker that registered with *info* is one of ours."""
        return info.get("name") in self.procs

    def kill(self, wid: str) -> None:
        """Kill the local worker *wid* (stuck in a task its engine cannot stop)."""
        with self.hub.cond:
            worker = self.hub.workers.get(wid)
            entry = self.procs.get(str(worker.info.get("name"))) if worker else None
        if entry is not None:
            kill_local(entry[0])  # the monitor sees it exit, and starts another

    def kill_if_local(self, wid: str, info: dict[str, Any]) -> bool:
        """Kill worker *wid* if it is one of ours; whether it was."""
        if not self.is_local(info):
            return False
        self.kill(wid)
        return True

    def reap(self, within: float) -> None:
        """Wait up to *within* seconds for the workers to leave; kill those that do not."""
        deadline = time.monotonic() + within
        for proc, _ in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                kill_local(proc)
                proc.wait()
        self.procs.clear()

    def _worker_infos(self) -> list[tuple[str, dict[str, Any]]]:
        with self.hub.cond:
            return [(w.wid, w.info) for w in self.hub.workers.values()]


def kill_local(proc: subprocess.Popen[bytes]) -> None:
    """Kill a local worker with everything it runs (commands in sessions of their own too)."""
    below = command.descendants(proc.pid)
    proc.kill()
    command.kill_tree(below)
