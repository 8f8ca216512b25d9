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
from typing import Any

__all__ = [
    "BIG",
    "ERR",
    "INIT_FAILED",
    "LOAD_FAILED",
    "LOG",
    "OK",
    "READY",
    "SHARED",
    "SKIP",
    "UNPICKLABLE",
    "Buffers",
    "FrameReader",
    "batch_frame",
    "buffers_frame",
    "frame",
    "frame_header",
    "read_into",
    "split_frame",
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


#: A buffer this big (bytes) in a child's result travels out of band (see :class:`Buffers`).
BIG = 1 << 20
_OOB = 0x4F  # "O": the first byte of an out-of-band frame (a pickle's is PROTO, 0x80)
_ALIGN = 64  # where each buffer starts in such a frame: numpy's alignment, and more


class Buffers(list):  # type: ignore[type-arg]
    """A pickle ``buffer_callback`` that keeps big contiguous buffers (a numpy array's)
    out of band: :func:`buffers_frame` writes them into the pipe as they are, and the
    reader rebuilds the arrays on its frame's memory. No copy on either side."""

    def __call__(self, buffer: Any) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: in band, as pickle does it
            return True
        if raw.nbytes < BIG:
            return True
        self.append(raw)
        return False


def buffers_frame(data: bytes, buffers: list[memoryview]) -> list[Any]:
    """A frame of *data* (a pickle) and its out-of-band *buffers*, in parts to write in
    order: ``O``, how many buffers, their lengths, the pickle's length, the pickle, then
    each buffer at a multiple of 64 bytes from the frame's start."""
    lengths = [raw.nbytes for raw in buffers]
    head = struct.pack(f"!BQ{len(lengths)}QQ", _OOB, len(lengths), *lengths, len(data))
    parts: list[Any] = [head, data]
    at = len(head) + len(data)
    for raw in buffers:
        pad = -at % _ALIGN
        parts += [bytes(pad), raw]
        at += pad + raw.nbytes
    return [_HEADER.pack(at), *parts]


def split_frame(data: Any) -> tuple[Any, list[memoryview] | None]:
    """A frame's pickle and its out-of-band buffers (views of *data*), or ``(data, None)``
    for a frame of one pickle."""
    if not data or data[0] != _OOB:
        return data, None
    view = memoryview(data)
    (count,) = struct.unpack_from("!Q", view, 1)
    *lengths, size = struct.unpack_from(f"!{count}QQ", view, 9)
    at = 9 + 8 * count + 8
    pickled, at = view[at : at + size], at + size
    buffers = []
    for length in lengths:
        at += -at % _ALIGN
        buffers.append(view[at : at + length])
        at += length
    return pickled, buffers


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
