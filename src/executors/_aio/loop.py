"""An event loop in a thread of its own, fed in batches (see :mod:`executors._aio`)."""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import functools
import inspect
import os
import sys
import threading
import weakref
from concurrent.futures import InvalidStateError
from typing import TYPE_CHECKING, Any, Callable

from .. import _deadline
from .._futures import LazyFuture
from .._wording import initializer_failed
from ..errors import BrokenExecutor

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["LoopRunner", "TaskFuture"]


def _settle(setter: Callable[[Any], None], value: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: nothing to tell
        setter(value)


class TaskFuture(LazyFuture[Any]):
    """A future that can cancel a *running* coroutine, and refuses to block its own loop."""

    def __init__(
        self,
        runner: LoopRunner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
        *,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._runner = runner
        self._timeout = timeout  # its task_timeout, or its own (executors.with_timeout)
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._ctx: contextvars.Context | None = contextvars.copy_context()
        self._is_async = is_async
        # Set here, not first on the loop: a key added later gives each future a dict.
        self._task: asyncio.Task[None] | None = None

    def _call(self) -> Any:
        """Call the function (in the current context), forgetting it and its arguments."""
        fn, args, kwargs = self._fn, self._args, self._kwargs
        if fn is None:
            raise RuntimeError("a task ran twice")
        self._fn = self._ctx = None
        self._args, self._kwargs = (), {}
        return fn(*args, **kwargs)

    def cancel(self) -> bool:
        """Cancel a pending task, or a running coroutine (its asyncio task is cancelled)."""
        if self._cancel_now():
            return True
        return self._is_async and self._cancel_running(
            functools.partial(self._runner.cancel_task, self)
        )

    def _cancelled_by_task(self) -> None:
        """The coroutine ended with CancelledError (cancelled here, or it raised one)."""
        self._cancel_running()

    def result(self, timeout: float | None = None) -> Any:
        if self._open():
            self._refuse_to_block()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_to_block()
        return super().exception(timeout)

    def _refuse_to_block(self) -> None:
        if self._open() and threading.get_ident() == self._runner.thread_id:
            raise RuntimeError(
                "future.result() called inside the asyncio executor's own event loop, on a "
                "task that has not finished: waiting would block the loop that must run it "
                "(a deadlock); use 'await asyncio.wrap_future(future)' instead"
            )


class LoopRunner:
    """The loop thread and its bookkeeping; holds no reference to the executor (so it can be
    collected, which stops the loop)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        cap: int | None,
        pool: ThreadPoolExecutor,
        thread_name: str,
        init: tuple[Callable[..., object] | None, tuple[Any, ...]],
    ) -> None:
        self.loop = loop
        self.cap = cap
        self.pool = pool
        self.incoming: collections.deque[TaskFuture] = collections.deque()
        self.lock = threading.Lock()  # held while reading and setting stopping in shutdown()
        self.wakeup_pending = False
        self.stopping = False  # set by shutdown(); no new tasks
        self.closing = False  # seen by the loop: stop once idle
        self.closed = False  # the loop has stopped for good
        self.running = 0
        self.broken: BrokenExecutor | None = None
        self.thread = threading.Thread(target=self.main, name=thread_name, daemon=True)
        self.ready = threading.Event()
        self.init = init
        # create_task(context=...) is 3.11+; a custom or older third-party loop may lack it.
        self.context_kw = sys.version_info >= (3, 11) and "context" in _parameters(loop.create_task)
        # 3.12+: a task runs its first step at once, so a coroutine that finishes without
        # waiting costs no loop iteration (asyncio's eager tasks; stdlib loops only).
        self.eager = (
            sys.version_info >= (3, 12)
            and type(loop).__module__.startswith("asyncio.")
            and loop.get_task_factory() is None
        )
        # 3.11: the same, done by first_step(); stdlib loops and tasks only (whose Task
        # finds call_soon on the loop instance), and never inside a task (start_more()).
        stdlib_tasks = (getattr(asyncio.tasks, "_CTask", None), vars(asyncio.tasks).get("_PyTask"))
        self.step_first = (
            not self.eager
            and self.context_kw
            and type(loop).__module__.startswith("asyncio.")
            and asyncio.Task in stdlib_tasks
        )
        self.step: tuple[Callable[..., object], tuple[Any, ...], contextvars.Context] | None = None
        self.starting = False  # inside start_more(): an eager task must not re-enter it
        self.thread.start()
        self.ready.wait()
        self.thread_id = self.thread.ident
        _live.add(self)

    # -- any thread ---------------------------------------------------------------------

    def submit(self, fut: TaskFuture) -> None:
        # Lock-free, so submitting threads never queue behind the loop thread. The loop
        # clears wakeup_pending *before* it drains, so an item appended while a wake-up is
        # pending is always seen; after close_loop() has set closed (then drained what was
        # left), an append is refused here instead.
        if self.stopping:
            raise RuntimeError("cannot schedule new futures after shutdown")
        self.incoming.append(fut)
        if self.closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not self.wakeup_pending:
            self.wakeup_pending = True  # one wake-up per batch, not per task
            self.call(self.drain)

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon (from any thread, the loop's own included)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to act on
            if threading.get_ident() == self.thread_id:
                self.loop.call_soon(fn, *args)  # no self-pipe write from the loop's own thread
            else:
                self.loop.call_soon_threadsafe(fn, *args)

    def cancel_task(self, fut: TaskFuture) -> None:
        self.call(_cancel_task_of, fut)

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            first = not self.stopping
            self.stopping = True
        if cancel_futures:
            # Only what has not started (concurrent.futures): running coroutines finish;
            # stopping one is an explicit act, its future's cancel().
            for fut in list(self.incoming):  # the loop skips them when it pops them
                fut.cancel()
        if first:
            self.call(self.begin_close)
        if wait and threading.get_ident() != self.thread_id:
            self.thread.join()

    # -- the loop thread ----------------------------------------------------------------

    def main(self) -> None:
        loop = self.loop
        try:
            init, args = self.init
            if init is not None:
                try:
                    init(*args)
                except Exception as exc:
                    self.broken = initializer_failed(init, exc)
                    self.stopping = True
                    return
            self.ready.set()
            loop.run_forever()
        finally:
            self.ready.set()
            self.close_loop()

    def close_loop(self) -> None:
        """What asyncio.run() does on the way out: nothing is left pending or unclosed."""
        loop = self.loop
        self.closed = True
        for fut in list(self.incoming):  # submitted while the loop stopped
            if fut.set_running_or_notify_cancel():
                fut.set_exception(RuntimeError("cannot schedule new futures after shutdown"))
        try:
            stray = asyncio.all_tasks(loop)  # tasks the coroutines spawned and left
            for task in stray:
                task.cancel()
            if stray:
                loop.run_until_complete(asyncio.gather(*stray, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            shutdown_default = getattr(loop, "shutdown_default_executor", None)
            if shutdown_default is not None:
                loop.run_until_complete(shutdown_default())
        finally:
            loop.close()
            self.pool.shutdown(wait=True)

    def drain(self) -> None:
        self.wakeup_pending = False
        self.start_more()

    def start_more(self) -> None:
        if self.starting:
            return  # a task that finished eagerly, inside start(): the loop below goes on
        incoming, cap = self.incoming, self.cap
        loop = self.loop
        # Not inside a task's step (one that just ended; 3.11 cannot nest them), nor when
        # someone has put a task factory or a call_soon of their own on the loop.
        first = (
            self.step_first
            and loop.get_task_factory() is None
            and asyncio.current_task(loop) is None
            and "call_soon" not in vars(loop)
        )
        self.starting = True
        try:
            while incoming and (cap is None or self.running < cap):
                self.start(incoming.popleft(), first)
        finally:
            self.starting = False
        if self.closing and not self.running and not incoming:
            loop.stop()

    def start(self, fut: TaskFuture, first: bool = False) -> None:
        if not fut._set_running():
            return  # cancelled while it waited
        self.running += 1
        if fut._timeout is not None:
            assert fut._fn is not None
            # the deadline thread calls it: cancel_task hands the cancel to the loop's thread
            cancel = functools.partial(self.cancel_task, fut) if fut._is_async else None
            _deadline.watch(fut, fut._timeout, _deadline.describe(fut._fn), cancel)
        if not fut._is_async:
            try:
                done = self.pool.submit(self.call_in_thread, fut)
            except RuntimeError as exc:  # the pool is broken, or the interpreter is exiting
                if "interpreter shutdown" in str(exc):
                    # Python 3.12 starts no thread while it shuts down: a task left at
                    # exit runs here, on the loop's thread (nothing else waits for it),
                    # and asyncio's debug mode must not call that a slow callback.
                    self.loop.slow_callback_duration = float("inf")
                    self.call_in_thread(fut)
                    return
                _settle(fut.set_exception, exc)
                self.release()
            else:
                done.add_done_callback(functools.partial(self.never_ran, fut))
            return
        # The task runs in the context captured at submit (a copy, private to this task).
        ctx = fut._ctx
        assert ctx is not None
        if self.eager:
            task: Any = asyncio.Task  # typeshed for 3.9 lacks eager_start=
            created = task(self.run_coroutine(fut), loop=self.loop, context=ctx, eager_start=True)
            if not created.done():
                fut._task = created
        elif first:
            created = self.first_step(self.run_coroutine(fut), ctx)
            if not created.done():
                fut._task = created
        elif self.context_kw:
            loop: Any = self.loop  # typeshed for 3.9 lacks context=
            fut._task = loop.create_task(self.run_coroutine(fut), context=ctx)
        else:  # before 3.11, create_task() copies the current context: enter ours first
            fut._task = ctx.run(self.loop.create_task, self.run_coroutine(fut))

    def first_step(self, coro: Coroutine[Any, Any, None], ctx: contextvars.Context) -> Any:
        """A task whose first step runs now, as 3.12's ``eager_start=True`` does.

        A coroutine that ends without waiting then costs no handle and no loop
        iteration, and, with 100,000 of them submitted, no 100,000 tasks alive at once
        (the cyclic GC's work). The step is the task's own (its current_task(), its
        context, its cancellation); only *when* it runs changes. 3.11's Task schedules
        its first step in ``__init__`` through ``loop.call_soon``: for that one call an
        attribute of the loop instance catches the step, which then runs here.
        """
        loop: Any = self.loop
        loop.call_soon = self.keep_step
        try:
            task = asyncio.Task(coro, loop=loop, context=ctx)
        finally:
            del loop.call_soon
        step, self.step = self.step, None
        assert step is not None
        callback, args, context = step
        try:
            context.run(callback, *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # what Handle._run does with a step that raised
            loop.call_exception_handler(
                {"message": f"Exception in the first step of {task!r}", "exception": exc}
            )
        return task

    def keep_step(self, callback: Callable[..., object], *args: Any, context: Any = None) -> Any:
        """``loop.call_soon`` while first_step() makes its task: keeps that task's step."""
        if (
            self.step is None
            and context is not None
            and isinstance(getattr(callback, "__self__", None), asyncio.Task)
            and threading.get_ident() == self.thread_id
        ):
            self.step = (callback, args, context)
            return None
        # Anyone else meanwhile (a finalizer the allocation ran): the real method.
        return type(self.loop).call_soon(self.loop, callback, *args, context=context)

    async def run_coroutine(self, fut: TaskFuture) -> None:
        try:
            result = await fut._call()  # in the task's context: a copy of the submitter's
        except asyncio.CancelledError:
            fut._cancelled_by_task()
        except BaseException as exc:  # a task's KeyboardInterrupt must not kill the loop
            _settle(fut.set_exception, exc)
        else:
            fut._finish(result)
        finally:
            fut._task = None
            self.running -= 1
            if self.incoming or self.closing:
                self.start_more()

    def call_in_thread(self, fut: TaskFuture) -> None:
        try:
            ctx = fut._ctx
            assert ctx is not None
            result = ctx.run(fut._call)
        except BaseException as exc:
            _settle(fut.set_exception, exc)
        else:
            _settle(fut.set_result, result)
        finally:
            self.call(self.release)

    def never_ran(self, fut: TaskFuture, done: Future[None]) -> None:
        # call_in_thread catches everything, so an error here means it never ran: a worker
        # thread's initializer failed, and the pool failed what it held.
        exc = None if done.cancelled() else done.exception()
        if exc is not None:
            _settle(fut.set_exception, exc)
            self.call(self.release)

    def release(self) -> None:
        self.running -= 1
        self.start_more()

    def begin_close(self) -> None:
        self.closing = True
        self.start_more()


_live: weakref.WeakSet[LoopRunner] = weakref.WeakSet()

if hasattr(os, "register_at_fork"):  # a child has none of its parent's loop threads
    os.register_at_fork(after_in_child=_live.clear)


def _at_exit() -> None:
    # Like the standard thread pool: at exit, finish what was submitted, then stop.
    for runner in list(_live):
        runner.shutdown(wait=True, cancel_futures=False)


# threading's hook runs before the interpreter joins the thread pools' workers
# (which plain functions still need); atexit would run after.
getattr(threading, "_register_atexit", atexit.register)(_at_exit)


# Both cancel a task one callback later: a task made in this loop iteration has its first
# step queued already (or run already, when started eagerly), so its coroutine has entered
# its try block (and so runs its finally block) by then. A task cancelled before its first
# step would never run its body.


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    # The running coroutines' tasks (their futures end cancelled) and any task they spawned;
    # not shutdown()'s (running tasks finish there), but the tests' tear-down.
    for task in asyncio.all_tasks(loop):
        loop.call_soon(task.cancel)


def _cancel_task_of(fut: TaskFuture) -> None:
    if fut._task is not None:
        fut._runner.loop.call_soon(fut._task.cancel)


def _parameters(fn: Callable[..., Any]) -> Mapping[str, Any]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a C function without a signature
        return {}
