"""The conformance suite every backend passes; importable by third-party backends.

Our own matrix (``tests/conformance/``) runs each feature class against every
backend in the registry. A plugin author runs all of it in three lines::

    from executors.testing import ExecutorConformance

    class TestMine(ExecutorConformance):
        backend = "mine"            # the registered name
        options = {}                # extra options for get_executor()

Tests ask only for the ``executor`` fixture (``max_workers=2``) or ``make``
(other options). A behaviour a backend truly cannot have is a class flag on the
backend (``runs_in_submit``), and turns into a skip that says why. An autouse
check fails any test that leaves a thread or child process behind.

Needs pytest (and psutil for the child-process check).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import gc
import itertools
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest

from . import context, registry
from ._conformance_tasks import (  # noqa: F401  # re-exported: tests and docs import them here
    Box,
    add,
    add_under_lock,
    async_add,
    async_sleep,
    consume,
    drain_joinable,
    echo,
    fail_on,
    failing_initializer,
    failing_task,
    make_adder,
    make_box,
    produce,
    read_context,
    read_worker_value,
    reverse_bytes,
    set_event,
    set_worker_value,
    touch,
    touch_or_fail,
    touch_twice,
    wait_event,
)
from .errors import InvalidOption, TaskTimeout
from .protocol import Executor
from .timeouts import with_timeout

__all__ = [
    "CancelTests",
    "CommonOptionTests",
    "ContextTests",
    "ExceptionTests",
    "ExecutorConformance",
    "InitializerTests",
    "InteropTests",
    "LargeDataTests",
    "MapTests",
    "OptionTests",
    "ProgressTests",
    "SharedObjectTests",
    "ShutdownTests",
    "SubmitTests",
    "check_no_leaks",
]

Make = Callable[..., Executor]


# -- helpers of the test process ---------------------------------------------------


def wait_for_path(path: Path, timeout: float = 30.0) -> None:
    """Wait until *path* exists (a task has started), or fail."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


# -- leak check ----------------------------------------------------------------------


def _children() -> set[int]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - the check degrades to threads only
        return set()
    return {p.pid for p in psutil.Process().children(recursive=True)} - _multiprocessing_helpers()


def _multiprocessing_helpers() -> set[int]:
    """multiprocessing's forkserver and resource tracker: one per process, kept till exit.

    The first forkserver or spawn start makes them; they are not a test's leak
    (what they start for us still counts: only these two pids are left out).
    """
    pids: set[int] = set()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None:
        pids.add(getattr(forkserver._forkserver, "_forkserver_pid", None) or 0)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:
        pids.add(getattr(tracker._resource_tracker, "_pid", None) or 0)
    return pids - {0}


@contextlib.contextmanager
def check_no_leaks(grace: float = 10.0) -> Iterator[None]:
    """Fail if the block leaves new threads or child processes (zombies included)."""
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + grace
    first = True
    while True:
        # gc.collect() runs the finalizers of dropped executors, which stop their
        # threads and children; when nothing is left it has nothing to find, and it
        # costs 10-50 ms in a test process with a large heap: over half the CPU of a
        # quick test. So the first look goes without it.
        if not first:
            gc.collect()
        first = False
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = _children() - children_before
        if not threads and not children:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"test left behind threads {[t.name for t in threads]} "
                f"and child processes {sorted(children)}"
            )
        time.sleep(0.05)


# -- the suite -----------------------------------------------------------------------


class _Suite:
    #: Options every executor of this suite gets (a plugin may need an address).
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _no_leaks(self) -> Iterator[None]:
        with check_no_leaks():
            yield

    @pytest.fixture
    def make(self, backend_name: str) -> Iterator[Make]:
        made: list[Executor] = []

        def make(**options: Any) -> Executor:
            ex = registry.get_executor(backend_name, **{**self.options, **options})
            made.append(ex)
            return ex

        yield make
        for ex in made:
            ex.shutdown(wait=True, cancel_futures=True)

    @pytest.fixture
    def executor(self, make: Make) -> Executor:
        return make(max_workers=2)

    @staticmethod
    def needs_pending(ex: Executor) -> None:
        """Skip when the backend never has a pending task (inline runs tasks in submit)."""
        if getattr(ex, "runs_in_submit", False):
            pytest.skip(f"backend {ex.backend!r} runs each task inside submit(): none is pending")


