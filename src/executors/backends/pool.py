"""Run tasks on persistent worker processes: batched pipes, crash recovery, timeouts, cancel.

The machinery (workers, pipes, the manager thread, with a data-flow diagram)
lives in :mod:`executors._pool`; this module is the executor around it.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import pickle
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar, overload

from .. import _chunks, _progress, _validate
from .._compat import ParamSpec
from .._pool.engine import Pool, submit_call
from .._pool.processes import ProcessLauncher, pool_worker
from .._proc.backend import ProcessBackend
from .._validate import positive_int
from ..protocol import _as_plain, _is_coroutine_function
from ..serialization import DEFAULT_SERIALIZER, get_pickler
from ..timeouts import Timed, split

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable, Iterator
    from concurrent.futures import Future

__all__ = ["PoolExecutor"]

R = TypeVar("R")
P = ParamSpec("P")


def default_start_method() -> str:
    """``fork`` where it exists and is safe enough (Linux, BSD); else the platform's default."""
    if sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return multiprocessing.get_start_method()


class PoolExecutor(ProcessBackend):
    """Persistent worker processes: for CPU-bound work, robust to crashes and hangs.

    A worker that dies fails only the task it was running (with
    :class:`~executors.errors.WorkerCrashed` naming the signal or exit code) and
    is replaced; ``task_timeout`` kills a task that overruns (its future raises
    :class:`~executors.errors.TaskTimeout`); ``future.cancel()`` stops even a
    running task. ``map`` picks its own chunk size.

    :param max_workers: worker processes; default: the CPU count.
    :param initializer: called as ``initializer(*initargs)`` in each new worker;
        it can fill :data:`executors.context.worker`.
    :param max_tasks_per_child: replace a worker after it ran this many tasks.
    :param start_method: ``"fork"`` (default on Linux), ``"forkserver"`` or ``"spawn"``.
    :param serializer: ``"auto"`` (default: plain pickle; cloudpickle, by value, for
        lambdas, closures and, unless the workers are forked, what ``__main__``
        defines), ``"pickle"`` (never by value) or ``"cloudpickle"`` (always).
    :param task_timeout: seconds a single task may run before it is killed.

    >>> from executors import get_executor
    >>> from executors.demo import square
    >>> with get_executor("pool", max_workers=2) as ex:
    ...     ex.submit(square, 12).result(), list(ex.map(square, range(5)))
    (144, [0, 1, 4, 9, 16])
    """

    name: ClassVar[str] = "pool"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        max_tasks_per_child: int | None = None,
        start_method: str | None = None,
        serializer: str = DEFAULT_SERIALIZER,
        task_timeout: float | None = None,
    ) -> None:
        self._pickler = self._take_options(
            max_workers, initializer, initargs, task_timeout, serializer
        )
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self._take_start_method(start_method, default_start_method(), pool_worker.__module__)
        # forked workers have our __main__: its functions go by reference there
        self._pickler = get_pickler(serializer, main_by_value=self.start_method != "fork")
        self._dumps: Callable[[Any], bytes] = (
            functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
            if serializer == "pickle"
            else self._pickler
        )
        launcher = ProcessLauncher(
            self.start_method, self._init, self._initargs, max_tasks_per_child, serializer
        )
        self._pool = Pool(
            self.max_workers,
            launcher,
            initializer=self._init,
            max_tasks=max_tasks_per_child,
            task_timeout=self.task_timeout,
        )
        self._finalizer = weakref.finalize(self, self._pool.shutdown, False)

    @overload
    def submit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]: ...

    @overload
    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` on a worker; the task is pickled here.

        :raises SerializationError: naming the function or argument that does not pickle.
        :raises BrokenExecutor: after the initializer failed.
        :raises RuntimeError: after :meth:`shutdown`.
        """
        if not callable(fn) or _is_coroutine_function(fn):
            return super().submit(fn, *args, **kwargs)
        return self._submit(fn, args, kwargs)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        return submit_call(self._pool, fn, args, kwargs, self._dumps, self._pickler)

    def _default_chunksize(self, iterables: tuple[Iterable[Any], ...]) -> int:
        sizes = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
        if not sizes:
            return 1
        return max(1, min(min(sizes) // (self.max_workers * 8), 50_000))

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
        """As :meth:`BaseExecutor.map`; the chunk size adapts to the input when not given.

        Inputs with a length are cut into about eight chunks per worker (at most
        50,000 items each); others go one item per task, and so do the items of a
        function with a deadline of its own (:func:`~executors.with_timeout`).
        """
        fn, seconds = split(fn, None)
        if _is_coroutine_function(fn):
            fn = _as_plain(fn)
        if chunksize is not None or not callable(fn) or seconds is not None:
            size = positive_int("chunksize", chunksize)
        else:
            size = self._default_chunksize(iterables)
        if size is None or size == 1:
            return super().map(
                fn if seconds is None else Timed(fn, seconds),
                *iterables,
                timeout=timeout,
                chunksize=size,
                buffersize=buffersize,
                ordered=ordered,
                progress=progress,
            )
        _progress.reporter(progress, None)  # a bad value fails now
        total = _progress.total_of(iterables) if progress else None
        stop = _chunks.Stop()
        chunks = _columns(iterables, size)
        results = super().map(
            _chunks.run_chunk if seconds is None else Timed(_chunks.run_chunk, seconds),
            itertools.repeat(fn),
            chunks,
            itertools.repeat(stop),
            timeout=timeout,
            chunksize=1,
            buffersize=buffersize,
            ordered=ordered,
        )
        return _progress.track(_chunks.flatten(results, stop), progress, total)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, cancel pending ones if asked, wait for the rest if asked."""
        self._pool.shutdown(cancel_futures)
        if wait and threading.current_thread() is not self._pool.thread:  # not from a callback
            self._pool.thread.join()

    def _worker_pids(self) -> list[int]:
        with self._pool.lock:
            return [w.pid for w in self._pool.workers]

    def __repr__(self) -> str:
        return f"<PoolExecutor backend='pool' max_workers={self.max_workers}>"


def _columns(iterables: tuple[Iterable[Any], ...], size: int) -> Iterator[tuple[Any, ...]]:
    """The inputs cut into chunks of *size*; ranges, lists and tuples are sliced, not copied."""
    if all(isinstance(it, (range, list, tuple)) for it in iterables):
        seqs: list[Any] = list(iterables)
        n = min(len(s) for s in seqs)
        for start in range(0, n, size):
            yield tuple(s[start : min(start + size, n)] for s in seqs)
        return
    its = [iter(it) for it in iterables]
    while True:
        cols = tuple(list(itertools.islice(it, size)) for it in its)
        n = min(len(c) for c in cols)
        if n == 0:
            return
        yield cols if all(len(c) == n for c in cols) else tuple(c[:n] for c in cols)
        if n < size:
            return
