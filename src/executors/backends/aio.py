"""Run coroutine functions as tasks on an event loop the executor owns; plain functions on threads.

Registered as ``asyncio``; the module is ``aio`` so that it does not shadow the
standard library. The loop thread and its batching live in :mod:`executors._aio`.
"""

from __future__ import annotations

import asyncio
import importlib
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar, Union, overload

from .. import _validate
from .._aio.loop import LoopRunner, TaskFuture
from .._compat import ParamSpec
from .._coroutines import is_async as _is_async
from ..awaitable import _refuse_coroutine_object
from ..errors import BackendUnavailable, InvalidOption
from ..protocol import BaseExecutor, _not_callable
from ..timeouts import split

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable

__all__ = ["AsyncioExecutor"]

P = ParamSpec("P")
R = TypeVar("R")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LoopOption = Union[str, LoopFactory]


def _loop_factory(loop: LoopOption) -> LoopFactory:
    if callable(loop):
        return loop
    if loop == "asyncio":
        return asyncio.new_event_loop
    if loop == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise BackendUnavailable(
                "loop='uvloop' needs the uvloop package, which is not installed; install it "
                "with: pip install 'pluggable-executors[uvloop]' (not on Windows), or use "
                "loop='asyncio'"
            ) from None
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    raise InvalidOption(
        f"loop must be 'asyncio', 'uvloop' or a callable returning a new event loop, got {loop!r}"
    )


class AsyncioExecutor(BaseExecutor):
    """Coroutines on one event loop, in a thread the executor owns: the gevent story, without
    greenlets.

    ``submit(async_fn, *args)`` runs the coroutine function as a task on the loop;
    a plain function runs on a worker thread, so blocking code does not stall the
    loop. Both see the submitter's context (:func:`executors.context.bind`).
    ``future.cancel()`` also cancels a *running* coroutine (its task gets
    :class:`asyncio.CancelledError`). See :doc:`/backends/asyncio` for the rules
    when the caller itself runs in an event loop.

    :param max_workers: how many tasks run at once (gevent's ``Pool(n)``); the
        rest wait in submission order. None (the default): no cap, every
        coroutine starts at once.
    :param loop: ``"asyncio"``, ``"uvloop"`` (needs the package), or a callable
        returning a new event loop.
    :param thread_name_prefix: names the loop thread (``<prefix>-loop``) and the
        worker threads for plain functions (``<prefix>_<n>``).
    :param initializer: called with *initargs* once on the loop thread and once
        on each worker thread, before any task (for :data:`executors.context.worker`).
    :param task_timeout: seconds a task may run; at the deadline its future fails
        with :class:`~executors.TaskTimeout` and a coroutine is cancelled (a plain
        function's thread cannot be stopped: its late result is dropped).
    :param serializer: accepted so one spec fits every backend; nothing is pickled.
    :param max_tasks_per_child: accepted likewise; no worker is replaced.

    >>> import asyncio
    >>> from executors import get_executor
    >>> async def visit(url):
    ...     await asyncio.sleep(0.01)
    ...     return f"url:{url} --->finish"
    >>> with get_executor("asyncio", max_workers=2) as ex:   # gevent.pool.Pool(2)
    ...     list(ex.map(visit, ["github.com", "python.org", ""]))
    ['url:github.com --->finish', 'url:python.org --->finish', 'url: --->finish']
    """

    name: ClassVar[str] = "asyncio"
    sharing: ClassVar[str] = "local"
    #: Coroutine functions run as they are (:func:`executors.aio` awaits them natively).
    runs_coroutines: ClassVar[bool] = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        loop: str | Callable[[], asyncio.AbstractEventLoop] = "asyncio",
        thread_name_prefix: str = "executors-asyncio",
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = "auto",
        max_tasks_per_child: int | None = None,
    ) -> None:
        #: Seconds a task may run: a coroutine is then cancelled, a plain function's
        #: thread runs on (its result is dropped); the future fails with TaskTimeout.
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        self.serializer = _validate.serializer(serializer)
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self.max_workers = (
            None if max_workers is None else _validate.max_workers(max_workers, default=1)
        )
        factory = _loop_factory(loop)
        init, args = _validate.initializer(initializer, initargs)
        self._loop_name = loop if isinstance(loop, str) else getattr(loop, "__name__", "custom")
        threads = self.max_workers or min(32, _validate.cpu_count() + 4)
        pool = ThreadPoolExecutor(threads, thread_name_prefix, init, args)
        try:
            new_loop = factory()
        except BaseException:
            pool.shutdown()
            raise
        self._runner = LoopRunner(
            new_loop, self.max_workers, pool, f"{thread_name_prefix}-loop", (init, args)
        )
        # Dropped without shutdown(): the loop finishes what it has, then closes.
        weakref.finalize(self, self._runner.shutdown, False, False)

    @classmethod
    def default_max_workers(cls) -> None:
        """None: no cap; every submitted coroutine starts at once."""
        return None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the tasks run on (in the executor's own thread)."""
        return self._runner.loop

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)``: a coroutine function as a task, a plain one on a thread.

        :raises TypeError: for a coroutine *object* (pass the function and its arguments).
        :raises RuntimeError: after :meth:`shutdown`.
        :raises BrokenExecutor: when the initializer failed.
        """
        if not callable(fn):
            _refuse_coroutine_object(fn)
            raise _not_callable(fn, "submit()")
        return self._submit(fn, args, kwargs)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        runner = self._runner
        if runner.broken is not None:
            raise runner.broken
        fn, timeout = split(fn, self.task_timeout)
        fut = TaskFuture(runner, fn, args, kwargs, _is_async(fn), timeout=timeout)
        runner.submit(fut)
        return fut

    def _tunes_map(self, fn: Callable[..., Any]) -> bool:
        """Plain functions go to the threads in chunks; each coroutine is its own task."""
        return not _is_async(fn)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, then close the loop once the last one is done.

        :param wait: block until the loop is closed and every thread has ended
            (ignored when called from a task on this executor's own loop, which
            cannot wait for itself).
        :param cancel_futures: cancel the tasks that have not started, as
            :mod:`concurrent.futures` does; running ones (coroutines and plain
            functions) finish. To stop a running coroutine, cancel its future.
        """
        self._runner.shutdown(wait, cancel_futures)

    def __repr__(self) -> str:
        return (
            f"<AsyncioExecutor backend='asyncio' max_workers={self.max_workers} "
            f"loop={self._loop_name!r}>"
        )
