"""The worker side of the ``pool`` engine: frames, the batched task loop, interpreter workers.

One protocol serves ``pool`` workers (``multiprocessing`` children) and the
``subprocess`` backend's worker interpreters. Every message is a frame: an
8-byte big-endian length, then a pickle; a zero length means "stop". The parent
sends ``[payload, ...]`` (each a pickled ``(fn, args, kwargs)``); the
worker answers ``[(key, kind, value), ...]`` (kinds below), after any task that
took over 1 ms, after 2 ms of quicker ones, and whenever it runs out of work.
Its *state* is shared memory of doubles: tasks started and finished, when the
current one started, bytes of unsent results in use, and a ring of cancel
marks; then ``UNSENT_SIZE`` bytes where it keeps a copy of each result it has
not sent yet, which the parent reads if the worker dies (see :func:`serve`).

A worker interpreter is ``python -c PROGRAM TASKS RESULTS STDERR STATE
[LENGTH]`` (descriptors it inherits). PROGRAM imports this file as the
top-level module ``_subworker``, or, in the caller's own Python, runs this
file's code that the caller compiled and marshalled into the STATE file after
the state (LENGTH bytes); see :mod:`executors._pool.interpreter`::

    parent                                       worker
      | -- hello: (sys.path, init, max, level) ->  |  extend sys.path, map STATE,
      |                                             |  run the initializer
      | <-- [(None, READY, (pid, version))] ------  |  or [(None, INIT_FAILED, packed)]
      | -- [payload, ...] ----------------------->  |  run them in order
      | <-- [(None, OK/ERR/SKIP, value), ...] ----  |
      | -- stop frame or end of file ------------>  |  exit 0

Until it is ready, the interpreter's stderr is a pipe the parent reads if
start-up fails; then it takes over the caller's stderr (STDERR). This file
imports only C modules (``_pickle``, ``select``, ``mmap``, ``_weakref``) besides
those every interpreter has loaded, so a worker starts about as fast as a bare
``python -c pass``. It imports nothing from ``executors`` (on PyPy, ``executors.serialization``
once a result needs cloudpickle): a task's pickle imports what it
needs (``executors.context`` for context values), and the worker sends facts
(kinds, exception type names, messages) that the parent words as errors. A
worker ignores SIGINT (the caller handles Ctrl-C).
"""

from __future__ import annotations

import io
import os
import select
import sys
import time
from _weakref import ref as _weakref_ref

TYPE_CHECKING = False  # not imported from typing, which would slow every worker's start
if TYPE_CHECKING:
    from collections import deque
    from typing import Any, Callable
else:
    from _collections import deque  # the C type; ``collections`` costs an import


def _import_pickle() -> tuple[Any, Any]:
    """``_pickle.dumps`` and ``loads``: the C module alone, and without ``functools``.

    Importing ``pickle.py`` would cost a few ms more per worker. ``_pickle`` takes
    one thing from ``functools``: ``partial``, which is ``_functools.partial``;
    lent that alone while it loads, a worker does not import ``functools`` and
    ``collections`` (about 2 ms of every start). A task that imports
    ``functools`` later gets the real module.
    """
    try:
        import _pickle
    except ImportError:  # PyPy: pickle.py is its implementation (and fast under its JIT)
        import pickle

        return pickle.dumps, pickle.loads
    return _pickle.dumps, _pickle.loads


# The lending trick is CPython's fast path; PyPy has neither ``_pickle`` nor
# ``_functools`` and imports ``pickle.py`` the ordinary way.
if (
    sys.implementation.name == "cpython"
    and "functools" not in sys.modules
    and "_pickle" not in sys.modules
):
    _lent = type(sys)("functools")
    _lent.partial = __import__("_functools").partial  # type: ignore[attr-defined]
    sys.modules["functools"] = _lent
    try:
        dumps, loads = _import_pickle()
    finally:
        if sys.modules.get("functools") is _lent:
            del sys.modules["functools"]
        del _lent
else:
    dumps, loads = _import_pickle()

