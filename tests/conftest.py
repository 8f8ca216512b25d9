from __future__ import annotations

import os
import signal
import sys
import zlib
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


# -- the exhaustive cells: all of them in one CPython env, a share in each other ------

SHARE_ENV = "EXECUTORS_TEST_SHARE"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "exhaustive: a cell that repeats, on one more backend variant or many more times, "
        f"what other tests check once; ${SHARE_ENV} (i/k) runs a share of them",
    )


def _share() -> tuple[int, int] | None:
    """$EXECUTORS_TEST_SHARE as (i, k), or None (unset or 'all': every cell runs)."""
    value = os.environ.get(SHARE_ENV, "all").strip()
    if value in ("", "all"):
        return None
    i, sep, k = value.partition("/")
    if not (sep and i.isdigit() and k.isdigit() and 0 <= int(i) < int(k)):
        raise pytest.UsageError(f"${SHARE_ENV} must be 'all' or i/k with 0 <= i < k, not {value!r}")
    return int(i), int(k)


def _is_exhaustive(item: pytest.Item) -> bool:
    """Marked, or a start-method variant (``?start_method=``) of a backend.

    ``@pytest.mark.exhaustive(unless=f)`` leaves out the cells whose params *f* accepts.
    """
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    marker = item.get_closest_marker("exhaustive")
    if marker is not None:
        unless = marker.kwargs.get("unless")
        return unless is None or not unless(params)
    return any(isinstance(p, str) and "start_method=" in p for p in params.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``$EXECUTORS_TEST_SHARE=i/k``, keep the exhaustive cells of share *i* only.

    tox runs every cell in py311 and gives each other env a share (tox.ini): every
    cell runs on two interpreters, and the envs stay within CI's time. A cell's share
    is a hash of its id, the same in every xdist worker and every run. The cells left
    out are reported as deselected.
    """
    share = _share()
    if share is None:
        return
    i, k = share
    keep, drop = [], []
    for item in items:
        mine = not _is_exhaustive(item) or zlib.crc32(item.nodeid.encode()) % k == i
        (keep if mine else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    share = _share()
    if share is None:
        return f"exhaustive cells: all (${SHARE_ENV} unset)"
    return f"exhaustive cells: share {share[0]} of {share[1]} (${SHARE_ENV})"
