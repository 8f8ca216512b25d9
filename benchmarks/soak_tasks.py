"""The soak's task, in a module of its own so that every worker can import it by name."""

from __future__ import annotations

import os
import signal
import time


def kind_of(i: int, in_process: bool) -> str:
    """What task *i* does (the same answer in the caller and in the task)."""
    if not in_process:
        if i % 1000 == 999:
            return "hang"
        if i % 700 == 699:
            return "sigkill"
        if i % 500 == 499:
            return "exit"
    return "raise" if i % 50 == 49 else "ok"


def task(i: int, in_process: bool, log: str) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{i}\n".encode())
    finally:
        os.close(fd)
    kind = kind_of(i, in_process)
    if kind == "raise":
        raise ValueError(i)
    if kind == "exit":
        os._exit(3)
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        time.sleep(60)
    return i * i
