"""The caller's side of the engine backends: local queue, in-flight window, batches, futures.

See :mod:`executors._cluster` for the data flow.
"""

from __future__ import annotations

import collections
import functools
import heapq
import logging
import pickle
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, RUNNING
from typing import Any, Callable, Protocol, TypeVar

from .. import context
from .._compat import ParamSpec
from .._deadline import describe
from .._futures import LeanFuture
from .._wording import initializer_failed
from ..errors import BrokenExecutor, TaskTimeout
from ..serialization import unpack_exception
from ..timeouts import split
from .runner import Batch, Outcome, load_result, pack_task

__all__ = ["Dispatcher", "Done", "Engine", "EngineFuture"]

R = TypeVar("R")
P = ParamSpec("P")

#: A batch aims to keep a worker busy this long; fewer round trips per task.
_BATCH_SECONDS = 0.02
_MAX_BATCH = 1000

#: What an engine calls once a batch is over: its :class:`Outcome` or the engine's error.
Done = Callable[["Outcome | BaseException"], None]


class Engine(Protocol):
    """What a backend's machinery gives the dispatcher."""

    def send(self, batch: Batch, done: Done) -> Any:
        """Start *batch* on the cluster; call ``done(outcome or engine error)`` once.

        Returns a handle for :meth:`stop`.
        """

    def stop(self, handle: Any) -> bool:
        """Stop the batch of *handle* if the engine can (True), else False."""

    def capacity(self) -> int:
        """Tasks the cluster can run at once now (its worker threads, or CPUs)."""

    def close(self) -> None:
        """Release the cluster (or the connection to it)."""

    def reach_back_host(self) -> str | None:
        """The address of this machine that every worker of the cluster can reach, for
        ``ex.Queue()`` and the rest; None when every worker runs on this machine."""


class EngineFuture(LeanFuture[R]):
    """A :class:`concurrent.futures.Future` whose ``cancel()`` can stop a running task.

    While its task runs alone in a batch on an engine that can stop tasks (Ray),
    ``cancel()`` asks the engine to stop it and is True; otherwise it is False
    once the task has left the local queue, as the standard library's is.
    """

    _stop: Callable[[], bool] | None = None
    _timeout: float | None = None  # its deadline: task_timeout, or its own (with_timeout)
    _label = "the task"  # its function's name, for the TaskTimeout message

    def cancel(self) -> bool:
        if self._cancel_now():
            return True
        with self._condition:
            stop = self._stop
            if self._state != RUNNING or stop is None or not stop():
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


#: A queued task: its future, its function (for messages) and the task pickled.
_Item = tuple["EngineFuture[Any]", Callable[..., Any], bytes]


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    try:  # a future cancelled meanwhile (see EngineFuture.cancel) takes no result
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass


