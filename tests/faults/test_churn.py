"""Churn: many executors made, used once, and shut down or dropped, leave nothing growing.

Counts per backend: 300 where an executor is cheap. Backends that start
interpreters or processes per executor get fewer, to bound the time on a loaded
2-core machine: ``fork`` and ``process`` (100: a process per task), ``pool``
(100: a worker process each), ``subprocess`` (25: a fresh interpreter each) and
``remote`` (10: a server and a worker interpreter that connects back, about 0.7 s
each). A leak of a thread, a descriptor or a process per executor shows as clearly
in 10 as in 300; one of memory must pass RSS_SLACK / n (160 KiB at 100 executors).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import NamedTuple

import psutil
import pytest

from executors import get_executor, registry

from . import fault_tasks as t

#: Hundreds of executors per cell, on every backend: tox runs all of it in py311, a
#: share in each other env (tests/conftest.py).
pytestmark = pytest.mark.exhaustive

COUNTS = {
    "inline": 300,
    "thread": 300,
    "asyncio": 300,
    "fork": 100,
    "process": 100,
    "pool": 100,
    "subprocess": 25,
    "remote": 10,
}
#: Growth allowed in resident memory (allocator arenas, caches warmed on first use).
RSS_SLACK = 16 << 20
#: Descriptors allowed beyond the start: multiprocessing's heap may map one more
#: shared-memory arena (two descriptors) for the pool's state arrays when dropped
#: executors free theirs late; a leak per executor would show as n more.
FD_SLACK = 4


class Usage(NamedTuple):
    threads: int
    fds: int
    children: int
    rss: int


def _usage() -> Usage:
    gc.collect()
    me = psutil.Process()
    return Usage(
        threading.active_count(),
        len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else me.num_fds(),
        len(me.children(recursive=True)),
        me.memory_info().rss,
    )


def _settled(before: Usage, within: float) -> Usage:
    """The usage once threads, descriptors and children are back to *before* (or time is up)."""
    deadline = time.monotonic() + within
    while True:
        now = _usage()
        flat = (
            now.threads <= before.threads
            and now.fds <= before.fds + FD_SLACK
            and now.children <= before.children
        )
        if flat or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def _params() -> list[object]:
    params = []
    for name, n in COUNTS.items():
        reason = registry.unavailable_reason(name)
        for mode in ("shutdown", "dropped"):
            marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
            params.append(pytest.param(name, n, mode, id=f"{name}-{mode}", marks=marks))
    return params


def _use_once(backend: str, i: int, shut: bool) -> None:
    ex = get_executor(backend, max_workers=1)
    assert ex.submit(t.ok, i).result(timeout=60) == i + 1
    if shut:
        ex.shutdown(wait=True)


@pytest.mark.parametrize(("backend", "n", "mode"), _params())
def test_many_executors_leave_nothing_growing(backend: str, n: int, mode: str) -> None:
    shut = mode == "shutdown"
    # Warm up: imports, caches, and for pool the shared-memory arenas multiprocessing's
    # heap keeps for reuse (a second arena appears after a few executors, then no more).
    for i in range(10 if backend == "pool" else 3):
        _use_once(backend, i, shut)
    before = _settled(_usage(), 10.0)
    for i in range(n):
        _use_once(backend, i, shut)
    after = _settled(before, 30.0)
    assert after.threads <= before.threads, f"threads {before.threads} -> {after.threads}"
    assert after.fds <= before.fds + FD_SLACK, f"file descriptors {before.fds} -> {after.fds}"
    assert after.children <= before.children, f"processes {before.children} -> {after.children}"
    grew = after.rss - before.rss
    assert grew < RSS_SLACK, f"RSS grew by {grew >> 20} MiB over {n} executors"