class SubmitTests(_Suite):
    def test_submit_returns_a_standard_future(self, executor: Executor) -> None:
        future = executor.submit(add, 2, 3, c=4)
        assert isinstance(future, cf.Future)
        assert future.result(timeout=30) == 9
        assert future.done()
        assert not future.cancelled()

    def test_is_an_executor_by_both_protocols(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor, cf.Executor)
        assert executor.backend in registry.names()

    def test_many_tasks_each_get_their_own_result(self, executor: Executor) -> None:
        futures = [executor.submit(add, i, i) for i in range(200)]
        assert [f.result(timeout=60) for f in futures] == [2 * i for i in range(200)]

    def test_a_coroutine_function_runs_to_completion(self, executor: Executor) -> None:
        # (typed as the coroutine, not its result, for now: the results are Any here)
        fn: Any = async_add
        assert executor.submit(fn, 2, b=3).result(timeout=30) == 5
        assert list(executor.map(fn, range(5), range(5))) == [0, 2, 4, 6, 8]
        assert list(executor.map(fn, range(40), chunksize=7)) == list(range(40))

    def test_a_result_that_needs_cloudpickle_comes_back(self, executor: Executor) -> None:
        # The function goes by reference; only its result (a lambda) needs cloudpickle.
        adder = executor.submit(make_adder, 3).result(timeout=60)
        assert adder(4) == 7

    def test_non_callable_is_refused_with_the_fix(self, executor: Executor) -> None:
        with pytest.raises(TypeError, match=r"needs a callable.*submit\(fn, x\)"):
            executor.submit(42)  # type: ignore[call-overload]

    def test_result_timeout_raises_timeout_error(self, executor: Executor) -> None:
        self.needs_pending(executor)
        future = executor.submit(time.sleep, 1.0)
        with pytest.raises(cf.TimeoutError):
            future.result(timeout=0.05)
        assert future.result(timeout=30) is None


class ExceptionTests(_Suite):
    def test_exception_keeps_its_type_and_message(self, executor: Executor) -> None:
        future = executor.submit(failing_task, "bad input 42")
        with pytest.raises(ValueError, match="bad input 42"):
            future.result(timeout=30)
        assert isinstance(future.exception(), ValueError)

    def test_worker_traceback_reaches_the_caller(self, executor: Executor) -> None:
        exc = executor.submit(failing_task, "x").exception(timeout=30)
        assert exc is not None
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        assert "in failing_task" in text
        assert "raise ValueError(message)" in text

    def test_executor_keeps_working_after_a_task_fails(self, executor: Executor) -> None:
        assert executor.submit(failing_task, "x").exception(timeout=30) is not None
        assert executor.submit(add, 1, 1).result(timeout=30) == 2


