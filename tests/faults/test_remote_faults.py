"""Remote faults the matrix does not show: repeated exits, prefetched cancels, batches."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from executors import SerializationError, WorkerLost, get_executor, registry

from . import fault_tasks as t

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(
    registry.unavailable_reason("remote") is not None,
    reason=str(registry.unavailable_reason("remote")),
)


def test_tasks_that_exit_do_not_break_the_executor() -> None:
    # Each os._exit(3) ends a local worker that had connected: a lost worker, not
    # one that fails to start (three of those used to break the executor for good).
    with get_executor("remote", max_workers=2, max_retries=0) as ex:
        for _ in range(4):
            with pytest.raises(WorkerLost):
                ex.submit(t.exit_3).result(timeout=60)
            assert ex.submit(t.ok, 1).result(timeout=60) == 2


def test_prefetched_and_running_tasks_can_all_be_cancelled() -> None:
    ex = get_executor("remote", max_workers=2)
    try:
        assert ex.submit(t.ok, 1).result(timeout=60) == 2  # now workers time tasks, prefetch
        # hangs longer than the test's timeout: a shutdown that waited for one fails it
        futures = [ex.submit(t.hang, 600) for _ in range(20)]
        deadline = time.monotonic() + 30
        while sum(f.running() for f in futures) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # handed to the workers
        assert [f.cancel() for f in futures] == [True] * 20
        assert ex.submit(t.ok, 2).result(timeout=60) == 3
    finally:
        ex.shutdown(wait=True)  # (it waited 9.5 s for 30 s hangs before the fix)


def test_a_task_beside_a_cancelled_one_is_requeued_without_counting_an_attempt(
    tmp_path: Path,
) -> None:
    """Cancelling a task on a local worker that runs plain functions kills that worker: the
    other task it ran goes back to the queue with no attempt counted, whichever notices the
    loss first (the monitor, or the worker's dropped connection). It counted one when the
    connection was first: under load, tasks hit max_retries and a cancel() returned False."""
    flag = tmp_path / "go"
    with get_executor("remote", max_workers=2, local_workers=1, max_retries=0) as ex:
        assert ex.submit(t.ok, 1).result(timeout=60) == 2
        doomed = ex.submit(t.hang, 600)
        beside = ex.submit(t.wait_for_file, str(flag))
        deadline = time.monotonic() + 30
        while not (doomed.running() and beside.running()) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # both handed to the one worker
        assert doomed.cancel()
        flag.touch()
        assert beside.result(timeout=60) is True  # rerun on its replacement, not WorkerLost


def test_a_result_whose_loading_raises_system_exit_fails_only_its_future() -> None:
    with get_executor("remote", max_workers=1) as ex:
        futures = [ex.submit(t.ok, i) for i in range(5)]
        bad = ex.submit(t.returns_exits_on_load)
        futures += [ex.submit(t.ok, i) for i in range(5, 10)]
        with pytest.raises(SerializationError, match="returns_exits_on_load") as info:
            bad.result(timeout=60)  # the task is named, the cause chained
        assert isinstance(info.value.__cause__, SystemExit)
        assert [f.result(timeout=60) for f in futures] == list(range(1, 11))
