"""The Executor protocol, and BaseExecutor, which gives every backend ``map`` and ``with``.

A backend subclasses :class:`BaseExecutor`, sets ``name``, and implements
``_submit`` and ``shutdown``. Everything else (argument checks, ``map`` with
``buffersize``, ``ordered``, ``timeout`` and ``chunksize``, the context manager)
is shared, so every backend behaves the same where the protocol speaks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import signal
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator
from concurrent.futures import Future
from inspect import CO_COROUTINE
from types import BuiltinFunctionType, FunctionType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Protocol,
    TypeVar,
    overload,
    runtime_checkable,
)

from . import _chunks, _progress
from ._compat import ParamSpec, Self
from ._validate import positive_int
from .sync import SharedObjects
from .timeouts import Timed, rewrap, split

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BaseExecutor", "Executor", "OwnsProcesses"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class Executor(Protocol):
    """What every backend provides; a :class:`concurrent.futures.Executor` plus a name.

    Futures are :class:`concurrent.futures.Future` objects, so
    :func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed`,
    :func:`asyncio.wrap_future` and ``loop.run_in_executor`` take them unchanged.

    >>> from executors import Executor, get_executor
    >>> with get_executor("inline") as ex:
    ...     isinstance(ex, Executor), ex.backend, ex.submit(pow, 2, 10).result()
    (True, 'inline', 1024)
    """

    @property
    def backend(self) -> str:
        """The registry name of the backend, e.g. ``"thread"``."""
        ...

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; return a future for its result.

        A coroutine function is run to completion on every backend: the future holds
        what it returns.
        """
        ...

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        ordered: bool = True,
        progress: bool | Callable[[int, int | None], object] = False,
    ) -> Iterator[R]:
        """Like :func:`map`, run concurrently; see :meth:`BaseExecutor.map`."""
        ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; optionally wait for running ones or cancel pending ones."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


_exiting = False  # the interpreter is shutting down: no new tasks (as concurrent.futures)


def _at_exit() -> None:
    global _exiting
    _exiting = True


# threading._register_atexit hooks run before non-daemon threads are joined (3.9+),
# which is when concurrent.futures stops taking tasks too.
getattr(threading, "_register_atexit", lambda fn: None)(_at_exit)


def _refuse_at_exit() -> None:
    if _exiting:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")


_PLAIN = (BuiltinFunctionType, type)  # never coroutine functions: no inspect for them


def _is_coroutine_function(fn: object) -> bool:
    """True for ``async def`` functions (and partials, methods, async ``__call__``); fast."""
    kind = type(fn)
    if kind is FunctionType:
        return bool(fn.__code__.co_flags & CO_COROUTINE)  # type: ignore[attr-defined]
    if kind in _PLAIN:
        return False
    if kind is Timed:
        return _is_coroutine_function(fn.fn)  # type: ignore[attr-defined]
    from ._coroutines import is_async

    return is_async(fn)  # type: ignore[arg-type]


def _as_plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    """*fn* as a plain function: a coroutine function is run to completion by it, in the
    worker (:func:`executors._coroutines.run_coroutine`, which process backends can pickle)."""
    from ._coroutines import run_coroutine

    return rewrap(fn, lambda inner: functools.partial(run_coroutine, inner))


def _not_callable(fn: object, where: str) -> TypeError:
    return TypeError(
        f"{where} needs a callable first, got {fn!r} ({type(fn).__name__}); pass the "
        "function itself and its arguments separately: submit(fn, x), not submit(fn(x))"
    )


class BaseExecutor(SharedObjects, concurrent.futures.Executor):
    """Shared behaviour of every backend; subclasses implement ``_submit`` and ``shutdown``.

    Subclasses also subclass :class:`concurrent.futures.Executor`, so code typed
    for the standard library accepts them. The shared objects (``Queue``,
    ``Lock``, ...) come from :class:`executors.sync.SharedObjects`; a subclass's
    ``shutdown`` is wrapped so that they are released after it returns.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        shutdown = cls.__dict__.get("shutdown")
        if shutdown is None or getattr(shutdown, "_closes_shared", False):
            return

        @functools.wraps(shutdown)
        def closing(self: BaseExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
            try:
                shutdown(self, wait, cancel_futures=cancel_futures)
            finally:
                if getattr(type(self), "shutdown", None) is closing:  # the outermost one
                    self._close_shared()

        closing._closes_shared = True  # type: ignore[attr-defined]
        cls.shutdown = closing  # type: ignore[method-assign,assignment]

    #: The registry name; also the value of :attr:`backend`.
    name: ClassVar[str] = "base"

    #: How many tasks run at once (None: no cap, as ``asyncio`` by default).
    max_workers: int | None

    #: True when ``submit`` runs the task before returning (so none is ever pending);
    #: the conformance suite skips tests about pending tasks for such backends.
    runs_in_submit: ClassVar[bool] = False

    #: True when a running task can be stopped (its process killed): ``task_timeout`` and
    #: ``cancel()`` then stop it; in-process backends can only fail its future.
    stops_tasks: ClassVar[bool] = False

    #: True when the backend runs coroutine functions itself (asyncio); the others get
    #: them wrapped so that each runs to completion on an event loop of its worker.
    runs_coroutines: ClassVar[bool] = False

    @property
    def backend(self) -> str:
        """The registry name of this backend."""
        return self.name

    @classmethod
    def default_max_workers(cls) -> int | None:
        """How many workers ``max_workers=None`` means here (None: not a pooled backend)."""
        return None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run here (platform, package), or None when it can."""
        return None

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` and return a :class:`~concurrent.futures.Future`.

        A coroutine function runs to completion (on an event loop of the worker), and
        the future holds what it returns.

        :raises TypeError: when *fn* is not callable.
        :raises RuntimeError: after ``shutdown()``.
        """
        if not callable(fn):
            raise _not_callable(fn, "submit()")
        if _exiting:
            _refuse_at_exit()
        if _is_coroutine_function(fn) and not self.runs_coroutines:
            return self._submit(_as_plain(fn), args, kwargs)
        return self._submit(fn, args, kwargs)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        raise NotImplementedError

    def _tunes_map(self, fn: Callable[..., Any]) -> bool:
        """Whether ``map(fn, ...)`` without ``chunksize`` picks its own chunks (see ``_chunks``).

        A backend says no for tasks that must each be one task (commands, coroutines).
        """
        return True

    #: The most items one chunk of a self-tuned ``map`` holds here.
    map_chunk_cap: ClassVar[int] = _chunks.MAX_CHUNK

    def _map_workers(self) -> int:
        """How many tasks of a map run at once here; chunk sizes are planned for it."""
        workers = getattr(self, "max_workers", None) or self.default_max_workers()
        return workers if isinstance(workers, int) and workers > 0 else 1

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        ordered: bool = True,
        progress: bool | Callable[[int, int | None], object] = False,
    ) -> Iterator[R]:
        """Return an iterator of ``fn(*args)`` over the zipped *iterables*.

        :param timeout: seconds from this call until every result must be in;
            past it, ``next()`` raises :class:`concurrent.futures.TimeoutError`.
        :param chunksize: items per task; None (with no *buffersize*) lets the
            map tune it: chunks start at one item per worker and grow, so a
            map of tiny items runs near the speed of a loop, while results,
            exceptions, ``timeout`` and early stop behave as one task per item.
        :param buffersize: None submits every task now, as the standard library
            does; N reads the input lazily with at most N tasks in flight, so an
            endless generator works.
        :param ordered: True yields results in input order; False as they finish.
        :param progress: True draws a progress bar with rate and ETA on stderr
            when it is a terminal (with tqdm when installed: ``pip install
            'pluggable-executors[progress]'``), and nothing otherwise; a callable is
            called with ``(done, total)`` as each result is taken, in the
            thread iterating the map. Items are counted, never chunks; *total*
            is None when no input has a length.

        When the consumer stops early, or a task raises, what is still pending is
        cancelled.

        >>> from executors import get_executor
        >>> with get_executor() as ex:
        ...     list(ex.map(pow, [2, 3], [5, 2]))
        [32, 9]
        >>> seen = []
        >>> with get_executor() as ex:
        ...     list(ex.map(abs, [-1, -2, -3], progress=lambda done, total: seen.append(done)))
        [1, 2, 3]
        >>> seen
        [1, 2, 3]
        """
        if not callable(fn):
            raise _not_callable(fn, "map()")
        _progress.reporter(progress, None)  # a bad value fails here, not at the first next()
        if not iterables:
            raise TypeError(
                f"map() needs at least one iterable to call {fn!r} over, as the built-in "
                "map() does: ex.map(fn, items), or ex.submit(fn) to call it once"
            )
        positive_int("buffersize", buffersize)
        size = positive_int("chunksize", chunksize)
        fn, seconds = split(fn, None)  # with_timeout: a deadline for each task of the map
        # Each item its own task when it has a deadline of its own (unless chunksize says).
        tune = size is None and buffersize is None and seconds is None and self._tunes_map(fn)
        if (tune or (size or 1) > 1 or not self.runs_coroutines) and _is_coroutine_function(fn):
            fn = _as_plain(fn)  # a chunk is a plain function calling fn for each item
        end_time = None if timeout is None else timeout + time.monotonic()
        each: Callable[..., Any] = fn if seconds is None else Timed(fn, seconds)
        run_chunk: Callable[..., Any] = (
            _chunks.run_chunk if seconds is None else Timed(_chunks.run_chunk, seconds)
        )

        submit: Callable[..., Future[Any]] = self.submit
        stop: _chunks.Stop | None = None
        total = _progress.total_of(iterables) if progress else None
        if tune:
            # Self-tuning chunks: the input is read now, as one task per item would.
            cols, n = _chunks.columns(iterables)
            total = n
            stop = _chunks.Stop()
            sizes = _chunks.plan(n, self._map_workers(), self.map_chunk_cap)
            starts = _chunks.submit_chunks(submit, fn, cols, sizes, stop)
        elif size is None or size == 1:
            starts = (submit(each, *args) for args in zip(*iterables))
        else:
            stop = _chunks.Stop()
            chunks = _batched(zip(*iterables), size)
            starts = (submit(run_chunk, fn, tuple(zip(*c)), stop) for c in chunks)

        results: Iterator[Any]
        if buffersize is None:
            fs: list[Future[Any]] = list(starts)
            if ordered:
                fs.reverse()
                results = _ordered(fs, end_time)
            else:
                results = _unordered(fs, end_time)
        elif ordered:
            results = _ordered_lazy(starts, buffersize, end_time)
        else:
            results = _unordered_lazy(starts, buffersize, end_time)
        if stop is not None:
            results = _chunks.flatten(results, stop)
        return _progress.track(results, progress, total)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.name!r}>"


class OwnsProcesses(BaseExecutor):
    """A backend whose tasks run in processes it starts: it can stop them all at once.

    :meth:`terminate_workers` and :meth:`kill_workers` are the names
    :class:`concurrent.futures.ProcessPoolExecutor` has from Python 3.14 on.
    """

    stops_tasks: ClassVar[bool] = True

    def _worker_pids(self) -> list[int]:
        """The processes this executor started that run (or wait for) tasks now."""
        raise NotImplementedError

    def terminate_workers(self) -> None:
        """Stop everything now: cancel what has not started, SIGTERM every worker process.

        Tasks that were running fail with a :class:`~executors.BrokenExecutor`
        (:class:`~executors.WorkerCrashed` naming the signal); the executor is shut
        down, and its processes are reaped when this returns.
        """
        self._stop_workers(signal.SIGTERM)

    def kill_workers(self) -> None:
        """As :meth:`terminate_workers`, with SIGKILL: for tasks that ignore SIGTERM."""
        self._stop_workers(getattr(signal, "SIGKILL", signal.SIGTERM))

    def _stop_workers(self, sig: int) -> None:
        from .command import kill_process_tree

        self.shutdown(wait=False, cancel_futures=True)
        for pid in self._worker_pids():
            kill_process_tree(pid, sig)
        self.shutdown(wait=True)


def _batched(it: Iterator[tuple[Any, ...]], size: int) -> Iterator[tuple[tuple[Any, ...], ...]]:
    while chunk := tuple(itertools.islice(it, size)):
        yield chunk


def _remaining(end_time: float | None) -> float | None:
    return None if end_time is None else end_time - time.monotonic()


def _cancel(fs: Iterable[Future[Any]]) -> None:
    for f in fs:
        f.cancel()


def _result_or_cancel(f: Future[R], end_time: float | None) -> R:
    """``f.result()`` by *end_time*; when that raises (timeout, Ctrl-C), *f* is cancelled too.

    The future waited for is no longer in the map's list, so without this it would run
    on after a timeout (CPython gh-95166). A future that is done ignores the cancel.
    """
    try:
        return f.result(_remaining(end_time))
    except BaseException:
        f.cancel()
        raise


def _ordered(fs: list[Future[R]], end_time: float | None) -> Iterator[R]:
    # fs is reversed so pop() is O(1), and a yielded future is dropped at once
    # (CPython's result_iterator does the same), so results are not all kept alive.
    try:
        while fs:
            yield _result_or_cancel(fs.pop(), end_time)
    finally:
        _cancel(fs)


def _unordered(fs: list[Future[R]], end_time: float | None) -> Iterator[R]:
    try:
        for f in concurrent.futures.as_completed(fs, timeout=_remaining(end_time)):
            yield f.result()
    finally:
        _cancel(fs)


def _ordered_lazy(starts: Iterator[Future[R]], n: int, end_time: float | None) -> Iterator[R]:
    window: collections.deque[Future[R]] = collections.deque(itertools.islice(starts, n))
    try:
        while window:
            result = _result_or_cancel(window[0], end_time)
            window.popleft()
            window.extend(itertools.islice(starts, 1))
            yield result
            del result  # not kept alive while the consumer holds it
    finally:
        _cancel(window)


def _unordered_lazy(starts: Iterator[Future[R]], n: int, end_time: float | None) -> Iterator[R]:
    pending: set[Future[R]] = set(itertools.islice(starts, n))
    try:
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=_remaining(end_time), return_when="FIRST_COMPLETED"
            )
            if not done:
                raise concurrent.futures.TimeoutError
            pending.update(itertools.islice(starts, len(done)))
            for f in done:
                yield f.result()
    finally:
        _cancel(pending)
