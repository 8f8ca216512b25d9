from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from executors import registry
from executors.testing import check_no_leaks

# A shell starts background jobs with SIGINT ignored, and children inherit that: the
# Ctrl-C tests would then test nothing (the signal never arrives). A handler set here
# is reset to the default in every child the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def backend_params(variants: Sequence[str] | None = None) -> list[object]:
    """One param per registry name, skipped (with the reason) where unusable here.

    Then one per start-method variant (*variants*, default :data:`VARIANTS`).
    """
    params = []
    for name in registry.names():
        reason = registry.unavailable_reason(name)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        params.append(pytest.param(name, id=name, marks=marks))
    for spec in VARIANTS if variants is None else variants:
        name = spec.partition("?")[0]
        reason = registry.unavailable_reason(name)
        marks = [pytest.mark.skipif(reason is not None, reason=str(reason))]
        params.append(pytest.param(spec, id=spec.replace("?start_method=", "-"), marks=marks))
    return params


#: The pool again with its other start methods. Under those the process backend
#: imports the parent's main module in each task's process (pytest: ~0.2 s a task),
#: too slow for the whole matrix; tests/backends/test_process.py covers them.
VARIANTS = ["pool?start_method=forkserver", "pool?start_method=spawn"]


def backend_name_fixture(variants: Sequence[str] | None = None) -> Any:
    """The ``backend_name`` fixture: every backend, then the start-method *variants*.

    A module whose tests exercise a layer above the engine (the awaitable face, the
    doc pages, commands), where the pool's start method changes nothing the test
    asserts, overrides it with ``backend_name = backend_name_fixture(variants=[])``:
    the variants cost a fifth of the suite's time, and the conformance matrix,
    tests/test_exit.py and tests/test_by_value.py keep running them.
    """

    @pytest.fixture(name="backend_name", params=backend_params(variants))
    def fixture(request: pytest.FixtureRequest) -> str:
        name: str = request.param
        return name

    return fixture


backend_name = backend_name_fixture()


@pytest.fixture(autouse=True)
def _engine_cluster(request: pytest.FixtureRequest) -> None:
    """Before the leak check starts: the shared cluster a dask or ray test joins."""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("backend_name") if callspec else None
    if name == "dask":
        request.getfixturevalue("shared_dask")
    elif name == "ray":
        connect_ray(request.getfixturevalue("shared_ray"))


_ray_failure: list[BaseException] = []


def connect_ray(address: str) -> None:
    """Join the shared Ray as the program's own Ray: executors use it and leave it running.

    Connecting costs seconds, so it is done once, not per executor; if it failed
    (a very loaded machine: Ray gives its raylet 30 s), the other tests fail at once.
    """
    import logging

    import ray

    if _ray_failure:
        pytest.fail(f"the shared Ray could not be joined: {_ray_failure[0]!r}")
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except BaseException as exc:
            _ray_failure.append(exc)
            raise


@pytest.fixture(autouse=True)
def _no_leaks(_engine_cluster: None) -> Iterator[None]:
    with check_no_leaks():
        yield


@pytest.fixture(scope="session", autouse=True)
def _engine_clusters_stopped() -> Iterator[None]:
    """The session's finalizer: no process of a shared cluster outlives the session.

    Set up before the clusters, so torn down after them: it stops whatever they did
    not (a start-up that failed half-way), then checks that nothing is left.
    """
    yield
    clusters = sys.modules.get("tests.engine_clusters")
    if clusters is None:
        return  # no test asked for a cluster
    clusters.stop_all()
    left = clusters.leftovers()
    assert not left, f"cluster processes outlived the session: {left}"


@pytest.fixture(scope="session")
def shared_dask() -> Iterator[str]:
    """A dask cluster the matrix's ``dask`` executors join (see tests/engine_clusters.py)."""
    import dask

    from tests.engine_clusters import start_dask

    address, procs = start_dask()
    old = dask.config.get("scheduler-address", None)
    dask.config.set({"scheduler-address": address})
    yield address
    dask.config.set({"scheduler-address": old})
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="session")
def shared_ray() -> Iterator[str]:
    """A Ray the matrix's ``ray`` executors join (see tests/engine_clusters.py)."""
    from tests.engine_clusters import start_ray

    address, procs = start_ray()
    yield address
    import ray

    ray.shutdown()
    for proc in procs:
        proc.stop()
