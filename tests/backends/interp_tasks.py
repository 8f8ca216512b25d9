"""Task functions for the interpreter backend's tests (a module: each interpreter imports it)."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

#: set by a task: each interpreter has its own copy of this module
VALUE: Any = None


def set_value(value: Any) -> Any:
    global VALUE
    VALUE = value
    return VALUE


def get_value() -> Any:
    return VALUE


def where() -> tuple[int, int, int]:
    """This process, this thread, and this interpreter's ``sys`` module."""
    return os.getpid(), threading.get_ident(), id(sys)


def import_psutil() -> str:
    import psutil  # its C part refuses subinterpreters (psutil 5 and 6)

    return str(psutil.__version__)


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
