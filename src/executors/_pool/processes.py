"""``pool`` workers: ``multiprocessing`` processes running the worker leaf's task loop.

:class:`ProcessLauncher` starts them for the engine (in the parent);
:func:`pool_worker` is their main function (in the child).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
from typing import Any, Callable

from .._env import enter_worker
from .._proc.envelope import pack_outcomes, run_call, run_packed
from .._proc.forking import close_fds, forking, ignore_sigint
from .._proc.logs import ForwardHandler, install_log_forwarding
from .._proc.wire import ERR, INIT_FAILED, LOG, frame, write_all
from ..serialization import get_pickler
from . import _subworker
from .launch import Launcher, Started

__all__ = ["ProcessLauncher", "pool_worker"]


def pool_worker(  # noqa: PLR0917 - a Process target
    tasks: Any,
    results: Any,
    state: Any,
    unsent: Any,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    max_tasks: int | None,
    serializer: str,
    log_level: int,
    close: list[int],
) -> None:
    """The main function of a ``pool`` worker process: :func:`executors._pool._subworker.serve`.

    *tasks* and *results* are the worker's ends of two pipes (Connections, used
    as raw descriptors with :func:`frame`); *state* and *unsent* are shared arrays
    (doubles, bytes) as :mod:`executors._pool._subworker` describes. Log records go
    to the parent.
    """
    close_fds(close)
    ignore_sigint()
    enter_worker()  # no inherited $EXECUTORS_BACKEND: see executors._env
    pickler = get_pickler(serializer, main_by_value=False)
    plain_first = serializer != "cloudpickle"
    out_fd = results.fileno()
    send_lock = threading.Lock()  # held while writing a frame: log records come from any thread

    def pack(items: list[tuple[Any, int, Any]]) -> bytes:
        if plain_first:  # what pickler would try first, without its Python layers
            try:
                data = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
            except Exception:
                pass
            else:
                return data
        return pack_outcomes(items, pickler)

    def send(items: list[tuple[Any, int, Any]]) -> None:
        data = frame(pack(items))
        with send_lock:
            write_all(out_fd, data)

    install_log_forwarding(ForwardHandler(lambda record: send([(None, LOG, record)])), log_level)
    if initializer is not None:
        kind, value = run_call(initializer, initargs, {}, None)
        if kind == ERR:
            send([(None, INIT_FAILED, value)])
            return
    area = memoryview(unsent).cast("B")
    _subworker.serve(tasks.fileno(), state, area, max_tasks, run_packed, send, pack)


class ProcessLauncher(Launcher):
    """Starts ``pool`` workers: ``multiprocessing`` processes running :func:`pool_worker`."""

    def __init__(
        self,
        start_method: str,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        max_tasks: int | None,
        serializer: str,
    ) -> None:
        self.start_method = start_method
        self.ctx: Any = multiprocessing.get_context(start_method)
        self.initializer, self.initargs = initializer, initargs
        self.max_tasks, self.serializer = max_tasks, serializer

    def start(self, name: str, parent_fds: Callable[[], list[int]]) -> Started:
        """Start a process called *name* on two new pipes; a forked one closes *parent_fds*."""
        task_r, task_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            state = self.ctx.RawArray("d", _subworker.DOUBLES)
            unsent = self.ctx.RawArray("c", _subworker.UNSENT_SIZE)
            # Only a forked child holds copies of our descriptors. Elsewhere these numbers
            # name unrelated descriptors of the child (its own result pipe, say): EBADF.
            close = [*parent_fds(), task_w, res_r] if self.start_method == "fork" else []
            child_ends = (
                multiprocessing.connection.Connection(task_r, writable=False),
                multiprocessing.connection.Connection(res_w, readable=False),
            )
        except BaseException:
            for fd in (task_r, task_w, res_r, res_w):
                os.close(fd)
            raise
        args = (
            *child_ends,
            state,
            unsent,
            self.initializer,
            self.initargs,
            self.max_tasks,
            self.serializer,
            logging.getLogger().getEffectiveLevel(),
            close,
        )
        process = self.ctx.Process(target=pool_worker, args=args, name=name)
        try:
            with forking(self.start_method):
                process.start()
        except BaseException:
            for fd in (task_w, res_r):
                os.close(fd)
            raise
        finally:
            for conn in child_ends:
                conn.close()
        return Started(process, state, unsent, task_w, res_r, None)
