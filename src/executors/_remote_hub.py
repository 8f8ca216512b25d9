"""The master's side of the remote backend: the hub workers call, and the server they reach.

:class:`Hub` is the bookkeeping (pending tasks, who holds what, when each worker
was last heard of); workers call its ``register``, ``take``, ``put`` and ``bye``
through a :mod:`multiprocessing.managers` server. :class:`Server` is that
server run on threads of the master's process, so that it can be stopped and
its threads joined, and so that a worker whose connection drops is noticed at
once. ``executors.backends.remote`` drives both; ``_remote_worker`` is the other
end of the wire.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import pickle
import queue
import secrets
import socket
import threading
import time
from multiprocessing import managers
from typing import TYPE_CHECKING, Any, Callable

from . import _remote_worker as rw
from . import serialization
from .errors import BrokenExecutor, WorkerLost

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future

__all__ = ["EXPOSED", "Hub", "HubManager", "Server", "Task"]

#: The hub methods workers may call.
EXPOSED = ("register", "take", "put", "bye")


class Task:
    """One submitted call: its future, its pickled payload, and who holds it."""

    __slots__ = ("attempts", "fn", "future", "owner", "payload", "started")

    def __init__(self, future: Future[Any], payload: bytes, fn: Callable[..., Any]) -> None:
        self.future = future
        self.payload = payload
        self.fn = fn
        self.attempts = 0
        self.owner: str | None = None
        self.started = False


class _Worker:
    """A registered worker: what it holds and when it was last heard of."""

    __slots__ = ("in_flight", "info", "last_seen", "wid")

    def __init__(self, wid: str, info: dict[str, Any]) -> None:
        self.wid = wid
        self.info = info
        self.in_flight: set[int] = set()
        self.last_seen = time.monotonic()


class Hub:
    """The master's bookkeeping; its public methods are what workers call through the proxy."""

    def __init__(self, cap: int | None, max_retries: int, heartbeat: float, init: bytes | None):
        self.cond = threading.Condition()
        self.pending: collections.deque[int] = collections.deque()
        self.tasks: dict[int, Task] = {}
        self.workers: dict[str, _Worker] = {}
        self.cap = cap
        self.running = 0
        self.max_retries = max_retries
        self.heartbeat = heartbeat
        self.init = init
        self.stopping = False
        self.ids = itertools.count()
        self.local = threading.local()  # the worker a server thread takes tasks for

    # -- called by workers (in a server thread) ---------------------------------

    def register(self, info: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            wid = info.get("previous")
            if wid not in self.workers:
                wid = secrets.token_hex(8)
                self.workers[wid] = _Worker(wid, info)
            self.workers[wid].last_seen = time.monotonic()
            self.cond.notify_all()
        return {"wid": wid, "heartbeat": self.heartbeat / 4, "init": self.init}

    def take(
        self, wid: str, n: int, timeout: float, results: Sequence[tuple[int, bool, bytes]] = ()
    ) -> tuple[str, list[tuple[int, bytes]]]:
        """Up to *n* tasks for worker *wid* (waiting up to *timeout*), after *results*."""
        self.local.wid = wid
        if results:  # what the worker finished since its last call, in the same trip
            self.put(wid, results)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                worker = self.workers.get(wid)
                if self.stopping:
                    return "stop", []
                if worker is None:
                    return "stale", []
                worker.last_seen = time.monotonic()
                free = n if self.cap is None else min(n, self.cap - self.running)
                if self.pending and free > 0:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "ok", []
                self.cond.wait(remaining)
            batch: list[tuple[int, bytes]] = []
            while self.pending and len(batch) < free:
                tid = self.pending.popleft()
                task = self.tasks.get(tid)
                if task is None:
                    continue
                if not task.started:
                    if not task.future.set_running_or_notify_cancel():
                        del self.tasks[tid]
                        continue
                    task.started = True
                task.owner = wid
                worker.in_flight.add(tid)
                batch.append((tid, task.payload))
            self.running += len(batch)
            return "ok", batch

    def put(self, wid: str, results: Sequence[tuple[int, bool, bytes]]) -> str:
        done: list[tuple[Future[Any], bool, bytes]] = []
        with self.cond:
            worker = self.workers.get(wid)
            if worker is None:
                return "stop" if self.stopping else "stale"
            worker.last_seen = time.monotonic()
            for tid, ok, data in results:
                task = self.tasks.get(tid)
                if task is None or task.owner != wid:
                    continue  # given to another worker meanwhile: that one's result counts
                del self.tasks[tid]
                worker.in_flight.discard(tid)
                done.append((task.future, ok, data))
            if done:
                self.running -= len(done)
                self.cond.notify_all()
        for future, ok, data in done:
            _settle(future, ok, data)
        return "stop" if self.stopping else "ok"

    def bye(self, wid: str) -> None:
        self.lose(wid, None)

    # -- called by the executor ---------------------------------------------------

    def lose(self, wid: str, reason: str | None) -> None:
        """Forget worker *wid*; requeue its tasks (count an attempt when *reason* is given)."""
        failed: list[tuple[Future[Any], BaseException]] = []
        with self.cond:
            worker = self.workers.pop(wid, None)
            if worker is None:
                return
            self.running -= len(worker.in_flight)
            for tid in sorted(worker.in_flight, reverse=True):
                task = self.tasks.get(tid)
                if task is None:
                    continue
                task.owner = None
                task.attempts += reason is not None
                if task.attempts > self.max_retries:
                    del self.tasks[tid]
                    failed.append((task.future, self._lost(task, worker, reason)))
                else:
                    self.pending.appendleft(tid)
            self.cond.notify_all()
        for future, exc in failed:
            future.set_exception(exc)

    def _lost(self, task: Task, worker: _Worker, reason: str | None) -> WorkerLost:
        return WorkerLost(
            f"task {serialization.describe(task.fn)} was lost with {task.attempts} worker(s), "
            f"the last one {worker.info.get('name')!r}: {reason}; gave up after "
            f"max_retries={self.max_retries} (raise it, or check what kills the workers)"
        )

    def fail_all(self, message: str) -> None:
        """Fail every task not yet finished with :class:`BrokenExecutor` (*message*)."""
        with self.cond:
            tasks = list(self.tasks.values())
            self.tasks.clear()
            self.pending.clear()
            for worker in self.workers.values():
                worker.in_flight.clear()
            self.running = 0
            self.cond.notify_all()
        for task in tasks:
            if task.started or task.future.set_running_or_notify_cancel():
                task.future.set_exception(BrokenExecutor(message))


def _settle(future: Future[Any], ok: bool, data: bytes) -> None:
    try:
        value = pickle.loads(data)
    except Exception as exc:
        future.set_exception(exc)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(serialization.unpack_exception(value))


class Server(managers.Server):
    """A manager server run on threads of this process, that can be stopped and joined."""

    listener: Any

    def __init__(self, *args: Any, hub: Hub, spare: int = 0) -> None:
        super().__init__(*args)
        self.hub = hub
        self.lock = threading.Lock()
        self.clients: dict[threading.Thread, Any] = {}
        self.closing = False
        self.stop_event = threading.Event()  # made by serve_forever(), which we do not use
        # Connections are served by handler threads started ahead of time: from 3.12 on,
        # no thread can start at interpreter exit, when the executor still finishes
        # what was submitted and its local workers may only then connect.
        self.handoff: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.handlers: list[threading.Thread] = []
        self.idle = 0
        with self.lock:
            for _ in range(spare):
                self._start_handler()

    def _start_handler(self) -> None:
        thread = threading.Thread(target=self._handle, name="executors-remote-conn", daemon=True)
        thread.start()
        self.handlers.append(thread)
        self.idle += 1

    def accepter(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except OSError:
                if self.closing:
                    return
                continue
            with self.lock:
                if self.closing:
                    conn.close()
                    return
                rw.nodelay(conn)
                if not self.idle:
                    try:
                        self._start_handler()
                    except RuntimeError:  # interpreter exit, every handler busy
                        conn.close()
                        continue
                self.idle -= 1
                self.handoff.put(conn)

    def _handle(self) -> None:
        while True:
            conn = self.handoff.get()
            if conn is None:
                return
            with self.lock:
                self.clients[threading.current_thread()] = conn
            self._serve(conn)
            with self.lock:
                self.idle += 1

    def _serve(self, conn: Any) -> None:
        try:
            self.handle_request(conn)
        except SystemExit:  # serve_client() ends with sys.exit() when the client leaves
            pass
        finally:
            conn.close()
            wid = getattr(self.hub.local, "wid", None)
            if wid is not None:
                self.hub.lose(wid, "its connection to the master was lost")
                self.hub.local.wid = None
            with self.lock:
                self.clients.pop(threading.current_thread(), None)

    def close(self, wake: tuple[str, int]) -> None:
        """Stop accepting, cut every connection, and join the threads serving them."""
        with self.lock:
            self.closing = True
            self.stop_event.set()
        with contextlib.suppress(OSError):  # wake the accepter, blocked in accept()
            socket.create_connection(wake, timeout=1.0).close()
        self.listener.close()
        with self.lock:
            clients = list(self.clients.items())
        for _, conn in clients:
            try:
                sock = socket.socket(fileno=os.dup(conn.fileno()))
            except OSError:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for _ in self.handlers:
            self.handoff.put(None)
        for thread in self.handlers:
            thread.join(5.0)


class HubManager(managers.BaseManager):
    """Gives each executor's server its own registry (``register`` is per class)."""
