"""The ``ray`` backend's engine: this process's Ray connection, batches as Ray tasks, cancel.

See :mod:`executors._ray` for the data flow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .._cluster.executor import import_engine, local_address_toward
from .._cluster.runner import Batch, run_batch
from ..errors import BackendUnavailable, WorkerLost

if TYPE_CHECKING:
    from .._cluster.dispatch import Done

__all__ = ["RayEngine", "acquire"]

_lock = threading.Lock()
_users = 0
_owned = False
_remote: Any = None  # ray.remote(run_batch), made once per process
_target: str | None = None  # the address this module gave ray.init (a ray:// one, say)


def _address(address: str | None) -> str | None:
    """A spec's ``host:port`` is a Ray Client address; anything with a scheme passes as is."""
    if address is None:
        return os.environ.get("RAY_ADDRESS") or None
    if "://" in address or address in ("auto", "local"):
        return address
    return f"ray://{address}"


def acquire(address: str | None, num_cpus: int | None, object_store_memory: int | None) -> Any:
    """Join (or start) this process's Ray; pair with :func:`release`."""
    global _users, _owned, _remote, _target
    ray = import_engine("ray", "ray")
    with _lock:
        if not ray.is_initialized():
            target = _address(address)
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": True,
            }
            if target is None:
                # "local": a new Ray, even when `ray start` left its address in /tmp/ray
                # (ray.init() would join that cluster, someone else's perhaps).
                target = "local"
                options.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
            try:
                ray.init(address=target, **options)
            except ImportError as exc:  # ray:// needs the Ray Client's grpcio
                raise BackendUnavailable(
                    f"connecting to {target!r} needs the Ray Client; install it with: "
                    "pip install 'ray[client]'"
                ) from exc
            _owned = True
            _target = target
        elif _users == 0:
            _owned = False  # the program's own Ray: used, never stopped
        _users += 1
        if _remote is None:
            _remote = ray.remote(run_batch)
    return ray


def release() -> None:
    """One executor is done with Ray; the last one stops the Ray it started."""
    global _users, _owned
    ray = import_engine("ray", "ray")
    with _lock:
        _users -= 1
        if _users == 0 and _owned:
            _owned = False
            ray.shutdown()


class RayEngine:
    """Sends batches as Ray tasks; see the module docstring."""

    def __init__(self, ray: Any, task_options: dict[str, Any]) -> None:
        self._ray = ray
        self._remote = _remote.options(**{k: v for k, v in task_options.items() if v is not None})
        self._closed = False
        # Through the Ray Client, a done-callback runs on the client's data thread, and
        # sending the next batch from there (the dispatcher does) waits for a reply only
        # that thread can read: a deadlock. The callbacks are handed to a thread of ours.
        self._relay: ThreadPoolExecutor | None = None
        if _client_mode(ray):
            self._relay = ThreadPoolExecutor(1, thread_name_prefix="executors-ray-client")

    def capacity(self) -> int:
        """CPUs in the cluster now."""
        return int(self._ray.cluster_resources().get("CPU", 1))

    def send(self, batch: Batch, done: Done) -> Any:
        ref = self._remote.remote(batch)
        relay = self._relay
        if relay is None:
            ref.future().add_done_callback(lambda f: done(_outcome(f)))
        else:
            ref.future().add_done_callback(lambda f: _relay(relay, done, _outcome(f)))
        return ref

    def stop(self, handle: Any) -> bool:
        self._ray.cancel(handle, force=False)
        return True

    def reach_back_host(self) -> str | None:
        ray = self._ray
        if _client_mode(ray):
            # Through the Ray Client this process is no node of the cluster: its
            # workers reach it, if at all, the way it reaches the client server.
            host = (_target or "").partition("://")[2].rpartition(":")[0]
            return local_address_toward(host) if host else ""
        me = ray.util.get_node_ip_address()
        if all(n["NodeManagerAddress"] == me for n in ray.nodes() if n["Alive"]):
            return None  # one node, this one: Ray names it by its network address
        return str(me)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._relay is not None:
                self._relay.shutdown(wait=False)  # close() may run on that very thread
            release()


def _relay(relay: ThreadPoolExecutor, done: Done, outcome: Any) -> None:
    with contextlib.suppress(RuntimeError):  # closed: nothing waits for this batch any more
        relay.submit(done, outcome)


def _client_mode(ray: Any) -> bool:
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    is_connected: Any = client.is_connected  # untyped in Ray; Any where Ray is absent
    return bool(is_connected())


def _outcome(future: Any) -> Any:
    """The batch's Outcome, or the error that stands for it; never raises (see dask's)."""
    try:
        exc = future.exception()
        return future.result() if exc is None else _library_error(exc)
    except BaseException as exc:
        return exc


def _library_error(exc: BaseException) -> BaseException:
    """Ray's errors for a task whose worker (or node) died, after Ray's own retries, as
    :class:`~executors.WorkerLost`; other engine errors as they are."""
    from ray import exceptions

    died = (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.OutOfMemoryError)
    if isinstance(exc, died):
        lost = WorkerLost(
            f"the Ray worker running the task died each time it ran ({type(exc).__name__}); "
            "Ray gave up after the task's retries: raise retries=, or check what kills the "
            "workers (its python-core-worker-*.log files)"
        )
        lost.__cause__ = exc
        return lost
    return exc
