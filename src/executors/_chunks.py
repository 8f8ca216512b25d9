"""Self-tuning chunks for ``map``: many items per task, invisible to the caller.

``BaseExecutor.map`` sends a map through here when the caller gives no
``chunksize`` (and no ``buffersize``), so every backend gets the same chunking::

    inputs ──> columns ──> plan: 1 item per worker, then 2, 4, 8 ... ──> submit(run_chunk, ...)
                           (capped so every worker still gets about 4 chunks)
    results <── flatten (C-speed chain) <── chunk results: a list, or _Failed(list, exc)

- A chunk runs its items in pieces that grow (1, 4, 16 ...) and checks a
  :class:`Stop` flag between pieces, so closing the map (or a failure, or a
  timeout) stops in-process work that has not started; what was never
  submitted is cancelled by the caller's iterator as with one task per item.
- A failing item ends its chunk: the items before it are still yielded, then
  its own exception is raised at its position. Across processes the exception
  travels as :func:`~executors.serialization.pack_exception` does it, so it
  keeps its type and gains the worker's traceback as ``__cause__``.
- Small maps start with one item per worker, so slow items spread over every
  worker; big maps grow to chunks of thousands, near the speed of a plain loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["Stop", "columns", "flatten", "plan", "run_chunk", "submit_chunks"]

R = TypeVar("R")

#: No chunk holds more items than this (bounds the memory of one task).
MAX_CHUNK = 65_536
#: Chunks per worker the cap leaves, so the last ones still balance.
CHUNKS_PER_WORKER = 4


class Stop:
    """A flag the caller sets to stop chunks between pieces (inert in another process)."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (Stop, ())


class _Failed:
    """A chunk that stopped at a failing item: the results before it, and its exception."""

    __slots__ = ("exc", "results")

    def __init__(self, results: list[Any], exc: BaseException) -> None:
        self.results = results
        self.exc = exc

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only to cross to the caller's process: carry the worker's traceback.
        from .serialization import pack_exception

        return (_unpack_failed, (self.results, pack_exception(self.exc)))


def _unpack_failed(results: list[Any], packed: Any) -> _Failed:
    from .serialization import unpack_exception

    return _Failed(results, unpack_exception(packed))


def run_chunk(fn: Callable[..., Any], cols: tuple[Sequence[Any], ...], stop: Stop) -> Any:
    """``fn`` over the zipped *cols*: a list of results, or :class:`_Failed` at the first error."""
    out: list[Any] = []
    if len(cols[0]) <= 1:
        try:
            out.extend(map(fn, *cols))
        except Exception as exc:
            return _Failed(out, exc)
        return out
    its = [iter(c) for c in cols]
    step, before = 1, -1
    while len(out) > before and not stop.stopped:
        before = len(out)
        try:
            # extend keeps the results that came before an exception
            out.extend(map(fn, *[itertools.islice(it, step) for it in its]))
        except Exception as exc:
            return _Failed(out, exc)
        step *= 4
    return out


def columns(iterables: tuple[Iterable[Any], ...]) -> tuple[list[Sequence[Any]], int]:
    """The inputs as sliceable columns and their common length, read now (as ``zip`` would)."""
    if all(isinstance(it, (list, tuple, range)) for it in iterables):
        seqs: list[Sequence[Any]] = list(iterables)  # type: ignore[arg-type]
        return seqs, min(len(s) for s in seqs)
    if len(iterables) == 1:
        col = list(iterables[0])
        return [col], len(col)
    rows = list(zip(*iterables))
    if not rows:
        return [[] for _ in iterables], 0
    return [list(c) for c in zip(*rows)], len(rows)


def plan(n: int, workers: int, most: int = MAX_CHUNK) -> Iterator[int]:
    """Chunk sizes for *n* items on *workers*: one round of 1, then growing x4 per round."""
    cap = max(1, min(most, -(-n // (CHUNKS_PER_WORKER * workers))))
    size, left = 1, n
    while left > 0:
        for _ in range(workers):
            take = min(size, cap, left)
            yield take
            left -= take
            if left <= 0:
                return
        size *= 4


def submit_chunks(
    submit: Callable[..., Future[Any]],
    fn: Callable[..., Any],
    cols: list[Sequence[Any]],
    sizes: Iterable[int],
    stop: Stop,
) -> Iterator[Future[Any]]:
    """Submit ``run_chunk`` for consecutive slices of *cols*, one per size."""
    start = 0
    for size in sizes:
        end = start + size
        yield submit(run_chunk, fn, tuple(c[start:end] for c in cols), stop)
        start = end


class _Results(itertools.chain):  # type: ignore[type-arg]
    """Flattened chunk results at C speed; ``close()`` stops the map (and cancels its rest)."""

    _source: Iterator[Any]

    def close(self) -> None:
        self._source.close()  # type: ignore[attr-defined]


def _consume(results: list[Any]) -> Iterator[Any]:
    """The items of *results* in order, each let go of once taken (at C speed)."""
    results.reverse()
    return map(results.pop, itertools.repeat(-1, len(results)))


def _finish(chunks: Iterator[Any], stop: Stop) -> None:
    stop.stopped = True  # done, failed, timed out or closed: no more pieces
    close = getattr(chunks, "close", None)
    if close is not None:
        close()  # cancels what is pending, as a raising future does


def _raise_after(failed: _Failed, chunks: Iterator[Any], stop: Stop) -> Iterator[Any]:
    yield from _consume(failed.results)
    _finish(chunks, stop)
    raise failed.exc


def _expand(chunks: Iterator[Any], stop: Stop) -> Generator[Iterable[Any], None, None]:
    # No reference to itself (no cycle): dropped by the consumer, it is closed at once.
    try:
        for chunk in chunks:
            # A yielded result is not kept alive by its chunk (as with one per item).
            yield _consume(chunk) if type(chunk) is list else _raise_after(chunk, chunks, stop)
    finally:
        _finish(chunks, stop)


def flatten(chunks: Iterator[Any], stop: Stop) -> Iterator[Any]:
    """The items of the chunk results *chunks* yields, in order; raises a chunk's failure."""
    source = _expand(chunks, stop)
    results: Any = _Results.from_iterable(source)
    results._source = source
    return results  # type: ignore[no-any-return]
