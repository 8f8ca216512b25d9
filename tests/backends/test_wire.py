"""The pool engine's wire: workers send facts (LOAD_FAILED, UNPICKLABLE), the parent words errors."""

from __future__ import annotations

import pytest

from executors import SerializationError, get_executor
from executors.registry import unavailable_reason

from . import wire_tasks as tasks

ENGINES = ["pool", "subprocess", "process?start_method=spawn"]


@pytest.mark.parametrize("spec", ENGINES)
def test_a_task_that_will_not_unpickle_in_the_worker_fails_alone(spec: str) -> None:
    if unavailable_reason(spec.partition("?")[0]):
        pytest.skip(str(unavailable_reason(spec.partition("?")[0])))
    with get_executor(spec, max_workers=1) as ex:
        future = ex.submit(tasks.identity, tasks.LoadsBadly())
        with pytest.raises(SerializationError, match="could not unpickle the task") as info:
            future.result(timeout=60)
        assert "AttributeError: this task cannot be loaded here" in str(info.value)
        assert isinstance(info.value.__cause__, AttributeError)
        assert ex.submit(tasks.identity, 5).result(timeout=60) == 5
