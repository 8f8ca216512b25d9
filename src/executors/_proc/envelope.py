"""The call envelope: a task packed for a child, run there in its context, its outcome packed back.

``fork``, ``process``, ``pool`` and ``subprocess`` all run a call somewhere
else and bring back an *outcome*: ``(OK, value)`` or ``(ERR, PackedException)``.
This module packs the call (naming whatever would not pickle), runs it inside
the caller's :mod:`executors.context` values, and packs the outcomes (turning
an unpicklable result into the facts of a
:class:`~executors.errors.SerializationError` for that task only), and, in the
parent, words the error an outcome stands for.

Nothing here starts a thread: code that runs in a freshly forked child must
not wait on a lock that one of our threads could have held at fork time.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from .. import context
from .._wording import call_name
from ..errors import SerializationError
from ..serialization import (
    Dumps,
    PackedException,
    call_parts,
    describe,
    dumps,
    pack_exception,
    picklable_record,
    unpack_exception,
)
from .wire import ERR, LOAD_FAILED, LOG, OK, UNPICKLABLE

__all__ = [
    "Outcome",
    "capture",
    "fold_context",
    "outcome_error",
    "pack_call",
    "pack_outcomes",
    "packed",
    "run_call",
    "run_packed",
]

Outcome = tuple[int, Any]


# -- the caller's side ------------------------------------------------------------


def capture() -> dict[str, Any] | None:
    """:func:`executors.context.capture`, or None when nothing is bound (cheaper to send)."""
    values = context.current()
    return dict(values) if values else None


def fold_context(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    values: dict[str, Any] | None,
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None]:
    """The call ``(fn, args, kwargs)`` as it is pickled, with *values* folded in.

    With context values the call is ``context.run(values, fn, *args, **kwargs)``:
    unpickling it imports :mod:`executors.context` where it is needed, so the
    pool engine's worker leaf runs every call alike and never imports the package.
    """
    if values:
        return context.run, (values, fn, *args), kwargs or None
    return fn, args, kwargs or None


def pack_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    values: dict[str, Any] | None,
    pickler: Dumps,
) -> bytes:
    """Pickle a task, or raise :class:`SerializationError` naming the part that would not."""
    call = fold_context(fn, args, kwargs, values)
    try:
        return pickler(call)
    except Exception:
        parts = call_parts(fn, args, kwargs, values)
        return dumps(call, what=f"the task {call_name(fn)}", parts=parts, pickler=pickler)


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


def run_packed(payload: bytes, buffers: Any = None) -> Outcome:
    """Unpickle a task made by :func:`pack_call` and run it; never raises.

    A task that will not unpickle is a ``LOAD_FAILED`` outcome: the parent words
    its error (:func:`outcome_error`), as for the pool engine's worker leaf.
    *buffers* are its out-of-band buffers (pickle protocol 5), or the error that
    kept them from it.
    """
    try:
        if buffers is None:  # (the small tasks' path: no keyword for loads to parse)
            fn, args, kwargs = pickle.loads(payload)
        elif isinstance(buffers, BaseException):
            raise buffers
        else:
            fn, args, kwargs = pickle.loads(payload, buffers=buffers)
    except BaseException as exc:
        return LOAD_FAILED, pack_exception(exc)
    return run_call(fn, args, kwargs, None)


def pack_outcomes(items: list[tuple[Any, int, Any]], pickler: Dumps) -> bytes:
    """Pickle ``[(key, kind, value), ...]``; a result that will not pickle becomes UNPICKLABLE.

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
                    fixed.append((key, LOG, picklable_record(value, pickler)))
                else:
                    facts = (describe(value), type(exc).__name__, str(exc))
                    fixed.append((key, UNPICKLABLE, facts))
            else:
                fixed.append((key, kind, value))
        return pickler(fixed)


# -- the parent's side ------------------------------------------------------------


def packed(value: Any) -> PackedException:
    """*value* as a PackedException: the worker leaf sends its fields as a plain tuple."""
    return value if isinstance(value, PackedException) else PackedException(*value)


def outcome_error(kind: int, value: Any) -> BaseException:
    """The exception of an ``ERR``, ``LOAD_FAILED`` or ``UNPICKLABLE`` outcome.

    Children send facts (what failed, its type name, its message); the words
    are chosen here, in the parent, once for every engine. An exception made
    here already (a result that would not load, say) is returned as it is.
    """
    if isinstance(value, BaseException):
        return value
    if kind == LOAD_FAILED:
        facts = packed(value)
        error = SerializationError(
            f"the worker could not unpickle the task: {facts.type_name.rpartition('.')[2]}: "
            f"{facts.message}; functions and classes of __main__, lambdas and closures "
            "travel by value, those of other modules by name: is the module importable "
            "in the worker?"
        )
        error.__cause__ = unpack_exception(facts)
        return error
    if kind == UNPICKLABLE:
        what, type_name, message = value
        return SerializationError(
            f"cannot pickle the result of the task ({what}): {type_name}: {message}; return "
            "plain data (numbers, strings, lists, dicts, dataclasses of those) instead of "
            "open files, locks, sockets or generators"
        )
    return unpack_exception(packed(value))
