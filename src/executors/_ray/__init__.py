"""The machinery of the ``ray`` backend: one Ray connection per process, shared by executors.

``backends/ray.py`` configures it; :mod:`~executors._ray.engine` runs it, with the
queue and batches of :mod:`executors._cluster`.

::

    RayExecutor.submit ──> _cluster.Dispatcher ──> RayEngine.send(batch)
                                                        │ run_batch.options(...).remote(batch)
                                                        v
          local Ray started here (stopped when its last executor shuts down)
          or a cluster at address / $RAY_ADDRESS (left running)
                                                        │ Ray worker process: run_batch(batch)
    futures <── Dispatcher._done <── ObjectRef.future() done-callback

``ray.init`` is per process, so executors count their users of it: the last one
out calls ``ray.shutdown()``, and only when an executor started Ray (a Ray the
program initialized itself is left alone). ``cancel()`` of a running task calls
``ray.cancel``, which raises ``KeyboardInterrupt`` in it.
"""

from __future__ import annotations

__all__: list[str] = []
