"""Big buffers cross to and from ``pool`` and ``subprocess`` workers through shared memory.

See :mod:`executors._pool.shared`. Each test checks what a user sees (values and
their types) and that the data really went the shared way (a segment for the
argument, the worker's TAKEN count for the result); the fault tests check that a
worker killed mid-transfer leaves no descriptor or /dev/shm entry behind.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from executors import WorkerCrashed, get_executor
from executors._pool import _subworker, shared
from executors.testing import echo

from . import proc_tasks as t
from .scripts import run_script

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(not shared.usable(), reason="memfd and /proc: Linux only")

BIG = _subworker.BIG


@pytest.fixture(params=["pool", "subprocess"])
def ex(request: pytest.FixtureRequest) -> Iterator[Any]:
    executor = get_executor(request.param, max_workers=2)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def _taken(ex: Any) -> int:
    """Results the caller has copied out of the workers' outboxes (live workers)."""
    pool = ex._pool
    with pool.lock:
        return sum(int(w.state[_subworker.TAKEN]) for w in pool.workers)


def _segments(ex: Any) -> int:
    """Segments the caller has (held by a task, or free for the next one)."""
    segments = ex._pool.segments
    with segments.lock:
        return len(segments.live)


def _in_use(ex: Any) -> int:
    """Segments held by a task (taken and not given back)."""
    segments = ex._pool.segments
    with segments.lock:
        return len(segments.live) - len(segments.free)


def test_bytes_bytearray_and_memoryview_keep_their_types(ex: Any) -> None:
    data = os.urandom(BIG + 3)
    for value in (data, bytearray(data), memoryview(data)):
        result = ex.submit(echo, value).result(timeout=60)
        assert type(result) is type(value) and bytes(result) == data
    assert _segments(ex) == 1  # there through one segment, reused (not the pipe)...
    assert _taken(ex) == 3  # ...and back through the workers' outboxes
    assert _in_use(ex) == 0


def test_buffers_inside_a_tuple_or_a_dict_and_keyword_arguments(ex: Any) -> None:
    data = b"\x01" * BIG
    assert ex.submit(t.kinds, (data, bytearray(data), 3)).result(timeout=60) == (
        "bytes",
        "bytearray",
        "int",
    )
    assert ex.submit(t.kinds, {"a": data, "b": "x"}).result(timeout=60) == {
        "a": "bytes",
        "b": "str",
    }
    assert ex.submit(t.kinds, value=memoryview(data)).result(timeout=60) == "memoryview"
    result = ex.submit(echo, [data, 1]).result(timeout=60)
    assert result == [data, 1]


def test_small_data_keeps_the_pipe(ex: Any) -> None:
    future = ex.submit(echo, b"x" * (BIG - 1))
    assert future.result(timeout=60) == b"x" * (BIG - 1)
    assert type(future.payload) is bytes
    assert _segments(ex) == 0
    assert _taken(ex) == 0


def test_a_big_result_from_a_small_call(ex: Any) -> None:
    futures = [ex.submit(t.big_bytes, 3 * BIG, i) for i in range(6)]
    assert [f.result(timeout=60) for f in futures] == [bytes([i]) * 3 * BIG for i in range(6)]
    assert _taken(ex) == 6


