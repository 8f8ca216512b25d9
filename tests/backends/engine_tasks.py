"""Task functions the dask and ray tests send to their workers (importable there)."""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path


def pid() -> int:
    return os.getpid()


def draw() -> float:
    return random.random()


def log_and_return(value: int) -> int:
    logging.getLogger("engine_tasks").warning("working on %d", value)
    return value


def sleep_then_touch(path: str, delay: float) -> str:
    time.sleep(delay)
    Path(path).touch()
    return path
