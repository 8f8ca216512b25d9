"""Counts per backend for the upstream run: passed, deviations, skipped, failed."""

from __future__ import annotations

import collections
import gc
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from executors._proc.forking import subinterpreters

_counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
_NAME = re.compile(r"::Test_([a-z]+)_")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _NAME.search(report.nodeid)
    if match is None:
        return
    tally = _counts[match.group(1)]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            tally["deviations"] += 1
        elif report.skipped:
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
            tally["deviations" if "deviation:" in reason else "skipped"] += 1
        elif report.passed:
            tally["passed"] += 1
        else:
            tally["failed"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _counts:
        return
    write = terminalreporter.write_line
    write("")
    write("upstream test_concurrent_futures, per backend:")
    write(f"  {'backend':<12}{'passed':>8}{'deviations':>12}{'skipped':>9}{'failed':>8}")
    for backend in sorted(_counts):
        c = _counts[backend]
        write(
            f"  {backend:<12}{c['passed']:>8}{c['deviations']:>12}{c['skipped']:>9}{c['failed']:>8}"
        )


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Replaces tests/conftest.py's check: the upstream ``BaseTestCase.tearDown`` does its
    own (``threading_cleanup``, ``reap_children``), and a deviation may leave its executor.

    One leak matters across tests: an ``interpreter`` executor left alive keeps its
    subinterpreters, and the fork-based tests this pytest worker runs next would be
    refused (a fork then crashes CPython's child, python/cpython#101437). An executor
    dropped without ``shutdown`` ends its workers once collected; wait for that.
    """
    yield
    if not subinterpreters():
        return
    gc.collect()
    deadline = time.monotonic() + 30
    while subinterpreters() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not subinterpreters(), "an interpreter executor was left running"
