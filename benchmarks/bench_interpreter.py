"""Rows for the interpreter backend (subinterpreters, one GIL each; CPython 3.12+).

* CPU-bound pure-Python tasks on 2 interpreters vs the same tasks in a serial
  loop: the speed-up (goal 1.5x on 2 free cores);
* the same CPU tasks vs ``pool`` with 2 worker processes;
* empty tasks (``os.getpid``) submitted one by one vs ``pool`` and vs
  :class:`concurrent.futures.ThreadPoolExecutor` (the cost of a task).

No rows where the backend is unavailable (older Pythons, PyPy; 3.13 without
``interpreters-pep-734``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from run import Row

from executors import get_executor, registry

WORKERS = 2


def spin(n: int) -> int:
    """Pure-Python CPU work (holds its interpreter's GIL throughout)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _map(ex: Any, n: int, tasks: int) -> Callable[[], None]:
    def go() -> None:
        assert list(ex.map(spin, [n] * tasks, chunksize=1)) == [spin(n)] * tasks

    return go


def _serial(n: int, tasks: int) -> Callable[[], None]:
    def go() -> None:
        assert [spin(n) for _ in range(tasks)] == [spin(n)] * tasks

    return go


def _calls(ex: Any, n: int) -> Callable[[], None]:
    def go() -> None:
        for f in [ex.submit(os.getpid) for _ in range(n)]:
            f.result()

    return go


def rows(quick: bool) -> list[Row]:
    if registry.unavailable_reason("interpreter") is not None:
        return []
    spins, tasks = (200_000, 8) if quick else (2_000_000, 8)
    calls = 500 if quick else 5_000
    interp = get_executor("interpreter", max_workers=WORKERS)
    pool = get_executor("pool", max_workers=WORKERS)
    threads = ThreadPoolExecutor(WORKERS)

    def close() -> None:
        interp.shutdown()
        pool.shutdown()
        threads.shutdown()

    return [
        Row(
            f"interpreter: CPU tasks, {WORKERS} workers vs serial",
            _map(interp, spins, tasks),
            _serial(spins, tasks),
            tasks,
            peer_name="a serial loop",
            goal=1.5,
            repeat=3,
        ),
        Row(
            f"interpreter: CPU tasks, {WORKERS} workers vs pool",
            _map(interp, spins, tasks),
            _map(pool, spins, tasks),
            tasks,
            peer_name=f"pool, {WORKERS} processes",
            repeat=3,
        ),
        Row(
            "interpreter: empty tasks vs pool",
            _calls(interp, calls),
            _calls(pool, calls),
            calls,
            peer_name="pool backend",
        ),
        Row(
            "interpreter: empty tasks vs ThreadPoolExecutor",
            _calls(interp, calls),
            _calls(threads, calls),
            calls,
            peer_name="ThreadPoolExecutor",
            teardown=close,
        ),
    ]
