"""An awaitable face for any executor: ``await ax.submit(fn, x)``, ``async for r in ax.map(...)``.

Async code swaps backends without changes, as sync code does::

    >>> import asyncio, executors
    >>> from executors.demo import visit
    >>> async def main():
    ...     async with executors.aio("thread", max_workers=2) as ax:
    ...         one = await ax.submit(pow, 2, 10)
    ...         pages = [page async for page in ax.map(visit, ["a.org", "b.org"], [0.01, 0])]
    ...     return one, pages
    >>> asyncio.run(main())
    (1024, ['url:a.org --->finish', 'url:b.org --->finish'])

Plain functions go to the executor as they are. Coroutine functions are awaited
natively where the backend runs coroutines (``asyncio``), run in the caller's
loop on ``inline``, and elsewhere run to completion in the worker with
:func:`asyncio.run`. Cancelling the awaiting task cancels the executor's future:
a pending task never starts, and a running coroutine on ``asyncio`` is cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

from ._compat import ParamSpec, Self
from ._coroutines import is_async as _is_async
from ._coroutines import run_coroutine
from ._validate import positive_int
from .errors import InvalidOption
from .registry import get_executor

if TYPE_CHECKING:
    from concurrent.futures import Future
    from types import TracebackType

    from .protocol import Executor

__all__ = ["AsyncExecutor", "aio"]

P = ParamSpec("P")
R = TypeVar("R")

#: Tasks in flight for ``map`` when the executor has no ``max_workers`` to go by.
DEFAULT_BUFFERSIZE = 64


def _refuse_coroutine_object(obj: object) -> None:
    """Raise TypeError for a coroutine *object* given where its function belongs (and close it)."""
    if asyncio.iscoroutine(obj):
        obj.close()  # never awaited, and it will not be
        raise TypeError(
            f"submit() needs a coroutine function, got the coroutine object {obj!r}; pass "
            "the function and its arguments separately: submit(fetch, url), not "
            "submit(fetch(url))"
        )


class AsyncExecutor:
    """Any :class:`~executors.Executor`, awaited: see :func:`aio`.

    ``async with`` shuts the executor down on the way out (without blocking the
    loop); a body that was cancelled also cancels what is still pending.

    >>> import asyncio
    >>> from executors import aio, get_executor
    >>> async def main():
    ...     async with aio(get_executor("inline")) as ax:
    ...         return await ax.submit(divmod, 7, 2)
    >>> asyncio.run(main())
    (3, 1)
    """

    def __init__(self, executor: Executor | str | None = None, /, **options: Any) -> None:
        if executor is None or isinstance(executor, str):
            executor = get_executor(executor, **options)
        elif options:
            raise InvalidOption(
                f"options {sorted(options)} go with a backend spec, but an executor was given "
                f"({executor!r}); pass them to get_executor() instead"
            )
        elif not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"aio() needs an executor or a backend spec, got {executor!r}; "
                "write aio(get_executor(...)) or aio('thread')"
            )
        #: The executor that runs the tasks.
        self.executor: Executor = executor

    @property
    def backend(self) -> str:
        """The registry name of the executor's backend."""
        return str(getattr(self.executor, "backend", type(self.executor).__name__))

    @overload
    def submit(
        self,
        fn: Callable[P, Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[R]: ...

    @overload
    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Start ``fn(*args, **kwargs)`` now; return an :class:`asyncio.Future` for its result.

        Cancelling the returned future (or the task awaiting it) cancels the task
        on the executor where the backend can.

        :raises RuntimeError: outside a running event loop, or after shutdown.
        """
        return self._start(_running_loop("submit"), fn, args, kwargs)

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        ex = self.executor
        _refuse_coroutine_object(fn)
        if callable(fn) and _is_async(fn) and not getattr(ex, "runs_coroutines", False):
            if getattr(ex, "runs_in_submit", False):
                # inline runs tasks in the caller: here, that is this loop (a task of its own).
                return loop.create_task(fn(*args, **kwargs))
            return asyncio.wrap_future(ex.submit(run_coroutine, fn, *args, **kwargs), loop=loop)
        future: Future[Any] = ex.submit(fn, *args, **kwargs)
        if getattr(ex, "loop", None) is loop and _is_async(fn):
            return _native(future, loop)
        return asyncio.wrap_future(future, loop=loop)

    @overload
    def map(
        self,
        fn: Callable[..., Coroutine[Any, Any, R]],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        buffersize: int | None = None,
        ordered: bool = True,
    ) -> AsyncGenerator[R, None]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        buffersize: int | None = None,
        ordered: bool = True,
    ) -> AsyncGenerator[R, None]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        buffersize: int | None = None,
        ordered: bool = True,
    ) -> AsyncGenerator[Any, None]:
        """Yield ``fn(*args)`` over the zipped *iterables* (plain or async), lazily.

        :param buffersize: at most this many tasks in flight; the input is read
            only as results are taken. None: twice ``max_workers``, or
            ``DEFAULT_BUFFERSIZE`` (64) when the executor has no cap.
        :param ordered: True yields in input order; False as tasks finish.

        When the consumer stops early (``break``, then the generator is closed), or
        a task raises, what is still in flight is cancelled. Close it at once with
        ``await results.aclose()`` (or :func:`contextlib.aclosing`).
        """
        if not callable(fn):
            raise TypeError(f"map() needs a callable first, got {fn!r} ({type(fn).__name__})")
        if buffersize is None:
            workers = getattr(self.executor, "max_workers", None)
            buffersize = 2 * workers if isinstance(workers, int) else DEFAULT_BUFFERSIZE
        size = positive_int("buffersize", buffersize)
        assert size is not None
        return self._map(fn, iterables, size, ordered)

    async def _map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        size: int,
        ordered: bool,
    ) -> AsyncGenerator[Any, None]:
        loop = _running_loop("map")
        rows = _zip(iterables)
        window: collections.deque[asyncio.Future[Any]] = collections.deque()
        exhausted = False

        async def refill() -> None:
            nonlocal exhausted
            while not exhausted and len(window) < size:
                try:
                    args = await rows.__anext__()
                except StopAsyncIteration:
                    exhausted = True
                    return
                window.append(self._start(loop, fn, args, {}))

        try:
            await refill()
            while window:
                if ordered:
                    result = await window[0]
                    window.popleft()
                else:
                    done, _ = await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
                    first = next(f for f in window if f in done)
                    window.remove(first)
                    result = first.result()
                await refill()
                yield result
        finally:
            for f in window:
                if f.done() and not f.cancelled():
                    f.exception()  # seen: asyncio must not log "never retrieved"
                f.cancel()
            await rows.aclose()

    async def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the executor down; waiting happens on a thread, so the loop keeps running.

        From a task on the ``asyncio`` backend's own loop, it cannot wait for itself
        and returns at once.
        """
        ex = self.executor
        ex.shutdown(wait=False, cancel_futures=cancel_futures)
        loop = asyncio.get_running_loop()
        if wait and getattr(ex, "loop", None) is not loop:
            await loop.run_in_executor(None, functools.partial(ex.shutdown, wait=True))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Cancelled (or interrupted): cancel what has not started, as a TaskGroup would.
        interrupted = exc is not None and not isinstance(exc, Exception)
        await self.shutdown(wait=True, cancel_futures=interrupted)

    def __repr__(self) -> str:
        return f"<AsyncExecutor of {self.executor!r}>"


def aio(executor: Executor | str | None = None, /, **options: Any) -> AsyncExecutor:
    """The awaitable face of *executor* (an executor, a backend spec, or None for
    ``$EXECUTORS_BACKEND``, with *options* as in :func:`~executors.get_executor`).

    >>> import asyncio, executors
    >>> async def main():
    ...     async with executors.aio("inline") as ax:
    ...         return await asyncio.gather(ax.submit(abs, -1), ax.submit(abs, -2))
    >>> asyncio.run(main())
    [1, 2]
    """
    return AsyncExecutor(executor, **options)


def _native(future: Future[Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """An asyncio future for a coroutine running on *loop* itself: no thread hop.

    The executor's own loop finishes *future* in its own thread, so the result is
    copied across at once, where :func:`asyncio.wrap_future` would go through
    ``call_soon_threadsafe``. Cancelling either side cancels the other.
    """
    waiter: asyncio.Future[Any] = loop.create_future()
    here = threading.get_ident()  # the loop's thread: this runs in a coroutine on it

    def copy(done: Future[Any]) -> None:
        if threading.get_ident() != here:  # e.g. cancelled by shutdown() in another thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: no one waits
                loop.call_soon_threadsafe(copy, done)
            return
        if waiter.done():
            return
        if done.cancelled():
            waiter.cancel()
        elif (exc := done.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(done.result())

    def back(w: asyncio.Future[Any]) -> None:
        if w.cancelled():
            future.cancel()

    waiter.add_done_callback(back)
    future.add_done_callback(copy)
    return waiter


def _running_loop(where: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"AsyncExecutor.{where}() needs a running event loop: call it from async code "
            "(inside asyncio.run(...)); sync code uses the executor itself"
        ) from None


async def _zip(
    iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
) -> AsyncGenerator[tuple[Any, ...], None]:
    if not any(isinstance(it, AsyncIterable) for it in iterables):
        for row in zip(*iterables):
            yield row
        return
    iterators = [
        it.__aiter__() if isinstance(it, AsyncIterable) else _aiter(it) for it in iterables
    ]
    while True:
        try:
            row = tuple([await it.__anext__() for it in iterators])
        except StopAsyncIteration:
            return
        yield row


async def _aiter(iterable: Iterable[Any]) -> AsyncGenerator[Any, None]:
    for item in iterable:
        yield item
