"""The remote worker: ``python -m executors worker HOST:PORT`` runs a master's tasks here.

A worker connects to the master's :mod:`multiprocessing.managers` server (the
authkey is checked before anything else is said), registers, and then runs two
loops over the master's ``hub`` proxy:

* the main thread *takes* tasks for its free slots plus a prefetch of tasks to
  wait behind them (about ``PREFETCH_SECONDS`` of work by its own timing, at
  most the master's ``prefetch``; one call returns a whole batch; it waits up
  to a second when there is nothing to do) and hands each to the local engine
  (any backend spec; by default ``pool``: worker processes sized to the CPUs,
  so CPU-bound Python runs in parallel; ``--backend thread`` for I/O-bound work);
* finished results go back with the next take when the main thread makes one
  (always so with an engine that runs tasks in submit, such as ``inline``);
  otherwise a sender thread *puts* them, all that are ready in one call, and it
  sends an empty put as a heartbeat when the worker has been quiet.

When the connection drops, the worker reconnects with backoff for up to
``--retry-for`` seconds and registers again under its old id, so a brief outage
loses nothing; when the master says ``stop`` it finishes what it runs, sends the
results and exits with status 0.

With ``--keep-alive`` it does not exit when its master stops (or is lost):
it waits for the next master at the same address and serves it, one master
after another, until SIGTERM or Ctrl-C.

SIGTERM stops it gently: it takes no more tasks, finishes the running ones and
sends their results, then exits with 0.

It logs what it does on stderr (logger ``executors.worker``): its engine when it
starts, each connection, a summary of the tasks done every ``SUMMARY_EVERY``
seconds while it works, reconnections and its stop; ``-v`` adds each batch
taken, ``-q`` keeps warnings and errors only.

A worker that cannot start the master's tasks (its initializer cannot be
loaded here, e.g. its module is not installed, or the engine cannot start)
fails the tasks it took with that error, so the caller sees it on their
futures, and exits with status 5 and a one-line error.

A third thread *watches* for tasks the caller cancelled while they run here:
their process is killed where the engine can (pool, process, fork engines kill
and replace it), and command tasks (:func:`executors.run_command`,
:class:`executors.Command`), which the worker runs on threads of its own
whatever its engine, have their process group killed.

Nothing outlives the master: a worker that gives up on it (``--retry-for``
ran out) kills what its tasks run before it exits, and a local worker (started
with ``--parent-pid``, as the master does) does so as soon as its parent process
is gone, within a fraction of a second.

Exit status: 0 clean stop, 2 usage (bad arguments, missing authkey), 3 the
master refused the authkey, 4 the master could not be reached, 5 the master's
tasks cannot start here.

What the master shares with the worker (addresses, authkeys, the payload) is
in :mod:`executors._remote.wire`; the master does not import this module.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import math
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from multiprocessing import AuthenticationError, connection, managers
from typing import TYPE_CHECKING, Any, Callable

from .. import _wording, command, context, registry, serialization
from .._env import enter_worker
from .._proc.logs import ForwardHandler, install_log_forwarding
from ..errors import BrokenExecutor, InvalidOption, SerializationError
from ..spec import parse_spec
from ..timeouts import Timed, with_timeout
from .wire import (
    AUTHKEY_ENV,
    LOG_LEVEL_ENV,
    LOG_TID,
    NAME_ENV,
    Payload,
    check_authkey,
    is_command,
    nodelay,
    parse_address,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future

__all__ = [
    "EXIT_AUTH",
    "EXIT_CANNOT_START",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Worker",
    "WorkerExit",
    "execute",
    "execute_many",
    "main",
]

#: Seconds between two looks at whether a local worker's master process still lives.
PARENT_POLL = 0.1
#: A worker holds about this much work (by its own timing) beyond what it runs.
PREFETCH_SECONDS = 0.005
#: Seconds between two summaries of the tasks done, while there are some.
SUMMARY_EVERY = 30.0

log = logging.getLogger("executors.worker")

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_CANNOT_START = 5

#: Errors that mean the connection to the master is gone: closed, or answered by a
#: new master that does not know our proxy (managers.RemoteError).
_LINK_ERRORS = (EOFError, OSError, managers.RemoteError)


class WorkerExit(Exception):
    """Stops the worker with an exit status and a message for stderr."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_functions: dict[bytes, Callable[..., Any]] = {}  # pickled function -> function, a small cache


