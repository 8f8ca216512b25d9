"""Rows for big arguments on ``pool``: the caller's memory and the round trip.

- 20 submits of one 50 MB ``bytes`` (the task returns its length): the caller's
  peak RSS, ours against :class:`~concurrent.futures.ProcessPoolExecutor`, each in
  a fresh interpreter (goal: at most 1.5x theirs; printed as a note, since a Row
  compares rates). The Row itself times the same runs.
- A ``bytes`` argument returned as the result (20 MB; also 200 MB in a full run):
  ``pool`` against ``multiprocessing.Pool.apply`` (goal 2x) and against a plain
  copy in this process (goal 0.5); both cross through shared memory
  (:mod:`executors._pool.shared`).
- The same with a float64 numpy array (when numpy is installed): against
  ``Pool.apply``, ``ndarray.copy()``, and joblib's automatic memory mapping
  (``Parallel(max_nbytes="1M")``, goal 1x) when joblib is installed.
- A big numpy array made by the task on ``fork`` and ``process`` (a child per task),
  against ``Pool.apply`` of the same function on a live worker.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import subprocess
import sys
from typing import Any

from run import Row

from executors import get_executor

_SCRIPT = """
import resource, sys
from concurrent.futures import ProcessPoolExecutor
from executors import get_executor
ex = get_executor("pool", max_workers=2) if sys.argv[1] == "ours" else ProcessPoolExecutor(2)
data = b"x" * (50 << 20)  # touched pages (bytes(n) maps zero pages, not resident)
futures = [ex.submit(len, data) for _ in range(20)]
assert [f.result() for f in futures] == [len(data)] * 20
ex.shutdown()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(which: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, which], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def echo(data: bytes) -> bytes:
    return data


def _round_trips(
    label: str, payload: Any, pool: Any, mp_pool: Any, copy: Any, copy_name: str
) -> list[Row]:
    size = payload.nbytes if hasattr(payload, "nbytes") else len(payload)
    return [
        Row(
            f"pool: {size >> 20} MB {label} round trip",
            lambda: pool.submit(echo, payload).result(),
            lambda: mp_pool.apply(echo, (payload,)),
            size,
            unit="bytes",
            peer_name="multiprocessing.Pool.apply",
            goal=2.0,
            repeat=3,
        ),
        Row(
            f"pool: {size >> 20} MB {label} round trip vs a copy",
            lambda: pool.submit(echo, payload).result(),
            copy,
            size,
            unit="bytes",
            peer_name=f"{copy_name} in this process",
            goal=0.5,
            repeat=3,
        ),
    ]


def ones(count: int) -> Any:
    import numpy as np

    return np.ones(count)


def _child_rows(size: int, mp_pool: Any) -> list[Row]:
    """A big array made in a child per task (``fork``, ``process``), against a persistent
    ``Pool.apply``: the arrays come back out of band (executors._proc.wire.buffers_frame)."""
    out = []
    for name in ("fork", "process"):
        ex = get_executor(name, max_workers=1)
        out.append(
            Row(
                f"{name}: {size >> 20} MB numpy result",
                lambda ex=ex: ex.submit(ones, size // 8).result(),
                lambda: mp_pool.apply(ones, (size // 8,)),
                size,
                unit="bytes",
                peer_name="multiprocessing.Pool.apply (a live worker)",
                goal=1.0,
                repeat=3,
                teardown=ex.shutdown,
            )
        )
    return out


def _numpy_rows(quick: bool, pool: Any, mp_pool: Any) -> list[Row]:
    if importlib.util.find_spec("numpy") is None:
        print("  (skipped the numpy round trip rows: numpy is not installed)")
        return []
    import numpy as np

    array = np.random.default_rng(0).random(((20 if quick else 200) << 20) // 8)
    out = _round_trips("numpy float64", array, pool, mp_pool, array.copy, "ndarray.copy()")
    out += _child_rows(array.nbytes, mp_pool)
    if importlib.util.find_spec("joblib") is None:
        print(
            "  (skipped the joblib memmapping row: joblib is not installed; "
            "pip install -r benchmarks/requirements.txt)"
        )
        return out
    import joblib

    parallel = joblib.Parallel(n_jobs=2, max_nbytes="1M")  # its automatic memmapping
    parallel.__enter__()  # one pool of workers for every call, as ours
    out.append(
        Row(
            f"pool: {array.nbytes >> 20} MB numpy float64 round trip vs joblib",
            lambda: pool.submit(echo, array).result(),
            lambda: parallel([joblib.delayed(echo)(array)]),
            array.nbytes,
            unit="bytes",
            peer_name='joblib.Parallel(2, max_nbytes="1M") (memory mapping)',
            goal=1.0,
            repeat=3,
            teardown=lambda: parallel.__exit__(None, None, None),
        )
    )
    return out


def rows(quick: bool) -> list[Row]:
    pool = get_executor("pool", max_workers=2)
    mp_pool = multiprocessing.get_context("fork").Pool(2)
    peaks: dict[str, list[int]] = {"ours": [], "peer": []}

    def run(which: str) -> object:
        return lambda: peaks[which].append(peak_rss_kib(which))

    def report() -> None:
        ours, peer = min(peaks["ours"]), min(peaks["peer"])
        print(
            f"  caller peak RSS, 20 submits of 50 MB: pool {ours / 1024:.0f} MiB, "
            f"ProcessPoolExecutor {peer / 1024:.0f} MiB, ratio {ours / peer:.2f} (goal <= 1.50)",
            flush=True,
        )

    def close() -> None:
        pool.shutdown()
        mp_pool.terminate()
        mp_pool.join()

    out = [
        Row(
            "pool: 20 submits of 50 MB bytes (time; RSS below)",
            run("ours"),
            run("peer"),
            20,
            peer_name="ProcessPoolExecutor(2)",
            repeat=2,
            teardown=report,
        ),
    ]
    for mb in (20,) if quick else (20, 200):
        payload = b"x" * (mb << 20)
        out += _round_trips(
            "bytes", payload, pool, mp_pool, lambda p=payload: bytearray(p), "bytearray(data)"
        )
    out += _numpy_rows(quick, pool, mp_pool)
    if out[-1].teardown is None:
        out[-1].teardown = close
    else:
        last = out[-1].teardown
        out[-1].teardown = lambda: (last(), close())
    return out
