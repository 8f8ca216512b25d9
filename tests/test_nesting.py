"""A task can create and use an executor of its own, on any process backend.

Before, a task on fork, process or pool that created a fork, process, pool or
subprocess executor hung for ever: the child inherited our fork lock held at
fork time. Worker processes also inherited ``$EXECUTORS_BACKEND``, so a program
whose tasks fan out nested without being asked; now they get the default
(``thread``) unless ``$EXECUTORS_WORKER_BACKEND`` says otherwise.
"""

from __future__ import annotations

import pytest

from executors import get_executor
from tests import nesting_tasks as t

OUTER = ["fork", "process", "pool"]
INNER = ["fork", "process", "pool", "subprocess"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("inner", INNER)
@pytest.mark.parametrize("outer", OUTER)
def test_a_task_creates_and_uses_an_executor_of_its_own(outer: str, inner: str) -> None:
    with get_executor(outer, max_workers=1) as ex:
        assert ex.submit(t.fan_out, inner).result(timeout=90) == ([1, 2, 3], True)
        assert ex.submit(abs, -4).result(timeout=60) == 4  # the outer one still serves


@pytest.mark.timeout(120)
@pytest.mark.parametrize("outer", [*OUTER, "subprocess", "remote"])
def test_workers_do_not_inherit_the_backend_unless_asked(
    outer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTORS_BACKEND", "pool")
    monkeypatch.delenv("EXECUTORS_WORKER_BACKEND", raising=False)
    with get_executor(outer, max_workers=1) as ex:
        assert ex.submit(t.default_backend).result(timeout=90) == (None, "thread")
    monkeypatch.setenv("EXECUTORS_WORKER_BACKEND", "inline")
    with get_executor(outer, max_workers=1) as ex:
        assert ex.submit(t.default_backend).result(timeout=90) == ("inline", "inline")
