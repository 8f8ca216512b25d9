from __future__ import annotations

import concurrent.futures as cf
import inspect
import pickle

import executors.errors as errors
from executors.errors import (
    BackendNotFound,
    BrokenExecutor,
    ExecutorError,
    TaskTimeout,
    WorkerCrashed,
)


def test_every_error_is_an_executor_error_with_a_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ExecutorError)
        assert inspect.getdoc(cls)
        assert name in errors.__doc__  # the tree in the module docstring


def test_stdlib_bases() -> None:
    assert issubclass(BackendNotFound, LookupError)
    assert issubclass(BrokenExecutor, cf.BrokenExecutor)
    assert issubclass(TaskTimeout, TimeoutError)
    assert issubclass(TaskTimeout, cf.TimeoutError)


def test_worker_crashed_pickles_with_its_details() -> None:
    exc = pickle.loads(pickle.dumps(WorkerCrashed("died", exitcode=-9, pid=42)))
    assert (str(exc), exc.exitcode, exc.pid) == ("died", -9, 42)
