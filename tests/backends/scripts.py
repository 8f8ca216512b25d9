"""Run a user's program as ``__main__`` in a fresh interpreter, as the script tests do."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def run_script(
    tmp_path: Path, name: str, text: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Write *text* to ``tmp_path / name`` and run it there; its output, captured."""
    script = tmp_path / name
    script.write_text(text)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )
