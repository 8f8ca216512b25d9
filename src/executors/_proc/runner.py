"""One child process per task, the parent's side: the ``fork`` and ``process`` engine.

A backend gives :class:`ChildRunner` a ``launch`` function that starts a child
for a task and returns the read end of a pipe the child will write one framed
outcome to, and a ``reap`` function that waits for the child and returns its
exit code. The runner caps how many tasks run at once, starts queued
tasks as children end, reads their pipes from one manager thread, reaps every
child (no zombies), kills a child whose task overran ``task_timeout`` or was
cancelled, and turns a child that died without an outcome into
:class:`~executors.errors.WorkerCrashed` naming the signal or exit code.

A task's future is done as soon as its child's one frame has arrived, and the
child stops counting against the cap then: a big parent's child takes a while
to exit, and neither the caller nor the next task should wait for that. It is
still reaped (and waited for by ``shutdown``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import time
from collections import deque
from concurrent.futures import InvalidStateError
from typing import Any, Callable

from .. import command
from .._futures import LazyFuture
from .._wording import call_name, initializer_failed
from ..errors import BrokenExecutor, SerializationError
from ..serialization import Unloadable, load_outcomes, unpack_exception
from .backend import ProcessBackend
from .envelope import outcome_error, packed
from .exits import crash_error, timeout_error
from .logs import outcome_failed, replay_log
from .managers import Wakeup, refused_at_exit, release_manager, track_manager
from .wire import ERR, INIT_FAILED, LOG, OK, FrameReader, read_into, split_frame

__all__ = ["ChildBackend", "ChildRunner", "ChildTask"]


class ChildTask(LazyFuture[Any]):
    """A task and, once started, its child; ``cancel()`` kills a running child."""

    def __init__(  # noqa: PLR0917
        self,
        runner: ChildRunner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        values: dict[str, Any] | None,
        payload: bytes | None,
        timeout: float | None,
    ) -> None:
        super().__init__()
        self._runner = runner
        self.timeout = timeout  # its task_timeout, or its own (executors.with_timeout)
        self.fn, self.args, self.kwargs, self.values, self.payload = (
            fn,
            args,
            kwargs,
            values,
            payload,
        )
        self.pid: int | None = None
        self.fd = -1
        self.handle: Any = None
        self.reader = FrameReader()
        self.frames: list[bytes] = []
        self.started_at = 0.0
        self.killed: str | None = None
        self.reported = False
        self.label = call_name(fn)

    def cancel(self) -> bool:
        """Cancel the task; a running one is stopped by killing its child."""
        return self._runner.cancel(self)

    def running(self) -> bool:
        """True while its child runs the task (from start until the outcome arrives)."""
        return self.started_at > 0 and not self.reported and not self.done()

    def leaving(self) -> ChildTask:
        """What reaping its child needs (pid, pipe, handle), without the future and its result.

        The manager watches a child until it exits; holding the task itself that long
        would keep a result the caller has already dropped (a ``map`` over big results).
        """
        husk: ChildTask = object.__new__(ChildTask)  # not a future: nobody waits on it
        husk.__dict__.update(
            pid=self.pid, fd=self.fd, handle=self.handle, reader=self.reader, frames=[],
            reported=True, started_at=self.started_at, killed=self.killed, label=self.label,
        )  # fmt: skip
        return husk

    def forget_call(self) -> None:
        self.fn = self.args = self.kwargs = self.values = self.payload = None  # type: ignore[assignment]


Launch = Callable[[ChildTask], tuple[int, int, Any]]
Reap = Callable[[ChildTask], int]


class ChildRunner:
    """Queue, cap, start, watch and reap one child per task (see the module docstring)."""

    def __init__(
        self,
        name: str,
        max_workers: int,
        launch: Launch,
        reap: Reap,
        task_timeout: float | None,
        *,
        initializer: Callable[..., object] | None,
    ) -> None:
        self.name, self.max_workers = name, max_workers
        self.launch, self.reap, self.task_timeout = launch, reap, task_timeout
        self.initializer = initializer  # run by each child; named when it fails
        # Held while mutating queue, running, exiting, closing and broken, and while
        # registering a descriptor with the selector the manager waits on. Never held
        # while starting a child or running a future's callbacks.
        self.lock = threading.Lock()
        self.queue: deque[ChildTask] = deque()
        self.running: set[ChildTask] = set()
        self.exiting: set[ChildTask] = set()  # reported their outcome; not reaped yet
        self.closing = False
        self.broken: BrokenExecutor | None = None
        self.wakeup = Wakeup()
        self.selector = self.wakeup.selector
        self.thread = threading.Thread(target=self.run, name=f"{name}-manager", daemon=True)
        self.thread.start()
        track_manager(self)

    # -- callers' threads -------------------------------------------------------------

    def submit(self, task: ChildTask) -> None:
        with self.lock:
            if self.broken is not None:
                raise self.broken
            if self.closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if len(self.running) >= self.max_workers:
                self.queue.append(task)
                return
            self.running.add(task)
        self.start(task)  # at once, in the caller's thread: no hand-off to the manager

    def start(self, task: ChildTask) -> None:
        if task.done():  # cancelled while queued
            self.release(task)
            return
        try:
            task.pid, task.fd, task.handle = self.launch(task)
        except BaseException as exc:
            self.release(task)
            task.forget_call()
            with contextlib.suppress(InvalidStateError):
                task.set_exception(refused_at_exit(exc, self.name))
            if not isinstance(exc, Exception):
                raise
            return
        task.started_at = time.monotonic()
        task.forget_call()
        with self.lock:  # epoll and kqueue take new descriptors while the manager waits
            self.selector.register(task.fd, selectors.EVENT_READ, task)
        if task.cancelled():  # cancelled while it was being started
            self.kill(task, "cancel")
        if task.timeout is not None:
            self.wakeup.wake()  # to wait with the new deadline

    def release(self, task: ChildTask) -> None:
        """Free *task*'s slot from a caller's thread; the manager starts what waits for it."""
        with self.lock:
            self.running.discard(task)
            waiting = bool(self.queue)
        if waiting:
            self.wakeup.wake()

    def kill(self, task: ChildTask, why: str) -> None:
        if task.fd < 0 and task.started_at:  # already read to the end and being reaped
            return
        if task.killed is None:
            task.killed = why
        assert task.pid is not None
        command.kill_process_tree(task.pid)  # and the commands its task started

    def cancel(self, task: ChildTask) -> bool:
        with self.lock:
            started = task.pid is not None and task.fd >= 0
        if not task._cancel_now():  # not under our lock: it runs the callbacks
            return False
        if started:  # if it starts now instead, start() sees it cancelled and kills it
            self.kill(task, "cancel")
        return True

    def shutdown(self, cancel_futures: bool) -> None:
        with self.lock:
            self.closing = True
            if cancel_futures:
                for task in self.queue:
                    task._cancel_now()
                self.queue.clear()
        self.wakeup.wake()

    # -- the manager thread ---------------------------------------------------------------

    def run(self) -> None:
        try:
            while True:
                starts: list[ChildTask] = []
                with self.lock:
                    while self.queue and len(self.running) < self.max_workers:
                        task = self.queue.popleft()
                        self.running.add(task)
                        starts.append(task)
                    if self.closing and not self.running and not self.exiting and not self.queue:
                        return
                for task in starts:
                    self.start(task)
                if starts:
                    del task, starts  # not kept (nor their results) while the loop waits
                    continue
                events = self.selector.select(self.next_deadline())
                for key, _ in events:
                    if key.data is None:
                        self.wakeup.drain()
                    else:
                        self.read(key.data)
                events = key = None  # type: ignore[assignment]  # no task kept while waiting
                self.kill_overdue()
        finally:
            self.close()

    def next_deadline(self) -> float | None:
        with self.lock:  # at most max_workers tasks run: a scan is cheap
            ends = [t.started_at + t.timeout for t in self.running if t.started_at and t.timeout]
        if not ends:
            return None
        return max(0.0, min(ends) - time.monotonic()) + 0.001

    def kill_overdue(self) -> None:
        now = time.monotonic()
        with self.lock:
            overdue = [
                t
                for t in self.running
                if t.started_at
                and t.timeout is not None
                and t.killed is None
                and now - t.started_at > t.timeout
            ]
        for task in overdue:
            self.kill(task, "timeout")

    def read(self, task: ChildTask) -> None:
        space = task.reader.space()
        try:
            if space is not None:  # a big result: read straight into its frame's buffer
                n = read_into(task.fd, space)
                frames = task.reader.filled(n) if n else []
                data = b"." if n else b""
            else:
                data = os.read(task.fd, 1 << 20)
                frames = task.reader.feed(data) if data else []
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            task.frames += frames
            if task.frames:  # the child's only frame: the task is over, the child is leaving
                husk = task.leaving()
                with self.lock:
                    self.running.discard(task)
                    self.exiting.add(husk)
                self.selector.modify(task.fd, selectors.EVENT_READ, husk)
                self.finish(task, None)
            return
        self.selector.unregister(task.fd)
        os.close(task.fd)
        task.fd = -1
        if not task.reported and task.pid is not None:  # died mid-task: so does what it started
            command.kill_group(task.pid)
        exitcode = self.reap(task)
        with self.lock:
            self.running.discard(task)
            self.exiting.discard(task)
        if not task.reported:
            self.finish(task, exitcode)

    def finish(self, task: ChildTask, exitcode: int | None) -> None:
        task.reported = True
        outcome: tuple[int, Any] | None = None
        for frame in task.frames:
            items = load_outcomes(*split_frame(frame))
            if items is None:  # not even its outcome can be told from the rest
                items = [(None, ERR, Unloadable(SerializationError("a garbled message")))]
            for _key, kind, value in items:
                if kind == LOG:
                    replay_log(value)
                else:
                    outcome = (kind, value)
        task.frames = []
        if task.cancelled():
            return
        if outcome is not None and type(outcome[1]) is Unloadable:
            what = "result" if outcome[0] == OK else "exception"
            kind = ERR if outcome[0] == OK else outcome[0]
            outcome = (kind, outcome[1].error(task.label, what))
        try:
            if task.killed == "timeout":
                assert task.timeout is not None
                usable = "the executor is still usable"
                task.set_exception(timeout_error(task.timeout, task.label, task.pid, usable))
            elif outcome is None:
                task.set_exception(
                    crash_error(task.pid, exitcode, task.label, "the executor is still usable")
                )
            elif outcome[0] == OK:
                task.set_result(outcome[1])
            elif outcome[0] != INIT_FAILED:
                task.set_exception(outcome_error(*outcome))
            else:
                cause = unpack_exception(packed(outcome[1]))
                error = initializer_failed(self.initializer, cause, f" in child {task.pid}")
                with self.lock:
                    self.broken = error
                    queued = list(self.queue)
                    self.queue.clear()
                for t in [task, *queued]:
                    with contextlib.suppress(InvalidStateError):
                        t.set_exception(error)
        except InvalidStateError:
            pass
        except BaseException:  # e.g. a done-callback raising SystemExit: that task only
            outcome_failed(task)

    def close(self) -> None:
        with self.lock:
            left = [*self.running, *self.exiting]
        for task in left:  # only after a failure of this thread; do not leave children
            if task.pid is None:
                continue
            command.kill_process_tree(task.pid)
            self.reap(task)
        release_manager(self)


class ChildBackend(ProcessBackend):
    """An executor whose tasks a :class:`ChildRunner` runs (``fork``, ``process``)."""

    _runner: ChildRunner

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more tasks; cancel queued ones if asked; wait for the children if asked."""
        self._runner.shutdown(cancel_futures)
        if wait and threading.current_thread() is not self._runner.thread:  # not from a callback
            self._runner.thread.join()
