"""The worker side of the engine backends: run one batch of tasks where the engine put it.

An engine (dask, Ray) runs :func:`run_batch` as one of its own tasks. It runs the
executor's initializer once per worker thread, each task with the caller's bound
context, and returns every outcome (a value, or the exception packed with its
traceback) together with the log records the tasks emitted and the time they took.
Only the standard library and :mod:`executors` core modules are imported, so a
worker that can import ``executors`` can run it.

Tasks and results cross as bytes this module pickles (:func:`pack_task`, and each
result in the worker), not as objects the engine pickles: so an argument that will
not pickle fails ``submit()`` naming it, one that will not load fails its own task
(never the engine's scheduler, which only sees bytes), and a result that will not
pickle fails its own task with :class:`~executors.SerializationError`, not the
whole batch with the engine's error.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from .. import context
from .._wording import call_name
from ..errors import SerializationError
from ..serialization import (
    PackedException,
    auto_dumps,
    call_parts,
    dumps,
    load_error,
    pack_exception,
    picklable_record,
)

__all__ = ["Batch", "Outcome", "Task", "load_result", "pack_task", "run_batch"]

#: ``(fn, args, kwargs, bound context values)``: one task, pickled by :func:`pack_task`.
Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Mapping[str, Any]]


class Batch(NamedTuple):
    """What one engine task carries: the executor's identity and set-up, and its tasks."""

    token: str
    initializer: Callable[..., object] | None
    initargs: tuple[Any, ...]
    log_level: int
    #: Each a :data:`Task` pickled by :func:`pack_task`.
    tasks: list[bytes]


class Outcome(NamedTuple):
    """What one engine task returns."""

    #: ``(True, pickled value)`` or ``(False, PackedException)`` per task, in order.
    results: list[tuple[bool, Any]]
    #: The initializer's packed exception; then no task ran.
    broken: PackedException | None
    #: The log records of the batch, pickled.
    records: bytes
    seconds: float


def pack_task(task: Task) -> bytes:
    """*task* pickled (by value where it must be), or :class:`SerializationError` naming
    the function, argument or context value that would not pickle."""
    fn, args, kwargs, values = task
    try:
        return auto_dumps(task)
    except Exception:
        parts = call_parts(fn, args, kwargs, values)
        return dumps(task, what=f"the task {call_name(fn)}", parts=parts)


def load_result(fn: Callable[..., Any], data: bytes) -> tuple[bool, Any]:
    """In the caller: a task's pickled value, or the error saying it would not load."""
    try:
        return True, pickle.loads(data)
    except BaseException as exc:  # a __reduce__ can return any callable, sys.exit too
        return False, load_error(call_name(fn), exc)


def _load_task(data: bytes) -> Task:
    try:
        task: Task = pickle.loads(data)
    except BaseException as exc:
        error = SerializationError(
            f"the worker could not unpickle the task: {type(exc).__name__}: {exc}; "
            "functions and classes of __main__, lambdas and closures travel by value, "
            "those of other modules by name: is the module importable in the worker?"
        )
        raise error from exc
    return task


def _run(data: bytes) -> tuple[bool, Any]:
    """One task: ``(True, its pickled value)`` or ``(False, its packed exception)``."""
    try:
        fn, args, kwargs, values = _load_task(data)
    except SerializationError as exc:
        return False, pack_exception(exc)
    try:
        value = context.run(values, fn, *args, **kwargs)
    except KeyboardInterrupt:
        raise  # how ray.cancel stops a task: Ray must see the task end by it
    except BaseException as exc:  # SystemExit too: it must not end the engine's worker
        return False, pack_exception(exc)
    try:
        return True, dumps(value, what=f"the result of {call_name(fn)}")
    except SerializationError as exc:
        return False, pack_exception(exc)


def _pack_records(records: list[logging.LogRecord]) -> bytes:
    """Pickle *records*; an attribute that will not pickle (an ``extra=`` lock) as its repr."""
    try:
        return auto_dumps(records)
    except Exception:
        return auto_dumps([picklable_record(r, auto_dumps) for r in records])


# Per worker thread (context.worker is per thread too): the executors whose
# initializer already ran on this thread.
_local = threading.local()


class _Capture(logging.Handler):
    """Keeps the records of the threads that are running a batch, for the caller."""

    def emit(self, record: logging.LogRecord) -> None:
        sink: list[logging.LogRecord] | None = getattr(_local, "sink", None)
        if sink is None:
            return  # another thread of the worker (the engine's own logging)
        try:
            copy = logging.makeLogRecord(record.__dict__)
            copy.msg, copy.args = record.getMessage(), None
            if record.exc_info:
                copy.exc_text = copy.exc_text or logging.Formatter().formatException(
                    record.exc_info
                )
            copy.exc_info = None
            copy.__dict__.pop("message", None)
            sink.append(copy)
        except Exception:
            self.handleError(record)


_capture = _Capture()
_install_lock = threading.Lock()


def _listen(level: int) -> None:
    root = logging.getLogger()
    with _install_lock:
        if _capture not in root.handlers:
            root.addHandler(_capture)
        # Records below the root's level never reach a handler; lower it to what the
        # caller logs (it is never raised back: other batches may want it too).
        if root.level > level:
            root.setLevel(level)


def run_batch(batch: Batch) -> Outcome:
    """Run the tasks of *batch* in order on this thread; never raises for a task."""
    records: list[logging.LogRecord] = []
    _listen(batch.log_level)
    _local.sink = records
    start = time.perf_counter()
    try:
        ready: set[str] = _local.__dict__.setdefault("ready", set())
        if batch.initializer is not None and batch.token not in ready:
            try:
                batch.initializer(*batch.initargs)
            except Exception as exc:
                return Outcome([], pack_exception(exc), _pack_records(records), 0.0)
            ready.add(batch.token)
        results = [_run(data) for data in batch.tasks]
        return Outcome(results, None, _pack_records(records), time.perf_counter() - start)
    finally:
        _local.sink = None
