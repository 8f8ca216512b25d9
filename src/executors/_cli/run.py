"""``python -m executors run``: run a command once per input, N at a time, on any backend.

In the spirit of ``xargs -P`` and GNU parallel::

    python -m executors run -j 4 -- gzip -k {} ::: a.txt b.txt c.txt
    find . -name '*.log' | python -m executors run -j 8 -b subprocess -- gzip -k
    python -m executors run -b remote://host:5000 -- ./crunch {} ::: 1 2 3

Inputs come after ``:::``, else from stdin (one per line, blank lines skipped).
``{}`` in the command is replaced by the input (``{.}`` without its extension,
``{/}`` its base name, ``{//}`` its directory, ``{/.}`` the base name without
extension, ``{#}`` the job number); with none of them the input is appended as
the last argument; each is replaced once, so an input containing ``{}`` is
passed as it is. Each job's stdout and stderr are kept and printed whole, in
input order (``--as-finished``: as jobs end). The progress bar of
``map(progress=True)`` (``executors._progress``: tqdm when installed) is drawn
on stderr when stdout and stderr are terminals, its clock moving while jobs run.
``--halt`` starts no job after a failure: with it, a job is submitted only when
a worker is free, so none is left queued to start after the failure. The exit
status is 0 when every job succeeded, 1 when any failed (a summary of which goes
to stderr), 2 for a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import re
import shlex
import sys
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from .. import registry
from .._progress import Reporter, reporter
from ..command import Command, CommandResult, CommandTimeout, kill_running
from ..errors import ExecutorError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = ["run"]

_TOKENS = ("{/.}", "{//}", "{/}", "{.}", "{#}", "{}")
_SEPARATOR = ":::"


class _Job(NamedTuple):
    number: int
    input: str
    shown: str
    future: cf.Future[CommandResult]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m executors run",
        usage="python -m executors run [OPTIONS] -- COMMAND [ARG...] [::: INPUT...]",
        description="Run COMMAND once per input, N jobs at a time, on any backend.",
        epilog=(
            "Inputs follow ':::', else come from stdin, one per line. {} in COMMAND is the "
            "input ({.} without extension, {/} base name, {//} directory, {/.} base name "
            "without extension, {#} job number); without any, the input is the last argument."
        ),
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="jobs at a time (default: the backend's default, e.g. CPUs + 4 for threads)",
    )
    parser.add_argument(
        "-b",
        "--backend",
        default=None,
        metavar="SPEC",
        help="backend spec, e.g. thread, subprocess, remote://host:port "
        "(default: $EXECUTORS_BACKEND, else thread)",
    )
    parser.add_argument(
        "--as-finished",
        action="store_true",
        help="print each job's output as soon as it ends, not in input order",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="kill a job (and its children) that runs longer than this",
    )
    parser.add_argument(
        "--shell",
        action="store_true",
        help="run COMMAND through /bin/sh (inputs are quoted when substituted)",
    )
    parser.add_argument(
        "--halt",
        action="store_true",
        help="start no new job after a failure; the jobs already running finish",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands instead of running them"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw the progress bar on stderr even when it or stdout is not a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never draw it"
    )
    return parser


def _split(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str], list[str] | None]:
    """The options, the command template, and the inputs after ':::' (None: read stdin)."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    command: list[str] = args.command
    command = command + argv[cut:] if command else argv[cut + 1 :]
    inputs = None
    if _SEPARATOR in command:
        at = command.index(_SEPARATOR)
        command, inputs = command[:at], command[at + 1 :]
    return args, command, inputs


_TOKEN = re.compile(r"\{(?:/\.|//|/|\.|#)?\}")  # _TOKENS, the longest first


def _fill(template: str, value: str, number: int, quote: bool) -> str:
    """*template* with each replacement string replaced, in one pass over the template,
    so text an input brings in (``we{}rd.txt``) is never replaced again."""
    base = os.path.basename(value)
    parts = {
        "{/.}": os.path.splitext(base)[0],
        "{//}": os.path.dirname(value) or ".",
        "{/}": base,
        "{.}": os.path.splitext(value)[0],
        "{}": value,
    }

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token == "{#}":
            return str(number)
        return shlex.quote(parts[token]) if quote else parts[token]

    return _TOKEN.sub(replace, template)


