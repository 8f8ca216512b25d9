"""Checked by mypy --strict (tox -e lint), never run: the awaitable face's inferred types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from concurrent.futures import Future

from typing_extensions import assert_type

from executors import AsyncExecutor, aio, get_executor
from executors.backends.aio import AsyncioExecutor


def parse(text: str, base: int = 10) -> int:
    return int(text, base)


async def fetch(url: str, retries: int = 0) -> bytes:
    return url.encode()


async def check(ax: AsyncExecutor, native: AsyncioExecutor) -> None:
    assert_type(ax.submit(parse, "ff", base=16), asyncio.Future[int])
    assert_type(ax.submit(fetch, "https://a/"), asyncio.Future[bytes])
    assert_type(await ax.submit(fetch, "https://a/", retries=2), bytes)
    assert_type(ax.map(parse, ["1", "2"]), AsyncGenerator[int, None])
    assert_type(ax.map(fetch, ["https://a/"]), AsyncGenerator[bytes, None])
    assert_type(native.submit(parse, "7"), Future[int])
    async with aio(get_executor("asyncio")) as managed:
        assert_type(managed, AsyncExecutor)
    ax.submit(fetch, 3)  # type: ignore[call-overload]
