"""The interpreter backend: subinterpreters in this process (the conformance matrix covers the rest)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from executors import BackendUnavailable, BrokenExecutor, SerializationError, get_executor, registry
from executors._subinterp import engines

from . import interp_tasks as t
from .scripts import run_script

REASON = registry.unavailable_reason("interpreter")
needs_interpreters = pytest.mark.skipif(REASON is not None, reason=str(REASON))


@needs_interpreters
def test_tasks_run_in_this_process_in_other_interpreters() -> None:
    with get_executor("interpreter", max_workers=2) as ex:
        pid, thread, sys_id = ex.submit(t.where).result(timeout=30)
        assert pid == os.getpid()
        assert thread != threading.get_ident()
        assert sys_id != id(sys)  # its own sys module: another interpreter
        assert "engine=" in repr(ex)


@needs_interpreters
def test_module_state_stays_in_the_worker_interpreter() -> None:
    with get_executor("interpreter", max_workers=1) as ex:
        assert ex.submit(t.set_value, "set there").result(timeout=30) == "set there"
        assert ex.submit(t.get_value).result(timeout=30) == "set there"  # same worker
    assert t.VALUE is None  # this interpreter's copy is untouched


@needs_interpreters
@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="3.12's worker interpreters share the GIL (docs/backends/interpreter.rst), and "
    "such extensions load there",
)
def test_an_extension_that_refuses_subinterpreters_is_named_with_the_fix() -> None:
    pytest.importorskip("psutil")
    with get_executor("interpreter", max_workers=1) as ex:
        with pytest.raises(
            ImportError,
            match=r"'(psutil\.)?_psutil_\w+' cannot be loaded in a subinter"
            r".*run it on 'pool' instead",
        ) as info:
            ex.submit(t.import_psutil).result(timeout=30)
        assert (info.value.name or "").rpartition(".")[2].startswith("_psutil_")
        assert ex.submit(pow, 2, 3).result(timeout=30) == 8  # the worker is still usable


@needs_interpreters
def test_a_function_of_main_says_how_to_send_it() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec("def typed_in():\n    return 1\n", namespace)
    typed_in = namespace["typed_in"]
    sys.modules["__main__"].typed_in = typed_in  # type: ignore[attr-defined]
    try:
        # By reference (serializer="pickle"): the worker's own __main__ lacks it. The
        # default ("auto") sends it by value (tests/test_by_value.py).
        with get_executor("interpreter", max_workers=1, serializer="pickle") as ex:
            with pytest.raises(SerializationError, match="its own empty __main__.*cloudpickle"):
                ex.submit(typed_in).result(timeout=30)  # type: ignore[arg-type]
    finally:
        del sys.modules["__main__"].typed_in  # type: ignore[attr-defined]


@needs_interpreters
def test_cloudpickle_sends_lambdas() -> None:

    pytest.importorskip("cloudpickle")
    with get_executor("interpreter", max_workers=1, serializer="cloudpickle") as ex:
        assert ex.submit(lambda x: x * 3, 14).result(timeout=30) == 42


@needs_interpreters
def test_an_unpicklable_argument_is_named_at_submit() -> None:
    with get_executor("interpreter", max_workers=1) as ex:
        with pytest.raises(SerializationError, match="argument 2"):
            ex.submit(t.set_value, 1, threading.Lock())  # type: ignore[call-arg]


@needs_interpreters
def test_map_chunks_long_inputs() -> None:
    with get_executor("interpreter", max_workers=2) as ex:
        assert list(ex.map(t.spin, [10] * 1000)) == [t.spin(10)] * 1000


@pytest.mark.parametrize(
    ("version", "implementation", "words"),
    [
        ((3, 11), "cpython", "needs Python 3.12 or later .* this is 3.11; use 'pool' instead"),
        ((3, 9), "pypy", "(?i)needs CPython.s subinterpreters .* which pypy lacks"),
    ],
)
def test_unavailable_says_which_python_is_needed(
    version: tuple[int, int], implementation: str, words: str
) -> None:
    reason = engines.unavailable_reason(version, implementation)
    assert reason is not None
    assert __import__("re").search(words, reason)


def test_on_313_without_the_backport_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "_find", lambda module: module != "interpreters_backport")
    reason = engines.unavailable_reason((3, 13), "cpython")
    assert reason == (
        "needs the 'interpreters-pep-734' package on Python 3.13; install it with: "
        "pip install 'pluggable-executors[interpreters]'"
    )
    monkeypatch.setattr(engines, "_find", lambda module: True)
    assert engines.unavailable_reason((3, 13), "cpython") is None
    assert engines.unavailable_reason((3, 12), "cpython") is None


@pytest.mark.skipif(REASON is None, reason="the interpreter backend is available here")
def test_where_unavailable_get_executor_says_why() -> None:
    with pytest.raises(BackendUnavailable, match="backend 'interpreter' needs"):
        get_executor("interpreter")


@needs_interpreters
def test_a_failing_initializer_is_worded_as_on_every_backend() -> None:
    from executors.testing import failing_initializer

    with get_executor("interpreter", max_workers=1, initializer=failing_initializer) as ex:
        with pytest.raises(
            BrokenExecutor,
            match=r"initializer .*failing_initializer\(\) raised RuntimeError: cannot connect "
            r"to the database in worker executors-interpreter_0; no task can run",
        ) as info:
            ex.submit(pow, 2, 2).result(timeout=30)
        assert isinstance(info.value.__cause__, RuntimeError)


_FORK_WHILE_INTERPRETERS = """
import os

