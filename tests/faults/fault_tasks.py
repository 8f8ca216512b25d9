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