class MapTests(_Suite):
    def test_map_keeps_input_order(self, executor: Executor) -> None:
        assert list(executor.map(add, range(50), range(50))) == [2 * i for i in range(50)]

    def test_map_with_one_argument_and_empty_input(self, executor: Executor) -> None:
        assert list(executor.map(echo, "abc")) == ["a", "b", "c"]
        assert list(executor.map(echo, [])) == []

    def test_map_submits_everything_when_called(self, executor: Executor, tmp_path: Path) -> None:
        paths = [str(tmp_path / str(i)) for i in range(10)]
        executor.map(touch, paths)
        executor.shutdown(wait=True)
        assert sorted(os.listdir(tmp_path)) == sorted(map(str, range(10)))

    def test_buffersize_reads_an_endless_input_lazily(self, executor: Executor) -> None:
        consumed = itertools.count()
        source = (next(consumed) for _ in itertools.count())
        results = executor.map(echo, source, buffersize=4, chunksize=1)
        assert list(itertools.islice(results, 50)) == list(range(50))
        results.close()  # type: ignore[attr-defined]
        assert next(consumed) <= 50 + 4 + 1

    def test_buffersize_with_ordered_false(self, executor: Executor) -> None:
        results = executor.map(add, range(30), range(30), buffersize=3, ordered=False)
        assert sorted(results) == [2 * i for i in range(30)]

    def test_ordered_false_yields_in_completion_order(
        self, executor: Executor, tmp_path: Path
    ) -> None:
        paths = [str(tmp_path / "a"), str(tmp_path / "b")]
        results = list(executor.map(touch, paths, ["slow", "fast"], [1.0, 0.0], ordered=False))
        assert sorted(results) == ["fast", "slow"]
        if not getattr(executor, "runs_in_submit", False):
            assert results == ["fast", "slow"]

    def test_chunksize_gives_the_same_results(self, executor: Executor) -> None:
        assert list(executor.map(add, range(100), range(100), chunksize=7)) == [
            2 * i for i in range(100)
        ]

    def test_timeout_stops_waiting(self, executor: Executor) -> None:
        self.needs_pending(executor)
        results = executor.map(time.sleep, [1.0, 1.0], timeout=0.1)
        with pytest.raises(cf.TimeoutError):
            list(results)

    def test_task_error_raises_and_cancels_the_rest(self, make: Make, tmp_path: Path) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        paths = [""] + [str(tmp_path / str(i)) for i in range(1, 20)]
        with pytest.raises(ValueError, match="no path"):
            list(ex.map(touch_or_fail, paths, [0.05] * 20))
        ex.shutdown(wait=True)
        assert len(os.listdir(tmp_path)) < 19

    def test_task_error_propagates_from_map(self, executor: Executor) -> None:
        with pytest.raises(ValueError, match="in map"):
            list(executor.map(failing_task, ["in map"]))

    def test_stopping_early_cancels_pending(self, make: Make, tmp_path: Path) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        paths = [str(tmp_path / str(i)) for i in range(20)]
        results = ex.map(touch, paths, [None] * 20, [0.05] * 20)
        next(results)
        results.close()  # type: ignore[attr-defined]
        ex.shutdown(wait=True)
        assert len(os.listdir(tmp_path)) < 20

    def test_stopping_a_lazy_map_reads_no_more_input(self, executor: Executor) -> None:
        seen: list[int] = []

        def source() -> Iterator[int]:
            for i in itertools.count():
                seen.append(i)
                yield i

        results = executor.map(echo, source(), buffersize=2, chunksize=1)
        assert next(results) == 0
        results.close()  # type: ignore[attr-defined]
        count = len(seen)
        time.sleep(0.05)
        assert len(seen) == count <= 4

    def test_a_big_map_gives_every_result_in_order(self, executor: Executor) -> None:
        n = 20_000
        assert list(executor.map(add, range(n), range(n))) == [2 * i for i in range(n)]
        assert sorted(executor.map(echo, iter(range(n)), ordered=False)) == list(range(n))

    def test_map_reads_unsized_inputs_and_stops_at_the_shortest(self, executor: Executor) -> None:
        numbers = (n for n in [5, 6, 7])
        assert list(executor.map(add, numbers, itertools.count())) == [5, 7, 9]

    def test_a_failing_item_raises_at_its_position(self, executor: Executor) -> None:
        seen: list[int] = []
        results = executor.map(fail_on, range(3000), itertools.repeat(2000))
        with pytest.raises(ValueError, match="item 2000 is bad") as info:
            seen.extend(results)  # keeps what came before the exception
        assert seen == list(range(2000))
        text = "".join(traceback.format_exception(info.type, info.value, info.tb))
        assert "in fail_on" in text

    def test_a_failing_item_raises_with_a_chunksize_too(self, executor: Executor) -> None:
        seen: list[int] = []
        with pytest.raises(ValueError, match="item 12 is bad"):
            seen.extend(executor.map(fail_on, range(40), [12] * 40, chunksize=5))
        assert seen == list(range(12))

    def test_chunksize_below_one_raises_value_error(self, executor: Executor) -> None:
        for bad in (0, -1):  # at the call, as concurrent.futures
            with pytest.raises(ValueError, match="chunksize"):
                executor.map(echo, [1, 2], chunksize=bad)

    def test_timeout_cancels_the_task_waited_for(self, make: Make, tmp_path: Path) -> None:
        # CPython gh-95166: the task whose result timed out is cancelled with the rest.
        ex = make(max_workers=1)
        self.needs_pending(ex)
        started = tmp_path / "started"
        blocker = ex.submit(touch_twice, str(started), str(tmp_path / "ended"), 0.5)
        wait_for_path(started)
        results = ex.map(touch, [str(tmp_path / "second"), str(tmp_path / "third")], timeout=0)
        with pytest.raises(cf.TimeoutError):
            next(results)
        results.close()  # type: ignore[attr-defined]
        assert blocker.result(timeout=30) == "finished"
        ex.shutdown(wait=True)
        assert sorted(os.listdir(tmp_path)) == ["ended", "started"]

    def test_each_result_is_dropped_once_yielded(self, executor: Executor) -> None:
        for box in executor.map(make_box, range(6)):
            ref = weakref.ref(box)
            del box
            deadline = time.monotonic() + 2.0  # the thread that set it may still be leaving
            gc.collect()  # PyPy has no reference counting: only a collection frees it
            while ref() is not None and time.monotonic() < deadline:
                time.sleep(0.01)
                gc.collect()  # returns None on PyPy, so it cannot sit in the condition
            assert ref() is None, "the map still holds a result it has yielded"

    def test_an_exception_while_consuming_cancels_the_rest(
        self, make: Make, tmp_path: Path
    ) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        paths = [str(tmp_path / str(i)) for i in range(20)]

        def consume() -> None:
            for _ in ex.map(touch, paths, [None] * 20, [0.05] * 20):
                raise KeyError("the consumer failed")

        with pytest.raises(KeyError):
            consume()
        gc.collect()  # CPython closes the dropped map at once; PyPy when it collects it
        ex.shutdown(wait=True)
        assert len(os.listdir(tmp_path)) < 20

    def test_ctrl_c_while_waiting_cancels_the_map(self, make: Make, tmp_path: Path) -> None:
        if threading.current_thread() is not threading.main_thread():
            pytest.skip("SIGINT reaches the main thread only")
        ex = make(max_workers=1)
        self.needs_pending(ex)
        paths = [str(tmp_path / str(i)) for i in range(3)]
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                list(ex.map(touch, paths, [None] * 3, [1.0] * 3))
        finally:
            timer.cancel()
        ex.shutdown(wait=True)
        assert len(os.listdir(tmp_path)) <= 1  # the first may have finished; never the rest


