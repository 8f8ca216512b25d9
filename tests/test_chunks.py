"""The self-tuning chunk layer behind ``map`` (executors._chunks), without a backend."""

from __future__ import annotations

import pickle

import pytest

from executors import _chunks
from executors.serialization import RemoteTraceback


@pytest.mark.parametrize("n", [0, 1, 7, 100, 12_345, 1_000_000])
@pytest.mark.parametrize("workers", [1, 2, 6, 32])
def test_plan_covers_every_item_once(n: int, workers: int) -> None:
    sizes = list(_chunks.plan(n, workers))
    assert sum(sizes) == n
    assert all(size >= 1 for size in sizes)
    assert max(sizes, default=1) <= _chunks.MAX_CHUNK


def test_plan_starts_with_one_item_per_worker_and_grows() -> None:
    sizes = list(_chunks.plan(1_000_000, 4))
    assert sizes[:4] == [1, 1, 1, 1]
    assert sizes[4:8] == [4, 4, 4, 4]
    assert max(sizes) == 1_000_000 // (4 * _chunks.CHUNKS_PER_WORKER)
    assert len(sizes) < 100


def test_plan_leaves_every_worker_several_chunks_of_a_small_map() -> None:
    # Slow items still spread: 40 items on 4 workers never go out in one big chunk.
    sizes = list(_chunks.plan(40, 4))
    assert max(sizes) <= 3
    assert len(sizes) >= 4 * _chunks.CHUNKS_PER_WORKER


def test_run_chunk_keeps_results_before_a_failure() -> None:
    def half(x: int) -> float:
        if x == 37:
            raise ZeroDivisionError("37")
        return x / 2

    out = _chunks.run_chunk(half, (list(range(100)),), _chunks.Stop())
    assert isinstance(out, _chunks._Failed)
    assert out.results == [x / 2 for x in range(37)]
    assert isinstance(out.exc, ZeroDivisionError)


def test_a_failure_crossing_processes_keeps_type_and_worker_traceback() -> None:
    out = _chunks.run_chunk(int, (["1", "x"],), _chunks.Stop())
    back = pickle.loads(pickle.dumps(out))
    assert back.results == [1]
    assert isinstance(back.exc, ValueError)
    assert isinstance(back.exc.__cause__, RemoteTraceback)


def test_a_stopped_chunk_runs_no_more_pieces() -> None:
    stop = _chunks.Stop()
    ran: list[int] = []

    def record(x: int) -> int:
        ran.append(x)
        stop.stopped = True
        return x

    assert _chunks.run_chunk(record, (range(1000),), stop) == [0]
    assert ran == [0]
    assert pickle.loads(pickle.dumps(stop)).stopped is False  # inert in another process


def test_flatten_yields_items_then_the_failure_and_close_stops() -> None:
    chunks = iter([[1, 2], _chunks._Failed([3], KeyError("k")), [4]])
    stop = _chunks.Stop()
    results = _chunks.flatten(chunks, stop)
    got: list[int] = []
    with pytest.raises(KeyError):
        got.extend(results)
    assert got == [1, 2, 3]
    assert stop.stopped

    stop = _chunks.Stop()
    results = _chunks.flatten(iter([[1], [2]]), stop)
    assert next(results) == 1
    results.close()  # type: ignore[attr-defined]
    assert stop.stopped


def test_columns_read_unsized_inputs_like_zip() -> None:
    cols, n = _chunks.columns((iter("abc"), iter(range(10))))
    assert n == 3
    assert [list(c) for c in cols] == [["a", "b", "c"], [0, 1, 2]]
    cols, n = _chunks.columns((range(5), [1, 2]))
    assert n == 2
