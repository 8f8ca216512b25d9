"""The futures backends make in bulk behave as concurrent.futures.Future does."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from executors._futures import LazyFuture, LeanFuture


@pytest.fixture(params=[LeanFuture, LazyFuture])
def make(request: pytest.FixtureRequest) -> type[LeanFuture[int]]:
    return request.param  # type: ignore[no-any-return]


def _finish_later(future: LeanFuture[int], value: int) -> threading.Timer:
    timer = threading.Timer(0.05, future._finish, (value,))
    timer.start()
    return timer


def test_wait_and_result_see_a_later_finish(make: type[LeanFuture[int]]) -> None:
    future = make()
    assert future._set_running() and future.running()
    timer = _finish_later(future, 5)
    done, _ = cf.wait([future], timeout=5)
    timer.join()
    assert future in done
    assert future.result() == 5


def test_result_blocks_until_finished(make: type[LeanFuture[int]]) -> None:
    future = make()
    future._set_running()
    timer = _finish_later(future, 7)
    assert future.result(timeout=5) == 7
    timer.join()


def test_callbacks_as_completed_and_exceptions(make: type[LeanFuture[int]]) -> None:
    seen: list[int] = []
    future = make()
    future.add_done_callback(lambda f: seen.append(f.result()))
    future._set_running()
    future._finish(1)
    assert seen == [1]
    futures = [make() for _ in range(3)]
    for i, f in enumerate(futures):
        f._set_running()
        f._finish(i)
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=5)) == [0, 1, 2]
    failed = make()
    failed._set_running()
    failed.set_exception(ValueError("x"))
    assert isinstance(failed.exception(), ValueError)


def test_a_cancelled_future_does_not_start_or_finish(make: type[LeanFuture[int]]) -> None:
    future = make()
    assert future.cancel()
    assert not future._set_running()
    future._finish(3)  # too late: ignored
    assert future.cancelled()
    running = make()
    running._set_running()
    assert not running.cancel()


def test_a_lazy_future_makes_its_condition_and_lists_only_when_needed() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future._set_running()
    future._finish(4)
    assert future.result() == 4 and future.done()
    assert future._cond is None  # start to result without a lock or list of its own
    assert "_waiting" not in vars(future) and "_callbacks" not in vars(future)
    seen: list[cf.Future[int]] = []
    future.add_done_callback(seen.append)  # done: called at once
    assert seen == [future]
    assert future._cond is not None
    assert future._waiters == [] and future._done_callbacks == []
    waiting: LazyFuture[int] = LazyFuture()
    assert waiting._waiters == [] and waiting._cond is not None  # reading one makes them
