"""Tasks the fault tests run (module level, so every start method can import them)."""

from __future__ import annotations

import logging
import os
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
