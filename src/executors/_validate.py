"""Checks that every backend applies to the options they share."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, Callable

from .errors import InvalidOption

__all__ = [
    "cpu_count",
    "initializer",
    "max_tasks_per_child",
    "max_workers",
    "positive_int",
    "positive_number",
    "serializer",
    "start_method",
]


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    counter = getattr(os, "process_cpu_count", None)  # 3.13+
    if counter is not None:
        return int(counter() or 1)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def positive_int(name: str, value: int | None) -> int | None:
    """*value* checked as an int greater than 0 (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(f"{name} must be an int greater than 0, or None; got {value!r}")
    if value < 1:
        raise InvalidOption(f"{name} must be greater than 0, got {value!r}")
    return value


def max_workers(value: int | None, *, default: int) -> int:
    """*value* checked as a worker count, or *default* when it is None."""
    checked = positive_int("max_workers", value)
    return default if checked is None else checked


def positive_number(name: str, value: float | None) -> float | None:
    """*value* checked as a positive number of seconds (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidOption(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def initializer(
    fn: Callable[..., Any] | None, args: Iterable[Any]
) -> tuple[Callable[..., Any] | None, tuple[Any, ...]]:
    """Check an ``initializer``/``initargs`` pair."""
    if fn is not None and not callable(fn):
        raise InvalidOption(f"initializer must be callable or None, got {fn!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
        raise InvalidOption(f"initargs must be a tuple of arguments, got {args!r}")
    return fn, tuple(args)


def max_tasks_per_child(value: int | None) -> int | None:
    """*value* checked as a number of tasks before a worker is replaced (or None: never)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidOption(f"max_tasks_per_child must be a positive int or None, got {value!r}")
    return value


def serializer(value: str) -> str:
    """*value* checked as a serializer name (``"auto"``, ``"pickle"`` or ``"cloudpickle"``)."""
    from .serialization import SERIALIZERS

    if value not in SERIALIZERS:
        raise InvalidOption(
            f"serializer must be one of {', '.join(map(repr, SERIALIZERS))}, got {value!r}"
        )
    return value


def start_method(value: str | None, *, default: str) -> str:
    """*value* checked as a :mod:`multiprocessing` start method of this platform."""
    if value is None:
        return default
    import multiprocessing  # not at import time: ``import executors`` stays light

    allowed = multiprocessing.get_all_start_methods()
    if value not in allowed:
        raise InvalidOption(
            f"start_method {value!r} is not available on {sys.platform}; "
            f"choose one of: {', '.join(allowed)}"
        )
    return value
