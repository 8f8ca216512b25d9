"""Run tasks on a pool of threads in this process; the caller's context is copied in."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, ClassVar, TypeVar

from .. import _validate
from ..protocol import BaseExecutor

__all__ = ["ThreadExecutor"]

R = TypeVar("R")


class ThreadExecutor(BaseExecutor):
    """A thread pool: for I/O-bound work (downloads, API calls, disk), not CPU-bound work.

    Threads share one GIL, so CPU-bound Python code runs on one core at a time;
    use ``pool`` for that. Workers are named ``<thread_name_prefix>_<n>``, so a
    task can log ``threading.current_thread().name``. Each task runs in a copy of
    the submitting context (as :func:`asyncio.to_thread` does), so
    :mod:`contextvars` and :func:`executors.context.bind` values reach it, and
    :data:`executors.context.worker` is private to each worker thread.

    :param max_workers: default ``min(32, CPUs + 4)``, as the standard library.

    >>> import threading
    >>> from executors import get_executor
    >>> with get_executor("thread", max_workers=2, thread_name_prefix="crawler") as ex:
    ...     ex.submit(lambda: threading.current_thread().name).result()
    'crawler_0'
    """

    name: ClassVar[str] = "thread"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        thread_name_prefix: str = "executors-thread",
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        init, args = _validate.initializer(initializer, initargs)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix, init, args)

    @classmethod
    def default_max_workers(cls) -> int:
        """``min(32, CPUs + 4)``, as :class:`concurrent.futures.ThreadPoolExecutor`."""
        return min(32, _validate.cpu_count() + 4)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        return self._pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; cancel pending ones if asked; wait for running ones if asked."""
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __repr__(self) -> str:
        return f"<ThreadExecutor backend='thread' max_workers={self.max_workers}>"
