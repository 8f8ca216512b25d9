"""The guide's examples and docstrings, repeated under each backend via $EXECUTORS_BACKEND.

pytest's own doctest run covers them under the default backend; this repeats
the pages whose examples use ``get_executor()`` without naming a backend, so the
documented behaviour holds on every backend, as a user switching backends sees it.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "docs/index.rst",
    "docs/commands.rst",
    "docs/quickstart.rst",
    "docs/context.rst",
    "docs/errors.rst",
]
MODULES = ["executors", "executors.context", "executors.protocol"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("page", PAGES)
def test_page(page: str, backend_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTORS_BACKEND", backend_name)
    result = doctest.testfile(
        str(ROOT / page), module_relative=False, optionflags=FLAGS, verbose=False, report=True
    )
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("module", MODULES)
def test_docstrings(module: str, backend_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTORS_BACKEND", backend_name)
    result = doctest.testmod(importlib.import_module(module), optionflags=FLAGS, report=True)
    assert result.attempted > 0
    assert result.failed == 0
