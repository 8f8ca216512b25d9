"""The awaitable face (executors.aio) on every backend in the registry.

Task functions come from real modules (executors.testing, executors.demo), so that
process and remote backends can pickle them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import executors
from executors import AsyncExecutor, InvalidOption, aio, context, get_executor
from executors.demo import nap, visit
from executors.testing import add, echo, failing_task, read_context, touch, touch_or_fail
from tests.conftest import backend_name_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from executors import Executor


#: The awaitable face wraps the futures of any executor: the pool's start method
#: changes nothing here (the conformance matrix runs the start methods).
backend_name = backend_name_fixture(variants=[])


@pytest.fixture
def executor(backend_name: str) -> Iterator[Executor]:
    ex = get_executor(backend_name, max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def single(backend_name: str) -> Iterator[Executor]:
    ex = get_executor(backend_name, max_workers=1)
    if getattr(ex, "runs_in_submit", False):
        ex.shutdown()
        pytest.skip(f"backend {backend_name!r} runs each task inside submit(): none is pending")
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# -- submit --------------------------------------------------------------------------


def test_submit_is_awaited(executor: Executor) -> None:
    async def main() -> tuple[int, Any]:
        ax = aio(executor)
        return await ax.submit(add, 2, 3, c=4), await ax.submit(echo, "x")

    assert run(main()) == (9, "x")


def test_coroutine_functions_run_on_every_backend(executor: Executor) -> None:
    async def main() -> list[Any]:
        ax = aio(executor)
        return [await ax.submit(visit, "https://github.com/", 0.01), await ax.submit(nap, 0, 7)]

    assert run(main()) == ["url:https://github.com/ --->finish", 7]


def test_exceptions_keep_their_type(executor: Executor) -> None:
    async def main() -> None:
        ax = aio(executor)
        with pytest.raises(ValueError, match="bad 42"):
            await ax.submit(failing_task, "bad 42")
        with pytest.raises(ValueError, match="unknown url type"):
            await ax.submit(visit, "")

    run(main())


def test_joinall_with_gather(executor: Executor) -> None:
    # gevent: greenlets = [gevent.spawn(run_task, url) for url in urls]; gevent.joinall(...)
    urls = ["https://github.com/", "https://www.python.org/", "https://pypi.org/"]

    async def main() -> list[str]:
        ax = aio(executor)
        return await asyncio.gather(*[ax.submit(visit, url, 0.01) for url in urls])

    assert run(main()) == [f"url:{url} --->finish" for url in urls]


def test_context_reaches_the_task(executor: Executor) -> None:
    async def main() -> Any:
        with context.bind(user="alice"):
            future = aio(executor).submit(read_context, "user")
        return await future

    assert run(main()) == "alice"


# -- map -----------------------------------------------------------------------------


def test_map_is_ordered_by_default(executor: Executor) -> None:
    async def main() -> list[int]:
        return [r async for r in aio(executor).map(add, range(30), range(30))]

    assert run(main()) == [2 * i for i in range(30)]


def test_map_unordered_and_with_coroutines(executor: Executor) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        ax = aio(executor)
        unordered = [r async for r in ax.map(add, range(20), range(20), ordered=False)]
        naps = [r async for r in ax.map(nap, [0.02, 0.0, 0.01], "abc")]
        return sorted(unordered), naps

    assert run(main()) == ([2 * i for i in range(20)], ["a", "b", "c"])


def test_map_reads_an_endless_input_lazily(executor: Executor) -> None:
    consumed = itertools.count()
    source = (next(consumed) for _ in itertools.count())

    async def main() -> list[int]:
        results = aio(executor).map(echo, source, buffersize=3)
        taken = [r async for r in _take(results, 10)]
        await results.aclose()
        return taken

    assert run(main()) == list(range(10))
    assert next(consumed) <= 10 + 3 + 1


def test_map_takes_async_iterables(executor: Executor) -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(5):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        return [r async for r in aio(executor).map(add, numbers(), [10] * 10)]

    assert run(main()) == [10, 11, 12, 13, 14]


def test_map_error_cancels_what_is_in_flight(single: Executor, tmp_path: Path) -> None:
    paths = [""] + [str(tmp_path / str(i)) for i in range(1, 20)]

    async def main() -> None:
        with pytest.raises(ValueError, match="no path"):
            async for _ in aio(single).map(touch_or_fail, paths, [0.05] * 20, buffersize=10):
                pass

    run(main())
    single.shutdown(wait=True)
    assert len(os.listdir(tmp_path)) < 19


def test_map_refuses_bad_arguments(executor: Executor) -> None:
    ax = aio(executor)
    with pytest.raises(InvalidOption, match="buffersize must be greater than 0"):
        ax.map(echo, [1], buffersize=0)
    with pytest.raises(TypeError, match="needs a callable"):
        ax.map(42, [1])  # type: ignore[call-overload]


# -- cancellation and shutdown ---------------------------------------------------------


def test_cancelling_the_awaiting_task_cancels_a_pending_future(
    single: Executor, tmp_path: Path
) -> None:
    async def main() -> None:
        ax = aio(single)
        blocker = ax.submit(touch, str(tmp_path / "blocker"), None, 0.5)
        waiter = asyncio.ensure_future(ax.submit(touch, str(tmp_path / "pending")))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await blocker

    run(main())
    single.shutdown(wait=True)
    assert os.listdir(tmp_path) == ["blocker"]


def test_async_with_shuts_the_executor_down(backend_name: str) -> None:
    async def main() -> tuple[Executor, Any]:
        async with aio(get_executor(backend_name, max_workers=2)) as ax:
            result = await ax.submit(add, 1, 1)
        return ax.executor, result

    ex, result = run(main())
    assert result == 2
    with pytest.raises(RuntimeError):
        ex.submit(echo, 1)


def test_cancelled_body_cancels_pending_tasks(single: Executor, tmp_path: Path) -> None:
    started = threading.Event()

    async def body() -> None:
        async with aio(single) as ax:
            ax.submit(touch, str(tmp_path / "first"), None, 0.3)
            ax.submit(touch, str(tmp_path / "second"))
            started.set()
            await asyncio.sleep(30)

    async def main() -> None:
        task = asyncio.ensure_future(body())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert started.is_set()
    assert "second" not in os.listdir(tmp_path)


# -- asyncio backend: coroutines awaited natively --------------------------------------


async def _loop_thread() -> str:
    return threading.current_thread().name


def test_coroutines_run_natively_on_the_asyncio_backend() -> None:
    async def main() -> str:
        async with aio("asyncio") as ax:
            return await ax.submit(_loop_thread)

    assert run(main()) == "executors-asyncio-loop"


def test_cancelling_the_awaiting_task_cancels_a_running_coroutine() -> None:
    entered = threading.Event()
    saw_cancel = threading.Event()

    async def long_job() -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise

    async def main() -> Any:
        async with aio("asyncio") as ax:
            waiter = ax.submit(long_job)
            while not entered.is_set():
                await asyncio.sleep(0.01)
            waiter.cancel()
            await asyncio.sleep(0.05)
            return waiter

    run(main())
    assert saw_cancel.wait(10)


def test_awaitable_face_inside_the_asyncio_backend_loop() -> None:
    ex = get_executor("asyncio")

    async def parent() -> list[Any]:
        ax = aio(ex)
        return [await ax.submit(nap, 0, "child"), await ax.submit(add, 1, 2)]

    try:
        assert ex.submit(parent).result(timeout=30) == ["child", 3]
    finally:
        ex.shutdown()


# -- construction and misuse -------------------------------------------------------------


def test_a_spec_makes_its_own_executor() -> None:
    async def main() -> tuple[str, Any]:
        async with aio("thread?max_workers=2") as ax:
            return ax.backend, await ax.submit(add, 2, 2)

    assert run(main()) == ("thread", 4)


def test_options_with_an_executor_are_refused() -> None:
    with get_executor("inline") as ex, pytest.raises(InvalidOption, match="pass them to"):
        aio(ex, max_workers=2)
    with pytest.raises(TypeError, match=r"aio\(\) needs an executor"):
        aio(42)  # type: ignore[arg-type]


def test_a_coroutine_object_is_refused_with_the_fix(executor: Executor) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=r"coroutine object.*submit\(fetch, url\)"):
            aio(executor).submit(nap(0))  # type: ignore[arg-type]

    run(main())  # and no "never awaited" warning: it was closed


def test_submit_outside_a_running_loop_says_so() -> None:
    with get_executor("inline") as ex, pytest.raises(RuntimeError, match="needs a running event"):
        aio(ex).submit(abs, 1)


def test_exposed_lazily_without_importing_asyncio() -> None:
    assert executors.aio is aio
    assert executors.AsyncExecutor is AsyncExecutor
    code = "import sys, executors; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def _take(results: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    async for r in results:
        yield r
        n -= 1
        if n == 0:
            return


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def _forever() -> None:
    await asyncio.sleep(3600)


def test_on_the_asyncio_backends_own_loop_the_face_awaits_without_a_thread_hop() -> None:
    ex = get_executor("asyncio")

    async def inner() -> tuple[list[int], int, bool]:
        loop = asyncio.get_running_loop()
        hops: list[object] = []
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            hops.append(args)
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        try:
            ax = aio(ex)
            results = await asyncio.gather(*(ax.submit(_double, i) for i in range(20)))
            stuck = ax.submit(_forever)
            await asyncio.sleep(0.01)
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
        finally:
            del loop.call_soon_threadsafe  # type: ignore[method-assign]
        return list(results), len(hops), stuck.cancelled()

    try:
        results, hops, cancelled = ex.submit(inner).result(timeout=60)
    finally:
        ex.shutdown(wait=True)
    assert results == [2 * i for i in range(20)]
    assert hops == 0
    assert cancelled