def test_numpy_arrays_cross_and_stay_writable(ex: Any) -> None:
    np = pytest.importorskip("numpy", reason="numpy is optional (the test extra installs it)")
    array = np.arange(BIG // 4, dtype=np.float64).reshape(-1, 4)
    result = ex.submit(echo, array).result(timeout=60)
    assert _segments(ex) == 1 and _taken(ex) == 1
    assert result.dtype == array.dtype and result.shape == array.shape
    assert (result == array).all() and result.flags.writeable
    result[0, 0] = -1.0  # the caller's own copy: not the segment, not the argument
    assert array[0, 0] == 0.0
    fortran = np.asfortranarray(array)
    assert (ex.submit(echo, fortran).result(timeout=60) == array).all()
    assert _in_use(ex) == 0


def test_a_segment_is_given_back_once_its_worker_has_copied_it_out(ex: Any) -> None:
    """Memory bounded by what runs: a running task holds no shared memory of the caller's."""
    data = b"s" * BIG
    future = ex.submit(t.sleep_then, 5.0, data)
    deadline = time.monotonic() + 60
    while _in_use(ex) and time.monotonic() < deadline:
        with ex._pool.lock:
            ex._pool.held()  # what the next big submit does: looks at what was loaded
        time.sleep(0.01)
    assert _in_use(ex) == 0
    assert not future.done()  # still running
    assert future.result(timeout=60) == data


def test_mutating_the_argument_after_submit_does_not_reach_the_task(ex: Any) -> None:
    data = bytearray(BIG)
    future = ex.submit(echo, data)
    data[:] = b"\xff" * BIG
    assert future.result(timeout=60) == bytes(BIG)


def test_portable_mode_sends_big_data_through_the_pipe(
    ex: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTORS_PORTABLE", "1")
    assert ex.submit(echo, b"p" * BIG).result(timeout=60) == b"p" * BIG
    assert _segments(ex) == 0


# -- arrays lent as views: one copy each way, no segment written while a view lives ------


def _np() -> Any:
    return pytest.importorskip("numpy", reason="numpy is optional (the test extra installs it)")


views = pytest.mark.skipif(not _subworker.VIEWS, reason="views need reference counts (CPython)")


@views
def test_an_array_argument_is_a_view_of_shared_memory_and_bytes_a_copy(ex: Any) -> None:
    np = _np()
    array = np.arange(BIG // 8, dtype=np.float64)
    assert ex.submit(t.buffer_owner, array).result(timeout=60) == "mmap"
    assert ex.submit(t.kinds, array.tobytes()).result(timeout=60) == "bytes"
    result = ex.submit(echo, array).result(timeout=60)
    assert t.buffer_owner(result) == "mmap" and (result == array).all()


@views
def test_an_argument_a_worker_keeps_is_never_overwritten() -> None:
    """The caller reuses a segment only once its worker holds no view of it."""
    np = _np()
    ex = get_executor("pool", max_workers=1)
    try:
        sums = [ex.submit(t.keep, np.full(BIG // 8, float(i))).result(timeout=60) for i in range(4)]
        for i in range(4, 8):  # tasks that do not keep theirs: segments reused
            assert ex.submit(echo, np.full(BIG // 8, float(i))).result(timeout=60)[0] == i
        assert ex.submit(t.kept_sums).result(timeout=60) == sums
    finally:
        ex.shutdown(wait=True)


@views
def test_results_the_caller_keeps_stay_intact_while_the_worker_goes_on(ex: Any) -> None:
    _np()
    count = BIG // 8
    kept = [ex.submit(t.filled_array, count, float(i)).result(timeout=60) for i in range(6)]
    for i in range(6, 12):
        assert ex.submit(t.filled_array, count, float(i)).result(timeout=60)[-1] == i
    assert [float(a[0]) for a in kept] == [float(i) for i in range(6)]
    assert all(float(a.sum()) == i * count for i, a in enumerate(kept))
    kept[0][:] = -1  # the caller's own: writable, and nobody else sees it
    assert ex.submit(t.filled_array, count, 1.0).result(timeout=60).sum() == count


@views
def test_a_forked_child_changing_a_result_leaves_the_callers_alone(ex: Any) -> None:
    """Views are private mappings (copy on write): a fork shares them no more than the heap."""
    _np()
    result = ex.submit(t.filled_array, BIG // 8, 1.0).result(timeout=60)
    with get_executor("fork") as forked:
        assert forked.submit(t.add_in_place, result, 1.0).result(timeout=60) == 2.0 * (BIG // 8)
    assert float(result.sum()) == BIG // 8


@views
def test_views_are_bounded_then_copied_and_all_freed(ex: Any) -> None:
    np = _np()
    count = BIG // 8
    gc.collect()
    before = len(_subworker._views)
    results = [ex.submit(t.filled_array, count, float(i)) for i in range(_subworker.MAX_VIEWS + 6)]
    kept = [f.result(timeout=60) for f in results]
    assert len(_subworker._views) <= _subworker.MAX_VIEWS
    assert sum(t.buffer_owner(a) == "mmap" for a in kept) == _subworker.MAX_VIEWS - before
    assert all(float(a[0]) == i for i, a in enumerate(kept))
    del kept, results
    gc.collect()
    assert not _subworker._views  # every mapping freed as its last array went
    assert np.array_equal(ex.submit(echo, np.ones(count)).result(timeout=60), np.ones(count))


# -- faults: nothing leaks ----------------------------------------------------------------


def _descriptors() -> set[str]:
    """What this process has open, but multiprocessing's heap arenas (kept for reuse)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if not target.startswith("/dev/shm/pym-"):
                found.add(f"{fd} {target}")
    return found


def _ready_workers(ex: Any) -> list[int]:
    """Workers that run tasks (a worker interpreter killed before it is ready breaks the
    executor, by design: it would not start again)."""
    pool = ex._pool
    with pool.lock:
        return [w.pid for w in pool.workers if w.ready]


def _shm() -> set[str]:
    """/dev/shm's entries, but multiprocessing's semaphores and heap arenas (``sem.mp-*``,
    ``pym-*``), which any process on the machine makes and unlinks at once (other tests
    run beside this one, e.g. on the other xdist worker)."""
    if not os.path.isdir("/dev/shm"):
        return set()
    return {n for n in os.listdir("/dev/shm") if not n.startswith(("sem.mp-", "pym-"))}


@pytest.mark.parametrize("backend", ["pool", "subprocess"])
def test_a_worker_killed_mid_transfer_leaves_nothing_behind(backend: str) -> None:
    """SIGKILL at several points of big transfers: while the worker reads an argument,
    runs, writes a result, and after; the caller's descriptors and /dev/shm are as before."""
    ex = get_executor(backend, max_workers=2)
    try:
        ex.submit(echo, b"warm").result(timeout=60)  # start the workers and their pipes
        before_fds, before_shm = _descriptors(), _shm()
        data = b"d" * (16 * BIG)
        crashed = 0
        for delay in (0.0, 0.0005, 0.002, 0.005, 0.01, 0.03):
            futures = [ex.submit(echo, data) for _ in range(4)]
            time.sleep(delay)
            for pid in _ready_workers(ex):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for future in futures:
                try:
                    assert future.result(timeout=60) == data
                except WorkerCrashed:
                    crashed += 1
        # a worker that dies holding an argument, and one that dies after leaving a result
        with pytest.raises(WorkerCrashed):
            ex.submit(t.kill_self_holding, data).result(timeout=60)
        future = ex.submit(t.big_result_then_die, 4 * BIG)
        error = future.exception(timeout=60)
        if error is None:  # read before the worker died
            assert future.result() == b"r" * (4 * BIG)
        else:  # its result was in its outbox, not read yet
            assert isinstance(error, WorkerCrashed) and "SIGKILL" in str(error)
            del error
        assert crashed, "no transfer was interrupted"
        assert ex.submit(echo, data).result(timeout=60) == data  # still usable
        assert _in_use(ex) == 0  # every task gave its segment back
    finally:
        ex.shutdown(wait=True)
    # a future keeps its worker's state (a mapping, so a descriptor) until it goes
    del futures, future
    gc.collect()
    assert _shm() == before_shm
    left = _descriptors() - before_fds
    assert not left, left
    # no segment of the caller's, nor a worker's outbox, is open (of any executor)
    assert not [d for d in _descriptors() if "memfd:executors" in d and "worker-state" not in d]


_FORK_AFTER_VIEWS = """
import gc, os, sys
import numpy as np
from executors import get_executor
from executors._pool import _subworker

def filled(count, fill):
    return np.full(count, fill)

def reuse(ex):  # the worker may reuse a segment only once no process reads it
    held = [ex.submit(filled, 1 << 17, float(i)).result(timeout=60) for i in range(2, 6)]
    assert [a[0] for a in held] == [2.0, 3.0, 4.0, 5.0]  # (every free segment used)

if __name__ == "__main__":
    with get_executor("pool", max_workers=1) as ex:
        # a child that lets go of everything, as an exiting program does; the parent reads on
        kept = ex.submit(filled, 1 << 17, 1.0).result(timeout=60)
        assert _subworker._views
        pid = os.fork()
        if pid == 0:
            del kept
            sys.exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        reuse(ex)
        print("parent kept", float(kept.min()), float(kept.max()))
        # the parent lets go; its child reads on
        kept = ex.submit(filled, 1 << 17, 1.0).result(timeout=60)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.read(r, 1)
            os._exit(0 if float(kept.min()) == float(kept.max()) == 1.0 else 1)
        del kept
        gc.collect()
        reuse(ex)
        os.write(w, b"x")
        print("child read", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@views
def test_a_view_alive_at_a_fork_is_never_given_back(tmp_path: Any) -> None:
    """Parent and child share what was mapped before a fork: neither frees it for reuse,
    whichever lets go first (each fails without the rule)."""
    _np()
    run = run_script(tmp_path, "fork_views.py", _FORK_AFTER_VIEWS)
    assert run.returncode == 0, run.stderr
    assert "parent kept 1.0 1.0" in run.stdout
    assert "child read 0" in run.stdout
