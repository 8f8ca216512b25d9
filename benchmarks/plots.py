"""The benchmark figure of the docs, from one command.

    python benchmarks/plots.py                      # run every row, then draw
    python benchmarks/plots.py --quick              # smaller sizes
    python benchmarks/plots.py --from results.json  # draw saved results (run.py --json)

It writes ``docs/_static/benchmarks.svg`` (``--out`` to change) and the results
beside it as ``benchmarks.json``, so the figure and its numbers travel together.
Each bar is one row of ``run.py``: how many times faster than its peer (log
scale; right of 1 is faster), with the row's goal as a tick. Needs matplotlib
(``pip install 'pluggable-executors[plots]'``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "docs" / "_static" / "benchmarks.svg"


def run_suite(quick: bool) -> list[dict[str, Any]]:
    """Every row of run.py, in a child (a clean interpreter, as run.py expects)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        command = [sys.executable, str(HERE / "run.py"), "--json", str(out)]
        subprocess.run([*command, "--quick"] if quick else command, check=True)
        results: list[dict[str, Any]] = json.loads(out.read_text())
    return results


def draw(results: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    rows = [r for r in results if isinstance(r.get("ratio"), (int, float)) and r["ratio"] > 0]
    if not rows:
        raise SystemExit("no rows with a ratio to draw")
    names = [str(r["row"]) for r in rows]
    ratios = [float(r["ratio"]) for r in rows]
    goals = [r.get("goal") for r in rows]
    met = ["#2a7ab0" if g is None or v >= g else "#c0392b" for v, g in zip(ratios, goals)]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.4))
    ys = range(len(rows))
    ax.barh(ys, ratios, color=met)
    for y, goal in zip(ys, goals):
        if goal:
            ax.plot([goal, goal], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    low = min([*ratios, *(float(g) for g in goals if g)])
    ax.set_xlim(10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(max(ratios))))
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("times the peer's speed (log; black tick: goal; red: below goal)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Date": None})  # no timestamp: the file changes with the data
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--from", dest="source", type=Path, help="results of run.py --json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the figure (.svg, .png)")
    parser.add_argument("--how", help="with --from: how those results were made, for the title")
    args = parser.parse_args(argv)
    if args.source is not None:
        results = json.loads(args.source.read_text())
        how = args.how or f"from {args.source.name}"
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        results = run_suite(args.quick)
        how = f"{'--quick' if args.quick else 'full'} sizes, load average {load:.1f} at start"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    title = (
        f"benchmarks/run.py ({how}): Python {platform.python_version()} "
        f"on {platform.system()}, {os.cpu_count()} CPUs, {len(results)} rows"
    )
    draw(results, args.out, title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
