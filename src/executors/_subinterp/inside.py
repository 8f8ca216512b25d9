"""What a worker interpreter imports: run one pickled task, answer with one pickled outcome.

This module runs *inside* the subinterpreters of the ``interpreter`` backend
(see :mod:`executors._subinterp`). Each function takes bytes and returns bytes,
the one kind of value every interpreter engine shares without pickling
through a queue: ``(OK, value)`` or ``(ERR, PackedException)``, pickled.
"""

from __future__ import annotations

import pickle
import re
import types
from typing import Any

from .. import context
from ..errors import SerializationError
from ..serialization import describe, fallback_dumps, pack_exception

__all__ = ["ERR", "OK", "boot", "initialize", "run"]

OK, ERR = 0, 1


# CPython's words for an extension module that is not ready for subinterpreters
_REFUSED = re.compile(r"module (\S+) does not support loading in subinterpreters")


def _explain(exc: BaseException) -> BaseException:
    """An ImportError from a module that refuses subinterpreters, reworded with the fix."""
    found = _REFUSED.search(str(exc)) if isinstance(exc, ImportError) else None
    if found is None:
        return exc
    module = found.group(1)
    error = ImportError(
        f"the extension module {module!r} cannot be loaded in a subinterpreter (it does not "
        "support several interpreters in one process yet), so this task cannot run on the "
        "'interpreter' backend; run it on 'pool' instead (worker processes)",
        name=module,
    )
    error.__cause__ = exc
    return error


def _outcome(kind: int, value: Any) -> bytes:
    try:
        # cloudpickle when plain pickle refuses: a result whose class came by value
        # (defined in the caller's __main__) goes back by value, as the same class.
        return fallback_dumps((kind, value))
    except Exception as exc:
        error = SerializationError(
            f"cannot pickle the result of the task ({describe(value)}): "
            f"{type(exc).__name__}: {exc}; return plain data (numbers, strings, lists, dicts, "
            "dataclasses of those) instead of open files, locks, sockets or generators"
        )
        return pickle.dumps((ERR, pack_exception(error)), protocol=pickle.HIGHEST_PROTOCOL)


def _unpickle(payload: bytes) -> tuple[Any, ...]:
    try:
        task: tuple[Any, ...] = pickle.loads(payload)
    except BaseException as exc:
        cause = _explain(exc)
        if cause is not exc:
            raise cause from exc
        error = SerializationError(
            f"the worker interpreter could not unpickle the task: {type(exc).__name__}: {exc}; "
            "functions and classes must be importable by module name (a subinterpreter has "
            "its own empty __main__): define them in a module, or pass "
            "serializer='cloudpickle'"
        )
        raise error from exc
    return task


def boot() -> None:
    """Set up a new worker interpreter (called there once, never in the caller's).

    One worker thread drives the interpreter, but each call into it may come with
    a fresh thread state (3.13), which would empty a :class:`threading.local`: the
    worker's state (:data:`executors.context.worker`) is simply this interpreter's.
    """
    context.worker = types.SimpleNamespace()  # type: ignore[assignment]


def run(payload: bytes) -> bytes:
    """Run the task ``(fn, args, kwargs, context values)``; never raises."""
    try:
        fn, args, kwargs, values = _unpickle(payload)
        if values:
            result = context.run(values, fn, *args, **(kwargs or {}))
        else:
            result = fn(*args, **(kwargs or {}))
    except BaseException as exc:
        return _outcome(ERR, pack_exception(_explain(exc)))
    return _outcome(OK, result)


def initialize(payload: bytes) -> bytes:
    """Call the pickled ``(initializer, initargs)`` once, before the worker's first task."""
    try:
        init, initargs = _unpickle(payload)
        init(*initargs)
    except BaseException as exc:
        return _outcome(ERR, pack_exception(_explain(exc)))
    return _outcome(OK, None)
