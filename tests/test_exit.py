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


#: Python 3.12 starts no process or thread once the interpreter shuts down, so on the
#: backends that start one per task, tasks still queued at exit cannot run there. The
#: library must then say so on stderr, with the count and the fix (nobody reads those
#: futures). 3.13 allows it again, and every task runs.
REFUSES_AT_EXIT = sys.version_info[:2] == (3, 12)
ONE_PER_TASK = {"fork", "process"}


@pytest.mark.parametrize("how", ["shutdown-no-wait", "drop", "end"])
def test_submitted_tasks_run_when_the_script_ends(
    backend_name: str, how: str, tmp_path: Path
) -> None:
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
    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("done-"))
    if REFUSES_AT_EXIT and backend_name in ONE_PER_TASK and ran != ["done-0", "done-1", "done-2"]:
        assert ran == ["done-0"]  # started at submit, before the end
        assert "executors: 2 task(s) submitted to executors-" in proc.stderr
        assert "never ran" in proc.stderr and "ex.shutdown()" in proc.stderr
        return
    assert proc.stderr == ""
    assert ran == ["done-0", "done-1", "done-2"]
