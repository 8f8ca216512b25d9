"""``python -m executors``: ``info`` (which backends work here), ``demo``, and ``--version``.

Further subcommands are listed in ``_COMMANDS`` as ``"module:function"`` and
imported only when run; each function takes the remaining ``argv`` and returns
an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
from collections.abc import Sequence

from . import _runtime, registry
from .errors import ExecutorError

__all__ = ["demo", "info", "main"]

_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("executors.__main__:demo", "run a small demo on the selected backend"),
    "info": ("executors.__main__:info", "list backends, whether they work here, and defaults"),
    "run": ("executors._cli.run:run", "run a command once per input, N at a time (like xargs -P)"),
    "worker": ("executors._remote.worker:main", "run tasks for a remote master: worker HOST:PORT"),
}


def _selected() -> tuple[str, str]:
    env = os.environ.get("EXECUTORS_BACKEND", "").strip()
    if env:
        return env, "from $EXECUTORS_BACKEND"
    return registry.DEFAULT_BACKEND, "the default; set $EXECUTORS_BACKEND to change it"


def _defaults(name: str) -> str:
    try:
        factory = registry.get_backend(name)
        params = inspect.signature(factory).parameters.values()
    except Exception:
        return ""
    shown = [
        f"{p.name}={p.default!r}"
        for p in params
        if p.default is not p.empty and p.name in ("max_workers", "start_method", "address")
    ]
    workers = getattr(factory, "default_max_workers", None)
    if callable(workers):
        shown = [s for s in shown if not s.startswith("max_workers")]
        shown.insert(0, f"max_workers={workers()}")
    return ", ".join(shown)


def info(argv: Sequence[str] = ()) -> int:
    """Print the backend table and which backend this environment selects."""
    argparse.ArgumentParser(prog="python -m executors info", description=info.__doc__).parse_args(
        argv
    )
    rows = []
    for name, row in registry.backends().items():
        reason = registry.unavailable_reason(name)
        status = "available" if reason is None else f"unavailable: {reason}"
        aliases = f" (aliases: {', '.join(row.aliases)})" if row.aliases else ""
        rows.append((name, status, _defaults(name) if reason is None else "", aliases))
    width = max(len(r[0]) for r in rows)
    print(f"executors {sys.modules['executors'].__version__} on Python {sys.version.split()[0]}")
    print(f"runtime: {_runtime.describe()}")
    print("backends:")
    for name, status, defaults, aliases in sorted(rows):
        extra = f"  [{defaults}]" if defaults else ""
        print(f"  {name:<{width}}  {status}{extra}{aliases}")
    spec, why = _selected()
    print(f"selected: {spec} ({why})")
    workers = os.environ.get("EXECUTORS_MAX_WORKERS", "").strip()
    if workers:
        print(f"max_workers: {workers} (from $EXECUTORS_MAX_WORKERS)")
    try:
        registry.get_executor().shutdown()
    except Exception as exc:
        print(f"error: the selected backend cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def demo(argv: Sequence[str] = ()) -> int:
    """Square numbers, bind a context value and time a few slow tasks on the selected backend."""
    from . import context
    from .demo import square, wait, whoami

    parser = argparse.ArgumentParser(prog="python -m executors demo", description=demo.__doc__)
    parser.add_argument("-b", "--backend", help="backend spec (default: $EXECUTORS_BACKEND)")
    args = parser.parse_args(argv)
    try:
        ex = registry.get_executor(args.backend)
    except ExecutorError as exc:  # a bad spec or $EXECUTORS_MAX_WORKERS: say it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with ex:
        print(f"backend: {ex.backend}")
        print("squares:", list(ex.map(square, range(10))))
        with context.bind(user="alice", request_id=7):
            print("context seen by a task:", ex.submit(whoami).result())
        start = time.perf_counter()
        list(ex.map(wait, [0.2] * 4))
        print(f"4 tasks of 0.2 s took {time.perf_counter() - start:.2f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m executors`` and the ``executors`` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-V", "--version"):
        print(f"executors {sys.modules['executors'].__version__}")
        return 0
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m executors [--version] COMMAND [ARGS...]\n\ncommands:")
        for name, (_, text) in sorted(_COMMANDS.items()):
            print(f"  {name:<8}  {text}")
        print("\n'python -m executors COMMAND --help' describes a command's options.")
        return 0 if args else 2
    command = _COMMANDS.get(args[0])
    if command is None:
        print(
            f"error: unknown command {args[0]!r}; choose one of: {', '.join(sorted(_COMMANDS))}",
            file=sys.stderr,
        )
        return 2
    module_name, _, attr = command[0].partition(":")
    status: int = getattr(importlib.import_module(module_name), attr)(args[1:])
    return status


if __name__ == "__main__":
    sys.exit(main())
