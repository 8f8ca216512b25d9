"""The most common program there is runs unchanged on every backend: functions from the script.

Each test runs a script as ``__main__`` in a child interpreter, as a user would,
with ``$EXECUTORS_BACKEND`` choosing the backend. Functions and classes the
script defines, lambdas and closures travel by value (cloudpickle) to workers
that cannot import the script; everything importable still travels by name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from executors import registry
from tests.backends.remote_tasks import KEY

SCRIPT = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass

    from executors import get_executor


    def square(x):
        return x * x


    @dataclass
    class Point:
        x: int
        y: int


    def make_point(x):
        return Point(x, -x)


    def norm(point):
        return abs(point.x) + abs(point.y)


    def closure(k):
        def power(x):
            return x**k

        return power


    if __name__ == "__main__":
        kind = sys.argv[1]
        fn = {"function": square, "lambda": lambda x: x * x, "closure": closure(2)}[kind]
        with get_executor() as ex:
            print(sum(ex.map(fn, range(1000), chunksize=250)))
            print(ex.submit(fn, 12).result(timeout=60))
            point = ex.submit(make_point, 3).result(timeout=60)
            print(isinstance(point, Point), point)
            print(ex.submit(norm, Point(4, -5)).result(timeout=60))
    """
)

EXPECTED = "332833500\n144\nTrue Point(x=3, y=-3)\n9\n"

SPECS = [
    *registry.names(),
    "pool?start_method=spawn",
    "pool?start_method=forkserver",
    "process?start_method=spawn",
]


def _params() -> list[object]:
    params = []
    for spec in SPECS:
        reason = registry.unavailable_reason(spec.partition("?")[0])
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        params.append(pytest.param(spec, id=spec.replace("?start_method=", "-"), marks=marks))
    return params


def _run(
    script: Path, kind: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), kind],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORS_")}
    env.pop("PYTHONPATH", None)  # the package is installed; the script's folder is not shared
    return {**env, **extra}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["function", "lambda", "closure"])
@pytest.mark.parametrize("spec", _params())
def test_script_functions_lambdas_and_closures_run_on_every_backend(
    spec: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "fan_out.py"
    script.write_text(SCRIPT)
    proc = _run(script, kind, _env(EXECUTORS_BACKEND=spec, EXECUTORS_MAX_WORKERS="2"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED, proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["function", "lambda", "closure"])
def test_script_runs_on_a_remote_worker_started_by_hand_elsewhere(
    kind: str, tmp_path: Path
) -> None:
    """The worker runs in another directory, which does not have the script."""
    here, there = tmp_path / "master", tmp_path / "worker"
    here.mkdir()
    there.mkdir()
    script = here / "fan_out.py"
    script.write_text(SCRIPT)
    port = _free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "executors", "worker", f"127.0.0.1:{port}", "--retry-for", "60"],
        cwd=there,
        env=_env(EXECUTORS_AUTHKEY=KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc = _run(
            script,
            kind,
            _env(EXECUTORS_BACKEND=f"remote://127.0.0.1:{port}", EXECUTORS_AUTHKEY=KEY),
            here,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == EXPECTED, proc.stderr
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err  # the master's shutdown stopped it
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=30)