class ProgressTests(_Suite):
    """``map(progress=...)``: counts items (never chunks) with every option of ``map``."""

    @staticmethod
    def _counter() -> tuple[list[tuple[int, int | None]], Callable[[int, int | None], None]]:
        calls: list[tuple[int, int | None]] = []
        return calls, lambda done, total: calls.append((done, total))

    def test_progress_counts_items_not_chunks(self, executor: Executor) -> None:
        calls, count = self._counter()
        assert list(executor.map(add, range(300), range(300), progress=count)) == [
            2 * i for i in range(300)
        ]
        assert calls == [(i, 300) for i in range(1, 301)]

    def test_progress_with_chunksize_unordered_and_buffersize(self, executor: Executor) -> None:
        calls, count = self._counter()
        results = executor.map(
            echo, iter(range(40)), chunksize=7, buffersize=3, ordered=False, progress=count
        )
        assert sorted(results) == list(range(40))
        assert calls == [(i, None) for i in range(1, 41)]  # no input has a length

    def test_progress_stops_at_a_failing_item(self, executor: Executor) -> None:
        calls, count = self._counter()
        with pytest.raises(ValueError, match="item 12 is bad"):
            list(executor.map(fail_on, range(40), [12] * 40, chunksize=5, progress=count))
        assert calls == [(i, 40) for i in range(1, 13)]

    def test_progress_with_a_timeout(self, executor: Executor) -> None:
        self.needs_pending(executor)
        calls, count = self._counter()
        results = executor.map(time.sleep, [0, 0, 2.0], timeout=1.0, chunksize=1, progress=count)
        with pytest.raises(cf.TimeoutError):
            list(results)
        assert calls == [(i, 3) for i in range(1, len(calls) + 1)]
        assert len(calls) < 3

    def test_progress_true_prints_nothing_off_a_terminal(
        self, executor: Executor, capfd: pytest.CaptureFixture[str]
    ) -> None:
        assert list(executor.map(echo, range(20), progress=True)) == list(range(20))
        assert "20/20" not in capfd.readouterr().err

    def test_a_bad_progress_value_raises_at_the_call(self, executor: Executor) -> None:
        with pytest.raises(TypeError, match=r"progress must be True, False or a callable"):
            executor.map(echo, [1], progress="yes")  # type: ignore[arg-type]