__all__ = [
    "BIG",
    "DOUBLES",
    "ERR",
    "FINISHED",
    "FREE",
    "HEADER",
    "INIT_FAILED",
    "LENT",
    "LOADED",
    "LOAD_FAILED",
    "LOG",
    "MAX_VIEWS",
    "OK",
    "OUTBOX_KEEP",
    "PARENT_POLL",
    "PROTOCOL",
    "READY",
    "RECIPE",
    "RING",
    "RING_START",
    "SHARED",
    "SKIP",
    "STARTED",
    "START_TIME",
    "STATE_SIZE",
    "TAKEN",
    "UNPICKLABLE",
    "UNSENT",
    "UNSENT_SIZE",
    "VIEWS",
    "Collect",
    "Outbox",
    "big",
    "copy_out",
    "frame",
    "guard",
    "main",
    "open_segment",
    "out_of_band",
    "pack",
    "read_frame",
    "receive",
    "run",
    "segment_size",
    "serve",
    "take_buffers",
    "write_all",
]

PROTOCOL = 5
#: The kinds of item, as :mod:`executors._proc.wire` numbers them (a test checks).
OK, ERR, SKIP, LOG, INIT_FAILED, READY, LOAD_FAILED, UNPICKLABLE = 0, 1, 2, 3, 4, 5, 6, 7
#: A result whose big buffers wait in the worker's :class:`Outbox` (see :func:`receive`).
SHARED = 8

#: Slots of a worker's shared state (doubles); the ring of cancel marks follows them.
#: TAKEN: shared results the parent has taken (copied out of, or mapped) from the worker's
#: :class:`Outbox`; LOADED: 1 + the last task whose big arguments the worker has taken
#: from the caller's shared memory (the caller may give that segment back; it writes it
#: again once its first byte says FREE).
STARTED, START_TIME, FINISHED, UNSENT, TAKEN, LOADED = 0, 1, 2, 3, 4, 5
RING_START = 6
RING = 1024
DOUBLES = RING_START + RING
#: Bytes of shared memory where a worker copies the results it has not sent yet.
UNSENT_SIZE = 1 << 16
STATE_SIZE = DOUBLES * 8 + UNSENT_SIZE  # bytes: the doubles, then the unsent results


# -- framing --------------------------------------------------------------------------


def frame(data: bytes) -> bytes:
    """*data* with its length in front, ready for :func:`read_frame` on the other end."""
    return len(data).to_bytes(8, "big") + data


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of *data* to *fd*."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(stream: io.FileIO) -> bytearray | None:
    """Blocking read of one frame; None at end of file or on a stop frame."""
    header = _read_exactly(stream, 8)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    return _read_exactly(stream, size) if size else None


