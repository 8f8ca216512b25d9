"""Task context: values the caller binds, readable inside every task it submits.

The classic ThreadLocal program, made portable. A web handler binds the user and
request id once; every function the task calls reads them without passing them
down, on whatever backend the task runs::

    >>> from executors import context, get_executor
    >>> from executors.demo import whoami
    >>> with get_executor() as ex, context.bind(user="alice", request_id=7):
    ...     ex.submit(whoami).result()
    'alice/7'

Values are captured when the task is *submitted* and are visible to that task
only: never to another task on the same worker, never after the task. Backends
that run tasks in other processes pickle them along with the task.

``context.worker`` is the other half: a namespace private to one worker (one
thread of the thread backend, one process of a process pool), for per-worker
objects such as a database connection that an ``initializer`` opens.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Callable, TypeVar

__all__ = ["bind", "capture", "current", "get", "run", "worker"]

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "executors_context", default=_EMPTY
)

#: Per-worker namespace: each worker thread (and so each worker process) sees its own.
worker = threading.local()

_RESERVED = frozenset(__all__) | {"_bound", "_EMPTY", "_RESERVED"}
_MISSING: Any = object()


@contextlib.contextmanager
def bind(**values: Any) -> Iterator[Mapping[str, Any]]:
    """Bind *values* for the tasks submitted inside the ``with`` block.

    Nested binds add to (and may shadow) the outer ones; leaving the block
    restores what was bound before.

    :raises InvalidOption: for a name that would hide an attribute of this module.
    """
    for name in values:
        if name in _RESERVED or name.startswith("__"):
            from .errors import InvalidOption

            raise InvalidOption(
                f"cannot bind {name!r}: it would hide executors.context.{name}; choose another name"
            )
    merged = MappingProxyType({**_bound.get(), **values})
    token = _bound.set(merged)
    try:
        yield merged
    finally:
        _bound.reset(token)


def current() -> Mapping[str, Any]:
    """A read-only view of everything bound for the running task (or caller)."""
    return _bound.get()


def get(name: str, default: Any = None) -> Any:
    """The value bound to *name*, or *default*."""
    return _bound.get().get(name, default)


def capture() -> dict[str, Any]:
    """What is bound now, as a plain dict a backend can pickle along with a task."""
    return dict(_bound.get())


def run(values: Mapping[str, Any], fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` with *values* bound, then unbind them.

    Process backends call this in the worker with what :func:`capture` returned.
    """
    if not values:
        return fn(*args, **kwargs)
    token = _bound.set(MappingProxyType(dict(values)))
    try:
        return fn(*args, **kwargs)
    finally:
        _bound.reset(token)


def __getattr__(name: str) -> Any:
    value = _bound.get().get(name, _MISSING)
    if value is _MISSING:
        bound = ", ".join(sorted(_bound.get())) or "nothing"
        raise AttributeError(
            f"executors.context has no value {name!r} (bound here: {bound}); "
            f"bind it where the task is submitted: with context.bind({name}=...)"
        )
    return value
