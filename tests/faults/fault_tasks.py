"""Tasks the fault tests run (module level, so every start method can import them)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time


def log_unpicklable_extra(x: int) -> int:
    """Log a record whose ``extra`` holds a lock (which pickle refuses), then answer."""
    logging.getLogger("executors.tests.faults").warning(
        "task %d logs", x, extra={"lk": threading.Lock()}
    )
    return x * 2


def double(x: int) -> int:
    return x * 2


def crash_or_hang_or_double(x: int) -> int:
    """A mix for the stress test: every 7th exits, every 11th hangs past the timeout."""
    if x % 7 == 3:
        os._exit(3)
    if x % 11 == 5:
        time.sleep(30)
    return x * 2


# -- the fault matrix's tasks ---------------------------------------------------------


class NeedsTwoArgs(Exception):
    """An exception whose constructor does not round-trip through pickle."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code
        self.detail = detail


class HoldsLock(Exception):
    """An exception that cannot be pickled at all (it holds a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class BadStr(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("this __str__ is broken")


class FailsToLoad:
    """Pickles fine, but unpickling it raises (in whichever process loads it)."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_refuse_to_load, ())


def _refuse_to_load() -> None:
    raise ValueError("FailsToLoad refuses to be unpickled")


def ok(x: int = 1) -> int:
    return x + 1


def raises() -> None:
    raise ValueError("boom")


def raises_needs_two_args() -> None:
    raise NeedsTwoArgs(7, "seven")


def raises_holds_lock() -> None:
    raise HoldsLock("locked")


def raises_bad_str() -> None:
    raise BadStr("hidden")


def returns_lock() -> object:
    return threading.Lock()


def identity(x: object) -> str:
    return type(x).__name__


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(30)


def exit_3() -> None:
    os._exit(3)


def segfault() -> None:
    import ctypes
    import faulthandler

    faulthandler.disable()  # pytest enables it: no stack dump from the dying worker
    if sys.implementation.name == "pypy":
        # PyPy's ctypes answers a read at address 0 with None; read it from C instead
        faulthandler._read_null()  # type: ignore[attr-defined]
    ctypes.string_at(0)


def memory_error() -> None:
    bytearray(1 << 62)


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


def recurse() -> int:
    return _recurse(0)


def sys_exit_2() -> None:
    sys.exit(2)


def hang(seconds: float = 60.0) -> None:
    time.sleep(seconds)


def _sleeper(pid_file: str) -> subprocess.Popen[bytes]:
    """Start a grandchild that sleeps, and append its pid to *pid_file* (one line each)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(pid_file, "a") as f:
        f.write(f"{child.pid}\n")
    return child


def hang_with_grandchild(pid_file: str) -> None:
    """Start a grandchild (writing its pid to *pid_file*), then hang."""
    _sleeper(pid_file)
    time.sleep(60)


def crash_with_grandchild(pid_file: str) -> None:
    """Start a grandchild (writing its pid to *pid_file*), then die (#14 item 8)."""
    _sleeper(pid_file)
    os._exit(3)


def log_unpicklable_extra_once() -> int:
    logging.getLogger("executors.tests.faults").warning(
        "matrix task logs", extra={"lk": threading.Lock()}
    )
    return 7


def slow_marked(i: int, marker_dir: str, seconds: float, grandchild: bool = False) -> int:
    """Leave a marker file (holding the pids to watch), maybe start a grandchild, then sleep."""
    pids = [os.getpid()]
    if grandchild:
        pids.append(_sleeper(os.path.join(marker_dir, f"gc-{i}")).pid)
    with open(os.path.join(marker_dir, f"started-{i}.tmp"), "w") as f:
        f.write(" ".join(map(str, pids)))
    os.replace(
        os.path.join(marker_dir, f"started-{i}.tmp"), os.path.join(marker_dir, f"started-{i}")
    )
    time.sleep(seconds)
    return i


class ExitsOnLoad:
    """Pickles fine; unpickling it raises SystemExit (in the caller, for a result)."""

    def __reduce__(self) -> tuple[object, ...]:
        return (sys.exit, (5,))


def returns_exits_on_load() -> object:
    return ExitsOnLoad()


def square_or_raise(i: int) -> int:
    """i * i, except every 1,000th raises ValueError(i)."""
    if i % 1000 == 999:
        raise ValueError(i)
    return i * i


def refuse_to_load(exc_type: type[BaseException], message: str) -> object:
    """What unpickling an :class:`Unloadable` calls: it raises, in whichever process loads it."""
    raise exc_type(message)


class Unloadable:
    """Pickles anywhere; unpickling it raises *exc_type* (the caller never gets it back)."""

    def __init__(self, exc_type: type[BaseException] = ValueError) -> None:
        self.exc_type = exc_type

    def __reduce__(self) -> tuple[object, ...]:
        return (refuse_to_load, (self.exc_type, "this result refuses to load"))


def unloadable(exc_type: type[BaseException] = ValueError) -> Unloadable:
    """A task whose result pickles in the worker and raises when the caller unpickles it."""
    return Unloadable(exc_type)


def unloadable_error(exc_type: type[BaseException] = ValueError) -> None:
    """A task that raises an exception which pickles in the worker but will not load."""
    raise _UnloadableError(exc_type)


class _UnloadableError(Exception):
    def __init__(self, exc_type: type[BaseException]) -> None:
        super().__init__("an error that refuses to load")
        self.exc_type = exc_type

    def __reduce__(self) -> tuple[object, ...]:
        return (refuse_to_load, (self.exc_type, "this error refuses to load"))


def slow_double(x: int, seconds: float = 0.3) -> int:
    time.sleep(seconds)
    return x * 2


def log_and_double(x: int) -> int:
    """Log a warning (with the worker's pid in it), then answer."""
    logging.getLogger("executors.tests.logs").warning("task %d in %d", x, os.getpid())
    return x * 2


def wait_for_file(path: str, timeout: float = 60.0) -> bool:
    """Return once *path* exists (the test created it), or False after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def nothing() -> None:
    """A task run for its effect: returns None."""
