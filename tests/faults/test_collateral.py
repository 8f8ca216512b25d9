"""A dead worker fails only the task it was running: what it had finished still arrives (#14).

``pool`` and ``subprocess`` workers run many tasks per message. Before the fix
a worker kept the results of quick tasks until 2 ms had passed, so a crash (or
a kill to time out or cancel a task) lost every result not yet sent: those
finished tasks failed with WorkerCrashed, blamed for another task's fault (the
soak's "collateral"). Each test here puts quick tasks and the fault in one
message to a single worker, the case that lost them.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import pytest

from executors import SerializationError, TaskTimeout, WorkerCrashed, get_executor, registry
from executors.protocol import Executor

from . import fault_tasks as t

QUICK = 50


def _spec(spec: str) -> Any:
    reason = registry.unavailable_reason(spec.partition("?")[0])
    return pytest.param(
        spec,
        id=spec.replace("?start_method=", "-"),
        marks=pytest.mark.skipif(reason is not None, reason=str(reason)),
    )


SPECS = [_spec(s) for s in ("pool", "pool?start_method=spawn", "subprocess")]

#: fault -> (the task, what its own future raises)
FAULTS: dict[str, tuple[Callable[[], Any], type[BaseException]]] = {
    "os-exit": (t.exit_3, WorkerCrashed),
    "sigkill": (t.sigkill_self, WorkerCrashed),
    "segfault": (t.segfault, WorkerCrashed),
    "timeout": (t.hang, TaskTimeout),
}


def _in_one_message(ex: Executor, tmp_path: Path, tasks: Callable[[], list[Future[Any]]]) -> Any:
    """Submit *tasks()* so that the single worker gets them all in one message.

    A worker that is free reads each task as it comes; so it first runs a task that
    waits for a file, and the engine's manager thread is held in that task's done
    callback (the manager thread runs callbacks) while *tasks()* are queued. Let go,
    it hands them all over at once.
    """
    go = tmp_path / "go"
    gate = ex.submit(t.wait_for_file, str(go))
    held, release = threading.Event(), threading.Event()

    def hold(_: Future[Any]) -> None:
        held.set()
        release.wait(60)

    gate.add_done_callback(hold)  # not done yet: it waits for the file made below
    go.touch()
    assert held.wait(60), "the gate task did not finish"
    try:
        return tasks()
    finally:
        release.set()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_finished_tasks_keep_their_results_when_the_worker_dies(
    spec: str, fault: str, tmp_path: Path
) -> None:
    task, error = FAULTS[fault]
    options: dict[str, Any] = {"task_timeout": 1.0} if fault == "timeout" else {}
    with get_executor(spec, max_workers=1, **options) as ex:
        assert ex.submit(t.double, 1).result(timeout=60) == 2  # the worker is up

        def submit() -> list[Future[Any]]:
            return [ex.submit(t.double, i) for i in range(QUICK)] + [ex.submit(task)]

        *quick, faulty = _in_one_message(ex, tmp_path, submit)
        with pytest.raises(error):
            faulty.result(timeout=60)
        failed = {i: f.exception(timeout=60) for i, f in enumerate(quick)}
        assert {i: e for i, e in failed.items() if e is not None} == {}
        assert [f.result() for f in quick] == [2 * i for i in range(QUICK)]
        assert ex.submit(t.double, 21).result(timeout=60) == 42  # still usable


@pytest.mark.parametrize("spec", SPECS)
def test_cancelling_a_running_task_keeps_the_results_before_it(spec: str, tmp_path: Path) -> None:
    with get_executor(spec, max_workers=1) as ex:
        assert ex.submit(t.double, 1).result(timeout=60) == 2

        def submit() -> list[Future[Any]]:
            return [ex.submit(t.double, i) for i in range(QUICK)] + [ex.submit(t.hang)]

        *quick, hanging = _in_one_message(ex, tmp_path, submit)
        deadline = time.monotonic() + 60
        while not hanging.running():
            assert time.monotonic() < deadline, "the hanging task did not start"
            time.sleep(0.01)
        assert hanging.cancel()  # kills the worker
        failed = {i: f.exception(timeout=60) for i, f in enumerate(quick)}
        assert {i: e for i, e in failed.items() if e is not None} == {}
        assert ex.submit(t.double, 21).result(timeout=60) == 42


@pytest.mark.parametrize("spec", SPECS)
def test_outcomes_read_from_a_dead_worker_keep_their_kind(spec: str, tmp_path: Path) -> None:
    with get_executor(spec, max_workers=1) as ex:
        assert ex.submit(t.double, 1).result(timeout=60) == 2

        def submit() -> list[Future[Any]]:
            return [
                ex.submit(t.double, 4),
                ex.submit(t.nothing),
                ex.submit(t.raises),
                ex.submit(t.unloadable, ValueError),
                ex.submit(t.returns_lock),
                ex.submit(t.exit_3),
            ]

        value, none, raised, unloadable, unpicklable, crashed = _in_one_message(
            ex, tmp_path, submit
        )
        with pytest.raises(WorkerCrashed):
            crashed.result(timeout=60)
        assert value.result(timeout=60) == 8
        assert none.result(timeout=60) is None
        with pytest.raises(ValueError, match="boom"):
            raised.result(timeout=60)
        with pytest.raises(SerializationError, match="refuses to load"):
            unloadable.result(timeout=60)
        with pytest.raises(SerializationError, match="lock"):
            unpicklable.result(timeout=60)
