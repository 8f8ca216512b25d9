"""Log records from a child to the parent: a handler in the child, a replay in the parent."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from .wire import LOG

__all__ = ["ForwardHandler", "install_log_forwarding", "replay_log"]


class ForwardHandler(logging.Handler):
    """Keeps a worker's records for the parent, where :func:`replay_log` hands them on.

    Records go to ``sink`` (a list of ``(None, LOG, record)`` items the worker
    sends with its outcomes) or, when ``send`` is given, straight to it.
    """

    def __init__(self, send: Callable[[logging.LogRecord], None] | None = None) -> None:
        super().__init__()
        self.send = send
        self.sink: list[tuple[Any, int, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Send or keep a copy of *record* whose message is formatted (its args may not pickle)."""
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            copy = logging.makeLogRecord(record.__dict__)
            copy.msg, copy.args, copy.exc_info = message, None, None
            copy.__dict__.pop("message", None)
            if copy.processName == "MainProcess":  # a fork child: not the caller, say so
                copy.processName = f"executors-worker-{os.getpid()}"
            if self.send is not None:
                self.send(copy)
            else:
                self.sink.append((None, LOG, copy))
        except Exception:
            self.handleError(record)


def install_log_forwarding(handler: ForwardHandler, level: int) -> None:
    """In a worker: route every record of the root logger to *handler*, at *level*."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def replay_log(record: logging.LogRecord) -> None:
    """In the parent: pass a worker's record to the handlers of its logger.

    A record that did not load (see :func:`executors.serialization.load_outcomes`)
    is dropped; a handler that raises does not stop the caller's manager thread.
    """
    if not isinstance(record, logging.LogRecord):
        return
    try:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
    except BaseException:  # e.g. SystemExit from a handler; not ours to die of
        _log.exception("a handler failed on a worker's log record")


def outcome_failed(task: Any) -> None:
    """In a manager thread: setting *task*'s outcome raised (a done-callback, say); log it.

    Whatever one task's outcome does in the caller, the manager serves the others.
    """
    _log.exception("handling the outcome of %s raised", getattr(task, "label", None) or task)


_log = logging.getLogger("executors")
