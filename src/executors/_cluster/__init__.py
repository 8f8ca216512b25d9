"""Machinery the cluster backends (``dask``, ``ray``) share: a local queue in front of a cluster.

``backends/dask.py`` and ``backends/ray.py`` configure it, with the engine
packages :mod:`executors._dask` and :mod:`executors._ray`; this package has:

- :mod:`~executors._cluster.executor`: the executor class both backends derive from
  (the options they share, availability);
- :mod:`~executors._cluster.dispatch`: the caller's side (queue, window, batches, futures);
- :mod:`~executors._cluster.runner`: what runs on a cluster worker (one batch at a time).

Data flow:

::

    submit() ──> queue (PENDING: cancel() is True and the task never runs)
                   │  _pump(): while fewer than max_workers batches are in flight,
                   │  take a batch (one task, or many tiny ones) and mark it RUNNING
                   v
             Engine.send(Batch) ──> cluster: runner.run_batch(batch) ──> Outcome
                                                                           │
    futures <── _settle(): results, packed exceptions, log records <───────┘
                (the engine's done-callback; no thread or poll per task)

At most ``max_workers`` batches are on the cluster at once, so ``max_workers``
means the same on a shared cluster as on a private one, and a task still in the
queue can be cancelled truthfully. Tasks that take well under a millisecond are
sent several to a batch (sized from the measured time per task), which is what
makes tiny tasks cheaper than the engine's own one task per call.
"""

from __future__ import annotations

__all__: list[str] = []
