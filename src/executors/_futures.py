"""Futures that are cheap to create, for backends that make many of them.

A :class:`concurrent.futures.Future` allocates a :class:`threading.Condition` with
five bound methods; with 100,000 futures alive, those objects cost more cyclic-GC
time than the rest of a task. :class:`LeanFuture` is the same class with the same
fields, built with a condition that looks the lock's methods up per call instead.
"""

from __future__ import annotations

import collections
import os
import threading
from concurrent.futures import Future
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import Any, Callable, TypeVar

__all__ = ["LazyFuture", "LeanFuture"]

R = TypeVar("R")

_OPEN = (PENDING, RUNNING)  # the states a result may still arrive in
_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


class _Condition(threading.Condition):
    """A :class:`threading.Condition` on an RLock, without five bound methods per instance.

    Same behaviour; the lock's methods are looked up per call instead. With 100,000
    futures alive, the objects the standard one allocates are a third of the cost of a
    task (cyclic GC time), so this is the one place we mirror a private layout.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._waiters: collections.deque[Any] = collections.deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def _release_save(self) -> Any:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined, no-any-return]


# Future.__init__ sets exactly these, and the RLock has the methods Condition borrows;
# on a Python where either differs, LeanFuture is a plain Future.
_LEAN = sorted(vars(Future())) == [
    "_condition",
    "_done_callbacks",
    "_exception",
    "_result",
    "_state",
    "_waiters",
] and all(hasattr(threading.RLock(), m) for m in ("_release_save", "_acquire_restore", "_is_owned"))


class LeanFuture(Future[R]):
    """A :class:`concurrent.futures.Future`, cheaper to create; behaves the same.

    >>> f = LeanFuture()
    >>> f.set_result(3)
    >>> f.result(), f.done()
    (3, True)
    """

    def __init__(self) -> None:
        if not _LEAN:  # pragma: no cover - a Python whose Future has other fields
            super().__init__()
            return
        self._condition = _Condition()
        self._state = PENDING
        self._result: R | None = None
        self._exception: BaseException | None = None
        self._waiters = []
        self._done_callbacks: list[Callable[[Future[R]], object]] = []

    # The per-task hot path of backends that make many futures: the same transitions as
    # set_running_or_notify_cancel() and set_result(), holding the lock directly instead
    # of through Condition's Python methods.

    def _set_running(self) -> bool:
        with self._condition._lock:  # type: ignore[attr-defined]
            if self._state == PENDING:
                self._state = RUNNING
                return True
        return self.set_running_or_notify_cancel()  # cancelled: tell the waiters

    def _finish(self, result: Any) -> None:
        """``set_result`` from PENDING or RUNNING; a future cancelled meanwhile is left alone."""
        with self._condition._lock:  # type: ignore[attr-defined]
            if self._state not in _OPEN:
                return  # cancelled meanwhile: nothing to tell
            self._result = result
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
            if self._condition._waiters:  # type: ignore[attr-defined]
                self._condition.notify_all()
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def result(self, timeout: float | None = None) -> R:
        """As :meth:`concurrent.futures.Future.result`, without the lock once it is done."""
        if self._state == FINISHED and self._exception is None:
            return self._result  # type: ignore[return-value]  # set before the state
        return super().result(timeout)

    # The transitions engines need beyond the standard ones; every access to a Future's
    # internals (_state, _condition, _waiters, ...) stays in this module.

    def _open(self) -> bool:
        """Whether a result may still arrive (PENDING or RUNNING); reads the state lock-free."""
        return self._state in _OPEN

    def cancel(self) -> bool:
        """As :meth:`concurrent.futures.Future.cancel`; ``wait()`` sees it done at once."""
        return self._cancel_now()

    def _cancel_now(self) -> bool:
        """:meth:`concurrent.futures.Future.cancel` itself: cancels a future not yet running.

        The standard executors tell ``wait()`` and ``as_completed()`` about a cancelled
        future only when a worker later dequeues it; engines here drop it instead, so
        they are told now (CANCELLED_AND_NOTIFIED), and :meth:`set_running_or_notify_cancel`
        returns False for it as for any cancelled future. For subclasses whose
        ``cancel()`` also stops a running task.
        """
        if not Future.cancel(self):
            return False
        with self._condition:
            if self._state == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for waiter in self._waiters:
                    waiter.add_cancelled(self)
        return True

    def set_running_or_notify_cancel(self) -> bool:
        """As :class:`concurrent.futures.Future`'s; False for a future already told cancelled."""
        if self._state == CANCELLED_AND_NOTIFIED:
            return False
        return super().set_running_or_notify_cancel()

    def _cancel_running(self, stop: Callable[[], object] | None = None) -> bool:
        """Move a RUNNING future to cancelled, telling waiters and callbacks; False if not running.

        ``set_running_or_notify_cancel()`` would tell the waiters the same way. *stop*
        (which stops the task) is called after the state changed, before the callbacks.
        """
        with self._condition:
            if self._state != RUNNING:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        if stop is not None:
            stop()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