def _commands(
    template: list[str], inputs: Iterable[str], shell: bool, timeout: float | None
) -> Iterator[tuple[int, str, Command]]:
    has_token = any(t in arg for arg in template for t in _TOKENS if t != "{#}")
    for number, value in enumerate(inputs, 1):
        if shell:
            line = " ".join(_fill(arg, value, number, quote=True) for arg in template)
            if not has_token:
                line += " " + shlex.quote(value)
            yield number, value, Command(line, shell=True, timeout=timeout)
        else:
            argv = [_fill(arg, value, number, quote=False) for arg in template]
            if not has_token:
                argv.append(value)
            yield number, value, Command(argv, timeout=timeout)


def _stdin_lines(stream: TextIO) -> Iterator[str]:
    for raw in stream:
        line = raw.rstrip("\r\n")
        if line:
            yield line


def _write(stream: TextIO, data: bytes | str) -> None:
    if not data:
        return
    buffer = getattr(stream, "buffer", None)
    if buffer is not None and isinstance(data, bytes):
        stream.flush()
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode(errors="replace") if isinstance(data, bytes) else data)
        stream.flush()


class _Tally:
    """What happened to the jobs: failures, and how many ran or were never started."""

    def __init__(self, reporter: Reporter) -> None:
        self.progress = reporter
        self.failures: list[tuple[_Job, str]] = []
        self.ran = 0
        self.skipped = 0  # cancelled before they started (--halt)
        self.halted = False


def _outcome(job: _Job) -> tuple[bytes | str, bytes | str, str | None]:
    """stdout, stderr and why the job failed (None: it succeeded)."""
    try:
        result = job.future.result()
    except cf.CancelledError:
        return b"", b"", "not started (cancelled after an earlier failure, --halt)"
    except CommandTimeout as exc:
        reason = f"timed out after {exc.timeout:g} s and was killed"
        return exc.output or b"", exc.stderr or b"", reason
    except OSError as exc:  # a missing program: the message names it and PATH
        return b"", b"", exc.strerror or str(exc)
    except Exception as exc:
        return b"", b"", f"{type(exc).__name__}: {exc}"
    if result.returncode == 0:
        return result.stdout, result.stderr, None
    if result.returncode < 0:
        import signal

        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        return result.stdout, result.stderr, f"killed by {name}"
    return result.stdout, result.stderr, f"exited with status {result.returncode}"


def run(argv: Sequence[str] = ()) -> int:
    """Run a command once per input, N at a time; see the module docstring."""
    parser = _parser()
    args, template, given = _split(parser, argv)
    if not template:
        parser.error("give the command after '--', e.g.: python -m executors run -j 4 -- gzip {}")
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"-j/--jobs must be at least 1, got {args.jobs}")
    if args.timeout is not None and not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if given is None and sys.stdin.isatty():
        print(
            "reading inputs from stdin, one per line (end with Ctrl-D; or give them after ':::')",
            file=sys.stderr,
        )
    inputs: Iterable[str] = given if given is not None else _stdin_lines(sys.stdin)
    commands = _commands(template, inputs, args.shell, args.timeout)
    if args.dry_run:
        for _, _, cmd in commands:
            print(cmd.args if isinstance(cmd.args, str) else shlex.join(cmd.args))
        return 0
    try:
        options_: dict[str, Any] = {} if args.jobs is None else {"max_workers": args.jobs}
        ex = registry.get_executor(args.backend, **options_)
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    show = args.progress
    if show is None:  # not while the user types inputs: the redrawn bar would mix with them
        typing = given is None and sys.stdin.isatty()
        show = sys.stdout.isatty() and sys.stderr.isatty() and not typing
    total = len(given) if given is not None else None
    make = reporter(bool(show), total, force=True, unit="job")
    tally = _Tally(make() if make is not None else Reporter(total))
    order: collections.deque[_Job] = collections.deque()
    try:
        _drive(ex, commands, args, tally, order)
    except KeyboardInterrupt:
        tally.progress.close()
        return _interrupted(ex, order)
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as SIGPIPE would
        tally.progress.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        kill_running()
        ex.shutdown(wait=True, cancel_futures=True)
        return 141
    finally:
        tally.progress.close()
    ex.shutdown(wait=True)
    if tally.failures:
        print(
            f"{len(tally.failures)} of {tally.ran} jobs failed{_halt_note(tally, total)}:",
            file=sys.stderr,
        )
        for job, reason in tally.failures:
            print(
                f"  job {job.number} (input {job.input!r}): {reason}: {job.shown}", file=sys.stderr
            )
        return 1
    return 0


