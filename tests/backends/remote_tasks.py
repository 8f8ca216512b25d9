"""Tasks for the remote backend's tests; a real module, so workers can import them."""

from __future__ import annotations

import os
import sys
import time

#: The authkey the tests' masters and workers share.
KEY = "test-key-0123456789abcdef"


def worker_env(key: str = KEY) -> dict[str, str]:
    """The environment of a ``python -m executors worker`` the tests start."""
    return {**os.environ, "EXECUTORS_AUTHKEY": key, "PYTHONPATH": os.pathsep.join(sys.path)}


def pid_after(seconds: float, value: object = None) -> tuple[object, int]:
    """Sleep, then return *value* and the pid of the worker that ran it."""
    time.sleep(seconds)
    return value, os.getpid()


def die() -> None:
    """Kill the worker process running this task."""
    os._exit(7)


def ident(x: int) -> int:
    return x


def kill_self() -> None:
    """SIGKILL the process running this task."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def pids_after(seconds: float) -> tuple[int, int]:
    """Sleep, then return this process's pid and its parent's."""
    time.sleep(seconds)
    return os.getpid(), os.getppid()


def fail_init() -> None:
    """An initializer that cannot set a worker up."""
    raise RuntimeError("no database")
