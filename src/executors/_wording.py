"""How errors name a call, and the one wording of "the initializer failed" every backend uses."""

from __future__ import annotations

from typing import Any, Callable

from .errors import BrokenExecutor

__all__ = ["call_name", "initializer_failed"]


def call_name(fn: Callable[..., Any]) -> str:
    """``crunch()`` for a function, for messages about the task running it."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str):
        name = type(fn).__name__
    return f"{name}()"


def initializer_failed(
    initializer: Callable[..., Any] | None, cause: BaseException, where: str = ""
) -> BrokenExecutor:
    """The error that breaks an executor whose initializer raised *cause*.

    *where* names the worker, e.g. ``" in worker 4242"``. *cause* is chained.

    >>> def connect(): raise OSError("no database")
    >>> try:
    ...     connect()
    ... except OSError as exc:
    ...     error = initializer_failed(connect, exc, " in worker 42")
    >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
    initializer connect() raised OSError: no database in worker 42; no task can run on this
    executor; fix the initializer and create a new executor
    """
    name = call_name(initializer) if initializer is not None else "the initializer"
    error = BrokenExecutor(
        f"initializer {name} raised {type(cause).__name__}: {cause}{where}; no task can "
        "run on this executor; fix the initializer and create a new executor"
    )
    error.__cause__ = cause
    return error
