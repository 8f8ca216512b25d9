"""terminate_workers() and kill_workers(): the explicit "stop everything now" (3.14's names)."""

from __future__ import annotations

import concurrent.futures as cf
import time
from pathlib import Path

import pytest

from executors import get_executor, unavailable_reason
from executors.testing import touch, touch_twice, wait_for_path

OWN_PROCESSES = ["fork", "pool", "process", "remote", "subprocess"]


@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
@pytest.mark.parametrize("backend", OWN_PROCESSES)
def test_stop_everything_now(backend: str, how: str, tmp_path: Path) -> None:
    if unavailable_reason(backend):
        pytest.skip(str(unavailable_reason(backend)))
    ex = get_executor(backend, max_workers=2)
    try:
        running = [
            ex.submit(touch_twice, str(tmp_path / f"s{i}"), str(tmp_path / f"e{i}"), 60)
            for i in range(2)
        ]
        queued = [ex.submit(touch, str(tmp_path / f"q{i}")) for i in range(3)]
        wait_for_path(tmp_path / "s0")  # (the pool may queue the second behind it)
        start = time.monotonic()
        getattr(ex, how)()
        assert time.monotonic() - start < 20
        assert isinstance(running[0].exception(timeout=10), cf.BrokenExecutor)
        # The rest ended: cancelled, failed if it had started, or (the pool hands tasks
        # out in batches) done on the other worker before the call.
        for f in [*running, *queued]:
            assert f.done()
            assert (
                f.cancelled()
                or f.exception() is None
                or isinstance(f.exception(), cf.BrokenExecutor)
            )
        with pytest.raises(RuntimeError):
            ex.submit(touch, str(tmp_path / "late"))
        assert not any(p.name.startswith(("e", "late")) for p in tmp_path.iterdir())
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def test_in_process_backends_have_no_workers_to_terminate() -> None:
    with get_executor("thread") as ex:
        assert not hasattr(ex, "terminate_workers")
