"""Rows for the process backends: pool, fork and process against the pools they replace.

Every peer is optional (benchmarks/requirements.txt); a row whose peer is not
installed prints a note and is left out.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import multiprocessing
import os
import pickle
import time
from typing import Any, Callable

from run import Row

from executors import get_executor, registry

WORKERS = 2


def noop() -> None:
    return None


def inc(x: int) -> int:
    return x + 1


def burn(ms: float = 20.0) -> int:
    """CPU-bound work of about *ms* milliseconds."""
    end = time.perf_counter() + ms / 1000
    n = 0
    digest = b"x"
    while time.perf_counter() < end:
        digest = hashlib.sha256(digest).digest()
        n += 1
    return n


def _have(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        print(
            f"  (skipped rows with peer {module!r}: not installed; "
            "pip install -r benchmarks/requirements.txt)"
        )
        return False
    return True


def _one_by_one(submit: Callable[[], Any], get: Callable[[Any], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        handles = [submit() for _ in range(n)]
        for h in handles:
            get(h)

    return run


def _get(future: Any) -> Any:
    return future.result()


def _rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / (1 << 20)


def _bare_fork() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        os.write(w, pickle.dumps(noop()))
        os._exit(0)
    os.close(w)
    pickle.loads(os.read(r, 1 << 16))
    os.close(r)
    os.waitpid(pid, 0)


def rows(quick: bool) -> list[Row]:
    n_tasks = 5_000 if quick else 50_000
    n_map = 100_000 if quick else 1_000_000
    n_fork = 50 if quick else 300
    ctx = multiprocessing.get_context("fork")
    ours = get_executor("pool", max_workers=WORKERS)
    mp_pool = ctx.Pool(WORKERS)
    closers: list[Callable[[], object]] = [ours.shutdown, mp_pool.terminate, mp_pool.join]

    def ours_tasks() -> None:
        _one_by_one(lambda: ours.submit(noop), lambda f: f.result(), n_tasks)()

    # (row name, peer name, goal, submit, get) for each peer that is installed
    peers: list[tuple[str, str, float, Callable[[], Any], Callable[[Any], Any]]] = [
        (
            "pool: empty tasks, submit+result",
            "multiprocessing.Pool(2).apply_async",
            2.0,
            lambda: mp_pool.apply_async(noop),
            lambda r: r.get(),
        )
    ]
    ppe = concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx)
    closers.append(ppe.shutdown)
    peers.append(
        (
            "vs ProcessPoolExecutor",
            "ProcessPoolExecutor(2) (fork)",
            5.0,
            lambda: ppe.submit(noop),
            _get,
        )
    )
    if _have("pebble"):
        import pebble

        pb = pebble.ProcessPool(WORKERS, context=ctx)
        closers += [pb.close, pb.join]
        peers.append(
            ("vs pebble", "pebble.ProcessPool(2).schedule", 2.0, lambda: pb.schedule(noop), _get)
        )
    if _have("loky"):
        import loky

        lk = loky.get_reusable_executor(WORKERS)
        closers.append(lambda: lk.shutdown(kill_workers=True))
        peers.append(("vs loky", "loky reusable executor(2)", 2.0, lambda: lk.submit(noop), _get))
    if _have("mpire"):
        import mpire

        mw = mpire.WorkerPool(WORKERS, start_method="fork")
        closers.append(mw.terminate)
        peers.append(
            (
                "vs mpire",
                "mpire.WorkerPool(2).apply_async",
                2.0,
                lambda: mw.apply_async(noop),
                lambda r: r.get(),
            )
        )
    out = [
        Row(
            name if name.startswith("pool:") else f"pool: empty tasks {name}",
            ours_tasks,
            _one_by_one(submit, get, n_tasks),
            n_tasks,
            peer_name=peer_name,
            goal=goal,
            repeat=5 if i == 0 else 3,
        )
        for i, (name, peer_name, goal, submit, get) in enumerate(peers)
    ]

    # map of 1M x+1: ours with default arguments, Pool.map with the best chunksize of a few.
    data = range(n_map)
    best: dict[str, int] = {}

    def pick_chunksize() -> None:
        times = {}
        for size in (1_000, 5_000, 20_000, n_map // (4 * WORKERS)):
            start = time.perf_counter()
            mp_pool.map(inc, data, chunksize=size)
            times[size] = time.perf_counter() - start
        best["size"] = min(times, key=times.__getitem__)
        print(f"  (Pool.map chunksize tried {sorted(times)}; best {best['size']})")

    out.append(
        Row(
            f"pool: map of {n_map:,} x+1, default args",
            lambda: list(ours.map(inc, data)),
            lambda: mp_pool.map(inc, data, chunksize=best["size"]),
            n_map,
            unit="items",
            peer_name="multiprocessing.Pool(2).map, best chunksize",
            goal=1.0,
            setup=pick_chunksize,
        )
    )
    if _have("mpire"):
        out.append(
            Row(
                f"pool: map of {n_map:,} x+1 vs mpire",
                lambda: list(ours.map(inc, data)),
                lambda: mw.map(inc, data),
                n_map,
                unit="items",
                peer_name="mpire.WorkerPool(2).map",
                goal=1.0,
                repeat=3,
            )
        )
    if _have("joblib"):
        import joblib

        def joblib_map() -> None:
            joblib.Parallel(n_jobs=WORKERS, batch_size="auto")(joblib.delayed(inc)(x) for x in data)

        out.append(
            Row(
                f"pool: map of {n_map:,} x+1 vs joblib",
                lambda: list(ours.map(inc, data)),
                joblib_map,
                n_map,
                unit="items",
                peer_name="joblib.Parallel(2)",
                goal=1.0,
                repeat=1,
            )
        )

    n_cpu = 10 if quick else 40
    out.append(
        Row(
            "pool: 40 CPU tasks of 20 ms",
            lambda: list(ours.map(burn, [20.0] * n_cpu)),
            lambda: [burn(20.0) for _ in range(n_cpu)],
            n_cpu,
            peer_name="serial loop",
            goal=1.9,
            repeat=3,
        )
    )

    if "fork" not in registry.names() or "process" not in registry.names():
        out[-1].teardown = lambda: [close() for close in closers]
        return out
    fork_ex = get_executor("fork", max_workers=1)
    process_ex = get_executor("process", max_workers=1, start_method="fork")
    closers += [fork_ex.shutdown, process_ex.shutdown]

    def bare_process() -> None:
        for _ in range(n_fork):
            p = ctx.Process(target=noop)
            p.start()
            p.join()

    out.append(
        Row(
            "fork: one task, submit+result",
            lambda: [fork_ex.submit(noop).result() for _ in range(n_fork)],
            lambda: [_bare_fork() for _ in range(n_fork)],
            n_fork,
            peer_name="os.fork + pipe + waitpid",
            goal=1 / 1.3,
        )
    )
    out.append(
        Row(
            "process: one task, submit+result (fork)",
            lambda: [process_ex.submit(noop).result() for _ in range(n_fork)],
            bare_process,
            n_fork,
            peer_name="multiprocessing.Process start+join",
            goal=1 / 1.3,
        )
    )

    def report_rss() -> None:
        ours.submit(noop).result()
        mp_pool.apply(noop)
        mine = max(_rss_mib(w.pid) for w in ours._pool.workers)  # type: ignore[attr-defined]
        theirs = max(_rss_mib(p.pid) for p in mp_pool._pool)  # type: ignore[attr-defined]
        print(
            f"  idle worker RSS: pool {mine:.1f} MiB, multiprocessing.Pool {theirs:.1f} MiB, "
            f"ratio {mine / theirs:.2f} (goal <= 1.10)"
        )

    def close_all() -> None:
        report_rss()
        for close in closers:
            close()

    out[-1].teardown = close_all
    return out
