"""The worker threads: each owns one interpreter and runs the queued tasks in it, in order."""

from __future__ import annotations

import contextlib
import pickle
import queue
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Optional, Tuple

from .. import _deadline
from .._wording import initializer_failed
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


class _Shared:
    """What the executor and its worker threads share (the threads never see the executor)."""

    __slots__ = (
        "broken",
        "engine",
        "idle",
        "init",
        "initializer",
        "lock",
        "max_tasks",
        "queue",
        "shutdown",
        "task_timeout",
    )

    def __init__(
        self,
        engine: Engine,
        init: bytes | None,
        initializer: Callable[..., Any] | None,
        task_timeout: float | None = None,
        max_tasks: int | None = None,
    ) -> None:
        self.engine = engine
        self.task_timeout = task_timeout
        self.max_tasks = max_tasks
        self.init = init
        self.initializer = initializer
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.shutdown = False
        self.broken: BrokenExecutor | None = None

    def fail_queued(self, error: BaseException | None) -> None:
        """Drain the queue: cancel each task (*error* None) or fail it with *error*."""
        stops = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stops += 1
            elif error is None:
                item[0].cancel()
            elif item[0].set_running_or_notify_cancel():
                item[0].set_exception(error)
        for _ in range(stops):  # stop markers belong to other threads: put them back
            self.queue.put(None)

    def break_(self, message: str | BrokenExecutor, cause: BaseException) -> None:
        """Fail every queued task, and every later submit, with one error."""
        with self.lock:
            if self.broken is None:
                if isinstance(message, BrokenExecutor):
                    self.broken = message
                else:
                    self.broken = BrokenExecutor(message)
                    self.broken.__cause__ = cause
            broken = self.broken
        self.fail_queued(broken)


def _start(shared: _Shared) -> Interp | None:
    """This worker's interpreter, booted and initialized; None (pool broken) on failure."""
    try:
        interp = shared.engine.start()
    except BaseException as exc:
        shared.break_(
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
                shared.break_(initializer_failed(shared.initializer, error, where), error)
                interp.close()
                return None
    except BaseException as exc:
        interp.close()
        shared.break_(f"a worker interpreter failed to start: {type(exc).__name__}: {exc}", exc)
        return None
    return interp


def _work(shared: _Shared) -> None:
    interp = _start(shared)
    if interp is None:
        return
    get, get_nowait, lock = shared.queue.get, shared.queue.get_nowait, shared.lock
    ran = 0
    try:
        while True:
            try:
                item = get_nowait()
            except queue.Empty:
                with lock:
                    shared.idle += 1
                item = get()
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
        shared = self.shared
        with shared.lock:
            first = not shared.shutdown
            shared.shutdown = True
            threads = len(self.threads)
        if cancel:
            shared.fail_queued(None)
        for _ in range(threads if first else 0):
            shared.queue.put(None)

    def join(self) -> None:
        for thread in list(self.threads):
            if thread is not threading.current_thread():
                thread.join()
