"""The conformance suite's task functions, in a module of their own.

A worker imports the module of each function it unpickles by name; this one
costs no more than the package (``executors.testing`` imports pytest: a tenth of
a second in every fresh worker interpreter). :mod:`executors.testing` re-exports
them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from . import context

__all__ = [
    "Box",
    "add",
    "add_under_lock",
    "async_add",
    "async_sleep",
    "consume",
    "drain_joinable",
    "echo",
    "fail_on",
    "failing_initializer",
    "failing_task",
    "make_adder",
    "make_box",
    "produce",
    "read_context",
    "read_worker_value",
    "reverse_bytes",
    "set_event",
    "set_worker_value",
    "touch",
    "touch_or_fail",
    "touch_twice",
    "wait_event",
]


def echo(value: Any) -> Any:
    return value


def add(a: int, b: int = 0, *, c: int = 0) -> int:
    return a + b + c


def touch(path: str, value: Any = None, delay: float = 0.0) -> Any:
    """Sleep *delay*, then create *path*: the test sees which tasks really ran."""
    time.sleep(delay)
    Path(path).touch()
    return value


def touch_or_fail(path: str, delay: float = 0.0) -> str:
    """Like :func:`touch`, but an empty *path* raises ``ValueError``."""
    if not path:
        raise ValueError("no path")
    touch(path, None, delay)
    return path


def touch_twice(first: str, then: str, delay: float) -> str:
    """Create *first*, sleep *delay*, create *then*: the test sees a task start and end."""
    Path(first).touch()
    time.sleep(delay)
    Path(then).touch()
    return "finished"


async def async_add(a: int, b: int = 0) -> int:
    """A coroutine function: every backend runs it to completion and returns its result."""
    await asyncio.sleep(0.001)
    return a + b


def make_adder(n: int) -> Callable[[int], int]:
    """An importable function whose result is a lambda: plain pickle cannot send it back."""
    return lambda x: x + n


async def async_sleep(seconds: float) -> str:
    """A coroutine function that waits *seconds*."""
    await asyncio.sleep(seconds)
    return "slept"


class Box:
    """A result that can be watched with a weak reference."""


def make_box(_: Any) -> Box:
    return Box()


def failing_task(message: str) -> None:
    raise ValueError(message)


def fail_on(value: int, bad: int) -> int:
    """Return *value*, or raise ``ValueError`` naming it when it is *bad*."""
    if value == bad:
        raise ValueError(f"item {value} is bad")
    return value


def read_context(name: str) -> Any:
    return context.get(name)


def set_worker_value(value: Any) -> None:
    context.worker.value = value


def read_worker_value() -> Any:
    return getattr(context.worker, "value", None)


def failing_initializer() -> None:
    raise RuntimeError("cannot connect to the database")


def reverse_bytes(data: bytes) -> bytes:
    return data[::-1]


def produce(q: Any, items: list[Any]) -> None:
    """Put *items* on *q*, then the ``None`` sentinel."""
    for item in items:
        q.put(item)
    q.put(None)


def consume(q: Any) -> list[Any]:
    """Take items from *q* until the ``None`` sentinel."""
    got = []
    while (item := q.get(timeout=30)) is not None:
        got.append(item)
    return got


def drain_joinable(q: Any, n: int) -> int:
    """Take *n* items from *q*, marking each one done; their sum."""
    total = 0
    for _ in range(n):
        total += q.get(timeout=30)
        q.task_done()
    return total


def add_under_lock(d: Any, lock: Any, key: str, times: int) -> None:
    """``d[key] += 1`` *times* times, each under *lock*."""
    for _ in range(times):
        with lock:
            d[key] = d[key] + 1


def set_event(event: Any) -> bool:
    event.set()
    return bool(event.is_set())


def wait_event(event: Any) -> bool:
    return bool(event.wait(30))
