"""Machinery the process backends share: task envelopes, outcomes, exit descriptions, logging.

``fork``, ``process`` and ``pool`` all run a call somewhere else and bring back
an *outcome*: ``(OK, value)`` or ``(ERR, PackedException)``. This module packs
the call (naming whatever would not pickle), runs it inside the caller's
:mod:`executors.context` values, packs the outcome (turning an unpicklable
result into a :class:`~executors.errors.SerializationError` for that task
only), forwards the worker's log records to the parent, and words the
messages for workers that die (``worker 4242 died with SIGKILL(-9) while
running crunch(); ...``).

Nothing here starts a thread: code that runs in a freshly forked child must
not wait on a lock that one of our threads could have held at fork time.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable

from . import _subworker, _validate, context

# the kinds of outcome, the frames and the shared state are the light worker module's
from ._subworker import (
    ERR,
    INIT_FAILED,
    LOG,
    OK,
    frame,
    write_all,
)
from .errors import SerializationError, TaskTimeout, WorkerCrashed
from .protocol import BaseExecutor
from .serialization import (
    Dumps,
    PackedException,
    PickledCall,
    describe,
    dumps,
    get_pickler,
    pack_exception,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "ERR",
    "ProcessBackend",
    "LOG",
    "OK",
    "call_name",
    "crash_error",
    "describe_exit",
    "forking",
    "ForwardHandler",
    "install_log_forwarding",
    "pack_call",
    "pack_outcomes",
    "replay_log",
    "run_call",
    "run_forked",
    "run_packed",
    "signal_name",
    "timeout_error",
]


Outcome = tuple[int, Any]


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 77`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, from its exit code as :mod:`multiprocessing` reports it."""
    if exitcode is None:
        return "vanished (no exit status)"
    if exitcode < 0:
        return f"died with {signal_name(-exitcode)}({exitcode})"
    return f"exited with code {exitcode}"