_COND_LOCK = threading.Lock()  # guards the lazy creation of each LazyFuture's condition


def _unlock_in_child() -> None:
    if _COND_LOCK.locked():  # held by a thread of the parent's that the child does not have
        _COND_LOCK.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unlock_in_child)


class LazyFuture(LeanFuture[R]):
    """A :class:`LeanFuture` whose condition is made only when first needed.

    Someone waiting, adding a callback or cancelling makes it; until then the hot
    path (:meth:`_set_running`, :meth:`_finish`, :meth:`result` once done) changes
    state under one module-wide lock instead. A burst of small tasks whose results
    arrive before anyone asks costs three objects less each, and less cyclic GC.

    >>> f = LazyFuture()
    >>> f._set_running(), f._finish(3), f.result(), f.done()
    (True, None, 3, True)
    """

    def __init__(self) -> None:
        self._cond: threading.Condition | None = None
        if not _LEAN:  # pragma: no cover - a Python whose Future has other fields
            super().__init__()  # sets _condition and the lists, through the setters below
            return
        self._state = PENDING
        self._result = None
        self._exception = None

    # The condition and the two lists are made together, on first use. Every path of
    # concurrent.futures that touches _waiters or _done_callbacks holds the condition
    # first (wait(), as_completed(), add_done_callback(), set_*, cancel()), so until
    # then they are empty by definition: four tracked objects fewer per future.

    @property
    def _condition(self) -> threading.Condition:
        cond = self._cond
        if cond is None:
            with _COND_LOCK:
                cond = self._cond
                if cond is None:
                    self._waiting: list[Any] = []
                    self._callbacks: list[Callable[[Future[R]], object]] = []
                    cond = _Condition() if _LEAN else threading.Condition()
                    self._cond = cond  # last: a lock-free reader seeing it sees the lists
        return cond

    @_condition.setter
    def _condition(self, cond: threading.Condition) -> None:
        self._cond = cond

    @property
    def _waiters(self) -> list[Any]:
        if self._cond is None:
            self._condition  # noqa: B018 - makes the lists
        return self._waiting

    @_waiters.setter
    def _waiters(self, waiters: list[Any]) -> None:
        self._waiting = waiters

    @property
    def _done_callbacks(self) -> list[Callable[[Future[R]], object]]:
        if self._cond is None:
            self._condition  # noqa: B018 - makes the lists
        return self._callbacks

    @_done_callbacks.setter
    def _done_callbacks(self, callbacks: list[Callable[[Future[R]], object]]) -> None:
        self._callbacks = callbacks

    def _set_running(self) -> bool:
        if self._cond is None:
            with _COND_LOCK:
                if self._cond is None and self._state == PENDING:
                    self._state = RUNNING  # nobody waits or listens yet: nothing to tell
                    return True
        return super()._set_running()

    def _finish(self, result: Any) -> None:
        if self._cond is None:
            with _COND_LOCK:
                if self._cond is None:
                    if self._state in _OPEN:
                        self._result = result
                        self._state = FINISHED
                    return
        super()._finish(result)

    def done(self) -> bool:
        """As :meth:`concurrent.futures.Future.done`, without making the condition."""
        return self._state in _DONE
