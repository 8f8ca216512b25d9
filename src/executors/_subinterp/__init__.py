"""The ``interpreter`` backend's machinery: worker threads that each own a subinterpreter.

Each worker is a thread of this process driving one interpreter with its own
GIL (PEP 684), so CPU-bound tasks run in parallel without child processes.
Data flow (the caller's threads only pickle and queue)::

    submit(fn, x)                 worker thread i (main interpreter)        interpreter i
    pickle (fn, x, ctx) --> queue --> set_running_or_notify_cancel -------> run(payload):
                                      engine.run(script, payload=bytes) -->   unpickle, bind
                                                                              ctx, call fn
    Future <-- set_result / set_exception <-- engine.take() <-- bytes <--   pickle outcome

Only bytes cross between interpreters: the task pickled here, the outcome
``(OK, value)`` or ``(ERR, PackedException)`` pickled there (see
:mod:`executors._subinterp.inside`). A worker starts on demand, creates its
interpreter, imports :mod:`~executors._subinterp.inside` there and runs the
initializer; if that fails, the pool is broken and every task fails with
:class:`~executors.errors.BrokenExecutor`. The interpreter is destroyed by the
thread that created it, when the worker stops.

Engines (:func:`engine`), chosen by Python version:

- 3.14 and later: :mod:`concurrent.interpreters` (PEP 734, standard library);
- 3.13: the same API from the ``interpreters-pep-734`` package
  (``interpreters_backport.interpreters``);
- 3.12: the standard library's ``_xxsubinterpreters`` and ``_xxinterpchannels``
  (the backport's own low-level modules for 3.12, ``interpreters-3-12``, crash
  CPython 3.12.1 on import, so they are never imported);
- elsewhere: none; :func:`unavailable_reason` says what to install or which
  Python is needed.

Locks: ``_Shared.lock`` guards the idle count, the shutdown flag and the broken
error (read and written by the caller's threads and the workers); the queue
itself is a :class:`queue.SimpleQueue`. ``_engine_lock`` guards the one cached
engine.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import platform
import queue
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable, Optional, Tuple

from ..errors import BrokenExecutor
from ..serialization import unpack_exception
from .inside import ERR

__all__ = ["Engine", "InterpreterFailed", "Workers", "engine", "unavailable_reason"]

_INSTALL = "pip install 'pluggable-executors[interpreters]'"


class InterpreterFailed(Exception):
    """A script raised in a worker interpreter (its text holds that interpreter's traceback)."""


class _Interp:
    """One subinterpreter and the channel its scripts answer on."""

    def run(self, script: str, **shared: bytes) -> None:
        raise NotImplementedError

    def take(self) -> bytes:
        """The bytes the last script sent with ``_executors_send``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Pep734(_Interp):
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

    def run(self, script: str, **shared: bytes) -> None:
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


class _Channels(_Interp):
    """3.12's ``_xxsubinterpreters``, with a ``_xxinterpchannels`` channel for answers."""

    def __init__(self) -> None:
        self._sub = importlib.import_module("_xxsubinterpreters")
        self._chan = importlib.import_module("_xxinterpchannels")
        self._id = self._sub.create(isolated=True)  # its own GIL
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

    def run(self, script: str, **shared: bytes) -> None:
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

    def __init__(self, name: str, start: Callable[[], _Interp]) -> None:
        self.name = name
        self.start = start


def _find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def unavailable_reason() -> str | None:
    """Why there are no subinterpreters with their own GIL here, or None when there are."""
    if sys.implementation.name != "cpython":
        return (
            f"needs CPython's subinterpreters (3.12 or later), which "
            f"{platform.python_implementation()} lacks; use 'pool' instead"
        )
    version = ".".join(map(str, sys.version_info[:2]))
    if sys.version_info < (3, 12):
        return (
            "needs Python 3.12 or later (subinterpreters with their own GIL), "
            f"this is {version}; use 'pool' instead"
        )
    if sys.version_info >= (3, 14):
        if not _find("concurrent.interpreters"):  # pragma: no cover - 3.14 builds without it
            return f"needs concurrent.interpreters, which this Python {version} lacks"
        return None
    if sys.version_info >= (3, 13):
        if not _find("interpreters_backport"):
            return (
                "needs the 'interpreters-pep-734' package on Python 3.13; install it with: "
                + _INSTALL
            )
        return None
    if not (_find("_xxsubinterpreters") and _find("_xxinterpchannels")):  # pragma: no cover
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


# -- the worker threads ------------------------------------------------------------

_Item = Optional[Tuple["Future[Any]", bytes]]

_BOOT = "import executors._subinterp.inside as _executors_inside"
_RUN = "_executors_send(_executors_inside.run(_executors_payload))"
_INIT = "_executors_send(_executors_inside.initialize(_executors_payload))"


class _Shared:
    """What the executor and its worker threads share (the threads never see the executor)."""

    __slots__ = ("broken", "engine", "idle", "init", "lock", "queue", "shutdown")

    def __init__(self, engine: Engine, init: bytes | None) -> None:
        self.engine = engine
        self.init = init
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.shutdown = False
        self.broken: BrokenExecutor | None = None

    def fail_queued(self, error: BaseException | None) -> None:
        """Drain the queue: cancel each task (*error* None) or fail it with *error*."""
        stops = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stops += 1
            elif error is None:
                item[0].cancel()
            elif item[0].set_running_or_notify_cancel():
                item[0].set_exception(error)
        for _ in range(stops):  # stop markers belong to other threads: put them back
            self.queue.put(None)

    def break_(self, message: str, cause: BaseException) -> None:
        with self.lock:
            if self.broken is None:
                self.broken = BrokenExecutor(message)
                self.broken.__cause__ = cause
            broken = self.broken
        self.fail_queued(broken)


def _start(shared: _Shared) -> _Interp | None:
    """This worker's interpreter, booted and initialized; None (pool broken) on failure."""
    try:
        interp = shared.engine.start()
    except BaseException as exc:
        shared.break_(
            f"could not create a subinterpreter ({shared.engine.name}): "
            f"{type(exc).__name__}: {exc}; use 'pool' instead",
            exc,
        )
        return None
    try:
        interp.run(_BOOT)
        if shared.init is not None:
            interp.run(_INIT, _executors_payload=shared.init)
            kind, value = pickle.loads(interp.take())
            if kind == ERR:
                error = unpack_exception(value)
                shared.break_(
                    f"the initializer raised {type(error).__name__}: {error}; the interpreter "
                    "pool cannot run tasks (fix the initializer and create a new one)",
                    error,
                )
                interp.close()
                return None
    except BaseException as exc:
        interp.close()
        shared.break_(f"a worker interpreter failed to start: {type(exc).__name__}: {exc}", exc)
        return None
    return interp


def _work(shared: _Shared) -> None:
    interp = _start(shared)
    if interp is None:
        return
    get, get_nowait, lock = shared.queue.get, shared.queue.get_nowait, shared.lock
    try:
        while True:
            try:
                item = get_nowait()
            except queue.Empty:
                with lock:
                    shared.idle += 1
                item = get()
            if item is None:
                return
            future, payload = item
            del item
            if future.set_running_or_notify_cancel():
                _run_one(interp, future, payload)
            del future, payload
    finally:
        interp.close()


def _run_one(interp: _Interp, future: Future[Any], payload: bytes) -> None:
    try:
        interp.run(_RUN, _executors_payload=payload)
        kind, value = pickle.loads(interp.take())
    except BaseException as exc:  # the interpreter itself failed, not the task
        future.set_exception(exc)
        return
    if kind == ERR:
        future.set_exception(unpack_exception(value))
    else:
        future.set_result(value)


class Workers:
    """Up to *max_workers* threads, each with its own interpreter, started on demand."""

    def __init__(
        self, engine: Engine, max_workers: int, init: bytes | None, name_prefix: str
    ) -> None:
        self.max_workers = max_workers
        self.name_prefix = name_prefix
        self.shared = _Shared(engine, init)
        self.threads: list[threading.Thread] = []

    def submit(self, future: Future[Any], payload: bytes) -> None:
        """Queue a task; start a worker when none is idle and there is room."""
        shared = self.shared
        with shared.lock:
            if shared.broken is not None:
                raise shared.broken
            if shared.shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            shared.queue.put((future, payload))
            if shared.idle:
                shared.idle -= 1
            elif len(self.threads) < self.max_workers:
                thread = threading.Thread(
                    target=_work,
                    args=(shared,),
                    name=f"{self.name_prefix}_{len(self.threads)}",
                    daemon=True,
                )
                thread.start()
                self.threads.append(thread)

    def stop(self, *, cancel: bool) -> None:
        """Refuse new tasks; cancel the queued ones if asked; tell each worker to exit."""
        shared = self.shared
        with shared.lock:
            first = not shared.shutdown
            shared.shutdown = True
            threads = len(self.threads)
        if cancel:
            shared.fail_queued(None)
        for _ in range(threads if first else 0):
            shared.queue.put(None)

    def join(self) -> None:
        for thread in list(self.threads):
            if thread is not threading.current_thread():
                thread.join()
