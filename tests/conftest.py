from __future__ import annotations

from collections.abc import Iterator

import pytest

from executors import registry
from executors.testing import check_no_leaks


def backend_params() -> list[object]:
    """One param per registry name, skipped (with the reason) where unusable here."""
    params = []
    for name in registry.names():
        reason = registry.unavailable_reason(name)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        params.append(pytest.param(name, id=name, marks=marks))
    for spec in VARIANTS:
        name = spec.partition("?")[0]
        reason = registry.unavailable_reason(name)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        params.append(pytest.param(spec, id=spec.replace("?start_method=", "-"), marks=marks))
    return params


#: The pool again with its other start methods. Under those the process backend
#: imports the parent's main module in each task's process (pytest: ~0.2 s a task),
#: too slow for the whole matrix; tests/backends/test_process.py covers them.
VARIANTS = ["pool?start_method=forkserver", "pool?start_method=spawn"]


@pytest.fixture(params=backend_params())
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with check_no_leaks():
        yield
