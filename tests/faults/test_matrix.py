"""The fault matrix: every backend under every fault, against tests/faults/expectations.py.

One executor per backend serves the whole module (``max_workers=2``; the
backends that take it get a short ``task_timeout``): no fault may poison it, so
after each cell the same executor must still run a new task. Cells marked "n/a"
in the table are not generated; their reason is in the table (and the docs).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from executors import (
    SerializationError,
    TaskTimeout,
    WorkerCrashed,
    WorkerLost,
    get_executor,
    registry,
)
from executors.protocol import Executor
from executors.testing import check_no_leaks

from . import fault_tasks as t
from .expectations import BACKENDS, EXPECTED, FAULTS, is_applicable, render_rst

#: Seconds a task may run on the backends that take task_timeout.
TASK_TIMEOUT = 2.0
#: Seconds to wait for any outcome (generous: the machine may be loaded).
WAIT = 60.0
TAKES_TIMEOUT = {"inline", "thread", "asyncio", "fork", "process", "pool", "subprocess", "remote"}
#: Backends whose task runs on in a thread past its timeout: their hang cell hangs
#: 3 s on an executor of its own (inline runs it inside submit(), which returns when
#: it ends), so that no other cell runs under a timeout a loaded machine may hit.
THREADS = {"inline", "thread", "asyncio"}
CLUSTERS = {"dask", "ray"}

ERRORS: dict[str, type[BaseException]] = {
    "ValueError": ValueError,
    "NeedsTwoArgs": t.NeedsTwoArgs,
    "HoldsLock": t.HoldsLock,
    "BadStr": t.BadStr,
    "MemoryError": MemoryError,
    "RecursionError": RecursionError,
    "SystemExit": SystemExit,
    "SerializationError": SerializationError,
    "WorkerCrashed": WorkerCrashed,
    "WorkerLost": WorkerLost,
    "TaskTimeout": TaskTimeout,
}


def _call(
    fault: str, pid_file: str, backend: str
) -> tuple[Callable[..., Any], tuple[Any, ...], Any]:
    """The task, its arguments, and the value it returns when it succeeds."""
    calls: dict[str, tuple[Callable[..., Any], tuple[Any, ...], Any]] = {
        "raises": (t.raises, (), None),
        "raises-unroundtrippable": (t.raises_needs_two_args, (), None),
        "raises-unpicklable": (t.raises_holds_lock, (), None),
        "raises-bad-str": (t.raises_bad_str, (), None),
        "returns-unpicklable": (t.returns_lock, (), "lock"),
        "arg-unpicklable": (t.identity, (threading.Lock(),), "lock"),
        "arg-fails-to-load": (t.identity, (t.FailsToLoad(),), "FailsToLoad"),
        "sigkill": (t.sigkill_self, (), None),
        "os-exit": (t.exit_3, (), None),
        "segfault": (t.segfault, (), None),
        "memory-error": (t.memory_error, (), None),
        "recursion": (t.recurse, (), None),
        "sys-exit": (t.sys_exit_2, (), None),
        "hang-timeout": (t.hang, (), None),
        "hang-grandchild-timeout": (t.hang_with_grandchild, (pid_file,), None),
        "crash-grandchild": (t.crash_with_grandchild, (pid_file,), None),
        "log-unpicklable-extra": (t.log_unpicklable_extra_once, (), 7),
    }
    return calls[fault]


def _check_details(fault: str, exc: BaseException) -> None:
    """What else each error must say, per fault (beyond its type)."""
    if fault == "raises-unroundtrippable":
        assert isinstance(exc, t.NeedsTwoArgs)
        assert (exc.code, exc.detail, exc.args) == (7, "seven", ("code 7: seven",))
    elif fault == "raises-unpicklable":
        assert isinstance(exc, t.HoldsLock)
        assert exc.args == ("locked",)
    elif fault == "raises-bad-str":
        assert exc.args == ("hidden",)
    elif fault == "sys-exit":
        assert isinstance(exc, SystemExit)
        assert exc.code == 2
    elif fault in ("returns-unpicklable", "arg-unpicklable"):
        assert "lock" in str(exc)
    elif fault == "arg-fails-to-load":
        assert "FailsToLoad refuses" in str(exc)
    elif isinstance(exc, WorkerCrashed):
        expected = {"sigkill": -9, "os-exit": 3, "segfault": -11, "crash-grandchild": 3}
        assert exc.exitcode == expected[fault]
        assert "still usable" in str(exc)


def _cells() -> list[Any]:
    cells = []
    for backend in BACKENDS:
        reason = registry.unavailable_reason(backend)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        for fault in FAULTS:
            if is_applicable(EXPECTED[fault][backend]):
                cells.append(pytest.param(backend, fault, id=f"{backend}-{fault}", marks=marks))
    return cells


@pytest.fixture(scope="module", autouse=True)
def _nothing_left_by_the_module(request: pytest.FixtureRequest) -> Iterator[None]:
    dask_cells = any("[dask-" in item.nodeid for item in request.session.items)
    if dask_cells and registry.unavailable_reason("dask") is None:  # else they are skipped
        from tests.engine_clusters import warm_dask_threads

        warm_dask_threads()  # dask keeps them for the rest of the process: not a leak
    with check_no_leaks():
        yield


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Replaces the per-test check: replaced workers of the shared executor are new children.

    Each cell instead checks its grandchildren are gone, and that the caller's
    processes settle back to at most the shared executor's workers.
    """
    yield
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") in CLUSTERS:
        return  # a cluster runs schedulers, nannies, raylets...: checked at module end
    me = psutil.Process()
    deadline = time.monotonic() + 10.0
    while len(me.children(recursive=True)) > 2 * 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    left = me.children(recursive=True)
    assert len(left) <= 2 * 2, f"processes left: {left}"


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Executor]]:
    name: str = request.param
    options: dict[str, Any] = {"max_workers": 2}
    if name in TAKES_TIMEOUT and name not in THREADS:  # THREADS: only for their hang cell
        options["task_timeout"] = TASK_TIMEOUT
    if name == "dask":
        import dask

        # A LocalCluster of its own, not the shared one tests/conftest.py may have
        # configured: the cells kill its workers, and it is the cluster the cells describe.
        with dask.config.set({"scheduler-address": None}):
            ex = get_executor(name, **options)
    else:
        ex = get_executor(name, **options)
    yield name, ex
    ex.shutdown(wait=True, cancel_futures=True)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(("backend", "fault"), _cells(), indirect=["backend"])
