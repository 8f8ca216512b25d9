"""Run commands directly and Python callables in fresh interpreters (registry name: subprocess).

The module is not called ``subprocess.py``, which would shadow the standard library.

::

    submit() --> queue --> slot thread 1 --+-- Command / run_command: Popen, no Python worker
                       \\-> slot thread 2   '-- callable: pickle --> pipe --> [python -c worker]
                                                      result or exception <-- pipe <--'

Each slot thread owns at most one worker interpreter (``executors._interpreter``),
started when its first Python task arrives and reused for ``max_tasks_per_child``
tasks (every task with ``fresh=True``). A worker that dies fails only its own task
with :class:`~executors.errors.WorkerCrashed`; the slot starts a new one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import queue
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .. import _validate, context
from .._interpreter import PACKAGE_PARENT, Interpreter, resolve_python
from ..command import Command, run_command
from ..errors import BrokenExecutor, InvalidOption, TaskTimeout, WorkerCrashed
from ..protocol import BaseExecutor
from ..serialization import PackedException, describe, dumps, get_pickler, unpack_exception

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["SubprocessExecutor"]

R = TypeVar("R")


class _Slot:
    """What one slot thread holds: its worker, and the spare that will replace it."""

    __slots__ = ("spare", "worker")

    def __init__(self) -> None:
        self.worker: Interpreter | None = None
        self.spare: Interpreter | None = None


class _Item:
    __slots__ = ("command", "fn", "future", "payload")

    def __init__(
        self, future: Future[Any], command: Callable[[], Any] | None, payload: bytes, fn: object
    ) -> None:
        self.future = future
        self.command = command
        self.payload = payload
        self.fn = fn


class SubprocessExecutor(BaseExecutor):
    """Commands run directly; Python callables run in separate, fresh interpreters.

    Command tasks (:func:`executors.run_command` or a :class:`executors.Command`)
    start the program straight from a slot thread, as ``subprocess.run`` would.
    Any other callable is pickled to a worker interpreter that shares nothing
    with the caller (no fork: no copied locks, threads or memory), and can be
    another Python than the caller's.

    :param max_workers: how many tasks run at once; default: the CPU count.
    :param python: the worker interpreter: a path, a name on PATH or a virtual
        environment directory; default: the caller's. Another interpreter must be
        Python 3.9+; ``executors`` is put at the end of its ``sys.path``.
    :param fresh: start a new interpreter for every task (clean state; costs a start each).
    :param max_tasks_per_child: replace a worker after this many tasks (None: never).
    :param initializer: called with *initargs* in every new worker interpreter.
    :param serializer: ``"pickle"`` or ``"cloudpickle"`` (for lambdas and closures).
    :param start_timeout: seconds a new worker may take to become ready.
    :param task_timeout: seconds a Python task may run; past it its worker is
        killed and the task fails with :class:`~executors.TaskTimeout` (None: no limit;
        command tasks have their own ``timeout``).

    >>> import os
    >>> from executors import get_executor
    >>> with get_executor("subprocess", max_workers=1) as ex:
    ...     ex.submit(os.getpid).result() != os.getpid()
    True
    """

    name: ClassVar[str] = "subprocess"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        python: str | os.PathLike[str] | None = None,
        fresh: bool = False,
        max_tasks_per_child: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        serializer: str = "pickle",
        start_timeout: float = 60.0,
        task_timeout: float | None = None,
    ) -> None:
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        self.python = resolve_python(python)
        if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool)
            or not isinstance(max_tasks_per_child, int)
            or max_tasks_per_child < 1
        ):
            raise InvalidOption(
                f"max_tasks_per_child must be a positive int or None, got {max_tasks_per_child!r}"
            )
        if fresh and max_tasks_per_child not in (None, 1):
            raise InvalidOption(
                f"fresh=True means one task per worker, but max_tasks_per_child="
                f"{max_tasks_per_child!r}; pass one or the other"
            )
        self.fresh = bool(fresh)
        self.max_tasks_per_child = 1 if fresh else max_tasks_per_child
        self._start_timeout = _validate.positive_number("start_timeout", start_timeout) or 60.0
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        self._dumps = get_pickler(serializer)
        init, args = _validate.initializer(initializer, initargs)
        self._same_python = os.path.abspath(self.python) == os.path.abspath(sys.executable)
        self._init: bytes | None = None
        if init is not None:
            self._init = dumps(
                (init, args),
                what="the initializer",
                parts={"the initializer": init, "initargs": args},
                pickler=self._dumps,
            )
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._shutdown = False
        self._broken: BrokenExecutor | None = None
        self._retired: list[Interpreter] = []

    @classmethod
    def default_max_workers(cls) -> int:
        """The number of CPUs this process may use."""
        return _validate.cpu_count()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Workers talk over inherited pipes (``pass_fds``), which needs POSIX."""
        if os.name != "posix":  # pragma: no cover - Windows
            return (
                f"needs POSIX pipes passed to child processes, which {sys.platform} lacks; "
                "submit executors.run_command to the 'thread' backend instead"
            )
        return None

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        if _is_command(fn):
            command: Callable[[], Any] | None = functools.partial(fn, *args, **kwargs)
            payload = b""
        else:
            command = None
            task = (fn, args, kwargs, context.capture())
            try:
                payload = self._dumps(task)
            except Exception:  # again, to name the culprit in a SerializationError
                parts = {"the function": fn}
                parts.update({f"argument {i + 1}": a for i, a in enumerate(args)})
                parts.update({f"keyword argument {k!r}": v for k, v in kwargs.items()})
                payload = dumps(
                    task, what=f"the task {describe(fn)}", parts=parts, pickler=self._dumps
                )
        future: Future[R] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._broken is not None:
                raise self._broken
            self._queue.put(_Item(future, command, payload, fn))
            if len(self._threads) < self.max_workers and not self._idle.acquire(blocking=False):
                thread = threading.Thread(
                    target=self._serve,
                    name=f"executors-subprocess_{len(self._threads)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        slot = _Slot()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if item.future.set_running_or_notify_cancel():
                    if item.command is not None:
                        _settle(item.future, item.command)
                    else:
                        try:
                            self._run(item, slot)
                        except BaseException as exc:  # an OS error must not hang the future
                            if not item.future.done():
                                item.future.set_exception(exc)
                del item
                if len(self._threads) < self.max_workers:  # only then does submit() ask
                    self._idle.release()
        finally:
            for worker in (slot.worker, slot.spare):
                if worker is not None:
                    worker.close()
            self._reap(block=True)

    def _ready(self, slot: _Slot) -> Interpreter:
        if slot.worker is None:  # take the spare that booted meanwhile, if any
            slot.worker, slot.spare = slot.spare or self._launch(), None
        worker = slot.worker
        try:
            worker.wait_ready(self._start_timeout)
        except BrokenExecutor as exc:
            slot.worker = None
            with self._lock:
                self._broken = self._broken or exc
            raise
        return worker

    def _run(self, item: _Item, slot: _Slot) -> None:
        try:
            worker = self._ready(slot)
            if not worker.send(item.payload):
                worker.close()  # it died between tasks, before reading this one: replace it
                slot.worker = None
                worker = self._ready(slot)
                worker.send(item.payload)  # if this fails too, receive() reports the crash
        except BrokenExecutor as exc:
            item.future.set_exception(exc)
            return
        limit = self.max_tasks_per_child
        last = limit is not None and worker.tasks >= limit
        if last and not self._shutdown and not self._queue.empty():
            # boot the next worker while this one runs the task (only if one is waiting)
            with contextlib.suppress(BrokenExecutor):  # reported when the spare is used
                slot.spare = self._launch()
        try:
            status, value = worker.receive(item.fn, self.task_timeout)
        except (WorkerCrashed, TaskTimeout) as exc:
            slot.worker = None
            item.future.set_exception(exc)
            return
        except BaseException as exc:  # the result would not unpickle here
            item.future.set_exception(exc)
        else:
            if status == "ok":
                item.future.set_result(value)
            else:
                item.future.set_exception(unpack_exception(PackedException(*value)))
        if last:
            slot.worker = None
            worker.release()
            with self._lock:
                self._retired.append(worker)
            self._reap(block=False)

    def _launch(self) -> Interpreter:
        with self._lock:
            broken = self._broken
        if broken is not None:
            raise broken
        # the caller's sys.path as it is now, so that workers import what the caller can
        first, last = (list(sys.path), []) if self._same_python else ([], [PACKAGE_PARENT])
        hello = pickle.dumps((first, last, self._init), pickle.HIGHEST_PROTOCOL)
        return Interpreter(self.python, hello)

    def _reap(self, block: bool) -> None:
        """Reap released workers: those that exited, or (block=True) all of them."""
        with self._lock:
            retired, self._retired = self._retired, []
        alive = []
        for worker in retired:
            if block:
                worker.close()
            elif worker.proc.poll() is None:
                alive.append(worker)
        if alive:
            with self._lock:
                self._retired.extend(alive)

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        ordered: bool = True,
    ) -> Iterator[R]:
        """:meth:`BaseExecutor.map`; Python tasks go to the workers in chunks by default.

        Commands go one by one, so that ``max_workers`` of them run at once.
        """
        if chunksize is None and _is_command(fn):
            chunksize = 1
        return super().map(
            fn,
            *iterables,
            timeout=timeout,
            chunksize=chunksize,
            buffersize=buffersize,
            ordered=ordered,
        )

    def _default_chunksize(self, iterables: tuple[Iterable[Any], ...]) -> int:
        """About four chunks per worker (at most 64 items each) for sized inputs, else 1."""
        try:
            n = min(len(it) for it in iterables)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 1
        return max(1, min(64, n // (4 * self.max_workers)))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; cancel queued ones if asked; wait for running ones if asked.

        Workers exit once the queue is empty; with ``wait=True`` they have been
        reaped when this returns.
        """
        with self._lock:
            if cancel_futures:
                self._cancel_queued()
            if not self._shutdown:
                self._shutdown = True
                for _ in self._threads:
                    self._queue.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
            self._reap(block=True)

    def _cancel_queued(self) -> None:
        kept: list[_Item | None] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                kept.append(item)
            else:
                item.future.cancel()
        for item in kept:
            self._queue.put(item)

    def __repr__(self) -> str:
        mode = "fresh" if self.fresh else f"max_tasks_per_child={self.max_tasks_per_child}"
        return (
            f"<SubprocessExecutor backend='subprocess' max_workers={self.max_workers} "
            f"python={self.python!r} {mode}>"
        )


def _is_command(fn: object) -> bool:
    return fn is run_command or fn is Command.__call__ or isinstance(fn, Command)


def _settle(future: Future[Any], command: Callable[[], Any]) -> None:
    try:
        result = command()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
