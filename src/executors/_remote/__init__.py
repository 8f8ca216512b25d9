"""The remote engine: what runs the ``remote`` backend (``backends/remote.py`` configures it).

- :mod:`~executors._remote.hub`: the master's bookkeeping (``Hub``) and the server workers reach;
- :mod:`~executors._remote.wire`: what master and workers share (addresses, authkeys, payload);
- :mod:`~executors._remote.worker`: the worker program, ``python -m executors worker HOST:PORT``.

The classic distributed-processes program (a master, a task queue, a result queue),
made safe to lose a worker in::

  caller threads        master process (RemoteExecutor)               worker processes
  ==============        ===============================               ================

                        +------------- Hub ---------------+
  submit(fn, *args) --> | pending: deque of task ids      |
    pickles the call,   | tasks: id -> future, payload,   | take(wid, need)  +- main thread -+
    returns a Future    |   attempts, owner, prefetched   | <=============== | takes for its |
                        | workers: id -> slots, in flight,| [(id, payload)]> | free slots +  |
                        |   last heard of                 |   (one batch)    | prefetch; runs|
  future.result() <---- | put() sets each future once     |                  | them on its   |
                        +---------------------------------+ put(wid, results)| engine        |
                          ^ served by a managers.Server:    <=============== | sender thread:|
                          | one thread per connection,      [(id, ok, data)] | every ready   |
                          | authkey checked first           (heartbeat: [])  | result at once|
                          |                                                  +---------------+
                        monitor thread: restarts local workers that die, drops workers that
                        miss heartbeats or lose their connection and requeues their tasks
                        (max_retries, then WorkerLost), fails tasks past task_timeout; at
                        shutdown it tells the workers to stop, reaps the local ones and
                        closes the server.

Results finished before a worker's next take ride along with it (one round trip
for both); the sender thread carries the rest. A worker holds a bounded prefetch
beyond what it runs (about 5 ms of work, at most ``prefetch`` tasks, and only
what other workers' idle slots leave over), so its pipe never runs dry. A task is
handed to one worker at a time; a result counts only when it comes from the worker
that holds the task, so each future is set exactly once even when a worker given up on
comes back.
"""
