"""The master's side of the remote backend: the hub workers call, and the server they reach.

:class:`Hub` is the bookkeeping (pending tasks, who holds what, when each worker
was last heard of); workers call its ``register``, ``take``, ``put`` and ``bye``
through a :mod:`multiprocessing.managers` server. :class:`Server` is that
server run on threads of the master's process, so that it can be stopped and
its threads joined, and so that a worker whose connection drops is noticed at
once. ``executors.backends.remote`` drives both; :mod:`executors._remote.worker` is
the other end of the wire.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import math
import os
import pickle
import queue
import secrets
import socket
import threading
import time
from multiprocessing import managers
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .. import serialization
from .._futures import LazyFuture, LeanFuture
from .._proc.logs import replay_log
from ..errors import BrokenExecutor, TaskTimeout, WorkerLost
from .wire import LOG_TID, Payload, is_command, nodelay

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future

__all__ = ["EAGER_BYTES", "EXPOSED", "Hub", "HubManager", "Server", "Task", "listen"]

#: The hub methods workers may call.
EXPOSED = ("register", "take", "put", "bye", "watch")
#: Submitted arguments are pickled at once while the master holds less than this
#: many bytes of them (so an unpicklable argument fails in submit()); beyond it,
#: a task keeps its arguments and they are pickled when a worker takes it.
EAGER_BYTES = 32 * 1024 * 1024


class Task(LazyFuture[Any]):
    """One submitted call: the future the caller holds, its pickled parts, and who holds it.

    ``prefetched``: handed out beyond its worker's free slots, to wait there
    behind running tasks; when that worker is lost the task may never have
    started, so it goes back without counting an attempt, as a ``suspect``
    that is then only handed out to start at once (never prefetched again).

    ``call_data`` is the pickled ``(args, kwargs, context)``, or ``b""`` when the
    master held :data:`EAGER_BYTES` already at submit: ``call`` then keeps them,
    to pickle when a worker takes the task.
    """

    # Defaults on the class: a task costs three attribute writes, not nine.
    attempts = 0
    owner: str | None = None
    started = False
    prefetched = False
    suspect = False
    deadline: float | None = None  # with a timeout: when it runs out
    timeout: float | None = None  # its task_timeout, or its own (executors.with_timeout)
    call: tuple[Any, ...] | None = None  # (args, kwargs, context) not pickled yet
    hub: ClassVar[Hub | None] = None  # set on each hub's subclass (Hub.task_class)

    def __init__(self, fn_data: bytes, call_data: bytes, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn_data = fn_data
        self.call_data = call_data
        self.fn = fn

    def cancel(self) -> bool:
        """Cancel the task; one a worker runs is stopped there where its engine can.

        Pool, process and fork engines kill and replace the process running it;
        command tasks have their process group killed on any engine; a local
        worker is killed and replaced by the master. A plain function running on
        the threads of a worker started elsewhere cannot be stopped: False then.
        """
        if super().cancel():
            return True
        hub = self.hub
        return hub is not None and self.running() and hub.cancel_running(self)


class _Worker:
    """A registered worker: what it holds and when it was last heard of."""

    __slots__ = ("cancels", "doomed", "in_flight", "info", "last_seen", "slots", "wid")

    def __init__(self, wid: str, info: dict[str, Any]) -> None:
        self.wid = wid
        self.info = info
        self.in_flight: set[int] = set()
        self.last_seen = time.monotonic()
        self.slots = 0  # tasks it runs at once, as its last take said
        self.doomed = False  # about to be killed (a timed-out task it cannot stop)
        self.cancels: list[int] = []  # tasks it runs that the caller cancelled


class Hub:
    """The master's bookkeeping; its public methods are what workers call through the proxy."""

    def __init__(
        self,
        cap: int | None,
        max_retries: int,
        heartbeat: float,
        init: bytes | None,
        *,
        prefetch: int = 0,
        task_timeout: float | None = None,
        dump_call: Callable[[Any], bytes] | None = None,
    ) -> None:
        # Held (through the conditions below, which share it) while mutating pending,
        # tasks, workers, running, stopping and each task's owner, attempts and flags.
        self.lock = threading.RLock()
        # Takers with a free slot wait on ``cond``, the rest (prefetch only) on
        # ``cond_ahead``: submit wakes one taker, preferring one that runs the task at
        # once; everything else that changes what a taker gets calls wake_all().
        self.cond = threading.Condition(self.lock)
        self.cond_ahead = threading.Condition(self.lock)
        self.waiting = [0, 0]  # takers waiting on cond, on cond_ahead
        self.cond_cancel = threading.Condition(self.lock)  # workers' watch() waits here
        self.cond_workers = threading.Condition(self.lock)  # wait_for_workers() waits here
        #: Bytes of pickled arguments held by tasks not yet done (see EAGER_BYTES).
        self.held = 0
        #: Pickles a task's ``(args, kwargs, context)`` on the way out (the executor's serializer).
        self.dump_call = dump_call or functools.partial(pickle.dumps, protocol=5)
        #: The future class :meth:`RemoteExecutor.submit` makes: cancel() reaches this hub.
        self.task_class: type[Task] = type("Task", (Task,), {"hub": self})
        self.pending: collections.deque[int] = collections.deque()
        self.tasks: dict[int, Task] = {}
        self.workers: dict[str, _Worker] = {}
        #: Names of every worker that ever registered (a local worker that connected
        #: and then died is a lost worker, not one that failed to start).
        self.seen: set[str] = set()
        self.cap = cap
        self.running = 0
        self.max_retries = max_retries
        self.heartbeat = heartbeat
        self.init = init
        # The master must know when each task starts to time it, so no prefetch then.
        self.prefetch = 0 if task_timeout is not None else prefetch
        self.task_timeout = task_timeout
        #: A task has had a timeout (task_timeout, or its own): expire() looks for overruns.
        self.timed = task_timeout is not None
        self.stopping = False
        self.ids = itertools.count()
        self.local = threading.local()  # the worker a server thread takes tasks for
        #: Set by the executor: kills worker *wid* if it is a local one (True then).
        self.kill_local: Callable[[str, dict[str, Any]], bool] | None = None

    # -- called by workers (in a server thread) ---------------------------------

    def register(self, info: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            if self.stopping:  # shutting down: a worker (--keep-alive) waits for the next
                return {"stop": True}
            wid = info.get("previous")
            if wid not in self.workers:
                wid = secrets.token_hex(8)
                self.workers[wid] = _Worker(wid, info)
                self.seen.add(str(info.get("name")))
            self.workers[wid].last_seen = time.monotonic()
            self.wake_all()
            self.cond_workers.notify_all()
        return {
            "wid": wid,
            "heartbeat": self.heartbeat / 4,
            "init": self.init,
            "prefetch": self.prefetch,
            "task_timeout": self.task_timeout,
        }

    def take(
        self,
        wid: str,
        need: tuple[int, int, int],
        timeout: float,
        results: Sequence[tuple[int, bool, bytes]] = (),
    ) -> tuple[str, list[tuple[int, Payload]]]:
        """Tasks for worker *wid* (waiting up to *timeout*), after its *results*.

        *need* is ``(free, room, slots)``: up to *free* tasks start at once on the
        worker (it runs *slots* at a time); up to *room* more may wait there
        behind them (prefetch).
        """
        free, room, slots = need
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
                worker.slots = slots
                run, ahead = self._share(worker, free, room)
                if run or ahead:
                    batch = self._hand_out(worker, run, ahead)
                    if batch:
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "ok", []
                kind = 0 if free > 0 and not worker.doomed else 1
                self.waiting[kind] += 1
                try:
                    (self.cond, self.cond_ahead)[kind].wait(remaining)
                finally:
                    self.waiting[kind] -= 1
        return "ok", self._pickle_calls(wid, batch)

    def _pickle_calls(
        self, wid: str, batch: list[tuple[int, Payload]]
    ) -> list[tuple[int, Payload]]:
        """Pickle the arguments of the tasks in *batch* that kept them (outside the lock).

        A task whose arguments do not pickle fails alone, with the error submit()
        gives when it pickles them at once.
        """
        if all(call_data for _, (_, call_data) in batch):
            return batch
        out: list[tuple[int, Payload]] = []
        for tid, (fn_data, call_data) in batch:
            task = self.tasks.get(tid)
            call = task.call if task is not None else None
            if call_data or task is None or call is None:
                out.append((tid, (fn_data, call_data)))
                continue
            try:
                out.append((tid, (fn_data, self.dump_call(call))))
            except Exception as exc:
                self._unpicklable(wid, tid, task, exc)
        return out

    def _unpicklable(self, wid: str, tid: int, task: Task, exc: Exception) -> None:
        args, kwargs, values = task.call or ((), None, None)
        parts = {
            "the function": task.fn,
            **{f"argument {i + 1}": a for i, a in enumerate(args)},
            **{f"keyword argument {k!r}": v for k, v in (kwargs or {}).items()},
        }
        error: BaseException = exc
        try:
            serialization.dumps((args, kwargs, values), what="the task", parts=parts)
        except Exception as described:
            error = described
        with self.lock:
            worker = self.workers.get(wid)
            if self.tasks.get(tid) is not task:
                return
            del self.tasks[tid]
            self.drop_call(task)
            if worker is not None and tid in worker.in_flight:
                worker.in_flight.discard(tid)
                self.running -= 1
        task.set_exception(error)

    def watch(self, wid: str, timeout: float) -> tuple[str, list[int]]:
        """The tasks worker *wid* runs that were cancelled since it last asked (waits *timeout*)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                worker = self.workers.get(wid)
                if worker is not None and worker.cancels:  # even when stopping: stop them
                    tids, worker.cancels = worker.cancels, []
                    return "stop" if self.stopping else "ok", tids
                if self.stopping:
                    return "stop", []
                if worker is None:
                    return "stale", []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "ok", []
                self.cond_cancel.wait(remaining)

    def wake(self) -> None:
        """A task was queued: wake one waiting taker (call holding the lock)."""
        if self.waiting[0]:
            self.cond.notify()
        elif self.waiting[1]:
            self.cond_ahead.notify()

    def wake_all(self) -> None:
        """Wake every waiting taker (call holding the lock)."""
        self.cond.notify_all()
        self.cond_ahead.notify_all()

    def stop(self) -> None:
        """Tell every worker to stop: at its next take, and its watch at once."""
        with self.cond:
            self.stopping = True
            self.wake_all()
            self.cond_cancel.notify_all()

    def _share(self, worker: _Worker, free: int, room: int) -> tuple[int, int]:
        """How many pending tasks *worker* gets to start at once, and to prefetch.

        Prefetch is given only where worker slots enforce the cap, and only out of
        what idle slots of other workers will not take: a few slow tasks spread
        over every worker rather than queue behind one.
        """
        waiting = len(self.pending)
        if not waiting or worker.doomed:
            return 0, 0
        run = min(free, waiting)
        if self.cap is not None and sum(w.slots for w in self.workers.values()) > self.cap:
            return max(0, min(run, self.cap - self.running)), 0
        if room <= 0 or not self.prefetch:
            return run, 0
        idle = sum(
            max(0, w.slots - len(w.in_flight))
            for w in self.workers.values()
            if w is not worker and not w.doomed
        )
        share = -(-max(0, waiting - run - idle) // len(self.workers))  # ceiling
        return run, min(room, share)

    def _hand_out(self, worker: _Worker, run: int, ahead: int) -> list[tuple[int, Payload]]:
        batch: list[tuple[int, Payload]] = []
        now = time.monotonic()
        while self.pending and len(batch) < run + ahead:
            tid = self.pending[0]
            task = self.tasks.get(tid)
            prefetch = len(batch) >= run
            if task is not None and prefetch and (task.suspect or task.timeout is not None):
                # A suspect may be what killed a worker; a task with its own timeout is
                # timed from its start: either starts at once, or not at all.
                break
            self.pending.popleft()
            if task is None:
                continue
            if not task.started:
                if not task._set_running():
                    del self.tasks[tid]
                    self.drop_call(task)
                    continue
                task.started = True
            task.owner = worker.wid
            task.prefetched = prefetch
            task.suspect = task.suspect and prefetch
            if task.timeout is not None:
                task.deadline = now + task.timeout
            worker.in_flight.add(tid)
            batch.append((tid, (task.fn_data, task.call_data)))
        self.running += len(batch)
        return batch

    def put(self, wid: str, results: Sequence[tuple[int, bool, bytes]]) -> str:
        done: list[tuple[LeanFuture[Any], bool, bytes]] = []
        logs: list[bytes] = []
        with self.lock:
            worker = self.workers.get(wid)
            if worker is None:
                return "stop" if self.stopping else "stale"
            worker.last_seen = time.monotonic()
            for tid, ok, data in results:
                if tid == LOG_TID:  # a record a local worker's task logged
                    logs.append(data)
                    continue
                task = self.tasks.get(tid)
                if task is None or task.owner != wid:
                    continue  # given to another worker meanwhile: that one's result counts
                del self.tasks[tid]
                worker.in_flight.discard(tid)
                self.drop_call(task)  # the caller may keep the future: not its arguments
                done.append((task, ok, data))
            if done:
                self.running -= len(done)
                if self.pending:  # freed capacity may let a waiting taker have some
                    self.wake_all()
        for data in logs:
            _replay(data)
        for future, ok, data in done:
            _settle(future, ok, data)
        return "stop" if self.stopping else "ok"

    def bye(self, wid: str) -> None:
        self.lose(wid, None)

    def drop_call(self, task: Task) -> None:
        """Forget *task*'s arguments, pickled or not (call holding the lock)."""
        self.held -= len(task.call_data)
        task.call_data = b""
        task.call = None

    # -- called by the executor ---------------------------------------------------

    def cancel_running(self, task: Task) -> bool:
        """Cancel *task*, handed to a worker: tell the worker to stop it, if it can.

        True when *task* is now cancelled: its worker's engine stops tasks (pool,
        process, fork), or it is a command task (killed on any engine), or it went
        back to the queue (its worker was lost) and nobody runs it, or its worker is
        a local one, which the master kills and replaces (the other tasks it held go
        back to the queue, no attempt counted).
        """
        with self.cond:
            worker = self.workers.get(task.owner) if task.owner is not None else None
            if worker is None:  # requeued after its worker was lost: waiting for another
                tid = next((t for t in self.pending if self.tasks.get(t) is task), None)
                if tid is None:
                    return False
                del self.tasks[tid]  # _hand_out skips it
                self.drop_call(task)
            else:
                info = worker.info
                tid = next((t for t in worker.in_flight if self.tasks.get(t) is task), None)
                if tid is None:  # its result is being delivered
                    return False
                stops = info.get("cancels") and (info.get("stops_tasks") or is_command(task.fn))
                if not stops:  # a thread cannot be stopped: its process can, if it is ours
                    if self.kill_local is None or not self.kill_local(worker.wid, info):
                        return False
                    worker.doomed = True  # given nothing more; its loss counts no attempt
                del self.tasks[tid]  # its result, if it still comes, is dropped
                self.drop_call(task)
                worker.in_flight.discard(tid)
                self.running -= 1
                if stops:
                    worker.cancels.append(tid)
                    self.cond_cancel.notify_all()
                self.wake_all()  # capacity freed at the master
        return task._cancel_running()

    def lose(self, wid: str, reason: str | None) -> None:
        """Forget worker *wid*; requeue its tasks (count an attempt when *reason* is given)."""
        failed: list[tuple[Future[Any], BaseException]] = []
        with self.cond:
            worker = self.workers.pop(wid, None)
            if worker is None:
                return
            if worker.doomed:  # killed on purpose (a cancel, a timeout): its loss is no one's
                reason = None  # fault, whoever notices it first (the monitor, or its connection)
            self.running -= len(worker.in_flight)
            self.cond_cancel.notify_all()  # its watch() returns "stale"
            for tid in sorted(worker.in_flight, reverse=True):
                task = self.tasks.get(tid)
                if task is None:
                    continue
                task.owner = None
                task.deadline = None
                if task.prefetched:  # perhaps never started: no attempt, but a suspect
                    task.suspect = True
                else:
                    task.attempts += reason is not None
                if task.attempts > self.max_retries:
                    del self.tasks[tid]
                    self.drop_call(task)
                    failed.append((task, self._lost(task, worker, reason)))
                else:
                    self.pending.appendleft(tid)
            self.wake_all()
        for future, exc in failed:
            future.set_exception(exc)

    def expire(self, killable: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Fail tasks past their ``task_timeout`` with :class:`TaskTimeout`.

        The worker's engine stops such a task where it can (``info["stops_tasks"]``);
        otherwise, when ``killable(info)`` and the task is all that worker runs, the
        worker is doomed (given nothing more) and its id returned, for the caller
        to kill; else its thread runs on and its result will be dropped.
        """
        if not self.timed:
            return []
        expired: list[tuple[Task, str]] = []
        doomed: list[str] = []
        now = time.monotonic()
        with self.cond:
            for worker in self.workers.values():
                late = [
                    tid
                    for tid in worker.in_flight
                    if tid in self.tasks and now > (self.tasks[tid].deadline or math.inf)
                ]
                for tid in late:
                    worker.in_flight.discard(tid)
                    task = self.tasks.pop(tid)
                    self.drop_call(task)
                    self.running -= 1
                    name = worker.info.get("name")
                    if worker.info.get("stops_tasks"):
                        then = f"worker {name!r} kills it and replaces the process it ran in"
                    elif not worker.in_flight and killable(worker.info):
                        worker.doomed = True
                        doomed.append(worker.wid)
                        then = f"local worker {name!r} was killed and is replaced"
                    else:
                        then = (
                            f"it runs on in a thread of worker {name!r}, which cannot be "
                            "stopped, and its result will be dropped"
                        )
                    expired.append((task, then))
            if expired:
                self.wake_all()
        for task, then in expired:
            task.set_exception(
                TaskTimeout(
                    f"{serialization.describe(task.fn)}() ran longer than task_timeout="
                    f"{task.timeout:g}s; {then}; the executor is still usable"
                )
            )
        return doomed

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
            for task in tasks:
                self.drop_call(task)
            for worker in self.workers.values():
                worker.in_flight.clear()
            self.running = 0
            self.wake_all()
        for task in tasks:
            if task.started or task.set_running_or_notify_cancel():
                task.set_exception(BrokenExecutor(message))


def _replay(data: bytes) -> None:
    """Hand a worker's log record to the master's handlers; one that will not load is dropped."""
    try:
        record = pickle.loads(data)
    except BaseException:
        return
    replay_log(record)


def _settle(future: LeanFuture[Any], ok: bool, data: bytes) -> None:
    """Set *future* from a worker's pickled outcome; whatever that raises stays with it."""
    try:
        try:
            value = pickle.loads(data)
        except BaseException as exc:  # a __reduce__ may return any callable
            what = "result" if ok else "exception"
            name = f"{serialization.describe(getattr(future, 'fn', None))}()"
            future.set_exception(serialization.load_error(name, exc, what))
            return
        if ok:
            future._finish(value)
        else:
            future.set_exception(serialization.unpack_exception(value))
    except BaseException:  # e.g. a done-callback raising SystemExit
        logging.getLogger("executors").exception("handling the outcome of a task raised")


class Server(managers.Server):
    """A manager server run on threads of this process, that can be stopped and joined."""

    listener: Any

    def __init__(self, *args: Any, hub: Hub, spare: int = 0) -> None:
        super().__init__(*args)
        self.hub = hub
        self.lock = threading.Lock()  # held while mutating clients and closing
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
                nodelay(conn)
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


def listen(hub: Hub, host: str, port: int, key: bytes, *, spare: int = 1) -> Server:
    """A manager server for *hub* listening on *host*:*port* (not yet accepting)."""
    manager_cls: Any = type("_HubManager", (HubManager,), {})
    manager_cls.register("get_hub", callable=lambda: hub, exposed=EXPOSED)
    try:
        return Server(manager_cls._registry, (host, port), key, "pickle", hub=hub, spare=spare)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot listen on {host}:{port} for remote workers: {exc.strerror}; "
            "choose another address or port (0 picks a free one)",
        ) from exc
