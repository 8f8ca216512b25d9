"""Tasks whose pickles fail in the worker, for tests/backends/test_wire.py (light: no pytest)."""

from __future__ import annotations


def refuse_to_load() -> None:
    raise AttributeError("this task cannot be loaded here")


class LoadsBadly:
    """Pickles in the caller; unpickling it in the worker raises AttributeError."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (refuse_to_load, ())


def identity(value: object) -> object:
    return value
