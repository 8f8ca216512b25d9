"""Rows for the remote backend: 2 local workers over loopback, against the seeds' loop and dask.

The seeds' loop is the tutorial's distributed-processes program: a BaseManager
server process holds a task queue and a result queue; the master puts each item
and gets each result with one round trip apiece, and two worker processes get
and put one item at a time. dask's row is ``Client.submit`` on a two-worker
``LocalCluster`` (skipped, with a note, when ``distributed`` is not installed).

The memory row submits 20 tasks of a 50 MB argument to two workers and reports
the master's peak memory (ru_maxrss, measured in a fresh process each) against
ProcessPoolExecutor(2) doing the same.
"""

from __future__ import annotations

import atexit
import multiprocessing
import queue
import subprocess
import sys
import textwrap
from multiprocessing.managers import BaseManager
from typing import Any, Callable

from run import Row

from executors import get_executor

KEY = b"benchmark-key-0123456789"


def noop(x: int = 0) -> int:
    return x


# -- the seeds' loop -----------------------------------------------------------------

_tasks: queue.Queue[Any] = queue.Queue()
_results: queue.Queue[Any] = queue.Queue()


def _task_queue() -> queue.Queue[Any]:
    return _tasks


def _result_queue() -> queue.Queue[Any]:
    return _results


class _MasterManager(BaseManager):
    pass


class _WorkerManager(BaseManager):
    pass


_MasterManager.register("get_task_queue", callable=_task_queue)
_MasterManager.register("get_result_queue", callable=_result_queue)
_WorkerManager.register("get_task_queue")
_WorkerManager.register("get_result_queue")


def _seed_worker(address: tuple[str, int]) -> None:
    manager = _WorkerManager(address=address, authkey=KEY)
    manager.connect()
    tasks, results = manager.get_task_queue(), manager.get_result_queue()  # type: ignore[attr-defined]
    while True:
        try:
            n = tasks.get(timeout=1)
        except queue.Empty:
            continue
        if n is None:
            return
        results.put(noop(n))


class SeedLoop:
    """The tutorial's master with two workers; ``run(n)`` pushes n items through."""

    def __init__(self, workers: int = 2) -> None:
        ctx = multiprocessing.get_context()
        self.manager = _MasterManager(address=("127.0.0.1", 0), authkey=KEY, ctx=ctx)
        self.manager.start()
        self.tasks = self.manager.get_task_queue()  # type: ignore[attr-defined]
        self.results = self.manager.get_result_queue()  # type: ignore[attr-defined]
        self.procs = [
            ctx.Process(target=_seed_worker, args=(self.manager.address,)) for _ in range(workers)
        ]
        for p in self.procs:
            p.start()

    def run(self, n: int) -> None:
        for i in range(n):
            self.tasks.put(i)
        for _ in range(n):
            self.results.get(timeout=30)

    def close(self) -> None:
        for _ in self.procs:
            self.tasks.put(None)
        for p in self.procs:
            p.join(10)
        self.manager.shutdown()


# -- the rows ------------------------------------------------------------------------


def _submit_all(ex: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        futures = [ex.submit(noop, i) for i in range(n)]
        for f in futures:
            f.result()

    return run


def _dask_row(n: int, ours: Any) -> Row | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print(
            "note: skipping the dask row: 'distributed' is not installed "
            "(pip install -r benchmarks/requirements.txt)"
        )
        return None
    state: dict[str, Any] = {}

    def setup() -> None:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        state["cluster"], state["client"] = cluster, Client(cluster)

    def peer() -> None:
        client = state["client"]
        client.gather([client.submit(noop, i, pure=False) for i in range(n)])

    def teardown() -> None:
        state["client"].close()
        state["cluster"].close()

    return Row(
        f"remote: {n} empty tasks, submit+result (defaults)",
        _submit_all(ours, n),
        peer,
        n,
        peer_name="dask Client.submit, LocalCluster(2)",
        goal=10.0,
        repeat=3,
        setup=setup,
        teardown=teardown,
    )


_PEAK = """
import resource, sys
data = b"x" * ({mb} * 2**20)
{make}
with ex:
    futures = [ex.submit(len, data) for _ in range({n})]
    assert [f.result() for f in futures] == [len(data)] * {n}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak / 2**20 if sys.platform == "darwin" else peak / 2**10)
"""


def _peak_mb(make: str, n: int, mb: int) -> Callable[[], float]:
    """The peak memory (MB) of a fresh master process submitting *n* tasks of *mb* MB."""

    def run() -> float:
        code = _PEAK.format(make=textwrap.dedent(make).strip(), n=n, mb=mb)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        return float(out.split()[-1])

    return run


def memory_row(quick: bool) -> Row:
    n, mb = (5, 20) if quick else (20, 50)
    ours = """
        from executors import get_executor
        ex = get_executor("remote", max_workers=2)
    """
    peer = """
        from concurrent.futures import ProcessPoolExecutor
        ex = ProcessPoolExecutor(2)
    """
    return Row(
        f"remote: master's peak, {n} submits of {mb} MB",
        _peak_mb(ours, n, mb),
        _peak_mb(peer, n, mb),
        n,
        peer_name="ProcessPoolExecutor(2)",
        kind="memory",
    )


def rows(quick: bool) -> list[Row]:
    n = 2_000 if quick else 10_000
    n_dask = 500 if quick else 2_000
    # The defaults (what a user gets: two local workers, one task at a time each,
    # prefetching)...
    default = get_executor("remote", max_workers=2)
    # ...and tuned: two local workers running tiny tasks inline, 256 slots in all.
    tuned = get_executor("remote", max_workers=256, local_workers=2, worker_backend="inline")
    seed: dict[str, SeedLoop] = {}

    def seed_setup() -> None:
        if "loop" not in seed:
            seed["loop"] = SeedLoop()

    def seed_run(n: int) -> Callable[[], None]:
        return lambda: seed["loop"].run(n)

    def close() -> None:
        if "loop" in seed:
            seed.pop("loop").close()
        tuned.shutdown()
        default.shutdown()

    # Rows may be filtered out (-k), so the last row's teardown may never run.
    atexit.register(close)

    peer = "seeds' BaseManager loop, 2 workers"
    found = [
        Row(
            f"remote: {n} empty tasks, submit+result (defaults)",
            _submit_all(default, n),
            seed_run(n),
            n,
            peer_name=peer,
            goal=20.0,
            repeat=5,
            setup=seed_setup,
        ),
        Row(
            f"remote: {n} empty tasks, submit+result (tuned: 256 inline slots)",
            _submit_all(tuned, n),
            seed_run(n),
            n,
            peer_name=peer,
            repeat=3,
            setup=seed_setup,
        ),
        Row(
            f"remote: map of {n} empty tasks (defaults)",
            lambda: list(default.map(noop, range(n))),
            seed_run(n),
            n,
            unit="items",
            peer_name=peer,
            goal=20.0,
            repeat=2,
            setup=seed_setup,
        ),
        Row(
            "remote: 200 tasks one at a time (latency, defaults)",
            _one_by_one(default, 200),
            _repeat(seed_run(1), 200),
            200,
            peer_name="seeds' loop, one item at a time",
            repeat=3,
            setup=seed_setup,
        ),
    ]
    dask = _dask_row(n_dask, default)
    if dask is not None:
        found.append(dask)
    found.append(memory_row(quick))
    return found


def _one_by_one(ex: Any, n: int) -> Callable[[], None]:
    def run() -> None:
        for i in range(n):
            ex.submit(noop, i).result()

    return run


def _repeat(fn: Callable[[], None], times: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(times):
            fn()

    return run