def test_cell(backend: tuple[str, Executor], fault: str, tmp_path: Path) -> None:
    name, ex = backend
    if fault == "hang-timeout" and name in THREADS:
        own = get_executor(name, max_workers=2, task_timeout=TASK_TIMEOUT)
        try:
            with pytest.raises(TaskTimeout):
                own.submit(t.hang, 3.0).result(timeout=WAIT)
            assert own.submit(t.ok, 1).result(timeout=WAIT) == 2
        finally:
            own.shutdown(wait=True)  # the thread finishes its 3 s
        return
    expected = EXPECTED[fault][name]
    pid_file = str(tmp_path / "grandchildren")
    fn, args, value = _call(fault, pid_file, name)
    if expected.endswith("@submit"):
        with pytest.raises(ERRORS[expected.removesuffix("@submit")]) as info:
            ex.submit(fn, *args)
        _check_details(fault, info.value)
    else:
        future: Future[Any] = ex.submit(fn, *args)
        if expected == "ok":
            outcome = future.result(timeout=WAIT)
            if fault == "returns-unpicklable":
                outcome = type(outcome).__name__
            assert outcome == value
        else:
            with pytest.raises(ERRORS[expected]) as info:
                future.result(timeout=WAIT)
            assert type(info.value) is ERRORS[expected]
            _check_details(fault, info.value)
    # the executor still serves
    assert ex.submit(t.ok, 1).result(timeout=WAIT) == 2
    # and nothing the task started is left running
    if os.path.exists(pid_file):
        pids = [int(line) for line in Path(pid_file).read_text().split()]
        assert pids
        deadline = time.monotonic() + 5.0
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [pid for pid in pids if not _gone(pid)]
        for pid in alive:
            psutil.Process(pid).kill()
        assert not alive, f"grandchildren {alive} outlived {fault} on {name}"
    elif "grandchild" in fault:
        pytest.fail("the task never wrote its grandchild's pid")


def test_the_table_covers_every_backend_and_fault() -> None:
    built_in = {n for n, info in registry.backends().items() if info.origin == "built-in"}
    missing = built_in - set(BACKENDS)
    assert not missing, f"add a column to tests/faults/expectations.py for {missing}"
    assert set(EXPECTED) == set(FAULTS)
    for fault, row in EXPECTED.items():
        for backend, outcome in row.items():
            known = outcome == "ok" or outcome.removesuffix("@submit") in ERRORS
            assert known or not is_applicable(outcome), (fault, backend, outcome)


def test_the_docs_table_is_generated_from_the_expectations() -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "faults_table.rst"
    assert committed.read_text() == render_rst(), (
        "docs/faults_table.rst is stale: run python -m tests.faults.expectations"
    )
