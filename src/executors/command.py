"""Command tasks: run an external program as a task, on any backend.

The classic subprocess programs (``call([...])`` for an exit code,
``Popen(...).communicate(input)`` for stdin, stdout and stderr) as one picklable
function, :func:`run_command`, and its value-object form, :class:`Command`.
Submit either to any executor; the ``subprocess`` backend runs them directly,
with no Python worker in between::

    >>> import sys
    >>> from executors import get_executor, run_command
    >>> with get_executor("thread") as ex:
    ...     f = ex.submit(run_command, [sys.executable, "-c", "print(input().upper())"],
    ...                   input="python.org\\n")
    ...     r = f.result()
    >>> r.returncode, r.stdout
    (0, b'PYTHON.ORG\\n')

What is guaranteed, on every backend:

* no shell unless ``shell=True`` is asked for; the command's stdin is empty
  unless ``input`` is given (it never reads the caller's terminal);
* stdout and stderr of any size are read at once, without deadlock;
* ``timeout`` kills the command's whole process group, so its own children die
  with it, and raises :class:`CommandTimeout`;
* ``check=True`` turns a non-zero exit into :class:`CommandError`, which shows
  the tail of both outputs;
* a missing program raises :class:`FileNotFoundError` naming it and the PATH searched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Union

from ._runtime import linux_only
from .errors import InvalidOption, TaskTimeout

__all__ = [
    "Command",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "descendants",
    "kill_group",
    "kill_process_tree",
    "kill_running",
    "kill_tree",
    "run_command",
]

StrPath = Union[str, "os.PathLike[str]"]
_TAIL_LINES = 10
_TAIL_CHARS = 2000
_POSIX = os.name == "posix"


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _tail(data: bytes | str | None) -> str:
    text = _text(data).rstrip("\n")
    lines = text.splitlines()[-_TAIL_LINES:]
    out = "\n".join(lines)[-_TAIL_CHARS:]
    return out


def _show(args: Sequence[str] | str) -> str:
    return args if isinstance(args, str) else shlex.join(args)


def _status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}({returncode})"
    return f"exited with status {returncode}"


def _tails(stdout: bytes | str | None, stderr: bytes | str | None) -> str:
    parts = []
    for label, data in (("stdout", stdout), ("stderr", stderr)):
        tail = _tail(data)
        if tail:
            parts.append(f"\n--- last lines of {label} ---\n{tail}")
    return "".join(parts)


class CommandResult(subprocess.CompletedProcess):  # type: ignore[type-arg]
    """What a command task returns: a :class:`subprocess.CompletedProcess` plus ``duration``.

    ``stdout`` and ``stderr`` are bytes (``str`` with ``text=True``). ``duration``
    is the wall time in seconds from start to exit.

    >>> from executors import CommandResult
    >>> r = CommandResult(["true"], 0, b"", b"", 0.01)
    >>> r.ok, r.args, r.duration
    (True, ['true'], 0.01)
    """

    def __init__(
        self,
        args: Sequence[str] | str,
        returncode: int,
        stdout: bytes | str,
        stderr: bytes | str,
        duration: float,
    ) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.duration = duration

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.returncode == 0

    def check_returncode(self) -> None:
        """Raise :class:`CommandError` when the exit status is not 0."""
        if self.returncode:
            raise CommandError(
                self.returncode, self.args, self.stdout, self.stderr, duration=self.duration
            )

    def __repr__(self) -> str:
        return (
            f"CommandResult(args={self.args!r}, returncode={self.returncode}, "
            f"stdout={_short(self.stdout)}, stderr={_short(self.stderr)}, "
            f"duration={self.duration:.3f})"
        )


def _short(data: bytes | str) -> str:
    text = repr(data)
    return text if len(text) <= 60 else f"{text[:50]}...<{len(data)} in all>"


class CommandError(subprocess.CalledProcessError):
    """A command run with ``check=True`` exited with a non-zero status.

    A :class:`subprocess.CalledProcessError` (``returncode``, ``cmd``,
    ``output``/``stdout``, ``stderr``), so existing ``except`` clauses catch it;
    the message ends with the last lines of both outputs.

    >>> from executors import CommandError
    >>> print(CommandError(2, ["ls", "nope"], b"", b"ls: cannot access 'nope'\\n"))
    command 'ls nope' exited with status 2; pass check=False to get the result instead
    --- last lines of stderr ---
    ls: cannot access 'nope'
    """

    def __init__(
        self,
        returncode: int,
        cmd: Sequence[str] | str,
        output: bytes | str | None = None,
        stderr: bytes | str | None = None,
        *,
        duration: float | None = None,
    ) -> None:
        super().__init__(returncode, cmd, output, stderr)
        self.duration = duration

    def __str__(self) -> str:
        return (
            f"command {_show(self.cmd)!r} {_status(self.returncode)}; pass check=False to get "
            f"the result instead{_tails(self.output, self.stderr)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_error,
            (self.returncode, self.cmd, self.output, self.stderr, self.duration),
        )


def _rebuild_error(
    returncode: int, cmd: Any, output: Any, stderr: Any, duration: float | None
) -> CommandError:
    return CommandError(returncode, cmd, output, stderr, duration=duration)


class CommandTimeout(TaskTimeout, subprocess.TimeoutExpired):
    """A command ran past its ``timeout``; its whole process group was killed.

    Both a :class:`executors.TaskTimeout` (so a :class:`TimeoutError`) and a
    :class:`subprocess.TimeoutExpired` (``cmd``, ``timeout``, ``output``,
    ``stderr``: what the command wrote before it was killed).
    """

    def __init__(
        self,
        cmd: Sequence[str] | str,
        timeout: float,
        output: bytes | str | None = None,
        stderr: bytes | str | None = None,
    ) -> None:
        TaskTimeout.__init__(
            self,
            f"command {_show(cmd)!r} timed out after {timeout:g} s, so its process group was "
            f"killed; raise timeout= if it needs longer{_tails(output, stderr)}",
        )
        self.cmd = cmd
        self.timeout = timeout
        self.output = output
        self.stderr = stderr  # type: ignore[assignment]

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (CommandTimeout, (self.cmd, self.timeout, self.output, self.stderr))


@dataclasses.dataclass(frozen=True)
class Command:
    """An external command as a picklable value; calling it runs it.

    Submit it as the task itself (``ex.submit(cmd)``) or map over many. See
    :func:`run_command` for the fields.

    >>> import sys
    >>> from executors import Command
    >>> cmd = Command([sys.executable, "-c", "import sys; sys.exit(3)"])
    >>> cmd().returncode
    3
    """

    args: Sequence[str] | str
    input: bytes | str | None = None
    env: Mapping[str, str] | None = None
    replace_env: bool = False
    cwd: StrPath | None = None
    timeout: float | None = None
    check: bool = False
    shell: bool = False
    text: bool = False

    def __post_init__(self) -> None:
        args = self.args
        if isinstance(args, str):
            if not self.shell:
                raise InvalidOption(
                    f"a command is a list of arguments such as ['ls', '-l'], got the string "
                    f"{args!r}; split it (shlex.split({args!r})) or pass shell=True"
                )
        elif isinstance(args, (bytes, Mapping)) or not isinstance(args, Sequence) or not args:
            raise InvalidOption(
                f"a command is a non-empty list of arguments such as ['ls', '-l'], got {args!r}"
            )
        else:
            bad = [a for a in args if not isinstance(a, (str, os.PathLike))]
            if bad:
                raise InvalidOption(
                    f"command arguments must be str (or os.PathLike), got {bad[0]!r} in "
                    f"{list(args)!r}; convert it with str()"
                )
            object.__setattr__(self, "args", [os.fspath(a) for a in args])
        if self.input is not None and not isinstance(self.input, (bytes, str)):
            raise InvalidOption(f"input must be bytes, str or None, got {self.input!r}")
        if self.env is not None:
            bad_env = [
                (k, v)
                for k, v in self.env.items()
                if not (isinstance(k, str) and isinstance(v, str))
            ]
            if bad_env:
                raise InvalidOption(
                    f"env values must be str, got {bad_env[0][0]!r}: {bad_env[0][1]!r}; "
                    "convert them with str()"
                )
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not self.timeout > 0
        ):
            raise InvalidOption(
                f"timeout must be a positive number of seconds or None, got {self.timeout!r}"
            )

    def __call__(self) -> CommandResult:
        return _run(self)


def run_command(
    args: Sequence[str] | str,
    *,
    input: bytes | str | None = None,  # noqa: A002 - the name subprocess.run uses
    env: Mapping[str, str] | None = None,
    replace_env: bool = False,
    cwd: StrPath | None = None,
    timeout: float | None = None,
    check: bool = False,
    shell: bool = False,
    text: bool = False,
) -> CommandResult:
    """Run an external command and return its :class:`CommandResult`.

    Submit it to any executor: ``ex.submit(run_command, ["gzip", "-k", path])``.

    :param args: the program and its arguments, e.g. ``["nslookup", "python.org"]``;
        a string only with ``shell=True``.
    :param input: sent to the command's stdin (``str`` is encoded as UTF-8); when
        None, stdin is empty.
    :param env: variables added to the inherited environment (or the whole
        environment with ``replace_env=True``).
    :param cwd: the working directory of the command.
    :param timeout: seconds; past it the command's process group is killed and
        :class:`CommandTimeout` is raised.
    :param check: raise :class:`CommandError` for a non-zero exit status.
    :param shell: run *args* through the shell (``/bin/sh -c``).
    :param text: decode stdout and stderr as UTF-8 (bad bytes replaced).
    :raises FileNotFoundError: for a missing program or working directory,
        naming it and the PATH searched.

    >>> import sys
    >>> from executors import run_command
    >>> run_command([sys.executable, "-c", "import os; print(os.environ['WHO'])"],
    ...             env={"WHO": "world"}, text=True).stdout
    'world\\n'
    """
    return _run(Command(args, input, env, replace_env, cwd, timeout, check, shell, text))


def _child_env(cmd: Command) -> dict[str, str] | None:
    if cmd.replace_env:
        return dict(cmd.env or {})
    if cmd.env:
        return {**os.environ, **cmd.env}
    return None


def _not_found(cmd: Command, env: Mapping[str, str] | None, exc: OSError) -> OSError:
    if cmd.cwd is not None and not os.path.isdir(cmd.cwd):
        return FileNotFoundError(
            errno.ENOENT,
            f"working directory {os.fspath(cmd.cwd)!r} of command {_show(cmd.args)!r} does "
            "not exist; create it or pass another cwd=",
            os.fspath(cmd.cwd),
        )
    program = cmd.args if isinstance(cmd.args, str) else cmd.args[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        where = "does not exist; check the path"
    else:
        searched = os.pathsep.join(os.get_exec_path(env))
        where = (
            f"was not found on PATH ({searched or 'empty'}); install it, give its full path, "
            "or add its directory to PATH (env={'PATH': ...})"
        )
    return FileNotFoundError(errno.ENOENT, f"program {program!r} {where}", program)


# Commands running in this process, so that an interrupted caller can stop them all:
# they run in their own sessions, where the terminal's Ctrl-C does not reach them.
_running: dict[int, subprocess.Popen[bytes]] = {}
_owners: dict[int, int] = {}  # pid -> the thread that runs the command
_running_lock = threading.Lock()  # held while mutating _running and _owners


def _forget_in_child() -> None:
    """A forked child runs none of its parent's commands: it must not kill them."""
    global _running_lock
    _running_lock = threading.Lock()
    _running.clear()
    _owners.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def kill_running(*, thread: int | None = None) -> int:
    """Kill every command this process is running (with their children); how many.

    For callers interrupted while commands run on in-process backends (the
    ``thread``, ``inline`` and ``subprocess`` backends run them in this process);
    each killed command's task then finishes with its negative return code.
    With *thread* (a :func:`threading.get_ident` value), only the command that
    thread runs (a remote worker cancelling one task).
    """
    with _running_lock:
        procs = [p for pid, p in _running.items() if thread in (None, _owners.get(pid))]
    for proc in procs:
        _kill_group(proc)
    return len(procs)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        if _POSIX:
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False
            )
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _run(cmd: Command) -> CommandResult:
    env = _child_env(cmd)
    data = cmd.input.encode() if isinstance(cmd.input, str) else cmd.input
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd.args,
            stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cmd.cwd,
            env=env,
            shell=cmd.shell,
            start_new_session=_POSIX,
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
        )
    except FileNotFoundError as exc:
        raise _not_found(cmd, env, exc) from None
    with _running_lock:
        _running[proc.pid] = proc
        _owners[proc.pid] = threading.get_ident()
    try:
        stdout, stderr = proc.communicate(data, timeout=cmd.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = _drain(proc)
        timeout = CommandTimeout(cmd.args, float(cmd.timeout or 0), *_decode(cmd, stdout, stderr))
        raise timeout from None
    except BaseException:  # KeyboardInterrupt, a broken pipe: leave nothing running
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        with _running_lock:
            _running.pop(proc.pid, None)
            _owners.pop(proc.pid, None)
    duration = time.perf_counter() - start
    out, err = _decode(cmd, stdout, stderr)
    result = CommandResult(cmd.args, proc.returncode, out, err, duration)
    if cmd.check:
        result.check_returncode()
    return result


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Collect what a killed command wrote; give up on pipes a stray process keeps open."""
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _decode(cmd: Command, stdout: bytes, stderr: bytes) -> tuple[bytes | str, bytes | str]:
    if cmd.text:
        return stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    return stdout, stderr


# -- stopping whatever a worker started -------------------------------------------


def _parents_from_proc() -> dict[int, list[int]] | None:
    """Parent pid -> child pids, read from Linux's ``/proc``; None where there is none."""
    if not linux_only("/proc"):
        return None
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                ppid = int(file.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def _parents_from_ps() -> dict[int, list[int]]:
    """Parent pid -> child pids, from ``ps`` (macOS, the BSDs); empty where it is missing."""
    try:
        out = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="],
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(fields[0]))
    return children


def descendants(root: int) -> list[int]:
    """The pids of every process below *root*, parents first (``/proc`` on Linux, else ``ps``)."""
    children = _parents_from_proc()
    if children is None:
        children = _parents_from_ps()
    found: list[int] = []
    stack = [root]
    while stack:
        kids = children.get(stack.pop(), [])
        found.extend(kids)
        stack.extend(kids)
    return found


def kill_tree(pids: list[int], sig: int | None = None) -> None:
    """SIGKILL (or *sig*) *pids*, and the process groups of those that lead one (commands)."""
    if not hasattr(signal, "SIGKILL"):  # pragma: no cover - Windows
        return
    sig = signal.SIGKILL if sig is None else sig
    own = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid and pid != own:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)


def kill_group(pid: int) -> None:
    """SIGKILL the process group *pid* leads, if there is one (a worker that died mid-task).

    Workers lead a group of their own, which what their tasks start joins; once a
    worker is dead its children can no longer be found from it, but its group can.
    """
    if hasattr(signal, "SIGKILL"):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def kill_process_tree(pid: int, sig: int | None = None) -> None:
    """SIGKILL (or *sig*) *pid* and every process below it, commands in their own sessions too.

    The pids are read first: once *pid* dies its children belong to init and
    can no longer be found from it.
    """
    kill_tree([pid, *descendants(pid)], sig)
