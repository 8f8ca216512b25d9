"""Light task functions for the subprocess backend tests (no pytest import in workers).

No module-level import of threading: tests check what a worker imports.
"""

from __future__ import annotations

import os
import signal
import sys


def pid() -> int:
    return os.getpid()


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def make_lock() -> object:
    import threading

    return threading.Lock()


def shout(text: str) -> str:
    print(text, flush=True)
    return text


def imported(name: str) -> bool:
    return name in sys.modules


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


VALUE: object = None


def set_value(value: object) -> None:
    global VALUE
    VALUE = value


def get_value() -> object:
    return VALUE, os.getpid()


CALLS = 0


def count_calls() -> int:
    global CALLS
    CALLS += 1
    return CALLS


def touch_then_sleep(path: str, seconds: float) -> None:
    import time

    with open(path, "w"):
        pass
    time.sleep(seconds)


def write_at_exit(path: str) -> int:
    import atexit

    def write() -> None:
        with open(path, "w") as f:
            f.write("bye")

    atexit.register(write)
    return os.getpid()
