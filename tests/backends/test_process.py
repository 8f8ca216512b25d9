"""The process backend: a named process per task, start methods, crashes, cancel."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from executors import SerializationError, TaskTimeout, WorkerCrashed, context, get_executor
from executors.backends.process import ProcessExecutor
from executors.testing import failing_task, read_context, read_worker_value, set_worker_value

from . import proc_tasks as t


def test_each_task_gets_its_own_named_process() -> None:
    with ProcessExecutor(max_workers=2, start_method="fork") as ex:
        names = [ex.submit(t.process_identity).result(timeout=30) for _ in range(3)]
    assert len({pid for _, pid in names}) == 3
    assert os.getpid() not in {pid for _, pid in names}
    assert all(name.startswith("executors-process-") for name, _ in names)
    assert names[0][0].endswith("-task-1")


def test_lambdas_run_on_every_start_method_plain_pickle_refuses_them_in_submit() -> None:
    with ProcessExecutor(max_workers=1, start_method="fork") as ex:
        assert ex.submit(lambda: 7).result(timeout=30) == 7
    with ProcessExecutor(max_workers=1, start_method="spawn") as ex:
        assert ex.submit(lambda: 7).result(timeout=60) == 7  # by value (cloudpickle)
    with (
        ProcessExecutor(max_workers=1, start_method="spawn", serializer="pickle") as ex,
        pytest.raises(SerializationError, match="the function"),
    ):
        ex.submit(lambda: 7)


def test_a_killed_process_fails_its_task_only() -> None:
    with ProcessExecutor(max_workers=2, start_method="fork") as ex:
        with pytest.raises(WorkerCrashed, match=r"died with SIGKILL\(-9\)"):
            ex.submit(t.kill_self).result(timeout=30)
        with pytest.raises(WorkerCrashed, match=r"exited with code 4"):
            ex.submit(t.exit_with, 4).result(timeout=30)
        assert ex.submit(pow, 2, 3).result(timeout=30) == 8


def test_timeout_and_cancel_stop_the_process(tmp_path: Path) -> None:
    with ProcessExecutor(max_workers=2, start_method="fork", task_timeout=0.5) as ex:
        with pytest.raises(TaskTimeout):
            ex.submit(time.sleep, 30).result(timeout=30)
        flag = str(tmp_path / "started")
        running = ex.submit(t.sleep_then, 0.45, None, flag)
        t.wait_for_file(flag)
        assert running.cancel()
        assert ex.submit(pow, 2, 4).result(timeout=30) == 16


def test_running_is_true_only_while_the_process_runs(tmp_path: Path) -> None:
    with ProcessExecutor(max_workers=1) as ex:
        t.check_running(ex, str(tmp_path / "started"))


def test_a_reported_task_frees_its_slot_while_its_process_exits(tmp_path: Path) -> None:
    import psutil

    flag = str(tmp_path / "release")
    with ProcessExecutor(max_workers=1, start_method="fork") as ex:
        # multiprocessing joins the task's non-daemon child before the task's process exits
        grandchild = ex.submit(t.start_lingering_child, flag).result(timeout=30)
        assert ex.submit(pow, 2, 5).result(timeout=30) == 32
        assert psutil.pid_exists(grandchild)
        Path(flag).touch()


def test_forkserver_is_asked_to_preload_the_worker_code() -> None:
    from multiprocessing import forkserver

    ProcessExecutor(max_workers=1, start_method="forkserver").shutdown()
    modules = forkserver._forkserver._preload_modules  # type: ignore[attr-defined]
    assert "executors._proc.child" in modules  # or each task's process imports executors anew


def test_bad_start_method_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"start_method 'vfork' is not available.*choose one of"):
        get_executor("process", start_method="vfork")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods_carry_context_initializer_and_errors(method: str) -> None:
    with ProcessExecutor(
        max_workers=2, start_method=method, initializer=set_worker_value, initargs=("db",)
    ) as ex:
        with context.bind(user="alice"):
            user = ex.submit(read_context, "user")
        state = ex.submit(read_worker_value)
        error = ex.submit(failing_task, "bad input").exception(timeout=60)
        assert (user.result(timeout=60), state.result(timeout=60)) == ("alice", "db")
    assert isinstance(error, ValueError)
    assert "in failing_task" in str(error.__cause__)


def test_current_process_is_not_the_parent_under_spawn() -> None:
    with ProcessExecutor(max_workers=1, start_method="spawn") as ex:
        name, pid = ex.submit(t.process_identity).result(timeout=60)
    assert pid != os.getpid()
    assert name != multiprocessing.current_process().name


def test_unclosed_executor_is_cleaned_up_by_gc() -> None:
    import gc

    executor = ProcessExecutor(max_workers=1, start_method="fork")
    assert executor.submit(pow, 2, 2).result(timeout=30) == 4
    del executor
    gc.collect()  # the autouse leak check then waits for its manager thread to end