class CancelTests(_Suite):
    def test_cancel_a_pending_task(self, make: Make, tmp_path: Path) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        blocker = ex.submit(touch, str(tmp_path / "blocker"), None, 0.5)
        pending = ex.submit(touch, str(tmp_path / "pending"))
        assert pending.cancel()
        assert pending.cancelled()
        with pytest.raises(cf.CancelledError):
            pending.result()
        blocker.result(timeout=30)
        ex.shutdown(wait=True)
        assert os.listdir(tmp_path) == ["blocker"]

    def test_wait_and_as_completed_see_cancelled_tasks_at_once(
        self, make: Make, tmp_path: Path
    ) -> None:
        # Not only once a worker would have dequeued them: nothing will (they hung for ever).
        ex = make(max_workers=1)
        self.needs_pending(ex)
        blocker = ex.submit(touch, str(tmp_path / "blocker"), None, 3.0)
        pending = [ex.submit(touch, str(tmp_path / f"p{i}")) for i in range(2)]
        assert all(f.cancel() for f in pending)
        not_done = cf.wait(pending, timeout=1.5).not_done
        assert not not_done
        assert not blocker.done()
        assert set(cf.as_completed(pending, timeout=1.5)) == set(pending)
        blocker.result(timeout=30)

    def test_cancel_a_finished_task_returns_false(self, executor: Executor) -> None:
        future = executor.submit(echo, 1)
        assert future.result(timeout=30) == 1
        assert not future.cancel()


class ShutdownTests(_Suite):
    def test_submit_after_shutdown_raises_runtime_error(self, make: Make) -> None:
        ex = make(max_workers=2)
        ex.shutdown()
        with pytest.raises(RuntimeError):
            ex.submit(echo, 1)
        ex.shutdown()  # a second shutdown is harmless

    def test_context_manager_waits_for_tasks(self, make: Make, tmp_path: Path) -> None:
        with make(max_workers=2) as ex:
            futures = [ex.submit(touch, str(tmp_path / str(i)), i, 0.1) for i in range(4)]
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == [0, 1, 2, 3]

    def test_shutdown_cancel_futures(self, make: Make, tmp_path: Path) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        running = ex.submit(touch, str(tmp_path / "running"), None, 0.5)
        queued = [ex.submit(touch, str(tmp_path / f"q{i}")) for i in range(5)]
        time.sleep(0.1)
        ex.shutdown(wait=True, cancel_futures=True)
        assert running.done()
        assert all(f.cancelled() for f in queued)
        assert "q0" not in os.listdir(tmp_path)

    def test_cancel_futures_lets_running_tasks_finish(self, make: Make, tmp_path: Path) -> None:
        # concurrent.futures: cancel_futures cancels what has not started; what runs, ends.
        ex = make(max_workers=1)
        self.needs_pending(ex)
        started, ended = tmp_path / "started", tmp_path / "ended"
        running = ex.submit(touch_twice, str(started), str(ended), 0.5)
        queued = [ex.submit(touch, str(tmp_path / f"q{i}")) for i in range(5)]
        wait_for_path(started)
        ex.shutdown(wait=True, cancel_futures=True)
        assert running.result(timeout=30) == "finished"
        assert ended.exists()
        assert all(f.cancelled() for f in queued)

    def test_shutdown_without_wait_returns_at_once(self, make: Make) -> None:
        ex = make(max_workers=1)
        self.needs_pending(ex)
        future = ex.submit(time.sleep, 0.5)
        start = time.monotonic()
        ex.shutdown(wait=False)
        assert time.monotonic() - start < 0.45
        future.result(timeout=30)


