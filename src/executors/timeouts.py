"""A deadline for one call: ``ex.submit(with_timeout(5)(fn), x)`` on any backend.

:func:`with_timeout` gives one task the ``task_timeout`` the executor option gives
every task, in its place: the same :class:`~executors.TaskTimeout` at the deadline,
and the same fate for the worker. Where a backend can stop a running task (``fork``,
``process``, ``pool``, ``subprocess``; ``remote`` with a process engine or a local
worker running only that task; ``ray``) the task is killed (its worker replaced),
and the executor stays usable. Where it cannot (``thread``, ``asyncio``'s plain
functions, ``interpreter``, ``dask``), the future fails at the deadline and the
task runs on to its end; what it returns then is dropped. A coroutine on
``asyncio`` is cancelled. ``inline`` runs the task inside ``submit()``: its future
fails when the task returns after the deadline.

A backend reads the deadline with :func:`split` when a task is submitted and
runs the function inside; only ``remote`` sends the wrapper on, so that the
worker's own engine keeps the deadline too.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from ._compat import ParamSpec
from .errors import InvalidOption

__all__ = ["Timed", "rewrap", "split", "with_timeout"]

P = ParamSpec("P")
R = TypeVar("R")


class Timed(Generic[P, R]):
    """*fn* with a ``task_timeout`` of its own; what :func:`with_timeout` returns.

    Calling it calls *fn* (no deadline is kept then: an executor keeps it).
    """

    __slots__ = ("fn", "seconds")

    def __init__(self, fn: Callable[P, R], seconds: float) -> None:
        self.fn = fn
        self.seconds = seconds

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Timed, (self.fn, self.seconds))

    def __repr__(self) -> str:
        return f"with_timeout({self.seconds:g})({self.fn!r})"


def with_timeout(seconds: float) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Give the calls of a function submitted to an executor a deadline of their own.

    ``ex.submit(with_timeout(2)(fn), x)`` runs ``fn(x)`` with ``task_timeout=2``
    whatever the executor's own ``task_timeout`` (which it replaces for this
    task). With :meth:`~executors.Executor.map`, each item gets the deadline: the
    map then submits one task per item (with an explicit ``chunksize`` above 1,
    each chunk gets it instead).

    >>> import time
    >>> from executors import TaskTimeout, get_executor, with_timeout
    >>> with get_executor("thread") as ex:
    ...     future = ex.submit(with_timeout(0.1)(time.sleep), 1)
    ...     try:
    ...         future.result()
    ...     except TaskTimeout:
    ...         print("too slow")
    too slow

    :param seconds: how long each call may run, a positive number.
    :raises InvalidOption: for a *seconds* that is not a positive number.

    .. versionadded:: 0.1
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise InvalidOption(
            f"with_timeout() needs a positive number of seconds, got {seconds!r}; "
            "for no deadline, submit the function itself"
        )
    checked = float(seconds)

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError(f"with_timeout({checked:g}) needs a callable, got {fn!r}")
        if type(fn) is Timed:  # the outermost deadline wins
            fn = fn.fn
        return Timed(fn, checked)

    return wrap


def split(fn: Callable[..., R], default: float | None) -> tuple[Callable[..., R], float | None]:
    """``(function, seconds)`` of a submitted task: its own deadline, else *default*."""
    if type(fn) is Timed:
        return fn.fn, fn.seconds
    return fn, default


def rewrap(
    fn: Callable[..., Any], change: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Callable[..., Any]:
    """*change* applied to the function inside *fn*, keeping its deadline."""
    if type(fn) is Timed:
        return Timed(change(fn.fn), fn.seconds)
    return change(fn)