def _halt_note(tally: _Tally, total: int | None) -> str:
    if not tally.halted:
        return ""
    if total is None:
        return " (no more started, --halt)"
    left = total - tally.ran
    return f" ({left} not started, --halt)" if left else ""


def _interrupted(ex: Any, order: collections.deque[_Job]) -> int:
    """Ctrl-C: kill the running jobs, start no more, wait only for what cannot be stopped.

    Jobs run by this process (``thread``, ``subprocess``, ``inline``) are killed
    with their children; jobs on ``fork``, ``process``, ``pool`` and ``remote``
    workers are cancelled, which stops a running task and the command it started.
    What no backend can stop (a task on another engine's thread) is waited for:
    the tool says so, and a second Ctrl-C leaves it running and exits at once.
    """
    killed = kill_running()  # they run in their own sessions: Ctrl-C did not reach them
    started = [job.future for job in order if job.future.running()]
    for future in started:  # fork, process, pool and remote stop a running task on cancel
        future.cancel()
    ex.shutdown(wait=False, cancel_futures=True)  # start no more
    killed += sum(future.cancelled() for future in started)
    running = [job.future for job in order if not job.future.done()]
    if running and cf.wait(running, timeout=1.0).not_done:
        left = [f for f in running if not f.done()]
        print(
            f"interrupted: waiting for {len(left)} job(s) running on workers this process "
            "cannot kill; Ctrl-C again to leave them running",
            file=sys.stderr,
        )
        try:
            ex.shutdown(wait=True)
        except KeyboardInterrupt:
            print(f"interrupted: left {len(left)} job(s) running", file=sys.stderr)
            return 130
    else:
        ex.shutdown(wait=True)
    print(f"interrupted: killed {killed} running job(s), started no more", file=sys.stderr)
    return 130


def _failed(future: cf.Future[CommandResult]) -> bool:
    """Whether a finished job failed (a cancelled one never ran: it did not fail)."""
    if future.cancelled():
        return False
    return future.exception() is not None or future.result().returncode != 0


def _wait_any(futures: list[cf.Future[CommandResult]]) -> set[cf.Future[CommandResult]]:
    """The futures done, waiting for one when none is. A future this tool cancelled counts
    as done at once: ``cf.wait`` would wait until the backend notices the cancel."""
    done = {f for f in futures if f.done()}
    return done or cf.wait(futures, return_when=cf.FIRST_COMPLETED).done


def _drive(
    ex: Any,
    commands: Iterator[tuple[int, str, Command]],
    args: argparse.Namespace,
    tally: _Tally,
    order: collections.deque[_Job],
) -> None:
    workers = getattr(ex, "max_workers", None)
    window = max(64, 4 * int(workers or 1))
    # --halt: a job is submitted only when a worker is free and no job has failed, so
    # none waits in the backend's queue to start after a failure (-j 1 included).
    slots = int(workers or window)

    def halt() -> None:
        """Start no more jobs; the running ones finish (cancelling would kill them)."""
        if not tally.halted:
            tally.halted = True
            for other in order:
                if not other.future.running():
                    other.future.cancel()

    def finish(job: _Job) -> None:
        if job.future.cancelled():
            tally.skipped += 1
            return
        out, err, reason = _outcome(job)
        with tally.progress.hidden():
            _write(sys.stdout, out)
            _write(sys.stderr, err)
        tally.ran += 1
        if reason is not None:
            tally.failures.append((job, reason))
            if args.halt:
                halt()
        tally.progress.advance(1, failed=reason is not None)

    def settle(block_until: int) -> None:
        while len(order) > block_until:
            if not args.as_finished:
                _wait_any([order[0].future])
                finish(order.popleft())
                continue
            done = _wait_any([j.future for j in order])
            for job in [j for j in order if j.future in done]:
                order.remove(job)
                finish(job)

    def free_slot() -> bool:
        """Wait for a free worker; False when a job has failed (start no more)."""
        running = [j.future for j in order if not j.future.done()]
        while len(running) >= slots:
            _wait_any(running)
            running = [f for f in running if not f.done()]
        if any(j.future.done() and _failed(j.future) for j in order):
            halt()
        return not tally.halted

    for number, value, cmd in commands:
        if tally.halted or (args.halt and not free_slot()):
            break
        shown = cmd.args if isinstance(cmd.args, str) else shlex.join(cmd.args)
        order.append(_Job(number, value, shown, ex.submit(cmd)))
        settle(window - 1)
    settle(0)