class InteropTests(_Suite):
    def test_as_completed_and_wait(self, executor: Executor) -> None:
        futures = [executor.submit(add, i, 1) for i in range(10)]
        assert sorted(f.result() for f in cf.as_completed(futures, timeout=30)) == list(
            range(1, 11)
        )
        done, not_done = cf.wait(futures, timeout=30)
        assert len(done) == 10
        assert not not_done

    def test_asyncio_wrap_future_and_run_in_executor(self, executor: Executor) -> None:
        async def main() -> tuple[int, int]:
            loop = asyncio.get_running_loop()
            a = await asyncio.wrap_future(executor.submit(add, 1, 2))
            b = await loop.run_in_executor(executor, add, 3, 4)  # type: ignore[arg-type]
            return a, b

        assert asyncio.run(main()) == (3, 7)


class ContextTests(_Suite):
    def test_bound_values_reach_the_task(self, executor: Executor) -> None:
        with context.bind(user="alice", request_id=7):
            future = executor.submit(read_context, "user")
            rid = executor.submit(read_context, "request_id")
        assert future.result(timeout=30) == "alice"
        assert rid.result(timeout=30) == 7

    def test_each_task_sees_only_its_own_values(self, make: Make) -> None:
        ex = make(max_workers=1)
        futures = []
        for user in ["alice", "bob", None, "carol"]:
            if user is None:
                futures.append(ex.submit(read_context, "user"))
            else:
                with context.bind(user=user):
                    futures.append(ex.submit(read_context, "user"))
        assert [f.result(timeout=30) for f in futures] == ["alice", "bob", None, "carol"]

    def test_values_are_captured_at_submit(self, executor: Executor) -> None:
        with context.bind(user="alice"):
            future = executor.submit(read_context, "user")
            with context.bind(user="bob"):
                inner = executor.submit(read_context, "user")
        assert (future.result(timeout=30), inner.result(timeout=30)) == ("alice", "bob")
        assert context.get("user") is None


class InitializerTests(_Suite):
    def test_initializer_fills_per_worker_state(self, make: Make) -> None:
        ex = make(max_workers=2, initializer=set_worker_value, initargs=("db-connection",))
        results = [ex.submit(read_worker_value) for _ in range(10)]
        assert [f.result(timeout=30) for f in results] == ["db-connection"] * 10

    def test_failing_initializer_breaks_with_a_clear_error(self, make: Make) -> None:
        ex = make(max_workers=1, initializer=failing_initializer)
        with pytest.raises(cf.BrokenExecutor):
            ex.submit(echo, 1).result(timeout=30)


class LargeDataTests(_Suite):
    def test_50_mb_argument_and_result_arrive_intact(self, executor: Executor) -> None:
        data = os.urandom(1 << 20) * 50
        result = executor.submit(reverse_bytes, data).result(timeout=60)
        assert len(result) == len(data)
        assert result == data[::-1]


class OptionTests(_Suite):
    def test_bad_max_workers_names_the_problem(self, backend_name: str) -> None:
        for bad in (0, -1):
            with pytest.raises(InvalidOption, match="max_workers must be greater than 0"):
                registry.get_executor(backend_name, **{**self.options, "max_workers": bad})

    def test_unknown_option_lists_valid_ones(self, backend_name: str) -> None:
        with pytest.raises(InvalidOption, match="did you mean 'max_workers'"):
            registry.get_executor(backend_name, **{**self.options, "max_worker": 2})

    def test_spec_options_are_applied(self, backend_name: str) -> None:
        joiner = "&" if "?" in backend_name else "?"
        ex = registry.get_executor(f"{backend_name}{joiner}max_workers=3", **self.options)
        try:
            assert ex.backend == backend_name.partition("?")[0]
            assert getattr(ex, "max_workers", 3) == 3
        finally:
            ex.shutdown()


