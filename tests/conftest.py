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
    return params


@pytest.fixture(params=backend_params())
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with check_no_leaks():
        yield
