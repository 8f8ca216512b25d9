"""Run commands directly and Python callables in fresh interpreters (registry name: subprocess).

The module is not called ``subprocess.py``, which would shadow the standard library.

::

    submit(Command / run_command) --> command threads --> Popen, no Python worker
    submit(callable) --> pickle --> pool engine (executors._pool) --> [python -c worker] x N
                  Future <-- batched results <-- results pipes <--'

Python callables run on the ``pool`` backend's engine (many tasks per pipe
message, a manager thread, crash, timeout and cancel attribution through
shared memory), with workers started as new interpreters by
``subprocess.Popen`` (``executors._pool.interpreter``) instead of
``multiprocessing``. The engine and its workers start with the first callable;
commands alone never start a Python worker.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .. import _validate
from .._pool.engine import Pool, submit_call
from .._pool.interpreter import InterpreterLauncher, resolve_python
from .._proc.backend import ProcessBackend
from ..command import Command, run_command
from ..errors import BrokenExecutor, InvalidOption
from ..serialization import DEFAULT_SERIALIZER, dumps

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SubprocessExecutor"]

R = TypeVar("R")


class SubprocessExecutor(ProcessBackend):
    """Commands run directly; Python callables run in separate, fresh interpreters.

    Command tasks (:func:`executors.run_command` or a :class:`executors.Command`)
    start the program straight from a thread, as ``subprocess.run`` would.
    Any other callable is pickled to a worker interpreter that shares nothing
    with the caller (no fork: no copied locks, threads or memory), and can be
    another Python than the caller's.

    :param max_workers: how many commands run at once, and how many worker
        interpreters run callables; default: the CPU count.
    :param python: the worker interpreter: a path, a name on PATH or a virtual
        environment directory; default: the caller's. Another interpreter must be
        Python 3.9+; ``executors`` is put at the end of its ``sys.path``.
    :param fresh: start a new interpreter for every task (clean state; costs a start each).
    :param max_tasks_per_child: replace a worker after this many tasks (None: never).
    :param initializer: called with *initargs* in every new worker interpreter.
    :param serializer: ``"auto"`` (default: plain pickle; cloudpickle, by value, for
        lambdas, closures and what ``__main__`` defines), ``"pickle"`` or ``"cloudpickle"``.
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
        serializer: str = DEFAULT_SERIALIZER,
        start_timeout: float = 60.0,
        task_timeout: float | None = None,
    ) -> None:
        self._pickler = self._take_options(
            max_workers, initializer, initargs, task_timeout, serializer
        )
        self.python = resolve_python(python)
        max_tasks_per_child = _validate.max_tasks_per_child(max_tasks_per_child)
        if fresh and max_tasks_per_child not in (None, 1):
            raise InvalidOption(
                f"fresh=True means one task per worker, but max_tasks_per_child="
                f"{max_tasks_per_child!r}; pass one or the other"
            )
        self.fresh = bool(fresh)
        self.max_tasks_per_child = 1 if fresh else max_tasks_per_child
        self._start_timeout = _validate.positive_number("start_timeout", start_timeout) or 60.0
        self._dumps: Callable[[Any], bytes] = (
            functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
            if serializer == "pickle"
            else self._pickler
        )
        self._init_pickle: bytes | None = None
        if self._init is not None:
            self._init_pickle = dumps(
                (self._init, self._initargs),
                what="the initializer",
                parts={"the initializer": self._init, "initargs": self._initargs},
                pickler=self._pickler,
            )
        # Held while starting the engine or the command threads (_pool, _commands,
        # _finalizer) and while setting _shutdown and _broken.
        self._lock = threading.Lock()
        self._pool: Pool | None = None
        self._commands: ThreadPoolExecutor | None = None
        self._shutdown = False
        self._broken: BrokenExecutor | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

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
            return self._command_threads().submit(fn, *args, **kwargs)
        return submit_call(
            self._pool or self._engine(), fn, args, kwargs, self._dumps, self._pickler
        )

    def _engine(self) -> Pool:
        """The pool engine, started with the first Python task."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._broken is not None:
                raise self._broken
            if self._pool is None:
                launcher = InterpreterLauncher(
                    self.python, self._init_pickle, self.max_tasks_per_child, self._start_timeout
                )
                try:
                    self._pool = self._start_engine(launcher)
                except BrokenExecutor as exc:  # the interpreter cannot be run at all
                    self._broken = exc
                    raise
                self._finalizer = weakref.finalize(self, self._pool.shutdown, False)
            return self._pool

    def _start_engine(self, launcher: InterpreterLauncher) -> Pool:
        return Pool(
            self.max_workers,
            launcher,
            initializer=self._init,
            max_tasks=self.max_tasks_per_child,
            task_timeout=self.task_timeout,
        )

    def _command_threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._commands is None:
                self._commands = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="executors-subprocess"
                )
            return self._commands

    def _tunes_map(self, fn: Callable[..., Any]) -> bool:
        """Python tasks go to the workers in chunks; commands one by one."""
        return not _is_command(fn)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks; cancel queued ones if asked; wait for running ones if asked.

        Workers exit once their tasks are done; with ``wait=True`` they have been
        reaped when this returns.
        """
        with self._lock:
            self._shutdown = True
            pool, commands = self._pool, self._commands
        if pool is not None:
            pool.shutdown(cancel_futures)
        if commands is not None:
            commands.shutdown(wait=wait, cancel_futures=cancel_futures)
        if pool is not None and wait and threading.current_thread() is not pool.thread:
            pool.thread.join()

    def _worker_pids(self) -> list[int]:
        """The worker interpreters (commands started by command tasks are not workers)."""
        pool = self._pool
        if pool is None:
            return []
        with pool.lock:
            return [w.pid for w in pool.workers]

    def __repr__(self) -> str:
        mode = "fresh" if self.fresh else f"max_tasks_per_child={self.max_tasks_per_child}"
        return (
            f"<SubprocessExecutor backend='subprocess' max_workers={self.max_workers} "
            f"python={self.python!r} {mode}>"
        )


def _is_command(fn: object) -> bool:
    return fn is run_command or fn is Command.__call__ or isinstance(fn, Command)
