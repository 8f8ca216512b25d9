"""Every error this library raises, in one hierarchy.

::

    ExecutorError
    ├── BackendError
    │   ├── BackendNotFound (also LookupError)       name not in the table or entry points
    │   └── BackendUnavailable (also ImportError)    known, but the platform or a package lacks
    ├── InvalidOption (also ValueError)              bad spec, unknown option or bad value
    ├── BrokenExecutor (also concurrent.futures.BrokenExecutor)
    │   ├── WorkerCrashed (also BrokenProcessPool)   a worker died while running the task
    │   └── WorkerLost                               a remote worker vanished too often
    ├── TaskTimeout (also TimeoutError)              a task overran its own timeout
    ├── SerializationError (also TypeError,          something would not pickle, or a
    │                       pickle.PicklingError)    result would not load in the caller
    └── RemoteError                                  a task's exception could not travel back

The standard library's names catch ours too: code written for
:mod:`concurrent.futures` that catches
:class:`~concurrent.futures.process.BrokenProcessPool` when a worker dies, or
:class:`pickle.PicklingError` when something does not pickle, keeps working
(``TerminatedWorkerError`` of loky is a ``BrokenProcessPool`` for the same reason).

Task exceptions are never wrapped: ``future.result()`` raises the task's own
exception, with the worker's traceback chained as its ``__cause__`` when the task
ran in another process (see :class:`executors.serialization.RemoteTraceback`).
"""

from __future__ import annotations

import concurrent.futures
import pickle
import sys

__all__ = [
    "BackendError",
    "BackendNotFound",
    "BackendUnavailable",
    "BrokenExecutor",
    "ExecutorError",
    "InvalidOption",
    "RemoteError",
    "SerializationError",
    "TaskTimeout",
    "WorkerCrashed",
    "WorkerLost",
]


class ExecutorError(Exception):
    """Base class of every error raised by this library (never of a task's own errors)."""


class BackendError(ExecutorError):
    """A backend could not be looked up or loaded."""


class BackendNotFound(BackendError, LookupError):
    """Raised by :func:`executors.get_executor` for a name that no backend has.

    The message lists the known names and the closest match.
    """


class BackendUnavailable(BackendError, ImportError):
    """Raised for a known backend that this platform or installation cannot run.

    The message says why (missing package, missing ``os.fork``...) and how to fix it.
    """


class InvalidOption(ExecutorError, ValueError):
    """Raised for a malformed spec, an option the backend does not take, or a bad value.

    The message names the option, where it came from and what is allowed.
    """


# On Python < 3.11, concurrent.futures.TimeoutError is not the builtin TimeoutError;
# a TaskTimeout must be caught by ``except`` clauses written for either.
_timeout_bases: tuple[type[BaseException], ...] = (
    (TimeoutError,)
    if issubclass(concurrent.futures.TimeoutError, TimeoutError)
    else (concurrent.futures.TimeoutError, TimeoutError)
)


class BrokenExecutor(ExecutorError, concurrent.futures.BrokenExecutor):
    """The executor, or the worker running a task, can no longer run it."""


# concurrent.futures.process imports multiprocessing, which ``import executors`` must not:
# WorkerCrashed gets BrokenProcessPool as a base here when that module is loaded already,
# else when a backend that can raise it is imported (_adopt_broken_process_pool).
_crash_bases: tuple[type[BaseException], ...] = tuple(
    [sys.modules["concurrent.futures.process"].BrokenProcessPool]
    if "concurrent.futures.process" in sys.modules
    else []
)


class WorkerCrashed(BrokenExecutor, *_crash_bases):  # type: ignore[misc]
    """A worker process died while it held the task: killed by a signal or exited early.

    Also a :class:`concurrent.futures.process.BrokenProcessPool`, so that code
    written for the standard library's pool catches it; unlike that pool, ours
    is not broken after it.

    Raised from ``future.result()`` of the task(s) that worker held. ``exitcode``
    follows :attr:`multiprocessing.Process.exitcode`: a negative number ``-N`` means
    killed by signal ``N``. Backends that replace workers keep running after it.
    """

    def __init__(self, message: str, *, exitcode: int | None = None, pid: int | None = None):
        super().__init__(message)
        self.exitcode = exitcode
        self.pid = pid

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_crash, (str(self), self.exitcode, self.pid))


def _rebuild_crash(message: str, exitcode: int | None, pid: int | None) -> WorkerCrashed:
    _adopt_broken_process_pool()
    return WorkerCrashed(message, exitcode=exitcode, pid=pid)


def _adopt_broken_process_pool() -> None:
    """Make :class:`WorkerCrashed` a ``BrokenProcessPool`` (imports multiprocessing)."""
    from concurrent.futures.process import BrokenProcessPool

    if not issubclass(WorkerCrashed, BrokenProcessPool):
        WorkerCrashed.__bases__ = (BrokenExecutor, BrokenProcessPool)


class WorkerLost(BrokenExecutor):
    """A worker of another machine or cluster died or disconnected while it held the task,
    more often than the backend retries it (``remote``: ``max_retries``; ``dask``: the
    scheduler's ``allowed-failures``; ``ray``: ``retries``). The executor stays usable."""


class TaskTimeout(ExecutorError, *_timeout_bases):  # type: ignore[misc]
    """A task ran longer than its own ``timeout``; the backend stopped it.

    Not raised by ``future.result(timeout)`` or ``map(timeout=...)``: those only stop
    waiting and raise :class:`concurrent.futures.TimeoutError`, as the standard library does.
    """


class SerializationError(ExecutorError, TypeError, pickle.PicklingError):
    """A function, argument, result or exception could not be pickled, or unpickled.

    The message names the object (or the task whose result would not load in
    the caller) and suggests a fix: open files, locks and sockets cannot cross
    to another process; create them in the task, or use an in-process backend.
    """


class RemoteError(ExecutorError):
    """A task raised an exception that could not be sent back as itself.

    Happens when the exception's type cannot be pickled or rebuilt in the caller.
    ``type_name`` and the message keep what it said; the worker's traceback is the
    ``__cause__``.
    """

    def __init__(self, message: str, *, type_name: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_remote, (str(self), self.type_name))


def _rebuild_remote(message: str, type_name: str) -> RemoteError:
    return RemoteError(message, type_name=type_name)
