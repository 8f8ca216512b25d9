"""The asyncio backend beyond the conformance matrix: coroutines, the cap, cancellation,
clean shutdown, and use from inside a running event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import gc
import logging
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import pytest

from executors import BackendUnavailable, InvalidOption, TaskTimeout, context, get_executor
from executors._aio.loop import _cancel_all_tasks
from executors.awaitable import _is_async
from executors.backends.aio import AsyncioExecutor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture
def made() -> Iterator[list[AsyncioExecutor]]:
    executors: list[AsyncioExecutor] = []
    yield executors
    for ex in executors:
        # cancel_futures lets running coroutines finish: a test's leftovers are cancelled
        # here instead (a failed test must not hold the run for its 30 s naps).
        ex.shutdown(wait=False, cancel_futures=True)
        ex._runner.call(_cancel_all_tasks, ex.loop)
        ex.shutdown(wait=True)


@pytest.fixture
def make(made: list[AsyncioExecutor]) -> Any:
    def make(**options: Any) -> AsyncioExecutor:
        ex = get_executor("asyncio", **options)
        assert isinstance(ex, AsyncioExecutor)
        made.append(ex)
        return ex

    return make


async def where() -> tuple[str, bool]:
    return threading.current_thread().name, asyncio.current_task() is not None


def plain_where() -> str:
    return threading.current_thread().name


async def nap(seconds: float, value: Any = None) -> Any:
    await asyncio.sleep(seconds)
    return value


async def failing_coroutine(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


# -- coroutines and plain functions ----------------------------------------------------


def test_coroutine_function_runs_as_a_task_on_the_loop_thread(make: Any) -> None:
    ex = make()
    assert ex.submit(where).result(timeout=10) == ("executors-asyncio-loop", True)


def test_plain_function_runs_on_a_worker_thread_and_does_not_block_the_loop(make: Any) -> None:
    ex = make()
    assert ex.submit(plain_where).result(timeout=10).startswith("executors-asyncio_")
    release = threading.Event()
    blocking = ex.submit(release.wait, 30)  # a worker thread blocks until released
    assert ex.submit(nap, 0.01, "fast").result(timeout=10) == "fast"  # the loop runs on
    assert not blocking.done()
    release.set()
    assert blocking.result(timeout=10) is True


def test_async_callables_are_recognised() -> None:
    class Handler:
        async def __call__(self) -> int:
            return 1

    assert _is_async(nap)
    assert _is_async(functools.partial(nap, 0.1))
    assert _is_async(Handler())
    assert not _is_async(time.sleep)
    assert not _is_async(plain_where)


def test_map_takes_a_coroutine_function(make: Any) -> None:
    ex = make(max_workers=2)
    assert list(ex.map(nap, [0.02, 0.01, 0.0], "abc")) == ["a", "b", "c"]


def test_coroutine_exception_keeps_type_and_traceback(make: Any) -> None:
    exc = make().submit(failing_coroutine, "bad 42").exception(timeout=10)
    assert isinstance(exc, ValueError)
    assert str(exc) == "bad 42"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert "in failing_coroutine" in text


def test_base_exception_in_a_coroutine_does_not_kill_the_loop(make: Any) -> None:
    async def interrupted() -> None:
        raise KeyboardInterrupt

    ex = make()
    assert isinstance(ex.submit(interrupted).exception(timeout=10), KeyboardInterrupt)
    assert ex.submit(nap, 0, 5).result(timeout=10) == 5


def test_context_and_worker_state_reach_coroutines(make: Any) -> None:
    async def read() -> tuple[Any, Any]:
        return context.get("user"), getattr(context.worker, "db", None)

    def init(value: str) -> None:
        context.worker.db = value

    ex = make(initializer=init, initargs=("conn",))
    with context.bind(user="alice"):
        future = ex.submit(read)
    assert future.result(timeout=10) == ("alice", "conn")


def test_many_threads_submitting_at_once_lose_nothing(make: Any) -> None:
    ex = make()

    async def double(x: int) -> int:
        return 2 * x

    def producer(base: int) -> list[int]:
        futures = [ex.submit(double, base + i) for i in range(2500)]
        return [f.result(timeout=30) for f in futures]

    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(producer, [0, 10_000, 20_000, 30_000]))
    for base, got in zip([0, 10_000, 20_000, 30_000], results):
        assert got == [2 * (base + i) for i in range(2500)]


# -- the first step runs at once (3.12's eager tasks; done by hand on 3.11) ------------

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


def _first_step_at_once(ex: AsyncioExecutor) -> bool:
    return ex._runner.eager or ex._runner.step_first


def test_stdlib_loops_run_the_first_step_at_once(make: Any) -> None:
    # So the tests below exercise that path (3.11+ with the stdlib loop).
    ex = make()
    assert _first_step_at_once(ex) is (sys.version_info >= (3, 11))
    assert ex.submit(nap, 0, 1).result(timeout=10) == 1
    assert "call_soon" not in vars(ex.loop)  # the loop's own method is back


def test_a_call_soon_of_the_users_own_on_the_loop_stays(make: Any) -> None:
    # 3.11's first step borrows the loop's call_soon attribute; one already there (a
    # tracer's, say) is left in place and sees the task's first step.
    ex = make()
    loop: Any = ex.loop
    seen: list[Any] = []

    def counting(callback: Any, *args: Any, context: Any = None) -> Any:
        seen.append(callback)
        return type(loop).call_soon(loop, callback, *args, context=context)

    loop.call_soon = counting
    futures = [ex.submit(nap, 0, i) for i in range(5)]
    assert [f.result(timeout=10) for f in futures] == list(range(5))
    assert vars(loop)["call_soon"] is counting
    assert seen


def test_a_coroutine_that_never_waits_sees_its_context_and_its_task(make: Any) -> None:
    ex = make()

    async def at_once() -> tuple[str, bool, bool]:
        task = asyncio.current_task()
        seen = _var.get()
        _var.set("changed inside")  # the task's own copy: the submitter keeps its value
        return seen, isinstance(task, asyncio.Task), task is not None and not task.done()

    token = _var.set("submitter's")
    try:
        futures = [ex.submit(at_once) for _ in range(200)]
        assert [f.result(timeout=10) for f in futures] == [("submitter's", True, True)] * 200
        assert _var.get() == "submitter's"
    finally:
        _var.reset(token)
    assert ex.submit(at_once).result(timeout=10)[0] == "unset"


def test_a_coroutine_keeps_its_task_and_context_across_a_wait(make: Any) -> None:
    ex = make()

    async def waits() -> tuple[bool, str]:
        before = asyncio.current_task()
        _var.set("mine")
        await asyncio.sleep(0.01)
        inner = asyncio.create_task(nap(0, "child"))  # the loop's call_soon works here
        assert await inner == "child"
        return asyncio.current_task() is before, _var.get()

    assert [f.result(timeout=10) for f in [ex.submit(waits) for _ in range(50)]] == [
        (True, "mine")
    ] * 50


def test_a_coroutine_raising_before_its_first_await_fails_its_future(make: Any) -> None:
    ex = make()

    async def raises_at_once(message: str) -> None:
        raise LookupError(message)

    futures = [ex.submit(raises_at_once, f"no {i}") for i in range(20)]
    errors = [f.exception(timeout=10) for f in futures]
    assert all(type(e) is LookupError for e in errors)
    assert [str(e) for e in errors] == [f"no {i}" for i in range(20)]
    assert ex.submit(nap, 0, "alive").result(timeout=10) == "alive"


def test_a_coroutine_cancelling_itself_in_its_first_step_ends_cancelled(make: Any) -> None:
    ex = make()

    async def self_cancel() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # the cancellation lands here

    future = ex.submit(self_cancel)
    cf.wait([future], timeout=10)
    assert future.cancelled()


def test_cancel_before_start_means_it_never_runs(make: Any) -> None:
    ex = make()
    ran: list[int] = []
    gate = threading.Event()

    async def record(i: int) -> int:
        ran.append(i)
        return i

    ex._runner.call(gate.wait, 10)  # hold the loop: what follows waits in the queue
    futures = [ex.submit(record, i) for i in range(10)]
    assert all(f.cancel() for f in futures[::2])
    gate.set()
    assert [f.result(timeout=10) for f in futures[1::2]] == [1, 3, 5, 7, 9]
    assert ran == [1, 3, 5, 7, 9]
    assert all(f.cancelled() for f in futures[::2])


def test_a_coroutine_submitting_to_its_own_executor(make: Any) -> None:
    # The inner submit lands in the queue the loop is draining right now.
    ex = make()

    async def outer(n: int) -> list[int]:
        inner = [ex.submit(at_once_double, i) for i in range(n)]
        return [await asyncio.wrap_future(f) for f in inner]

    assert ex.submit(outer, 30).result(timeout=10) == [2 * i for i in range(30)]


async def at_once_double(i: int) -> int:
    return 2 * i


def test_a_task_timeout_still_cancels_a_coroutine_started_at_once(make: Any) -> None:
    ex = make(task_timeout=0.2)
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TaskTimeout):
        ex.submit(stuck).result(timeout=10)
    assert cancelled.wait(10)


# -- the cap: gevent's Pool(2) ------------------------------------------------------


def test_max_workers_caps_concurrency_and_keeps_submission_order(make: Any) -> None:
    ex = make(max_workers=2)
    started: list[int] = []
    running = [0]
    peak = [0]

    async def job(i: int) -> int:
        started.append(i)
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.02)
        running[0] -= 1
        return i

    assert [f.result(timeout=10) for f in [ex.submit(job, i) for i in range(8)]] == list(range(8))
    assert peak[0] == 2
    assert started == list(range(8))


def test_a_cap_with_coroutines_that_never_wait(make: Any) -> None:
    # On 3.12+ such a coroutine finishes inside start(): the next must still start.
    ex = make(max_workers=2)

    async def at_once(i: int) -> int:
        return i

    futures = [ex.submit(at_once, i) for i in range(500)]
    assert [f.result(timeout=10) for f in futures] == list(range(500))
    ex.shutdown(wait=True)
    assert ex.loop.is_closed()


def test_the_cap_also_counts_plain_functions(make: Any) -> None:
    ex = make(max_workers=1)
    slow = ex.submit(time.sleep, 0.3)
    queued = ex.submit(nap, 0, "after")
    time.sleep(0.1)
    assert not queued.done()
    assert queued.result(timeout=10) == "after"
    assert slow.done()


def test_no_cap_starts_every_coroutine_at_once(make: Any) -> None:
    ex = make()
    start = time.monotonic()
    futures = [ex.submit(nap, 0.3, i) for i in range(2000)]
    assert [f.result(timeout=30) for f in futures] == list(range(2000))
    # Serially this takes 600 s; concurrently well under a second on a quiet machine.
    assert time.monotonic() - start < 30.0


def test_a_cap_runs_in_waves(make: Any) -> None:
    ex = make(max_workers=50)
    start = time.monotonic()
    futures = [ex.submit(nap, 0.1) for _ in range(200)]
    cf.wait(futures, timeout=30)
    assert time.monotonic() - start >= 0.4  # 4 waves of 0.1 s


# -- cancellation --------------------------------------------------------------------


def test_cancel_a_running_coroutine_cancels_its_task(make: Any) -> None:
    ex = make(max_workers=1)
    entered = threading.Event()
    saw_cancel = threading.Event()

    async def long_job() -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    running = ex.submit(long_job)
    queued = ex.submit(nap, 0, "next")
    assert entered.wait(10)
    assert running.running()
    with cf.ThreadPoolExecutor(1) as waiter:  # a waiter blocked in wait() must wake up
        waiting = waiter.submit(cf.wait, [running], 30)
        time.sleep(0.05)
        assert running.cancel() is True
        done, _ = waiting.result(timeout=10)
    assert done == {running}
    assert running.cancelled()
    with pytest.raises(cf.CancelledError):
        running.result(timeout=1)
    assert saw_cancel.wait(10)
    assert queued.result(timeout=10) == "next"  # the slot was freed


def test_cancel_a_pending_coroutine_means_it_never_runs(make: Any) -> None:
    ex = make(max_workers=1)
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)
        await asyncio.sleep(0.2)

    first = ex.submit(record, "first")
    second = ex.submit(record, "second")
    assert second.cancel()
    first.result(timeout=10)
    ex.shutdown()
    assert ran == ["first"]


def test_cancel_a_running_plain_function_is_refused(make: Any) -> None:
    ex = make()
    entered = threading.Event()

    def blocking() -> str:
        entered.set()
        time.sleep(0.2)
        return "done"

    future = ex.submit(blocking)
    assert entered.wait(10)
    assert future.cancel() is False
    assert future.result(timeout=10) == "done"


def test_a_coroutine_that_swallows_cancel_stays_cancelled(make: Any) -> None:
    ex = make(max_workers=1)
    entered = threading.Event()

    async def stubborn() -> str:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        return "ignored"

    future = ex.submit(stubborn)
    assert entered.wait(10)
    assert future.cancel()
    assert ex.submit(nap, 0, "still works").result(timeout=10) == "still works"
    assert future.cancelled()


def test_a_coroutine_raising_cancelled_error_ends_cancelled(make: Any) -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    future = make().submit(gives_up)
    cf.wait([future], timeout=10)
    assert future.cancelled()


def test_cancel_a_coroutine_that_just_started_frees_its_slot(make: Any) -> None:
    # Its task exists but has not run a step yet; the executor must still count it
    # as finished, or shutdown would wait for it forever.
    ex = make(max_workers=2)

    async def parent() -> bool:
        child = ex.submit(nap, 30)
        await asyncio.sleep(0)  # the loop starts the child: running, first step queued
        return child.running() and child.cancel()

    assert ex.submit(parent).result(timeout=10) is True
    ex.shutdown(wait=False)
    ex._runner.thread.join(timeout=10)
    assert ex.loop.is_closed()


# -- shutdown ------------------------------------------------------------------------


def test_shutdown_waits_for_running_coroutines(make: Any) -> None:
    ex = make()
    future = ex.submit(nap, 0.2, "finished")
    ex.shutdown(wait=True)
    assert future.result(timeout=0) == "finished"
    assert ex.loop.is_closed()


def test_shutdown_cancel_futures_lets_running_coroutines_finish(make: Any) -> None:
    # concurrent.futures: cancel_futures cancels what has not started; what runs, ends.
    ex = make(max_workers=1)
    running = ex.submit(nap, 0.3, "finished")
    pending = [ex.submit(nap, 30) for _ in range(3)]
    deadline = time.monotonic() + 10
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) == "finished"
    assert all(f.cancelled() for f in pending)
    assert ex.loop.is_closed()


def test_cancel_stops_a_running_coroutine_after_shutdown(make: Any) -> None:
    # Stopping running work is an explicit act: cancel() on its future.
    ex = make(max_workers=1)
    running = ex.submit(nap, 30)
    deadline = time.monotonic() + 10
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    ex.shutdown(wait=False, cancel_futures=True)
    assert running.cancel()
    start = time.monotonic()
    ex.shutdown(wait=True)
    assert time.monotonic() - start < 5
    assert running.cancelled()


def test_shutdown_leaves_nothing_pending_or_unclosed(
    made: list[AsyncioExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    # asyncio logs "Task was destroyed but it is pending!" and unclosed resources at
    # ERROR; warnings (ResourceWarning, never-awaited coroutines) are errors in this suite.
    cleaned: list[str] = []

    async def ticker() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
                await asyncio.sleep(0.01)
        finally:
            cleaned.append("async generator")

    async def background() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("stray task")

    async def leaves_a_mess() -> int:
        asyncio.ensure_future(background())  # noqa: RUF006 - spawned, never awaited
        gen = ticker()
        first = await gen.__anext__()  # left open
        _reader, writer = await asyncio.open_connection(*server_address)
        writer.close()
        await writer.wait_closed()
        return first

    async def serve() -> Any:
        return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)

    caplog.set_level(logging.DEBUG, logger="asyncio")
    ex = get_executor("asyncio")
    made.append(ex)  # type: ignore[arg-type]
    server = ex.submit(serve).result(timeout=10)
    server_address = server.sockets[0].getsockname()[:2]
    assert ex.submit(leaves_a_mess).result(timeout=10) == 0

    async def close_server() -> None:
        server.close()
        await server.wait_closed()

    ex.submit(close_server).result(timeout=10)
    ex.shutdown(wait=True)
    gc.collect()
    assert sorted(cleaned) == ["async generator", "stray task"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []


def test_shutdown_without_wait_then_with_wait(make: Any) -> None:
    ex = make()
    future = ex.submit(nap, 2.0, "x")
    ex.shutdown(wait=False)
    assert not future.done()  # it did not wait for the task
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(nap, 0)
    ex.shutdown(wait=True)
    assert future.result(timeout=0) == "x"


def test_an_executor_dropped_without_shutdown_stops_its_loop() -> None:
    ex = get_executor("asyncio")
    assert ex.submit(nap, 0, 1).result(timeout=10) == 1
    thread = ex._runner.thread  # type: ignore[attr-defined]
    del ex
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


# -- inside a running event loop -------------------------------------------------------


def test_blocking_result_from_another_loop_does_not_deadlock(make: Any) -> None:
    ex = make()

    async def handler() -> list[Any]:
        loop = asyncio.get_running_loop()
        blocking = ex.submit(nap, 0.01, "sync").result(timeout=10)  # stalls this loop only
        awaited = await asyncio.wrap_future(ex.submit(nap, 0.01, "awaited"))
        in_executor = await loop.run_in_executor(ex, plain_where)
        return [blocking, awaited, in_executor.startswith("executors-asyncio_")]

    assert asyncio.run(handler()) == ["sync", "awaited", True]


def test_result_inside_its_own_loop_raises_instead_of_deadlocking(make: Any) -> None:
    ex = make()

    async def waits_for_sibling() -> Any:
        return ex.submit(nap, 0.01, 1).result()

    with pytest.raises(RuntimeError, match=r"await asyncio\.wrap_future\(future\)"):
        ex.submit(waits_for_sibling).result(timeout=10)


def test_await_a_sibling_inside_its_own_loop(make: Any) -> None:
    ex = make(max_workers=2)

    async def parent() -> Any:
        return await asyncio.wrap_future(ex.submit(nap, 0.01, "child"))

    assert ex.submit(parent).result(timeout=10) == "child"


def test_shutdown_from_inside_a_task_does_not_deadlock(make: Any) -> None:
    ex = make()

    async def stop_it() -> str:
        ex.shutdown(wait=True)  # cannot wait for itself: returns at once
        return "stopped"

    assert ex.submit(stop_it).result(timeout=10) == "stopped"
    ex.shutdown(wait=True)
    assert ex.loop.is_closed()


# -- options and errors ----------------------------------------------------------------


def test_coroutine_object_is_refused_with_the_fix(make: Any) -> None:
    with pytest.raises(TypeError, match=r"coroutine object.*submit\(fetch, url\)"):
        make().submit(nap(1))  # closed by submit: no "never awaited" warning


def test_max_workers_none_means_no_cap(make: Any) -> None:
    ex = make()
    assert ex.max_workers is None
    assert AsyncioExecutor.default_max_workers() is None
    assert "max_workers=None" in repr(ex)


def test_unknown_loop_names_the_choices() -> None:
    with pytest.raises(InvalidOption, match=r"loop must be 'asyncio', 'uvloop'.*got 'tokio'"):
        get_executor("asyncio", loop="tokio")


def test_missing_uvloop_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'pluggable-executors\[uvloop\]'"):
        get_executor("asyncio?loop=uvloop")


def test_a_loop_factory_is_used(make: Any) -> None:
    class MyLoop(asyncio.SelectorEventLoop):
        pass

    ex = make(loop=MyLoop)
    assert isinstance(ex.loop, MyLoop)
    assert ex.submit(nap, 0, "ok").result(timeout=10) == "ok"


def test_uvloop_when_installed(make: Any) -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed here (no wheel)")
    ex = make(loop="uvloop", max_workers=2)
    assert isinstance(ex.loop, uvloop.Loop)
    with context.bind(user="bob"):
        future = ex.submit(_read_user)
    assert future.result(timeout=10) == "bob"
    assert list(ex.map(nap, [0.01] * 4, range(4))) == [0, 1, 2, 3]


async def _read_user() -> Any:
    return context.get("user")


def test_failing_initializer_breaks_the_executor_clearly(make: Any) -> None:
    def init() -> None:
        raise OSError("no database")

    ex = make(initializer=init)
    with pytest.raises(cf.BrokenExecutor, match=r"initializer .* raised OSError: no database"):
        ex.submit(nap, 0)


def test_an_initializer_failing_on_a_worker_thread_fails_its_tasks(make: Any) -> None:
    def init() -> None:
        if not threading.current_thread().name.endswith("-loop"):
            raise OSError("no database on this thread")

    ex = make(initializer=init)
    assert ex.submit(nap, 0, "coroutines still run").result(timeout=10) == "coroutines still run"
    with pytest.raises(cf.BrokenExecutor):
        ex.submit(plain_where).result(timeout=10)


def test_submits_racing_shutdown_either_fail_or_finish() -> None:
    # Submit is lock-free: a task submitted while the loop stops must still end,
    # never hang (it runs, or its future gets the "after shutdown" error).
    for _ in range(10):
        ex = get_executor("asyncio")
        accepted: list[cf.Future[Any]] = []
        go = threading.Event()

        def producer() -> None:
            go.wait()
            for i in range(300):
                try:
                    accepted.append(ex.submit(nap, 0, i))
                except RuntimeError:
                    return

        threads = [threading.Thread(target=producer) for _ in range(3)]
        for t in threads:
            t.start()
        go.set()
        time.sleep(0.001)
        ex.shutdown(wait=True)
        for t in threads:
            t.join()
        done, not_done = cf.wait(accepted, timeout=10)
        assert not not_done
        for f in done:
            assert f.exception() is None or "after shutdown" in str(f.exception())
