"""Rows for the core backends: thread vs ThreadPoolExecutor, inline vs a plain loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from run import Row

from executors import get_executor


def noop() -> None:
    return None


def inc(x: int) -> int:
    return x + 1


def rows(quick: bool) -> list[Row]:
    n_tasks = 5_000 if quick else 50_000
    n_map = 20_000 if quick else 200_000
    ours = get_executor("thread", max_workers=4)
    peer = ThreadPoolExecutor(4)
    inline = get_executor("inline")

    def submit_collect(ex: object) -> object:
        def run() -> None:
            futures = [ex.submit(noop) for _ in range(n_tasks)]  # type: ignore[attr-defined]
            for f in futures:
                f.result()

        return run

    def close() -> None:
        ours.shutdown()
        peer.shutdown()
        inline.shutdown()

    return [
        Row(
            "thread: empty tasks, submit+result",
            submit_collect(ours),
            submit_collect(peer),
            n_tasks,
            peer_name="ThreadPoolExecutor(4)",
            goal=0.9,
        ),
        Row(
            "thread: map of 200k x+1",
            lambda: list(ours.map(inc, range(n_map))),
            lambda: list(peer.map(inc, range(n_map))),
            n_map,
            unit="items",
            peer_name="ThreadPoolExecutor(4).map",
            goal=0.9,
        ),
        Row(
            "inline: map of 200k x+1",
            lambda: list(inline.map(inc, range(n_map))),
            lambda: [inc(x) for x in range(n_map)],
            n_map,
            unit="items",
            peer_name="list comprehension",
            repeat=3,
            teardown=close,
        ),
    ]
