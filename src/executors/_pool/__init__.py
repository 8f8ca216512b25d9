"""The batched engine behind the ``pool`` and ``subprocess`` backends.

``backends/pool.py`` and ``backends/commands.py`` (registry name ``subprocess``)
configure it; this package runs it:

- :mod:`~executors._pool.engine`: the parent side (:class:`Pool`, the manager thread);
- :mod:`~executors._pool.launch`: the :class:`Launcher` interface the engine starts workers by;
- :mod:`~executors._pool.processes`: ``pool`` workers (``multiprocessing`` processes);
- :mod:`~executors._pool.interpreter`: ``subprocess`` workers (``python -c``, by Popen);
- :mod:`~executors._pool._subworker`: the worker leaf both run (standard library only).

Data flow (one manager thread per executor; the caller's threads only queue)::

    submit(fn, x)                     manager thread                        worker i
    pickle (fn, x, ctx) ---> pending --> batches by worker --> tasks pipe --> run in order
    Future <---- set_result <-- outcomes <------------------- results pipe <- after slow
                                  |                                     tasks, 2 ms, or idle
                                  +-- select(results pipes, sentinels, wake pipe)
                                  +-- sentinel ready: read the pipe to its end, then the
                                      results kept unsent in shared memory; fail the task
                                      it was running with WorkerCrashed, requeue the
                                      unstarted, start a new worker
    worker i's shared state: tasks started/finished, start time, ring of cancel marks,
    and a copy of each result not sent yet (a crash loses no finished task's result)

A :class:`~executors._pool.launch.Launcher` starts the workers: ``pool``'s
:class:`~executors._pool.processes.ProcessLauncher` starts ``multiprocessing``
processes running :func:`~executors._pool.processes.pool_worker`, ``subprocess``'s
:class:`~executors._pool.interpreter.InterpreterLauncher` starts interpreters with
``subprocess.Popen``; both run :func:`executors._pool._subworker.serve`.
An interpreter says READY once started: one that dies or hangs before that breaks
the pool with the launcher's error, and its successor may be started before it
leaves (:meth:`Pool.prestart`).

Many tasks cross each pipe per message in both directions, so a task costs a
few microseconds of the caller's time. The parent never blocks writing to a
worker (its pipe ends are non-blocking), so a big argument and a big result
can cross at once without deadlock.
"""
