"""How the pool engine starts a worker: the :class:`Launcher` interface and what it returns.

Two launchers implement it: :class:`~executors._pool.processes.ProcessLauncher`
(``pool``: ``multiprocessing`` processes) and
:class:`~executors._pool.interpreter.InterpreterLauncher` (``subprocess``: fresh
interpreters started by ``subprocess.Popen``). The engine asks a launcher's
attributes, never which kind it is.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .._proc.exits import describe_exit
from ..errors import BrokenExecutor

__all__ = ["Launcher", "Started"]


class Started(NamedTuple):
    """A worker just started, as the engine keeps it."""

    #: ``pid``, ``sentinel`` (a descriptor, or None: the results pipe's end of file
    #: tells), ``join(timeout)``, ``exitcode``, ``kill()``, ``close()``.
    process: Any
    #: The worker's shared state, indexable doubles (see :mod:`executors._pool._subworker`).
    state: Any
    #: Shared bytes where the worker keeps the results it has not sent yet (same module).
    unsent: Any
    #: The parent's ends of the two pipes: tasks to the worker, results from it.
    tasks_fd: int
    results_fd: int
    #: The first frame to send the worker, or None.
    hello: bytes | None


class Launcher:
    """Starts the pool engine's workers; the base class says how ``multiprocessing`` ones behave.

    A launcher whose workers start slowly (interpreters) sets :attr:`greets` and
    :attr:`starts_ahead`.
    """

    #: A worker sends READY once started; until then, one that dies or takes longer
    #: than :attr:`start_timeout` breaks the pool with the launcher's error.
    greets = False
    start_timeout = 0.0
    #: A retiring worker's successor is started once the worker has its last task
    #: (when a CPU is idle), not once it has exited; then at most ``size`` workers
    #: hold tasks at a time.
    starts_ahead = False
    #: What a message calls the executor ("the pool replaced it").
    owner = "pool"

    def start(self, name: str, parent_fds: Callable[[], list[int]]) -> Started:
        """Start one worker called *name*; *parent_fds* are descriptors a forked child closes."""
        raise NotImplementedError

    def on_ready(self, process: Any) -> None:
        """The worker said READY."""

    def start_failed(self, process: Any, exitcode: int | None) -> BrokenExecutor:
        """The error for a worker that ended before it was ready."""
        return BrokenExecutor(f"worker {process.pid} {describe_exit(exitcode)} before it was ready")

    def start_timed_out(self, process: Any) -> BrokenExecutor:
        """The error for a worker that was not ready after :attr:`start_timeout`."""
        return BrokenExecutor(f"worker {process.pid} was not ready after {self.start_timeout:g} s")
