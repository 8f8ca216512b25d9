"""What the ``dask`` and ``ray`` executors share: common options, the dispatcher, availability.

A backend module (``backends/dask.py``, ``backends/ray.py``) keeps what is its own:
its engine's options and how it connects. :class:`EngineExecutor` checks the options
every engine backend takes, starts the :class:`~executors._cluster.dispatch.Dispatcher`
in front of the engine, and answers ``unavailable_reason()`` from the package it needs.
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import os
import socket
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Callable, ClassVar, TypeVar

from .. import _validate
from ..errors import BackendUnavailable, InvalidOption
from ..protocol import BaseExecutor
from .dispatch import Dispatcher, Engine

__all__ = ["EngineExecutor", "import_engine", "local_address_toward"]

R = TypeVar("R")


def _needs(package: str, extra: str) -> str:
    install = f"pip install 'pluggable-executors[{extra}]'"
    return f"needs the {package!r} package; install it with: {install}"


def import_engine(backend: str, package: str) -> Any:
    """Import *package* (``distributed``, ``ray``), or :class:`BackendUnavailable` saying how."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {backend!r} {_needs(package, backend)}") from exc


def local_address_toward(host: str) -> str | None:
    """This machine's address on the route to *host* (what a peer there would reach), or
    None when *host* is this machine (a loopback address).

    A UDP socket's ``connect`` picks the route without sending anything. When the route
    cannot be found, ``""``: every interface (the proxies then name this host by name).
    """
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(sockaddr)
            local = str(probe.getsockname()[0])
    except OSError:
        return ""
    return None if ipaddress.ip_address(local.partition("%")[0]).is_loopback else local


class EngineExecutor(BaseExecutor):
    """What the dask and ray executors share: submit through a :class:`Dispatcher`."""

    #: ``ex.Queue()`` and friends: a manager of this process, served where the workers
    #: reach it (a local socket when they all run here; see :meth:`_shared_served`).
    sharing: ClassVar[str] = "manager"
    #: The package the engine needs (its extra is named as the backend).
    package: ClassVar[str]
    max_workers: int
    task_timeout: float | None
    serializer: str
    _dispatcher: Dispatcher
    _engine: Engine

    def _common_options(
        self,
        *,
        max_workers: int | None,
        initializer: Callable[..., object] | None,
        initargs: Iterable[Any],
        task_timeout: float | None,
        serializer: str,
        max_tasks_per_child: int | None,
        retries: int | None,
    ) -> tuple[Callable[..., object] | None, tuple[Any, ...]]:
        """Check the options every engine backend takes; the initializer and its arguments."""
        if max_workers is not None:
            _validate.max_workers(max_workers, default=1)
        init, args = _validate.initializer(initializer, initargs)
        self.task_timeout = _validate.positive_number("task_timeout", task_timeout)
        # The engine pickles (cloudpickle, by value); either name is accepted.
        self.serializer = _validate.serializer(serializer)
        if _validate.max_tasks_per_child(max_tasks_per_child) is not None:
            raise InvalidOption(
                f"max_tasks_per_child={max_tasks_per_child!r}: the {self.name!r} backend does "
                "not replace its workers after N tasks (the cluster manages them); leave it None"
            )
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
            raise InvalidOption(f"retries must be an int or None, got {retries!r}")
        return init, args

    def _start(
        self,
        engine: Engine,
        max_workers: int | None,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        """Put the dispatcher in front of *engine*; ``max_workers`` defaults to its capacity."""
        self._engine = engine
        try:
            self.max_workers = max_workers or max(1, engine.capacity())
        except BaseException:
            engine.close()
            raise
        self._dispatcher = Dispatcher(
            engine, self.max_workers, initializer, initargs, self.task_timeout
        )

    def _shared_served(self) -> tuple[tuple[str, int], bytes] | None:
        """Where ``ex.Queue()`` and the rest are served: a local socket when every worker
        runs on this machine (a LocalCluster, a local Ray); else a port on the interface
        that faces the cluster, with a key of this executor's that travels in the tasks
        (the workers must be able to connect back to this machine, as remote's do)."""
        host = self._engine.reach_back_host()
        if host is None:
            return None
        return (host, 0), os.urandom(32)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the backend cannot run here (its engine's package is missing), or None."""
        if importlib.util.find_spec(cls.package) is None:
            return _needs(cls.package, cls.name)
        return None

    def _tunes_map(self, fn: Callable[..., Any]) -> bool:
        """One task per item for now: a chunk already sent to the cluster is not stopped
        by cancel, so a failing item would let the rest of its chunks run (issue #13)."""
        return False

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        return self._dispatcher.submit(fn, args, kwargs)

    def _default_chunksize(self, iterables: tuple[Any, ...]) -> int:
        # As the pool: about eight chunks per worker for inputs with a length, so a
        # map of a million tiny items is a few dozen engine tasks, not a million.
        sizes = [len(it) for it in iterables if hasattr(it, "__len__")]
        if not sizes:
            return 1
        return max(1, min(min(sizes) // (self.max_workers * 8), 50_000))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, cancel queued ones if asked, wait for the rest if asked.

        The cluster (or the connection to it) is released once the last task is done.
        """
        self._dispatcher.shutdown(wait, cancel_futures)
