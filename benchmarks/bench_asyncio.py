"""Rows for the asyncio backend and the awaitable face.

- no-op coroutines through submit + result, against a bare ``asyncio.gather`` of the
  same coroutines in one ``asyncio.run`` (goal: 0.7 of its rate, issue #13; submit
  crosses a thread boundary once per batch of submits);
- tasks sleeping ``SLEEP`` s with no cap (goal: under 2x one sleep, so ratio >= 0.5
  against a gather that takes one sleep) and with ``max_workers=100`` (against a gather
  behind ``asyncio.Semaphore(100)``: both take len/100 sleeps);
- the awaitable face over the thread backend, against ``loop.run_in_executor`` with a
  ``ThreadPoolExecutor``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from run import Row

from executors import aio, get_executor


async def noop() -> None:
    return None


async def sleeper(seconds: float) -> None:
    await asyncio.sleep(seconds)


def inc(x: int) -> int:
    return x + 1


def rows(quick: bool) -> list[Row]:
    n_noop = 10_000 if quick else 100_000
    n_sleep, sleep = (1_000, 0.1) if quick else (10_000, 0.5)
    n_capped, capped_sleep = (1_000, 0.01) if quick else (10_000, 0.05)
    n_face = 2_000 if quick else 20_000

    uncapped = get_executor("asyncio")
    capped = get_executor("asyncio", max_workers=100)
    threads = get_executor("thread", max_workers=4)
    peer_threads = ThreadPoolExecutor(4)

    def submit_collect(ex: object, n: int, fn: object, *args: object) -> object:
        def run() -> None:
            futures = [ex.submit(fn, *args) for _ in range(n)]  # type: ignore[attr-defined]
            for f in futures:
                f.result()

        return run

    def gather(n: int, fn: object, *args: object, limit: int | None = None) -> object:
        async def main() -> None:
            if limit is None:
                await asyncio.gather(*(fn(*args) for _ in range(n)))  # type: ignore[operator]
                return
            sem = asyncio.Semaphore(limit)

            async def one() -> None:
                async with sem:
                    await fn(*args)  # type: ignore[operator]

            await asyncio.gather(*(one() for _ in range(n)))

        return lambda: asyncio.run(main())

    def face() -> None:
        async def main() -> None:
            ax = aio(threads)
            await asyncio.gather(*(ax.submit(inc, i) for i in range(n_face)))

        asyncio.run(main())

    def face_peer() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(peer_threads, inc, i) for i in range(n_face))
            )

        asyncio.run(main())

    def close() -> None:
        uncapped.shutdown()
        capped.shutdown()
        threads.shutdown()
        peer_threads.shutdown()

    return [
        Row(
            f"asyncio: {n_noop // 1000}k no-op coroutines, submit+result",
            submit_collect(uncapped, n_noop, noop),
            gather(n_noop, noop),
            n_noop,
            peer_name="asyncio.gather in asyncio.run",
            goal=0.7,
        ),
        Row(
            f"asyncio: {n_sleep // 1000}k x sleep({sleep}), no cap",
            submit_collect(uncapped, n_sleep, sleeper, sleep),
            gather(n_sleep, sleeper, sleep),
            n_sleep,
            peer_name="asyncio.gather (one sleep)",
            goal=0.5,
            repeat=3,
        ),
        Row(
            f"asyncio: {n_capped // 1000}k x sleep({capped_sleep}), max_workers=100",
            submit_collect(capped, n_capped, sleeper, capped_sleep),
            gather(n_capped, sleeper, capped_sleep, limit=100),
            n_capped,
            peer_name="gather behind Semaphore(100)",
            goal=0.9,
            repeat=2,
        ),
        Row(
            f"aio(thread): {n_face // 1000}k submit+await",
            face,
            face_peer,
            n_face,
            peer_name="run_in_executor(ThreadPoolExecutor(4))",
            goal=0.8,
            repeat=3,
            teardown=close,
        ),
    ]
