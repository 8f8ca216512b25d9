"""Big arguments on the pool: no extra copy into the pipe, and bounded caller memory."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING

import pytest

from executors._pool import engine
from executors._proc import wire
from executors._proc.wire import FrameReader, batch_frame, frame, read_into
from executors.backends.pool import PoolExecutor
from executors.testing import reverse_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def pool() -> Iterator[PoolExecutor]:
    ex = PoolExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def test_batch_frame_is_the_frame_pickle_would_make() -> None:
    payloads = [b"small", bytes(range(256)) * 5000, b""]
    data = b"".join(batch_frame(payloads))
    assert data == frame(data[8:])
    assert pickle.loads(data[8:]) == payloads


def test_the_caller_holds_about_one_big_payload_at_a_time(
    pool: PoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "HELD_LIMIT", 1)  # every big submit waits for the last to start
    size = 2 * engine.BIG
    datas = [bytes([i]) * size for i in range(6)]
    futures = []
    for data in datas:
        futures.append(pool.submit(reverse_bytes, data))
        with pool._pool.lock:
            assert pool._pool.held() <= size + 1024  # its own pickled copy, no more
    assert [f.result(timeout=60) for f in futures] == [d[::-1] for d in datas]
    with pool._pool.lock:
        assert pool._pool.held() == 0
        assert pool._pool.big == []


def test_big_and_small_tasks_mix_in_one_batch(pool: PoolExecutor) -> None:
    big = b"ab" * engine.BIG
    futures = [pool.submit(reverse_bytes, big if i % 3 == 0 else b"xy") for i in range(30)]
    expected = [(big if i % 3 == 0 else b"xy")[::-1] for i in range(30)]
    assert [f.result(timeout=60) for f in futures] == expected


@pytest.mark.parametrize("direct", [False, True])
def test_frame_reader_fills_a_big_frame_in_place(direct: bool) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    stream = frame(b"first") + frame(big) + frame(b"last")
    reader = FrameReader()
    got: list[bytes] = []
    view = memoryview(stream)
    while view:
        space = reader.space()
        if direct and space is not None:
            n = min(len(space), len(view), 100_000)
            space[:n] = view[:n]
            got += reader.filled(n)
        else:
            got += reader.feed(bytes(view[:300_000]))
            n = min(len(view), 300_000)
        view = view[n:]
    assert got == [b"first", big, b"last"]


@pytest.mark.parametrize("readv", [False, True])
def test_read_into_fills_the_buffer_with_or_without_readv(
    readv: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if readv and not hasattr(os, "readv"):
        pytest.skip("this Python's os has no readv (PyPy)")
    monkeypatch.setattr(wire, "_HAS_READV", readv)  # False: PyPy's path, forced here
    buffer = bytearray(10)
    r, w = os.pipe()
    try:
        os.write(w, b"abcdef")
        assert read_into(r, memoryview(buffer)[2:]) == 6
    finally:
        os.close(r)
        os.close(w)
    assert buffer == b"\0\0abcdef\0\0"
