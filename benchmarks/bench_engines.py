"""Rows for the dask and ray backends, each against its engine's own API on the same cluster.

dask: a LocalCluster of 2 single-thread worker processes that both sides share;
ray: a local Ray of 2 CPUs that both sides share. Skipped, with a note, when the
engine is not installed. Map peers that run one engine task per item are timed on
a slice of the input (``PEER_SLICE`` items, ``Row.peer_work``) and compared per
item: at the engine's hundreds to thousands of tasks per second the whole input
would take minutes.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from run import Row

from executors import get_executor

HERE = str(Path(__file__).resolve().parent)
# Worker processes import this module's functions by name: let them find it.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p)
PEER_SLICE = 2_000
STORE = 200 * 1024**2


def noop(x: int = 0) -> int:
    return x


def inc(x: int) -> int:
    return x + 1


def inc_chunk(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


def _installed(engine: str, module: str) -> bool:
    """Whether *module* imports; if not, a note says the *engine* rows are skipped."""
    if importlib.util.find_spec(module) is not None:
        return True
    print(
        f"note: skipping the {engine} rows: {module!r} is not installed "
        "(pip install -r benchmarks/requirements.txt)"
    )
    return False


def _local_cluster() -> Any:
    """The LocalCluster both sides of a dask row use: 2 single-thread worker processes."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )


def _start_ray() -> None:
    """The local Ray both sides of a ray row use: 2 CPUs, a small object store."""
    import ray

    ray.init(
        address="local",  # a new Ray, not one `ray start` left in /tmp/ray
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=STORE,
        logging_level=logging.WARNING,
    )


def _submit_all(executor: Callable[[], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        ex = executor()
        for f in [ex.submit(noop, i) for i in range(n)]:
            f.result()

    return run


def _dask_rows(n: int, n_map: int) -> list[Row]:
    from distributed import Client

    s: dict[str, Any] = {}

    def setup() -> None:
        if s:
            return
        s["cluster"] = _local_cluster()
        s["client"] = Client(s["cluster"], set_as_default=False)
        s["ex"] = get_executor("dask", address=s["cluster"].scheduler_address)
        s["best"] = _best_chunk(s["client"], n_map)

    def teardown() -> None:
        s["ex"].shutdown()
        s["client"].close()
        s["cluster"].close()
        s.clear()

    def peer_submit() -> None:
        client = s["client"]
        for f in [client.submit(noop, i, pure=False) for i in range(n)]:
            f.result()

    def peer_executor_map() -> None:
        list(s["client"].get_executor(pure=False).map(inc, range(PEER_SLICE)))

    def peer_chunks() -> None:
        size = s["best"]
        items = list(range(n_map))
        chunks = [items[i : i + size] for i in range(0, n_map, size)]
        futures = s["client"].map(inc_chunk, chunks, pure=False)
        list(itertools.chain.from_iterable(s["client"].gather(futures)))

    def ours_map() -> None:
        list(s["ex"].map(inc, range(n_map)))

    rows = [
        Row(
            f"dask: {n} empty tasks, submit+result",
            _submit_all(lambda: s["ex"], n),
            peer_submit,
            n,
            peer_name="Client.submit(pure=False)+result, LocalCluster(2)",
            goal=1.0,
            repeat=3,
            setup=setup,
        ),
        Row(
            f"dask: map of {n_map:,} x+1 (defaults)",
            ours_map,
            peer_executor_map,
            n_map,
            unit="items",
            peer_name="ClientExecutor.map (timed on 2,000 items)",
            peer_work=PEER_SLICE,
            goal=20.0,
            repeat=1,
            setup=setup,
        ),
        Row(
            f"dask: map of {n_map:,} x+1 (defaults)",
            ours_map,
            peer_chunks,
            n_map,
            unit="items",
            peer_name="Client.map over hand-made chunks of the best size",
            goal=1.0,
            repeat=3,
            setup=setup,
            teardown=teardown,
        ),
    ]
    return rows


def _best_chunk(client: Any, n: int) -> int:
    best, best_time = n, float("inf")
    for size in (n // 64, n // 16, n // 4, n // 2):
        items = list(range(n))
        chunks = [items[i : i + size] for i in range(0, n, size)]
        start = time.perf_counter()
        client.gather(client.map(inc_chunk, chunks, pure=False))
        took = time.perf_counter() - start
        if took < best_time:
            best, best_time = size, took
    return best


def _dask_startup() -> Row:
    from distributed import Client

    def ours() -> None:
        with get_executor("dask", max_workers=2) as ex:
            ex.submit(noop).result()

    def peer() -> None:
        with _local_cluster() as cluster, Client(cluster, set_as_default=False) as client:
            client.submit(noop, pure=False).result()

    return Row(
        "dask: start-up, first result of one task",
        ours,
        peer,
        1,
        unit="start-ups",
        peer_name="LocalCluster(2) + Client.submit",
        goal=1 / 1.2,
        repeat=2,
    )


def _ray_rows(n: int, n_map: int) -> list[Row]:
    import ray

    s: dict[str, Any] = {}

    def setup() -> None:
        if s:
            return
        _start_ray()
        s["noop"], s["inc"] = ray.remote(noop), ray.remote(inc)
        s["ex"] = get_executor("ray", max_workers=2)  # uses the Ray just started

    def teardown() -> None:
        s["ex"].shutdown()
        ray.shutdown()
        s.clear()

    def peer_submit() -> None:
        ray.get([s["noop"].remote(i) for i in range(n)])

    def peer_map() -> None:
        ray.get([s["inc"].remote(i) for i in range(PEER_SLICE)])

    return [
        Row(
            f"ray: {n} empty tasks, submit+result",
            _submit_all(lambda: s["ex"], n),
            peer_submit,
            n,
            peer_name="ray.remote + ray.get, local Ray(2)",
            goal=1.0,
            repeat=3,
            setup=setup,
        ),
        Row(
            f"ray: map of {n_map:,} x+1 (defaults)",
            lambda: list(s["ex"].map(inc, range(n_map))),
            peer_map,
            n_map,
            unit="items",
            peer_name="one ray.remote call per item (timed on 2,000 items)",
            peer_work=PEER_SLICE,
            goal=20.0,
            repeat=1,
            setup=setup,
            teardown=teardown,
        ),
    ]


def _ray_startup() -> Row:
    import ray

    def ours() -> None:
        with get_executor("ray", max_workers=2, object_store_memory=STORE) as ex:
            ex.submit(noop).result()

    def peer() -> None:
        _start_ray()
        try:
            ray.get(ray.remote(noop).remote())
        finally:
            ray.shutdown()

    return Row(
        "ray: start-up, first result of one task",
        ours,
        peer,
        1,
        unit="start-ups",
        peer_name="ray.init(num_cpus=2) + one task",
        goal=1 / 1.2,
        repeat=2,
    )


def rows(quick: bool) -> list[Row]:
    n = 500 if quick else 2_000
    n_map = 100_000
    found: list[Row] = []
    if _installed("dask", "distributed"):
        found += [*_dask_rows(n, n_map), _dask_startup()]
    if _installed("ray", "ray"):
        found += [*_ray_rows(n, n_map), _ray_startup()]
    return found
