"""What crosses a child's pipe: the kinds of message, and frames (a length, then the bytes).

A child writes lists of ``(key, kind, value)`` items, pickled, each list in
one frame: an 8-byte big-endian length, then the bytes; a zero length means
"stop". The pool engine's worker leaf (:mod:`executors._pool._subworker`)
speaks the same wire but may not import this package, so it keeps its own
copy of these numbers; ``tests/test_layering.py`` checks that they agree.
"""

from __future__ import annotations

import os
import struct

__all__ = [
    "ERR",
    "INIT_FAILED",
    "LOAD_FAILED",
    "LOG",
    "OK",
    "READY",
    "SHARED",
    "SKIP",
    "UNPICKLABLE",
    "FrameReader",
    "batch_frame",
    "frame",
    "frame_header",
    "read_into",
    "write_all",
]

#: The kinds of item: a result, a packed exception, a task skipped because it was
#: cancelled, a log record, the initializer's packed exception, a worker's greeting,
#: a task the worker could not unpickle (the packed exception), and a result that
#: would not pickle (its facts: description, exception type name, message). Workers
#: send facts; the parent words the errors (:func:`executors._proc.envelope.outcome_error`).
OK, ERR, SKIP, LOG, INIT_FAILED, READY, LOAD_FAILED, UNPICKLABLE = 0, 1, 2, 3, 4, 5, 6, 7
#: A result whose big buffers wait in the worker's shared memory (:mod:`executors._pool.shared`).
SHARED = 8

_HEADER = struct.Struct("!Q")


def frame(data: bytes) -> bytes:
    """*data* with its length in front, ready for a :class:`FrameReader` on the other end."""
    return _HEADER.pack(len(data)) + data


def frame_header(data: bytes) -> bytes:
    """What :func:`frame` puts in front of *data*: to write before it, without a copy of it."""
    return _HEADER.pack(len(data))


def batch_frame(payloads: list[bytes]) -> list[bytes]:
    """``frame(pickle.dumps(payloads))`` in parts, the payloads themselves not copied.

    The pickle is written by hand (protocol 4 opcodes: an empty list, a mark, each
    payload as BINBYTES8, APPENDS, STOP), so a 200 MB argument is not copied into
    one more 200 MB frame on its way into the pipe.
    """
    parts = [b"\x80\x04]("]
    for payload in payloads:
        parts.append(b"\x8e" + len(payload).to_bytes(8, "little"))
        parts.append(payload)
    parts.append(b"e.")
    return [_HEADER.pack(sum(map(len, parts))), *parts]


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_into(fd: int, space: memoryview) -> int:
    """Read from *fd* straight into *space* (``os.readv``); the number of bytes read.

    PyPy's :mod:`os` has no ``readv``: there the bytes are read, then copied in
    (at most 1 MiB at a time, so the copy stays small).
    """
    if _HAS_READV:
        return os.readv(fd, [space])
    data = os.read(fd, min(len(space), 1 << 20))
    space[: len(data)] = data
    return len(data)


_HAS_READV = hasattr(os, "readv")


class FrameReader:
    """Non-blocking side of a pipe: feed it what ``os.read`` returned, take whole frames.

    A big frame gets its buffer once its length is known: :meth:`space` is where
    the next read can go directly (:func:`read_into`), and :meth:`filled` takes it.
    """

    __slots__ = ("_big", "_buf", "_got")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._big: bytearray | None = None  # a big frame being filled in place
        self._got = 0

    def space(self) -> memoryview | None:
        """The unfilled part of a big frame's buffer, or None (then read and :meth:`feed`)."""
        big = self._big
        return None if big is None else memoryview(big)[self._got :]

    def filled(self, n: int) -> list[bytes]:
        """*n* more bytes were read into :meth:`space`; the frame, once it is whole."""
        self._got += n
        big = self._big
        if big is None or self._got < len(big):
            return []
        self._big = None
        return [big]  # type: ignore[list-item]  # a bytearray: loads() takes it

    def feed(self, data: bytes) -> list[bytes]:
        """Add *data*; return the frames it completed, oldest first."""
        frames: list[bytes] = []
        if self._big is not None:
            space = self.space()
            assert space is not None
            take = min(len(data), len(space))
            space[:take] = data[:take]
            frames += self.filled(take)
            data = data[take:]
            if not data:
                return frames
        buf = self._buf
        buf += data
        start = 0
        while len(buf) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, start)
            end = start + _HEADER.size + size
            if len(buf) < end:
                if size >= 1 << 20:  # big: fill its own buffer from now on
                    self._big = bytearray(size)
                    have = len(buf) - start - _HEADER.size
                    self._big[:have] = buf[start + _HEADER.size :]
                    self._got = have
                    start = len(buf)
                break
            with memoryview(buf) as view:  # one copy, not a slice and then bytes()
                frames.append(bytes(view[start + _HEADER.size : end]))
            start = end
        if start:
            del buf[:start]
        return frames
