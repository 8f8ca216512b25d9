"""Run coroutine functions as tasks on an event loop the executor owns; plain functions on threads.

Registered as ``asyncio``; the module is ``aio`` so that it does not shadow the
standard library. How a task travels::

    caller threads                           the executor's loop thread
    --------------                           --------------------------
    submit(fn, *args)
      -> _TaskFuture (context copied)
      -> incoming deque ---- one wake-up ---> drain(): while running < max_workers
         per batch, not per task                |- async fn: create_task(run_coroutine)
                                                '- plain fn: a worker thread
    future.cancel() on a running  ----------> task.cancel()
      coroutine (returns True)
    shutdown() ------------------------------> stop when nothing runs; cancel stray
                                               tasks, close async generators, close loop
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import importlib
import inspect
import sys
import threading
import weakref
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar, Union

from .. import _validate
from .._compat import ParamSpec
from ..awaitable import _is_async
from ..errors import BackendUnavailable, BrokenExecutor, InvalidOption
from ..protocol import BaseExecutor, _not_callable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["AsyncioExecutor"]

P = ParamSpec("P")
R = TypeVar("R")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
LoopOption = Union[str, LoopFactory]


def _settle(setter: Callable[[Any], None], value: Any) -> None:
    with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: nothing to tell
        setter(value)


class _Condition(threading.Condition):
    """A :class:`threading.Condition` on an RLock, without five bound methods per instance.

    Same behaviour; the lock's methods are looked up per call instead. With 100,000
    futures alive, the objects the standard one allocates are a third of the cost of a
    task (cyclic GC time), so this is the one place we mirror a private layout.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._waiters: collections.deque[Any] = collections.deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def _release_save(self) -> Any:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined, no-any-return]


# Future.__init__ sets exactly these; if a Python version sets others, use it as is.
_LEAN = sorted(vars(Future())) == [
    "_condition",
    "_done_callbacks",
    "_exception",
    "_result",
    "_state",
    "_waiters",
]


class _TaskFuture(Future[Any]):
    """A future that can cancel a *running* coroutine, and refuses to block its own loop."""

    _task: asyncio.Task[None] | None = None

    def __init__(
        self,
        runner: _Runner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
    ) -> None:
        if _LEAN:
            self._condition = _Condition()
            self._state = PENDING
            self._result = self._exception = None
            self._waiters = []
            self._done_callbacks: list[Callable[[Future[Any]], object]] = []
        else:  # pragma: no cover - a Python whose Future has other fields
            super().__init__()
        self._runner = runner
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._ctx: contextvars.Context | None = contextvars.copy_context()
        self._is_async = is_async

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
        with self._condition:
            state = self._state
            if state == FINISHED or (state == RUNNING and not self._is_async):
                return False
            if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            if state == RUNNING:
                self._mark_cancelled()
            else:
                self._state = CANCELLED
                self._condition.notify_all()
        if state == RUNNING:
            self._runner.cancel_task(self)
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def _mark_cancelled(self) -> None:
        # RUNNING -> cancelled, as set_running_or_notify_cancel() would tell the waiters.
        self._state = CANCELLED_AND_NOTIFIED
        for waiter in self._waiters:
            waiter.add_cancelled(self)
        self._condition.notify_all()

    def _cancelled_by_task(self) -> None:
        """The coroutine ended with CancelledError (cancelled here, or it raised one)."""
        with self._condition:
            if self._state != RUNNING:
                return
            self._mark_cancelled()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def result(self, timeout: float | None = None) -> Any:
        self._refuse_to_block()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_to_block()
        return super().exception(timeout)

    def _refuse_to_block(self) -> None:
        if self._state in (PENDING, RUNNING) and threading.get_ident() == self._runner.thread_id:
            raise RuntimeError(
                "future.result() called inside the asyncio executor's own event loop, on a "
                "task that has not finished: waiting would block the loop that must run it "
                "(a deadlock); use 'await asyncio.wrap_future(future)' instead"
            )