def _replay(data: bytes) -> None:
    try:
        records: list[logging.LogRecord] = pickle.loads(data)
    except BaseException as exc:  # an extra= whose class the caller cannot import
        logging.getLogger("executors").warning(
            "the log records of a cluster task could not be unpickled here: %s: %s",
            type(exc).__name__,
            exc,
        )
        return
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class Dispatcher:
    """The local queue, the in-flight window and the batching of one engine executor."""

    def __init__(
        self,
        engine: Engine,
        max_workers: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        task_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.task_timeout = task_timeout
        # (deadline, seq, future, handle, seconds) of tasks sent alone under a deadline;
        # one watchdog thread per executor, started with the first.
        self._deadlines: list[tuple[float, int, EngineFuture[Any], Any, float]] = []
        self._timed = task_timeout is not None  # a task has had a deadline: no batching
        self._seq = 0
        self._watchdog: threading.Thread | None = None
        self.max_workers = max_workers
        self._init = initializer
        self._initargs = initargs
        self._token = uuid.uuid4().hex
        self._queue: collections.deque[_Item] = collections.deque()
        self._in_flight = 0
        self._per_task: float | None = None  # measured seconds per task, smoothed
        self._lock = threading.Condition()
        self._shutdown = False
        self._closed = False
        self._broken: BrokenExecutor | None = None
        self._closer: threading.Thread | None = None

    def submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        future: EngineFuture[R] = EngineFuture()
        fn, future._timeout = split(fn, self.task_timeout)
        if future._timeout is not None:
            self._timed = True
            future._label = describe(fn)
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        # Pickled here, in the caller's thread: what will not pickle fails submit().
        payload = pack_task((fn, args, kwargs, context.capture()))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append((future, fn, payload))
        self._pump()
        return future

    def _batch_size(self) -> int:
        per_task = self._per_task
        if per_task is None or per_task >= _BATCH_SECONDS or self._timed:
            return 1
        # Spread what is queued over the free slots, so batching never idles a worker.
        spread = -(-len(self._queue) // max(1, self.max_workers - self._in_flight))
        return max(1, min(int(_BATCH_SECONDS / max(per_task, 1e-6)), spread, _MAX_BATCH))

    def _take(self) -> list[_Item] | None:
        """Under the lock: the next batch to send, its futures marked RUNNING."""
        if self._in_flight >= self.max_workers or self._broken is not None:
            return None
        size = self._batch_size()
        items: list[_Item] = []
        while self._queue and len(items) < size:
            item = self._queue.popleft()
            if item[0].set_running_or_notify_cancel():
                items.append(item)
        if items:
            self._in_flight += 1
        return items or None

    def _pump(self) -> None:
        while True:
            with self._lock:
                items = self._take()
            if items is None:
                return
            batch = Batch(
                self._token,
                self._init,
                self._initargs,
                logging.getLogger().getEffectiveLevel(),
                [payload for _, _, payload in items],
            )
            try:
                handle = self.engine.send(batch, functools.partial(self._done, items))
            except BaseException as exc:  # e.g. an argument the engine cannot serialize
                self._done(items, exc)
                continue
            if len(items) == 1:
                items[0][0]._stop = lambda h=handle: self.engine.stop(h)
                seconds = items[0][0]._timeout
                if seconds is not None:
                    self._watch(items[0][0], handle, seconds)

    def _watch(self, future: EngineFuture[Any], handle: Any, seconds: float) -> None:
        with self._lock:
            self._seq += 1
            deadline = time.monotonic() + seconds
            heapq.heappush(self._deadlines, (deadline, self._seq, future, handle, seconds))
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._expire, name="executors-engine-timeouts", daemon=True
                )
                self._watchdog.start()
            self._lock.notify_all()

    def _expire(self) -> None:
        """Fail each task still running at its deadline with TaskTimeout, and stop it if the
        engine can (Ray); dask cannot, so its worker finishes it and the result is dropped."""
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._deadlines and self._deadlines[0][0] <= now:
                        _, _, future, handle, seconds = heapq.heappop(self._deadlines)
                        break
                    wait = self._deadlines[0][0] - now if self._deadlines else None
                    self._lock.wait(wait)
            if future.done():
                continue
            future._stop = None
            _settle(
                future,
                False,
                TaskTimeout(f"{future._label} ran longer than task_timeout={seconds:g} s"),
            )
            self.engine.stop(handle)

    def _done(self, items: list[_Item], outcome: Outcome | BaseException) -> None:
        try:
            self._deliver(items, outcome)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()
            self._pump()

    def _deliver(self, items: list[_Item], outcome: Outcome | BaseException) -> None:
        for future, _, _ in items:
            future._stop = None
        if isinstance(outcome, BaseException):
            for future, _, _ in items:
                _settle(future, False, outcome)
            return
        _replay(outcome.records)
        if outcome.broken is not None:
            self._break(unpack_exception(outcome.broken), [f for f, _, _ in items])
            return
        # Only batches that succeeded teach the time per task: a task that fails at once
        # says nothing of how long the others take, and sending them all in one batch
        # after it would let map() no longer cancel them when it stops at that error.
        if outcome.results and all(ok for ok, _ in outcome.results):
            seconds = outcome.seconds / len(outcome.results)
            old = self._per_task
            self._per_task = seconds if old is None else (old + seconds) / 2
        for (future, fn, _), (ok, value) in zip(items, outcome.results):
            if ok:
                _settle(future, *load_result(fn, value))
            else:
                _settle(future, False, unpack_exception(value))

    def _break(self, cause: BaseException, running: list[EngineFuture[Any]]) -> None:
        broken = initializer_failed(self._init, cause, " on a cluster worker")
        with self._lock:
            self._broken = self._broken or broken
            queued = [f for f, _, _ in self._queue]
            self._queue.clear()
        for future in running + [f for f in queued if f.set_running_or_notify_cancel()]:
            _settle(future, False, broken)

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                for future, _, _ in self._queue:
                    future.cancel()
                self._queue.clear()
            if self._closed or self._closer is not None:
                closer = self._closer
            else:
                closer = self._closer = threading.Thread(
                    target=self._close_when_idle, name="executors-engine-closer", daemon=True
                )
                closer.start()
        if wait and closer is not None and closer is not threading.current_thread():
            closer.join()

    def _close_when_idle(self) -> None:
        with self._lock:
            # A broken executor's queue is empty; each batch in flight ends in _done.
            self._lock.wait_for(lambda: not self._queue and self._in_flight == 0)
            self._closed = True
            self._lock.notify_all()
            watchdog = self._watchdog
        if watchdog is not None:
            watchdog.join()
        self.engine.close()
