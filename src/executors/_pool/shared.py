"""Big buffers to and from the pool engine's workers through shared memory: the parent's side.

A task whose arguments hold a buffer of :data:`~executors._pool._subworker.BIG`
bytes or more (``bytes``, ``bytearray``, ``memoryview``, a numpy array: what
pickle protocol 5 passes out of band) is pickled with those buffers left out,
and they are copied into a memfd of the caller's (a :class:`Segment`) at
``submit``; the pipe carries the rest. A big result comes back the same way,
through the worker's outbox (see :mod:`executors._pool._subworker`)::

    caller (submit)                     worker                              manager thread
    pickle, buffers out of band
    copy them into a Segment  --pipe: (pid, fd, name, layout, pickle)-->
                                        map /proc/PID/fd/FD: copy out
                                        bytes, lend arrays as views;
                                        run; big result: copy it into
                                        its Outbox --pipe: SHARED item-->   map it: copy out bytes,
                                                                            lend arrays, TAKEN += 1
    Segment back to the cache <------------------------------------------  outcome handled

A numpy array (any buffer but ``bytes`` and ``bytearray``) is not copied out
but rebuilt on a view of a private mapping of the segment (copy on write); the
segment's first byte turns FREE when the last such view is gone (see
:mod:`executors._pool._subworker`), and only then is it written again. So a
series of big tasks writes into pages that already exist (a fresh tmpfs page
costs more than the copy), and an array crosses with one copy each way. Nothing
can leak: a memfd has no name in /dev/shm and its memory goes with the last
descriptor and mapping, at the latest when the process holding it exits. The
cache keeps at most :data:`CACHE` bytes of given-back segments, closed when the
pool shuts down.
Linux only (memfd and ``/proc``); elsewhere, or with ``EXECUTORS_PORTABLE=1``,
big data goes through the pipe as before.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import threading
from typing import Any, Callable

from .._runtime import linux_only
from . import _subworker

__all__ = [
    "CACHE",
    "CACHE_COUNT",
    "OutboxView",
    "Segment",
    "Segments",
    "pack_call",
    "take_result",
    "usable",
]

#: Bytes of free segments the caller keeps for reuse (per executor), and how many: a
#: big task's segment is given back once its worker has copied it out, so a series of
#: big tasks mostly reuses one or two.
CACHE = 512 << 20
CACHE_COUNT = 2
_names = itertools.count(1)


def usable() -> bool:
    """Whether big buffers go through shared memory here (memfd and ``/proc``, Linux)."""
    return hasattr(os, "memfd_create") and linux_only("memfd_create")


class Segment:
    """One memfd of the caller's, mapped here."""

    __slots__ = ("area", "fd", "name")

    def __init__(self, size: int) -> None:
        self.name = f"executors-{os.getpid()}-{next(_names)}"
        self.fd = os.memfd_create(self.name)
        try:
            os.ftruncate(self.fd, size)
            self.area: mmap.mmap | None = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def size(self) -> int:
        return 0 if self.area is None else len(self.area)

    def unused(self) -> bool:
        """Whether no worker reads it or keeps a view of it (its first byte is FREE)."""
        return self.area is not None and self.area[0] == _subworker.FREE

    def unlend(self) -> None:
        """No worker took it (a task cancelled or lost before it loaded): FREE again."""
        if self.area is not None:
            self.area[0] = _subworker.FREE

    def close(self) -> None:
        if self.area is not None:
            self.area.close()
            self.area = None
            os.close(self.fd)
            self.fd = -1


class Segments:
    """An executor's segments: taken at ``submit``, given back when the task is done."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: list[Segment] = []
        self.live: set[Segment] = set()  # every open one, closed at the latest by close()
        self.used: set[Segment] = set()  # those a task holds
        self.closed = False

    def take(self, size: int) -> Segment:
        """A free segment of at least *size* bytes (the smallest that fits), or a new one."""
        with self.lock:
            fits = [s for s in self.free if s.size >= size and s.unused()]
            if fits:
                best = min(fits, key=lambda s: s.size)
                self.free.remove(best)
                self.used.add(best)
                return best
        segment = Segment(_subworker.segment_size(size))
        with self.lock:
            if self.closed:
                segment.close()
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.live.add(segment)
            self.used.add(segment)
        return segment

    def give(self, segment: Segment, loaded: bool = True) -> None:
        """*segment*'s task is done, or its worker has taken it (*loaded*; else nobody
        did): keep it for the next one, within :data:`CACHE`; it is written again once
        unused. Those dropped first are still in use (a worker keeps a view), then the
        smallest (a big one is dearer to make)."""
        with self.lock:
            if segment not in self.used:
                return  # given back already (two threads may see a task done), or closed
            if not loaded:
                segment.unlend()
            self.used.discard(segment)
            self.free.append(segment)
            self.free.sort(key=lambda s: (s.unused(), s.size), reverse=True)
            while (
                self.closed
                or len(self.free) > CACHE_COUNT
                or sum(s.size for s in self.free) > CACHE
            ):
                dropped = self.free.pop()
                self.live.discard(dropped)
                dropped.close()
                if not self.free:
                    break

    def close(self) -> None:
        """Close every segment, taken or free: no worker reads them any more."""
        with self.lock:
            self.closed = True
            for segment in self.live:
                segment.close()
            self.live.clear()
            self.free.clear()
            self.used.clear()


def pack_call(
    segments: Segments, call: tuple[Any, ...], dumps: Callable[..., bytes]
) -> tuple[tuple[Any, ...], Segment] | None:
    """*call* ``(fn, args, kwargs)`` as a payload whose big buffers are in a segment.

    None when no buffer went out of band after all, or the pickler takes no
    *buffer_callback*: then the caller pickles it the usual way.
    """
    fn, args, kwargs = call
    collect = _subworker.Collect()
    marked = (fn, _subworker.out_of_band(args), _subworker.out_of_band(kwargs))
    try:
        inband = dumps(marked, buffer_callback=collect)
    except TypeError:  # e.g. a serializer of a plugin's without buffer_callback
        return None
    if not collect.buffers:
        return None
    layout, size = collect.layout()
    segment = segments.take(size)
    try:
        collect.write(segment.area, layout)
    except BaseException:
        segments.give(segment)
        raise
    return (os.getpid(), segment.fd, segment.name, layout, inband), segment


class OutboxView:
    """A worker's result segments as this process has mapped them (the manager thread's):
    the two used last, for the results it copies out."""

    __slots__ = ("areas",)

    def __init__(self) -> None:
        self.areas: dict[str, Any] = {}

    def close(self) -> None:
        for area in self.areas.values():
            with contextlib.suppress(BufferError):
                area.close()
        self.areas.clear()


def take_result(outbox: OutboxView, state: Any, spec: tuple[Any, ...]) -> Any:
    """The result a worker left in its outbox (*spec*: a SHARED item's value).

    Its arrays are views of the worker's segment (see above), its ``bytes`` copies.
    ``state[TAKEN]`` counts this one whatever becomes of it (a result that will not
    load raises here): the worker may close its side of the segment from then on.
    """
    try:
        pid, fd, name, layout, inband = spec
        buffers = _subworker.take_buffers(outbox.areas, pid, fd, name, layout)
    finally:
        state[_subworker.TAKEN] += 1
    return pickle.loads(inband, buffers=buffers)
