"""The ``dask`` backend's engine: connect a client (starting a LocalCluster if asked), send batches.

See :mod:`executors._dask` for the data flow.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from .._cluster.executor import import_engine, local_address_toward
from .._cluster.runner import Batch, Outcome, run_batch
from ..errors import InvalidOption, WorkerLost

if TYPE_CHECKING:
    from .._cluster.dispatch import Done

__all__ = ["DaskEngine", "connect", "run_batch_in_group"]

# dask warns about task graphs over 10 MB (and pytest's "error" filter makes that
# an exception); a big argument is this library's normal case, so the warning is
# turned off around our own submits. The config is global, hence the lock.
_SUBMIT_LOCK = threading.Lock()
_NO_GRAPH_WARNING = {"distributed.admin.large-graph-warning-threshold": "1 PiB"}


#: Run by a worker of a LocalCluster we own: waits for the worker (argv[1]) to be gone,
#: then kills its process group, where everything its tasks started is.
_WATCHER = """
import os, signal, sys, time
pid = int(sys.argv[1])
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
try:
    os.killpg(pid, signal.SIGKILL)
except OSError:
    pass
"""
_group_lock = threading.Lock()
_group_of: int | None = None  # the pid that made this process a group leader


def run_batch_in_group(batch: Batch) -> Outcome:
    """:func:`run_batch` on a worker of a LocalCluster the executor started.

    The worker first makes itself the leader of a process group, watched by a
    process outside it that kills the group once the worker is gone: so what a
    task started dies with its worker, as on Ray, whose raylet kills a dead
    worker's group. dask's nanny replaces a dead worker but stops nothing it
    started. (Not done on a cluster the executor joins: its workers are not ours.)
    """
    global _group_of
    pid = os.getpid()
    with _group_lock:
        if _group_of != pid and hasattr(os, "setpgid"):
            _group_of = pid
            try:
                if os.getpgid(0) != pid:
                    os.setpgid(0, 0)
                # sh leaves the watcher running and exits: the watcher is nobody's child
                # (no process tree, the caller's included, counts it) and outside the group.
                subprocess.run(
                    ["sh", "-c", '"$0" -c "$1" "$2" &', sys.executable, _WATCHER, str(pid)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    check=False,
                )
            except OSError:  # not allowed here (a session leader): tasks run all the same
                pass
    return run_batch(batch)


def _scheduler_address(address: str | None) -> str | None:
    """*address* with a scheme (``tcp://`` by default), else dask's configured scheduler."""
    if address is None:
        import dask

        configured = dask.config.get("scheduler-address", None)  # $DASK_SCHEDULER_ADDRESS
        return str(configured) if configured else None
    return address if "://" in address else f"tcp://{address}"


def connect(
    address: str | None,
    *,
    n_workers: int,
    threads_per_worker: int,
    security: Any,
) -> tuple[Any, Any]:
    """A client, and the LocalCluster it runs on (None when attached to a running scheduler)."""
    distributed = import_engine("dask", "distributed")
    target = _scheduler_address(address)
    if target is not None:
        if security is True:
            raise InvalidOption(
                f"security=True makes temporary credentials for a LocalCluster the executor "
                f"starts; to join {target} pass the cluster's own "
                "distributed.security.Security(...) (its CA, certificate and key)"
            )
        if security is None and target.startswith("tls://"):
            security = _configured_tls(distributed, target)
        return distributed.Client(target, security=security, set_as_default=False), None
    if security is True:
        # One set for both sides: distributed's Client would make a second, different
        # temporary CA from True, and fail the TLS handshake with the cluster's.
        security = distributed.security.Security.temporary()
    cluster = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # The scheduler serves HTTP (health, metrics) even without a dashboard, on
        # port 8787 unless told otherwise, with a warning when another cluster has it.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        worker_dashboard_address=None,
        silence_logs=logging.ERROR,
        security=security,
        protocol="tls://" if security is not None else None,
    )
    try:
        client = distributed.Client(cluster, security=security, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def _configured_tls(distributed: Any, target: str) -> Any:
    """The TLS credentials of dask's config (``distributed.comm.tls``), or an error saying
    how to give them: without them dask fails with a TypeError about ``ssl_context``, after
    a client that keeps retrying in the background."""
    security = distributed.security.Security()
    if security.tls_ca_file is None:
        raise InvalidOption(
            f"connecting to {target} needs TLS credentials: pass security="
            "distributed.security.Security(tls_ca_file=..., tls_client_cert=..., "
            "tls_client_key=...), or set them in dask's config (distributed.comm.tls)"
        )
    return security


class DaskEngine:
    """Sends batches as dask tasks; see the module docstring."""

    def __init__(self, client: Any, cluster: Any, submit_options: dict[str, Any]) -> None:
        self.client = client
        self.cluster = cluster
        self._options = {k: v for k, v in submit_options.items() if v is not None}

    def capacity(self) -> int:
        """Worker threads the scheduler knows now."""
        return int(sum(self.client.nthreads().values()))

    def send(self, batch: Batch, done: Done) -> Any:
        import dask

        with _SUBMIT_LOCK, dask.config.set(_NO_GRAPH_WARNING):
            run = run_batch if self.cluster is None else run_batch_in_group
            future = self.client.submit(run, batch, pure=False, **self._options)
        future.add_done_callback(lambda f: done(_outcome(f)))
        return future

    def stop(self, handle: Any) -> bool:
        # dask cannot interrupt a task that has started, and does not say whether it
        # had; a batch in flight may be running, so the honest answer is no.
        return False

    def reach_back_host(self) -> str | None:
        # A LocalCluster's workers run here; a joined scheduler's workers reach this
        # machine at least as well as they reach the scheduler: use that route's address.
        if self.cluster is not None:
            return None
        from distributed.comm.addressing import get_address_host

        return local_address_toward(get_address_host(self.client.scheduler.address))

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _outcome(future: Any) -> Any:
    """The batch's Outcome, or the error that stands for it; never raises (an exception
    here would leave the batch in flight for ever, and shutdown() waiting for it)."""
    try:
        return _finished(future)
    except BaseException as exc:
        return exc


def _finished(future: Any) -> Any:
    if future.status == "finished":
        try:
            return future.result()
        except BaseException as exc:  # fetching or unpickling the result failed
            return exc
    if future.status == "cancelled":
        from concurrent.futures import CancelledError

        return CancelledError(f"dask cancelled the task {future.key!r}")
    return _library_error(future.exception())


def _library_error(exc: BaseException) -> BaseException:
    """dask's KilledWorker (the task's workers died, as often as the scheduler allows) as
    :class:`~executors.WorkerLost`; other engine errors as they are."""
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        last = getattr(exc.last_worker, "address", exc.last_worker)
        lost = WorkerLost(
            f"the dask workers running task {exc.task!r} died each time it ran (the last was "
            f"{last}); dask gave up after {exc.allowed_failures} retries: raise "
            "distributed.scheduler.allowed-failures, or check what kills the workers"
        )
        lost.__cause__ = exc
        return lost
    return exc
