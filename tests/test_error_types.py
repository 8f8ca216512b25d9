"""Our errors are caught by the standard library's names too, and still by ours."""

from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
import threading
from concurrent.futures.process import BrokenProcessPool

import pytest

from executors import (
    BrokenExecutor,
    ExecutorError,
    SerializationError,
    WorkerCrashed,
    get_executor,
)
from tests.faults import fault_tasks as t


def test_the_classes() -> None:
    assert issubclass(WorkerCrashed, BrokenProcessPool)
    assert issubclass(WorkerCrashed, BrokenExecutor)
    assert issubclass(WorkerCrashed, cf.BrokenExecutor)
    assert issubclass(WorkerCrashed, ExecutorError)
    assert issubclass(SerializationError, pickle.PicklingError)
    assert issubclass(SerializationError, TypeError)
    assert issubclass(SerializationError, ExecutorError)


@pytest.mark.parametrize("spec", ["pool", "fork", "process", "subprocess"])
def test_a_dead_worker_is_caught_as_broken_process_pool_and_as_ours(spec: str) -> None:
    with get_executor(spec, max_workers=1) as ex:
        with pytest.raises(BrokenProcessPool):
            ex.submit(os._exit, 3).result(timeout=60)
        with pytest.raises(WorkerCrashed) as info:
            ex.submit(os._exit, 3).result(timeout=60)
        assert info.value.exitcode == 3
        assert ex.submit(t.double, 2).result(timeout=60) == 4  # not broken, unlike the stdlib's


@pytest.mark.parametrize("spec", ["pool", "process?start_method=spawn", "subprocess", "remote"])
def test_what_does_not_pickle_is_caught_as_pickling_error_and_as_ours(spec: str) -> None:
    with get_executor(spec, max_workers=1) as ex:
        with pytest.raises(pickle.PicklingError, match="lock"):
            ex.submit(t.double, threading.Lock())
        with pytest.raises(SerializationError):
            ex.submit(t.double, threading.Lock())
        with pytest.raises(TypeError):  # as before
            ex.submit(t.double, threading.Lock())
        with pytest.raises(pickle.PicklingError, match="refuses to load"):
            ex.submit(t.unloadable).result(timeout=60)
