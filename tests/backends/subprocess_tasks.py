"""Light task functions for the subprocess backend tests (no pytest import in workers)."""

from __future__ import annotations

import os
import signal
import sys
import threading


def pid() -> int:
    return os.getpid()


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def make_lock() -> object:
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
