"""A child's side of one-child-per-task (``fork``, ``process``): run one task, write one frame.

The child runs the initializer (if any), then the task inside the caller's
context values, and writes its log records and outcome as one frame to the
pipe its parent reads (see :mod:`executors._proc.runner`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable

from .._env import enter_worker
from ..serialization import Dumps, get_pickler
from .envelope import Outcome, pack_outcomes, run_call, run_packed
from .forking import flush_std_streams, guard_child, ignore_sigint
from .logs import ForwardHandler, install_log_forwarding
from .wire import ERR, INIT_FAILED, OK, Buffers, buffers_frame, frame_header, write_all

__all__ = ["process_child", "run_forked", "run_in_child"]

_PIPE_SIZE, _BIG_PIPE = 1 << 16, 1 << 20  # a pipe's default size, and the one a big result gets


def run_in_child(  # noqa: PLR0917 - called positionally by the process backend's children
    out_fd: int,
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None, Any] | bytes,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    serializer: str,
    log_level: int,
) -> None:
    """Run one task in a fresh child; write its log records and outcome as one frame.

    *call* is ``(fn, args, kwargs, values)`` when the child was forked (nothing
    was pickled, so lambdas work) or the bytes :func:`pack_call` made.
    """
    ignore_sigint()
    handler = ForwardHandler()
    install_log_forwarding(handler, log_level)
    pickler = get_pickler(serializer, main_by_value=False)  # results: as the parent can load
    run_forked(out_fd, call, initializer, initargs, pickler, handler)


def run_forked(  # noqa: PLR0917 - called positionally by both child launchers
    out_fd: int,
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any] | None, Any] | bytes,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    pickler: Dumps,
    handler: ForwardHandler,
) -> None:
    """:func:`run_in_child`, for a child that ``os.fork()`` made from the caller's thread.

    A forked child pays for each page it writes first (copy-on-write, several
    microseconds each), and those faults are most of a small task's cost. So
    this does as little as it can: the caller made *handler* and *pickler*,
    and blocked SIGINT (the child inherits the mask); the root logger keeps
    the caller's level and gets only *handler*.
    """
    guard_child()  # the caller's death, or this child's, takes what the task starts
    items: list[tuple[Any, int, Any]] = []
    handler.sink = items
    logging.root.handlers = [handler]
    enter_worker()  # no inherited $EXECUTORS_BACKEND: see executors._env
    outcome: Outcome = (OK, None)
    if initializer is not None:
        outcome = run_call(initializer, initargs, None, None)
        if outcome[0] == ERR:
            outcome = (INIT_FAILED, outcome[1])
    if outcome[0] == OK:
        outcome = run_packed(call) if isinstance(call, bytes) else run_call(*call)
    items.append((None, *outcome))
    flush_std_streams()
    buffers = Buffers()
    try:  # a big array goes out of band: into the pipe as it is (see wire.buffers_frame)
        data = pickler(items, buffer_callback=buffers)  # type: ignore[call-arg]
    except Exception:
        buffers.clear()
        data = pack_outcomes(items, pickler)  # (it words what will not pickle)
    parts = buffers_frame(data, buffers) if buffers else [frame_header(data), data]
    if sum(map(len, parts)) > _PIPE_SIZE:  # fewer, bigger reads for the parent (Linux): ~2x faster
        import fcntl  # (POSIX; Linux has the option)

        set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        with contextlib.suppress(OSError):
            if set_pipe_size is not None:
                fcntl.fcntl(out_fd, set_pipe_size, _BIG_PIPE)
    for part in parts:  # apart: a big result is not copied into a frame
        write_all(out_fd, part)


def process_child(conn: Any, *args: Any) -> None:
    """The target of a ``process`` backend child: :func:`run_in_child` on *conn*'s descriptor."""
    run_in_child(conn.fileno(), *args)