class SharedObjectTests(_Suite):
    """``ex.Queue()``, ``ex.Lock()``, ... work in the executor's own tasks."""

    @staticmethod
    def needs_sharing(ex: Executor) -> None:
        if getattr(ex, "sharing", "manager") == "none":
            with pytest.raises(NotImplementedError, match="cannot hand out shared objects"):
                ex.Queue()  # type: ignore[attr-defined]
            pytest.skip(f"backend {ex.backend!r} hands out no shared objects (a clear error)")

    def test_producer_and_consumer_share_a_queue(self, executor: Any) -> None:
        self.needs_sharing(executor)
        q = executor.Queue()
        producer = executor.submit(produce, q, list(range(20)))
        consumer = executor.submit(consume, q)
        assert producer.result(timeout=60) is None
        assert consumer.result(timeout=60) == list(range(20))

    def test_joinable_queue_join_waits_for_task_done(self, executor: Any) -> None:
        self.needs_sharing(executor)
        q = executor.JoinableQueue()
        for i in range(10):
            q.put(i)
        worker = executor.submit(drain_joinable, q, 10)
        q.join()
        assert worker.result(timeout=60) == 45

    def test_full_and_empty_as_the_standard_library(self, executor: Any) -> None:
        import queue

        self.needs_sharing(executor)
        q = executor.Queue(maxsize=1)
        q.put("a")
        assert q.full()
        with pytest.raises(queue.Full):
            q.put("b", timeout=0.05)
        with pytest.raises(queue.Full):
            q.put_nowait("b")
        assert q.get(block=False) == "a"
        with pytest.raises(queue.Empty):
            q.get(timeout=0.05)
        with pytest.raises(queue.Empty):
            q.get_nowait()
        assert q.empty()
        assert q.qsize() == 0

    def test_lock_keeps_a_shared_dict_consistent(self, executor: Any) -> None:
        self.needs_sharing(executor)
        d = executor.dict(balance=0)
        lock = executor.Lock()
        futures = [executor.submit(add_under_lock, d, lock, "balance", 50) for _ in range(4)]
        for f in futures:
            f.result(timeout=60)
        assert d["balance"] == 200
        assert dict(d.items()) == {"balance": 200}
        assert lock.acquire(timeout=1)
        assert not lock.acquire(blocking=False)
        lock.release()

    def test_event_set_in_a_task_is_seen_by_the_caller(self, executor: Any) -> None:
        self.needs_sharing(executor)
        event = executor.Event()
        assert not event.is_set()
        assert executor.submit(set_event, event).result(timeout=60) is True
        assert event.wait(5)
        assert executor.submit(wait_event, event).result(timeout=60) is True

    def test_shared_objects_end_with_the_executor(self, make: Make) -> None:
        ex: Any = make(max_workers=1)
        self.needs_sharing(ex)
        q = ex.Queue()
        q.put(1)
        ex.shutdown(wait=True)
        with pytest.raises(RuntimeError, match="after shutdown"):
            ex.Lock() if ex.sharing == "manager" else pytest.skip("in-process objects")


