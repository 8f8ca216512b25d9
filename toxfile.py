"""tox plugin: find the pyenv interpreters (3.9 to 3.13, PyPy) without any set-up.

tox loads this file by itself. It puts each pyenv version's ``bin`` folder on
PATH ahead of pyenv's shims (which refuse to run versions that are not selected),
so ``py39`` ... ``py313`` and ``pypy3`` resolve to real interpreters. Machines
without pyenv are unaffected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_WANTED = re.compile(r"(3\.(9|1[0-3])(\.\d+)?|pypy3.*)$")


def _pyenv_bins() -> list[str]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not root.is_dir():
        return []
    return [str(p / "bin") for p in sorted(root.iterdir()) if _WANTED.match(p.name)]


_bins = [b for b in _pyenv_bins() if b not in os.environ.get("PATH", "").split(os.pathsep)]
if _bins:
    os.environ["PATH"] = os.pathsep.join([*_bins, os.environ.get("PATH", "")])
