"""Queues, locks, events and dicts that tasks share, made for the executor's own backend.

``ex.Queue()``, ``ex.JoinableQueue()``, ``ex.Lock()``, ``ex.Event()`` and
``ex.dict()`` hand out an object that every task of *ex* can use, whatever the
backend, so a producer/consumer or shared-counter program swaps backends
unchanged::

    backend kind      objects                                   lifetime
    ---------------   ---------------------------------------   ------------------
    "local"           queue.Queue, threading.Lock/Event, dict   the caller's
    (thread, inline,  (tasks share the caller's memory)
     asyncio)
    "manager"         proxies to one multiprocessing.Manager    until ex.shutdown()
    (fork, process,   server, started on first use, spawned
     pool, subprocess, (no fork: it copies no thread or pipe);
     remote, dask,    remote: served where the master listens,
     ray)             with its authkey, so workers elsewhere
                      reach it as they reach the master; dask
                      and ray: a local socket when every worker
                      runs here, else the interface facing the
                      cluster, with a key of the executor's
    "none" (a plugin  NotImplementedError naming the alternative
     may choose it)

A backend declares its kind with the class attribute ``sharing``; the default,
``"manager"``, suits any backend whose tasks run on this machine.

Manager objects pickle into tasks with the manager's key, so a task in a forked
child, a spawned process or a fresh interpreter (``subprocess``) reaches the same
object; in a forked child they open a connection of their own. Their blocking
calls take ``block`` and ``timeout`` and raise :class:`queue.Full` and
:class:`queue.Empty` as the standard library's do.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
import weakref
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from multiprocessing.managers import SyncManager
    from types import TracebackType

__all__ = ["SharedDict", "SharedEvent", "SharedLock", "SharedObjects", "SharedQueue"]

_NO_REMOTE = (
    "the {name!r} backend cannot hand out shared objects; pass values in and out "
    "through task arguments and results, or run the program with ex.{what}() on a backend "
    "that has them ('pool' on one machine; 'remote', 'dask' or 'ray' on several)"
)


class _Proxied:
    """A manager proxy that reconnects in a forked child and pickles with its key."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._pid = os.getpid()

    def _p(self) -> Any:
        if self._pid != os.getpid():  # a forked copy: the parent's connection is not ours
            _forget_inherited_connections()
            func, args = _rebuild_args(self._proxy)
            self._proxy = func(*args)
            self._pid = os.getpid()
        return self._proxy

    def __reduce__(self) -> tuple[Any, ...]:
        func, args = _rebuild_args(self._proxy)
        return _attach, (type(self), func, args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} served at {self._proxy._token.address!r}>"


