"""Engines: how to make a worker interpreter (and the channel it answers on) on this Python."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
import threading
from typing import Any, Callable

__all__ = ["Engine", "Interp", "InterpreterFailed", "engine", "unavailable_reason"]

_INSTALL = "pip install 'pluggable-executors[interpreters]'"


class InterpreterFailed(Exception):
    """A script raised in a worker interpreter (its text holds that interpreter's traceback)."""


class Interp:
    """One subinterpreter and the channel its scripts answer on."""

    def run(self, script: str, **shared: str | bytes) -> None:
        raise NotImplementedError

    def take(self) -> bytes:
        """The bytes the last script sent with ``_executors_send``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Pep734(Interp):
    """``concurrent.interpreters`` (3.14+) or its backport (3.13)."""

    def __init__(self, module: Any, queues_module: str) -> None:
        self._failed: type[BaseException] = module.ExecutionFailed
        self._interp = module.create()
        try:
            self._queue = module.create_queue()
            self._interp.exec(f"import {queues_module}")  # before a queue can cross
            self._interp.prepare_main(_executors_queue=self._queue)
            self.run("_executors_send = _executors_queue.put_nowait")
        except BaseException:
            self._interp.close()
            raise

    def run(self, script: str, **shared: str | bytes) -> None:
        if shared:
            self._interp.prepare_main(**shared)
        try:
            self._interp.exec(script)
        except self._failed as exc:
            raise InterpreterFailed(str(exc)) from None

    def take(self) -> bytes:
        data: bytes = self._queue.get_nowait()
        return data

    def close(self) -> None:
        self._interp.close()


class _Channels(Interp):
    """3.12's ``_xxsubinterpreters``, with a ``_xxinterpchannels`` channel for answers."""

    def __init__(self) -> None:
        self._sub = importlib.import_module("_xxsubinterpreters")
        self._chan = importlib.import_module("_xxinterpchannels")
        # Sharing the main interpreter's GIL: with a GIL of its own, 3.12.1 corrupts the
        # heap when the caller pickles (cloudpickle) while a worker runs ("free(): invalid
        # pointer" in the tuple free list at exit, or a crash mid-run). Tasks run one at a
        # time here; 3.13+ runs them in parallel.
        self._id = self._sub.create(isolated=False)
        self._cid = self._chan.create()
        try:
            # Two CPython 3.12 bugs (seen on 3.12.1) corrupt memory: destroying an
            # interpreter that imported the C accelerator _asyncio (asyncio's pure-Python
            # Future and Task stand in for it), and signal.getsignal(), which hands out
            # the main interpreter's handler objects (asyncio.run() calls it; a worker
            # interpreter cannot set handlers anyway, so it answers None: "not set from
            # Python").
            self._sub.run_string(
                self._id,
                "import sys, signal, _xxinterpchannels\n"
                "sys.modules['_asyncio'] = None\n"
                "signal.getsignal = lambda signalnum: None\n"
                "def _executors_send(data):\n"
                "    _xxinterpchannels.send(_executors_cid, data)\n",
                {"_executors_cid": self._cid},
            )
        except BaseException:
            self.close()
            raise

    def run(self, script: str, **shared: str | bytes) -> None:
        try:
            self._sub.run_string(self._id, script, shared or None)
        except self._sub.RunFailedError as exc:
            raise InterpreterFailed(str(exc)) from None

    def take(self) -> bytes:
        data: bytes = self._chan.recv(self._cid)
        return data

    def close(self) -> None:
        try:
            self._chan.destroy(self._cid)
        finally:
            self._sub.destroy(self._id)


class Engine:
    """How to make worker interpreters on this Python; ``name`` says which API."""

    def __init__(self, name: str, start: Callable[[], Interp]) -> None:
        self.name = name
        self.start = start


def _find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def unavailable_reason(
    version: tuple[int, ...] | None = None, implementation: str | None = None
) -> str | None:
    """Why there are no subinterpreters with their own GIL here, or None when there are.

    *version* and *implementation* default to this Python's (tests pass others).
    """
    version = tuple(sys.version_info[:2]) if version is None else tuple(version[:2])
    implementation = implementation or sys.implementation.name
    if implementation != "cpython":
        name = (
            platform.python_implementation()
            if implementation == sys.implementation.name
            else implementation
        )
        return (
            f"needs CPython's subinterpreters (3.12 or later), which {name} lacks; "
            "use 'pool' instead"
        )
    shown = ".".join(map(str, version))
    if version < (3, 12):
        return (
            "needs Python 3.12 or later (subinterpreters with their own GIL), "
            f"this is {shown}; use 'pool' instead"
        )
    if version >= (3, 14):
        if not _find("concurrent.interpreters"):  # pragma: no cover - 3.14 builds without it
            return f"needs concurrent.interpreters, which this Python {shown} lacks"
        return None
    if version >= (3, 13):
        if not _find("interpreters_backport"):
            return (
                "needs the 'interpreters-pep-734' package on Python 3.13; install it with: "
                + _INSTALL
            )
        return None
    if not (_find("_xxsubinterpreters") and _find("_xxinterpchannels")):
        return "needs the _xxsubinterpreters module, which this Python 3.12 build lacks"
    return None


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    """The engine for this Python (made once); call only when :func:`unavailable_reason` is None."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _make_engine()
        return _engine


def _make_engine() -> Engine:
    if sys.version_info >= (3, 14):
        mod = importlib.import_module("concurrent.interpreters")
        return Engine("concurrent.interpreters", lambda: _Pep734(mod, "concurrent.interpreters"))
    if sys.version_info >= (3, 13):
        backport = importlib.import_module("interpreters_backport.interpreters")
        queues = "interpreters_backport.interpreters.queues"
        importlib.import_module(queues)
        return Engine("interpreters-pep-734", lambda: _Pep734(backport, queues))
    return Engine("_xxsubinterpreters", _Channels)
