"""One Executor protocol for every way Python runs work concurrently.

>>> from executors import get_executor
>>> with get_executor() as ex:          # $EXECUTORS_BACKEND picks it, else "thread"
...     list(ex.map(pow, [2, 3], [5, 2]))
[32, 9]

Backends are looked up by name (``get_executor("pool")``) and imported only
when used; see :mod:`executors.registry` and ``python -m executors info``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import context
from .errors import (
    BackendError,
    BackendNotFound,
    BackendUnavailable,
    BrokenExecutor,
    ExecutorError,
    InvalidOption,
    RemoteError,
    SerializationError,
    TaskTimeout,
    WorkerCrashed,
    WorkerLost,
)
from .protocol import BaseExecutor, Executor
from .registry import (
    available_backends,
    get_executor,
    register_backend,
    unavailable_reason,
    unregister_backend,
)
from .timeouts import with_timeout

if _TYPE_CHECKING:  # what _LAZY imports on first access, visible to type checkers
    from .awaitable import AsyncExecutor, aio
    from .command import Command, CommandError, CommandResult, CommandTimeout, run_command

__version__ = "0.1.0"

__all__ = [
    "AsyncExecutor",
    "BackendError",
    "BackendNotFound",
    "BackendUnavailable",
    "BaseExecutor",
    "BrokenExecutor",
    "Command",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "Executor",
    "ExecutorError",
    "InvalidOption",
    "RemoteError",
    "SerializationError",
    "TaskTimeout",
    "WorkerCrashed",
    "WorkerLost",
    "aio",
    "available_backends",
    "context",
    "get_executor",
    "register_backend",
    "run_command",
    "unavailable_reason",
    "unregister_backend",
    "with_timeout",
]

# Public names whose modules are imported on first access, so that
# ``import executors`` imports no backend, multiprocessing or asyncio.
_LAZY: dict[str, str] = {
    "AsyncExecutor": "executors.awaitable:AsyncExecutor",
    "Command": "executors.command:Command",
    "CommandError": "executors.command:CommandError",
    "CommandResult": "executors.command:CommandResult",
    "CommandTimeout": "executors.command:CommandTimeout",
    "aio": "executors.awaitable:aio",
    "run_command": "executors.command:run_command",
}


def __getattr__(name: str) -> _Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'executors' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(_importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
