"""Futures that are cheap to create, for backends that make many of them.

A :class:`concurrent.futures.Future` allocates a :class:`threading.Condition` with
five bound methods; with 100,000 futures alive, those objects cost more cyclic-GC
time than the rest of a task. :class:`LeanFuture` is the same class with the same
fields, built with a condition that looks the lock's methods up per call instead.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future
from concurrent.futures._base import FINISHED, PENDING, RUNNING
from typing import Any, Callable, TypeVar

__all__ = ["LeanFuture"]

R = TypeVar("R")


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
        with self._condition._lock:  # type: ignore[attr-defined]
            if self._state != RUNNING:
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