def _load(fn_data: bytes) -> Callable[..., Any]:
    fn = _functions.get(fn_data)
    if fn is None:
        fn = pickle.loads(fn_data)
        if len(_functions) >= 256:
            _functions.clear()
        _functions[fn_data] = fn
    return fn


def _own_timeout(fn_data: bytes) -> tuple[float, str] | None:
    """The task's own deadline (:func:`executors.with_timeout`), which the engine keeps,
    and the name of its function (the engine's timeout error names what it ran)."""
    try:
        fn = _load(fn_data)
    except BaseException:  # execute() reports it
        return None
    if type(fn) is not Timed:
        return None
    inner = fn.fn
    name = getattr(inner, "__qualname__", None) or getattr(inner, "__name__", None)
    return fn.seconds, name if isinstance(name, str) else type(inner).__name__


class _Named:
    """:func:`execute_many` under the name of the one task it runs, so that the engine's
    errors (``touch() ran longer than task_timeout=1s``) name the user's function."""

    def __init__(self, name: str) -> None:
        self.__qualname__ = self.__name__ = name

    def __call__(self, payloads: list[Payload]) -> tuple[list[tuple[bool, bytes]], float]:
        return execute_many(payloads)


def _runs_command(fn_data: bytes) -> bool:
    try:
        return is_command(_load(fn_data))
    except BaseException:  # execute() reports it
        return False


def execute(payload: Payload) -> tuple[bool, bytes]:
    """Run one task: ``fn(*args, **kwargs)`` with the caller's context values bound.

    Returns ``(True, pickled result)`` or ``(False, pickled PackedException)``;
    never raises, so one bad task cannot stop a worker.
    """
    fn_data, call_data = payload
    try:
        fn = _load(fn_data)
        args, kwargs, values = pickle.loads(call_data)
    except BaseException as exc:
        error = SerializationError(
            f"the worker could not load the task: {type(exc).__name__}: {exc}; functions "
            "and classes of __main__, lambdas and closures travel by value, but those of "
            "other modules travel by name: their modules must be importable on the worker "
            "(installed there, or on its PYTHONPATH)"
        )
        error.__cause__ = exc
        return False, _pack(error)
    try:
        result = context.run(values or {}, fn, *args, **(kwargs or {}))
    except BaseException as exc:
        return False, _pack(exc)
    try:
        return True, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        try:  # by value what plain pickle refuses (a class the task got by value, say)
            what = f"the result of {serialization.describe(fn)}"
            data = serialization.dumps(result, what=what, pickler=serialization.fallback_dumps)
        except SerializationError as exc:
            return False, _pack(exc)
        return True, data


def execute_many(payloads: list[Payload]) -> tuple[list[tuple[bool, bytes]], float]:
    """:func:`execute` each of *payloads*, in order; their results and the seconds it took."""
    start = time.perf_counter()
    results = [execute(payload) for payload in payloads]
    return results, time.perf_counter() - start


def _pack(exc: BaseException) -> bytes:
    return pickle.dumps(serialization.pack_exception(exc), protocol=pickle.HIGHEST_PROTOCOL)


#: Seconds to connect and to finish the handshake. Whatever listens there and does not
#: answer (not a master, a master frozen, the port our own connection took) counts as
#: no master: the worker retries, instead of waiting for ever.
HANDSHAKE_TIMEOUT = 10.0


def _receive_timeout(fd: int, seconds: float) -> None:
    """Blocking reads on *fd* fail (EAGAIN) after *seconds*; 0 waits for ever."""
    sock = socket.socket(fileno=fd)
    try:
        whole = int(seconds)
        sock.setsockopt(
            socket.SOL_SOCKET,
            socket.SO_RCVTIMEO,
            struct.pack("ll", whole, int((seconds - whole) * 1e6)),
        )
    finally:
        sock.detach()


def _client(address: tuple[str, int], authkey: bytes) -> connection.Connection:
    """:func:`multiprocessing.connection.Client` for TCP, with Nagle's algorithm off."""
    sock = socket.create_connection(address, timeout=HANDSHAKE_TIMEOUT)
    sock.settimeout(None)  # blocking again: the Connection reads the descriptor itself
    conn = connection.Connection(sock.detach())
    try:
        nodelay(conn)
        _receive_timeout(conn.fileno(), HANDSHAKE_TIMEOUT)
        connection.answer_challenge(conn, authkey)
        connection.deliver_challenge(conn, authkey)
        _receive_timeout(conn.fileno(), 0)
    except BaseException:
        conn.close()
        raise
    return conn


