"""Rows for big arguments on ``pool``: the caller's memory and the round trip.

- 20 submits of one 50 MB ``bytes`` (the task returns its length): the caller's
  peak RSS, ours against :class:`~concurrent.futures.ProcessPoolExecutor`, each in
  a fresh interpreter (goal: at most 1.5x theirs; printed as a note, since a Row
  compares rates). The Row itself times the same runs.
- A 200 MB ``bytes`` argument returned as the result: ``pool`` against
  ``multiprocessing.Pool.apply`` (goal 2x) and against a plain copy (goal 0.5).
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

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


def rows(quick: bool) -> list[Row]:
    size = (20 if quick else 200) << 20
    payload = b"x" * size
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

    return [
        Row(
            "pool: 20 submits of 50 MB bytes (time; RSS below)",
            run("ours"),
            run("peer"),
            20,
            peer_name="ProcessPoolExecutor(2)",
            repeat=2,
            teardown=report,
        ),
        Row(
            f"pool: {size >> 20} MB bytes round trip",
            lambda: pool.submit(echo, payload).result(),
            lambda: mp_pool.apply(echo, (payload,)),
            size,
            unit="bytes",
            peer_name="multiprocessing.Pool.apply",
            goal=2.0,
            repeat=3,
        ),
        Row(
            f"pool: {size >> 20} MB bytes round trip vs a copy",
            lambda: pool.submit(echo, payload).result(),
            lambda: bytearray(payload),
            size,
            unit="bytes",
            peer_name="bytearray(data) in this process",
            goal=0.5,
            repeat=3,
            teardown=close,
        ),
    ]
