"""Rows for command tasks and the subprocess backend.

* ``true`` commands through run_command on thread, subprocess (and pool when the
  registry has it) vs a ThreadPoolExecutor calling ``subprocess.run`` (goal 0.9x);
* a no-op callable on the subprocess backend with reused workers vs the pool
  backend when present (goal: within 2x the cost per task, 0.5), else thread,
  and vs ProcessPoolExecutor;
* a map of small Python tasks (chunked) vs ProcessPoolExecutor's best chunked map;
* ``fresh=True`` vs a bare ``subprocess.run([sys.executable, "-c", "pass"])``
  with the same parallelism (goal: within 1.2x the cost, 0.83).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable

from run import Row

from executors import get_executor, registry, run_command

WORKERS = 4


def _true_commands(ex: Any, n: int) -> Callable[[], None]:
    def go() -> None:
        for f in [ex.submit(run_command, ["true"]) for _ in range(n)]:
            assert f.result().returncode == 0

    return go


def _peer_commands(pool: ThreadPoolExecutor, n: int) -> Callable[[], None]:
    def one() -> int:
        return subprocess.run(["true"], capture_output=True, check=False).returncode

    def go() -> None:
        for f in [pool.submit(one) for _ in range(n)]:
            assert f.result() == 0

    return go


def _calls(ex: Any, n: int) -> Callable[[], None]:
    def go() -> None:
        for f in [ex.submit(os.getpid) for _ in range(n)]:
            f.result()

    return go


def _bare_interpreters(pool: ThreadPoolExecutor, n: int) -> Callable[[], None]:
    def one() -> int:
        return subprocess.run([sys.executable, "-c", "pass"], check=False).returncode

    def go() -> None:
        for f in [pool.submit(one) for _ in range(n)]:
            assert f.result() == 0

    return go


def rows(quick: bool) -> list[Row]:
    n_cmd = 200 if quick else 2_000
    n_call = 2_000 if quick else 20_000
    n_fresh = 20 if quick else 100
    names = registry.names()
    peer = ThreadPoolExecutor(WORKERS)
    owned: list[Any] = [peer]
    out: list[Row] = []

    def make(spec: str, **options: Any) -> Any:
        ex = get_executor(spec, **options)
        owned.append(ex)
        return ex

    cmd_backends = ["thread", "subprocess"] + (["pool"] if "pool" in names else [])
    for name in cmd_backends:
        ex = make(name, max_workers=WORKERS)
        out.append(
            Row(
                f"{name}: {n_cmd:,} `true` commands",
                _true_commands(ex, n_cmd),
                _peer_commands(peer, n_cmd),
                n_cmd,
                unit="commands",
                peer_name=f"ThreadPoolExecutor({WORKERS}) + subprocess.run",
                goal=0.9,
                repeat=3,
            )
        )

    reused = make("subprocess", max_workers=2)
    other = "pool" if "pool" in names else "thread"
    versus = make(other, max_workers=2)
    out.append(
        Row(
            "subprocess: no-op calls, reused workers",
            _calls(reused, n_call),
            _calls(versus, n_call),
            n_call,
            peer_name=f"{other} backend (2 workers)",
            goal=0.5 if other == "pool" else None,  # the goal is stated against pool
        )
    )
    ppe = ProcessPoolExecutor(2)
    owned.append(ppe)
    out.append(
        Row(
            "subprocess: no-op calls vs the stdlib pool",
            _calls(reused, n_call),
            _calls(ppe, n_call),
            n_call,
            peer_name="ProcessPoolExecutor(2)",
        )
    )

    n_map = 20_000 if quick else 200_000
    out.append(
        Row(
            f"subprocess: map of {n_map:,} abs(x)",
            lambda: list(reused.map(abs, range(n_map))),
            lambda: list(ppe.map(abs, range(n_map), chunksize=64)),
            n_map,
            unit="items",
            peer_name="ProcessPoolExecutor(2).map(chunksize=64)",
            repeat=3,
        )
    )

    fresh = make("subprocess", max_workers=2, fresh=True)
    peer2 = ThreadPoolExecutor(2)
    owned.append(peer2)

    def close() -> None:
        for ex in owned:
            ex.shutdown()

    out.append(
        Row(
            "subprocess: fresh=True no-op calls",
            _calls(fresh, n_fresh),
            _bare_interpreters(peer2, n_fresh),
            n_fresh,
            unit="interpreters",
            peer_name="2 threads + subprocess.run([python, -c, pass])",
            goal=1 / 1.2,
            repeat=3,
            teardown=close,
        )
    )
    return out
