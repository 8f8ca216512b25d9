"""Doctests of the pages about the cluster backends run only where their engine is installed.

The Sphinx doctest builder skips the same examples through ``:skipif:`` (see conf.py).
"""

from __future__ import annotations

import importlib.util

import pytest

NEEDS = {
    "dask.rst": ("distributed",),
    "ray.rst": ("ray",),
    "scaling.rst": ("distributed", "ray"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        missing = [
            name for name in NEEDS.get(item.path.name, ()) if importlib.util.find_spec(name) is None
        ]
        if missing:
            extras = " and ".join(
                f"pip install 'pluggable-executors[{_extra(m)}]'" for m in missing
            )
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}: {extras}"))


def _extra(module: str) -> str:
    return "dask" if module == "distributed" else module
