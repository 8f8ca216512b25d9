"""Worker interpreters: fresh ``python`` processes that run pickled tasks sent over pipes.

The parent's end of the protocol in :mod:`executors._subworker`. A backend
creates an :class:`Interpreter` (which launches the process and greets it at
once, without waiting), calls :meth:`~Interpreter.wait_ready` before the first
task, then :meth:`~Interpreter.send` and :meth:`~Interpreter.receive` per task.
Start-up failures raise :class:`~executors.errors.BrokenExecutor`, a worker that
dies raises :class:`~executors.errors.WorkerCrashed`, one that overruns its
time :class:`~executors.errors.TaskTimeout`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import _subworker
from .errors import BrokenExecutor, InvalidOption, TaskTimeout, WorkerCrashed
from .serialization import PackedException, describe, unpack_exception

__all__ = ["PACKAGE_PARENT", "Interpreter", "resolve_python"]

PACKAGE_PARENT = str(Path(_subworker.__file__).resolve().parent.parent)


@functools.lru_cache(maxsize=1)
def _worker_source() -> str:
    """The ``-c`` program: import the worker loop from its own file, not via the package.

    ``executors._subworker`` is loaded as the top-level module ``_subworker``
    (from its cached bytecode), so neither the ``executors`` package nor a
    compile of the loop is paid at each start; the directory leaves sys.path at once.
    """
    folder = os.path.dirname(os.path.abspath(_subworker.__file__ or ""))
    return (
        f"import sys; sys.path.insert(0, {folder!r}); import _subworker; del sys.path[0]; "
        "sys.exit(_subworker.main(sys.argv[1:]))"
    )


def resolve_python(python: str | os.PathLike[str] | None) -> str:
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


def _status(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"died with {signal.Signals(-code).name}({code})"
        except ValueError:
            return f"died with signal {-code}"
    return f"exited with status {code}"


def _readable(stream: Any, timeout: float) -> bool:
    """Wait until *stream* has data or end-of-file (poll: select() fails past fd 1023)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(stream, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    return bool(select.select([stream], [], [], timeout)[0])  # pragma: no cover - no poll


class Interpreter:
    """The parent's end of one worker interpreter.

    Creating it launches the interpreter and sends the greeting without waiting;
    :meth:`wait_ready` then reads the answer, so a spare can boot while another
    worker runs a task.
    """

    def __init__(self, python: str, hello: bytes) -> None:
        task_r, task_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            err = os.dup(2)  # the worker's stderr once it is ready: the caller's
        except OSError:  # the caller has no stderr (a daemon)
            err = os.open(os.devnull, os.O_WRONLY)
        try:
            self.proc = subprocess.Popen(
                [python, "-c", _worker_source(), str(task_r), str(reply_w), str(err)],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(task_r, reply_w, err),
            )
        except OSError as exc:
            os.close(task_w)
            os.close(reply_r)
            raise BrokenExecutor(
                f"cannot start worker interpreter {python!r}: {exc}; pass python= an "
                "installed Python 3.9+"
            ) from exc
        finally:
            for fd in (task_r, reply_w, err):
                os.close(fd)
        self.python = python
        self.pid = self.proc.pid
        self.tasks = 0
        self.ready = False
        self.inbox = os.fdopen(reply_r, "rb")
        self.outbox = os.fdopen(task_w, "wb")
        with contextlib.suppress(OSError):  # it died at once: the answer is end-of-file
            _subworker._send(self.outbox, hello)

    def wait_ready(self, start_timeout: float) -> None:
        """Read the worker's answer to the greeting; raise BrokenExecutor if it failed."""
        if self.ready:
            return
        try:
            self._greet(start_timeout)
        except BaseException:
            self.close(kill=True)
            raise
        self.ready = True

    def _greet(self, start_timeout: float) -> None:
        python = self.python
        if not _readable(self.inbox, start_timeout):
            raise BrokenExecutor(
                f"worker interpreter {python!r} (pid {self.pid}) was not ready after "
                f"{start_timeout:g} s; raise start_timeout= if it is just slow to start"
            )
        data = _subworker._recv(self.inbox)
        if data is None:
            code = self.proc.wait()
            assert self.proc.stderr is not None
            tail = self.proc.stderr.read()[-2000:].decode("utf-8", "replace").strip()
            raise BrokenExecutor(
                f"worker interpreter {python!r} {_status(code)} before it was ready"
                + (f"; it said:\n{tail}\n" if tail else "; ")
                + "check that python= names a working Python 3.9+ interpreter"
            )
        message = pickle.loads(data)
        if message[0] == "init_error":
            cause = unpack_exception(PackedException(*message[1]))
            error = BrokenExecutor(
                f"the initializer failed in worker interpreter {python!r} with "
                f"{type(cause).__name__}: {cause}; no task can run on this executor"
            )
            raise error from cause
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def send(self, payload: bytes) -> bool:
        """Send one pickled task; False if the worker was already gone (it never saw it)."""
        self.tasks += 1
        try:
            _subworker._send(self.outbox, payload)
        except OSError:
            return False
        return True

    def receive(self, fn: object, timeout: float | None) -> tuple[str, Any]:
        """The answer to the task *fn* sent: ``("ok", result)`` or ``("err", packed)``."""
        if timeout is not None and not _readable(self.inbox, timeout):
            self.close(kill=True)
            raise TaskTimeout(
                f"{describe(fn)}() ran longer than task_timeout={timeout:g} s, so its worker "
                f"{self.pid} was killed; the executor starts a new one for the next task"
            )
        try:
            data = _subworker._recv(self.inbox)
        except OSError:
            data = None
        if data is None:
            code = self.close()
            raise WorkerCrashed(
                f"worker {self.pid} {_status(code)} while running {describe(fn)}(); the executor "
                "starts a new worker for the next task and is still usable",
                exitcode=code,
                pid=self.pid,
            )
        reply: tuple[str, Any] = pickle.loads(data)
        return reply

    def release(self) -> None:
        """Close the pipes, so the worker exits; :meth:`close` then reaps it."""
        for stream in (self.outbox, self.inbox, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def close(self, kill: bool = False) -> int:
        """Release the worker and reap it; its exit status."""
        self.release()
        if kill:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
