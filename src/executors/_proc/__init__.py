"""Child-process plumbing shared by the ``fork``, ``process``, ``pool`` and ``subprocess`` engines.

``fork`` and ``process`` run one child per task (:mod:`~executors._proc.runner`
in the parent, :mod:`~executors._proc.child` in the child); ``pool`` and
``subprocess`` run a batched engine (:mod:`executors._pool`) built on the same
wire, envelope, log forwarding and error wording::

    caller thread                    manager thread (ChildRunner)          child (one per task)
    submit(fn, x)
      envelope.pack_call  --launch--> fork / Process.start ------------>   child.run_in_child:
      (or the objects, for fork)      (forking: one at a time)              initializer, task in
                                                                            the caller's context
    Future <-- set_result <--------- read the pipe: one frame  <--------   [LOG..., outcome]
                                     reap the child; no frame:             (envelope.pack_outcomes)
                                     exits.crash_error; overdue or
                                     cancelled: kill the process tree

- :mod:`~executors._proc.wire`: the kinds of message, frames and :class:`FrameReader`;
- :mod:`~executors._proc.envelope`: a call packed, run in its context, its outcomes packed;
- :mod:`~executors._proc.logs`: a worker's log records forwarded to the parent;
- :mod:`~executors._proc.exits`: how errors word a task and a worker's end;
- :mod:`~executors._proc.forking`: the fork lock and what a child does first;
- :mod:`~executors._proc.managers`: manager threads stopped at interpreter exit;
- :mod:`~executors._proc.backend`: :class:`ProcessBackend`, the executors' shared options;
- :mod:`~executors._proc.runner` and :mod:`~executors._proc.child`: one child per task.
"""
