"""Task functions for the process backends' tests (module level, so spawn can import them)."""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from executors import context


def pid() -> int:
    return os.getpid()


def kill_self(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    if sys.implementation.name == "pypy":
        # PyPy's ctypes answers a read at address 0 with None; read it from C instead
        faulthandler._read_null()  # type: ignore[attr-defined]
    ctypes.string_at(0)


def sleep_then(seconds: float, value: Any = None, started: str = "") -> Any:
    if started:
        Path(started).touch()
    time.sleep(seconds)
    return value


def wait_for_file(path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def return_lock() -> Any:
    return threading.Lock()


class NeedsTwoArgs(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a} and {b}")
        self.a, self.b = a, b


def raise_needs_two_args() -> None:
    raise NeedsTwoArgs("left", "right")


def log_warning(message: str) -> str:
    logging.getLogger("executors.tests.worker").warning(message)
    return multiprocessing.current_process().name


def log_exception() -> None:
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("executors.tests.worker").exception("task failed")


def worker_value() -> Any:
    return getattr(context.worker, "value", None)


def process_identity() -> tuple[str, int]:
    proc = multiprocessing.current_process()
    return proc.name, proc.pid or 0


def start_lingering_child(flag: str) -> int:
    """Start a non-daemon child that waits for *flag*: multiprocessing joins it at our exit."""
    child = multiprocessing.get_context("fork").Process(target=wait_for_file, args=(flag,))
    child.start()
    assert child.pid is not None
    return child.pid


def check_running(ex: Any, flag: str) -> None:
    """``running()`` is True while a task runs, never for a queued one (*ex* runs one at once)."""
    first = ex.submit(sleep_then, 30, None, flag)
    queued = ex.submit(pow, 2, 3)
    wait_for_file(flag)
    assert first.running()
    assert not queued.running()
    assert first.cancel()
    assert queued.result(timeout=30) == 8
    assert not first.running()
    assert not queued.running()


def kinds(value: Any) -> Any:
    """The types a task received (of *value*, and of what a tuple or dict holds)."""
    if isinstance(value, tuple):
        return tuple(type(v).__name__ for v in value)
    if isinstance(value, dict):
        return {k: type(v).__name__ for k, v in value.items()}
    return type(value).__name__


def kill_self_holding(data: Any) -> None:
    """Die by SIGKILL with a big argument received."""
    os.kill(os.getpid(), signal.SIGKILL)


def big_bytes(size: int, fill: int = 7) -> bytes:
    return bytes([fill]) * size


def big_result_then_die(size: int) -> bytes:
    """Leave a big result in shared memory, then die before the next task runs."""
    threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return b"r" * size


_kept: list[Any] = []


def buffer_owner(array: Any) -> str:
    """What holds an array's memory: ``mmap`` when it arrived as a view of shared memory."""
    base = array.base
    while base is not None and not isinstance(base, memoryview):
        base = getattr(base, "base", None)
    return type(base.obj).__name__ if base is not None else "ndarray"


def keep(array: Any) -> float:
    """Keep *array* past the task (a cache of the worker's); its sum."""
    _kept.append(array)
    return float(array.sum())


def kept_sums() -> list[float]:
    return [float(a.sum()) for a in _kept]


def filled_array(count: int, fill: float) -> Any:
    import numpy as np

    return np.full(count, fill)


def add_in_place(array: Any, value: float) -> float:
    """Change *array* where it lives (a forked child's copy); the new sum."""
    array += value
    return float(array.sum())


def arrays_and_more(count: int) -> dict[str, Any]:
    """Big arrays (out of band) beside small data (in band), nested."""
    import numpy as np

    return {
        "a": np.arange(count, dtype=np.float64),
        "b": b"small",
        "c": [np.zeros(3), np.ones((count // 2, 2), order="F")],
    }


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


def array_and_unpicklable(count: int) -> Any:
    import numpy as np

    return np.ones(count), _Unpicklable()


def _fail_to_load() -> None:
    raise ValueError("refuses to load in the caller")


class _FailsToLoad:
    def __reduce__(self) -> Any:
        return (_fail_to_load, ())


def array_and_unloadable(count: int) -> Any:
    import numpy as np

    return np.ones(count), _FailsToLoad()
