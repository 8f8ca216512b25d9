"""The pool engine's parent side: workers, batched pipes, the manager thread, cancel.

See :mod:`executors._pool` for the data flow. :class:`Pool` holds everything the
manager thread works on; :class:`Task` is the future a caller gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import selectors
import signal
import threading
import time
from collections import deque
from concurrent.futures import InvalidStateError
from typing import Any, Callable

from .. import _validate, command
from .._futures import LazyFuture
from .._proc.envelope import capture, fold_context, outcome_error, pack_call, packed
from .._proc.exits import crash_error, timeout_error
from .._proc.forking import ForkRefused, close_process
from .._proc.logs import outcome_failed, replay_log
from .._proc.managers import Wakeup, release_manager, track_manager
from .._proc.wire import (
    ERR,
    INIT_FAILED,
    LOG,
    OK,
    READY,
    SHARED,
    SKIP,
    FrameReader,
    batch_frame,
    frame,
    read_into,
)
from .._runtime import Counter
from .._wording import call_name, initializer_failed
from ..errors import BrokenExecutor, SerializationError
from ..serialization import Unloadable, load_outcomes, unpack_exception
from ..timeouts import split
from . import _subworker, shared
from .launch import Launcher

__all__ = ["Pool", "Task", "submit_call"]

_WRITE_MAX = 1 << 20  # bytes per os.write() to a worker's non-blocking tasks pipe
_CAP = 512  # most tasks a worker holds at once (below the cancel ring's size)
#: A payload this big is "big": it skips the batch's copy on its way into the pipe, and
#: the caller's memory for such payloads is bounded (see :meth:`_Pool.wait_for_room`).
BIG = 1 << 20
#: Pickled big payloads the caller holds before ``submit`` waits (back-pressure): what
#: is not yet running. A task's payload is dropped once its worker has started it.
HELD_LIMIT = 64 << 20
_names = Counter(1)


class Task(LazyFuture[Any]):
    """A future that knows where its task is; ``cancel()`` also stops a running task.

    It stays PENDING while its worker runs it (so ``cancel()`` may still stop it);
    ``running()`` asks the worker's shared state instead.
    """

    #: Its big buffers' shared memory, until no worker will read it (set for big tasks
    #: only: a class default costs a small task nothing).
    segment: shared.Segment | None = None

    def __init__(
        self, pool: Pool, payload: Any, fn: Callable[..., Any], timeout: float | None
    ) -> None:
        super().__init__()
        self._pool = pool
        #: The pickled call; or, for big buffers, ``(pid, fd, name, layout, pickle)``
        #: with the buffers in :attr:`segment` (see :mod:`executors._pool.shared`).
        self.payload = payload
        self.fn = fn
        self.timeout = timeout  # its task_timeout, or its own (executors.with_timeout)
        self.worker: _Worker | None = None
        self.seq = 0

    def running(self) -> bool:
        """True from the moment its worker starts it until it is done."""
        worker = self.worker
        return worker is not None and worker.started(self) and not self.done()

    def cancel(self) -> bool:
        """Cancel the task; one that already runs is stopped by killing its worker."""
        return self._pool.cancel(self)


class _Worker:
    """One worker process, its two pipes and its shared state, seen from the parent."""

    def __init__(self, pool: Pool, index: int) -> None:
        self.out: deque[memoryview] = deque()
        self.ready = not pool.launcher.greets  # else it says so once it has started
        self.launched_at = time.monotonic()
        started = pool.launcher.start(f"{pool.name}-worker-{index}", pool.parent_fds)
        self.process, self.state, self.unsent = started.process, started.state, started.unsent
        if started.hello is not None:
            self.out.append(memoryview(frame(started.hello)))
        task_w, res_r = started.tasks_fd, started.results_fd
        set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux, Python 3.10+
        for fd in (task_w, res_r):
            os.set_blocking(fd, False)
            if set_pipe_size is not None:
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, set_pipe_size, 1 << 20)
        self.pid = self.process.pid
        self.tasks_fd, self.results_fd = task_w, res_r
        self.sentinel: int | None = self.process.sentinel
        self.reader = FrameReader()
        self.inflight: deque[Task] = deque()
        self.dispatched = 0
        self.doomed: tuple[str, Task] | None = None
        self.stopping = False
        self.watching = False
        self.replaced = False
        self.outbox = shared.OutboxView()

    def close_fds(self) -> None:
        self.outbox.close()
        for fd in (self.tasks_fd, self.results_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.tasks_fd = self.results_fd = -1

    def started(self, task: Task) -> bool:
        return bool(self.state[_subworker.STARTED] > task.seq)

    def loaded(self, task: Task) -> bool:
        """Whether it copied *task*'s big arguments out of the caller's shared memory."""
        return bool(self.state[_subworker.LOADED] > task.seq)

    def finished(self, task: Task) -> bool:
        return bool(self.state[_subworker.FINISHED] > task.seq)

    def mark_cancelled(self, task: Task) -> None:
        self.state[_subworker.RING_START + task.seq % _subworker.RING] = task.seq + 1

    def kill(self, why: str, task: Task) -> None:
        if self.doomed is None:
            self.doomed = (why, task)
        command.kill_process_tree(self.pid)  # and the commands its task started


class Pool:
    """Everything the manager thread works on; holds no reference to the executor."""

    def __init__(
        self,
        size: int,
        launcher: Launcher,
        *,
        initializer: Callable[..., Any] | None,
        max_tasks: int | None,
        task_timeout: float | None,
    ) -> None:
        self.name = f"executors-pool-{next(_names)}"
        self.size = size
        self.launcher = launcher
        self.cpus = _validate.cpu_count()
        self.initializer = initializer  # run by the workers; named when it fails
        self.max_tasks, self.task_timeout = max_tasks, task_timeout
        #: The shortest deadline a task has had here (None: no task has had one); from
        #: then on the manager checks deadlines while tasks run.
        self.shortest = task_timeout
        # Held while mutating pending, workers, sleeping, closing and broken, each
        # worker's inflight, dispatched, doomed and replaced, a task's worker and seq,
        # and a worker's cancel marks. Never held while writing to a pipe or setting a
        # future (callbacks run then); tests/faults/test_pool_manager.py swaps it.
        self.lock = threading.Lock()
        self.pending: deque[Task] = deque()
        self.workers: list[_Worker] = []
        self.big: list[Task] = []  # tasks whose big payload the caller still holds
        self.segments = shared.Segments()  # big buffers' shared memory (big tasks only)
        self.room = threading.Condition(self.lock)
        self.wakeup = Wakeup()
        self.selector = self.wakeup.selector
        self.sleeping = False
        self.closing = False
        self.broken: BrokenExecutor | None = None
        self.started_workers = Counter()
        try:
            for _ in range(size):
                self.add_worker()
        except BaseException:
            self.kill_all()
            raise
        self.thread = threading.Thread(target=self.run, name=f"{self.name}-manager", daemon=True)
        self.thread.start()
        track_manager(self)

    # -- called from the caller's threads ----------------------------------------------

    def submit(self, task: Task) -> None:
        with self.lock:
            if self.broken is not None:
                raise self.broken
            if self.closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.pending.append(task)
            wake, self.sleeping = self.sleeping, False
        if wake:
            self.wakeup.wake()

    def wait_for_room(self) -> None:
        """Block while the big payloads not yet running pass ``HELD_LIMIT`` (back-pressure).

        So 20 submits of a 50 MB argument hold about one pickled copy at a time, not
        20. The manager thread never waits (a callback submitting must not stall it).
        """
        if not self.big or threading.current_thread() is self.thread:
            return
        with self.lock:
            while self.held() >= HELD_LIMIT and self.broken is None and not self.closing:
                self.room.wait(0.01)  # a worker starting a task sends no event: look again

    def held(self) -> int:
        """Bytes of big payloads still held (lock held); drops those a worker has started,
        and gives back the shared memory of those it has loaded."""
        held, keep = 0, []
        for task in self.big:
            worker = task.worker
            segment = task.segment
            if segment is not None:  # its buffers are in shared memory until loaded
                if task.done() or (worker is not None and worker.loaded(task)):
                    self.release(task)
                else:
                    held += segment.size
                    keep.append(task)
            elif task.done() or (worker is not None and worker.started(task)):
                task.payload = b""  # the worker has it: a started task is never sent again
            else:
                held += len(task.payload)
                keep.append(task)
        self.big = keep
        return held

    def cancel(self, task: Task) -> bool:
        with self.lock:
            worker = task.worker
            if worker is None or task.done() or worker.doomed is not None:
                return task._cancel_now()
            worker.mark_cancelled(task)
            if not worker.started(task):
                return task._cancel_now()  # the worker will skip it
            if worker.finished(task):
                return False  # done; its result is on the way
            if not task._cancel_now():
                return False
            worker.kill("cancel", task)
            return True

    def shutdown(self, cancel_futures: bool) -> None:
        with self.lock:
            self.closing = True
            if cancel_futures:
                for task in self.pending:
                    task._cancel_now()
                    self.release(task)
                self.pending.clear()
                for worker in self.workers:
                    for task in worker.inflight:
                        worker.mark_cancelled(task)
                        if not worker.started(task):
                            task._cancel_now()
        self.wakeup.wake()

    def release(self, task: Task) -> None:
        """*task*'s shared memory back to the cache: no worker will read it any more, but
        through the views it took (then the segment's first byte says when it is unused)."""
        segment = task.segment
        if segment is not None:
            task.segment = None
            worker = task.worker
            self.segments.give(segment, loaded=worker is not None and worker.loaded(task))

    # -- the manager thread --------------------------------------------------------------

    def parent_fds(self) -> list[int]:
        fds = self.wakeup.fds()
        for w in self.workers:
            fds += [w.tasks_fd, w.results_fd]
        return fds

    def add_worker(self) -> None:
        worker = _Worker(self, next(self.started_workers))
        self.workers.append(worker)
        self.selector.register(worker.results_fd, selectors.EVENT_READ, worker)
        if worker.sentinel is not None:  # else the results pipe's end of file tells
            self.selector.register(worker.sentinel, selectors.EVENT_READ, worker)
        if worker.out:
            self.flush(worker)  # an interpreter's greeting

    def prestart(self, worker: _Worker) -> None:
        """Start *worker*'s successor now if it got its last task (lock held).

        For a launcher that ``starts_ahead`` only: the manager calls this once a
        worker has its last task when a CPU is idle, and else when that task is
        done, rather than once the worker has exited.
        """
        if (
            self.max_tasks is not None
            and worker.dispatched >= self.max_tasks
            and not worker.replaced
            and self.broken is None
            and not self.closing
        ):
            worker.replaced = True
            self.replace_worker()

    def replace_worker(self) -> None:
        """:meth:`add_worker` from the manager thread: a failure breaks the pool (lock held)."""
        try:
            self.add_worker()
        except BrokenExecutor as exc:
            self.broken = exc
        except ForkRefused as exc:  # subinterpreters appeared since the pool started
            self.broken = BrokenExecutor(f"cannot replace a worker that ended: {exc}")
            self.broken.__cause__ = exc
        except OSError as exc:  # e.g. out of descriptors
            self.broken = BrokenExecutor(
                f"cannot start a new worker: {exc}; no task can run on this executor; "
                "create a new one once the cause is fixed"
            )
            self.broken.__cause__ = exc

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as exc:  # pragma: no cover - a bug; do not hang the callers
            self.fail_everything(BrokenExecutor(f"the pool's manager thread failed: {exc!r}"))
            raise
        finally:
            self.stop_workers()

    def loop(self) -> None:
        while True:
            with self.lock:
                # Deciding to sleep under the same hold of the lock as the last look at
                # `pending`: a submit after it sees `sleeping` and writes the wake pipe.
                batches = self.dispatch() if self.broken is None else []
                if not batches:
                    if self.broken is not None:
                        return
                    if (
                        self.closing
                        and not self.pending
                        and not any(w.inflight for w in self.workers)
                    ):
                        return
                    self.sleeping = True
            for worker, batch in batches:
                if any(len(payload) >= BIG for payload in batch):  # (a shared one is short)
                    worker.out.extend(map(memoryview, batch_frame(batch)))
                    self.flush(worker)
                else:
                    self.send(worker, frame(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)))
                del batch  # the manager keeps no payload alive while it sleeps
                if self.launcher.starts_ahead and len(self.workers) < self.cpus:
                    with self.lock:  # a spare may boot on an idle CPU while this one works
                        self.prestart(worker)
                    if self.broken is not None:
                        self.fail_everything(self.broken)
            if batches:
                batches = []
                continue  # look again: more may have come meanwhile
            events = self.selector.select(self.poll_interval())
            self.sleeping = False
            for key, mask in events:
                worker = key.data
                if worker is None:
                    self.wakeup.drain()
                elif worker.results_fd < 0:
                    continue  # died earlier in this batch of events
                elif key.fd == worker.sentinel:
                    self.on_death(worker)
                elif mask & selectors.EVENT_WRITE:
                    self.flush(worker)
                else:
                    self.receive(worker)
            if self.shortest is not None:
                self.check_timeouts()
            if self.launcher.greets:
                self.check_starts()

    def poll_interval(self) -> float | None:
        interval = None
        if self.shortest is not None and any(w.inflight for w in self.workers):
            interval = min(0.02, self.shortest / 4)
        if self.launcher.greets and not all(w.ready for w in self.workers):
            interval = min(interval or 0.05, 0.05)
        return interval

    def dispatch(self) -> list[tuple[_Worker, list[Any]]]:
        """Hand pending tasks to the least busy workers, many per message (lock held)."""
        pending = self.pending
        live = [w for w in self.workers if w.doomed is None and not w.stopping]
        if self.launcher.starts_ahead and self.max_tasks is not None:  # not the retiring ones
            live = [w for w in live if w.dispatched < self.max_tasks]
        batches: list[tuple[_Worker, list[Any]]] = []
        if not pending or not live:
            return batches
        share = -(-len(pending) // len(live))
        live.sort(key=lambda w: len(w.inflight))
        # with successors started ahead (prestart), at most `size` workers hold tasks
        ahead = self.launcher.starts_ahead
        idle_ok = self.size - sum(1 for w in self.workers if w.inflight) if ahead else 0
        for w in live:
            if ahead and not w.inflight:
                if idle_ok <= 0:
                    continue
                idle_ok -= 1
            room = min(share, _CAP - len(w.inflight))
            if self.max_tasks is not None:
                room = min(room, self.max_tasks - w.dispatched)
            batch = []
            while room > 0 and pending:
                task = pending.popleft()
                if task.done():  # cancelled while queued (under our lock)
                    self.release(task)
                    continue
                task.worker, task.seq = w, w.dispatched
                w.dispatched += 1
                w.inflight.append(task)
                batch.append(task.payload)
                room -= 1
            if batch:
                batches.append((w, batch))
            if not pending:
                break
        return batches

    def send(self, worker: _Worker, data: bytes) -> None:
        worker.out.append(memoryview(data))
        self.flush(worker)

    def flush(self, worker: _Worker) -> None:
        """Write what the pipe takes now; watch it for room when something is left."""
        out = worker.out
        while out:
            try:
                # at most what a (1 MiB) pipe holds: PyPy copies the whole view per call
                n = os.write(worker.tasks_fd, out[0][:_WRITE_MAX])
            except BlockingIOError:
                break
            except OSError:  # the worker is gone; on_death sorts out its tasks
                out.clear()
                break
            if n == len(out[0]):
                out.popleft()
            else:
                out[0] = out[0][n:]
        if bool(out) != worker.watching:
            worker.watching = bool(out)
            with contextlib.suppress(KeyError, ValueError, OSError):
                if out:
                    self.selector.register(worker.tasks_fd, selectors.EVENT_WRITE, worker)
                else:
                    self.selector.unregister(worker.tasks_fd)

    def receive(self, worker: _Worker) -> None:
        space = worker.reader.space()
        if space is not None:  # a big frame: read straight into its buffer
            try:
                n = read_into(worker.results_fd, space)
            except BlockingIOError:
                return
            if n:
                for message in worker.reader.filled(n):
                    self.handle(worker, pickle.loads(message))
                return
            data = b""
        else:
            try:
                data = os.read(worker.results_fd, 1 << 20)
            except BlockingIOError:
                return
        if not data:  # end of file: the worker is exiting; its sentinel follows
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.results_fd)
            if worker.sentinel is None:  # no sentinel to wait for (no pidfd_open)
                self.on_death(worker)
            return
        items: list[tuple[Any, int, Any]] = []
        ok = True
        for message in worker.reader.feed(data):
            loaded = load_outcomes(message)
            if loaded is None:
                ok = False
                break
            items += loaded
        if items:  # the messages one read brings are handled at once
            self.handle(worker, items)
        if not ok:
            self.garbled(worker)

    def deliver(self, worker: _Worker, message: bytes) -> bool:
        """Hand one message's outcomes to their tasks; a value that will not load fails its
        task only. False for a message that cannot be split into outcomes at all (then
        the worker is killed, and its started tasks fail with SerializationError)."""
        items = load_outcomes(message)
        if items is not None:
            self.handle(worker, items)
            return True
        self.garbled(worker)
        return False

    def garbled(self, worker: _Worker) -> None:
        with self.lock:
            task = next(iter(worker.inflight), None)
            if task is not None:
                worker.kill("garbled", task)

    def handle(self, worker: _Worker, items: list[tuple[Any, int, Any]]) -> None:
        done: list[tuple[Task, int, Any]] = []
        logs: list[logging.LogRecord] = []
        shares = False
        with self.lock:
            for _tid, kind, value in items:
                if kind == SHARED:
                    shares = True
                    done.append((worker.inflight.popleft(), kind, value))
                elif kind == LOG:
                    logs.append(value)
                elif kind == INIT_FAILED:
                    self.break_with_initializer(value, worker)
                elif kind == READY:
                    worker.ready = True
                    self.launcher.on_ready(worker.process)
                else:
                    done.append((worker.inflight.popleft(), kind, value))
            if self.launcher.starts_ahead and not worker.inflight:
                self.prestart(worker)  # it is leaving: its successor boots as it exits
        for record in logs:
            replay_log(record)
        if shares:  # copied out of the worker's outbox here, not under the lock
            done = list(map(self.unshare, done))
        for task, kind, value in done:
            if task.segment is not None:
                self.release(task)
            try:
                if type(value) is Unloadable:
                    what = "result" if kind == OK else "exception"
                    task.set_exception(value.error(call_name(task.fn), what))
                elif kind == OK:
                    task._finish(value)
                elif kind != SKIP:
                    task.set_exception(outcome_error(kind, value))
            except InvalidStateError:  # cancelled meanwhile
                pass
            except BaseException:  # e.g. a done-callback raising SystemExit: that task only
                outcome_failed(task)
        if self.broken is not None:
            self.fail_everything(self.broken)

    def unshare(self, done: tuple[Task, int, Any]) -> tuple[Task, int, Any]:
        """A SHARED outcome as an OK one, its result copied out of the worker's outbox."""
        task, kind, value = done
        if kind != SHARED:
            return done
        worker = task.worker
        assert worker is not None
        try:
            return task, OK, shared.take_result(worker.outbox, worker.state, value)
        except OSError as exc:  # its outbox went with it: the worker died (it is exiting)
            worker.process.join(5.0)
            error = crash_error(
                worker.pid,
                worker.process.exitcode,
                call_name(task.fn),
                f"its result was ready but not read yet; the {self.launcher.owner} "
                "replaced it and is still usable",
            )
            error.__cause__ = exc
            return task, ERR, error
        except Exception as exc:  # the result will not load
            return task, OK, Unloadable(exc)

    def break_with_initializer(self, value: Any, worker: _Worker) -> None:
        if type(value) is Unloadable:
            cause: BaseException = value.error("the initializer", "exception")
        else:
            cause = unpack_exception(packed(value))
        self.broken = initializer_failed(self.initializer, cause, f" in worker {worker.pid}")

    def on_death(self, worker: _Worker) -> None:
        if worker.sentinel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.sentinel)
        while True:  # what it sent before dying still counts
            try:
                data = os.read(worker.results_fd, 1 << 20)
            except OSError:
                break
            if not data:
                break
            for message in worker.reader.feed(data):
                self.deliver(worker, message)
        if worker.state[_subworker.STARTED] > worker.state[_subworker.FINISHED]:
            command.kill_group(worker.pid)  # it died mid-task: so does what the task started
        worker.process.join()
        exitcode = worker.process.exitcode
        self.recover(worker)
        for fd in (worker.results_fd, worker.tasks_fd):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
        worker.close_fds()
        lost: list[Task] = []
        with self.lock:
            if not worker.ready and self.broken is None:  # it never started: nothing will
                self.broken = self.launcher.start_failed(worker.process, exitcode)
            close_process(worker.process)
            self.workers.remove(worker)
            started = int(worker.state[_subworker.STARTED])
            requeue = []
            for task in worker.inflight:
                if task.seq >= started:
                    task.worker = None
                    requeue.append(task)
                else:
                    self.release(task)
                    if not task.done():
                        lost.append(task)
            self.pending.extendleft(reversed(requeue))
            worker.inflight.clear()
            replace = (
                self.broken is None
                and not worker.replaced
                and (
                    not self.closing or bool(self.pending) or any(w.inflight for w in self.workers)
                )
            )
            if replace:  # first: the error says whether it worked
                self.replace_worker()
            replaced = replace and self.broken is None
            failures = [(t, self.death_error(worker, t, exitcode, replaced)) for t in lost]
        for task, error in failures:
            with contextlib.suppress(InvalidStateError):
                task.set_exception(error)
        if self.broken is not None:
            self.fail_everything(self.broken)

    def recover(self, worker: _Worker) -> None:
        """Deliver the results a dead worker had finished but not sent: it kept copies in
        shared memory (records of :func:`executors._pool._subworker._keep`)."""
        size = int(worker.state[_subworker.UNSENT])
        with self.lock:
            if not size or not worker.inflight:
                return
            expected = worker.inflight[0].seq  # those before it came through the pipe
        data = bytes(memoryview(worker.unsent).cast("B")[:size])
        items: list[tuple[Any, int, Any]] = []
        at = 0
        while at + 16 <= len(data):
            seq = int.from_bytes(data[at : at + 8], "big")
            end = at + 16 + int.from_bytes(data[at + 8 : at + 16], "big")
            if seq > expected or end > len(data):
                break  # not what the worker wrote: keep what came before
            if seq == expected:  # (a smaller one was sent before it died, too)
                record = data[at + 16 : end]
                loaded = load_outcomes(record) if record else [(None, OK, None)]
                if loaded is None or len(loaded) != 1:
                    break
                items += loaded
                expected += 1
            at = end
        if items:
            self.handle(worker, items)

    def death_error(
        self, worker: _Worker, task: Task, exitcode: int | None, replaced: bool
    ) -> BaseException:
        running = call_name(task.fn)
        owner = self.launcher.owner
        if replaced:
            after = f"the {owner} replaced it and is still usable"
        elif self.broken is not None:
            after = f"the {owner} could not replace it and is broken: {self.broken}"
        else:
            after = f"the {owner} is shutting down"
        if worker.doomed is not None and worker.doomed[1] is task and worker.doomed[0] == "timeout":
            assert task.timeout is not None
            return timeout_error(task.timeout, running, worker.pid, after)
        if worker.doomed is not None and worker.doomed[0] == "garbled":
            return SerializationError(
                f"worker {worker.pid} sent a message the caller cannot unpickle while "
                f"running {running}; it was killed; {after}"
            )
        if worker.doomed is not None and worker.doomed[1] is not task:
            why, other = worker.doomed
            after = (
                f"it was killed to {'cancel' if why == 'cancel' else 'time out'} "
                f"{call_name(other.fn)}, and this task had finished but its result "
                f"was not sent yet; {after}"
            )
        return crash_error(worker.pid, exitcode, running, after)

    def check_timeouts(self) -> None:
        now = time.monotonic()
        with self.lock:
            for w in self.workers:
                if w.doomed is not None or not w.inflight:
                    continue
                started = int(w.state[_subworker.STARTED])
                if started <= int(w.state[_subworker.FINISHED]):
                    continue
                running = next((t for t in w.inflight if t.seq == started - 1), None)
                if running is None or running.timeout is None:
                    continue
                if now - w.state[_subworker.START_TIME] <= running.timeout:
                    continue
                # A worker that ended by itself meanwhile (its task crashed it) is a crash,
                # which its sentinel reports on the next turn: this thread may have been
                # descheduled past the deadline between select() and here (seen on PyPy
                # under load: an exit reported as a timeout).
                if w.process.exitcode is None:
                    w.kill("timeout", running)

    def check_starts(self) -> None:
        """Break the pool when a worker has not greeted after ``launcher.start_timeout``."""
        now = time.monotonic()
        with self.lock:
            for w in self.workers:
                if w.ready or self.broken is not None:
                    continue
                if now - w.launched_at > self.launcher.start_timeout:
                    self.broken = self.launcher.start_timed_out(w.process)
                    w.process.kill()
        if self.broken is not None:
            self.fail_everything(self.broken)

    def fail_everything(self, error: BaseException) -> None:
        with self.lock:
            tasks = list(self.pending)
            self.pending.clear()
            for w in self.workers:
                tasks += w.inflight
                w.inflight.clear()
            for task in tasks:
                self.release(task)
        for task in tasks:
            with contextlib.suppress(InvalidStateError):
                task.set_exception(error)

    def stop_workers(self) -> None:
        """Ask idle workers to leave (kill them if the pool is broken), reap all, close fds."""
        for w in self.workers:
            w.stopping = True
            if self.broken is not None:
                with contextlib.suppress(OSError):
                    os.kill(w.pid, signal.SIGKILL)
            else:
                self.send(w, frame(b""))
        deadline = time.monotonic() + 5.0
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
        self.kill_all()

    def kill_all(self) -> None:
        for w in self.workers:
            if w.process.exitcode is None:
                command.kill_process_tree(w.pid)
                w.process.join()
            w.close_fds()
            close_process(w.process)
        self.workers.clear()
        self.big.clear()  # (their workers' state: a mapping, so a descriptor, each)
        self.segments.close()
        release_manager(self)