def _takes_task_timeout(spec: str) -> bool:
    """Whether the backend *spec* names can stop a running task (so enforces ``task_timeout``).

    Every built-in backend takes ``task_timeout``; only those whose class says
    ``stops_tasks`` can kill a task (a plugin without the flag: if it takes the option).
    """
    try:
        factory = registry.get_backend(parse_spec(spec).name)
        stops = getattr(factory, "stops_tasks", None)
        if stops is not None:
            return bool(stops)
        return "task_timeout" in inspect.signature(factory).parameters
    except Exception:  # an unknown engine fails later, with its own message
        return False


_dispatch: Callable[..., Any] = managers.dispatch  # type: ignore[attr-defined]


class Link:
    """One connection to the master's hub, speaking the :mod:`multiprocessing.managers` protocol.

    Each thread of a worker uses its own. This is what a manager proxy does, minus
    the proxy's per-address connection cache, which would keep a dead connection
    (or hand a new master an object id it never made) after the master restarts.

    :raises AuthenticationError: when the master refuses *authkey*.
    """

    def __init__(self, address: tuple[str, int], authkey: bytes) -> None:
        # The server answers one request per new connection, except accept_connection,
        # which turns the connection into a channel for calls to an object's methods.
        conn = _client(address, authkey)
        try:
            self.ident, _ = _dispatch(conn, None, "create", ("get_hub",))
        finally:
            conn.close()
        self.conn = _client(address, authkey)
        try:
            _dispatch(self.conn, None, "accept_connection", ("worker",))
        except BaseException:
            self.conn.close()
            raise

    def call(self, method: str, *args: Any) -> Any:
        """Call *method* of the hub with *args*; its return value."""
        return _dispatch(self.conn, self.ident, method, args)

    def close(self) -> None:
        self.conn.close()


