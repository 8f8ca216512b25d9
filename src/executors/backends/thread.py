"""Run tasks on a pool of threads in this process; the caller's context is copied in.

The pool mirrors :class:`concurrent.futures.ThreadPoolExecutor` (one shared
queue, threads started on demand up to ``max_workers``, idle ones reused), with
less work per task: one tuple on a :class:`queue.SimpleQueue` and an idle
counter in place of a work-item object and a semaphore. Worker threads hold no
reference to the executor, so an executor dropped without ``shutdown`` is
collected and its threads exit; at interpreter exit, queued tasks still run.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, ClassVar, Optional, Tuple, TypeVar, overload

from .. import _deadline, _validate, protocol
from .._compat import ParamSpec
from .._futures import LeanFuture
from .._wording import initializer_failed
from .._workqueue import WorkQueue
from ..protocol import BaseExecutor, _as_plain, _is_coroutine_function, _not_callable
from ..timeouts import Timed, split

__all__ = ["ThreadExecutor"]

P = ParamSpec("P")
R = TypeVar("R")

_Item = Optional[
    Tuple["Future[Any]", contextvars.Context, Callable[..., Any], Tuple[Any, ...], dict[str, Any]]
]


class _Shared(WorkQueue[_Item]):
    """What the executor and its worker threads share, with the initializer and timeout."""

    __slots__ = ("initargs", "initializer", "task_timeout")

    def __init__(
        self,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        task_timeout: float | None = None,
    ):
        super().__init__()
        self.initializer = initializer
        self.initargs = initargs
        self.task_timeout = task_timeout


def _work(shared: _Shared) -> None:
    if shared.initializer is not None:
        try:
            shared.initializer(*shared.initargs)
        except BaseException as exc:
            shared.break_(initializer_failed(shared.initializer, exc))
            return
    take = shared.take
    timeout = shared.task_timeout
    while True:
        item = take()
        if item is None:
            return
        future, ctx, fn, args, kwargs = item
        del item
        if future.set_running_or_notify_cancel():
            seconds = timeout
            if type(fn) is Timed:  # a deadline of its own (executors.with_timeout)
                fn, seconds = split(fn, timeout)
            if seconds is not None:
                _deadline.watch(future, seconds, _deadline.describe(fn))
            try:
                result = ctx.run(fn, *args, **kwargs)
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):  # timed out: dropped
                    future.set_exception(exc)
                del exc
            else:
                with contextlib.suppress(InvalidStateError):
                    future.set_result(result)
                del result
        del future, ctx, fn, args, kwargs


def _stop(shared: _Shared, threads: list[threading.Thread]) -> None:
    shared.stop(len(threads))


# Every worker thread and what it serves, whether or not its executor is still alive
# (dropped, or shut down without waiting): at exit each one finishes its queue.
_workers: weakref.WeakKeyDictionary[threading.Thread, _Shared] = weakref.WeakKeyDictionary()
_workers_lock = threading.Lock()


def _at_exit() -> None:
    # Like the standard library: queued tasks still run, then the threads exit.
    with _workers_lock:
        items = list(_workers.items())
    counts: dict[_Shared, int] = {}
    for _, shared in items:
        counts[shared] = counts.get(shared, 0) + 1
    for shared, n in counts.items():
        shared.stop(n)
    for thread, _ in items:
        thread.join()


# threading._register_atexit runs before non-daemon threads are joined (3.9+).
getattr(threading, "_register_atexit", lambda fn: None)(_at_exit)


class ThreadExecutor(BaseExecutor):
    """A thread pool: for I/O-bound work (downloads, API calls, disk), not CPU-bound work.

    Threads share one GIL, so CPU-bound Python code runs on one core at a time;
    use ``pool`` or ``interpreter`` for that. On a free-threaded build with the
    GIL off (``python3.13t``; ``python -m executors info`` says which) threads
    run Python code on every core, and this backend is CPU-parallel too.

    Workers are named ``<thread_name_prefix>_<n>``, so a task can log
    ``threading.current_thread().name``. Each task runs in a copy of the
    submitting context (as :func:`asyncio.to_thread` does), so
    :mod:`contextvars` and :func:`executors.context.bind` values reach it and
    whatever it sets stays inside it; :data:`executors.context.worker` is
    private to each worker thread.

    :param max_workers: default ``min(32, CPUs + 4)``, as the standard library.
    :param initializer: called with *initargs* in each worker thread before its
        first task; if it raises, the pool is broken and every task fails with
        :class:`~executors.BrokenExecutor`.
    :param task_timeout: seconds a task may run; at the deadline its future fails
        with :class:`~executors.TaskTimeout`. The thread cannot be stopped: it runs
        on, busy, and its late result is dropped.
    :param serializer: accepted for a spec that fits every backend; nothing is pickled here.
    :param max_tasks_per_child: accepted likewise; threads are not replaced.

    >>> import threading
    >>> from executors import get_executor
    >>> with get_executor("thread", max_workers=2, thread_name_prefix="crawler") as ex:
    ...     ex.submit(lambda: threading.current_thread().name).result()
    'crawler_0'
    """

    max_workers: int
    name: ClassVar[str] = "thread"
    sharing: ClassVar[str] = "local"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        thread_name_prefix: str = "executors-thread",
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = "auto",
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        init, args = _validate.initializer(initializer, initargs)
        self.thread_name_prefix = str(thread_name_prefix)
        #: Seconds a task may run before its future fails with :class:`~executors.TaskTimeout`.
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        self.serializer = _validate.serializer(serializer)
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self._shared = _Shared(init, args, self.task_timeout)
        self._threads: list[threading.Thread] = []
        weakref.finalize(self, _stop, self._shared, self._threads)

    @classmethod
    def default_max_workers(cls) -> int:
        """``min(32, CPUs + 4)``, as :class:`concurrent.futures.ThreadPoolExecutor`."""
        return min(32, _validate.cpu_count() + 4)

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` on a worker thread, in a copy of this context.

        :raises RuntimeError: after :meth:`shutdown`.
        :raises BrokenExecutor: when the initializer failed.
        """
        # Overrides BaseExecutor.submit to keep the hot path to one call.
        if not callable(fn):
            raise _not_callable(fn, "submit()")
        if _is_coroutine_function(fn):
            fn = _as_plain(fn)
        future: Future[Any] = LeanFuture()  # wait() sees a cancelled one done at once
        shared = self._shared
        with shared.lock:
            if shared.broken is not None:
                raise shared.broken
            if shared.shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if protocol._exiting:
                protocol._refuse_at_exit()
            shared.queue.put((future, contextvars.copy_context(), fn, args, kwargs))
            if shared.idle:
                shared.idle -= 1
            elif len(self._threads) < self.max_workers:
                self._start_thread()
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=_work,
            args=(self._shared,),
            name=f"{self.thread_name_prefix}_{len(self._threads)}",
            daemon=True,
        )
        with _workers_lock:
            _workers[thread] = self._shared
        thread.start()
        self._threads.append(thread)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; cancel queued ones if asked; wait for the rest if asked."""
        self._shared.stop(len(self._threads), cancel=cancel_futures)
        if wait:
            for thread in list(self._threads):
                thread.join()

    def __repr__(self) -> str:
        state = "shut down" if self._shared.shutdown else f"{len(self._threads)} threads"
        return f"<ThreadExecutor backend='thread' max_workers={self.max_workers} ({state})>"