def _rebuild_args(proxy: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    # The standard reduce leaves the key out unless multiprocessing itself is
    # spawning a child; a fork or a fresh interpreter (subprocess) needs it too.
    func, (cls, token, serializer, kwds) = proxy.__reduce__()
    kwds = {**kwds, "authkey": bytes(proxy._authkey)}
    address = token.address  # a path (a local server) or (host, port) (remote's)
    if isinstance(address, tuple) and address[0] in _ANY_HOST:
        from multiprocessing.managers import Token  # every interface: name this machine

        token = Token(token.typeid, (socket.gethostname(), address[1]), token.id)
    return func, (cls, token, serializer, kwds)


_ANY_HOST = ("0.0.0.0", "::", "")


def _attach(kind: type[_Proxied], func: Callable[..., Any], args: tuple[Any, ...]) -> _Proxied:
    _forget_inherited_connections()
    return kind(func(*args))


_clean_in = os.getpid()


def _forget_inherited_connections() -> None:
    """In a child forked without multiprocessing, drop the parent's manager connections.

    multiprocessing keeps one connection per thread and server address, shared by
    every proxy of this process, and resets them in the children it forks itself.
    A child of ``os.fork()`` (the fork backend) would otherwise talk on the
    parent's socket, in the middle of the parent's own calls.
    """
    global _clean_in
    if _clean_in != os.getpid():
        from multiprocessing.managers import BaseProxy

        BaseProxy._address_to_local.clear()
        _clean_in = os.getpid()


class SharedQueue(_Proxied):
    """A FIFO queue served by the executor's manager; the methods of :class:`queue.Queue`."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put *item*; when full, wait (at most *timeout*) or raise :class:`queue.Full`."""
        self._p().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; when empty, wait or raise :class:`queue.Empty`."""
        return self._p().get(block, timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self._p().put_nowait(item)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self._p().get_nowait()

    def task_done(self) -> None:
        """Tell :meth:`join` that an item taken with :meth:`get` is processed."""
        self._p().task_done()

    def join(self) -> None:
        """Wait until every item put has been taken and marked with :meth:`task_done`."""
        self._p().join()

    def qsize(self) -> int:
        """The approximate number of items."""
        return int(self._p().qsize())

    def empty(self) -> bool:
        """True if the queue is (approximately) empty."""
        return bool(self._p().empty())

    def full(self) -> bool:
        """True if the queue is (approximately) full."""
        return bool(self._p().full())


class SharedLock(_Proxied):
    """A lock served by the executor's manager; the methods of :class:`threading.Lock`."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; as :meth:`threading.Lock.acquire`."""
        if not blocking:
            return bool(self._p().acquire(False))
        return bool(self._p().acquire(True, None if timeout < 0 else timeout))

    def release(self) -> None:
        """Give the lock back."""
        self._p().release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class SharedEvent(_Proxied):
    """An event served by the executor's manager; the methods of :class:`threading.Event`."""

    def set(self) -> None:
        """Set the flag; every waiter wakes up."""
        self._p().set()

    def clear(self) -> None:
        """Reset the flag."""
        self._p().clear()

    def is_set(self) -> bool:
        """True once :meth:`set` was called (and not cleared since)."""
        return bool(self._p().is_set())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set (at most *timeout* seconds); return the flag."""
        return bool(self._p().wait(timeout))


class SharedDict(_Proxied, MutableMapping[Any, Any]):
    """A dict served by the executor's manager.

    Each operation is one round trip and atomic on its own; ``d[k] += 1`` is two
    of them, so guard it with a lock when tasks update the same key. Values are
    copies: change a nested value by assigning it again.
    """

    def __getitem__(self, key: Any) -> Any:
        return self._p()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._p()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._p()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._p().keys())

    def __len__(self) -> int:
        return len(self._p())

    def __contains__(self, key: object) -> bool:
        return bool(self._p().__contains__(key))

    def copy(self) -> builtins.dict[Any, Any]:
        """A plain :class:`dict` with the current items."""
        return builtins.dict(self._p().copy())


class _Manager:
    """One manager server per executor, spawned on first use, shut down with it."""

    def __init__(self, served: tuple[tuple[str, int], bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self._manager: SyncManager | None = None
        self._closed = False
        self._served = served  # (address, authkey) to listen on; None: a local one

    def get(self, name: str) -> SyncManager:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"cannot make shared objects after shutdown ({name})")
            if self._manager is None:
                # spawn, not fork: a forked server would keep copies of the caller's
                # pipes (a pool's worker pipes among them) and of locks its threads hold
                import multiprocessing
                from multiprocessing.managers import SyncManager

                address, authkey = self._served or (None, None)
                manager = SyncManager(address, authkey, ctx=multiprocessing.get_context("spawn"))
                manager.start()
                self._manager = manager
                self._finalizer = weakref.finalize(self, manager.shutdown)
            return self._manager

    def close(self) -> None:
        with self._lock:
            self._closed = True
            manager, self._manager = self._manager, None
        if manager is not None:
            self._finalizer.detach()
            manager.shutdown()


class SharedObjects:
    """The ``Queue``/``JoinableQueue``/``Lock``/``Event``/``dict`` methods of every executor.

    Mixed into :class:`executors.BaseExecutor`; *sharing* says which objects
    the backend needs (see the module docstring).
    """

    #: ``"local"`` (tasks share the caller's memory), ``"manager"`` (tasks run in other
    #: processes of this machine) or ``"none"`` (no shared objects on this backend).
    sharing: ClassVar[str] = "manager"

    name: ClassVar[str]
    _sharing_state: _Manager | None = None
    _sharing_lock: ClassVar[threading.Lock] = threading.Lock()

    def _manager(self, what: str) -> SyncManager:
        if self.sharing == "none":
            raise NotImplementedError(_NO_REMOTE.format(name=self.name, what=what))
        with SharedObjects._sharing_lock:
            if self._sharing_state is None:
                self._sharing_state = _Manager(self._shared_served())
        return self._sharing_state.get(what)

    def _shared_served(self) -> tuple[tuple[str, int], bytes] | None:
        """Where the manager listens and its key, for workers on other machines; None: here."""
        return None

    def _close_shared(self) -> None:
        """Shut the manager down, if one was started; later calls are no-ops."""
        state = self._sharing_state
        if state is not None:
            state.close()

    def Queue(self, maxsize: int = 0) -> Any:
        """A FIFO queue every task of this executor can ``put`` to and ``get`` from.

        :param maxsize: how many items it holds before ``put`` blocks (0: no limit).
        :raises NotImplementedError: on a backend without shared objects (``sharing = "none"``).

        >>> import queue
        >>> from executors import get_executor
        >>> with get_executor("inline") as ex:
        ...     q = ex.Queue(maxsize=1)
        ...     q.put("job")
        ...     q.get(), q.empty()
        ('job', True)
        """
        if self.sharing == "local":
            import queue

            return queue.Queue(maxsize)
        return SharedQueue(self._manager("Queue").Queue(maxsize))

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        """A :meth:`Queue` whose ``join()`` waits until every item is ``task_done()``.

        Every queue this module hands out has ``task_done`` and ``join`` (as
        :class:`queue.Queue` does); this name is for programs written against
        :class:`multiprocessing.JoinableQueue`.
        """
        return self.Queue(maxsize)

    def Lock(self) -> Any:
        """A lock every task of this executor can hold in turn (``with lock: ...``)."""
        if self.sharing == "local":
            return threading.Lock()
        return SharedLock(self._manager("Lock").Lock())

    def Event(self) -> Any:
        """A flag tasks can ``set``, ``clear`` and ``wait`` for."""
        if self.sharing == "local":
            return threading.Event()
        return SharedEvent(self._manager("Event").Event())

    def dict(self, *args: Any, **kwargs: Any) -> Any:
        """A dict every task of this executor reads and writes (arguments as :class:`dict`)."""
        if self.sharing == "local":
            return builtins.dict(*args, **kwargs)
        return SharedDict(self._manager("dict").dict(*args, **kwargs))
