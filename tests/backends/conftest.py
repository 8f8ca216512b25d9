"""Fixtures the backends' own tests share."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Callable

import pytest

from tests.backends.remote_tasks import KEY, worker_env

Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start_worker() -> Iterator[Start]:
    """Start ``python -m executors worker`` processes; reap them all afterwards."""
    procs: list[subprocess.Popen[str]] = []

    def start(address: tuple[str, int], *args: str, key: str = KEY) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "executors", "worker", f"{address[0]}:{address[1]}"]
        proc = subprocess.Popen(
            [*command, *args], env=worker_env(key), stderr=subprocess.PIPE, text=True
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
