"""The base class of the fork, process, pool and subprocess executors: shared options and checks."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable

from .. import _validate
from ..protocol import OwnsProcesses
from ..serialization import Dumps, PickledCall, get_pickler

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ProcessBackend"]


class ProcessBackend(OwnsProcesses):
    """What the fork, process, pool and subprocess executors share: options, defaults, platforms."""

    max_workers: int

    def _take_options(
        self,
        max_workers: int | None,
        initializer: Callable[..., object] | None,
        initargs: Iterable[Any],
        task_timeout: float | None,
        serializer: str,
    ) -> Dumps:
        """Check and keep the shared options; return the pickler *serializer* names."""
        self.max_workers = _validate.max_workers(max_workers, default=self.default_max_workers())
        self._init, self._initargs = _validate.initializer(initializer, initargs)
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        pickler = get_pickler(serializer)
        self.serializer = serializer
        return pickler

    def _take_start_method(self, value: str | None, default: str, child_module: str) -> str:
        """Check and keep ``start_method``; the forkserver is asked to preload *child_module*."""
        self.start_method = _validate.start_method(value, default=default)
        if self.start_method == "forkserver":
            _preload_in_forkserver(child_module)
        if self.start_method != "fork" and self._init is not None:  # by value where need be
            self._init, self._initargs = (
                PickledCall(self._init, self._initargs, get_pickler(self.serializer)),
                (),
            )
        return self.start_method

    @classmethod
    def default_max_workers(cls) -> int:
        """The number of CPUs this process may use."""
        return _validate.cpu_count()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Needs POSIX pipes a manager thread can select on."""
        if os.name != "posix":
            return f"needs POSIX pipes, which {sys.platform} lacks; use 'thread' instead"
        return None


def _preload_in_forkserver(module: str) -> None:
    """Have multiprocessing's forkserver import *module* once, not every child it forks.

    *module* holds what a child runs. Otherwise each child imports ``executors``
    anew: 180 ms a task on a loaded 2-core machine, against 12 ms with the
    preload. It works only before the forkserver starts, and keeps whatever
    the program asked it to preload.
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver
    modules = getattr(server, "_preload_modules", None)
    if isinstance(modules, list) and module not in modules:
        server.set_forkserver_preload([*modules, module])
