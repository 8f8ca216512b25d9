"""Rows for the self-tuning ``map`` (executors._chunks) on the backends that had none.

- ``thread`` and ``inline``: 1,000,000 ``x + 1`` with default arguments, against
  ``list(map(f, xs))`` in this process (goals 0.3 and 0.5) and, for ``thread``,
  against ``ThreadPoolExecutor.map`` (goal 20; that peer runs 50,000 items, as it
  needs a future per item, and the ratio compares rates);
- ``fork`` and ``process``: 100,000 ``abs``, against the same backend with
  ``chunksize=1``, one child per item as before chunking (goal 100; that peer runs
  500 items, and the ratio compares rates);
- ``asyncio`` with a plain function: 200,000 ``x + 1`` against ``ThreadPoolExecutor.map``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from run import Row

from executors import get_executor


def inc(x: int) -> int:
    return x + 1


def rows(quick: bool) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    n_tpe = 5_000 if quick else 50_000
    n_child = 10_000 if quick else 100_000
    n_child_peer = 100 if quick else 500
    xs = list(range(n))
    tpe = ThreadPoolExecutor()
    opened: list[object] = []

    def backend(name: str, **options: object) -> object:
        ex = get_executor(name, **options)
        opened.append(ex)
        return ex

    thread = backend("thread")
    inline = backend("inline")
    aio = backend("asyncio")
    fork = backend("fork", max_workers=2)
    process = backend("process", max_workers=2)

    def mapper(ex: object, items: list[int], fn: object = inc, **kw: object) -> object:
        return lambda: list(ex.map(fn, items, **kw))  # type: ignore[attr-defined]

    def close() -> None:
        for ex in opened:
            ex.shutdown()  # type: ignore[attr-defined]
        tpe.shutdown()

    return [
        Row(
            f"map: thread, {n:,} x+1, default args",
            mapper(thread, xs),
            lambda: list(map(inc, xs)),
            n,
            unit="items",
            peer_name="list(map(f, xs)) in this process",
            goal=0.3,
        ),
        Row(
            f"map: thread, {n:,} x+1, vs ThreadPoolExecutor",
            mapper(thread, xs),
            lambda: list(tpe.map(inc, xs[:n_tpe])),
            n,
            unit="items",
            peer_name=f"ThreadPoolExecutor().map ({n_tpe:,} items; rates compared)",
            goal=20.0,
            repeat=3,
            peer_work=n_tpe,
        ),
        Row(
            f"map: inline, {n:,} x+1",
            mapper(inline, xs),
            lambda: list(map(inc, xs)),
            n,
            unit="items",
            peer_name="list(map(f, xs)) in this process",
            goal=0.5,
        ),
        Row(
            f"map: asyncio (plain function), {n // 5:,} x+1",
            mapper(aio, xs[: n // 5]),
            lambda: list(tpe.map(inc, xs[: n_tpe // 5])),
            n // 5,
            unit="items",
            peer_name=f"ThreadPoolExecutor().map ({n_tpe // 5:,} items; rates compared)",
            repeat=3,
            peer_work=n_tpe // 5,
        ),
        Row(
            f"map: fork, {n_child:,} abs",
            mapper(fork, list(range(-n_child, 0)), abs),
            mapper(fork, list(range(-n_child_peer, 0)), abs, chunksize=1),
            n_child,
            unit="items",
            peer_name=f"fork, chunksize=1 (one child per item; {n_child_peer} items)",
            goal=100.0,
            repeat=2,
            peer_work=n_child_peer,
        ),
        Row(
            f"map: process, {n_child:,} abs",
            mapper(process, list(range(-n_child, 0)), abs),
            mapper(process, list(range(-n_child_peer, 0)), abs, chunksize=1),
            n_child,
            unit="items",
            peer_name=f"process, chunksize=1 (one child per item; {n_child_peer} items)",
            goal=100.0,
            repeat=2,
            peer_work=n_child_peer,
            teardown=close,
        ),
    ]
