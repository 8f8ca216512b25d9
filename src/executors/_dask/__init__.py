"""The machinery of the ``dask`` backend: a dask.distributed client, and the cluster it owns.

``backends/dask.py`` configures it; :mod:`~executors._dask.engine` runs it, with the
queue and batches of :mod:`executors._cluster`.

::

    DaskExecutor.submit ──> _cluster.Dispatcher ──> DaskEngine.send(batch)
                                                      │ Client.submit(run_batch, batch, pure=False)
                                                      v
           LocalCluster (owned: closed on shutdown) or a running scheduler (left running)
                                                        │ worker process: run_batch(batch)
    futures <── Dispatcher._done <── dask Future done-callback (one dask callback thread)

``pure=False`` because tasks are not pure functions: dask would otherwise run two
``random()`` calls once. Only this package imports :mod:`distributed`.
"""

from __future__ import annotations

__all__: list[str] = []