def call_name(fn: Callable[..., Any]) -> str:
    """``crunch()`` for a function, for messages about the task running it."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str):
        name = type(fn).__name__
    return f"{name}()"


def crash_error(pid: int | None, exitcode: int | None, running: str, after: str) -> WorkerCrashed:
    """The error of a task whose worker died, e.g. ``worker 42 died with SIGKILL(-9) ...``."""
    return WorkerCrashed(
        f"worker {pid} {describe_exit(exitcode)} while running {running}; {after}",
        exitcode=exitcode,
        pid=pid,
    )


def timeout_error(seconds: float, running: str, pid: int | None, after: str) -> TaskTimeout:
    """The error of a task that overran its ``task_timeout``."""
    return TaskTimeout(
        f"{running} ran longer than task_timeout={seconds:g}s; worker {pid} was killed; {after}"
    )


@contextlib.contextmanager
def forking() -> Iterator[None]:
    """Silence Python 3.12+'s warning about forking a multi-threaded process, here only.

    Our own threads (a pool's manager) never run in the child and hold no lock
    the child needs; see the "fork safety" section of the ``pool`` docs. Also
    serializes our forks (see ``_FORK_LOCK``).
    """
    if not _WARNS_ON_FORK:
        with _FORK_LOCK:
            yield
        return
    with _FORK_LOCK, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*multi-threaded, use of fork", category=DeprecationWarning
        )
        yield


#: Held while any of our backends creates a child: a pipe made for one child is
#: closed in the parent before another fork can copy it into a second child.
_FORK_LOCK = threading.Lock()
_WARNS_ON_FORK = sys.version_info >= (3, 12)


class ProcessBackend(BaseExecutor):
    """What the fork, process and pool executors share: options, defaults, platforms."""

    def _take_options(
        self,
        max_workers: int | None,
        initializer: Callable[..., object] | None,
        initargs: Iterable[Any],
        task_timeout: float | None,
        serializer: str,
    ) -> Dumps:
        """Check and keep the shared options; return the pickler *serializer* names."""
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        self._init, self._initargs = _validate.initializer(initializer, initargs)
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        pickler = get_pickler(serializer)
        self.serializer = serializer
        return pickler

    def _take_start_method(self, value: str | None, default: str) -> str:
        """Check and keep ``start_method``; the forkserver is asked to preload our code."""
        self.start_method = _validate.start_method(value, default=default)
        if self.start_method == "forkserver":
            _preload_in_forkserver()
        if self.start_method != "fork" and self._init is not None:  # by value where need be
            self._init, self._initargs = (
                PickledCall(self._init, self._initargs, get_pickler(self.serializer)),
                (),
            )
        return self.start_method

    @classmethod
    def default_max_workers(cls) -> int:
        """The number of CPUs this process may use."""
        return _validate.cpu_count()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Needs POSIX pipes a manager thread can select on."""
        if os.name != "posix":
            return f"needs POSIX pipes, which {sys.platform} lacks; use 'thread' instead"
        return None


def _preload_in_forkserver() -> None:
    """Have multiprocessing's forkserver import this module once, not every child it forks.

    Otherwise each child imports ``executors`` anew: 180 ms a task on a loaded
    2-core machine, against 12 ms with the preload. It works only before the
    forkserver starts, and keeps whatever the program asked it to preload.
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver
    modules = getattr(server, "_preload_modules", None)
    if isinstance(modules, list) and __name__ not in modules:
        server.set_forkserver_preload([*modules, __name__])


# -- the caller's side ------------------------------------------------------------


def capture() -> dict[str, Any] | None:
    """:func:`executors.context.capture`, or None when nothing is bound (cheaper to send)."""
    values = context.current()
    return dict(values) if values else None


def pack_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    values: dict[str, Any] | None,
    pickler: Dumps,
) -> bytes:
    """Pickle a task, or raise :class:`SerializationError` naming the part that would not."""
    try:
        return pickler((fn, args, kwargs or None, values))
    except Exception:
        parts: dict[str, Any] = {"the function": fn}
        parts.update({f"argument {i + 1}": a for i, a in enumerate(args)})
        parts.update({f"keyword argument {k!r}": v for k, v in kwargs.items()})
        parts.update({f"context value {k!r}": v for k, v in (values or {}).items()})
        return dumps(
            (fn, args, kwargs, values),
            what=f"the task {call_name(fn)}",
            parts=parts,
            pickler=pickler,
        )


# -- the worker's side ------------------------------------------------------------


def run_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None, values: Any
) -> Outcome:
    """Run a task with its context values bound; never raises."""
    try:
        if values:
            return OK, context.run(values, fn, *args, **(kwargs or {}))
        if kwargs:
            return OK, fn(*args, **kwargs)
        return OK, fn(*args)
    except BaseException as exc:
        return ERR, pack_exception(exc)


def run_packed(payload: bytes) -> Outcome:
    """Unpickle a task made by :func:`pack_call` and run it; never raises."""
    try:
        fn, args, kwargs, values = pickle.loads(payload)
    except BaseException as exc:
        error = SerializationError(
            f"the worker could not unpickle the task: {type(exc).__name__}: {exc}; "
            "is the function's module importable in the worker (start method spawn)?"
        )
        error.__cause__ = exc
        return ERR, pack_exception(error)
    return run_call(fn, args, kwargs, values)


def _unpicklable_result(value: Any, exc: BaseException) -> PackedException:
    error = SerializationError(
        f"cannot pickle the result of the task ({describe(value)}): "
        f"{type(exc).__name__}: {exc}; return plain data (numbers, strings, lists, dicts, "
        "dataclasses of those) instead of open files, locks, sockets or generators"
    )
    return pack_exception(error)


def pack_outcomes(items: list[tuple[Any, int, Any]], pickler: Dumps) -> bytes:
    """Pickle ``[(key, kind, value), ...]``; a result that will not pickle becomes an ERR.

    A log record that will not pickle (an ``extra=`` holding a lock, say) keeps
    its kind: its unpicklable attributes travel as their ``repr``. Turning it
    into an outcome would pair it with the next task in flight, and every later
    future would get its neighbour's result.
    """
    try:
        return pickler(items)
    except Exception:
        fixed: list[tuple[Any, int, Any]] = []
        for key, kind, value in items:
            try:
                pickler(value)
            except Exception as exc:
                if kind == LOG:
                    fixed.append((key, LOG, _picklable_record(value, pickler)))
                else:
                    fixed.append((key, ERR, _unpicklable_result(value, exc)))
            else:
                fixed.append((key, kind, value))
        return pickler(fixed)


def _picklable_record(record: logging.LogRecord, pickler: Dumps) -> logging.LogRecord:
    """*record* with each attribute that will not pickle replaced by its ``repr``."""
    fields: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        try:
            pickler(value)
            fields[name] = value
        except Exception:
            try:
                fields[name] = repr(value)
            except Exception:
                fields[name] = f"<unrepresentable {type(value).__name__}>"
    return logging.makeLogRecord(fields)


class ForwardHandler(logging.Handler):
    """Keeps a worker's records for the parent, where :func:`replay_log` hands them on.

    Records go to ``sink`` (a list of ``(None, LOG, record)`` items the worker
    sends with its outcomes) or, when ``send`` is given, straight to it.
    """

    def __init__(self, send: Callable[[logging.LogRecord], None] | None = None) -> None:
        super().__init__()
        self.send = send
        self.sink: list[tuple[Any, int, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            copy = logging.makeLogRecord(record.__dict__)
            copy.msg, copy.args, copy.exc_info = message, None, None
            copy.__dict__.pop("message", None)
            if self.send is not None:
                self.send(copy)
            else:
                self.sink.append((None, LOG, copy))
        except Exception:
            self.handleError(record)


def install_log_forwarding(handler: ForwardHandler, level: int) -> None:
    """In a worker: route every record of the root logger to *handler*, at *level*."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def replay_log(record: logging.LogRecord) -> None:
    """In the parent: pass a worker's record to the handlers of its logger.

    A record that did not load (see :func:`executors.serialization.load_outcomes`)
    is dropped; a handler that raises does not stop the caller's manager thread.
    """
    if not isinstance(record, logging.LogRecord):
        return
    try:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    except BaseException:  # e.g. SystemExit from a handler; not ours to die of
        _log.exception("a handler failed on a worker's log record")


def outcome_failed(task: Any) -> None:
    """In a manager thread: setting *task*'s outcome raised (a done-callback, say); log it.

    Whatever one task's outcome does in the caller, the manager serves the others.
    """
    _log.exception("handling the outcome of %s raised", getattr(task, "label", None) or task)


_log = logging.getLogger("executors")


def ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which cancels and shuts down in order."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def flush_std_streams() -> None:
    """Flush stdout/stderr before a forked child leaves with ``os._exit``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def main_thread_only() -> bool:
    """True when no other Python thread runs (safe to fork without any warning)."""
    return threading.active_count() == 1


def close_fds(fds: list[int]) -> None:
    """Close inherited descriptors a child must not hold (siblings' pipe ends)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# -- framing: 8-byte length, then the bytes; a zero length means "stop" ------------

_HEADER = struct.Struct("!Q")


class FrameReader:
    """Non-blocking side of a pipe: feed it what ``os.read`` returned, take whole frames."""

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 0

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        start = 0
        while len(buf) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, start)
            end = start + _HEADER.size + size
            if len(buf) < end:
                break
            frames.append(bytes(buf[start + _HEADER.size : end]))
            start = end
        if start:
            del buf[:start]
        return frames


# -- the pool worker ---------------------------------------------------------------


def pool_worker(  # noqa: PLR0917 - a Process target
    tasks: Any,
    results: Any,
    state: Any,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    max_tasks: int | None,
    serializer: str,
    log_level: int,
    close: list[int],
) -> None:
    """The main function of a ``pool`` worker process: :func:`executors._subworker.serve`.

    *tasks* and *results* are the worker's ends of two pipes (Connections, used
    as raw descriptors with :func:`frame`); *state* is a shared array laid out
    as :mod:`executors._subworker` describes. Log records go to the parent.
    """
    from .serialization import get_pickler

    close_fds(close)
    ignore_sigint()
    pickler = get_pickler(serializer, main_by_value=False)
    out_fd = results.fileno()
    send_lock = threading.Lock()

    def send(items: list[tuple[Any, int, Any]]) -> None:
        data = frame(pack_outcomes(items, pickler))
        with send_lock:
            write_all(out_fd, data)

    install_log_forwarding(ForwardHandler(lambda record: send([(None, LOG, record)])), log_level)
    if initializer is not None:
        kind, value = run_call(initializer, initargs, {}, None)
        if kind == ERR:
            send([(None, INIT_FAILED, value)])
            return
    _subworker.serve(tasks.fileno(), state, max_tasks, run_packed, send)


# -- one child per task (fork, process) ------------------------------------------------


def run_in_child(  # noqa: PLR0917 - called positionally by the process backend's children
    out_fd: int,
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None, Any] | bytes,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    serializer: str,
    log_level: int,
) -> None:
    """Run one task in a fresh child; write its log records and outcome as one frame.

    *call* is ``(fn, args, kwargs, values)`` when the child was forked (nothing
    was pickled, so lambdas work) or the bytes :func:`pack_call` made.
    """
    from .serialization import get_pickler

    ignore_sigint()
    handler = ForwardHandler()
    install_log_forwarding(handler, log_level)
    pickler = get_pickler(serializer, main_by_value=False)
    run_forked(out_fd, call, initializer, initargs, pickler, handler)