def _read_exactly(stream: io.FileIO, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            return None
        got += n
    return buf  # not copied into bytes: loads() takes it as it is


# -- big buffers through shared memory (Linux) ----------------------------------------
#
# A buffer of BIG bytes or more in a task's arguments or result (bytes, bytearray,
# memoryview, a numpy array: what pickle protocol 5 passes out of band) crosses
# through a memfd instead of the pipe; the pipe carries the rest of the pickle and
# where the buffers lie: ``(pid, fd, name, layout, inband)``. The receiver opens
# ``/proc/PID/fd/FD`` (checking the memfd's NAME: a descriptor number can be reused).
# ``bytes`` and ``bytearray`` are copied out (their types own their memory); any other
# buffer (a numpy array's) is *lent*: the receiver gets a view of a private mapping
# (copy on write: what it writes stays its own, and a fork of it shares nothing), and
# the array it rebuilds stays there, with no copy. Arguments travel in the caller's
# segments (executors._pool.shared); results in the worker's Outbox.
#
# A segment's first byte says who may write it: the sender sets LENT before it writes
# the buffers; the receiver sets FREE once it has copied them out, or once the last
# view of the mapping it lent them from is gone (a weak reference's callback), so the
# sender writes a segment again only when nothing the receiver holds points into it.
# A memfd has no name in /dev/shm and dies with the last descriptor or mapping of it:
# nothing leaks.
#: A buffer this big (bytes) crosses through shared memory rather than the pipe.
BIG = 1 << 20
_ALIGN = 64  # where each buffer starts in a segment (numpy's alignment, and more)
#: A segment's first byte (see above), then padding to the first buffer.
FREE, LENT, HEADER = 0, 1, _ALIGN
#: Whether a receiver lends buffers as views: CPython (reference counts free a view's
#: mapping as soon as it is unused; PyPy's collector would keep segments LENT for long).
VIEWS = sys.implementation.name == "cpython"
#: Views' mappings a process keeps at most (each holds a descriptor before 3.13);
#: beyond that, buffers are copied out.
MAX_VIEWS = 64
_SCAN = 64  # containers longer than this are not looked into (a long list costs a scan)


_PLAIN = frozenset([type(None), bool, int, float, complex, str])  # the commonest: no buffer


def _big_buffer(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return False
    if kind is bytes or kind is bytearray:
        return len(value) >= BIG
    if kind is memoryview:
        return bool(value.nbytes >= BIG)
    size = getattr(value, "nbytes", None)  # numpy arrays, and other buffer exporters
    return type(size) is int and size >= BIG


def big(value: Any) -> bool:
    """Whether *value* is a big buffer, or a short tuple, list or dict holding one."""
    kind = type(value)
    if kind in _PLAIN:  # the small tasks' fast path: one look
        return False
    if kind is dict:
        value = value.values()
    elif kind is not tuple and kind is not list:
        return _big_buffer(value)
    if len(value) > _SCAN:
        return False
    for item in value:  # noqa: SIM110 - a loop: quicker than any() for a call's few arguments
        if type(item) not in _PLAIN and _big_buffer(item):
            return True
    return False


class _OutOfBand:
    """``bytes``, ``bytearray`` and ``memoryview`` pickled as a PickleBuffer: out of band.

    (The C pickler writes a ``bytearray`` in band itself; numpy arrays need no help.)
    """

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return type(self.data), (_pickle_buffer(self.data),)


def _pickle_buffer(data: Any) -> Any:
    return __import__("pickle").PickleBuffer(data)


def _mark(value: Any) -> Any:
    kind = type(value)
    if (kind is bytes or kind is bytearray or kind is memoryview) and _big_buffer(value):
        return _OutOfBand(value)
    return value


def out_of_band(value: Any) -> Any:
    """*value* with its big buffers of built-in types marked (where :func:`big` looks)."""
    kind = type(value)
    if kind is tuple:
        return tuple(map(_mark, value))
    if kind is list:
        return list(map(_mark, value))
    if kind is dict:
        return {k: _mark(v) for k, v in value.items()}
    return _mark(value)


class Collect:
    """A pickle ``buffer_callback``: keeps the big buffers (out of band), the rest in band."""

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[memoryview] = []

    def __call__(self, buffer: Any) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: in band, as pickle does it
            return True
        if raw.nbytes < BIG:
            return True
        self.buffers.append(raw)
        return False

    def lendable(self, raw: memoryview) -> bool:
        """Whether the receiver may keep *raw* as a view (``bytes`` and ``bytearray``
        are rebuilt as copies whatever they are given)."""
        kind = type(raw.obj)
        return kind is not bytes and kind is not bytearray

    def clear(self) -> None:
        self.buffers.clear()

    def layout(self) -> tuple[tuple[tuple[int, int, bool, bool], ...], int]:
        """Where each buffer goes in a segment: ``(offset, length, read-only, lendable)``;
        the size."""
        at, places = HEADER, []
        for raw in self.buffers:
            places.append((at, raw.nbytes, raw.readonly, self.lendable(raw)))
            at += -(-raw.nbytes // _ALIGN) * _ALIGN
        return tuple(places), at

    def write(self, area: Any, layout: Any) -> None:
        area[0] = LENT
        with memoryview(area) as view:
            for raw, (at, size, _readonly, _lend) in zip(self.buffers, layout):
                view[at : at + size] = raw
        self.buffers.clear()  # the sender's objects are not kept alive


def segment_size(size: int) -> int:
    """A segment for *size* bytes (header included): its buffers' part rounded up to a MiB,
    so that sizes that differ a little reuse the same segment."""
    return HEADER + -(-(size - HEADER) // (1 << 20)) * (1 << 20)


def copy_out(area: Any, layout: Any) -> list[Any]:
    """The buffers of *layout* copied out of *area*: nothing returned points into it."""
    with memoryview(area) as view:
        return [
            bytes(view[at : at + size]) if readonly else bytearray(view[at : at + size])
            for at, size, readonly, _lend in layout
        ]


def open_segment(pid: int, fd: int, name: str, private: bool = False) -> Any:
    """Map process *pid*'s memfd *fd*, checked to be the one called *name*; *private*:
    copy on write, without a descriptor of its own where Python allows (3.13+)."""
    import mmap

    mine = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR)
    try:
        if os.readlink(f"/proc/self/fd/{mine}") != f"/memfd:{name} (deleted)":
            raise OSError(f"descriptor {fd} of process {pid} is not shared memory {name}")
        if not private:
            return mmap.mmap(mine, 0)
        size = os.fstat(mine).st_size
        if sys.version_info >= (3, 13):
            return mmap.mmap(mine, size, access=mmap.ACCESS_COPY, trackfd=False)
        return mmap.mmap(mine, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(mine)


_views: set[Any] = set()  # weak references to the mappings that lend views, until freed


def take_buffers(cache: dict[str, Any], pid: int, fd: int, name: str, layout: Any) -> list[Any]:
    """The buffers of a segment (see above): views of a private mapping when one is
    lendable, else copies out of a shared mapping kept in *cache* (the two used last
    stay mapped: a sender reuses its segments, so a series of big tasks maps each once).
    """
    if VIEWS and len(_views) < MAX_VIEWS and any(entry[3] for entry in layout):
        area = open_segment(pid, fd, name, private=True)
        with memoryview(area) as whole:
            buffers = [
                whole[at : at + size].toreadonly() if readonly else whole[at : at + size]
                for at, size, readonly, _lend in layout
            ]
        _views.add(_weakref_ref(area, _on_unused(pid, fd, name)))
        return buffers  # bytes() and bytearray() of a view copy it: only arrays keep one
    area = cache.pop(name, None)
    need = layout[-1][0] + layout[-1][1] if layout else 0
    if area is None or len(area) < need:
        if area is not None:
            area.close()
        area = open_segment(pid, fd, name)
    cache[name] = area
    while len(cache) > 2:
        cache.pop(next(iter(cache))).close()
    buffers = copy_out(area, layout)
    area[0] = FREE
    return buffers


def _on_unused(pid: int, fd: int, name: str) -> Callable[[Any], None]:
    def freed(ref: Any) -> None:  # may run in any thread, or at exit: no lock, no raise
        _views.discard(ref)
        try:
            mine = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR)
        except Exception:
            return  # the sender closed it (or died): nobody will write it again
        try:
            if os.readlink(f"/proc/self/fd/{mine}") == f"/memfd:{name} (deleted)":
                os.pwrite(mine, bytes([FREE]), 0)
        except Exception:
            pass
        finally:
            os.close(mine)

    return freed


def _forget_views() -> None:
    """Before a fork: the views now alive are never given back, by parent or child. Each
    process's copy of a view still reads the segment (copy-on-write spares only written
    pages), and neither knows when the other lets go: the weak references go, and their
    callbacks with them. Those segments are not reused; they go with the last mapping."""
    _views.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_forget_views)


_segments: dict[str, Any] = {}  # the caller's segments mapped here, newest last


def receive(spec: tuple[Any, ...]) -> tuple[bytes, list[Any]]:
    """A task's pickle and its buffers, from the ``(pid, fd, name, layout, inband)`` it came as."""
    pid, fd, name, layout, inband = spec
    return inband, take_buffers(_segments, pid, fd, name, layout)


class Outbox:
    """Where a worker puts its results' big buffers: memfds it reuses once the parent has
    set them FREE (see above); at most :data:`OUTBOX_KEEP` stay open here."""

    def __init__(self, state: Any, dumps: Callable[..., bytes]) -> None:
        self.state, self.dumps = state, dumps
        self.segments: list[list[Any]] = []  # [fd, area, name, number sent with]
        self.sent = 0
        self.usable = hasattr(os, "memfd_create") and os.environ.get(
            "EXECUTORS_PORTABLE", ""
        ).strip() not in ("1", "true", "yes")

    def put(self, value: Any) -> tuple[Any, ...] | None:
        """*value* as a SHARED item's value, or None: it goes through the pipe as usual."""
        if not self.usable:
            return None
        collect = Collect()
        try:
            inband = self.dumps(out_of_band(value), buffer_callback=collect)
        except Exception:  # the usual path words what will not pickle
            return None
        if not collect.buffers:
            return None
        layout, size = collect.layout()
        try:
            segment = self._take(size)
        except OSError:
            return None
        collect.write(segment[1], layout)
        self.sent += 1
        segment[3] = self.sent
        self._trim(segment)
        return os.getpid(), segment[0], segment[2], layout, inband

    def _take(self, size: int) -> list[Any]:
        import mmap

        free = [s for s in self.segments if s[1][0] == FREE and len(s[1]) >= size]
        if free:
            return min(free, key=lambda s: len(s[1]))
        name = f"executors-out-{os.getpid()}-{len(self.segments)}-{self.sent}"
        fd = os.memfd_create(name)
        try:
            os.ftruncate(fd, segment_size(size))
            segment = [fd, mmap.mmap(fd, 0), name, 0]
        except BaseException:
            os.close(fd)
            raise
        self.segments.append(segment)
        return segment

    def _trim(self, keep: list[Any]) -> None:
        """Close segments beyond :data:`OUTBOX_KEEP` that the parent has opened (one it
        still reads from lives on in its mapping): the lent ones first, then the smallest."""
        taken = self.state[TAKEN]
        while len(self.segments) > OUTBOX_KEEP:
            opened = [s for s in self.segments if s is not keep and s[3] <= taken]
            if not opened:
                return
            victim = min(opened, key=lambda s: (s[1][0] == FREE, len(s[1])))
            self.segments.remove(victim)
            try:  # noqa: SIM105 - contextlib is an import this file avoids
                victim[1].close()
            except BufferError:  # pragma: no cover - nothing here keeps a view
                pass
            os.close(victim[0])


#: Result segments a worker keeps open at most (more while the parent has not opened them).
OUTBOX_KEEP = 2


# -- the task loop, shared by pool workers and worker interpreters ---------------------


def serve(  # noqa: PLR0917, PLR0915 - the task loop, inline: every statement costs each task
    in_fd: int,
    state: Any,
    unsent: Any,
    max_tasks: int | None,
    run: Callable[[bytes, Any], tuple[int, Any]],
    send: Callable[[list[tuple[Any, int, Any]]], None],
    pack: Callable[[list[tuple[Any, int, Any]]], bytes],
) -> None:
    """Run the tasks read from *in_fd* in order until a stop frame, end of file or *max_tasks*.

    *state* is indexable shared memory (see the module docstring): the parent
    reads ``state[STARTED]``, ``state[FINISHED]`` and ``state[START_TIME]`` to
    tell which task a dead worker was running and to enforce timeouts, and
    ``RING_START + seq % RING`` holds ``seq + 1`` when it cancelled task *seq*
    before it started.

    Results go to the parent in batches (*send*). Until a result is sent, a copy
    of it is kept in *unsent* (shared memory: a writable byte view of
    ``UNSENT_SIZE`` bytes) as a record (:func:`_keep`), and ``state[UNSENT]``
    says how many bytes of it are in use: a task that kills this process cannot
    take the results of the tasks before it along (the parent reads them
    there). A result that does not fit is sent at once.
    """
    ppid = os.getppid()
    guard(ppid)
    stream = io.FileIO(in_fd, "rb", closefd=False)
    poller = select.poll()  # not select.select: descriptors above 1023 are fine
    poller.register(in_fd, select.POLLIN)
    queue: deque[Any] = deque()
    out: list[tuple[Any, int, Any]] = []
    outbox = Outbox(state, _dumps_out_of_band)
    seq = used = 0
    last_flush = time.monotonic()
    while True:
        if not queue:  # (what ran is sent: the last task of a batch sends it all)
            while not poller.poll(1000):
                if os.getppid() != ppid:
                    return  # the parent died without telling us
            data = read_frame(stream)
            if data is None:
                return
            queue.extend(loads(data))
            data = None
            last_flush = time.monotonic()
            continue
        now = time.monotonic()
        payload = queue.popleft()
        state[START_TIME] = now
        state[STARTED] = seq + 1
        if state[RING_START + seq % RING] == seq + 1:
            item: tuple[Any, int, Any] = (None, SKIP, None)
        else:
            if type(payload) is bytes:  # (inline: the small tasks' path)
                kind, value = run(payload, None)
            else:
                kind, value = _run_shared(payload, run, state, seq)
            if value is not None and kind == OK and big(value):
                spec = outbox.put(value)
                if spec is not None:
                    kind, value = SHARED, spec
            item = (None, kind, value)
            del value  # the result's only reference is item...
        del payload  # ...and an idle worker keeps no task's arguments (as multiprocessing's)
        out.append(item)
        seq += 1
        end = time.monotonic()
        last = max_tasks is not None and seq >= max_tasks  # skipped ones count too
        # Sent now: the last of the queue or of the worker, a slow task, 2 ms of fast
        # ones, a result in the outbox (it lives as long as this worker: not kept below).
        flush = (
            not queue or last or item[1] == SHARED or end - now > 0.001 or end - last_flush > 0.002
        )
        if not flush:  # kept in shared memory until it is sent, unless it does not fit
            used = _keep(unsent, used, seq - 1, item, pack)
            if used:
                state[UNSENT] = used  # only now: the parent reads whole frames
            else:
                flush = True
        del item
        state[FINISHED] = seq
        if flush:
            send(out)
            out = []
            state[UNSENT] = used = 0
            last_flush = end
            if last:
                return


def _dumps_out_of_band(obj: Any, buffer_callback: Any) -> bytes:
    data: bytes = dumps(obj, PROTOCOL, buffer_callback=buffer_callback)
    return data


def _run_shared(
    spec: tuple[Any, ...], run: Callable[[bytes, Any], tuple[int, Any]], state: Any, seq: int
) -> tuple[int, Any]:
    """``run()`` of task *seq*, whose big buffers are in the caller's shared memory (*spec*)."""
    buffers: Any
    try:
        payload, buffers = receive(spec)
    except OSError as exc:  # run() raises it: the task fails with LOAD_FAILED
        payload, buffers = b"", exc
    state[LOADED] = seq + 1  # taken: the segment's first byte says when it may be reused
    return run(payload, buffers)


def _keep(
    unsent: Any,
    used: int,
    seq: int,
    item: tuple[Any, int, Any],
    pack: Callable[[list[tuple[Any, int, Any]]], bytes],
) -> int:
    """Write task *seq*'s record into *unsent* at *used*: *seq* and a length (8 bytes each,
    big-endian), then ``pack([item])`` of that length; an empty record stands for the
    commonest item, ``(None, OK, None)`` (a task run for its effect), which is not
    pickled. The bytes now in use, or 0 when it does not fit (or will not pickle:
    sending the batch deals with that)."""
    if item[1] == OK and item[2] is None:
        data = b""
    else:
        try:
            data = pack([item])
        except Exception:
            return 0
    end = used + 16 + len(data)
    if end > UNSENT_SIZE:
        return 0
    unsent[used:end] = ((seq << 64) | len(data)).to_bytes(16, "big") + data
    return end


#: Seconds between a worker's checks that its parent (the caller) is still alive.
PARENT_POLL = 0.2


def guard(ppid: int) -> None:
    """Make this worker the leader of a process group, and have it die with its parent.

    What a task starts joins the group, so the caller can kill it with the worker
    when the worker dies mid-task (``os.killpg``). A thread (``_thread``: no
    ``threading`` import) checks every :data:`PARENT_POLL` seconds, even mid-task,
    that *ppid* is still the parent; once it is not (the caller was SIGKILLed),
    it kills the group, the worker with it.
    """
    try:  # noqa: SIM105 - contextlib is an import this file avoids
        os.setpgid(0, 0)
    except OSError:  # pragma: no cover - a session leader already leads one
        pass
    __import__("_thread").start_new_thread(_watch_parent, (ppid,))


def _watch_parent(ppid: int) -> None:  # pragma: no cover - runs until the process dies
    while os.getppid() == ppid:
        time.sleep(PARENT_POLL)
    signals = __import__("_signal")
    if os.getpgrp() == os.getpid():
        os.killpg(0, signals.SIGKILL)
    os.kill(os.getpid(), signals.SIGKILL)


# -- a worker interpreter ---------------------------------------------------------------


def pack(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """What executors.serialization.PackedException holds, as plain data; never raises."""
    import traceback

    frames = exc.__traceback__
    while frames is not None and frames.tb_frame.f_globals is globals():
        frames = frames.tb_next  # the worker loop's own frames are noise to the caller
    try:
        message = str(exc)
    except Exception as error:  # as executors.serialization.safe_str says it
        message = f"<{type(exc).__qualname__}.__str__ raised {type(error).__name__}>"
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, frames))
    except Exception:
        tb = f"{message} (its traceback could not be formatted)\n"
    data: bytes | None
    try:
        try:
            data = dumps(exc, PROTOCOL)
        except Exception:  # e.g. its class came by value: cloudpickle sends it back so
            data = (_by_value() or dumps)(exc, PROTOCOL)
        loads(data)
    except BaseException:  # loading may call anything, SystemExit included
        data = _recipe(exc, message)
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return data, type_name, message, f'\n"""\n{tb}"""'


#: executors.serialization's mark for an exception to rebuild without ``__init__``.
RECIPE = "executors.rebuild-exception/1"


def _recipe(exc: BaseException, message: str) -> bytes | None:
    """``executors.serialization.exception_recipe``, without importing executors."""

    def travels(value: object) -> bool:
        try:
            loads(dumps(value, PROTOCOL))
        except Exception:
            return False
        return True

    args = exc.args if travels(exc.args) else (message,)
    state = {k: v for k, v in getattr(exc, "__dict__", {}).items() if travels(v)}
    try:
        data: bytes = dumps((RECIPE, type(exc), args, state), PROTOCOL)
        loads(data)
    except Exception:
        return None
    return data


def run(payload: bytes, buffers: Any = None) -> tuple[int, Any]:
    """Unpickle and run one task ``(fn, args, kwargs)``; never raises.

    The steps of :func:`executors._proc.envelope.run_packed`, with an exception
    sent as a plain tuple. A task with context values arrives as a call of
    ``executors.context.run`` (unpickling it imports that module); one that will
    not unpickle is sent as LOAD_FAILED, and the parent words its error.
    *buffers* are its out-of-band buffers, or the error that kept them from it.
    """
    try:
        if buffers is None:  # (the small tasks' path: no keyword for loads to parse)
            fn, args, kwargs = loads(payload)
        elif isinstance(buffers, BaseException):
            raise buffers
        else:
            fn, args, kwargs = loads(payload, buffers=buffers)
    except BaseException as exc:
        return LOAD_FAILED, pack(exc)
    try:
        if kwargs:
            return OK, fn(*args, **kwargs)
        return OK, fn(*args)
    except BaseException as exc:
        return ERR, pack(exc)


def _describe(obj: Any) -> str:
    """What :func:`executors.serialization.describe` says of *obj*: a name, or a short repr."""
    name = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(name, str):
        return f"{getattr(obj, '__module__', '?')}.{name}"
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def _by_value() -> Callable[..., bytes] | None:
    """``cloudpickle.dumps``, imported on first need; None where it is not installed.

    Called only once plain pickle has refused a result or exception: a lambda or
    closure a task returns, or a class that came by value (defined in the caller's
    ``__main__``), which the caller's cloudpickle maps back to the caller's own
    class. A task that came by reference may return such a thing too, so this does
    not wait for a by-value task to have imported cloudpickle; the fast path never
    imports it.
    """
    if sys.implementation.name == "pypy":
        # PyPy's lock (and other built-ins bound to this process) reaches cloudpickle,
        # which would send its class by value, to fail in the caller; executors'
        # cloudpickle refuses it here with CPython's words (executors.serialization).
        try:
            from executors.serialization import cloud_dumps
        except ImportError:  # pragma: no cover - a worker Python without executors
            pass
        else:
            return lambda obj, _protocol: cloud_dumps(obj)
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - a dependency; a worker's odd sys.path
        return None
    dumps_by_value: Callable[..., bytes] = cloudpickle.dumps
    return dumps_by_value


def _dumps_fallback(items: list[tuple[Any, int, Any]]) -> bytes:
    """*items* pickled after plain pickle refused them: by value if that can, else each
    result that will not pickle replaced by the facts of its failure."""
    pickler = _by_value() or dumps
    try:
        data: bytes = pickler(items, PROTOCOL)
    except Exception:
        data = pickler([_picklable(item, pickler) for item in items], PROTOCOL)
    return data


def _picklable(
    item: tuple[Any, int, Any], pickler: Callable[..., bytes] = dumps
) -> tuple[Any, int, Any]:
    """*item*, or the facts of a result that will not pickle (the parent words the error)."""
    key, _kind, value = item
    try:
        pickler(value, PROTOCOL)
    except Exception as exc:
        return key, UNPICKLABLE, (_describe(value), type(exc).__name__, str(exc))
    return item


def _pack(items: list[tuple[Any, int, Any]]) -> bytes:
    """*items* pickled, as the parent loads them (what will not pickle as facts)."""
    try:
        data: bytes = dumps(items, PROTOCOL)
    except Exception:
        data = _dumps_fallback(items)
    return data


def _sender(out_fd: int) -> Callable[[list[tuple[Any, int, Any]]], None]:
    lock = __import__("_thread").allocate_lock()  # log records may come from any thread

    def send(items: list[tuple[Any, int, Any]]) -> None:
        data = _pack(items)
        stdout = sys.stdout
        if stdout is not None:
            stdout.flush()  # what the tasks printed comes out before their results
        with lock:
            if len(data) < 1 << 20:
                write_all(out_fd, frame(data))
            else:  # a big result is not copied once more to put its length in front
                write_all(out_fd, len(data).to_bytes(8, "big"))
                write_all(out_fd, data)

    return send


# -- logging: a task's records go to the caller's handlers, as from pool workers ---------


def _forward_logging(send: Callable[[list[tuple[Any, int, Any]]], None], level: int) -> None:
    """Send every record logged here to the caller (LOG items), once ``logging`` is imported.

    ``logging`` costs milliseconds to import, which a worker that never logs
    should not pay: a finder first on ``sys.meta_path`` waits for its import and
    then installs the handler.
    """
    module = sys.modules.get("logging")
    if module is not None:
        _install_forwarding(module, send, level)
        return
    sys.meta_path.insert(0, _LoggingImport(send, level))


class _LoggingImport:
    """Finds nothing itself; makes the first import of ``logging`` install forwarding."""

    def __init__(self, send: Callable[[list[tuple[Any, int, Any]]], None], level: int) -> None:
        self.send, self.level = send, level

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                spec.loader = _ThenForward(spec.loader, self.send, self.level)
                return spec
        return None


class _ThenForward:
    """``logging``'s own loader, which then installs the forwarding handler."""

    def __init__(
        self, loader: Any, send: Callable[[list[tuple[Any, int, Any]]], None], level: int
    ) -> None:
        self.loader, self.send, self.level = loader, send, level

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        _install_forwarding(module, self.send, self.level)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def _install_forwarding(
    logging: Any, send: Callable[[list[tuple[Any, int, Any]]], None], level: int
) -> None:
    """The root logger of this worker sends its records to the caller (at *level*)."""
    name = f"executors-subprocess-worker-{os.getpid()}"

    class Forward(logging.Handler):  # type: ignore[misc]
        def emit(self, record: Any) -> None:
            try:
                message = record.getMessage()
                if record.exc_info and not record.exc_text:
                    record.exc_text = logging.Formatter().formatException(record.exc_info)
                fields = dict(record.__dict__)
                fields.update(msg=message, args=None, exc_info=None, processName=name)
                fields.pop("message", None)
                for key, value in list(fields.items()):
                    try:
                        dumps(value, PROTOCOL)
                    except Exception:  # an extra= that will not pickle travels as its repr
                        fields[key] = repr(value)
                send([(None, LOG, logging.makeLogRecord(fields))])
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.handlers = [Forward()]
    root.setLevel(level)


def main(argv: list[str]) -> int:
    """Greet the parent, then serve tasks; leaving because the parent went away is quiet."""
    in_fd, out_fd, err_fd, state_fd = map(int, argv[:4])
    _leave_ctrl_c_to_the_caller()
    send = _sender(out_fd)
    try:
        hello = read_frame(io.FileIO(in_fd, "rb", closefd=False))
        if hello is None:
            return 0
        first, last, init, max_tasks, log_level = loads(hello)
        sys.path[:] = [*first, *(p for p in sys.path if p not in first), *last]
        _forward_logging(send, log_level)
        import mmap

        shared = memoryview(mmap.mmap(state_fd, STATE_SIZE))
        state, unsent = shared[: DOUBLES * 8].cast("d"), shared[DOUBLES * 8 :]
        os.close(state_fd)
        try:
            if init is not None:
                fn, initargs = loads(init)
                fn(*initargs)
        except BaseException as exc:
            send([(None, INIT_FAILED, pack(exc))])
            return 1
        if sys.stderr is not None:
            sys.stderr.flush()
        os.dup2(err_fd, 2)
        os.close(err_fd)
        send([(None, READY, (os.getpid(), sys.version))])
        serve(in_fd, state, unsent, max_tasks, run, send, _pack)
    except (BrokenPipeError, ConnectionResetError):
        pass
    _exit_early()
    return 0


def _leave_ctrl_c_to_the_caller() -> None:
    """A terminal's Ctrl-C reaches the workers too: the caller handles it, they go on.

    A handler that does nothing rather than SIG_IGN, which programs a task
    starts would inherit; ``_signal``, as ``signal`` imports ``enum``.
    """
    signals = __import__("_signal")
    signals.signal(signals.SIGINT, _ignore)


def _ignore(signum: int, frame: Any) -> None:
    pass


def _exit_early() -> None:
    """Leave at once when a normal exit would do nothing observable (saves a ms or two).

    That is: no atexit callback and no other thread (``threading`` never imported);
    the standard streams are flushed first. Otherwise the caller returns and the
    interpreter shuts down as usual.
    """
    import atexit

    callbacks = getattr(atexit, "_ncallbacks", None)  # CPython's; elsewhere: exit as usual
    if callbacks is None or callbacks() or "threading" in sys.modules:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:
        return
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
