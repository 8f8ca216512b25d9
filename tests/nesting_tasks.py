"""Tasks that create executors of their own (module level, so every worker can import them)."""

from __future__ import annotations

import os

from executors import get_executor


def fan_out(inner: str) -> tuple[list[int], bool]:
    """Run a small map and one task on a fresh *inner* executor; (results, ran elsewhere)."""
    with get_executor(inner, max_workers=2) as ex:
        results = list(ex.map(abs, [-1, -2, 3]))
        elsewhere = ex.submit(os.getpid).result(timeout=60) != os.getpid()
    return results, elsewhere


def default_backend() -> tuple[str | None, str]:
    """What ``$EXECUTORS_BACKEND`` says here, and the backend ``get_executor()`` gives."""
    with get_executor() as ex:
        name = type(ex).name
    return os.environ.get("EXECUTORS_BACKEND"), name