def submit_call(  # noqa: PLR0917
    pool: Pool,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dumps: Callable[[Any], bytes],
    pickler: Callable[[Any], bytes],
) -> Task:
    """Pickle ``fn(*args, **kwargs)`` with the caller's context values and queue it on *pool*.

    *dumps* is the fast pickler; on failure *pickler* (the serializer's) names
    the part that would not pickle in a :class:`~executors.SerializationError`.
    """
    fn, timeout = split(fn, pool.task_timeout)
    values = capture()
    pool.wait_for_room()  # before pickling: what waits holds no pickled copy
    call = fold_context(fn, args, kwargs, values)
    packed_call = None
    if ((args and _subworker.big(args)) or (kwargs and _subworker.big(kwargs))) and shared.usable():
        packed_call = _pack_shared(pool, call, dumps)
    if packed_call is not None:
        task = Task(pool, packed_call[0], fn, timeout)
        task.segment = packed_call[1]
        big = True
    else:
        try:
            payload = dumps(call)
        except Exception:
            payload = pack_call(fn, args, kwargs, values, pickler)
        task = Task(pool, payload, fn, timeout)
        big = len(payload) >= BIG
    if timeout is not None and (pool.shortest is None or timeout < pool.shortest):
        with pool.lock:
            pool.shortest = timeout if pool.shortest is None else min(pool.shortest, timeout)
    try:
        pool.submit(task)
    except BaseException:
        pool.release(task)
        raise
    if big:
        with pool.lock:
            pool.big.append(task)
    return task


def _pack_shared(
    pool: Pool, call: tuple[Any, ...], dumps: Callable[..., bytes]
) -> tuple[tuple[Any, ...], shared.Segment] | None:
    """*call* with its big buffers in shared memory, or None: then it is pickled as usual
    (also when it will not pickle: the usual path names the part that will not)."""
    try:
        return shared.pack_call(pool.segments, call, dumps)
    except (pickle.PicklingError, TypeError, AttributeError, OSError):
        return None
