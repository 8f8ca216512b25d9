"""Records logged in tasks reach the caller's handlers on every process backend.

Before, ``subprocess`` and ``remote`` workers printed them raw on their own
stderr, bypassing the caller's logging set-up. A remote worker started by hand
keeps its own logging (the master's handlers are not its business).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

import pytest

from executors import get_executor
from executors.backends.remote import RemoteExecutor
from tests.backends.remote_tasks import KEY
from tests.faults import fault_tasks as t

BACKENDS = ["pool", "fork", "process", "subprocess", "remote", "pool?start_method=spawn"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("spec", BACKENDS)
def test_task_records_reach_the_callers_handlers_with_the_workers_name(
    spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with get_executor(spec, max_workers=2) as ex:
        assert list(ex.map(t.log_and_double, range(6), chunksize=1)) == [i * 2 for i in range(6)]
        # a record with an extra= that will not pickle keeps every result in its place
        futures = [ex.submit(t.log_unpicklable_extra, i) for i in range(4)]
        assert [f.result(timeout=60) for f in futures] == [0, 2, 4, 6]
    deadline = time.monotonic() + 10
    while len([r for r in caplog.records if r.name.startswith("executors.tests")]) < 10:
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    records = [r for r in caplog.records if r.name == "executors.tests.logs"]
    assert sorted(int(r.getMessage().split()[1]) for r in records) == list(range(6))
    assert all(int(r.getMessage().split()[3]) != os.getpid() for r in records)
    assert all(r.processName not in ("", "MainProcess") for r in records), [
        r.processName for r in records
    ]
    extras = [r for r in caplog.records if r.name == "executors.tests.faults"]
    assert sorted(r.getMessage() for r in extras) == [f"task {i} logs" for i in range(4)]


@pytest.mark.timeout(120)
def test_a_worker_started_by_hand_keeps_its_own_logging(
    start_worker: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    try:
        proc: object = start_worker(ex.address)
        assert ex.submit(t.log_and_double, 21).result(timeout=60) == 42
    finally:
        ex.shutdown(wait=True)
    _, err = proc.communicate(timeout=30)  # type: ignore[attr-defined]
    assert "task 21 in" in err  # the worker's logging: here, Python's last-resort stderr
    assert not [r for r in caplog.records if r.name == "executors.tests.logs"]
