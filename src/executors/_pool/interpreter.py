"""Worker interpreters for the ``pool`` engine: fresh ``python`` processes started by Popen.

:class:`InterpreterLauncher` is what :class:`executors._pool.engine.Pool` calls (instead of
``multiprocessing.Process``) to start a worker: ``python -c <import
_subworker>`` (see :mod:`executors._pool._subworker` for its side of the protocol),
with the two pipes, the caller's stderr and a shared-memory file (a memfd where
the platform has one) passed by descriptor. :class:`Child` gives the engine
the parts of a ``multiprocessing.Process`` it uses: ``pid``, ``sentinel`` (a
pidfd, or None: then the results pipe closing tells the worker ended),
``join``, ``exitcode``, ``kill``, ``close``.

A worker that dies or hangs before it said it is ready breaks the executor with
one :class:`~executors.errors.BrokenExecutor` naming the interpreter and what it
printed: no task could run on such an interpreter.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import marshal
import mmap
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from .._env import worker_environ
from .._proc.exits import describe_exit
from .._proc.forking import FORK_LOCK
from .._runtime import linux_only
from ..errors import BrokenExecutor, InvalidOption
from . import _subworker
from .launch import Launcher, Started

__all__ = ["PACKAGE_PARENT", "Child", "InterpreterLauncher", "resolve_python"]

PACKAGE_PARENT = str(Path(_subworker.__file__).resolve().parents[2])  # holds executors/


@functools.lru_cache(maxsize=1)
def _worker_source() -> str:
    """The ``-c`` program for any interpreter: import the worker loop from its own file.

    ``executors._pool._subworker`` is loaded as the top-level module ``_subworker``,
    so the ``executors`` package is not imported at each start; the directory
    leaves sys.path at once.
    """
    folder = os.path.dirname(os.path.abspath(_subworker.__file__ or ""))
    return (
        f"import sys; sys.path.insert(0, {folder!r}); import _subworker; del sys.path[0]; "
        "sys.exit(_subworker.main(sys.argv[1:]))"
    )


@functools.lru_cache(maxsize=1)
def _own_source() -> tuple[str, bytes]:
    """The ``-c`` program for the caller's own interpreter, and the code it runs.

    The worker loop's code object, compiled here once, is marshalled into the
    worker's state file after the state (STATE ``LENGTH`` are its last two
    arguments): a worker compiles nothing, even where no ``.pyc`` is written
    (``PYTHONDONTWRITEBYTECODE``), and reads no file.
    """
    path = os.path.abspath(_subworker.__file__ or "")
    with open(path, encoding="utf-8") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    program = (
        "import sys, os, marshal; m = type(sys)('_subworker'); "
        f"m.__file__ = {path!r}; sys.modules['_subworker'] = m; "
        "exec(marshal.loads(os.pread(int(sys.argv[4]), int(sys.argv[5]), "
        f"{_subworker.STATE_SIZE})), m.__dict__); sys.exit(m.main(sys.argv[1:]))"
    )
    return program, marshal.dumps(code)


def resolve_python(python: str | os.PathLike[str] | None) -> str:
    """The interpreter to run: the caller's, a path, a name on PATH, or a venv's python."""
    if python is None:
        return sys.executable
    given = os.fspath(python)
    path = Path(given)
    if path.is_dir():  # a virtual environment
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.exists():
                return str(candidate)
    elif os.sep not in given and not path.exists():
        found = shutil.which(given)
        if found:
            return found
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    raise InvalidOption(
        f"python must be a Python interpreter (a path, a name on PATH, or a virtual "
        f"environment directory), got {given!r}, which is not an executable file; "
        f"e.g. python={sys.executable!r}"
    )


def _shared_state(code: bytes) -> tuple[int, memoryview[float], memoryview[int]]:
    """A descriptor of zeroed shared memory for one worker's state (then *code*), and views
    of its doubles and of its unsent results."""
    try:
        if not linux_only("memfd_create"):
            raise OSError("EXECUTORS_PORTABLE: not using memfd_create")
        fd = os.memfd_create("executors-worker-state")
    except (AttributeError, OSError):  # not Linux: an unlinked temporary file
        import tempfile

        fd, path = tempfile.mkstemp(prefix="executors-state-")
        os.unlink(path)
    try:
        os.ftruncate(fd, _subworker.STATE_SIZE)
        if code:
            os.pwrite(fd, code, _subworker.STATE_SIZE)
        shared = memoryview(mmap.mmap(fd, _subworker.STATE_SIZE))
    except BaseException:
        os.close(fd)
        raise
    split = _subworker.DOUBLES * 8
    return fd, shared[:split].cast("d"), shared[split:]


class Child:
    """A worker interpreter's :class:`subprocess.Popen`, as the pool engine sees a process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.sentinel: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)  # Linux 5.3+, Python 3.9+
        if not linux_only("pidfd_open"):
            pidfd_open = None  # the pool engine then watches the results pipe's end
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self.sentinel = pidfd_open(proc.pid)

    @property
    def exitcode(self) -> int | None:
        """None while it runs; negative N when signal N killed it (as multiprocessing says)."""
        return self.proc.poll()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def stderr_tail(self) -> str:
        """The last lines it wrote to stderr before it was ready (it has exited)."""
        stream = self.proc.stderr
        if stream is None or stream.closed:
            return ""
        os.set_blocking(stream.fileno(), False)
        try:
            data = stream.read() or b""
        except OSError:
            data = b""
        return data[-2000:].decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class InterpreterLauncher(Launcher):
    """Starts worker interpreters for :class:`executors._pool.engine.Pool`.

    They start slowly (a fresh ``python``), so they greet when ready and a
    retiring worker's successor is started ahead (see :class:`.launch.Launcher`).

    :param python: the interpreter's path (see :func:`resolve_python`).
    :param init: the pickled ``(initializer, initargs)``, or None.
    :param max_tasks: tasks a worker runs before it exits (None: no limit).
    :param start_timeout: seconds a worker may take to say it is ready.
    """

    def __init__(
        self, python: str, init: bytes | None, max_tasks: int | None, start_timeout: float
    ) -> None:
        self.python = python
        self.start_timeout = start_timeout
        self.greets = self.starts_ahead = True
        self.owner = "executor"
        # the same binary (a venv's python may link to it) runs the caller's compiled loop
        binary = os.path.realpath(python) == os.path.realpath(sys.executable)
        self.program, self.code = _own_source() if binary else (_worker_source(), b"")
        same = os.path.abspath(python) == os.path.abspath(sys.executable)
        # the caller's sys.path as it is now, so that workers import what the caller can;
        # another interpreter keeps its own and gets executors at the end
        first, last = (list(sys.path), []) if same else ([], [PACKAGE_PARENT])
        # records a task logs go to the caller's handlers, at the caller's level
        level = logging.getLogger().getEffectiveLevel()
        self.hello = pickle.dumps((first, last, init, max_tasks, level), _subworker.PROTOCOL)

    def start(self, name: str, parent_fds: Callable[[], list[int]]) -> Started:
        """Start one worker on two new pipes (*name* and *parent_fds* are not needed)."""
        with FORK_LOCK:  # no fork elsewhere copies the child's ends meanwhile
            task_r, task_w = os.pipe()
            res_r, res_w = os.pipe()
            try:
                child, state, unsent = self._popen(task_r, res_w)
            except BaseException:
                for fd in (task_w, res_r):
                    os.close(fd)
                raise
            finally:
                for fd in (task_r, res_w):
                    os.close(fd)
        return Started(child, state, unsent, task_w, res_r, self.hello)

    def _popen(self, task_r: int, res_w: int) -> tuple[Child, memoryview[float], memoryview[int]]:
        """Start one worker reading tasks from *task_r* and writing results to *res_w*."""
        state_fd, state, unsent = _shared_state(self.code)
        try:
            err = os.dup(2)  # the worker's stderr once it is ready: the caller's
        except OSError:  # the caller has no stderr (a daemon)
            err = os.open(os.devnull, os.O_WRONLY)
        fds = (task_r, res_w, err, state_fd)
        try:
            proc = subprocess.Popen(
                [self.python, "-c", self.program, *map(str, fds), str(len(self.code))],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                env=worker_environ(),  # no $EXECUTORS_BACKEND: see executors._env
            )
        except OSError as exc:
            raise BrokenExecutor(
                f"cannot start worker interpreter {self.python!r}: {exc}; pass python= an "
                "installed Python 3.9+"
            ) from exc
        finally:
            os.close(err)
            os.close(state_fd)
        return Child(proc), state, unsent

    def on_ready(self, child: Child) -> None:
        """It started: its stderr is the caller's now; close the start-up pipe."""
        if child.proc.stderr is not None:
            child.proc.stderr.close()

    def start_failed(self, child: Child, exitcode: int | None) -> BrokenExecutor:
        """The error for a worker that ended before it was ready."""
        tail = child.stderr_tail()
        return BrokenExecutor(
            f"worker interpreter {self.python!r} {describe_exit(exitcode)} before it was ready"
            + (f"; it said:\n{tail}\n" if tail else "; ")
            + "check that python= names a working Python 3.9+ interpreter"
        )

    def start_timed_out(self, child: Child) -> BrokenExecutor:
        """The error for a worker that was not ready after ``start_timeout``."""
        return BrokenExecutor(
            f"worker interpreter {self.python!r} (pid {child.pid}) was not ready after "
            f"{self.start_timeout:g} s; raise start_timeout= if it is just slow to start"
        )
