"""Run each task in a subinterpreter of this process: isolated modules (PEP 684/734).

On 3.13 and later every worker interpreter has a GIL of its own, so tasks run in
parallel; on 3.12 they share the main GIL (an own GIL corrupts 3.12's heap beside
cloudpickle: see :mod:`executors._subinterp.engines`). The machinery (worker
threads, interpreter engines, a data-flow diagram) lives in
:mod:`executors._subinterp`; this module is the executor around it.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .. import _deadline, _validate, context
from .._compat import ParamSpec
from .._futures import LeanFuture
from .._subinterp import engines
from .._subinterp.workers import Workers
from ..protocol import BaseExecutor
from ..serialization import dumps, get_pickler
from ..timeouts import split

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["InterpreterExecutor"]

P = ParamSpec("P")
R = TypeVar("R")

_live_lock = threading.Lock()  # _pools, also without the GIL (free-threaded builds)


_pools: set[Workers] = set()  # every executor's workers until shut down, dropped ones too


def _at_exit() -> None:
    # Queued tasks still run, even of an executor that was dropped without shutdown;
    # then the interpreters are destroyed, before this one finalizes.
    with _live_lock:
        pools = list(_pools)
    for pool in pools:
        pool.stop(cancel=False)
    for pool in pools:
        pool.join()


getattr(threading, "_register_atexit", lambda fn: None)(_at_exit)


class InterpreterExecutor(BaseExecutor):
    """Subinterpreters in this process: CPU-bound work in parallel, without processes.

    Each worker is a thread driving its own interpreter with its own GIL, so
    pure-Python number crunching uses every core, as ``pool`` does, but a task
    starts in microseconds and nothing forks. Functions, arguments and results
    cross by pickle, as on ``pool``: those of a module by name, those of the
    caller's ``__main__`` (each interpreter has its own, empty), lambdas and
    closures by value (cloudpickle).
    Interpreters share no module state: :data:`executors.context.worker` and
    globals a task sets stay in its interpreter. Extension modules that do not
    support subinterpreters (many C extensions, for now) refuse to import there;
    such a task fails with an :class:`ImportError` naming the module; use
    ``pool`` for it.

    Needs CPython 3.12 or later; on 3.13, ``pip install
    'pluggable-executors[interpreters]'``.

    :param max_workers: interpreters (and threads); default: the CPU count.
    :param initializer: called as ``initializer(*initargs)`` in each new interpreter;
        if it raises, every task fails with :class:`~executors.BrokenExecutor`.
    :param serializer: ``"auto"`` (default; see :doc:`/pickling`), ``"pickle"`` or
        ``"cloudpickle"``.
    :param thread_name_prefix: names of the threads that drive the interpreters.
    :param task_timeout: seconds a task may run; at the deadline its future fails
        with :class:`~executors.TaskTimeout`. An interpreter cannot be stopped
        mid-task: its worker stays busy until the task ends, and the late result
        is dropped (``pool`` kills the worker instead).
    :param max_tasks_per_child: replace a worker's interpreter after this many tasks.

    >>> from executors import get_executor, unavailable_reason
    >>> from executors.demo import square
    >>> if unavailable_reason("interpreter") is None:  # CPython 3.12+ (3.13: the extra)
    ...     with get_executor("interpreter", max_workers=2) as ex:
    ...         assert ex.submit(square, 12).result() == 144
    ...         assert list(ex.map(square, range(5))) == [0, 1, 4, 9, 16]
    """

    max_workers: int
    name: ClassVar[str] = "interpreter"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        serializer: str = "auto",
        thread_name_prefix: str = "executors-interpreter",
        task_timeout: float | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        init, args = _validate.initializer(initializer, initargs)
        #: Seconds a task may run before its future fails with :class:`~executors.TaskTimeout`.
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self._pickler = get_pickler(serializer)
        self.serializer = serializer
        init_payload = None
        if init is not None:
            init_payload = dumps(
                (init, args),
                what=f"the initializer {init!r}",
                parts={"the initializer": init, "initargs": args},
                pickler=self._pickler,
            )
        self._workers = Workers(
            engines.engine(),
            self.max_workers,
            init_payload,
            str(thread_name_prefix),
            initializer=init,
            task_timeout=self.task_timeout,
            max_tasks=self.max_tasks_per_child,
        )
        weakref.finalize(self, self._workers.stop, cancel=False)
        with _live_lock:
            _pools.add(self._workers)

    @classmethod
    def default_max_workers(cls) -> int:
        """The number of CPUs this process may use."""
        return _validate.cpu_count()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Needs CPython 3.12+ (and the ``interpreters-pep-734`` package on 3.13)."""
        return engines.unavailable_reason()

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        fn, timeout = split(fn, self.task_timeout)
        bound = context.current()
        values = dict(bound) if bound else None
        task = (fn, args, kwargs or None, values)
        try:
            payload = self._pickler(task)
        except Exception:
            parts: dict[str, Any] = {"the function": fn}
            parts.update({f"argument {i + 1}": a for i, a in enumerate(args)})
            parts.update({f"keyword argument {k!r}": v for k, v in kwargs.items()})
            parts.update({f"context value {k!r}": v for k, v in (values or {}).items()})
            payload = dumps(task, what="the task", parts=parts, pickler=self._pickler)
        future: Future[R] = LeanFuture()  # wait() sees a cancelled one done at once
        label = _deadline.describe(fn) if timeout is not None else ""
        self._workers.submit(future, payload, label, timeout)
        return future

    def _default_chunksize(self, iterables: tuple[Iterable[Any], ...]) -> int:
        """About eight chunks per worker for inputs with a length: a task costs tens of µs."""
        sizes = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
        if not sizes:
            return 1
        return max(1, min(min(sizes) // (self.max_workers * 8), 10_000))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; cancel queued ones if asked; wait for the rest if asked."""
        self._workers.stop(cancel=cancel_futures)
        if wait:
            self._workers.join()
            with _live_lock:
                _pools.discard(self._workers)

    def __repr__(self) -> str:
        return (
            f"<InterpreterExecutor backend='interpreter' max_workers={self.max_workers} "
            f"engine={self._workers.shared.engine.name!r}>"
        )