class _Runner:
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
        self.incoming: collections.deque[_TaskFuture] = collections.deque()
        self.lock = threading.Lock()
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
        self.context_kw = sys.version_info >= (3, 11) and "context" in _parameters(
            loop.create_task
        )
        self.thread.start()
        self.ready.wait()
        self.thread_id = self.thread.ident
        _live.add(self)

    # -- any thread ---------------------------------------------------------------------

    def submit(self, fut: _TaskFuture) -> None:
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
            self.loop.call_soon_threadsafe(fn, *args)

    def cancel_task(self, fut: _TaskFuture) -> None:
        self.call(_cancel_task_of, fut)

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            first = not self.stopping
            self.stopping = True
        if cancel_futures:
            for fut in list(self.incoming):  # the loop skips them when it pops them
                fut.cancel()
            self.call(_cancel_all_tasks, self.loop)
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
                    self.broken = BrokenExecutor(
                        f"initializer {init!r} raised {type(exc).__name__}: {exc}; "
                        "no task can run on this executor"
                    )
                    self.broken.__cause__ = exc
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
            with contextlib.suppress(InvalidStateError):
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
        incoming, cap = self.incoming, self.cap
        while incoming and (cap is None or self.running < cap):
            self.start(incoming.popleft())
        if self.closing and not self.running and not incoming:
            self.loop.stop()

    def start(self, fut: _TaskFuture) -> None:
        if not fut.set_running_or_notify_cancel():
            return  # cancelled while it waited
        self.running += 1
        if not fut._is_async:
            try:
                self.pool.submit(self.call_in_thread, fut)
            except RuntimeError as exc:  # the interpreter is exiting: no new threads
                _settle(fut.set_exception, exc)
                self.release()
            return
        # The task runs in the context captured at submit (a copy, private to this task).
        ctx = fut._ctx
        assert ctx is not None
        if self.context_kw:
            loop: Any = self.loop  # typeshed for 3.9 lacks context=
            fut._task = loop.create_task(self.run_coroutine(fut), context=ctx)
        else:  # before 3.11, create_task() copies the current context: enter ours first
            fut._task = ctx.run(self.loop.create_task, self.run_coroutine(fut))

    async def run_coroutine(self, fut: _TaskFuture) -> None:
        try:
            result = await fut._call()  # in the task's context: a copy of the submitter's
        except asyncio.CancelledError:
            fut._cancelled_by_task()
        except BaseException as exc:  # a task's KeyboardInterrupt must not kill the loop
            _settle(fut.set_exception, exc)
        else:
            try:  # noqa: SIM105 - suppress() costs more than the rest of this per-task path
                fut.set_result(result)
            except InvalidStateError:  # cancelled meanwhile: nothing to tell
                pass
        finally:
            fut._task = None
            self.running -= 1
            if self.incoming or self.closing:
                self.start_more()

    def call_in_thread(self, fut: _TaskFuture) -> None:
        try:
            ctx = fut._ctx
            assert ctx is not None
            result = ctx.run(fut._call)
        except BaseException as exc:
            _settle(fut.set_exception, exc)
        else:
            _settle(fut.set_result, result)
        finally:
            self.loop.call_soon_threadsafe(self.release)

    def release(self) -> None:
        self.running -= 1
        self.start_more()

    def begin_close(self) -> None:
        self.closing = True
        self.start_more()


_live: weakref.WeakSet[_Runner] = weakref.WeakSet()


def _at_exit() -> None:
    # Like the standard thread pool: at exit, finish what was submitted, then stop.
    for runner in list(_live):
        runner.shutdown(wait=True, cancel_futures=False)


# threading's hook runs before the interpreter joins the thread pools' workers
# (which plain functions still need); atexit would run after.
getattr(threading, "_register_atexit", atexit.register)(_at_exit)


# Both cancel a task one callback later: a task made in this loop iteration has its first
# step queued already, so its coroutine has entered its try block (and so runs its finally
# block) by then. A task cancelled before its first step would never run its body.


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    # The running coroutines' tasks (their futures end cancelled) and any task they spawned.
    for task in asyncio.all_tasks(loop):
        loop.call_soon(task.cancel)


def _cancel_task_of(fut: _TaskFuture) -> None:
    if fut._task is not None:
        fut._runner.loop.call_soon(fut._task.cancel)


def _parameters(fn: Callable[..., Any]) -> Mapping[str, Any]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a C function without a signature
        return {}


def _loop_factory(loop: LoopOption) -> LoopFactory:
    if callable(loop):
        return loop
    if loop == "asyncio":
        return asyncio.new_event_loop
    if loop == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise BackendUnavailable(
                "loop='uvloop' needs the uvloop package, which is not installed; install it "
                "with: pip install 'pluggable-executors[uvloop]' (not on Windows), or use "
                "loop='asyncio'"
            ) from None
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    raise InvalidOption(
        f"loop must be 'asyncio', 'uvloop' or a callable returning a new event loop, got {loop!r}"
    )


