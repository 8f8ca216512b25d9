"""Coroutine functions on backends that call plain functions: how to tell them, how to run them.

Imported by :mod:`executors.protocol` only when a task might be a coroutine function,
so that ``import executors`` does not import :mod:`asyncio`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from types import FunctionType
from typing import Any, Callable, TypeVar

__all__ = ["is_async", "run_coroutine"]

R = TypeVar("R")


def is_async(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, partials of them, and objects with ``async __call__``."""
    if type(fn) is FunctionType and fn.__code__.co_flags & inspect.CO_COROUTINE:
        return True  # the common case, without inspect's unwrapping
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - the attribute, not callable()
    )


def run_coroutine(fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
    """Run ``fn(*args, **kwargs)`` to completion on a new event loop (in a worker).

    How a coroutine function travels to a backend that only calls plain functions;
    module level, so process backends can pickle it.
    """

    async def main() -> R:
        return await fn(*args, **kwargs)

    return asyncio.run(main())
