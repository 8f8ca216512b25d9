"""Command tasks on every backend: run_command and Command, submitted like any task."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from executors import (
    Command,
    CommandError,
    CommandResult,
    CommandTimeout,
    Executor,
    InvalidOption,
    TaskTimeout,
    get_executor,
    run_command,
)
from tests.conftest import backend_name_fixture

if TYPE_CHECKING:
    from collections.abc import Iterator

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", code]


#: A command runs the same way in any worker: the pool's start method changes nothing
#: here (the conformance matrix runs the start methods).
backend_name = backend_name_fixture(variants=[])


@pytest.fixture
def ex(backend_name: str) -> Iterator[Executor]:
    with get_executor(backend_name, max_workers=2) as executor:
        yield executor


def test_exit_status_and_result_fields(ex: Executor) -> None:
    argv = py("import sys; print('out'); sys.exit(3)")
    result = ex.submit(run_command, argv).result(timeout=30)
    assert isinstance(result, CommandResult)
    assert isinstance(result, subprocess.CompletedProcess)
    assert (result.args, result.returncode) == (argv, 3)
    assert (result.stdout, result.stderr) == (b"out\n", b"")
    assert not result.ok
    assert 0 < result.duration < 30


def test_command_object_is_a_task(ex: Executor) -> None:
    results = list(
        ex.map(Command.__call__, [Command(py(f"print({i})"), text=True) for i in range(4)])
    )
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n", "3\n"]
    assert ex.submit(Command(py("pass"))).result(timeout=30).ok


def test_input_as_bytes_and_str(ex: Executor) -> None:
    upper = py("import sys; sys.stdout.write(sys.stdin.read().upper())")
    assert ex.submit(run_command, upper, input=b"nslookup\n").result(timeout=30).stdout == (
        b"NSLOOKUP\n"
    )
    text = ex.submit(run_command, upper, input="python.org", text=True).result(timeout=30)
    assert text.stdout == "PYTHON.ORG"


def test_stdin_is_empty_without_input(ex: Executor) -> None:
    result = ex.submit(run_command, py("import sys; print(repr(sys.stdin.read()))")).result(30)
    assert result.stdout == b"''\n"


def test_tens_of_megabytes_on_both_pipes(ex: Executor) -> None:
    size = 12 << 20
    code = (
        "import sys\n"
        f"for _ in range({size} // 65536):\n"
        "    sys.stdout.buffer.write(b'o' * 65536); sys.stderr.buffer.write(b'e' * 65536)\n"
    )
    data = os.urandom(1 << 20) * 8
    cat = py(code + "sys.stdout.buffer.write(sys.stdin.buffer.read())")
    result = ex.submit(run_command, cat, input=data).result(timeout=60)
    assert result.returncode == 0
    assert len(result.stdout) == size + len(data)
    assert result.stdout[size:] == data
    assert result.stderr == b"e" * size


def test_env_is_added_to_or_replaces_the_environment(ex: Executor) -> None:
    show = py("import os; print(os.environ.get('GREETING'), 'HOME' in os.environ)")
    added = ex.submit(run_command, show, env={"GREETING": "hi"}, text=True).result(30)
    assert added.stdout == f"hi {'HOME' in os.environ}\n"
    replaced = ex.submit(
        run_command, show, env={"GREETING": "only"}, replace_env=True, text=True
    ).result(30)
    assert replaced.stdout == "only False\n"


def test_cwd(ex: Executor, tmp_path: Path) -> None:
    result = ex.submit(run_command, py("import os; print(os.getcwd())"), cwd=tmp_path).result(30)
    assert Path(result.stdout.decode().strip()).resolve() == tmp_path.resolve()


def test_no_shell_unless_asked(ex: Executor) -> None:
    literal = ex.submit(run_command, ["echo", "$HOME", "*"]).result(30)
    assert literal.stdout == b"$HOME *\n"
    shell = ex.submit(run_command, "echo $((6 * 7))", shell=True).result(30)
    assert shell.stdout == b"42\n"


def test_check_raises_command_error_with_output_tails(ex: Executor) -> None:
    code = (
        "import sys; print('\\n'.join(map(str, range(100)))); sys.stderr.write('bad\\n'); "
        "sys.exit(4)"
    )
    future = ex.submit(run_command, py(code), check=True)
    with pytest.raises(CommandError) as info:
        future.result(timeout=30)
    err = info.value
    assert isinstance(err, subprocess.CalledProcessError)
    assert err.returncode == 4
    assert err.stderr == b"bad\n"
    message = str(err)
    assert "exited with status 4" in message
    assert "\n99" in message
    assert "\n5\n" not in message  # only the tail
    assert "bad" in message
    assert "check=False" in message


def test_timeout_kills_the_process_group_grandchildren_too(ex: Executor, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import pathlib, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    future = ex.submit(run_command, py(code), timeout=1.0)
    with pytest.raises(CommandTimeout) as info:
        future.result(timeout=30)
    assert time.monotonic() - start < 20
    err = info.value
    assert isinstance(err, TaskTimeout)
    assert isinstance(err, TimeoutError)
    assert isinstance(err, subprocess.TimeoutExpired)
    assert err.output == b"started\n"
    assert "timed out after 1 s" in str(err)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"grandchild {grandchild} survived the timeout")


def test_missing_program_names_it_and_the_path(ex: Executor) -> None:
    future = ex.submit(run_command, ["no-such-program-xyz", "arg"], env={"PATH": "/nowhere"})
    with pytest.raises(FileNotFoundError) as info:
        future.result(timeout=30)
    message = str(info.value)
    assert "'no-such-program-xyz'" in message
    assert "/nowhere" in message
    assert "PATH" in message


def test_missing_working_directory_is_named(ex: Executor, tmp_path: Path) -> None:
    future = ex.submit(run_command, py("pass"), cwd=tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"working directory .*gone"):
        future.result(timeout=30)


def test_killed_command_reports_the_signal(ex: Executor) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = ex.submit(run_command, py(code)).result(timeout=30)
    assert result.returncode == -15
    with pytest.raises(CommandError, match=r"killed by SIGTERM\(-15\)"):
        result.check_returncode()


# -- the same objects, outside any executor ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ("ls -l", {}, r"got the string 'ls -l'; split it \(shlex.split"),
        ([], {}, "non-empty list"),
        (["ls", 3], {}, "must be str .* got 3"),
        (["ls"], {"env": {"A": 1}}, "env values must be str, got 'A': 1"),
        (["ls"], {"timeout": 0}, "timeout must be a positive number"),
        (["ls"], {"input": 5}, "input must be bytes, str or None, got 5"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(
    args: object, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidOption, match=match):
        Command(args, **kwargs)  # type: ignore[arg-type]


def test_errors_and_results_survive_pickling() -> None:
    err = CommandError(1, ["false"], b"o", b"e", duration=0.5)
    back = pickle.loads(pickle.dumps(err))
    assert (back.returncode, back.cmd, back.output, back.stderr, back.duration) == (
        1,
        ["false"],
        b"o",
        b"e",
        0.5,
    )
    timeout = pickle.loads(pickle.dumps(CommandTimeout(["sleep"], 2.0, b"x", b"y")))
    assert (timeout.cmd, timeout.timeout, timeout.output, str(timeout)) == (
        ["sleep"],
        2.0,
        b"x",
        str(CommandTimeout(["sleep"], 2.0, b"x", b"y")),
    )
    result = pickle.loads(pickle.dumps(run_command(py("print(1)"))))
    assert (result.stdout, result.returncode) == (b"1\n", 0)
    assert pickle.loads(pickle.dumps(Command(["ls"], timeout=3))) == Command(["ls"], timeout=3)


def _sleeps(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] == ["sleep", marker]:
            found.append(proc)
    return found


@pytest.mark.parametrize("backend", ["fork", "process", "pool"])
def test_stopping_a_running_command_task_kills_the_command(backend: str) -> None:
    # the command runs in its own session: killing the worker alone would orphan it
    marker = f"{30 + os.getpid() % 1000 / 1000:.3f}"
    with get_executor(backend, max_workers=1, task_timeout=1.0) as executor:
        running = executor.submit(run_command, ["sleep", marker])
        with pytest.raises(TaskTimeout):
            running.result(timeout=30)
        assert executor.submit(pow, 2, 4).result(timeout=30) == 16
    _, alive = psutil.wait_procs(_sleeps(marker), timeout=5)
    assert not alive
