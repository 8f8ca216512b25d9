"""``python -m executors worker``: exit statuses and the messages that go with them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from executors.__main__ import main
from executors._remote import worker as rw
from executors.backends.remote import RemoteExecutor
from executors.demo import square

KEY = "cli-test-key-0123456789"


def run_worker(*args: str, key: str | None = KEY, timeout: float = 30) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "EXECUTORS_AUTHKEY"}
    if key is not None:
        env["EXECUTORS_AUTHKEY"] = key
    proc = subprocess.run(
        [sys.executable, "-m", "executors", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_help_lists_the_worker_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "worker" in capsys.readouterr().out


def test_missing_key_exits_2_and_says_where_to_put_it() -> None:
    status, err = run_worker("127.0.0.1:9", key=None)
    assert status == rw.EXIT_USAGE
    assert "EXECUTORS_AUTHKEY" in err
    assert "Traceback" not in err


def test_short_key_exits_2() -> None:
    status, err = run_worker("127.0.0.1:9", key="abc")
    assert status == rw.EXIT_USAGE
    assert "3 bytes long, too short" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "address must be HOST:PORT"),
        (["127.0.0.1:9", "--workers", "0"], "--workers must be greater than 0"),
        (["127.0.0.1:9", "--backend", "thraed"], "did you mean 'thread'"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    status, err = run_worker(*args)
    assert status == rw.EXIT_USAGE
    assert message in err


def test_unreachable_master_exits_4_after_retrying() -> None:
    status, err = run_worker(f"127.0.0.1:{free_port()}", "--retry-for", "0.3")
    assert status == rw.EXIT_UNREACHABLE
    assert "cannot reach a master" in err
    assert "ConnectionRefusedError" in err


def test_wrong_key_exits_3_at_once() -> None:
    with RemoteExecutor(address="127.0.0.1:0", authkey=KEY + "!") as ex:
        host, port = ex.address
        status, err = run_worker(f"{host}:{port}", "--retry-for", "30", timeout=20)
        assert status == rw.EXIT_AUTH
        assert "refused our authkey" in err
        future = ex.submit(square, 2)
        assert not future.done()
        ex.shutdown(cancel_futures=True)


def test_clean_exit_0_when_the_master_shuts_down() -> None:
    ex = RemoteExecutor(address="127.0.0.1:0", authkey=KEY)
    env = {**os.environ, "EXECUTORS_AUTHKEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "executors",
            "worker",
            f"127.0.0.1:{ex.address[1]}",
            "--backend",
            "inline",
            "-q",  # warnings and errors only: none on a clean run
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ex.submit(square, 9).result(timeout=30) == 81
    finally:
        ex.shutdown()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == rw.EXIT_OK, err
    assert err == ""


def test_parse_address_accepts_ipv6_brackets() -> None:
    assert rw.parse_address("[::1]:5000") == ("::1", 5000)
    assert rw.parse_address(" example.org:0 ") == ("example.org", 0)
