"""The manager threads of the fork, process, pool and subprocess engines: how they wake, and exit.

A manager thread waits in ``select`` on its children's pipes and on a
:class:`Wakeup`, the pipe any other thread writes a byte to when it has news
(a submit, a shutdown, a freed slot). Managers still running at interpreter
exit are shut down (``cancel_futures=True``) and joined.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import sys
import weakref
from typing import Any

__all__ = ["Wakeup", "refused_at_exit", "release_manager", "track_manager"]


class Wakeup:
    """A manager thread's selector, watching the read end of a pipe other threads wake it by.

    The pipe is registered with ``data=None``; when ``select`` returns that key the
    manager calls :meth:`drain`. Both ends are non-blocking: a full pipe already
    means "wake up", so a write that would block is dropped.
    """

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.r, selectors.EVENT_READ, None)

    def wake(self) -> None:
        """Make the manager's ``select`` return (from any thread)."""
        with contextlib.suppress(OSError):
            os.write(self.w, b"\0")

    def drain(self) -> None:
        """Empty the pipe (in the manager thread, once ``select`` returned its key)."""
        with contextlib.suppress(OSError):
            os.read(self.r, 4096)

    def fds(self) -> list[int]:
        """Both ends: descriptors a forked child must close."""
        return [self.r, self.w]

    def close(self) -> None:
        """Close the selector and the pipe, once the manager thread is done with them."""
        with contextlib.suppress(Exception):
            self.selector.close()
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.r = self.w = -1


_managers: weakref.WeakSet[Any] = weakref.WeakSet()

if hasattr(os, "register_at_fork"):  # a child has none of its parent's manager threads
    os.register_at_fork(after_in_child=_managers.clear)


def track_manager(manager: Any) -> None:
    """Stop *manager* at interpreter exit if it is still running then.

    A manager has ``shutdown(cancel_futures=...)``, a ``thread`` and a :class:`Wakeup`
    (``wakeup``).
    """
    _managers.add(manager)


def release_manager(manager: Any) -> None:
    """Close *manager*'s :class:`Wakeup`, once its thread is done with it."""
    manager.wakeup.close()
    _managers.discard(manager)


#: Per backend name: tasks that could not start while the interpreter shut down.
_refused: dict[str, int] = {}


def refused_at_exit(exc: BaseException, backend: str) -> BaseException:
    """*exc*, or a clearer error if it is Python refusing a fork or thread at exit.

    Python 3.12 refuses new processes and threads once the interpreter shuts down, so
    a task still queued then cannot start. It is counted, and reported on stderr at
    exit (nobody may be left to read its future).
    """
    text = str(exc)
    if not isinstance(exc, RuntimeError) or "at interpreter shutdown" not in text:
        return exc
    _refused[backend] = _refused.get(backend, 0) + 1
    return RuntimeError(
        f"this task could not start: the program ended first, and Python {_version()} "
        f"cannot start a process or thread while it shuts down ({text}); wait for the "
        "tasks before the program ends: ex.shutdown(), or `with get_executor() as ex:`"
    )


def _version() -> str:
    return ".".join(map(str, sys.version_info[:2]))


def report_refused() -> None:
    """Say on stderr which tasks never ran because the program ended first."""
    for backend, count in sorted(_refused.items()):
        sys.stderr.write(
            f"executors: {count} task(s) submitted to {backend} never ran: "
            f"the program ended first, and Python {_version()} cannot start processes or "
            "threads while it shuts down. Wait for them before the program ends: "
            "ex.shutdown(), or `with get_executor() as ex:`.\n"
        )
    _refused.clear()


@atexit.register
def _stop_managers() -> None:
    # As concurrent.futures: at exit, every task submitted and not cancelled still runs.
    for manager in list(_managers):
        manager.shutdown(cancel_futures=False)
    for manager in list(_managers):
        manager.thread.join()
    report_refused()
