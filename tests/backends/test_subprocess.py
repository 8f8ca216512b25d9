"""The subprocess backend: direct commands, fresh interpreters, other Pythons, failures."""

from __future__ import annotations

import functools
import importlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import BrokenExecutor as StdBrokenExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

from executors import (
    BrokenExecutor,
    InvalidOption,
    SerializationError,
    TaskTimeout,
    WorkerCrashed,
    context,
    get_executor,
    run_command,
)
from executors.backends.commands import SubprocessExecutor
from executors.testing import read_context

from . import subprocess_tasks as tasks

if TYPE_CHECKING:
    from collections.abc import Iterator

PY39 = "/root/.pyenv/versions/3.9.18/bin/python3.9"
PY27 = "/root/.pyenv/versions/2.7.18/bin/python2.7"


Make = Callable[..., SubprocessExecutor]


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[SubprocessExecutor] = []

    def make(**options: object) -> SubprocessExecutor:
        ex = get_executor("subprocess", **options)
        assert isinstance(ex, SubprocessExecutor)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.shutdown(wait=True, cancel_futures=True)


def test_commands_run_directly_without_a_python_worker(make: Make) -> None:
    ex = make(max_workers=2)
    code = "import os; print(os.getppid())"
    results = [ex.submit(run_command, [sys.executable, "-c", code]) for _ in range(3)]
    assert {int(f.result(timeout=30).stdout) for f in results} == {os.getpid()}


def test_map_sends_python_tasks_in_chunks_and_commands_one_by_one(
    make: Make, tmp_path: Path
) -> None:
    ex = make(max_workers=3)
    assert ex._tunes_map(abs)
    assert not ex._tunes_map(run_command)
    assert list(ex.map(abs, range(-500, 0))) == list(range(500, 0, -1))
    # each command waits until all three have started: only passes if they run at once
    code = (
        "import os, sys, time\n"
        "open(os.path.join(sys.argv[1], sys.argv[2]), 'w').close()\n"
        "deadline = time.monotonic() + 20\n"
        "while len(os.listdir(sys.argv[1])) < 3 and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "sys.exit(len(os.listdir(sys.argv[1])) < 3)\n"
    )
    argvs = [[sys.executable, "-c", code, str(tmp_path), name] for name in "abc"]
    assert [r.returncode for r in ex.map(run_command, argvs)] == [0, 0, 0]


def test_callables_run_in_another_process_and_workers_are_reused(make: Make) -> None:
    ex = make(max_workers=1)
    pids = [ex.submit(tasks.pid).result(timeout=30) for _ in range(4)]
    assert os.getpid() not in pids
    assert len(set(pids)) == 1


def test_fresh_gives_every_task_a_new_interpreter(make: Make) -> None:
    ex = make(max_workers=2, fresh=True)
    pids = [f.result(timeout=30) for f in [ex.submit(tasks.pid) for _ in range(4)]]
    assert len(set(pids)) == 4
    # interpreters started ahead of time ran nothing before their task
    assert [f.result(timeout=30) for f in [ex.submit(tasks.count_calls) for _ in range(6)]] == [
        1
    ] * 6


def test_tasks_get_the_real_functools(make: Make) -> None:
    # the worker lends _pickle a stand-in while it loads; a task must never see it
    ex = make(max_workers=1, fresh=True)
    code = "__import__('functools').lru_cache(None)(abs)(-2)"
    assert ex.submit(eval, code).result(timeout=30) == 2
    assert ex.submit(functools.partial(max, 5), 3).result(timeout=30) == 5


def test_a_fresh_worker_runs_atexit_functions_a_task_registered(make: Make, tmp_path: Path) -> None:
    ex = make(max_workers=1, fresh=True)
    pid = ex.submit(tasks.write_at_exit, str(tmp_path / "bye")).result(timeout=30)
    ex.shutdown(wait=True)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (tmp_path / "bye").read_text() == "bye"


def test_cancel_stops_a_running_task_by_killing_its_worker(make: Make, tmp_path: Path) -> None:
    ex = make(max_workers=1)
    first = ex.submit(tasks.pid).result(timeout=30)
    marker = tmp_path / "started"
    running = ex.submit(tasks.touch_then_sleep, str(marker), 30)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.cancel()
    assert running.cancelled()
    assert ex.submit(tasks.pid).result(timeout=30) != first


