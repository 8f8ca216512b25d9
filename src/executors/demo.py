"""Small task functions for examples, docs and ``python -m executors demo``.

They live in a real module so that process backends can pickle them by name
(functions typed into an interactive session or a doctest cannot be).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

from . import context

__all__ = ["crunch", "fail", "nap", "square", "task_info", "visit", "wait", "whoami"]


def square(x: int) -> int:
    """``x * x``.

    >>> square(7)
    49
    """
    return x * x


def wait(seconds: float, value: object = None) -> object:
    """Sleep *seconds* (a stand-in for slow I/O), then return *value*."""
    time.sleep(seconds)
    return value


def crunch(n: int) -> str:
    """CPU-bound work: hash a buffer *n* times; the hex digest.

    >>> len(crunch(3))
    64
    """
    digest = b"executors"
    for _ in range(n):
        digest = hashlib.sha256(digest * 64).digest()
    return digest.hex()


def whoami() -> str:
    """The ``user/request_id`` bound in :mod:`executors.context` where the task was submitted."""
    return f"{context.user}/{context.request_id}"


def task_info() -> tuple[int, str]:
    """The pid and thread name of whoever runs the task."""
    return os.getpid(), threading.current_thread().name


def fail(message: str = "boom") -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


async def nap(seconds: float, value: object = None) -> object:
    """Like :func:`wait`, without blocking: ``await asyncio.sleep(seconds)``, return *value*."""
    import asyncio

    await asyncio.sleep(seconds)
    return value


async def visit(url: str, seconds: float = 0.05) -> str:
    """The classic gevent crawler's ``run_task``, as a coroutine: "download" *url*, report it done.

    The download is a stand-in (a sleep), so examples run offline. An empty *url*
    fails, as ``urlopen('')`` does.

    >>> import asyncio
    >>> asyncio.run(visit("https://www.python.org/", 0))
    'url:https://www.python.org/ --->finish'
    """
    import asyncio

    if not url:
        raise ValueError(f"unknown url type: {url!r}")
    await asyncio.sleep(seconds)
    return f"url:{url} --->finish"
