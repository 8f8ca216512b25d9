"""Run each task inside submit(), in the caller's thread: for debugging and determinism."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, TypeVar

from .. import _deadline, _validate
from .._wording import initializer_failed
from ..errors import BrokenExecutor, TaskTimeout
from ..protocol import BaseExecutor
from ..timeouts import split

__all__ = ["InlineExecutor"]

R = TypeVar("R")


class InlineExecutor(BaseExecutor):
    """Run every task at once, in ``submit``, in the calling thread.

    Tasks run one after another in submission order, so output is deterministic
    and ``pdb.set_trace()`` inside a task just works. Each task runs in a copy of
    the caller's :mod:`contextvars` context, so what it sets does not leak out.
    ``max_workers`` is accepted (so one spec fits every backend) and checked,
    but there is only ever the caller; so are ``serializer`` and
    ``max_tasks_per_child`` (nothing is pickled, no worker replaced). With
    ``task_timeout``, a task that returns after it fails with
    :class:`~executors.TaskTimeout` (the caller's thread cannot be interrupted).

    >>> from executors import get_executor
    >>> with get_executor("inline") as ex:
    ...     f = ex.submit(divmod, 7, 2)
    ...     f.done(), f.result()
    (True, (3, 1))
    """

    name: ClassVar[str] = "inline"
    sharing: ClassVar[str] = "local"
    runs_in_submit: ClassVar[bool] = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = "auto",
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.max_workers = _validate.max_workers(max_workers, default=1)
        #: Seconds a task may run; one that returns later fails with TaskTimeout instead.
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        self.serializer = _validate.serializer(serializer)
        self.max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        init, args = _validate.initializer(initializer, initargs)
        self._lock = threading.Lock()  # held while checking and setting _shutdown
        self._shutdown = False
        self._broken: BrokenExecutor | None = None
        if init is not None:
            try:
                init(*args)
            except Exception as exc:
                self._broken = initializer_failed(init, exc)

    @classmethod
    def default_max_workers(cls) -> int:
        """Always 1: the caller is the only worker."""
        return 1

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        if self._broken is not None:
            raise self._broken
        fn, timeout = split(fn, self.task_timeout)
        future: Future[R] = Future()
        future.set_running_or_notify_cancel()
        start = time.monotonic()
        try:
            result = contextvars.copy_context().run(fn, *args, **kwargs)
        except KeyboardInterrupt as exc:
            # Ctrl-C stops the caller, as it would in a plain loop.
            future.set_exception(exc)
            raise
        except BaseException as exc:
            # SystemExit included: it is the task's outcome, as on every other backend.
            future.set_exception(exc)
        else:
            if timeout is not None and time.monotonic() - start > timeout:
                future.set_exception(
                    TaskTimeout(
                        f"{_deadline.describe(fn)} ran longer than task_timeout={timeout:g} s "
                        "(inline runs it in the caller's thread, which cannot be stopped: its "
                        "result is dropped)"
                    )
                )
            else:
                future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new tasks; there is never anything running or pending to wait for."""
        with self._lock:
            self._shutdown = True
