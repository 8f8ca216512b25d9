"""CPython's own ``test.test_concurrent_futures``, run against every backend (``tox -e upstream``).

The upstream test mixins are imported from the interpreter's ``test`` package
(the 3.13 layout: a package with one module per feature) and combined with
:class:`_Ours`, which substitutes ``get_executor(backend)`` for the standard
library's class; nothing of theirs is copied. The scripts that some upstream tests
run in a child interpreter import the executor from :mod:`concurrent.futures` by
name; :func:`_assert_python_ok` points that import at ours instead.

Which upstream classes run where:

- every backend: ``AsCompletedTests``, ``InitializerMixin``, ``FailingInitializerMixin``;
- in-process backends (``thread``, ``asyncio``, ``inline``, ``interpreter``): the thread pool's
  ``ThreadPoolExecutorTest``, ``ThreadPoolShutdownTest``, ``ThreadPoolWaitTests``;
- backends with worker processes (``fork``, ``process``, ``pool``, ``subprocess``,
  ``remote``): the process pool's ``ProcessPoolExecutorTest``,
  ``ProcessPoolShutdownTest``, ``WaitTests``, ``ExecutorDeadlockTest``.

Every upstream test passes, is skipped by upstream itself (platform, start
method), or is one of :data:`DEVIATIONS`: a deliberate difference, each with its
reason (also in ``docs/upstream.rst``). A deviation that is run is expected to
fail (an unexpected pass fails the run, so the list stays true); one marked
``run=False`` would hang or take minutes, and is skipped.

The module runs only with ``EXECUTORS_UPSTREAM=1`` (the ``upstream`` tox env) on a
Python whose ``test`` package has the 3.13 layout; ``tests/upstream/conftest.py``
prints the counts per backend.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import re
import unittest
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from executors import registry

# An upstream test leaves objects whose __del__ fails once their Manager is gone; that
# must not fail whichever test happens to collect them.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

if os.environ.get("EXECUTORS_UPSTREAM") != "1":
    pytest.skip("run with EXECUTORS_UPSTREAM=1 (tox -e upstream)", allow_module_level=True)

try:
    _pkg = importlib.import_module("test.test_concurrent_futures")
except ImportError:  # pragma: no cover - a Python built without its test package
    pytest.skip("this Python has no test.test_concurrent_futures", allow_module_level=True)
if not hasattr(_pkg, "__path__"):  # pragma: no cover - 3.11 and older: one module
    pytest.skip("needs the 3.12+ layout of test.test_concurrent_futures", allow_module_level=True)


def _upstream(name: str) -> Any:
    return importlib.import_module(f"test.test_concurrent_futures.{name}")


util = _upstream("util")
as_completed = _upstream("test_as_completed")
init = _upstream("test_init")
thread_pool = _upstream("test_thread_pool")
process_pool = _upstream("test_process_pool")
shutdown = _upstream("test_shutdown")
wait = _upstream("test_wait")
deadlock = _upstream("test_deadlock")

IN_PROCESS = ("asyncio", "inline", "interpreter", "thread")
WITH_PROCESSES = ("fork", "pool", "process", "remote", "subprocess")
ALL = IN_PROCESS + WITH_PROCESSES

#: The upstream test classes run on each group of backends.
SUITES: dict[tuple[str, ...], tuple[type, ...]] = {
    ALL: (as_completed.AsCompletedTests, init.InitializerMixin, init.FailingInitializerMixin),
    IN_PROCESS: (
        thread_pool.ThreadPoolExecutorTest,
        shutdown.ThreadPoolShutdownTest,
        wait.ThreadPoolWaitTests,
    ),
    WITH_PROCESSES: (
        process_pool.ProcessPoolExecutorTest,
        shutdown.ProcessPoolShutdownTest,
        wait.WaitTests,
        deadlock.ExecutorDeadlockTest,
    ),
}


@dataclass(frozen=True)
class Deviation:
    """Upstream tests we deliberately do not pass, on some backends, and why."""

    tests: tuple[str, ...]  # method names, or "Suite.method" (Suite: the class, unsuffixed)
    backends: tuple[str, ...]
    reason: str
    #: False: not run (it would hang or wait minutes); True: run, and expected to fail.
    run: bool = True


# -- deviations-begin (docs/upstream.rst shows this part of the file as it is)
PRIVATE = "reads private attributes of the standard library's classes ({})"
INLINE = "inline runs each task inside submit(): nothing is ever pending or running alongside"
NO_PICKLE_IN = (
    "fork and process (fork start method) do not pickle the task: the child inherits it, "
    "so nothing can fail to load there"
)
PICKLED_IN_SUBMIT = (
    "the task is pickled inside submit(): one that cannot be pickled makes submit() itself "
    "raise SerializationError (a PicklingError), where upstream returns a future that fails"
)
RESULT_LOAD = (
    "by design, a result that fails to load in the caller fails only its future "
    "(SerializationError, the load error as its cause) and the executor keeps serving; "
    "upstream breaks the whole pool (BrokenProcessPool)"
)

DEVIATIONS: tuple[Deviation, ...] = (
    # -- private attributes of the stdlib classes ----------------------------------------
    Deviation(
        ("test_default_workers", "test_saturation"),
        ALL,
        PRIVATE.format("_max_workers, _threads, _processes; ours: the public max_workers"),
    ),
    Deviation(
        ("test_idle_process_reuse_one", "test_idle_process_reuse_multiple"),
        WITH_PROCESSES,
        PRIVATE.format("_max_workers, _processes"),
    ),
    Deviation(
        ("test_processes_terminate",),
        WITH_PROCESSES,
        PRIVATE.format("_processes") + "; its tasks then block on a semaphore for ever",
        run=False,
    ),
    Deviation(
        ("test_shutdown_deadlock_pickle",),
        WITH_PROCESSES,
        PRIVATE.format("_executor_manager_thread"),
    ),
    Deviation(
        ("test_max_tasks_per_child_defaults_to_spawn_context",),
        WITH_PROCESSES,
        PRIVATE.format("_mp_context") + "; the pool keeps its start method with "
        "max_tasks_per_child, and fork, process, remote start a worker per task or by hand",
    ),
    Deviation(
        ("test_idle_thread_reuse",),
        ("asyncio", "inline", "interpreter"),
        PRIVATE.format("_threads"),
    ),
    Deviation(
        ("test_threads_terminate",),
        ("asyncio", "inline"),
        PRIVATE.format("_threads") + "; inline would block for ever in submit()",
        run=False,
    ),
    Deviation(
        ("FailingInitializer.test_initializer",),
        tuple(b for b in ALL if b not in ("remote", "subprocess")),
        "FailingInitializer: " + PRIVATE.format("_broken") + ", and expects the failure "
        "logged on the 'concurrent.futures' logger; ours fails each future with "
        "BrokenExecutor, the initializer's exception as its cause",
    ),
    Deviation(
        ("FailingInitializer.test_initializer",),
        ("remote", "subprocess"),
        "FailingInitializer: as on the other backends (_broken, the 'concurrent.futures' "
        "logger), and it polls _broken for 30 s first",
        run=False,
    ),
    Deviation(
        ("test_traceback",),
        WITH_PROCESSES,
        "checks that the cause is the standard library's private _RemoteTraceback; ours is "
        "executors.serialization.RemoteTraceback, with the same worker traceback text",
    ),
    Deviation(
        ("test_python_finalization_error",),
        ("pool", "remote", "subprocess"),
        "patches threading._start_joinable_thread to break the standard library's own "
        "start-up, and expects its error; these start their workers and manager otherwise",
    ),
    # -- by design: a crash fails one task, the executor keeps working ------------------
    Deviation(
        ("test_killed_child",),
        WITH_PROCESSES,
        PRIVATE.format("_processes") + "; and demands the whole pool be broken after one "
        "worker is killed, where ours fails that task only and replaces the worker",
    ),
    Deviation(
        ("test_error_at_task_unpickle", "test_exit_at_task_unpickle"),
        ("pool", "remote", "subprocess"),
        "demands BrokenProcessPool when a worker cannot load a task; ours fails that task "
        "only (SerializationError) and keeps the executor",
    ),
    Deviation(
        (
            "test_error_at_task_unpickle",
            "test_exit_at_task_unpickle",
            "test_crash_at_task_unpickle",
        ),
        ("fork", "process"),
        NO_PICKLE_IN,
    ),
    Deviation(
        (
            "test_crash_at_task_unpickle",
            "test_crash_during_func_exec_on_worker",
            "test_crash_during_result_pickle_on_worker",
            "test_crash_big_data",
            "test_shutdown_deadlock",
        ),
        ("remote",),
        "a task whose worker dies is retried on another worker (max_retries=2), then fails "
        "with WorkerLost; a crash-every-time task costs three workers",
    ),
    Deviation(("test_error_at_task_pickle",), ("pool", "remote", "subprocess"), PICKLED_IN_SUBMIT),
    Deviation(("test_error_at_task_pickle",), ("fork", "process"), NO_PICKLE_IN),
    Deviation(
        ("test_exit_during_result_pickle_on_worker",),
        ("fork", "pool", "process", "subprocess"),
        "a SystemExit raised while the worker pickles a result ends that worker: the task "
        "fails with WorkerCrashed (exit code 1), not with the SystemExit",
    ),
    Deviation(
        (
            "test_error_during_result_unpickle_in_result_handler",
            "test_exit_during_result_unpickle_in_result_handler",
        ),
        WITH_PROCESSES,
        RESULT_LOAD,
    ),
    Deviation(
        ("test_ressources_gced_in_workers",),
        ("fork", "process"),
        "a fork or process child leaves with os._exit once its task is done: the arguments' "
        "__del__ (which the test waits for) does not run there",
    ),
    Deviation(
        ("test_ressources_gced_in_workers",),
        ("remote", "subprocess"),
        "workers are fresh interpreters without the caller's multiprocessing authkey, so the "
        "Manager proxy passed as an argument cannot connect back",
    ),
    Deviation(
        ("test_max_tasks_per_child",),
        WITH_PROCESSES,
        "expects ValueError for max_tasks_per_child with the fork start method; every backend "
        "takes it (pool and subprocess replace the worker; fork and process start a process "
        "per task anyway; remote passes it to its workers' engine)",
    ),
    Deviation(
        ("test_cancel_futures",),
        ("asyncio", "interpreter", "pool", "remote", "subprocess"),
        "submitted tasks wait in the executor until its manager (or loop) hands them out, so "
        "a shutdown(cancel_futures=True) right after 50 quick submits may cancel all 50; the "
        "test wants some to have started (a race: not run)",
        run=False,
    ),
    Deviation(
        ("test_idle_thread_reuse",),
        ("thread",),
        "a worker thread counts as idle once it waits again; a task submitted the moment the "
        "previous result arrives may start a new thread (up to max_workers); a race: not run",
        run=False,
    ),
    # -- interpreter: a task crosses to another interpreter pickled --------------------
    Deviation(
        (
            "test_threads_terminate",
            "test_executor_map_current_future_cancel",
            "test_pending_calls_race",
            "test_map_submits_without_iteration",
        ),
        ("interpreter",),
        "each task runs in another interpreter, so it crosses pickled: a local function "
        "holding a threading lock cannot cross, and one appending to the caller's list "
        "appends to its own copy (CPython 3.14's InterpreterPoolExecutor has the same limit)",
    ),
    # -- inline: every task runs inside submit() -----------------------------------------
    Deviation(
        (
            "test_map_timeout",
            "test_cancel_futures",
            "test_first_completed",
            "test_first_completed_some_already_completed",
            "test_first_exception",
            "test_first_exception_one_already_failed",
            "test_first_exception_some_already_complete",
            "test_timeout",
            "test_future_times_out",
        ),
        ("inline",),
        INLINE,
    ),
    Deviation(
        ("Wait.test_first_completed", "Wait.test_first_exception"),
        ("subprocess",),
        "a worker sends a quick task's result together with the next task's when both were "
        "handed to it at once (results are batched; the subprocess backend does that while its "
        "interpreters start), so the quick result can wait for a 1.5 s task (timing: not run)",
        run=False,
    ),
    Deviation(
        ("test_executor_map_current_future_cancel", "test_pending_calls_race"),
        ("inline",),
        INLINE + "; this test's first task would block submit() for ever",
        run=False,
    ),
)


# -- deviations-end


# -- the substitution --------------------------------------------------------------------


def executor_factory(backend: str) -> Callable[..., Any]:
    """A constructor shaped like the standard library's: ``make(max_workers, **options)``.

    ``mp_context`` (the process pool's) becomes ``start_method`` on the backends that
    have one; the others start their workers their own way, and drop it.
    """

    def make(max_workers: int | None = None, mp_context: Any = None, **options: Any) -> Any:
        if mp_context is not None and backend in ("pool", "process"):
            options["start_method"] = mp_context.get_start_method()
        return registry.get_executor(backend, max_workers=max_workers, **options)

    make.__name__ = make.__qualname__ = f"{backend.capitalize()}Executor"
    return make


_IMPORT = re.compile(r"from concurrent\.futures import (\w+)Executor\b")


def _assert_python_ok(*args: str, **env: Any) -> Any:
    """upstream's ``assert_python_ok``, with the script's executor import pointed at ours."""
    from test.support import script_helper

    def ours(match: re.Match[str]) -> str:
        backend = match.group(1).lower()
        if backend not in ALL:  # the standard library's own class: leave it
            return match.group(0)
        return (
            f"import executors; {match.group(1)}Executor = lambda max_workers=None, **kw: "
            f"executors.get_executor({backend!r}, max_workers=max_workers, **kw)"
        )

    return script_helper.assert_python_ok(*(_IMPORT.sub(ours, a) for a in args), **env)


class _Ours(util.ExecutorMixin):
    backend = ""

    # No ``ctx`` attribute: each backend starts its workers its own way. The tests that
    # ask for a context (for their own semaphores) get fork's, the platform default.
    def get_context(self) -> Any:
        return multiprocessing.get_context("fork")

    def setUp(self) -> None:
        reason = registry.unavailable_reason(self.backend)
        if reason is not None:
            self.skipTest(reason)
        super().setUp()


def _strip(name: str) -> str:
    for suffix in ("Mixin", "Tests", "Test"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _deviations_of(backend: str, suite: str) -> dict[str, Deviation]:
    found = {}
    for d in DEVIATIONS:
        if backend in d.backends:
            for test in d.tests:
                where, _, name = test.rpartition(".")
                if where in ("", suite):
                    found[name] = d
    return found


#: EXECUTORS_UPSTREAM_SHOW=1: run the deviations that can run as plain tests, so that each
#: fails with its own error (to check a reason, or find one for a new deviation).
_SHOW = os.environ.get("EXECUTORS_UPSTREAM_SHOW") == "1"


def _make_class(backend: str, suite: type) -> type:
    attrs: dict[str, Any] = {
        "backend": backend,
        "executor_type": staticmethod(executor_factory(backend)),
        "__module__": __name__,
    }
    bases: tuple[type, ...] = (_Ours, suite)
    if not issubclass(suite, unittest.TestCase):
        bases += (util.BaseTestCase,)
    for name, deviation in _deviations_of(backend, _strip(suite.__name__)).items():
        original = getattr(suite, name, None)
        if original is None:
            continue
        if deviation.run and _SHOW:
            continue  # run as upstream wrote it, to see how it fails
        if deviation.run:
            attrs[name] = unittest.expectedFailure(_copy(original))
        else:
            attrs[name] = unittest.skip(f"deviation: {deviation.reason}")(_copy(original))
    return type(f"Test_{backend}_{_strip(suite.__name__)}", bases, attrs)


def _copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def test(self: Any) -> None:
        fn(self)

    return test


shutdown.assert_python_ok = _assert_python_ok  # the module-level name its tests call

for _backends, _suites in SUITES.items():
    for _backend in _backends:
        for _suite in _suites:
            _cls = _make_class(_backend, _suite)
            globals()[_cls.__name__] = _cls
del _backends, _suites, _backend, _suite, _cls
