"""Free-threaded builds: detection, what ``info`` says, and our counters without the GIL.

No free-threaded build is installable on the test machines, so the builds are
simulated here (the sysconfig variable and ``sys._is_gil_enabled``).
"""

from __future__ import annotations

import sys
import threading

import pytest

from executors import _runtime
from executors.__main__ import main


def pretend(monkeypatch: pytest.MonkeyPatch, *, build: bool, gil: bool) -> None:
    monkeypatch.setattr(
        _runtime.sysconfig,
        "get_config_var",
        lambda name: (1 if build else 0) if name == "Py_GIL_DISABLED" else None,
    )
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)


def test_this_python_is_detected_as_it_is() -> None:
    import sysconfig

    assert _runtime.gil_disabled_build() == bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    check = getattr(sys, "_is_gil_enabled", None)
    assert _runtime.gil_enabled() == (True if check is None else check())


def test_free_threaded_with_the_gil_off_makes_thread_cpu_parallel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pretend(monkeypatch, build=True, gil=False)
    assert _runtime.free_threaded()
    assert main(["info"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("runtime:"))
    assert "free-threaded build, GIL disabled: 'thread' runs CPU-bound Python code in" in line


def test_free_threaded_build_with_the_gil_back_on_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend(monkeypatch, build=True, gil=True)
    assert not _runtime.free_threaded()
    assert "but the GIL is enabled (PYTHON_GIL=1" in _runtime.describe()


def test_a_default_build_points_cpu_work_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend(monkeypatch, build=False, gil=True)
    assert not _runtime.free_threaded()
    assert "with the GIL: threads take turns" in _runtime.describe()
    assert "'pool' or 'interpreter'" in _runtime.describe()


def test_counter_numbers_each_value_once_across_threads() -> None:
    counter = _runtime.Counter(1)
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [next(counter) for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 16001))
