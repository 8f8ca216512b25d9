"""Run tasks on a dask.distributed cluster: a private LocalCluster, or a running scheduler.

The machinery (client, cluster, callbacks) lives in :mod:`executors._dask.engine`; the
options, queue, batching and futures shared with ``ray`` in :mod:`executors._cluster`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, ClassVar

from .. import _validate
from .._cluster.executor import EngineExecutor
from ..errors import InvalidOption

__all__ = ["DaskExecutor"]


class DaskExecutor(EngineExecutor):
    """Tasks on a dask.distributed cluster: a private one, or one already running.

    Without an *address* (and without ``$DASK_SCHEDULER_ADDRESS``) it starts a
    LocalCluster of ``n_workers`` worker processes on 127.0.0.1, without a
    dashboard, and closes it on ``shutdown()``. With ``dask://host:8786`` (or
    ``address="tls://host:8786"`` and ``security=``) it connects to that
    scheduler and leaves it running. Tasks run by value (lambdas, closures and
    functions from ``__main__`` travel); workers need ``pluggable-executors``
    installed. Tiny tasks are batched, and ``map`` chunks its input.

    :param max_workers: tasks of this executor on the cluster at once; default
        the LocalCluster's threads, or every thread of the scheduler it joins.
    :param address: a scheduler address (``host:port`` means ``tcp://``).
    :param n_workers: worker processes of a LocalCluster; default ``max_workers``,
        else the CPU count.
    :param threads_per_worker: threads in each LocalCluster worker (default 1).
    :param security: a ``distributed.security.Security`` (TLS), or True for
        a LocalCluster with temporary credentials.
    :param resources: dask worker resources each task needs, e.g. ``{"GPU": 1}``.
    :param retries: times dask reruns a task that raised (a task whose worker died is
        rerun as ``distributed.scheduler.allowed-failures`` says).
    :param task_timeout: seconds a task may run; then its future raises
        :class:`~executors.TaskTimeout` (dask cannot stop the task: its worker
        finishes it and the result is dropped).
    :param serializer: accepted for portability; the engine always pickles by value.
    :param max_tasks_per_child: only None: the cluster manages its worker processes.
    :param initializer: called as ``initializer(*initargs)`` once in each worker
        thread before its first task; it can fill :data:`executors.context.worker`.

    Not run here (it needs the ``dask`` extra, which the plain test run lacks); the
    same example runs on the docs page, where the engine is installed:

    >>> from executors import get_executor
    >>> from executors.demo import square
    >>> with get_executor("dask", max_workers=2) as ex:  # doctest: +SKIP
    ...     ex.submit(square, 12).result(), list(ex.map(square, range(5)))
    (144, [0, 1, 4, 9, 16])
    """

    name: ClassVar[str] = "dask"
    package: ClassVar[str] = "distributed"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        security: Any = None,
        resources: dict[str, float] | None = None,
        retries: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = "cloudpickle",
        max_tasks_per_child: int | None = None,
    ) -> None:
        from .._dask import engine as _dask

        init, args = self._common_options(
            max_workers=max_workers,
            initializer=initializer,
            initargs=initargs,
            task_timeout=task_timeout,
            serializer=serializer,
            max_tasks_per_child=max_tasks_per_child,
            retries=retries,
        )
        for label, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidOption(f"{label} must be a positive int, got {value!r}")
        client, cluster = _dask.connect(
            address,
            n_workers=n_workers or max_workers or _validate.cpu_count(),
            threads_per_worker=threads_per_worker,
            security=security,
        )
        self.address: str = str(client.scheduler.address)
        self.client = client
        engine = _dask.DaskEngine(client, cluster, {"resources": resources, "retries": retries})
        self._start(engine, max_workers, init, args)

    def __repr__(self) -> str:
        return (
            f"<DaskExecutor backend='dask' address={self.address!r} max_workers={self.max_workers}>"
        )
