"""pytest's run of the pages' examples: skip those of a backend this Python cannot run.

Sphinx's doctest builder skips them through ``:skipif:`` (see ``conf.py``); pytest
reads the same ``>>>`` lines without the directive, so it is told here. The cluster
pages need their engine's package; the interpreter page needs the backend.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from executors import unavailable_reason

#: pages whose examples need packages the default test environments do not install
NEEDS = {
    "dask.rst": ("distributed",),
    "ray.rst": ("ray",),
    "scaling.rst": ("distributed", "ray"),
    "pool.rst": ("numpy",),  # no numpy wheels for PyPy: the test extra skips it there
}
#: pages whose examples need one backend
PAGES = {"interpreter.rst": "interpreter"}


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
            continue
        backend = PAGES.get(item.path.name)
        reason = unavailable_reason(backend) if backend else None
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _numpy(doctest_namespace: dict[str, object]) -> None:
    """``numpy`` for the pages' examples, as ``conf.py`` gives it to Sphinx's."""
    if importlib.util.find_spec("numpy") is not None:
        doctest_namespace["numpy"] = importlib.import_module("numpy")


def _extra(module: str) -> str:
    return {"distributed": "dask", "numpy": "test"}.get(module, module)
