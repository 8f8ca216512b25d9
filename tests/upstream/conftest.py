"""Counts per backend for the upstream run: passed, deviations, skipped, failed."""

from __future__ import annotations

import collections
import re
from typing import Any

import pytest

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
def _no_leaks() -> None:
    """Replaces tests/conftest.py's check: the upstream ``BaseTestCase.tearDown`` does its
    own (``threading_cleanup``, ``reap_children``), and a deviation may leave its executor."""
