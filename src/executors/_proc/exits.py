"""How errors name a task and a worker's end: ``worker 42 died with SIGKILL(-9) while ...``."""

from __future__ import annotations

import signal

from ..errors import TaskTimeout, WorkerCrashed, _adopt_broken_process_pool

_adopt_broken_process_pool()  # the backends that raise WorkerCrashed import this module

__all__ = ["crash_error", "describe_exit", "signal_name", "timeout_error"]


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 77`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, from its exit code as :mod:`multiprocessing` reports it."""
    if exitcode is None:
        return "vanished (no exit status)"
    if exitcode < 0:
        return f"died with {signal_name(-exitcode)}({exitcode})"
    return f"exited with code {exitcode}"


def crash_error(pid: int | None, exitcode: int | None, running: str, after: str) -> WorkerCrashed:
    """The error of a task whose worker died, e.g. ``worker 42 died with SIGKILL(-9) ...``."""
    return WorkerCrashed(
        f"worker {pid} {describe_exit(exitcode)} while running {running}; {after}",
        exitcode=exitcode,
        pid=pid,
    )


def timeout_error(seconds: float, running: str, pid: int | None, after: str) -> TaskTimeout:
    """The error of a task that overran its ``task_timeout``."""
    return TaskTimeout(
        f"{running} ran longer than task_timeout={seconds:g}s; worker {pid} was killed; {after}"
    )
