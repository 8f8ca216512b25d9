"""pytest's run of the pages' examples: skip those of a backend this Python cannot run.

Sphinx's doctest builder skips them through ``:skipif:`` (see ``conf.py``);
pytest reads the same ``>>>`` lines without the directive, so it is told here.
"""

from __future__ import annotations

import pytest

from executors import unavailable_reason

#: pages whose examples need one backend
PAGES = {"interpreter.rst": "interpreter"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        backend = PAGES.get(item.path.name)
        reason = unavailable_reason(backend) if backend else None
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