from executors import BrokenExecutor, get_executor

if __name__ == "__main__":
    early = get_executor("pool", max_workers=1)  # its worker forked before any subinterpreter
    assert early.submit(abs, -6).result(timeout=60) == 6
    interp = get_executor("interpreter", max_workers=1)
    assert interp.submit(abs, -1).result(timeout=60) == 1  # one subinterpreter lives now
    try:
        early.submit(os._exit, 3).result(timeout=60)
    except Exception as exc:  # its worker died and cannot be replaced by a fork now
        print("early pool:", exc)
    early.shutdown()
    for name in ("fork", "process"):
        with get_executor(name, max_workers=1) as ex:
            try:
                ex.submit(abs, -2).result(timeout=60)
            except RuntimeError as exc:
                print(name, "refused:", exc)
    try:
        get_executor("pool", max_workers=1)
    except RuntimeError as exc:
        print("pool refused:", exc)
    for name in ("pool", "process"):  # without fork: no crash to avoid
        with get_executor(name, max_workers=1, start_method="forkserver") as ex:
            print(name, "forkserver:", ex.submit(abs, -3).result(timeout=60))
    with get_executor("subprocess", max_workers=1) as ex:
        print("subprocess:", ex.submit(abs, -4).result(timeout=60))
    interp.shutdown()  # no subinterpreter left: fork is safe again
    with get_executor("fork", max_workers=1) as ex:
        print("fork after:", ex.submit(abs, -5).result(timeout=60))
"""


@needs_interpreters
def test_a_fork_while_subinterpreters_live_is_refused_with_the_way_out(tmp_path: Path) -> None:
    # CPython's forked child crashes (3.13) or hangs (3.12) clearing the subinterpreters
    # it inherits (python/cpython#101437): refused in the parent instead, with the way out.
    run = run_script(tmp_path, "mixed.py", _FORK_WHILE_INTERPRETERS, timeout=240)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for name in ("fork", "process", "pool"):
        assert f"{name} refused: cannot fork while 1 subinterpreter(s) exist" in out
    assert "python/cpython#101437" in out
    assert "start_method='forkserver'" in out
    assert "pool forkserver: 3" in out
    assert "process forkserver: 3" in out
    assert "subprocess: 4" in out
    assert "fork after: 5" in out
    assert "early pool: worker" in out
    assert "; the pool could not replace it and is broken: cannot replace a worker" in out
    assert "Fatal Python error" not in run.stderr


@needs_interpreters
def test_a_program_using_cloudpickle_beside_its_workers_exits_cleanly(tmp_path: Path) -> None:
    # On 3.12.1, worker interpreters with a GIL of their own corrupted the heap while the
    # caller pickled with cloudpickle: "free(): invalid pointer" and SIGABRT at exit.
    script = tmp_path / "lambdas.py"
    script.write_text(
        "from executors import get_executor\n"
        "if __name__ == '__main__':\n"
        "    with get_executor('interpreter', max_workers=2, serializer='cloudpickle') as ex:\n"
        "        print(sum(ex.map(lambda x: x * 3, range(50))), ex.submit(abs, -14).result())\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert (run.returncode, run.stdout) == (0, "3675 14\n"), run.stderr
    assert "invalid pointer" not in run.stderr
