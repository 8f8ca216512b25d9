"""Run tasks on Ray: a local Ray started for the executor, or a cluster it attaches to.

The machinery (the per-process Ray connection, remote calls, cancel) lives in
:mod:`executors._ray.engine`; the options, queue, batching and futures shared with
``dask`` in :mod:`executors._cluster`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, ClassVar

from .. import _validate
from .._cluster.executor import EngineExecutor

__all__ = ["RayExecutor"]


class RayExecutor(EngineExecutor):
    """Tasks on Ray: a local Ray of ``max_workers`` CPUs, or a running cluster.

    Without an *address* (and without ``$RAY_ADDRESS``) it starts Ray here with
    ``num_cpus=max_workers`` and no dashboard, and stops it on ``shutdown()``
    (when the last executor using it is done; a Ray the program started itself
    is left running). ``ray://host:10001`` attaches through the Ray Client.
    ``cancel()`` of a running task calls ``ray.cancel``, which stops it. Tasks
    run by value; workers need ``pluggable-executors`` installed.

    :param max_workers: tasks of this executor running at once; default the CPU
        count (local), or the cluster's CPUs.
    :param address: a Ray Client ``host:port``, or ``"auto"`` for the cluster
        this machine is part of.
    :param num_cpus: CPUs each task reserves (default 1).
    :param resources: custom Ray resources each task needs, e.g. ``{"GPU": 1}``.
    :param retries: times Ray reruns a task whose worker died (Ray's default: 3).
    :param object_store_memory: bytes of object store for a local Ray.
    :param task_timeout: seconds a task may run; then its future raises
        :class:`~executors.TaskTimeout` (and ``ray.cancel`` stops it).
    :param serializer: accepted for portability; the engine always pickles by value.
    :param max_tasks_per_child: only None: the cluster manages its worker processes.
    :param initializer: called as ``initializer(*initargs)`` once in each worker
        process before its first task; it can fill :data:`executors.context.worker`.

    Not run here (it needs the ``ray`` extra, which the plain test run lacks); the
    same example runs on the docs page, where the engine is installed:

    >>> from executors import get_executor
    >>> from executors.demo import square
    >>> with get_executor("ray", max_workers=2) as ex:  # doctest: +SKIP
    ...     ex.submit(square, 12).result(), list(ex.map(square, range(5)))
    (144, [0, 1, 4, 9, 16])
    """

    name: ClassVar[str] = "ray"
    package: ClassVar[str] = "ray"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        address: str | None = None,
        num_cpus: float | None = None,
        resources: dict[str, float] | None = None,
        retries: int | None = None,
        object_store_memory: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        task_timeout: float | None = None,
        serializer: str = "cloudpickle",
        max_tasks_per_child: int | None = None,
    ) -> None:
        from .._ray import engine as _ray

        init, args = self._common_options(
            max_workers=max_workers,
            initializer=initializer,
            initargs=initargs,
            task_timeout=task_timeout,
            serializer=serializer,
            max_tasks_per_child=max_tasks_per_child,
            retries=retries,
        )
        ray = _ray.acquire(address, max_workers or _validate.cpu_count(), object_store_memory)
        engine = _ray.RayEngine(
            ray, {"num_cpus": num_cpus, "resources": resources, "max_retries": retries}
        )
        self._start(engine, max_workers, init, args)

    def __repr__(self) -> str:
        return f"<RayExecutor backend='ray' max_workers={self.max_workers}>"
