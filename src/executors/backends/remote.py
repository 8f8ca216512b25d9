"""Run tasks on worker processes, here or on other machines, that connect to a manager server.

The engine (hub, server, wire vocabulary, the worker program, with a data-flow
diagram) lives in :mod:`executors._remote`; this module is the executor around it.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import secrets
import socket
import threading
import time
import types
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, TypeVar

from .. import _validate, context, serialization
from .._remote import wire
from .._remote.hub import EAGER_BYTES, Hub, listen
from .._remote.local import LocalWorkers
from ..command import kill_process_tree
from ..errors import BrokenExecutor, InvalidOption
from ..protocol import OwnsProcesses
from ..serialization import DEFAULT_SERIALIZER, get_pickler
from ..spec import parse_spec
from ..timeouts import split

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["RemoteExecutor", "RemoteWorker"]

R = TypeVar("R")
_TICK = 0.05
log = logging.getLogger("executors.remote")


class RemoteWorker(NamedTuple):
    """A worker connected to a :class:`RemoteExecutor` (see :meth:`~RemoteExecutor.workers`)."""

    #: ``HOST:PID`` of the worker process (``local-...`` for the master's own).
    name: str
    host: str
    pid: int
    #: Tasks it runs at once (its ``--workers``).
    slots: int
    #: Its engine (``pool``, ``thread``...).
    backend: str


class RemoteExecutor(OwnsProcesses):
    """Run tasks on worker processes that connect to this master over TCP.

    With no *address* it binds ``127.0.0.1`` on a free port, makes a random
    authkey and starts *local_workers* worker processes here, so it works with
    no set-up (and is a process pool for CPU-bound work). With an *address*
    (``remote://HOST:PORT``) it waits for workers started elsewhere with
    ``python -m executors worker HOST:PORT``.

    :param max_workers: how many tasks run at once, in all. Default: the CPU
        count without an address; unlimited with one (each worker runs as many
        as its ``--workers``).
    :param address: ``"HOST:PORT"`` to listen on (port 0 picks a free one; see
        :attr:`address`); ``0.0.0.0`` listens on every interface.
    :param authkey: the shared secret (at least 16 bytes); default
        ``$EXECUTORS_AUTHKEY`` with an address, a random key without.
    :param local_workers: worker processes started here; default
        ``min(max_workers, CPUs)`` without an address, 0 with one. They share
        ``max_workers`` threads between them.
    :param worker_backend: the engine each local worker runs tasks on (a spec).
    :param max_retries: how often a task is given to another worker after its
        worker was lost before its future raises :class:`~executors.WorkerLost`.
    :param heartbeat_timeout: seconds of silence after which a worker is lost.
    :param prefetch: at most this many tasks wait on a worker beyond those it
        runs (it asks for about 5 ms of work by its own timing; 0 turns it off).
    :param serializer: ``"auto"`` (default: plain pickle; cloudpickle, by value, for
        lambdas, closures and what ``__main__`` defines: a worker needs nothing but
        this package), ``"pickle"`` or ``"cloudpickle"``.
    :param max_tasks_per_child: passed to the local workers' engine (``pool`` and
        ``subprocess`` replace a worker process after that many tasks).
    :param task_timeout: seconds a task may run, timed by the master, before
        its future raises :class:`~executors.TaskTimeout`; workers whose engine
        can (pool, process, fork) kill it, and local workers running it alone
        are killed and replaced. No prefetch then.
    :param warn_no_workers: with an *address*, seconds without any worker
        connected after which the master logs a warning (logger
        ``executors.remote``) with the command that starts one; None: never.

    Memory: arguments are pickled in :meth:`submit` while the master holds less
    than 32 MB of pickled arguments (so an unpicklable one fails there); beyond
    that a task keeps its arguments, which are pickled when a worker takes it
    (an unpicklable one then fails that task's future), so a backlog of large
    arguments is not held twice.

    >>> from executors import get_executor
    >>> from executors.demo import square
    >>> with get_executor("remote", max_workers=2) as ex:
    ...     list(ex.map(square, range(5)))
    [0, 1, 4, 9, 16]
    """

    name: ClassVar[str] = "remote"
    map_chunk_cap: ClassVar[int] = 1000  # one chunk is one message through the hub
    sharing: ClassVar[str] = "manager"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | None = None,
        authkey: bytes | str | None = None,
        local_workers: int | None = None,
        worker_backend: str = "thread",
        max_retries: int = 2,
        heartbeat_timeout: float = 10.0,
        prefetch: int = 256,
        task_timeout: float | None = None,
        warn_no_workers: float | None = 10.0,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        serializer: str = DEFAULT_SERIALIZER,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.serializer, self._pickler = serializer, get_pickler(serializer)
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        worker_backend = _with_max_tasks(worker_backend, self.max_tasks_per_child)
        external = address is not None
        warn_after = _validate.positive_number("warn_no_workers", warn_no_workers)
        warn_after = warn_after if external else None
        if external or max_workers is not None:
            self.max_workers: int | None = _validate.max_workers(max_workers, default=0) or None
        else:
            self.max_workers = self.default_max_workers()
        host, port = ("127.0.0.1", 0)
        if address is not None:
            host, port = wire.parse_address(address, source="address")
        key = (
            wire.check_authkey(authkey, source="authkey")
            if external or authkey is not None
            else secrets.token_hex(16).encode()
        )
        n_local = _count("local_workers", local_workers)
        if n_local is None:
            n_local = 0 if external else min(self.max_workers or 1, _validate.cpu_count())
        if not external and n_local == 0:
            raise InvalidOption(
                "local_workers=0 without an address leaves nobody to run tasks: no worker can "
                "find a random port; give remote://HOST:PORT for external workers or "
                "local_workers >= 1"
            )
        retries = _count("max_retries", max_retries)
        timeout = _validate.positive_number("heartbeat_timeout", heartbeat_timeout)
        ahead = _count("prefetch", prefetch)
        #: Seconds a task may run before its future raises :class:`~executors.TaskTimeout`.
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        _check_engine(worker_backend)
        init, args = _validate.initializer(initializer, initargs)
        init_data = None
        if init is not None:
            init_data = serialization.dumps(
                (init, args), what="the initializer and initargs", pickler=self._pickler
            )

        self._hub = Hub(
            self.max_workers,
            retries or 0,
            timeout or 10.0,
            init_data,
            prefetch=ahead or 0,
            task_timeout=self.task_timeout,
            dump_call=None if serializer == "pickle" else self._pickler,
        )
        self._authkey = key
        self._engine = worker_backend
        self._functions: dict[Callable[..., Any], bytes] = {}
        local = LocalWorkers(self._hub, key, worker_backend)
        server = listen(self._hub, host, port, key, spare=3 * n_local + 1)
        bound: Any = server.address
        #: The ``(host, port)`` the master listens on (the real port when 0 was asked).
        self.address: tuple[str, int] = (str(bound[0]), int(bound[1]))
        accepter = threading.Thread(
            target=server.accepter, name="executors-remote-accept", daemon=True
        )
        accepter.start()
        # What the threads use is kept apart from the executor, so that an executor
        # dropped without shutdown() can be collected (its finalizer closes the master).
        self._master = _Master(
            self._hub, local, server, accepter, self.address, warn_after=warn_after
        )
        # Split max_workers exactly, so that the workers' slots keep the cap.
        base, extra = divmod(self.max_workers or n_local, max(n_local, 1))
        try:
            for i in range(n_local):
                local.spawn(max(1, base + (i < extra)), self._master.reachable())
        except BaseException:
            self._master.stop()
            raise
        self._monitor = threading.Thread(
            target=self._master.watch, name="executors-remote-monitor", daemon=True
        )
        self._monitor.start()
        weakref.finalize(self, self._master.close).atexit = False
        # At interpreter exit, finish what was submitted and stop the workers, as
        # ThreadPoolExecutor does; the weak reference lets an unused executor go.
        self._atexit = functools.partial(
            _shutdown_at_exit, weakref.ref(self), self._master, self._monitor
        )
        atexit.register(self._atexit)

    @classmethod
    def default_max_workers(cls) -> int:
        """The CPU count (used without an address; with one, the default is no cap)."""
        return _validate.cpu_count()

    # -- workers --------------------------------------------------------------------

    def workers(self) -> list[RemoteWorker]:
        """The workers connected now (the master's local ones included).

        >>> from executors import get_executor
        >>> with get_executor("remote", max_workers=1) as ex:
        ...     [(w.slots, w.backend) for w in ex.wait_for_workers(1, timeout=60)]
        [(1, 'inline')]
        """
        with self._hub.lock:
            found = [(w.info, w.slots) for w in self._hub.workers.values()]
        return [
            RemoteWorker(
                name=str(info.get("name", "")),
                host=str(info.get("host", "")),
                pid=int(info.get("pid", 0)),
                slots=int(slots or info.get("slots") or 0),
                backend=str(info.get("backend", "")),
            )
            for info, slots in found
        ]

    def wait_for_workers(self, n: int = 1, timeout: float | None = None) -> list[RemoteWorker]:
        """Wait until at least *n* workers are connected; :meth:`workers` then.

        :raises TimeoutError: when fewer than *n* connected within *timeout* seconds,
            saying how to start them.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidOption(f"n must be an int >= 1, got {n!r}")
        limit = _validate.positive_number("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit
        hub = self._hub
        with hub.cond_workers:
            while len(hub.workers) < n:
                if self._master.broken is not None:
                    raise self._master.broken
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"{len(hub.workers)} of {n} worker(s) connected to the master at "
                        f"{self._master.where()} within {limit:g} s; {self._master.start_hint()}"
                    )
                hub.cond_workers.wait(remaining if remaining is not None else 1.0)
        return self.workers()

    # -- the protocol -------------------------------------------------------------

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        timed = fn  # with its own timeout, the wrapper travels: the worker's engine keeps it
        fn, timeout = split(fn, self.task_timeout)
        bound = context.current()
        values = dict(bound) if bound else None
        # A plain function pickles as its name, the same every time: pickle it once.
        # (One sent by value, from __main__ or a closure, is pickled anew: its globals may change.)
        fn_data = self._functions.get(fn) if type(fn) is types.FunctionType else None
        hub = self._hub
        eager = hub.held < EAGER_BYTES  # read without the lock: a hint is enough
        call_data = b""
        try:
            if timed is not fn:
                fn_data = self._pickler(timed)
            elif fn_data is None:
                fn_data = self._pickler(fn)
                if type(fn) is types.FunctionType and b"cloudpickle" not in fn_data:
                    if len(self._functions) >= 256:
                        self._functions.clear()
                    self._functions[fn] = fn_data
            call = (args, kwargs or None, values)
            if eager:
                call_data = self._pickler(call)
        except Exception:
            parts = {
                "the function": fn,
                **{f"argument {i + 1}": a for i, a in enumerate(args)},
                **{f"keyword argument {k!r}": v for k, v in kwargs.items()},
            }
            serialization.dumps(
                (fn, args, kwargs, values), what="the task", parts=parts, pickler=self._pickler
            )
            raise  # pragma: no cover - the second attempt pickled what the first could not
        task = hub.task_class(fn_data, call_data, fn)
        if not eager:
            task.call = call
        if timeout is not None:
            task.timeout = timeout
        with hub.lock:
            if self._master.closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._master.broken is not None:
                raise self._master.broken
            tid = next(hub.ids)
            if timeout is not None:
                hub.timed = True
            hub.held += len(call_data)
            hub.tasks[tid] = task
            hub.pending.append(tid)
            hub.wake()
        return task

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; tasks already submitted still run unless *cancel_futures*.

        *cancel_futures* cancels the tasks no worker has taken yet; those taken run
        to the end (:meth:`~executors.protocol.OwnsProcesses.terminate_workers` stops them
        too).

        Workers are told to stop once every task is done; local workers are reaped.
        Tasks that cannot run (no worker connected for ``heartbeat_timeout``) fail
        with :class:`~executors.BrokenExecutor`.
        """
        hub = self._hub
        cancelled: list[Future[Any]] = []
        with hub.cond:
            self._master.closing = True
            if cancel_futures:
                for tid in hub.pending:
                    task = hub.tasks.get(tid)
                    if task is not None and not task.started:
                        del hub.tasks[tid]
                        hub.drop_call(task)
                        cancelled.append(task)
                hub.pending = collections.deque(t for t in hub.pending if t in hub.tasks)
            hub.wake_all()
        self._master.wake.set()
        for future in cancelled:  # those handed to a worker run to the end, as in
            future.cancel()  # concurrent.futures; terminate_workers() stops them
        if wait:  # else the exit hook still waits for the tasks, as concurrent.futures does
            atexit.unregister(self._atexit)
            self._monitor.join()

    def _worker_pids(self) -> list[int]:
        return [proc.pid for proc, _ in list(self._master.local.procs.values())]

    def _stop_workers(self, sig: int) -> None:
        """Local workers get *sig*; tasks held by any worker fail at once (those on
        workers started by hand may still run there: they are not ours to stop)."""
        self.shutdown(wait=False, cancel_futures=True)
        self._master.broken = BrokenExecutor(
            "the executor's workers were stopped (terminate_workers)"
        )
        self._hub.fail_all(
            "terminate_workers() or kill_workers() stopped the executor before this task ended"
        )
        for pid in self._worker_pids():
            kill_process_tree(pid, sig)
        self.shutdown(wait=True)

    def _shared_served(self) -> tuple[tuple[str, int], bytes]:
        """``ex.Queue()`` and the rest are served on the master's interface, with its key."""
        return (self.address[0], 0), self._authkey

    def __repr__(self) -> str:
        host, port = self.address
        return (
            f"<RemoteExecutor backend='remote' address='{host}:{port}' "
            f"max_workers={self.max_workers}>"
        )


class _Master:
    """The master's moving parts that its threads use, without the executor itself.

    The monitor thread runs :meth:`watch`: it restarts local workers that die,
    drops workers that miss heartbeats, times tasks out, and once the executor is
    closing and every task is done, stops the workers and the server (:meth:`stop`).
    """

    def __init__(
        self,
        hub: Hub,
        local: LocalWorkers,
        server: Any,
        accepter: threading.Thread,
        address: tuple[str, int],
        *,
        warn_after: float | None = None,
    ) -> None:
        self.hub, self.local, self.server, self.accepter = hub, local, server, accepter
        self.address = address
        self.closing = False
        self.wake = threading.Event()  # cuts the monitor's nap short at shutdown
        self.broken: BrokenExecutor | None = None
        self.warn_after = warn_after  # warn when no worker has connected for so long

    def close(self) -> None:
        """The executor was dropped without ``shutdown()``: finish what runs, then stop."""
        with self.hub.cond:
            self.closing = True
            self.hub.wake_all()
        self.wake.set()

    def reachable(self) -> tuple[str, int]:
        """Where a process on this machine reaches the master (not at 0.0.0.0)."""
        host, port = self.address
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), port

    def where(self) -> str:
        """The master's address as workers elsewhere reach it (the host name for 0.0.0.0)."""
        host, port = self.address
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start_hint(self) -> str:
        """How to start a worker for this master (never with the key itself)."""
        return (
            f"start one with the master's key in ${wire.AUTHKEY_ENV}: "
            f"python -m executors worker {self.where()}"
        )

    def watch(self) -> None:
        hub = self.hub
        idle_since = time.monotonic()
        warned = False
        try:
            while True:
                self.wake.wait(_TICK)
                with hub.cond:
                    closing, left = self.closing, len(hub.tasks)
                    now = time.monotonic()
                    late = [
                        w.wid for w in hub.workers.values() if now - w.last_seen > hub.heartbeat
                    ]
                    if hub.workers or self.local:
                        idle_since = now
                        warned = False
                if not warned and not closing and now - idle_since > (self.warn_after or 1e300):
                    warned = True
                    log.warning(
                        "no worker has connected to this master at %s for %.0f s (%d task(s) "
                        "waiting); %s",
                        self.where(),
                        now - idle_since,
                        left,
                        self.start_hint(),
                    )
                for wid in late:
                    hub.lose(wid, f"it sent no heartbeat for {hub.heartbeat:g} s")
                for wid in hub.expire(self.local.is_local):
                    self.local.kill(wid)
                if not self.broken:
                    why = self.local.check(self.reachable())
                    if why is not None:
                        self.broken = BrokenExecutor(why)
                        hub.fail_all(why)
                if closing and not left:
                    return
                if closing and now - idle_since > hub.heartbeat:
                    hub.fail_all(
                        f"the executor was shut down with {left} task(s) not run: no worker "
                        f"has been connected for {hub.heartbeat:g} s (master at "
                        f"{self.address[0]}:{self.address[1]})"
                    )
                    return
        finally:
            self.stop()

    def stop(self) -> None:
        hub = self.hub
        hub.stop()
        self.local.reap(5.0)
        deadline = time.monotonic() + 1.0
        while hub.workers and time.monotonic() < deadline:  # external workers saying bye
            time.sleep(_TICK)
        self.server.close(self.reachable())
        self.accepter.join(5.0)
        hub.fail_all("the remote executor shut down before this task ran")


def _shutdown_at_exit(
    ref: weakref.ref[RemoteExecutor], master: _Master, monitor: threading.Thread
) -> None:
    # As concurrent.futures: what was submitted runs before the program leaves, also when
    # the executor was dropped (then its master is closing, and only needs waiting for).
    ex = ref()
    if ex is not None:
        ex.shutdown(wait=True)
        return
    master.close()
    monitor.join()


def _count(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOption(f"{name} must be an int >= 0 or None, got {value!r}")
    return value


def _with_max_tasks(spec: str, max_tasks: int | None) -> str:
    """The local workers' engine spec, told to replace its workers after *max_tasks*."""
    if max_tasks is None or not isinstance(spec, str):
        return spec
    return f"{spec}{'&' if '?' in spec else '?'}max_tasks_per_child={max_tasks}"


def _check_engine(spec: str) -> None:
    if not isinstance(spec, str):
        raise InvalidOption(f"worker_backend must be a backend spec such as 'thread', got {spec!r}")
    name = parse_spec(spec, source="worker_backend").name
    if name == "remote":
        raise InvalidOption(
            "worker_backend='remote' would start a master inside every worker; "
            "use 'thread' (I/O) or 'pool' (CPU) as the workers' engine"
        )
    from .. import registry

    registry.get_backend(name, source="worker_backend")