class AsyncioExecutor(BaseExecutor):
    """Coroutines on one event loop, in a thread the executor owns: the gevent story, without
    greenlets.

    ``submit(async_fn, *args)`` runs the coroutine function as a task on the loop;
    a plain function runs on a worker thread, so blocking code does not stall the
    loop. Both see the submitter's context (:func:`executors.context.bind`).
    ``future.cancel()`` also cancels a *running* coroutine (its task gets
    :class:`asyncio.CancelledError`). See :doc:`/backends/asyncio` for the rules
    when the caller itself runs in an event loop.

    :param max_workers: how many tasks run at once (gevent's ``Pool(n)``); the
        rest wait in submission order. None (the default): no cap, every
        coroutine starts at once.
    :param loop: ``"asyncio"``, ``"uvloop"`` (needs the package), or a callable
        returning a new event loop.
    :param thread_name_prefix: names the loop thread (``<prefix>-loop``) and the
        worker threads for plain functions (``<prefix>_<n>``).
    :param initializer: called with *initargs* once on the loop thread and once
        on each worker thread, before any task (for :data:`executors.context.worker`).

    >>> import asyncio
    >>> from executors import get_executor
    >>> async def visit(url):
    ...     await asyncio.sleep(0.01)
    ...     return f"url:{url} --->finish"
    >>> with get_executor("asyncio", max_workers=2) as ex:   # gevent.pool.Pool(2)
    ...     list(ex.map(visit, ["github.com", "python.org", ""]))
    ['url:github.com --->finish', 'url:python.org --->finish', 'url: --->finish']
    """

    name: ClassVar[str] = "asyncio"
    #: Coroutine functions run as they are (:func:`executors.aio` awaits them natively).
    runs_coroutines: ClassVar[bool] = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        loop: LoopOption = "asyncio",
        thread_name_prefix: str = "executors-asyncio",
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        self.max_workers = (
            None if max_workers is None else _validate.max_workers(max_workers, default=1)
        )
        factory = _loop_factory(loop)
        init, args = _validate.initializer(initializer, initargs)
        self._loop_name = loop if isinstance(loop, str) else getattr(loop, "__name__", "custom")
        threads = self.max_workers or min(32, _validate.cpu_count() + 4)
        pool = ThreadPoolExecutor(threads, thread_name_prefix, init, args)
        try:
            new_loop = factory()
        except BaseException:
            pool.shutdown()
            raise
        self._runner = _Runner(
            new_loop, self.max_workers, pool, f"{thread_name_prefix}-loop", (init, args)
        )
        # Dropped without shutdown(): the loop finishes what it has, then closes.
        weakref.finalize(self, self._runner.shutdown, False, False)

    @classmethod
    def default_max_workers(cls) -> None:
        """None: no cap; every submitted coroutine starts at once."""
        return None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the tasks run on (in the executor's own thread)."""
        return self._runner.loop

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run ``fn(*args, **kwargs)``: a coroutine function as a task, a plain one on a thread.

        :raises TypeError: for a coroutine *object* (pass the function and its arguments).
        :raises RuntimeError: after :meth:`shutdown`.
        :raises BrokenExecutor: when the initializer failed.
        """
        obj: object = fn
        if not callable(obj):
            if asyncio.iscoroutine(obj):
                obj.close()  # never awaited, and it will not be
                raise TypeError(
                    f"submit() needs a coroutine function, got the coroutine object {fn!r}; "
                    "pass the function and its arguments separately: submit(fetch, url), "
                    "not submit(fetch(url))"
                )
            raise _not_callable(fn, "submit()")
        return self._submit(fn, args, kwargs)

    def _submit(
        self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[R]:
        runner = self._runner
        if runner.broken is not None:
            raise runner.broken
        fut = _TaskFuture(runner, fn, args, kwargs, _is_async(fn))
        runner.submit(fut)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking tasks, then close the loop once the last one is done.

        :param wait: block until the loop is closed and every thread has ended
            (ignored when called from a task on this executor's own loop, which
            cannot wait for itself).
        :param cancel_futures: cancel pending tasks *and* running coroutines;
            running plain functions finish.
        """
        self._runner.shutdown(wait, cancel_futures)

    def __repr__(self) -> str:
        return (
            f"<AsyncioExecutor backend='asyncio' max_workers={self.max_workers} "
            f"loop={self._loop_name!r}>"
        )
