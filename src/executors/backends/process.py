"""Run each task in a fresh ``multiprocessing.Process``, with the start method you choose."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .. import _validate
from .._proc.child import process_child
from .._proc.envelope import capture, pack_call
from .._proc.forking import close_process, forking
from .._proc.runner import ChildBackend, ChildRunner, ChildTask
from .._runtime import Counter
from ..serialization import DEFAULT_SERIALIZER
from ..timeouts import split

if TYPE_CHECKING:
    from collections.abc import Iterable
    from concurrent.futures import Future

__all__ = ["ProcessExecutor"]

R = TypeVar("R")
_names = Counter(1)


class ProcessExecutor(ChildBackend):
    """One :class:`multiprocessing.Process` per task: full isolation, any start method.

    A leak, a crash or a hang affects that task only. Inside the task,
    :func:`multiprocessing.current_process` gives a name and pid to log. With
    ``start_method="fork"`` nothing is pickled on the way in (lambdas work);
    with ``"spawn"`` or ``"forkserver"`` the task is pickled in ``submit``, so
    a bad argument raises :class:`~executors.errors.SerializationError` there.

    :param max_workers: tasks (processes) running at once; default: the CPU count.
    :param start_method: ``"fork"``, ``"forkserver"`` or ``"spawn"``; default:
        the platform's (:func:`multiprocessing.get_start_method`).
    :param initializer: called as ``initializer(*initargs)`` in each process first.
    :param task_timeout: seconds a task may run before its process is killed.
    :param serializer: ``"auto"`` (default: plain pickle; cloudpickle, by value, for
        lambdas, closures and what ``__main__`` defines), ``"pickle"`` or ``"cloudpickle"``.
    :param max_tasks_per_child: accepted; every value is met (one process per task).

    >>> from executors import get_executor
    >>> from executors.demo import square
    >>> with get_executor("process", max_workers=2) as ex:
    ...     list(ex.map(square, [1, 2, 3]))
    [1, 4, 9]
    """

    name: ClassVar[str] = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        start_method: str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = DEFAULT_SERIALIZER,
        max_tasks_per_child: int | None = None,
    ) -> None:
        #: Accepted so one spec fits every backend: each task has a child of its own.
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self._pickler = self._take_options(
            max_workers, initializer, initargs, task_timeout, serializer
        )
        self._take_start_method(
            start_method, multiprocessing.get_start_method(), process_child.__module__
        )
        self._ctx: Any = multiprocessing.get_context(self.start_method)
        prefix = f"executors-process-{next(_names)}"
        launch = _Launcher(self._ctx, prefix, self._init, self._initargs, serializer)
        self._runner = ChildRunner(
            prefix, self.max_workers, launch, _reap, self.task_timeout, initializer=self._init
        )
        weakref.finalize(self, self._runner.shutdown, False)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        fn, timeout = split(fn, self.task_timeout)
        values = capture()
        payload = None
        if self.start_method != "fork":
            payload = pack_call(fn, args, kwargs, values, self._pickler)
        task = ChildTask(self._runner, fn, args, kwargs, values, payload, timeout)
        self._runner.submit(task)
        return task

    def _worker_pids(self) -> list[int]:
        """The children running a task now (each task has its own)."""
        runner = self._runner
        with runner.lock:
            return [t.pid for t in runner.running if t.pid is not None]

    def __repr__(self) -> str:
        return (
            f"<ProcessExecutor backend='process' max_workers={self.max_workers} "
            f"start_method={self.start_method!r}>"
        )


class _Launcher:
    """Starts a Process for a task (kept apart from the executor, so it can be collected)."""

    def __init__(
        self,
        ctx: Any,
        prefix: str,
        init: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        serializer: str,
    ) -> None:
        self.ctx, self.prefix, self.init, self.initargs = ctx, prefix, init, initargs
        self.serializer = serializer
        self.count = Counter(1)

    def __call__(self, task: ChildTask) -> tuple[int, int, Any]:
        call = (
            task.payload
            if task.payload is not None
            else (task.fn, task.args, task.kwargs, task.values)
        )
        with forking(self.ctx.get_start_method()):
            read_fd, write_fd = os.pipe()
            child_end = multiprocessing.connection.Connection(write_fd, readable=False)
            process = self.ctx.Process(
                target=process_child,
                args=(
                    child_end,
                    call,
                    self.init,
                    self.initargs,
                    self.serializer,
                    logging.getLogger().getEffectiveLevel(),
                ),
                name=f"{self.prefix}-task-{next(self.count)}",
            )
            try:
                process.start()
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                child_end.close()
        os.set_blocking(read_fd, False)
        assert process.pid is not None
        return process.pid, read_fd, process


def _reap(task: ChildTask) -> int:
    process: multiprocessing.process.BaseProcess = task.handle
    process.join()
    code = process.exitcode
    # Process.start() in any thread polls every live child (multiprocessing's
    # _cleanup); when that poll reaps ours first, join() returns before the exit code
    # is stored, and waiting a moment gives it.
    deadline = time.monotonic() + 5.0
    while code is None and time.monotonic() < deadline:
        time.sleep(0.001)
        code = process.exitcode
    close_process(process)
    return -1 if code is None else code
