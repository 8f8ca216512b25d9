"""The engine behind the ``interpreter`` backend: worker threads that each own a subinterpreter.

``backends/interpreter.py`` configures it; this package runs it:

- :mod:`~executors._subinterp.engines`: how to make interpreters on this Python;
- :mod:`~executors._subinterp.workers`: the worker threads and their queue;
- :mod:`~executors._subinterp.inside`: what runs inside each worker interpreter.

Each worker is a thread of this process driving one interpreter with its own
GIL (PEP 684), so CPU-bound tasks run in parallel without child processes.
Data flow (the caller's threads only pickle and queue)::

    submit(fn, x)                 worker thread i (main interpreter)        interpreter i
    pickle (fn, x, ctx) --> queue --> set_running_or_notify_cancel -------> run(payload):
                                      engine.run(script, payload=bytes) -->   unpickle, bind
                                                                              ctx, call fn
    Future <-- set_result / set_exception <-- engine.take() <-- bytes <--   pickle outcome

Only bytes cross between interpreters: the task pickled here, the outcome
``(OK, value)`` or ``(ERR, PackedException)`` pickled there (see
:mod:`executors._subinterp.inside`). A worker starts on demand, creates its
interpreter, imports :mod:`~executors._subinterp.inside` there and runs the
initializer; if that fails, the pool is broken and every task fails with
:class:`~executors.errors.BrokenExecutor`. The interpreter is destroyed by the
thread that created it, when the worker stops.

Engines (:func:`~executors._subinterp.engines.engine`), chosen by Python version:

- 3.14 and later: :mod:`concurrent.interpreters` (PEP 734, standard library);
- 3.13: the same API from the ``interpreters-pep-734`` package
  (``interpreters_backport.interpreters``);
- 3.12: the standard library's ``_xxsubinterpreters`` and ``_xxinterpchannels``
  (the backport's own low-level modules for 3.12, ``interpreters-3-12``, crash
  CPython 3.12.1 on import, so they are never imported);
- elsewhere: none; :func:`~executors._subinterp.engines.unavailable_reason`
  says what to install or which Python is needed.

Locks: ``_Shared.lock`` guards the idle count, the shutdown flag and the broken
error (read and written by the caller's threads and the workers); the queue
itself is a :class:`queue.SimpleQueue`. ``_engine_lock`` guards the one cached
engine.
"""

from __future__ import annotations

__all__: list[str] = []
