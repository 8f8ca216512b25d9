"""The worker threads: each owns one interpreter and runs the queued tasks in it, in order."""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Optional, Tuple

from .. import _deadline
from .._wording import initializer_failed
from .._workqueue import WorkQueue
from ..errors import BrokenExecutor
from ..serialization import unpack_exception
from .engines import Engine, Interp
from .inside import ERR

__all__ = ["Workers"]

_Item = Optional[Tuple["Future[Any]", bytes, str, Optional[float]]]

# A new interpreter computes sys.path afresh: it gets the caller's (a script's folder,
# pytest's rootdir), so that tasks' modules import there as they do here.
_BOOT = (
    "import sys\n"
    "sys.path[:] = [*_executors_path.split('\\0'), *sys.path]\n"
    "import executors._subinterp.inside as _executors_inside\n"
    "_executors_inside.boot()\n"
)
_RUN = "_executors_send(_executors_inside.run(_executors_payload))"
_INIT = "_executors_send(_executors_inside.initialize(_executors_payload))"


class _Shared(WorkQueue[_Item]):
    """What the executor and its worker threads share (the threads never see the executor)."""

    __slots__ = ("engine", "init", "initializer", "max_tasks", "task_timeout")

    def __init__(
        self,
        engine: Engine,
        init: bytes | None,
        initializer: Callable[..., Any] | None,
        task_timeout: float | None = None,
        max_tasks: int | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.task_timeout = task_timeout
        self.max_tasks = max_tasks
        self.init = init
        self.initializer = initializer

    def fail(self, message: str | BrokenExecutor, cause: BaseException) -> None:
        """Break the pool: every queued task, and every later submit, fails with one error."""
        if isinstance(message, BrokenExecutor):
            error = message
        else:
            error = BrokenExecutor(message)
            error.__cause__ = cause
        self.break_(error)


def _start(shared: _Shared) -> Interp | None:
    """This worker's interpreter, booted and initialized; None (pool broken) on failure."""
    try:
        interp = shared.engine.start()
    except BaseException as exc:
        shared.fail(
            f"could not create a subinterpreter ({shared.engine.name}): "
            f"{type(exc).__name__}: {exc}; use 'pool' instead",
            exc,
        )
        return None
    try:
        path = [p for p in sys.path if isinstance(p, str)]
        interp.run(_BOOT, _executors_path="\0".join(path))
        if shared.init is not None:
            interp.run(_INIT, _executors_payload=shared.init)
            kind, value = pickle.loads(interp.take())
            if kind == ERR:
                error = unpack_exception(value)
                where = f" in worker {threading.current_thread().name}"
                shared.fail(initializer_failed(shared.initializer, error, where), error)
                interp.close()
                return None
    except BaseException as exc:
        interp.close()
        shared.fail(f"a worker interpreter failed to start: {type(exc).__name__}: {exc}", exc)
        return None
    return interp


def _work(shared: _Shared) -> None:
    interp = _start(shared)
    if interp is None:
        return
    take = shared.take
    ran = 0
    try:
        while True:
            item = take()
            if item is None:
                return
            future, payload, label, timeout = item
            del item
            if future.set_running_or_notify_cancel():
                if timeout is not None:
                    _deadline.watch(future, timeout, label)
                _run_one(interp, future, payload)
                ran += 1
            del future, payload
            if shared.max_tasks is not None and ran >= shared.max_tasks:
                interp.close()  # max_tasks_per_child: a fresh interpreter takes over
                interp, ran = None, 0
                interp = _start(shared)
                if interp is None:
                    return
    finally:
        if interp is not None:
            interp.close()


def _run_one(interp: Interp, future: Future[Any], payload: bytes) -> None:
    try:
        interp.run(_RUN, _executors_payload=payload)
        kind, value = pickle.loads(interp.take())
    except BaseException as exc:  # the interpreter itself failed, not the task
        with contextlib.suppress(InvalidStateError):  # timed out meanwhile
            future.set_exception(exc)
        return
    with contextlib.suppress(InvalidStateError):  # timed out: the late outcome is dropped
        if kind == ERR:
            future.set_exception(unpack_exception(value))
        else:
            future.set_result(value)


class Workers:
    """Up to *max_workers* threads, each with its own interpreter, started on demand."""

    def __init__(
        self,
        engine: Engine,
        max_workers: int,
        init: bytes | None,
        name_prefix: str,
        *,
        initializer: Callable[..., Any] | None = None,
        task_timeout: float | None = None,
        max_tasks: int | None = None,
    ) -> None:
        self.max_workers = max_workers
        self.name_prefix = name_prefix
        self.shared = _Shared(engine, init, initializer, task_timeout, max_tasks)
        self.threads: list[threading.Thread] = []

    def submit(
        self, future: Future[Any], payload: bytes, label: str = "", timeout: float | None = None
    ) -> None:
        """Queue a task (*timeout*: its deadline, *label* its name); start a worker when none
        is idle and there is room."""
        shared = self.shared
        with shared.lock:
            if shared.broken is not None:
                raise shared.broken
            if shared.shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            shared.queue.put((future, payload, label, timeout))
            if shared.idle:
                shared.idle -= 1
            elif len(self.threads) < self.max_workers:
                thread = threading.Thread(
                    target=_work,
                    args=(shared,),
                    name=f"{self.name_prefix}_{len(self.threads)}",
                    daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def stop(self, *, cancel: bool) -> None:
        """Refuse new tasks; cancel the queued ones if asked; tell each worker to exit."""
        with self.shared.lock:
            threads = len(self.threads)
        self.shared.stop(threads, cancel=cancel)

    def join(self) -> None:
        for thread in list(self.threads):
            if thread is not threading.current_thread():
                thread.join()
