"""What is special about the dask backend: its own LocalCluster, attaching, cancel, options.

The conformance matrix runs ``dask`` against a shared cluster (tests/engine_clusters.py);
here one executor per module starts its own LocalCluster, and its teardown checks
that closing it leaves no process behind.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from executors import InvalidOption, get_executor, registry
from executors._cluster.executor import local_address_toward
from executors.protocol import Executor
from executors.testing import (
    _children,  # leaves out multiprocessing's resource tracker
    add_under_lock,
    consume,
    produce,
)
from tests.backends import engine_tasks as t
from tests.engine_clusters import stop_sharing, warm_dask, warm_dask_threads

pytest.importorskip("distributed", reason="the 'dask' extra is not installed")


@pytest.fixture(scope="module")
def local() -> Iterator[Executor]:
    """A DaskExecutor on its own LocalCluster of two worker processes."""
    import dask

    before = _children()
    with dask.config.set({"scheduler-address": None}):
        ex = get_executor("dask", max_workers=2)
    assert len(_children() - before) >= 2  # two worker processes (and their nannies)
    warm_dask(ex.client)  # type: ignore[attr-defined]
    yield ex
    ex.shutdown(wait=True)
    deadline = time.monotonic() + 20
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _children() - before, "closing the LocalCluster left processes behind"


def test_local_cluster_has_max_workers_single_thread_workers(local: Any) -> None:
    assert local.max_workers == 2
    assert sorted(local.client.nthreads().values()) == [1, 1]
    assert local.address.startswith("tcp://127.0.0.1:")
    pids = {f.result(timeout=30) for f in [local.submit(t.pid) for _ in range(20)]}
    assert pids and not pids & {psutil.Process().pid}


def test_impure_tasks_run_each_time(local: Executor) -> None:
    draws = [local.submit(t.draw).result(timeout=30) for _ in range(2)]
    assert draws[0] != draws[1]


def test_lambdas_and_closures_travel_by_value(local: Executor) -> None:
    offset = 10
    assert local.submit(lambda x: x + offset, 1).result(timeout=30) == 11


def test_a_running_task_cannot_be_cancelled_and_says_so(local: Executor, tmp_path: Path) -> None:
    path = str(tmp_path / "done")
    future = local.submit(t.sleep_then_touch, path, 0.5)
    assert future.running()  # it left the local queue: dask may be running it
    assert not future.cancel()
    assert future.result(timeout=30) == path


def test_worker_logs_reach_the_callers_logging(
    local: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine_tasks"):
        assert local.submit(t.log_and_return, 7).result(timeout=30) == 7
    assert "working on 7" in [r.getMessage() for r in caplog.records if r.name == "engine_tasks"]


def test_a_big_map_is_cut_into_chunks(local: Any) -> None:
    assert local._default_chunksize((range(1_000_000),)) == 50_000  # 20 dask tasks, not 1M
    assert sum(local.map(abs, range(-200_000, 0))) == sum(range(1, 200_001))


def test_attaching_leaves_the_scheduler_running(shared_dask: str) -> None:
    from distributed import Client

    with get_executor(f"dask://{shared_dask.removeprefix('tcp://')}", max_workers=1) as ex:
        assert ex.submit(t.pid).result(timeout=30) > 0
    with Client(shared_dask, set_as_default=False, timeout=30) as client:
        assert len(client.nthreads()) == 2


def test_options_are_checked_and_passed_to_dask(shared_dask: str) -> None:
    for bad in ({"n_workers": 0}, {"threads_per_worker": "2"}, {"retries": "x"}):
        with pytest.raises(InvalidOption):
            get_executor("dask", **bad)
    with pytest.raises(InvalidOption, match="did you mean 'retries'"):
        get_executor("dask", retires=2)
    with get_executor("dask", address=shared_dask, retries=2, resources=None) as ex:
        assert ex._dispatcher.engine._options == {"retries": 2}  # type: ignore[attr-defined]
        assert ex.max_workers == 2  # every thread of the cluster it joined


def test_shared_objects_of_a_local_cluster_are_served_on_a_local_socket(local: Any) -> None:
    try:
        q = local.Queue()
        producer = local.submit(produce, q, list(range(5)))
        assert local.submit(consume, q).result(timeout=60) == [0, 1, 2, 3, 4]
        assert producer.result(timeout=60) is None
        assert isinstance(q._proxy._token.address, str)  # a socket path: nothing listens on a port
    finally:
        stop_sharing(local)


def test_a_joined_cluster_reaches_shared_objects_on_the_interface_facing_it(
    shared_dask: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shared cluster listens on loopback, so its workers are known to run here;
    # make the executor believe they do not, with 127.0.0.1 standing for the address
    # of this machine on the route to the scheduler.
    from executors._dask import engine

    seen: list[str] = []
    monkeypatch.setattr(
        engine, "local_address_toward", lambda host: seen.append(host) or "127.0.0.1"
    )
    with get_executor("dask", address=shared_dask, max_workers=2) as ex:
        q, lock, d = ex.Queue(), ex.Lock(), ex.dict(n=0)
        producer = ex.submit(produce, q, ["a", "b"])
        assert ex.submit(consume, q).result(timeout=60) == ["a", "b"]
        assert producer.result(timeout=60) is None
        ex.submit(add_under_lock, d, lock, "n", 10).result(timeout=60)
        assert d["n"] == 10
        host, port = q._proxy._token.address
        assert (host, seen) == ("127.0.0.1", ["127.0.0.1"]) and port > 0
        import multiprocessing

        assert bytes(q._proxy._authkey) != bytes(multiprocessing.current_process().authkey)


@pytest.fixture(scope="module")
def dask_threads() -> None:
    """The threads dask keeps for the rest of the process, started before the leak check
    of a test that makes its own cluster (module scope: set up before that check)."""
    warm_dask_threads()


def test_a_tls_cluster_is_joined_with_the_users_security(dask_threads: None) -> None:
    pytest.importorskip("cryptography", reason="Security.temporary() needs cryptography")
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        protocol="tls://",
        security=security,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with pytest.raises(InvalidOption, match="needs TLS credentials: pass security="):
            get_executor("dask", address=address)
        with pytest.raises(InvalidOption, match="pass the cluster's own"):
            get_executor("dask", address=address, security=True)
        with get_executor("dask", address=address, security=security) as ex:
            assert ex.address == address  # type: ignore[attr-defined]
            q = ex.Queue()
            producer = ex.submit(produce, q, [1, 2])
            assert ex.submit(consume, q).result(timeout=60) == [1, 2]
            assert producer.result(timeout=60) is None
        assert cluster.scheduler is not None and len(cluster.workers) == 1  # left running


def test_security_true_starts_a_local_cluster_with_temporary_credentials(
    dask_threads: None,
) -> None:
    pytest.importorskip("cryptography", reason="Security.temporary() needs cryptography")
    import dask

    with dask.config.set({"scheduler-address": None}):
        ex = get_executor("dask", max_workers=1, security=True)
    with ex:
        assert ex.address.startswith("tls://127.0.0.1:")  # type: ignore[attr-defined]
        assert ex.submit(t.pid).result(timeout=60) > 0


def test_the_address_facing_a_host() -> None:
    assert local_address_toward("127.0.0.1") is None  # this machine: a local socket will do
    assert local_address_toward("localhost") is None
    assert local_address_toward("no-such-host.invalid") == ""  # unknown route: every interface


def test_without_the_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    reason = registry.unavailable_reason("dask")
    assert reason is not None
    assert "pip install 'pluggable-executors[dask]'" in reason