class CommonOptionTests(_Suite):
    """The options every backend takes, so that a program runs on any of them unchanged."""

    def test_the_common_vocabulary_is_accepted_everywhere(self, make: Make) -> None:
        ex = make(
            max_workers=2,
            initializer=set_worker_value,
            initargs=("ready",),
            task_timeout=30,
            serializer="pickle",
            max_tasks_per_child=None,
        )
        assert ex.submit(read_worker_value).result(timeout=60) == "ready"
        assert getattr(ex, "task_timeout", None) == 30

    def test_task_timeout_fails_the_future_at_the_deadline(self, make: Make) -> None:
        ex = make(max_workers=2, task_timeout=0.5)
        start = time.monotonic()
        future = ex.submit(time.sleep, 4.0)
        with pytest.raises(TaskTimeout):
            future.result(timeout=30)
        if not getattr(ex, "runs_in_submit", False):  # inline can only tell once it returns
            assert time.monotonic() - start < 3.5  # before the task itself would end
        # still usable (a builtin: a fresh worker loads it at once, well within the limit)
        assert ex.submit(abs, -7).result(timeout=30) == 7

    def test_with_timeout_gives_one_task_its_own_deadline(self, make: Make, tmp_path: Path) -> None:
        ex = make(max_workers=2)
        late = tmp_path / "late"
        start = time.monotonic()
        future = ex.submit(with_timeout(0.5)(touch), str(late), "ran", 4.0)
        untimed = ex.submit(touch, str(tmp_path / "untimed"), "ran", 1.0)
        with pytest.raises(TaskTimeout, match=r"touch.* ran longer than task_timeout=0\.5"):
            future.result(timeout=30)
        if not getattr(ex, "runs_in_submit", False):  # inline can only tell once it returns
            assert time.monotonic() - start < 3.5  # before the task itself would end
        assert untimed.result(timeout=30) == "ran"  # no deadline: the executor has none
        if getattr(ex, "stops_tasks", False):  # its worker was killed: the task never ends
            time.sleep(max(0.0, 4.0 - (time.monotonic() - start)) + 0.5)  # slow start: past
            assert not late.exists()
        assert ex.submit(abs, -7).result(timeout=30) == 7  # still usable

    def test_with_timeout_replaces_task_timeout(self, make: Make) -> None:
        ex = make(max_workers=2, task_timeout=0.3)
        assert ex.submit(with_timeout(30)(time.sleep), 1.0).result(timeout=30) is None
        with pytest.raises(TaskTimeout):
            ex.submit(time.sleep, 2.0).result(timeout=30)

    def test_with_timeout_in_map_applies_to_each_item(self, make: Make) -> None:
        ex = make(max_workers=2)
        results = ex.map(with_timeout(0.5)(time.sleep), [0.0, 2.0])
        assert next(results) is None
        with pytest.raises(TaskTimeout):
            next(results)

    def test_with_timeout_on_a_coroutine_function(self, make: Make) -> None:
        ex = make(max_workers=2)
        # (typed as the coroutine, not its result, for now: the results are Any here)
        short: Any = with_timeout(0.3)(async_sleep)
        long: Any = with_timeout(5)(async_sleep)
        with pytest.raises(TaskTimeout):
            ex.submit(short, 2.0).result(timeout=30)
        assert ex.submit(long, 0.01).result(timeout=30) == "slept"

    def test_with_timeout_checks_its_seconds(self) -> None:
        for bad in (0, -1, None, "5", True):
            with pytest.raises(InvalidOption, match=r"with_timeout\(\) needs a positive number"):
                with_timeout(bad)  # type: ignore[arg-type]

    def test_a_bad_serializer_names_the_choices(self, backend_name: str) -> None:
        with pytest.raises(InvalidOption, match="serializer"):
            registry.get_executor(backend_name, **{**self.options, "serializer": "json"})


class ExecutorConformance(
    SubmitTests,
    ExceptionTests,
    MapTests,
    ProgressTests,
    CancelTests,
    CommonOptionTests,
    ShutdownTests,
    InteropTests,
    ContextTests,
    InitializerTests,
    LargeDataTests,
    OptionTests,
    SharedObjectTests,
):
    """Every conformance test, for one backend named by the ``backend`` attribute."""

    backend: ClassVar[str] = ""

    @pytest.fixture
    def backend_name(self) -> str:
        if not self.backend:
            pytest.fail("set the class attribute 'backend' to the registered backend name")
        reason = registry.unavailable_reason(self.backend)
        if reason is not None:
            pytest.skip(reason)
        return self.backend
