"""What is special about the ray backend: starting and stopping Ray, attaching, cancel, options.

The conformance matrix runs ``ray`` on a shared Ray (tests/engine_clusters.py);
here one executor per module starts its own local Ray, and its teardown checks
that stopping it leaves no process behind.
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
from executors.protocol import Executor
from executors.testing import (
    _children,  # leaves out multiprocessing's resource tracker
    add_under_lock,
    consume,
    drain_joinable,
    produce,
    set_event,
)
from tests.backends import engine_tasks as t
from tests.engine_clusters import stop_sharing

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")


@pytest.fixture(scope="module")
def local() -> Iterator[Executor]:
    """A RayExecutor that starts (and stops) its own local Ray of two CPUs."""
    if ray.is_initialized():
        ray.shutdown()  # the matrix's connection (tests/conftest.py) reconnects when needed
    mp = pytest.MonkeyPatch()
    mp.delenv("RAY_ADDRESS", raising=False)
    before = _children()
    ex = get_executor("ray", max_workers=2, object_store_memory=150 * 1024**2)
    mp.undo()
    yield ex
    ex.shutdown(wait=True)
    assert not ray.is_initialized()
    deadline = time.monotonic() + 30
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children() - before, "stopping Ray left processes behind"


def test_local_ray_has_max_workers_cpus(local: Any) -> None:
    assert local.max_workers == 2
    assert ray.cluster_resources()["CPU"] == 2
    pids = {f.result(timeout=60) for f in [local.submit(t.pid) for _ in range(10)]}
    assert pids and psutil.Process().pid not in pids


def test_cancel_stops_a_running_task(local: Executor, tmp_path: Path) -> None:
    path = tmp_path / "finished"
    future = local.submit(t.sleep_then_touch, str(path), 3.0)
    time.sleep(1.0)  # let it start on a worker
    assert future.cancel()
    assert future.cancelled()
    assert local.submit(t.pid).result(timeout=60) > 0  # the executor keeps working
    time.sleep(3.0)
    assert not path.exists()


def test_worker_logs_reach_the_callers_logging(
    local: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine_tasks"):
        assert local.submit(t.log_and_return, 7).result(timeout=60) == 7
    assert "working on 7" in [r.getMessage() for r in caplog.records if r.name == "engine_tasks"]


def test_lambdas_and_a_big_map(local: Executor) -> None:
    offset = 10
    assert local.submit(lambda x: x + offset, 1).result(timeout=60) == 11
    assert local._default_chunksize((range(1_000_000),)) == 50_000  # type: ignore[attr-defined]
    assert sum(local.map(abs, range(-200_000, 0))) == sum(range(1, 200_001))


def test_a_second_executor_shares_the_running_ray(local: Executor) -> None:
    with get_executor("ray", max_workers=1) as other:
        assert other.submit(t.pid).result(timeout=60) > 0
    assert ray.is_initialized()  # the first executor still uses it


def test_shared_objects_of_a_local_ray_are_served_on_a_local_socket(local: Any) -> None:
    try:
        q, event = local.Queue(), local.Event()
        producer = local.submit(produce, q, list(range(5)))
        assert local.submit(consume, q).result(timeout=60) == [0, 1, 2, 3, 4]
        assert producer.result(timeout=60) is None
        assert isinstance(q._proxy._token.address, str)  # a socket path: nothing listens on a port
        assert not event.is_set()
        local.submit(set_event, event).result(timeout=60)
        assert event.is_set()
    finally:
        stop_sharing(local)


def test_a_ray_of_several_nodes_serves_shared_objects_on_this_nodes_address(
    local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = ray.util.get_node_ip_address()
    engine = local._engine
    assert engine.reach_back_host() is None  # one node, this one
    nodes = ray.nodes()
    other = {**nodes[0], "NodeManagerAddress": "10.255.0.7"}
    monkeypatch.setattr(ray, "nodes", lambda: [*nodes, other])
    assert engine.reach_back_host() == me  # the workers elsewhere reach the driver's node
    monkeypatch.setattr(ray, "nodes", lambda: [*nodes, {**other, "Alive": False}])
    assert engine.reach_back_host() is None  # a dead node runs nothing


def test_shared_objects_served_on_a_port_reach_ray_workers(
    local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 127.0.0.1 stands for the node address a cluster of several machines would get.
    with get_executor("ray", max_workers=2) as ex:
        monkeypatch.setattr(ex._engine, "reach_back_host", lambda: "127.0.0.1")
        q, lock, d = ex.JoinableQueue(), ex.Lock(), ex.dict(n=0)
        for i in range(4):
            q.put(i)
        drained = ex.submit(drain_joinable, q, 4)
        q.join()
        assert drained.result(timeout=60) == 6
        futures = [ex.submit(add_under_lock, d, lock, "n", 10) for _ in range(2)]
        assert [f.result(timeout=60) for f in futures] == [None, None]
        assert d["n"] == 20
        assert q._proxy._token.address[0] == "127.0.0.1"


def test_options_are_checked(local: Executor) -> None:
    with pytest.raises(InvalidOption):
        get_executor("ray", retries="x")
    with pytest.raises(InvalidOption, match="did you mean 'retries'"):
        get_executor("ray", retires=2)
    with get_executor("ray", max_workers=1, retries=0, num_cpus=1, resources={}) as ex:
        assert ex.submit(t.pid).result(timeout=60) > 0


def test_attaching_through_ray_address_leaves_the_cluster_running(
    local: Executor, shared_ray: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.shutdown(wait=True)  # one Ray per process: give ours up first (the fixture checks it)
    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_ADDRESS", shared_ray)
    with get_executor("ray") as ex:
        assert ex.max_workers == 2  # the cluster's CPUs
        assert ex.submit(t.pid).result(timeout=60) > 0
    assert not ray.is_initialized()  # we connected, so we disconnect...
    ray.init(address=shared_ray, logging_level=logging.WARNING)  # ...and it still runs
    try:
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()


def test_a_ray_client_address_attaches_and_detaches(local: Executor, shared_ray: str) -> None:
    pytest.importorskip("grpc", reason="ray:// needs the Ray Client: pip install 'ray[client]'")
    from tests.engine_clusters import RAY_CLIENT

    local.shutdown(wait=True)  # one Ray per process: give ours up first (the fixture checks it)
    if ray.is_initialized():
        ray.shutdown()
    with get_executor(f"ray://{RAY_CLIENT[shared_ray]}") as ex:
        assert ex.max_workers == 2  # the cluster's CPUs
        pids = {f.result(timeout=60) for f in [ex.submit(t.pid) for _ in range(4)]}
        assert pids and psutil.Process().pid not in pids
        q = ex.Queue()
        producer = ex.submit(produce, q, ["a", "b"])
        assert ex.submit(consume, q).result(timeout=60) == ["a", "b"]
        assert producer.result(timeout=60) is None
        assert ex._engine.reach_back_host() is None  # type: ignore[attr-defined]
    assert not ray.is_initialized()  # we connected, so we disconnect


def test_without_the_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    reason = registry.unavailable_reason("ray")
    assert reason is not None
    assert "pip install 'pluggable-executors[ray]'" in reason
