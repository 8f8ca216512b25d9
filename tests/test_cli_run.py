"""``python -m executors run``, end to end: each test runs it as a real subprocess."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from tests.ptys import read_to_end

if TYPE_CHECKING:
    from pathlib import Path

PY = sys.executable


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "executors", "run", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def interrupt_once_started(backend: str, code: str, marker: Path) -> tuple[int, str]:
    """Run *code* as the one job; Ctrl-C the tool once *marker* has content; (status, stderr)."""
    proc = subprocess.Popen(
        [PY, "-m", "executors", "run", "-b", backend, "--", PY, "-c", code, ":::", str(marker)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def sleep_then_echo(seconds: str, text: str) -> list[str]:
    return [PY, "-c", f"import time; time.sleep({seconds}); print({text!r})"]


def test_output_comes_in_input_order_and_whole() -> None:
    code = (
        "import sys, time; n = int(sys.argv[1]); time.sleep(0.3 - 0.1 * n); "
        "print('out', n); print('more', n); print('err', n, file=sys.stderr)"
    )
    result = run("-j", "3", "--", PY, "-c", code, ":::", "0", "1", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out 0\nmore 0\nout 1\nmore 1\nout 2\nmore 2\n"
    assert result.stderr == "err 0\nerr 1\nerr 2\n"


def test_as_finished_prints_jobs_as_they_end() -> None:
    code = "import sys, time; time.sleep(float(sys.argv[1])); print(sys.argv[1])"
    result = run("-j", "2", "--as-finished", "--", PY, "-c", code, ":::", "1", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n1\n"


def test_inputs_from_stdin_lines_are_appended_as_the_last_argument() -> None:
    code = "import sys; print('|'.join(sys.argv[1:]))"
    result = run("-j", "2", PY, "-c", code, "first", stdin="a b\n\nc\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "first|a b\nfirst|c\n"


def test_replacement_strings() -> None:
    code = "import sys; print(' '.join(sys.argv[1:]))"
    result = run(
        "--",
        PY,
        "-c",
        code,
        "{#}",
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
        "x={.}.gz",
        ":::",
        "dir/name.tar",
    )
    assert result.stdout == "1 dir/name.tar dir/name name.tar dir name x=dir/name.gz\n"


def test_shell_mode_quotes_inputs(tmp_path: Path) -> None:
    result = run("--shell", "--", "echo {} > {.}.out", ":::", "a b.txt", "c.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a b.out").read_text() == "a b.txt\n"
    assert (tmp_path / "c.out").read_text() == "c.txt\n"


def test_failures_give_exit_status_1_and_a_summary() -> None:
    code = "import sys; n = int(sys.argv[1]); print('ran', n); sys.exit(n % 2)"
    result = run("-j", "2", "--", PY, "-c", code, ":::", "1", "2", "3", "4")
    assert result.returncode == 1
    assert result.stdout == "ran 1\nran 2\nran 3\nran 4\n"
    summary = result.stderr.splitlines()
    assert summary[0] == "2 of 4 jobs failed:"
    assert summary[1].startswith("  job 1 (input '1'): exited with status 1: ")
    assert summary[2].startswith("  job 3 (input '3'): exited with status 1: ")
    assert len(summary) == 3


def test_missing_program_and_timeout_are_failures() -> None:
    result = run(
        "--timeout",
        "1",
        "--",
        "sh",
        "-c",
        "[ {} = slow ] && sleep 30; echo {}",
        ":::",
        "fast",
        "slow",
    )
    assert result.returncode == 1
    assert result.stdout == "fast\n"
    assert "job 2 (input 'slow'): timed out after 1 s and was killed" in result.stderr
    missing = run("--", "no-such-program-xyz", ":::", "1")
    assert missing.returncode == 1
    assert "program 'no-such-program-xyz' was not found on PATH" in missing.stderr


def test_halt_starts_no_new_job_after_a_failure(tmp_path: Path) -> None:
    code = "import sys; open(sys.argv[1], 'w').close(); sys.exit(sys.argv[1].endswith('0'))"
    inputs = [str(tmp_path / str(i)) for i in range(20)]
    result = run("-j", "1", "--halt", "--", PY, "-c", code, ":::", *inputs)
    assert result.returncode == 1
    assert len(os.listdir(tmp_path)) < 20
    assert "exited with status 1" in result.stderr


@pytest.mark.parametrize("backend", ["thread", "subprocess", "pool"])
def test_halt_with_one_job_at_a_time_starts_nothing_after_the_failure(
    backend: str, tmp_path: Path
) -> None:
    # the second job fails at once: with -j 1 no third job may start, on any backend
    code = "import sys; open(sys.argv[1], 'w').close(); sys.exit(sys.argv[1].endswith('1'))"
    inputs = [str(tmp_path / str(i)) for i in range(8)]
    result = run("-b", backend, "-j", "1", "--halt", "--", PY, "-c", code, ":::", *inputs)
    assert result.returncode == 1
    assert sorted(os.listdir(tmp_path)) == ["0", "1"]
    summary = result.stderr.splitlines()
    assert summary[0] == "1 of 2 jobs failed (6 not started, --halt):"  # skipped are not failed
    assert summary[1].startswith("  job 2 (input ")
    assert len(summary) == 2


def test_a_substituted_input_is_not_substituted_again() -> None:
    code = "import sys; print(' '.join(sys.argv[1:]))"
    template = ("{}", "{.}", "{/}", "x{/.}y", "{#}")
    result = run("--", PY, "-c", code, *template, ":::", "d/we{}rd.txt", "a{.}b{#}")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == "d/we{}rd.txt d/we{}rd we{}rd.txt xwe{}rdy 1\na{.}b{#} a{ a{.}b{#} xa{y 2\n"
    )
    shell = run("--shell", "--", "echo {.} {}", ":::", "we{}rd.txt")
    assert shell.stdout == "we{}rd we{}rd.txt\n"


def test_jobs_really_run_side_by_side(tmp_path: Path) -> None:
    # each job waits until all three have started: it only passes if -j 3 runs them at once
    code = (
        "import os, sys, time\n"
        "open(os.path.join(sys.argv[1], sys.argv[2]), 'w').close()\n"
        "deadline = time.monotonic() + 20\n"
        "while len(os.listdir(sys.argv[1])) < 3:\n"
        "    if time.monotonic() > deadline: sys.exit('alone')\n"
        "    time.sleep(0.01)\n"
    )
    result = run("-j", "3", "--", PY, "-c", code, str(tmp_path), ":::", "a", "b", "c")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("backend", ["inline", "subprocess", "thread"])
def test_any_backend_by_option_or_environment(backend: str) -> None:
    code = "import sys; print(sys.argv[1])"
    by_option = run("-b", backend, "--", PY, "-c", code, ":::", "x", "y")
    by_env = run("--", PY, "-c", code, ":::", "x", "y", env={"EXECUTORS_BACKEND": backend})
    assert by_option.stdout == by_env.stdout == "x\ny\n"
    assert by_option.returncode == by_env.returncode == 0


def test_remote_backend_runs_jobs_on_its_workers_in_order() -> None:
    # no address: the remote backend listens on loopback and starts local workers
    code = (
        "import os, sys, psutil; n = int(sys.argv[1]); "
        "print(n, 'worker' in psutil.Process(os.getppid()).cmdline()); sys.exit(n == 3)"
    )
    result = run("-b", "remote", "-j", "2", "--", PY, "-c", code, ":::", "1", "2", "3", "4")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "1 True\n2 True\n3 True\n4 True\n"
    assert result.stderr.splitlines() == [
        "1 of 4 jobs failed:",
        f"  job 3 (input '3'): exited with status 1: {shlex.join([PY, '-c', code, '3'])}",
    ]
    slow = run("-b", "remote", "--timeout", "0.5", "--", "sh", "-c", "sleep {}", ":::", "0", "30")
    assert slow.returncode == 1
    assert "job 2 (input '30'): timed out after 0.5 s and was killed" in slow.stderr


def test_progress_only_when_asked_or_on_a_terminal() -> None:
    quiet = run("--", "true", ":::", "1", "2")
    assert quiet.stderr == ""
    shown = run("--progress", "--", "sh", "-c", "exit {}", ":::", "0", "1")
    assert " 1/2 [" in shown.stderr
    assert " 2/2 [" in shown.stderr
    assert "job/s, 1 failed]" in shown.stderr  # the rate, and how many failed so far
    assert shown.stderr.splitlines()[-2] == "1 of 2 jobs failed:"


PLAIN = "import sys; sys.modules['tqdm'] = None; from executors.__main__ import main; main()"


@pytest.mark.parametrize("bar", ["tqdm", "plain"])
def test_the_progress_clock_moves_while_a_job_runs(bar: str, tmp_path: Path) -> None:
    # the job ends only once the tool has drawn its line again with no job done
    log = tmp_path / "stderr"
    code = (
        "import sys, time; deadline = time.monotonic() + 30\n"
        "while open(sys.argv[1]).read().count('0/1 [') < 2:\n"
        "    if time.monotonic() > deadline: sys.exit('the progress line was not redrawn')\n"
        "    time.sleep(0.05)\n"
    )
    if bar == "tqdm":
        pytest.importorskip("tqdm")
    launch = [PY, "-c", PLAIN, "run"] if bar == "plain" else [PY, "-m", "executors", "run"]
    with log.open("w") as err:
        status = subprocess.run(
            [*launch, "--progress", "--", PY, "-c", code, str(log), ":::", "x"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=50,
            check=False,
        ).returncode
    assert status == 0, log.read_text()
    assert "1/1 [" in log.read_text()


@pytest.mark.parametrize("backend", ["subprocess", "thread", "remote", "pool", "process", "fork"])
def test_ctrl_c_kills_running_jobs(backend: str, tmp_path: Path) -> None:
    code = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(60)"
    pidfile = tmp_path / "job.pid"
    status, err = interrupt_once_started(backend, code, pidfile)
    job = int(pidfile.read_text())
    assert status == 130
    assert "interrupted: killed 1 running job(s)" in err
    deadline = time.monotonic() + 10
    while True:
        try:
            if psutil.Process(job).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        assert time.monotonic() < deadline, f"job {job} survived Ctrl-C"
        time.sleep(0.05)


def test_progress_is_drawn_on_a_terminal() -> None:
    pty = pytest.importorskip("pty", reason="no pseudo-terminals on this platform")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PY, "-m", "executors", "run", "--", "true", ":::", "1", "2", "3"],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        terminal = -1
        seen = read_to_end(controller)
        assert proc.wait(timeout=50) == 0
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert b" 3/3 [" in seen
    assert b"\r" in seen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the command after '--'"),
        (("-j", "0", "--", "true"), "-j/--jobs must be at least 1, got 0"),
        (("--timeout", "-1", "--", "true"), "--timeout must be a positive number"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_unknown_backend_exits_2_with_the_choices() -> None:
    result = run("-b", "thraed", "--", "true", ":::", "1")
    assert result.returncode == 2
    assert "did you mean 'thread'" in result.stderr


def test_dry_run_prints_the_commands() -> None:
    result = run("--dry-run", "--", "gzip", "-k", ":::", "a b", "c")
    assert result.returncode == 0
    assert result.stdout == "gzip -k 'a b'\ngzip -k c\n"


def test_listed_in_the_main_help() -> None:
    result = subprocess.run(
        [PY, "-m", "executors", "--help"], capture_output=True, text=True, timeout=50, check=False
    )
    assert "run       run a command once per input" in result.stdout


def test_no_bar_while_inputs_are_typed_on_the_terminal() -> None:
    pty = pytest.importorskip("pty", reason="no pseudo-terminals on this platform")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PY, "-m", "executors", "run", "--", PY, "-c", "print('job ran')"],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        terminal = -1
        seen = b""
        while b"reading inputs from stdin" not in seen:
            seen += os.read(controller, 4096)
        os.write(controller, b"x\n\x04")  # one input, then Ctrl-D
        seen = read_to_end(controller, seen)
        assert proc.wait(timeout=50) == 0
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert b"job ran" in seen
    assert b"job/s" not in seen  # the bar would have redrawn over what the user typed
