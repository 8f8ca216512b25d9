"""The call envelope: a task packed for a child, run there in its context, its outcome packed back.

``fork``, ``process``, ``pool`` and ``subprocess`` all run a call somewhere
else and bring back an *outcome*: ``(OK, value)`` or ``(ERR, PackedException)``.
This module packs the call (naming whatever would not pickle), runs it inside
the caller's :mod:`executors.context` values, and packs the outcomes (turning
an unpicklable result into a :class:`~executors.errors.SerializationError` for
that task only).

Nothing here starts a thread: code that runs in a freshly forked child must
not wait on a lock that one of our threads could have held at fork time.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable

from .. import context
from ..errors import SerializationError
from ..serialization import Dumps, PackedException, describe, dumps, pack_exception
from .exits import call_name
from .wire import ERR, LOG, OK

__all__ = ["Outcome", "capture", "pack_call", "pack_outcomes", "run_call", "run_packed"]

Outcome = tuple[int, Any]


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
