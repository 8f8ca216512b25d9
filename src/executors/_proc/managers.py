"""The manager threads of the fork, process, pool and subprocess engines: stopped at exit."""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from typing import Any

__all__ = ["release_manager", "track_manager"]


_managers: weakref.WeakSet[Any] = weakref.WeakSet()

if hasattr(os, "register_at_fork"):  # a child has none of its parent's manager threads
    os.register_at_fork(after_in_child=_managers.clear)


def track_manager(manager: Any) -> None:
    """Stop *manager* at interpreter exit if it is still running then.

    A manager has ``shutdown(cancel_futures=...)``, a ``thread``, a ``selector`` and a
    wake pipe (``wake_r``, ``wake_w``).
    """
    _managers.add(manager)


def release_manager(manager: Any) -> None:
    """Close *manager*'s selector and wake pipe, once its thread is done with them."""
    with contextlib.suppress(Exception):
        manager.selector.close()
    for fd in (manager.wake_r, manager.wake_w):
        with contextlib.suppress(OSError):
            os.close(fd)
    manager.wake_r = manager.wake_w = -1
    _managers.discard(manager)


@atexit.register
def _stop_managers() -> None:
    for manager in list(_managers):
        manager.shutdown(cancel_futures=True)
        manager.thread.join(10.0)
