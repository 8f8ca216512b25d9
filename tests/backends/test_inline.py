"""What is special to the inline backend: the caller's thread, order, interrupts."""

from __future__ import annotations

import contextvars
import threading

import pytest

from executors import BrokenExecutor, get_executor

flag: contextvars.ContextVar[str] = contextvars.ContextVar("flag", default="unset")


def test_tasks_run_in_the_calling_thread_before_submit_returns() -> None:
    order: list[str] = []
    with get_executor("inline") as ex:
        future = ex.submit(lambda: order.append("task") or threading.get_ident())
        order.append("after submit")
        assert future.done()
        assert future.result() == threading.get_ident()
    assert order == ["task", "after submit"]


def test_map_runs_in_input_order() -> None:
    seen: list[int] = []
    with get_executor("inline") as ex:
        assert list(ex.map(lambda x: seen.append(x) or x * 2, [3, 1, 2])) == [6, 2, 4]
    assert seen == [3, 1, 2]


def test_keyboard_interrupt_stops_the_caller() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with get_executor("inline") as ex, pytest.raises(KeyboardInterrupt):
        ex.submit(interrupted)


def test_contextvar_changes_in_a_task_do_not_leak() -> None:
    with get_executor("inline") as ex:
        ex.submit(flag.set, "set by task")
    assert flag.get() == "unset"


def test_initializer_runs_in_the_caller_and_failure_breaks() -> None:
    calls: list[int] = []
    with get_executor("inline", initializer=calls.append, initargs=(1,)):
        assert calls == [1]

    def bad() -> None:
        raise RuntimeError("no db")

    with (
        get_executor("inline", initializer=bad) as ex,
        pytest.raises(BrokenExecutor, match="no db"),
    ):
        ex.submit(abs, 1)
