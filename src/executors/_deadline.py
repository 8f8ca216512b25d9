"""``task_timeout`` for backends whose tasks run in this process (thread, asyncio, inline).

A thread cannot be killed, so the deadline is kept here instead: at it, the task's
future fails with :class:`~executors.TaskTimeout` (and a coroutine's asyncio task is
cancelled); whatever the task returns later is dropped. One watchdog thread serves
every executor; it runs only while some running task has a deadline.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable

from .errors import TaskTimeout

__all__ = ["describe", "watch"]

_lock = threading.Condition()
_heap: list[tuple[float, int, Future[Any], str, float, Callable[[], object] | None]] = []
_live: set[int] = set()  # the entries whose future is not done yet
_seq = itertools.count()
_thread: threading.Thread | None = None


def describe(fn: Callable[..., Any]) -> str:
    """``module.name`` of a task's function, for messages."""
    inner = getattr(fn, "func", fn)  # a partial, e.g. a coroutine function run by a worker
    if getattr(inner, "__name__", "") == "run_coroutine" and getattr(fn, "args", ()):
        inner = fn.args[0]  # type: ignore[attr-defined]
    name = getattr(inner, "__qualname__", None) or type(inner).__name__
    return f"{getattr(inner, '__module__', None) or '?'}.{name}"


def watch(
    future: Future[Any],
    seconds: float,
    label: str,
    on_expire: Callable[[], object] | None = None,
) -> None:
    """Fail *future* with :class:`~executors.TaskTimeout` in *seconds* unless it is done.

    *on_expire* runs after that (e.g. to cancel the coroutine's asyncio task).
    """
    global _thread
    seq = next(_seq)
    with _lock:
        heapq.heappush(_heap, (time.monotonic() + seconds, seq, future, label, seconds, on_expire))
        _live.add(seq)
        if _thread is None:
            _thread = threading.Thread(target=_run, name="executors-deadlines", daemon=True)
            _thread.start()
        elif _heap[0][1] == seq:
            _lock.notify()  # the new deadline is the earliest
    future.add_done_callback(lambda _: _forget(seq))


def _forget(seq: int) -> None:
    with _lock:
        _live.discard(seq)
        if not _live:
            _lock.notify()  # nothing left to watch: the thread may leave


def _run() -> None:
    global _thread
    while True:
        expired = []
        with _lock:
            while _heap and _heap[0][1] not in _live:
                heapq.heappop(_heap)
            if not _heap:
                _thread = None
                return
            now = time.monotonic()
            while _heap and _heap[0][0] <= now:
                entry = heapq.heappop(_heap)
                if entry[1] in _live:
                    expired.append(entry)
            if not expired:
                _lock.wait(_heap[0][0] - now)
                continue
        for _, _, future, label, seconds, on_expire in expired:
            error = TaskTimeout(
                f"{label} ran longer than task_timeout={seconds:g} s; "
                + (
                    "it was cancelled"
                    if on_expire is not None
                    else "a thread cannot be stopped: its result, when it comes, is dropped"
                )
            )
            try:
                future.set_exception(error)
            except InvalidStateError:  # it finished meanwhile
                continue
            if on_expire is not None:
                try:
                    on_expire()
                except Exception:  # one task's stop must not end every later deadline
                    logging.getLogger("executors").exception("stopping %s at its deadline", label)
        del expired
