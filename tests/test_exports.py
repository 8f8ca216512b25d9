from __future__ import annotations

import subprocess
import sys

import executors


def test_all_is_sorted_and_complete() -> None:
    assert executors.__all__ == sorted(executors.__all__)
    for name in executors.__all__:
        assert getattr(executors, name) is not None
    import types

    public = {
        n
        for n, v in vars(executors).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public - {"annotations", "Any"} <= set(executors.__all__)


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        executors.nope  # type: ignore[attr-defined]


def test_import_is_light() -> None:
    code = (
        "import sys, executors; "
        "bad = [m for m in sys.modules if m.startswith(('asyncio', 'multiprocessing', "
        "'executors.backends.', 'subprocess'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