def test_initializer_runs_in_every_fresh_interpreter(make: Make) -> None:
    ex = make(max_workers=1, fresh=True, initializer=tasks.set_value, initargs=("ready",))
    seen = [ex.submit(tasks.get_value).result(timeout=30) for _ in range(3)]
    assert [value for value, _ in seen] == ["ready"] * 3
    assert len({pid for _, pid in seen}) == 3


def test_max_tasks_per_child_replaces_workers(make: Make) -> None:
    ex = make(max_workers=1, max_tasks_per_child=2)
    pids = [ex.submit(tasks.pid).result(timeout=30) for _ in range(6)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_worker_imports_little_until_a_task_needs_it(make: Make) -> None:
    ex = make(max_workers=1)
    # what a bare interpreter of this environment imports anyway (a virtualenv's
    # start-up hook may import typing, for one) is not ours to avoid
    bare = subprocess.run(
        [sys.executable, "-c", "import sys; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for heavy in ("executors", "typing", "logging", "multiprocessing", "threading"):
        if heavy not in bare:
            assert ex.submit(tasks.imported, heavy).result(timeout=30) is False, heavy
    with context.bind(user="alice"):
        assert ex.submit(read_context, "user").result(timeout=30) == "alice"
    assert ex.submit(tasks.imported, "executors").result(timeout=30) is True


def test_spec_options(make: Make) -> None:
    ex = make(max_workers=None)
    assert ex.max_workers == SubprocessExecutor.default_max_workers()
    ex = get_executor("subprocess?fresh=true&max_workers=1")
    try:
        assert isinstance(ex, SubprocessExecutor)
        assert (ex.fresh, ex.max_tasks_per_child, ex.max_workers) == (True, 1, 1)
        assert "fresh" in repr(ex)
    finally:
        ex.shutdown()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_tasks_per_child": 0}, "max_tasks_per_child must be a positive int or None, got 0"),
        ({"fresh": True, "max_tasks_per_child": 5}, "fresh=True means one task per worker"),
        ({"python": "/no/such/python"}, "python must be a Python interpreter .*'/no/such/python'"),
        ({"start_timeout": -1}, "start_timeout must be a positive number"),
        ({"task_timeout": 0}, "task_timeout must be a positive number"),
        ({"serializer": "json"}, "serializer must be one of 'auto', 'pickle', 'cloudpickle', got"),
    ],
)
def test_bad_options_are_refused_at_once(options: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidOption, match=match):
        get_executor("subprocess", **options)


def test_unpicklable_argument_is_refused_by_submit(make: Make) -> None:
    ex = make(max_workers=1)
    with pytest.raises(SerializationError, match=r"cannot pickle argument 2 \(<lock>|argument 2"):
        ex.submit(tasks.shout, "x", threading.Lock())
    assert ex.submit(tasks.shout, "still fine").result(timeout=30) == "still fine"


def test_cloudpickle_serializer_sends_lambdas(make: Make) -> None:
    pytest.importorskip("cloudpickle", reason="the cloudpickle extra is not installed")
    ex = make(max_workers=1, serializer="cloudpickle")
    factor = 3
    assert ex.submit(lambda x: x * factor, 5).result(timeout=30) == 15


def test_unpicklable_result_is_named(make: Make) -> None:
    ex = make(max_workers=1)
    with pytest.raises(
        SerializationError, match=r"cannot pickle the result of the task \(<unlocked _thread.lock"
    ):
        ex.submit(tasks.make_lock).result(timeout=30)
    assert ex.submit(tasks.pid).result(timeout=30) > 0


def test_task_output_goes_to_the_callers_stdout(
    make: Make, capfd: pytest.CaptureFixture[str]
) -> None:
    ex = make(max_workers=1)
    assert ex.submit(tasks.shout, "hello from a worker").result(timeout=30)
    ex.shutdown()
    assert "hello from a worker" in capfd.readouterr().out


@pytest.mark.parametrize(
    ("task", "args", "status"),
    [
        (tasks.kill_self, (), r"died with SIGKILL\(-9\)"),
        (tasks.exit_now, (7,), "exited with code 7"),
    ],
)
def test_crashed_worker_fails_its_task_and_the_executor_goes_on(
    make: Make, task: Callable[..., None], args: tuple[int, ...], status: str
) -> None:
    ex = make(max_workers=1)
    first = ex.submit(tasks.pid).result(timeout=30)
    with pytest.raises(
        WorkerCrashed,
        match=f"worker {first} {status} while running .*; the executor replaced it and is still",
    ) as info:
        ex.submit(task, *args).result(timeout=30)
    assert isinstance(info.value, StdBrokenExecutor)
    assert info.value.pid == first
    assert info.value.exitcode == (-9 if task is tasks.kill_self else 7)
    after = [ex.submit(tasks.pid).result(timeout=30) for _ in range(2)]
    assert after[0] == after[1] != first


def test_without_pidfd_or_memfd_workers_still_work(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)  # as on macOS or an old Linux
    monkeypatch.delattr(os, "memfd_create", raising=False)  # shared state in a temporary file
    ex = make(max_workers=1, max_tasks_per_child=2)
    pids = [ex.submit(tasks.pid).result(timeout=30) for _ in range(3)]
    assert pids[0] == pids[1] != pids[2]  # the first left after 2 tasks and was replaced
    assert ex._pool is not None
    assert all(w.sentinel is None for w in ex._pool.workers)
    with pytest.raises(WorkerCrashed, match=r"died with SIGKILL\(-9\)"):
        ex.submit(tasks.kill_self).result(timeout=30)
    assert ex.submit(tasks.pid).result(timeout=30) not in pids


def test_task_timeout_kills_a_hung_worker_and_goes_on(make: Make) -> None:
    ex = make(max_workers=1, task_timeout=0.5)
    hung = ex.submit(tasks.sleep, 30)
    fine = ex.submit(tasks.sleep, 0)
    with pytest.raises(
        TaskTimeout,
        match=r"sleep\(\) ran longer than task_timeout=0.5s; worker \d+ was killed",
    ):
        hung.result(timeout=20)
    assert fine.result(timeout=20) == 0


def test_worker_that_died_while_idle_is_replaced_quietly(make: Make) -> None:
    ex = make(max_workers=1)
    first = ex.submit(tasks.pid).result(timeout=30)
    os.kill(first, 9)
    time.sleep(0.2)
    assert ex.submit(tasks.pid).result(timeout=30) != first


def test_os_error_while_starting_the_workers_fails_the_submit(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    import executors._pool.engine as engine

    def no_pipes() -> tuple[int, int]:
        raise OSError(24, "Too many open files")

    ex = make(max_workers=1)
    monkeypatch.setattr(engine.os, "pipe", no_pipes)
    with pytest.raises(OSError, match="Too many open files"):
        ex.submit(tasks.pid)
    monkeypatch.undo()
    assert ex.submit(tasks.pid).result(timeout=30) > 0


def test_ctrl_c_at_the_terminal_is_left_to_the_caller(make: Make) -> None:
    ex = make(max_workers=1)
    pid = ex.submit(tasks.pid).result(timeout=30)
    os.kill(pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the whole process group
    assert ex.submit(tasks.sleep, 0.1).result(timeout=30) == 0.1
    assert ex.submit(tasks.pid).result(timeout=30) == pid


def test_keyboard_interrupt_in_a_task_reaches_the_caller(make: Make) -> None:
    ex = make(max_workers=1)
    with pytest.raises(KeyboardInterrupt):
        ex.submit(tasks.raise_keyboard_interrupt).result(timeout=30)
    assert ex.submit(tasks.pid).result(timeout=30) > 0


def test_not_a_python_fails_once_with_a_clear_error(make: Make) -> None:
    ex = make(max_workers=2, python="/bin/false", max_tasks_per_child=1)
    errors: list[BaseException | None] = []
    for _ in range(5):  # queued tasks fail with it; once it is known, submit raises it
        try:
            future = ex.submit(tasks.pid)
        except BrokenExecutor as exc:
            errors.append(exc)
        else:
            errors.append(future.exception(timeout=30))
    assert len({id(error) for error in errors}) == 1  # one error, not one per worker
    assert isinstance(errors[0], BrokenExecutor)
    assert re.search(
        r"'/bin/false' exited with code 1 before it was "
        r"ready; check that python= names a working Python 3.9\+",
        str(errors[0]),
    )


def test_interpreter_that_cannot_be_executed_fails_once(make: Make, tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    ex = make(max_workers=2, python=str(script))
    with pytest.raises(BrokenExecutor, match=r"cannot start worker interpreter .*python") as info:
        ex.submit(tasks.pid)
    with pytest.raises(BrokenExecutor) as again:
        ex.submit(tasks.pid)
    assert again.value is info.value
    assert isinstance(info.value.__cause__, OSError)


def test_slow_start_gives_up_after_start_timeout(make: Make, tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    ex = make(max_workers=1, python=str(script), start_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(BrokenExecutor, match=r"was not ready after 0.3 s; raise start_timeout="):
        ex.submit(tasks.pid).result(timeout=30)
    assert time.monotonic() - start < 10


def test_initializer_import_error_fails_with_the_cause(make: Make, tmp_path: Path) -> None:
    module = tmp_path / "vanishing_init.py"
    module.write_text("def setup():\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        setup = importlib.import_module("vanishing_init").setup
        ex = make(max_workers=1, initializer=setup)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("vanishing_init", None)
    module.unlink()
    with pytest.raises(BrokenExecutor, match=r"ModuleNotFoundError.*vanishing_init") as info:
        ex.submit(tasks.pid).result(timeout=30)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def _other_python() -> tuple[str, str] | None:
    """Another CPython 3.9+ on this machine (path, version), preferring pyenv's 3.9."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    names = [PY39] + [shutil.which(f"python3.{minor}") or "" for minor in range(9, 14)]
    for path in names:
        if not path or not os.path.exists(path):
            continue
        out = subprocess.run(
            [path, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if out and not out.startswith(here + "."):
            return path, out
    return None


OTHER_PYTHON = _other_python()


@pytest.mark.skipif(OTHER_PYTHON is None, reason="no other CPython 3.9+ on this machine")
def test_python_option_runs_tasks_in_another_interpreter(make: Make) -> None:
    assert OTHER_PYTHON is not None
    path, version = OTHER_PYTHON
    ex = make(max_workers=1, python=path)
    assert ex.submit(platform.python_version).result(timeout=30) == version
    assert ex.submit(sum, [1, 2, 3]).result(timeout=30) == 6
    with pytest.raises(ZeroDivisionError):
        ex.submit(divmod, 1, 0).result(timeout=30)


@pytest.mark.skipif(not os.path.exists(PY27), reason=f"no Python 2.7 at {PY27}")
def test_python_too_old_says_what_it_said(make: Make) -> None:
    ex = make(max_workers=1, python=PY27)
    with pytest.raises(BrokenExecutor, match=r"(?s)exited with code 1 .*SyntaxError"):
        ex.submit(tasks.pid).result(timeout=30)


def test_python_option_takes_a_virtual_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    ex = SubprocessExecutor(max_workers=1, python=venv)
    try:
        assert ex.python == str(venv / "bin" / "python")
        # the same binary, yet another environment: it keeps its own sys.path
        path = ex.submit(eval, "__import__('sys').path").result(timeout=30)
        assert path[0] != sys.path[0]
        assert not set(path) & {p for p in sys.path if p.endswith("site-packages")}
    finally:
        ex.shutdown()


def test_shutdown_reaps_every_worker(make: Make) -> None:
    ex = make(max_workers=2)
    pids = {f.result(timeout=30) for f in [ex.submit(tasks.pid) for _ in range(8)]}
    ex.shutdown(wait=True)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_worker_loop_imports_nothing_of_executors_at_start() -> None:
    from executors._pool import _subworker
    from executors._pool.interpreter import _own_source, _worker_source

    source = Path(_subworker.__file__).read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import", "from"))]
    assert not [line for line in top_level if "executors" in line]
    assert "import _subworker" in _worker_source()
    compile(_worker_source(), "<worker>", "exec")
    program, code = _own_source()  # the caller's own Python gets the loop compiled
    compile(program, "<worker>", "exec")
    assert code
