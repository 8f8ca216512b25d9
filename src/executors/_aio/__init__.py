"""The engine of the ``asyncio`` backend (``backends/aio.py`` configures it).

:mod:`~executors._aio.loop` runs an event loop in a thread of its own, fed in batches.

How a task travels::

    caller threads                           the loop thread
    --------------                           ---------------
    submit(fn, *args)
      -> TaskFuture (context copied)
      -> incoming deque ---- one wake-up ---> drain(): while running < cap
         per batch, not per task                |- async fn: a task, its first step at once
                                                '- plain fn: a worker thread
    future.cancel() on a running  ----------> task.cancel()
      coroutine (returns True)
    shutdown() ------------------------------> stop when nothing runs; cancel stray
                                               tasks, close async generators, close loop

The runner holds no reference to its executor, so an executor dropped without
``shutdown()`` can be collected, which stops the loop.
"""
