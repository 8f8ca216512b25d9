"""Every submitted task runs unless cancelled, however the script ends (as concurrent.futures).

Each case is a script run as ``__main__`` in a child interpreter, as a user runs one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from executors import get_executor
    from executors.testing import touch

    if __name__ == "__main__":
        backend, how, path = sys.argv[1:]
        ex = get_executor(backend, max_workers=1)
        futures = [ex.submit(touch, f"{path}-{i}", None, 0.2) for i in range(3)]
        if how == "shutdown-no-wait":
            ex.shutdown(wait=False)
        elif how == "drop":
            del ex, futures
        # "end": the script just ends
    """
)


#: Open defect (#11): on Python 3.12+ only the first of three tasks runs at exit on these
#: backends (3.12 refuses new threads and forks during interpreter shutdown); not fixed yet.
KNOWN_312 = {"fork", "process", "asyncio"}
KNOWN_312_REASON = "3.12+: tasks left at exit stop after the first on fork, process, asyncio (#11)"


@pytest.mark.parametrize("how", ["shutdown-no-wait", "drop", "end"])
def test_submitted_tasks_run_when_the_script_ends(
    backend_name: str, how: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if sys.version_info >= (3, 12) and backend_name.partition("?")[0] in KNOWN_312:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_312_REASON, strict=False))
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = tmp_path / "done"
    proc = subprocess.run(
        [sys.executable, str(script), backend_name, how, str(done)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("done-"))
    assert ran == ["done-0", "done-1", "done-2"]
