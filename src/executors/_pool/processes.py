"""``pool`` workers: ``multiprocessing`` processes running the worker leaf's task loop."""

from __future__ import annotations

import threading
from typing import Any, Callable

from .._env import enter_worker
from .._proc.envelope import pack_outcomes, run_call, run_packed
from .._proc.forking import close_fds, ignore_sigint
from .._proc.logs import ForwardHandler, install_log_forwarding
from .._proc.wire import ERR, INIT_FAILED, LOG, frame, write_all
from ..serialization import get_pickler
from . import _subworker

__all__ = ["pool_worker"]


def pool_worker(  # noqa: PLR0917 - a Process target
    tasks: Any,
    results: Any,
    state: Any,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    max_tasks: int | None,
    serializer: str,
    log_level: int,
    close: list[int],
) -> None:
    """The main function of a ``pool`` worker process: :func:`executors._pool._subworker.serve`.

    *tasks* and *results* are the worker's ends of two pipes (Connections, used
    as raw descriptors with :func:`frame`); *state* is a shared array laid out
    as :mod:`executors._pool._subworker` describes. Log records go to the parent.
    """
    close_fds(close)
    ignore_sigint()
    enter_worker()  # no inherited $EXECUTORS_BACKEND: see executors._env
    pickler = get_pickler(serializer, main_by_value=False)
    out_fd = results.fileno()
    send_lock = threading.Lock()

    def send(items: list[tuple[Any, int, Any]]) -> None:
        data = frame(pack_outcomes(items, pickler))
        with send_lock:
            write_all(out_fd, data)

    install_log_forwarding(ForwardHandler(lambda record: send([(None, LOG, record)])), log_level)
    if initializer is not None:
        kind, value = run_call(initializer, initargs, {}, None)
        if kind == ERR:
            send([(None, INIT_FAILED, value)])
            return
    _subworker.serve(tasks.fileno(), state, max_tasks, run_packed, send)
