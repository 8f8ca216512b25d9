"""The queue worker threads take tasks from: shared by ``thread`` and ``interpreter``.

Each item is a tuple whose first element is the task's future; ``None`` tells one
thread to exit. The executor and its threads share only this object (the threads
never see the executor, so one dropped without ``shutdown`` is collected).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Generic, Optional, Tuple, TypeVar

from .errors import BrokenExecutor

__all__ = ["WorkQueue"]

Item = TypeVar("Item", bound=Optional[Tuple[Any, ...]])


class WorkQueue(Generic[Item]):
    """Tasks waiting for a worker thread, and the pool's idle/shutdown/broken state."""

    __slots__ = ("broken", "idle", "lock", "queue", "shutdown")

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        # Held while mutating idle, shutdown and broken.
        self.lock = threading.Lock()
        self.idle = 0
        self.shutdown = False
        self.broken: BrokenExecutor | None = None

    def take(self) -> Item:
        """The next item, waiting for one; a thread that waits counts as idle meanwhile
        (``submit`` starts a new thread only when none is idle)."""
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            with self.lock:
                self.idle += 1
            return self.queue.get()

    def fail_queued(self, error: BaseException | None) -> None:
        """Drain the queue: cancel each task (*error* None) or fail it with *error*."""
        stops = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stops += 1
                continue
            future: Future[Any] = item[0]
            if error is None:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                future.set_exception(error)
        for _ in range(stops):  # stop markers belong to other threads: put them back
            self.queue.put(None)  # type: ignore[arg-type]  # Item includes None

    def stop(self, threads: int, *, cancel: bool = False) -> None:
        """Refuse new tasks; cancel the queued ones if asked; tell each of *threads* to exit."""
        with self.lock:
            first = not self.shutdown
            self.shutdown = True
        if cancel:
            self.fail_queued(None)
        for _ in range(threads if first else 0):
            self.queue.put(None)  # type: ignore[arg-type]

    def break_(self, error: BrokenExecutor) -> BrokenExecutor:
        """Fail every queued task, and every later submit, with one error (the first)."""
        with self.lock:
            if self.broken is None:
                self.broken = error
            broken = self.broken
        self.fail_queued(broken)
        return broken
