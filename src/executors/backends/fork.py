"""Run each task in a child made by ``os.fork()``: nothing is pickled on the way in."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import weakref
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .. import _validate
from .._proc.child import run_forked
from .._proc.envelope import capture
from .._proc.forking import flush_std_streams, forking
from .._proc.logs import ForwardHandler
from .._proc.runner import ChildBackend, ChildRunner, ChildTask
from .._runtime import Counter
from ..serialization import DEFAULT_SERIALIZER, Dumps, get_pickler
from ..timeouts import split

if TYPE_CHECKING:
    from collections.abc import Iterable
    from concurrent.futures import Future

__all__ = ["ForkExecutor"]

R = TypeVar("R")
_names = Counter(1)


class ForkExecutor(ChildBackend):
    """One ``os.fork()`` per task, at most ``max_workers`` running at once (POSIX).

    The child is a copy of the caller: the function and its arguments are not
    pickled, so lambdas and closures work, and a crash (or a leak) dies with
    the child. The child sends its result back over a pipe and leaves with
    ``os._exit``; every child is reaped. A child killed by a signal fails its
    task with :class:`~executors.errors.WorkerCrashed` naming the signal.

    :param max_workers: tasks (children) running at once; default: the CPU count.
    :param initializer: called as ``initializer(*initargs)`` in each child first.
    :param task_timeout: seconds a task may run before its child is killed
        (:class:`~executors.errors.TaskTimeout`).
    :param serializer: how results travel back: ``"auto"`` (default: plain pickle,
        cloudpickle for what it refuses), ``"pickle"`` or ``"cloudpickle"``.
    :param max_tasks_per_child: accepted; every value is met (one child per task).

    >>> import os
    >>> from executors import get_executor
    >>> with get_executor("fork", max_workers=2) as ex:
    ...     child = ex.submit(lambda: os.getpid()).result()
    >>> child != os.getpid()
    True
    """

    name: ClassVar[str] = "fork"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = DEFAULT_SERIALIZER,
        max_tasks_per_child: int | None = None,
    ) -> None:
        #: Accepted so one spec fits every backend: each task has a child of its own.
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        self._take_options(max_workers, initializer, initargs, task_timeout, serializer)
        pickler = get_pickler(serializer, main_by_value=False)  # the child's __main__ is ours
        launch = functools.partial(_launch, self._init, self._initargs, pickler, ForwardHandler())
        self._runner = ChildRunner(
            f"executors-fork-{next(_names)}",
            self.max_workers,
            launch,
            _reap,
            self.task_timeout,
            initializer=self._init,
        )
        weakref.finalize(self, self._runner.shutdown, False)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Only where ``os.fork`` exists."""
        if not hasattr(os, "fork"):
            return f"needs os.fork(), which {sys.platform} lacks; use 'process' or 'pool' instead"
        return None

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        fn, timeout = split(fn, self.task_timeout)
        task = ChildTask(self._runner, fn, args, kwargs, capture(), None, timeout)
        self._runner.submit(task)
        return task

    def _worker_pids(self) -> list[int]:
        """The children running a task now (each task has its own)."""
        runner = self._runner
        with runner.lock:
            return [t.pid for t in runner.running if t.pid is not None]

    def __repr__(self) -> str:
        return f"<ForkExecutor backend='fork' max_workers={self.max_workers}>"


def _launch(
    init: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    pickler: Dumps,
    handler: ForwardHandler,
    task: ChildTask,
) -> tuple[int, int, Any]:
    """Fork a child that runs *task* and writes its outcome to a new pipe; (pid, fd, None)."""
    call = (task.fn, task.args, task.kwargs, task.values)
    flush_std_streams()  # or the child would print the parent's buffered output
    with forking():
        read_fd, write_fd = os.pipe()
        # The child inherits the mask: Ctrl-C is left to the caller, at no cost in the child.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # pragma: no cover - the child; coverage does not follow it
            code = 70  # EX_SOFTWARE: the child could not even report
            try:
                os.close(read_fd)
                run_forked(write_fd, call, init, initargs, pickler, handler)
                code = 0
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
    os.set_blocking(read_fd, False)
    return pid, read_fd, None


_SIGINT = {signal.SIGINT}


def _reap(task: ChildTask) -> int:
    while True:
        with contextlib.suppress(InterruptedError):
            _, status = os.waitpid(task.pid, 0)  # type: ignore[arg-type]
            return os.waitstatus_to_exitcode(status)
