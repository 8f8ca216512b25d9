"""Soak: each backend for a while under a mix of tasks and faults; nothing may be lost.

    python benchmarks/soak.py                    # every backend, 30 s each
    python benchmarks/soak.py --seconds 120 -k pool -k remote
    python benchmarks/soak.py --json soak.json

Each backend gets one executor (``max_workers=2``; ``task_timeout=2`` where the
backend takes it) and a steady stream of tasks, at most 64 in flight. Most
square a number; 1 in 50 raises; on backends with worker processes, 1 in 500
exits (``os._exit(3)``), 1 in 700 is killed by SIGKILL and 1 in 1,000 hangs past
the timeout. Every task appends its id to a run log when it starts, so runs can
be counted. Reported per backend:

- tasks done, and faults seen (per kind);
- wrong: a future whose outcome is not what its task does (must be 0);
- collateral: a task that succeeded but whose future raised WorkerCrashed or
  WorkerLost because another task crashed its worker (must be 0: ``pool`` and
  ``subprocess`` workers report finished tasks in batches, every 2 ms, and
  the caller reads a dead worker's unsent results from its shared memory);
- lost: a future not settled 60 s after the last submit (must be 0);
- duplicated: a future whose callbacks ran more than once (must be 0);
- re-runs: tasks that started more than once (``remote`` hands a task whose
  worker died to another: at least once; 0 elsewhere);
- peak RSS of the caller and of all its workers together, and the caller's RSS
  at the start and end (it must stay flat).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from soak_tasks import kind_of, task  # beside this file: workers import it by name

from executors import (  # after the path set-up, as in the other benchmarks
    TaskTimeout,
    WorkerCrashed,
    WorkerLost,
    get_executor,
    registry,
)

IN_PROCESS = {"inline", "thread", "asyncio"}
TAKES_TIMEOUT = {"fork", "process", "pool", "subprocess", "remote"}
WINDOW = 64


def _expected(kind: str, backend: str) -> tuple[type[BaseException], ...]:
    crash: tuple[type[BaseException], ...] = (
        (WorkerLost,) if backend == "remote" else (WorkerCrashed,)
    )
    return {
        "raise": (ValueError,),
        "exit": crash,
        "sigkill": crash,
        # a task hung past its timeout; remote may also lose it with a worker killed meanwhile
        "hang": (TaskTimeout, WorkerLost) if backend == "remote" else (TaskTimeout,),
    }.get(kind, ())


class _Memory:
    """Samples the caller's RSS and its workers' (all descendants') every 0.2 s."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.start = self.me.memory_info().rss
        self.peak_caller = self.start
        self.peak_workers = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_caller = max(self.peak_caller, self.me.memory_info().rss)
            total = 0
            for p in self.me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak_workers = max(self.peak_workers, total)

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        return int(self.me.memory_info().rss)


def soak(backend: str, seconds: float) -> dict[str, Any]:
    in_process = backend in IN_PROCESS
    options: dict[str, Any] = {"max_workers": 2}
    if backend in TAKES_TIMEOUT:
        options["task_timeout"] = 2.0
    lock = threading.Lock()
    settled: collections.Counter[int] = collections.Counter()  # only ids settled twice stay
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.NamedTemporaryFile(prefix="soak-", suffix=".log", delete=False) as f:
        log = f.name
    memory = _Memory()

    def on_done(i: int) -> Any:
        kind = kind_of(i, in_process)

        def done(future: Future[Any]) -> None:
            exc = future.exception()
            if kind == "ok" and exc is None:
                verdict = "ok" if future.result() == i * i else "wrong"
            elif kind == "ok" and isinstance(exc, (WorkerCrashed, WorkerLost)):
                verdict = "collateral"  # failed by another task's crash in its worker
            elif kind != "ok" and isinstance(exc, _expected(kind, backend)):
                verdict = kind
            else:
                verdict = "wrong"
            with lock:
                counts[verdict] += 1
                settled[i] += 1
                if settled[i] == 1:
                    del settled[i]

        return done

    start = time.monotonic()
    ex = get_executor(backend, **options)
    futures: set[Future[Any]] = set()
    i = 0
    try:
        while time.monotonic() - start < seconds:
            while len(futures) < WINDOW:
                future = ex.submit(task, i, in_process, log)
                future.add_done_callback(on_done(i))
                futures.add(future)
                i += 1
            _, futures = wait(futures, timeout=5, return_when=FIRST_COMPLETED)
        wait(futures, timeout=60)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    elapsed = time.monotonic() - start
    end_rss = memory.close()
    runs = collections.Counter(Path(log).read_text().split())
    os.unlink(log)
    with lock:
        faults = {k: n for k, n in counts.items() if k not in ("ok", "wrong", "collateral")}
        return {
            "backend": backend,
            "seconds": round(elapsed, 1),
            "tasks": i,
            "faults": faults,
            "wrong": counts["wrong"],
            "collateral": counts["collateral"],
            "lost": i - sum(counts.values()),
            "duplicated": len(settled),
            "re-runs": sum(n - 1 for n in runs.values() if n > 1),
            "caller_rss_mib": [round(memory.start / 2**20, 1), round(end_rss / 2**20, 1)],
            "peak_caller_rss_mib": round(memory.peak_caller / 2**20, 1),
            "peak_workers_rss_mib": round(memory.peak_workers / 2**20, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per backend (30)")
    parser.add_argument("-k", action="append", default=[], help="backends to run (all)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    names = [n for n in registry.names() if registry.unavailable_reason(n) is None]
    if args.k:
        names = [n for n in names if any(k in n for k in args.k)]
    rows = []
    print(
        f"{'backend':<11}{'s':>6}{'tasks':>9}{'faults':>8}{'wrong':>6}{'lost':>5}{'dup':>5}"
        f"{'collat.':>8}{'re-runs':>8}  caller RSS MiB (start, end, peak)  workers' peak"
    )
    for name in names:
        row = soak(name, args.seconds)
        rows.append(row)
        start, end = row["caller_rss_mib"]
        print(
            f"{name:<11}{row['seconds']:>6}{row['tasks']:>9}{sum(row['faults'].values()):>8}"
            f"{row['wrong']:>6}{row['lost']:>5}{row['duplicated']:>5}{row['collateral']:>8}"
            f"{row['re-runs']:>8}"
            f"  {start:>6} {end:>6} {row['peak_caller_rss_mib']:>6}"
            f"{row['peak_workers_rss_mib']:>18}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    bad = [r["backend"] for r in rows if r["wrong"] or r["lost"] or r["duplicated"]]
    if bad:
        print(f"FAILED: wrong, lost or duplicated results on {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
