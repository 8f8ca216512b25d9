"""The worker side of the engine backends: run one batch of tasks where the engine put it.

An engine (dask, Ray) runs :func:`run_batch` as one of its own tasks. It runs the
executor's initializer once per worker thread, each task with the caller's bound
context, and returns every outcome (a value, or the exception packed with its
traceback) together with the log records the tasks emitted and the time they took.
Only the standard library and :mod:`executors` core modules are imported, so a
worker that can import ``executors`` can run it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from .. import context
from ..serialization import PackedException, pack_exception

__all__ = ["Batch", "Outcome", "Task", "run_batch"]

#: ``(fn, args, kwargs, bound context values)``: one task as it travels.
Task = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Mapping[str, Any]]


class Batch(NamedTuple):
    """What one engine task carries: the executor's identity and set-up, and its tasks."""

    token: str
    initializer: Callable[..., object] | None
    initargs: tuple[Any, ...]
    log_level: int
    tasks: list[Task]


class Outcome(NamedTuple):
    """What one engine task returns."""

    #: ``(True, value)`` or ``(False, PackedException)`` per task, in order.
    results: list[tuple[bool, Any]]
    #: The initializer's packed exception; then no task ran.
    broken: PackedException | None
    records: list[logging.LogRecord]
    seconds: float


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
                return Outcome([], pack_exception(exc), records, 0.0)
            ready.add(batch.token)
        results: list[tuple[bool, Any]] = []
        for fn, args, kwargs, values in batch.tasks:
            try:
                results.append((True, context.run(values, fn, *args, **kwargs)))
            except Exception as exc:
                results.append((False, pack_exception(exc)))
        return Outcome(results, None, records, time.perf_counter() - start)
    finally:
        _local.sink = None
