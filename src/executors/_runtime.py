"""What this Python runs in parallel: free-threaded builds, and our shared state without the GIL.

A free-threaded build (PEP 703, PEP 779; ``python3.13t``, ``python3.14t``) is
compiled with ``Py_GIL_DISABLED`` and runs without the GIL unless an extension
module that needs it is imported (or ``PYTHON_GIL=1`` is set); then threads run
Python code on every core, and the ``thread`` backend is CPU-parallel.
``python -m executors info`` prints :func:`describe`.

Our shared state does not rely on the GIL. What guards what:

- ``registry._lock`` (an RLock): the backend table, its aliases, the loaded
  factories, plugin clashes and the plugins-read flag; lookups read single dict
  entries, which are atomic on every build.
- ``_subinterp.engines._engine_lock``: the lazily made interpreter engine.
- ``command._running_lock``: the running commands and the threads that own them.
- each executor's own lock: the ``thread`` and ``interpreter`` backends'
  ``_Shared.lock`` (idle count, shutdown flag, broken error), the pool engine's
  lock (pending work, workers), ``inline``'s and ``subprocess``'s locks;
  ``_live_lock`` in ``thread`` and ``interpreter``: the executors (worker pools) to finish
  at exit.
- :class:`Counter` (its own lock): the numbers in executor and thread names
  (``itertools.count`` is not guaranteed atomic without the GIL).
- ``_remote.worker._functions``: a cache of unpickled functions; each get, set
  and clear is a single dict operation, and a lost entry is only re-unpickled.
- :data:`executors.context.worker` is a :class:`threading.local`; context values
  travel in :mod:`contextvars`, which are per thread on every build.

No free-threaded build is installable on the machines this was tested on: the
``thread`` backend's behaviour there is unverified (see the docs' platform table).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

__all__ = [
    "LINUX_ONLY",
    "Counter",
    "describe",
    "free_threaded",
    "gil_disabled_build",
    "gil_enabled",
    "linux_only",
]

#: Linux-only facilities we use where they exist, each with a portable fallback:
#: ``memfd_create`` (a worker's shared state; else an unlinked temporary file),
#: ``pidfd_open`` (a worker's exit as a descriptor; else the end of its results
#: pipe), ``/proc`` (the processes below a worker; else ``ps``).
LINUX_ONLY = ("memfd_create", "pidfd_open", "/proc")


def gil_disabled_build() -> bool:
    """True on a free-threaded build (compiled with ``Py_GIL_DISABLED``)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is on now (always, except on a free-threaded build that keeps it off)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def free_threaded() -> bool:
    """True when threads run Python code in parallel here: a free-threaded build, GIL off."""
    return gil_disabled_build() and not gil_enabled()


def describe() -> str:
    """One line for ``python -m executors info``: the build, the GIL, what ``thread`` can do."""
    impl = sys.implementation.name
    name = {"cpython": "CPython", "pypy": "PyPy"}.get(impl, impl)
    version = ".".join(map(str, sys.version_info[:3]))
    if free_threaded():
        return (
            f"{name} {version}, free-threaded build, GIL disabled: 'thread' runs "
            "CPU-bound Python code in parallel, on every core"
        )
    if gil_disabled_build():
        return (
            f"{name} {version}, free-threaded build, but the GIL is enabled (PYTHON_GIL=1, "
            "or an extension module that needs it): threads take turns; use 'pool' or "
            "'interpreter' for CPU-bound work"
        )
    return (
        f"{name} {version}, with the GIL: threads take turns running Python code; use "
        "'pool' or 'interpreter' for CPU-bound work"
    )


class Counter:
    """``next(counter)`` numbers from *start*, each once, from any thread, with or without GIL."""

    __slots__ = ("_lock", "_next")

    def __init__(self, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._next = start

    def __next__(self) -> int:
        with self._lock:
            value = self._next
            self._next = value + 1
        return value


def linux_only(facility: str) -> bool:
    """Whether to use *facility* (one of :data:`LINUX_ONLY`) here, if the system has it.

    ``EXECUTORS_PORTABLE=1`` (read at each call) says no to all of them, so the
    portable fallbacks run, and are tested, on Linux too.
    """
    if facility not in LINUX_ONLY:
        raise ValueError(f"facility must be one of {LINUX_ONLY}, got {facility!r}")
    return os.environ.get("EXECUTORS_PORTABLE", "").strip() not in ("1", "true", "yes")
