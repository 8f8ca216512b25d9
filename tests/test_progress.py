"""The progress bars behind ``map(progress=True)``: what reaches a terminal, and when."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest

from executors import get_executor
from tests.ptys import read_to_end

PY = sys.executable


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> FakeTerminal:
    """sys.stderr as a terminal, for the rest of the test (pytest's capture resets a
    fixture's sys.stderr when the test starts)."""
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError


@pytest.mark.usefixtures("no_tqdm")
def test_plain_bar_shows_count_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with get_executor("thread", max_workers=2) as ex:
        assert list(ex.map(abs, [-1, -2, -3, -4], progress=True)) == [1, 2, 3, 4]
    lines = terminal.getvalue().split("\r")
    assert " 25%|" in lines[1]
    assert " 1/4 [00:00<" in lines[1]  # elapsed < ETA
    assert lines[-1].startswith("100%|")
    assert " 4/4 [" in lines[-1]
    assert " it/s]" in lines[-1]
    assert lines[-1].endswith("\n")  # the finished bar stays


@pytest.mark.usefixtures("no_tqdm")
def test_plain_bar_without_a_total(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with get_executor("thread", max_workers=2) as ex:
        assert list(ex.map(abs, iter([-1, -2]), buffersize=2, progress=True)) == [1, 2]
    assert terminal.getvalue().split("\r")[-1].startswith("2 it [00:00, ")


@pytest.mark.usefixtures("no_tqdm")
def test_the_clock_moves_while_an_item_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    release = threading.Event()
    with get_executor("thread", max_workers=1) as ex:
        results = ex.map(release.wait, [30.0], progress=True)
        taker = threading.Thread(target=list, args=(results,))
        taker.start()
        deadline = time.monotonic() + 20
        while terminal.getvalue().count("0/1 [") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        redrawn = terminal.getvalue().count("0/1 [")
        release.set()
        taker.join()
    assert redrawn >= 2  # drawn again by the ticker, with no item done


def test_tqdm_draws_the_bar_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    pytest.importorskip("tqdm")
    with get_executor("thread", max_workers=2) as ex:
        assert list(ex.map(abs, range(5), progress=True)) == list(range(5))
    out = terminal.getvalue()
    assert "5/5 [" in out
    assert "it/s]" in out


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = threading.active_count()
    with get_executor("thread", max_workers=2) as ex:
        results = ex.map(abs, range(5), progress=True)
        assert threading.active_count() - before <= 2  # the pool's threads, no ticker
        assert list(results) == list(range(5))
    assert capfd.readouterr().err == ""


@pytest.mark.usefixtures("no_tqdm")
def test_closing_the_map_early_ends_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with get_executor("thread", max_workers=2) as ex:
        results = ex.map(abs, range(100), progress=True)
        assert next(results) == 0
        results.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "executors-progress"]
    assert terminal.getvalue().endswith("\n")


def test_a_map_never_started_starts_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = on_terminal(monkeypatch)
    with get_executor("thread", max_workers=2) as ex:
        results = ex.map(abs, range(3), progress=True)
        del results
    assert terminal.getvalue() == ""


def test_the_callback_gets_done_and_total_in_the_consuming_thread() -> None:
    threads: list[str] = []
    with get_executor("thread", max_workers=2) as ex:
        results = ex.map(
            abs, [1, 2, 3], progress=lambda d, t: threads.append(threading.current_thread().name)
        )
        assert list(results) == [1, 2, 3]
    assert threads == [threading.current_thread().name] * 3


CHILD = (
    "import sys; sys.modules['tqdm'] = None\n"
    "from executors import get_executor\n"
    "with get_executor('thread') as ex:\n"
    "    print(sum(ex.map(abs, range(10), progress=True)))\n"
)


def test_a_real_terminal_gets_the_bar_and_a_pipe_does_not() -> None:
    pty = pytest.importorskip("pty", reason="no pseudo-terminals on this platform")
    piped = subprocess.run([PY, "-c", CHILD], capture_output=True, text=True, timeout=50)
    assert (piped.stdout, piped.stderr) == ("45\n", "")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PY, "-c", CHILD], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal
        )
        os.close(terminal)
        terminal = -1
        seen = read_to_end(controller)
        out, _ = proc.communicate(timeout=50)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert out == b"45\n"
    assert b"100%|" in seen
    assert b"10/10 [" in seen
