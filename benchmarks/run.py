"""Benchmark runner: each row measures one of ours against the peer it replaces, same run.

    python benchmarks/run.py                 # every row
    python benchmarks/run.py --quick         # smaller sizes (CI smoke run)
    python benchmarks/run.py -k thread       # rows whose name contains "thread"
    python benchmarks/run.py --json out.json

Rows come from ``benchmarks/bench_*.py``; each module has ``rows(quick) -> list[Row]``.
A Row times ``ours`` and ``peer`` (callables doing one unit of ``work`` items), best
of ``repeat`` runs each, interleaved so both see the same machine load, and
reports items/s and the ratio ours/peer (above 1.0: we are faster). ``goal`` is
the ratio the issue asks for, printed beside it.

A memory row (``kind="memory"``) instead calls ``ours`` and ``peer`` once each;
they return the peak memory (MB) of the process they measure, and the ratio is
peer/ours (above 1.0: we need less).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class Row:
    name: str
    ours: Callable[[], object]
    peer: Callable[[], object]
    work: int
    unit: str = "tasks"
    peer_name: str = ""
    goal: float | None = None
    repeat: int = 5
    setup: Callable[[], object] | None = None
    teardown: Callable[[], object] | None = None
    #: Items the peer does per run, when a slice of ``work`` (a peer too slow for all
    #: of it); rates are compared per item.
    peer_work: int | None = None
    kind: str = "speed"


def best_time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(row: Row) -> dict[str, object]:
    if row.kind == "memory":
        ours_mb, peer_mb = float(row.ours()), float(row.peer())  # type: ignore[arg-type]
        return {
            "row": row.name,
            "peer": row.peer_name,
            "unit": "MB peak",
            "work": row.work,
            "ours_mb": ours_mb,
            "peer_mb": peer_mb,
            "ratio": peer_mb / ours_mb,
            "goal": row.goal,
        }
    if row.setup:
        row.setup()
    try:
        row.ours()  # warm-up: start workers, import modules
        row.peer()
        ours, peer = [], []
        for _ in range(row.repeat):
            ours.append(best_time(row.ours))
            peer.append(best_time(row.peer))
    finally:
        if row.teardown:
            row.teardown()
    o, p = min(ours), min(peer)
    peer_work = row.peer_work or row.work
    return {
        "row": row.name,
        "peer": row.peer_name,
        "unit": row.unit,
        "work": row.work,
        "ours_per_s": row.work / o,
        "peer_per_s": peer_work / p,
        "ratio": (row.work / o) / (peer_work / p),
        "goal": row.goal,
    }


def collect(quick: bool, keyword: str) -> list[Row]:
    sys.path.insert(0, str(HERE))
    rows: list[Row] = []
    for path in sorted(HERE.glob("bench_*.py")):
        module = importlib.import_module(path.stem)
        rows.extend(r for r in module.rows(quick) if keyword in r.name)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("-k", default="", help="only rows whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    print(f"Python {platform.python_version()} on {platform.platform()}")
    print(f"{'row':<44} {'ours/s':>12} {'peer/s':>12} {'ratio':>7} {'goal':>6}  peer")
    for row in collect(args.quick, args.k):
        r = measure(row)
        results.append(r)
        goal = f"{r['goal']:.2f}" if r["goal"] is not None else "-"
        flag = "" if r["goal"] is None or r["ratio"] >= r["goal"] else "  BELOW GOAL"
        if r["unit"] == "MB peak":
            ours, peer = f"{r['ours_mb']:,.0f} MB", f"{r['peer_mb']:,.0f} MB"
        else:
            ours, peer = f"{r['ours_per_s']:,.0f}", f"{r['peer_per_s']:,.0f}"
        print(
            f"{r['row']:<44} {ours:>12} {peer:>12} {r['ratio']:>7.2f} {goal:>6}  {r['peer']}{flag}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
