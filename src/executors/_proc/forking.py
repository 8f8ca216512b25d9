"""Starting a child safely: one fork at a time, no fork warning, and what a child does first."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "FORK_LOCK",
    "PARENT_POLL",
    "ForkRefused",
    "close_fds",
    "close_process",
    "flush_std_streams",
    "forking",
    "guard_child",
    "ignore_sigint",
    "refuse_fork_with_subinterpreters",
    "subinterpreters",
]

#: Held while any of our backends creates a child (fork, ``Process.start``, ``Popen``):
#: a pipe made for one child is closed in the parent before another fork can copy it
#: into a second child. Guards no data; it only serializes child creation.
FORK_LOCK = threading.Lock()
_WARNS_ON_FORK = sys.version_info >= (3, 12)


def _unlock_in_child() -> None:
    """A child forked while FORK_LOCK was held (by the forking thread itself, or another)
    gets it free: a task there may create executors of its own (nesting)."""
    if FORK_LOCK.locked():
        FORK_LOCK.release()


def _drop_import_locks_in_child() -> None:
    """A child forked while another thread held a module's import lock gets that lock
    dropped: its holder does not exist in the child, so it would never be released.

    This hung ``pool`` workers on PyPy, whose ``import`` (pickle's too, for every
    function it pickles or loads by name) takes the module's lock even when the module
    is loaded: a worker forked by the manager thread while the caller's thread pickled a
    task waited for ever in its first unpickling. CPython skips that lock for a loaded
    module (3.11 and later for ``importlib.import_module`` too), so there only a fork
    in the middle of a real import could hit it. A new lock is made on the next import.
    """
    locks: Any = getattr(importlib._bootstrap, "_module_locks", None)
    if not isinstance(locks, dict):
        return
    me = threading.get_ident()
    for name, ref in list(locks.items()):
        lock = ref()
        owner = getattr(lock, "owner", None)
        # Held by a thread that is gone, or caught inside acquire() or release(), whose
        # inner lock a vanished thread holds (this thread is in fork, not in there).
        gone = owner not in (None, me)
        caught = _locked(getattr(lock, "lock", None))
        waking = owner is None and _locked(getattr(lock, "wakeup", None))
        if gone or caught or waking:
            del locks[name]


def _locked(lock: Any) -> bool:
    locked = getattr(lock, "locked", None)
    return bool(locked()) if callable(locked) else False


def _forget_parents_children() -> None:
    """A child forked from a program with ``multiprocessing`` children (a pool's workers,
    ours or the standard library's) drops them from ``multiprocessing``'s records: at a
    normal exit it would join them, and fail ("can only join a child process") on each.
    A child started by ``multiprocessing`` itself does this in its bootstrap already."""
    module = sys.modules.get("multiprocessing.process")
    children: Any = getattr(module, "_children", None)
    if isinstance(children, set):
        me = os.getpid()
        children.difference_update([p for p in children if getattr(p, "_parent_pid", me) != me])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unlock_in_child)
    os.register_at_fork(after_in_child=_drop_import_locks_in_child)
    os.register_at_fork(after_in_child=_forget_parents_children)


def subinterpreters() -> int:
    """How many subinterpreters live in this process (our ``interpreter`` backend's, or any).

    Only asks a module that is already loaded: a process that never made one pays nothing.
    """
    for name in ("_interpreters", "_xxsubinterpreters"):
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                return max(0, len(module.list_all()) - 1)  # the main interpreter is listed
    return 0


class ForkRefused(RuntimeError):
    """A fork that would crash its child, refused in the parent with the way out."""


def refuse_fork_with_subinterpreters() -> None:
    """Refuse to fork while subinterpreters exist: CPython's child clears them without a
    thread state and dies with "Fatal Python error: PyThreadState_Get" (python/cpython#101437;
    3.12 and 3.13), or hangs, before any of our code runs there.

    :raises ForkRefused: naming the cause and the ways out.
    """
    count = subinterpreters()
    if count:
        raise ForkRefused(
            f"cannot fork while {count} subinterpreter(s) exist in this process: CPython's "
            "forked child crashes clearing them (python/cpython#101437). Shut the "
            "'interpreter' executor down before forking, or start workers without fork: the "
            "'subprocess' backend, or 'pool' / 'process' with start_method='forkserver' or "
            "'spawn'"
        )


@contextlib.contextmanager
def forking(start_method: str = "fork") -> Iterator[None]:
    """Hold :data:`FORK_LOCK`; silence Python 3.12+'s warning about forking with threads.

    Our own threads (a pool's manager) never run in the child and hold no lock
    the child needs; see the "fork safety" section of the ``pool`` docs.

    :raises ForkRefused: for a fork while subinterpreters exist (see
        :func:`refuse_fork_with_subinterpreters`); other start methods do not fork here.
    """
    if start_method == "fork":
        refuse_fork_with_subinterpreters()
    pid = os.getpid()
    FORK_LOCK.acquire()
    try:
        if not _WARNS_ON_FORK:
            yield
            return
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*multi-threaded, use of fork", category=DeprecationWarning
            )
            yield
    finally:
        if os.getpid() == pid:  # a child that comes back here got the lock free already
            FORK_LOCK.release()


def ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which cancels and shuts down in order."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def flush_std_streams() -> None:
    """Flush stdout/stderr before a forked child leaves with ``os._exit``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def close_fds(fds: list[int]) -> None:
    """Close inherited descriptors a child must not hold (siblings' pipe ends)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


#: Seconds between a child's checks that its parent (the caller) is still alive.
PARENT_POLL = 0.2


def guard_child() -> None:
    """Make this child lead a process group, and die with its parent, even mid-task.

    What its task starts joins the group, so the parent can kill that too when the
    child dies mid-task (:func:`executors.command.kill_group`). A thread checks
    every :data:`PARENT_POLL` seconds that the parent is still there; once it is
    not (the caller was SIGKILLed), it kills the group, the child with it. The
    pool engine's worker leaf does the same (``_pool._subworker.guard``).
    """
    with contextlib.suppress(OSError):  # a session leader already leads a group
        os.setpgid(0, 0)
    threading.Thread(
        target=_watch_parent, args=(os.getppid(),), name="executors-parent-watch", daemon=True
    ).start()


def _watch_parent(ppid: int) -> None:  # pragma: no cover - runs until the process dies
    while os.getppid() == ppid:
        time.sleep(PARENT_POLL)
    if os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def close_process(process: Any) -> None:
    """``process.close()``, never while another thread starts a ``multiprocessing`` child.

    ``Process.start()`` polls every child in multiprocessing's global list, and
    ``close()`` sets a child's handle to None before taking it off that list: a
    start in another thread between the two fails with AttributeError.
    """
    with FORK_LOCK, contextlib.suppress(ValueError):
        process.close()