class _OwnLink:
    """A thread's own :class:`Link`, made anew for each session generation (reconnect)."""

    def __init__(self, address: tuple[str, int], authkey: bytes) -> None:
        self.address, self.authkey = address, authkey
        self.link: Link | None = None
        self.generation = -1  # the session generation the link was made for

    def get(self, generation: int) -> Link:
        if self.link is None or self.generation != generation:
            self.drop()
            self.generation = generation
            self.link = Link(self.address, self.authkey)
        return self.link

    def drop(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None


class _Session:
    """One registration with the master: the id it gave this worker, and its settings."""

    def __init__(self, link: Link, reply: dict[str, Any]) -> None:
        self.link = link
        self.wid: str = reply["wid"]
        self.heartbeat: float = reply["heartbeat"]
        self.init: bytes | None = reply["init"]
        self.prefetch: int = reply.get("prefetch", 0)
        self.task_timeout: float | None = reply.get("task_timeout")


class Worker:
    """Connect to the master at *address* and run its tasks until it says stop.

    :param slots: tasks run at once (the engine's ``max_workers``); None lets the
        engine choose its default.
    :param backend: the local engine, any backend spec (``thread``, ``inline``...).
    :param retry_for: seconds to keep trying to reach the master, at start and
        after losing it (``math.inf``: until it comes, or :meth:`request_stop`).
    :param keep_alive: a master found shutting down is waited past, for the
        next one at the same address, rather than ending the worker.
    """

    def __init__(
        self,
        address: tuple[str, int],
        authkey: bytes,
        *,
        slots: int | None = None,
        backend: str = "pool",
        name: str = "",
        retry_for: float = 30.0,
        parent_pid: int | None = None,
        keep_alive: bool = False,
    ) -> None:
        self.address = address
        self.authkey = authkey
        self.backend = backend
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.retry_for = retry_for
        self.keep_alive = keep_alive  # a master shutting down: wait for the next one
        self.parent_pid = parent_pid
        self._slots_wanted = slots
        self._slots = 1
        self._engine: Any = None
        self._engine_key: tuple[bytes | None, float | None] | None = None
        self._stops_tasks = _takes_task_timeout(backend)
        self._avg: float | None = None  # seconds a task takes here, a moving average
        self._session: _Session | None = None
        # Held (and waited on) while mutating _session, _generation, _outbox, _in_flight,
        # _stopping, _futures, _threads and _cancelled.
        self._cond = threading.Condition()
        self._outbox: list[tuple[str, int, bool, bytes]] = []
        self._in_flight = 0
        self._generation = 0
        self._stopping = False
        self._stop_requested = False
        # Cancelling running tasks: their futures (engines that stop tasks, and command
        # tasks), the threads running command tasks, and tasks cancelled before they
        # started; each keyed by (worker id, task id).
        self._futures: dict[tuple[str, int], Future[Any]] = {}
        self._threads: dict[tuple[str, int], int] = {}
        self._cancelled: set[tuple[str, int]] = set()
        self._commands: concurrent.futures.ThreadPoolExecutor | None = None
        self._abandoned = False
        # Why this worker cannot start the master's tasks (initializer not loadable here).
        self._cannot_start: BaseException | None = None
        # Tasks done (and failed) in all, and at the last summary; when it was logged.
        self.done = self.failed = 0
        self._summarized = (0, 0)
        self._summary_at = time.monotonic()

    # -- connecting -------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _connect(self, previous: str | None) -> _Session:
        """Connect and register, retrying with backoff for ``retry_for`` seconds."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            link = None
            try:
                link = Link(self.address, self.authkey)
                info = {
                    "name": self.name,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "slots": self.engine_slots(),
                    "backend": self.backend,
                    "stops_tasks": self._stops_tasks,
                    "cancels": True,  # it watches for cancelled tasks and stops them
                    "previous": previous,
                }
                reply = link.call("register", info)
                if reply.get("stop") and not self.keep_alive:
                    raise WorkerExit(EXIT_OK, "the master is shutting down")
                if reply.get("stop"):  # --keep-alive: as if it were not there yet
                    raise EOFError("the master is shutting down")
                session = _Session(link, reply)
                how = "reconnected" if previous else "connected"
                log.info("%s to the master at %s (as %s)", how, self._where(), self.name)
                return session
            except AuthenticationError as exc:
                raise WorkerExit(
                    EXIT_AUTH,
                    f"the master at {self._where()} refused our authkey (from ${AUTHKEY_ENV}): "
                    f"{exc}; set ${AUTHKEY_ENV} to the key the master uses",
                ) from None
            except _LINK_ERRORS as exc:
                if link is not None:
                    link.close()
                if self._stop_requested:
                    raise WorkerExit(EXIT_OK, "stopped while waiting for a master") from None
                if delay == 0.05 and not previous:
                    log.info("waiting for a master at %s", self._where())
                if time.monotonic() + delay > deadline:
                    what = "lost the master" if previous else "cannot reach a master"
                    raise WorkerExit(
                        EXIT_UNREACHABLE,
                        f"{what} at {self._where()} and could not connect within "
                        f"{self.retry_for:g} s ({type(exc).__name__}: {exc}); check that the "
                        "master runs, the address and any firewall; --retry-for sets how "
                        "long to keep trying",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _install(self, session: _Session) -> None:
        """Make *session* current; (re)build the engine if its initializer or timeout changed."""
        key = (session.init, session.task_timeout)
        if key != self._engine_key:
            if self._engine is not None:
                self._engine.shutdown(wait=True)
                self._engine = None
            self._engine_key = key
            self._cannot_start = None
            try:
                self._engine = self._make_engine(session)
            except Exception as exc:
                self._cannot_start = exc
                log.error("%s", exc)
            self._slots = getattr(self._engine, "max_workers", None) or self._slots_wanted or 1
        with self._cond:
            self._session = session
            self._generation += 1
            self._cond.notify_all()

    def _make_engine(self, session: _Session) -> Any:
        """The local engine for *session*'s initializer and task timeout.

        :raises BrokenExecutor: (the error the master's futures get) when the
            initializer cannot be loaded here or the engine cannot start.
        """
        init: Callable[..., object] | None = None
        initargs: Any = ()
        try:
            if session.init:
                init, initargs = pickle.loads(session.init)
        except Exception as exc:
            error = BrokenExecutor(
                f"worker {self.name!r} cannot start tasks: it could not load the initializer "
                f"({type(exc).__name__}: {exc}); the initializer and its initargs must be "
                "importable on the worker (install their module there)"
            )
            raise error from exc
        options: dict[str, Any] = {"initializer": init, "initargs": initargs}
        if self._slots_wanted:
            options["max_workers"] = self._slots_wanted
        if self._stops_tasks and session.task_timeout is not None:
            options["task_timeout"] = session.task_timeout  # the engine kills overruns
        try:
            return registry.get_executor(self.backend, **options)
        except Exception as exc:
            if init is not None:
                raise _wording.initializer_failed(init, exc, f" on worker {self.name!r}") from exc
            raise BrokenExecutor(
                f"worker {self.name!r} cannot start its engine {self.backend!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def engine_slots(self) -> int:
        """How many tasks the engine runs at once: ``--workers``, else its default (0: unknown)."""
        if self._slots_wanted:
            return self._slots_wanted
        with contextlib.suppress(Exception):
            factory = registry.get_backend(parse_spec(self.backend).name)
            return int(getattr(factory, "default_max_workers")() or 0)  # noqa: B009
        return 0

    def describe_engine(self) -> str:
        """The engine and how many tasks it runs at once, for the start-up line."""
        name = parse_spec(self.backend).name
        n = self.engine_slots()
        count = f"{n}" if n else "the engine's default number of"
        if name == "pool":
            default = "" if self._slots_wanted else ", one per CPU"
            return f"engine pool: {count} processes{default} (--backend thread for threads)"
        if name == "thread":
            return f"engine thread: {count} threads (--backend pool for CPU-bound tasks)"
        return f"engine {self.backend}: {count} task(s) at once"

    # -- running ----------------------------------------------------------------

    def run(self) -> int:
        """Serve the master until it stops; the exit status (see the module docstring)."""
        if self.parent_pid is not None:
            threading.Thread(
                target=self._watch_parent, name="executors-worker-parent", daemon=True
            ).start()
        level = os.environ.pop(LOG_LEVEL_ENV, "")
        if level.isdigit():  # a local worker: its tasks' records go to the master's handlers
            install_log_forwarding(ForwardHandler(send=self._log), int(level))
        self._install(self._connect(None))
        sender = threading.Thread(target=self._send_loop, name="executors-worker-sender")
        sender.start()
        watcher = threading.Thread(
            target=self._cancel_loop, name="executors-worker-cancels", daemon=True
        )
        watcher.start()
        try:
            self._take_loop()
        except WorkerExit:
            self.kill_tasks()  # the master is gone for good: leave nothing running
            raise
        finally:
            self._finish(sender)
            self._summarize(force=True)
        if self._cannot_start is not None:
            raise WorkerExit(EXIT_CANNOT_START, str(self._cannot_start))
        return EXIT_OK

    def _log(self, record: logging.LogRecord) -> None:
        """Queue a record (a ForwardHandler's copy) to go to the master with the results."""
        record.processName = f"executors-remote-{self.name}"
        try:
            data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an extra= that will not pickle travels as its repr
            fields = {k: _picklable_or_repr(v) for k, v in record.__dict__.items()}
            data = pickle.dumps(logging.makeLogRecord(fields), protocol=pickle.HIGHEST_PROTOCOL)
        with self._cond:
            session = self._session
            if session is None:
                return
            self._outbox.append((session.wid, LOG_TID, True, data))
            if threading.current_thread() is not threading.main_thread():
                self._cond.notify_all()

    def kill_tasks(self) -> None:
        """Kill everything the running tasks run: commands, engine processes, their children."""
        self._abandoned = True
        below = command.descendants(os.getpid())
        command.kill_running()
        command.kill_tree(below)
        with self._cond:
            futures = list(self._futures.values())
        for future in futures:
            future.cancel()

    def _watch_parent(self) -> None:
        """A local worker: exit at once, killing what runs, when the master process is gone."""
        while os.getppid() == self.parent_pid:
            time.sleep(PARENT_POLL)
        self.kill_tasks()
        with contextlib.suppress(Exception):
            print(
                f"error: the master process {self.parent_pid} is gone; the worker killed its "
                "tasks and exits",
                file=sys.stderr,
                flush=True,
            )
        os._exit(EXIT_UNREACHABLE)

    def request_stop(self) -> None:
        """Take no more tasks; finish and report the running ones, then leave (SIGTERM)."""
        self._stop_requested = True  # only a flag: this runs in a signal handler

    def _window(self, session: _Session) -> int:
        """How many tasks to hold beyond those running: about PREFETCH_SECONDS of work.

        None before the first task has been timed, and none once tasks turn slow,
        so slow tasks spread over every worker and stay cancellable at the master.
        """
        if not session.prefetch or self._avg is None:
            return 0
        return min(session.prefetch, int(self._slots * PREFETCH_SECONDS / max(self._avg, 1e-7)))

    def _want(self, starved: bool) -> bool:
        """Whether to ask for tasks: a slot is free, or the prefetch is half gone.

        *starved*: the last request, made with no free slot, got nothing; then
        wait for a slot to free up rather than ask again at once.
        """
        session, held = self._session, self._in_flight
        assert session is not None
        if held < self._slots:
            return True
        window = self._window(session)
        return not starved and held < self._slots + window and held <= self._slots + window // 2

    def _take_loop(self) -> None:
        starved = False
        while not self._stop_requested:
            with self._cond:
                while not self._want(starved) and not self._stop_requested:
                    self._cond.wait(0.5)
                session = self._session
                assert session is not None
                free = max(0, self._slots - self._in_flight)
                room = max(0, self._slots + self._window(session) - self._in_flight - free)
                outbox, self._outbox = self._outbox, []  # ready results ride along
            if self._stop_requested:
                self._keep(outbox)
                log.info("stopping (SIGTERM): finishing the tasks running here")
                return
            results = [(tid, ok, data) for wid, tid, ok, data in outbox if wid == session.wid]
            # With a slot free, wait at the master for tasks (up to a second); with
            # none, only take what prefetch it has at once: this thread must be back
            # to ask for tasks as soon as a slot frees up.
            try:
                status, batch = session.link.call(
                    "take", session.wid, (free, room, self._slots), 1.0 if free else 0.0, results
                )
            except _LINK_ERRORS as exc:
                self._keep(outbox)
                session.link.close()
                log.warning(
                    "lost the connection to the master at %s (%s: %s); reconnecting%s",
                    self._where(),
                    type(exc).__name__,
                    exc,
                    f" for up to {self.retry_for:g} s" if self.retry_for < math.inf else "",
                )
                self._install(self._connect(session.wid))
                continue
            if status == "stop":
                log.info("the master at %s is shutting down: stopping", self._where())
                return
            if status == "stale":  # the master gave up on us: start afresh
                session.link.close()
                log.warning("the master at %s had given up on this worker", self._where())
                self._install(self._connect(None))
                continue
            starved = not free and not batch
            if batch:
                log.debug("took %d task(s)", len(batch))
            if batch and self._cannot_start is not None:
                # Tell the caller, on the futures of the tasks taken, then leave.
                with self._cond:
                    self._in_flight += len(batch)
                self._done(session.wid, [tid for tid, _ in batch], None, self._cannot_start)
                return
            if batch:
                self._start(session.wid, batch)

    def _start(self, wid: str, batch: list[tuple[int, Payload]]) -> None:
        with self._cond:
            self._in_flight += len(batch)
        # Command tasks run on threads of this process, where cancel can kill them.
        commands = [item for item in batch if _runs_command(item[1][0])]
        if commands:
            batch = [item for item in batch if item not in commands]
            if self._commands is None:
                self._commands = concurrent.futures.ThreadPoolExecutor(
                    self._slots, thread_name_prefix="executors-worker-command"
                )
            for tid, payload in commands:
                future = self._commands.submit(self._run_command, wid, tid, payload)
                self._track(wid, tid, future)
        # An engine that runs tasks in submit() (inline) gets the batch in one call;
        # others get one call per task, so that tasks run side by side.
        inline = getattr(self._engine, "runs_in_submit", False)
        for group in [batch] if inline else [[item] for item in batch]:
            if not group:
                continue
            tids = [tid for tid, _ in group]
            run: Callable[..., Any] = execute_many
            own = _own_timeout(group[0][1][0]) if len(group) == 1 else None
            if own is not None:  # the engine kills it where it can, as with task_timeout
                run = with_timeout(own[0])(_Named(own[1]))
            try:
                future = self._engine.submit(run, [payload for _, payload in group])
            except BaseException as exc:
                self._done(wid, tids, None, exc)
            else:
                if self._stops_tasks:
                    self._track(wid, tids[0], future)
                else:
                    future.add_done_callback(functools.partial(self._done, wid, tids, error=None))

    def _track(self, wid: str, tid: int, future: Future[Any]) -> None:
        """Keep *future* for a cancel until it is done."""
        with self._cond:
            self._futures[wid, tid] = future
        future.add_done_callback(functools.partial(self._done, wid, [tid], error=None))

    def _run_command(
        self, wid: str, tid: int, payload: Payload
    ) -> tuple[list[tuple[bool, bytes]], float]:
        key = (wid, tid)
        with self._cond:
            if key in self._cancelled:
                self._cancelled.discard(key)
                return [(False, _pack(concurrent.futures.CancelledError()))], 0.0
            self._threads[key] = threading.get_ident()
        try:
            return execute_many([payload])
        finally:
            with self._cond:
                self._threads.pop(key, None)

    def _cancel(self, wid: str, tids: list[int]) -> None:
        """Stop the tasks *tids*, which the caller cancelled."""
        for tid in tids:
            key = (wid, tid)
            with self._cond:
                future = self._futures.get(key)
            if future is None or future.cancel():  # done, or stopped (killed) by its engine
                continue
            with self._cond:
                ident = self._threads.get(key)
                if ident is None:  # its thread is about to start it: it will not
                    if key in self._futures:
                        self._cancelled.add(key)
                    continue
            deadline = time.monotonic() + 5.0
            while not command.kill_running(thread=ident) and time.monotonic() < deadline:
                with self._cond:  # not yet started its process, or already done
                    if self._threads.get(key) != ident:
                        break
                time.sleep(0.01)

    def _cancel_loop(self) -> None:
        own = _OwnLink(self.address, self.authkey)
        try:
            while not self._stopping:
                with self._cond:
                    session, generation = self._session, self._generation
                assert session is not None
                try:
                    status, tids = own.get(generation).call("watch", session.wid, 1.0)
                except (*_LINK_ERRORS, AuthenticationError):
                    own.drop()
                    with self._cond:
                        self._cond.wait(0.5)
                    continue
                if tids:
                    self._cancel(session.wid, tids)
                if status == "stop":
                    return
                if status == "stale":
                    with self._cond:
                        self._cond.wait(0.2)
        finally:
            own.drop()

    def _done(
        self,
        wid: str,
        tids: list[int],
        future: Future[tuple[list[tuple[bool, bytes]], float]] | None,
        error: BaseException | None,
    ) -> None:
        results: list[tuple[bool, bytes]] = []
        if len(tids) == 1 and self._futures:
            with self._cond:
                self._futures.pop((wid, tids[0]), None)
                self._cancelled.discard((wid, tids[0]))
        if future is not None:
            try:
                results, seconds = future.result()
            except BaseException as exc:  # the engine broke, or killed the task's process
                error = exc
            else:
                each = seconds / max(len(tids), 1)
                self._avg = each if self._avg is None else 0.8 * self._avg + 0.2 * each
        if error is not None:
            results = [(False, _pack(error))] * len(tids)
            if type(error) is BrokenExecutor and self._cannot_start is None:
                # The engine broke for good (its initializer raised): no task can start here.
                self._cannot_start = error
                log.error("%s", error)
        with self._cond:
            self._outbox.extend((wid, tid, ok, data) for tid, (ok, data) in zip(tids, results))
            self._in_flight -= len(tids)
            self.done += len(results)
            self.failed += sum(not ok for ok, _ in results)
            if threading.current_thread() is not threading.main_thread():
                self._cond.notify_all()  # the main thread carries its own results

    def _keep(self, outbox: list[tuple[str, int, bool, bytes]]) -> None:
        """Put back results that could not be sent, for the next call to carry."""
        with self._cond:
            self._outbox[:0] = outbox
            self._cond.notify_all()

    def _send_loop(self) -> None:
        own = _OwnLink(self.address, self.authkey)
        last = time.monotonic()  # when the master last heard from this thread
        try:
            while True:
                with self._cond:
                    session = self._session
                    assert session is not None
                    beat = last + session.heartbeat
                    while not self._outbox and not self._stopping and time.monotonic() < beat:
                        self._cond.wait(beat - time.monotonic())
                    done = self._stopping and not self._in_flight
                    outbox, self._outbox = self._outbox, []
                    session, generation = self._session, self._generation
                assert session is not None
                batch = [(tid, ok, data) for wid, tid, ok, data in outbox if wid == session.wid]
                try:
                    own.get(generation).call("put", session.wid, batch)
                    last = time.monotonic()
                except (*_LINK_ERRORS, AuthenticationError):
                    own.drop()
                    with self._cond:  # keep the results; give the main thread time to reconnect
                        self._outbox[:0] = outbox
                        if self._stopping:
                            return
                        self._cond.wait(1.0)
                    continue
                if done:
                    return
                self._summarize()
        finally:
            own.drop()

    def _summarize(self, force: bool = False) -> None:
        """Log the tasks done since the last summary, every SUMMARY_EVERY s (or now: *force*)."""
        now = time.monotonic()
        if not force and now - self._summary_at < SUMMARY_EVERY:
            return
        with self._cond:
            done, failed = self.done, self.failed
        then_done, then_failed = self._summarized
        if done == then_done and not force:
            return
        self._summarized, self._summary_at = (done, failed), now
        if force:
            log.info("%d task(s) done for the master at %s, %d failed", done, self._where(), failed)
        else:
            log.info(
                "%d task(s) done in the last %.0f s, %d failed (%d in all)",
                done - then_done,
                SUMMARY_EVERY,
                failed - then_failed,
                done,
            )

    def _finish(self, sender: threading.Thread) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        sender.join()
        if self._commands is not None:
            self._commands.shutdown(wait=not self._abandoned, cancel_futures=self._abandoned)
        if self._engine is not None:
            self._engine.shutdown(wait=not self._abandoned, cancel_futures=self._abandoned)
        session = self._session
        if session is not None:
            with contextlib.suppress(*_LINK_ERRORS):
                session.link.call("bye", session.wid)
            session.link.close()


def _picklable_or_repr(value: Any) -> Any:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return repr(value)
    return value


def main(argv: Sequence[str] = ()) -> int:
    """``python -m executors worker HOST:PORT [--workers N] [--backend SPEC] [--keep-alive]``."""
    args = _parser().parse_args(argv)
    enter_worker()  # tasks here get the default backend: see executors._env
    asked = os.environ.get("EXECUTORS_BACKEND")
    if asked:  # the same for the tasks its engine's processes run, if it has any
        os.environ["EXECUTORS_WORKER_BACKEND"] = asked
    try:
        address = parse_address(args.address, source="the command line")
        authkey = check_authkey(None, source=f"${AUTHKEY_ENV}")
        if args.workers is not None and args.workers < 1:
            raise InvalidOption(f"--workers must be greater than 0, got {args.workers!r}")
        registry.get_backend(parse_spec(args.backend).name, source="--backend")
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else 0)
    current: list[Worker] = []
    stop = threading.Event()

    def make(retry_for: float) -> Worker:
        worker = Worker(
            address,
            authkey,
            slots=args.workers,
            backend=args.backend,
            name=os.environ.get(NAME_ENV, ""),
            retry_for=retry_for,
            parent_pid=args.parent_pid,
            keep_alive=args.keep_alive,
        )
        current[:] = [worker]
        if stop.is_set():
            worker.request_stop()
        return worker

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()
        for worker in current:
            worker.request_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    worker = make(math.inf if args.keep_alive else args.retry_for)
    log.info(
        "worker %s starts: %s; master at %s%s",
        worker.name,
        worker.describe_engine(),
        worker._where(),
        " (--keep-alive: serves one master after another)" if args.keep_alive else "",
    )
    try:
        while True:
            try:
                status = worker.run()
            except WorkerExit as exc:
                if not args.keep_alive or exc.status in (EXIT_OK, EXIT_AUTH) or stop.is_set():
                    raise
                log.error("%s", exc)
                status = exc.status
            if not args.keep_alive or stop.is_set():
                return status
            if status == EXIT_CANNOT_START:
                stop.wait(5.0)  # the same master may still be there: do not spin on it
            worker = make(math.inf)
    except WorkerExit as exc:
        if exc.status != EXIT_OK:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        if worker._abandoned:  # tasks killed: threads the engine could not stop may be left
            sys.stdout.flush()
            os._exit(exc.status)
        return exc.status
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m executors worker",
        description="Connect to a remote master and run its tasks. The authkey is read from "
        f"${AUTHKEY_ENV}, never from the command line.",
    )
    parser.add_argument("address", help="the master's HOST:PORT")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="tasks run at once: N worker processes (pool engine) or N threads (thread "
        "engine); default: the engine's (the CPU count for pool)",
    )
    parser.add_argument(
        "--backend",
        default="pool",
        metavar="SPEC",
        help="the engine running the tasks here (default: pool, processes that run "
        "CPU-bound Python in parallel; thread for I/O-bound tasks)",
    )
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="when the master shuts down (or is lost), wait for the next one at the same "
        "address and serve it, instead of exiting; stop with SIGTERM or Ctrl-C",
    )
    parser.add_argument(
        "--retry-for",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to keep trying to reach the master (default: 30; with "
        "--keep-alive it waits as long as it takes)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also log each batch of tasks taken"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="exit, killing the running tasks, as soon as process PID (the master that "
        "started this worker) is gone; for local workers",
    )
    return parser


def _configure_logging(level: int) -> None:
    """Log ``executors.worker`` to stderr at *level* (0: INFO), with the time."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s executors worker: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    log.addHandler(handler)
    log.setLevel(level or logging.INFO)
    log.propagate = False
