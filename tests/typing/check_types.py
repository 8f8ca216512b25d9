"""Checked by mypy --strict (tox -e lint), never run: the protocol's inferred types."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from typing_extensions import assert_type

from executors import Executor, get_executor
from executors.backends.thread import ThreadExecutor


def parse(text: str, base: int = 10) -> int:
    return int(text, base)


def check(ex: Executor, thread: ThreadExecutor) -> None:
    assert_type(ex.submit(len, "abc"), Future[int])
    # An overloaded callable with an overload returning Any (typeshed's pow) matches
    # the coroutine-function overload first: its future is Future[Any].
    assert_type(ex.submit(pow, 2, 3), Future[Any])
    assert_type(ex.submit(parse, "ff", base=16), Future[int])
    assert_type(thread.submit(parse, "7"), Future[int])
    assert_type(ex.map(parse, ["1", "2"]), Iterator[int])
    with get_executor("thread") as managed:
        assert_type(managed.submit(str.upper, "a"), Future[str])
    ex.submit(parse, 3)  # type: ignore[call-overload]
    ex.submit(parse, "1", bse=2)  # type: ignore[call-arg, arg-type]


async def fetch(url: str, retries: int = 1) -> bytes:
    return url.encode() * retries


def check_coroutine_functions(ex: Executor, thread: ThreadExecutor) -> None:
    # Every backend runs a coroutine function to completion: the future holds its result.
    assert_type(ex.submit(fetch, "a"), Future[bytes])
    assert_type(ex.submit(fetch, "a", retries=2), Future[bytes])
    assert_type(thread.submit(fetch, "a"), Future[bytes])
    with get_executor("asyncio") as managed:
        assert_type(managed.submit(fetch, "a"), Future[bytes])
    ex.submit(fetch, 1)  # type: ignore[call-overload]


def check_commands(ex: Executor) -> None:
    from executors import Command, CommandResult, run_command

    assert_type(ex.submit(run_command, ["gzip", "-k", "a.txt"], timeout=5), Future[CommandResult])
    assert_type(ex.submit(Command(["true"])), Future[CommandResult])
    assert_type(ex.map(run_command, [["true"]]), Iterator[CommandResult])
    ex.submit(run_command, ["true"], timeout="5")  # type: ignore[arg-type]


def check_stdlib_compatibility() -> None:
    import asyncio
    import concurrent.futures

    ex: concurrent.futures.Executor = get_executor()  # accepted where the stdlib's is
    ex.shutdown()
    with get_executor("pool") as pool:
        workers: int | None = pool.max_workers  # public and typed
        assert_type(pool.max_workers, "int | None")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(get_executor("thread"), parse, "1")

    del workers, main
