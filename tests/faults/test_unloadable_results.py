"""A result that pickles in the worker but cannot be loaded in the caller fails only its task.

Before, such a result killed the pool's (and fork's, process's) manager thread:
its future never completed, every later submit failed, and the workers were left
running. Now the future fails with SerializationError naming the task and the
cause, its neighbours complete, and the executor keeps serving.
"""

from __future__ import annotations

import pytest

from executors import RemoteError, SerializationError, get_executor

from . import fault_tasks as t

BACKENDS = ["pool", "fork", "process", "subprocess", "remote", "pool?start_method=spawn"]

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("spec", BACKENDS)
@pytest.mark.parametrize("exc_type", [ValueError, SystemExit, KeyboardInterrupt])
def test_a_result_that_will_not_load_fails_only_its_future(
    spec: str, exc_type: type[BaseException]
) -> None:
    with get_executor(spec, max_workers=2) as ex:
        good, bad = [], []
        for i in range(12):
            good.append(ex.submit(t.double, i))
            if i % 4 == 1:
                bad.append(ex.submit(t.unloadable, exc_type))
        assert [f.result(timeout=60) for f in good] == [i * 2 for i in range(12)]
        for future in bad:
            with pytest.raises(SerializationError) as info:
                future.result(timeout=60)
            message = str(info.value)
            assert "unloadable()" in message, message
            assert "this result refuses to load" in message, message
            assert exc_type.__name__ in message, message
            assert isinstance(info.value.__cause__, exc_type)
        # the executor keeps serving
        assert ex.submit(t.double, 21).result(timeout=60) == 42
        assert list(ex.map(t.double, range(5))) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("spec", BACKENDS)
def test_an_exception_that_will_not_load_fails_only_its_future(spec: str) -> None:
    with get_executor(spec, max_workers=2) as ex:
        bad = ex.submit(t.unloadable_error, SystemExit)
        good = ex.submit(t.double, 4)
        # rebuilt from its type, args and attributes without its __reduce__ (see
        # serialization.exception_recipe), or, where even that fails, a RemoteError
        with pytest.raises((t._UnloadableError, RemoteError), match="an error that refuses"):
            bad.result(timeout=60)
        assert good.result(timeout=60) == 8
        assert ex.submit(t.double, 5).result(timeout=60) == 10


@pytest.mark.parametrize("spec", BACKENDS)
def test_a_done_callback_raising_system_exit_does_not_stop_the_executor(
    spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    def leave(future: object) -> None:
        raise SystemExit("a callback leaves")

    with get_executor(spec, max_workers=2) as ex:
        first = ex.submit(t.slow_double, 1)
        first.add_done_callback(leave)  # runs in the manager thread when the result lands
        futures = [ex.submit(t.double, i) for i in range(10)]
        assert first.result(timeout=60) == 2
        assert [f.result(timeout=60) for f in futures] == [i * 2 for i in range(10)]
        assert ex.submit(t.double, 7).result(timeout=60) == 14
