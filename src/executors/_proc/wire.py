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
    "SKIP",
    "UNPICKLABLE",
    "FrameReader",
    "frame",
    "write_all",
]

#: The kinds of item: a result, a packed exception, a task skipped because it was
#: cancelled, a log record, the initializer's packed exception, a worker's greeting,
#: a task the worker could not unpickle (the packed exception), and a result that
#: would not pickle (its facts: description, exception type name, message). Workers
#: send facts; the parent words the errors (:func:`executors._proc.envelope.outcome_error`).
OK, ERR, SKIP, LOG, INIT_FAILED, READY, LOAD_FAILED, UNPICKLABLE = 0, 1, 2, 3, 4, 5, 6, 7

_HEADER = struct.Struct("!Q")


def frame(data: bytes) -> bytes:
    """*data* with its length in front, ready for a :class:`FrameReader` on the other end."""
    return _HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Non-blocking side of a pipe: feed it what ``os.read`` returned, take whole frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add *data*; return the frames it completed, oldest first."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        start = 0
        while len(buf) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, start)
            end = start + _HEADER.size + size
            if len(buf) < end:
                break
            frames.append(bytes(buf[start + _HEADER.size : end]))
            start = end
        if start:
            del buf[:start]
        return frames
