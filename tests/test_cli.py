from __future__ import annotations

import os
import subprocess
import sys

import pytest

from executors.__main__ import main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORS_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "executors", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_info_lists_backends_and_selection() -> None:
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert "inline  available" in out.stdout or "inline" in out.stdout
    assert "thread" in out.stdout
    assert "selected: thread (the default" in out.stdout


def test_info_reports_a_bad_env_var() -> None:
    out = run_cli("info", env={"EXECUTORS_BACKEND": "thraed"})
    assert out.returncode == 2
    assert "selected: thraed (from $EXECUTORS_BACKEND)" in out.stdout
    assert "did you mean 'thread'?" in out.stderr


def test_demo_runs_on_inline() -> None:
    out = run_cli("demo", env={"EXECUTORS_BACKEND": "inline"})
    assert out.returncode == 0, out.stderr
    assert "backend: inline" in out.stdout
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out.stdout
    assert "context seen by a task: alice/7" in out.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["-b", "thraed"], {}, "error: unknown backend 'thraed'"),
        (
            [],
            {"EXECUTORS_BACKEND": "nope"},
            "error: unknown backend 'nope' (from $EXECUTORS_BACKEND)",
        ),
        ([], {"EXECUTORS_MAX_WORKERS": "x"}, "error: $EXECUTORS_MAX_WORKERS must be a positive"),
        (["-b", "thread?max_workers=0"], {}, "error: max_workers must be greater than 0"),
    ],
)
def test_demo_reports_bad_settings_in_one_line(
    args: list[str], env: dict[str, str], message: str
) -> None:
    out = run_cli("demo", *args, env=env)
    assert out.returncode == 2
    assert out.stderr.startswith(message), out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version(flag: str) -> None:
    from importlib.metadata import version

    out = run_cli(flag)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"executors {version('pluggable-executors')}\n"  # what pip installed
    assert "[--version]" in run_cli("--help").stdout


def _documented_options(program: str) -> set[str]:
    """The ``.. option::`` names docs/cli.rst lists under ``.. program:: <program>``."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.rst").read_text()
    section = page.split(f".. program:: {program}\n", 1)[1].split(".. program::", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith(".. option:: "):
            for name in line[len(".. option:: ") :].split(", "):
                names.add(name.split()[0])
    return names


@pytest.mark.parametrize(
    ("program", "module"),
    [("run", "executors._cli.run"), ("worker", "executors._remote.worker")],
)
def test_the_cli_page_lists_every_option(program: str, module: str) -> None:
    import importlib

    parser = importlib.import_module(module)._parser()
    options = {
        name
        for action in parser._actions
        for name in action.option_strings
        if name not in ("-h", "--help")
    }
    assert options  # the parser was read
    assert options == _documented_options(f"python -m executors {program}") - {"HOST:PORT"}