def run_forked(  # noqa: PLR0917 - called positionally by both child launchers
    out_fd: int,
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None, Any] | bytes,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    pickler: Dumps,
    handler: ForwardHandler,
) -> None:
    """:func:`run_in_child`, for a child that ``os.fork()`` made from the caller's thread.

    A forked child pays for each page it writes first (copy-on-write, several
    microseconds each), and those faults are most of a small task's cost. So
    this does as little as it can: the caller made *handler* and *pickler*,
    and blocked SIGINT (the child inherits the mask); the root logger keeps
    the caller's level and gets only *handler*.
    """
    items: list[tuple[Any, int, Any]] = []
    handler.sink = items
    logging.root.handlers = [handler]
    outcome: Outcome = (OK, None)
    if initializer is not None:
        outcome = run_call(initializer, initargs, None, None)
        if outcome[0] == ERR:
            outcome = (INIT_FAILED, outcome[1])
    if outcome[0] == OK:
        outcome = run_packed(call) if isinstance(call, bytes) else run_call(*call)
    items.append((None, *outcome))
    flush_std_streams()
    write_all(out_fd, frame(pack_outcomes(items, pickler)))


def process_child(conn: Any, *args: Any) -> None:
    """The target of a ``process`` backend child: :func:`run_in_child` on *conn*'s descriptor."""
    run_in_child(conn.fileno(), *args)


# -- the manager threads of the fork, process and pool backends ----------------------

_managers: weakref.WeakSet[Any] = weakref.WeakSet()


def track_manager(manager: Any) -> None:
    """Stop *manager* at interpreter exit if it is still running then.

    A manager has ``shutdown(cancel_futures=...)``, a ``thread``, a ``selector`` and a
    wake pipe (``wake_r``, ``wake_w``).
    """
    _managers.add(manager)


def release_manager(manager: Any) -> None:
    """Close *manager*'s selector and wake pipe, once its thread is done with them."""
    with contextlib.suppress(Exception):
        manager.selector.close()
    for fd in (manager.wake_r, manager.wake_w):
        with contextlib.suppress(OSError):
            os.close(fd)
    manager.wake_r = manager.wake_w = -1
    _managers.discard(manager)


@atexit.register
def _stop_managers() -> None:
    for manager in list(_managers):
        manager.shutdown(cancel_futures=True)
        manager.thread.join(10.0)
