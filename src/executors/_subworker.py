"""The worker loop of the ``subprocess`` backend: one fresh interpreter, pickles over pipes.

The parent starts ``python -c <import this file as _subworker> READ_FD WRITE_FD
ERR_FD`` (so the ``executors`` package is imported only if a task needs it, and
start-up costs little more than a bare interpreter; ``python -m
executors._subworker`` works too). Every message is a frame: an 8-byte little-endian length, then a
pickle (protocol 5).

::

    parent                                   worker
      | -- hello (sys.path, initializer) -->  |  extend sys.path, run the initializer
      | <-- ("ready", pid, version) --------  |  or ("init_error", packed exception)
      | -- (fn, args, kwargs, context) ---->  |  run it
      | <-- ("ok", result) / ("err", packed)  |
      | ...                                   |
      | -- end of file -------------------->  |  exit 0

Until it is ready, the worker's stderr is a pipe the parent reads if start-up
fails; then it takes over the parent's stderr (ERR_FD). Its stdout is the parent's.
Only the standard library is imported here: everything else comes lazily.
"""

from __future__ import annotations

import os
import sys

try:  # the C module alone: importing pickle.py would cost a few ms more per worker
    from _pickle import dumps, loads
except ImportError:  # pragma: no cover - Pythons without the accelerator
    from pickle import dumps, loads

TYPE_CHECKING = False  # not imported from typing, which would slow every worker's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

PROTOCOL = 5


def _recv(stream: BinaryIO) -> bytes | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    return data if len(data) == size else None


def _send(stream: BinaryIO, data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "little"))
    stream.write(data)
    stream.flush()


def _pack(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """What executors.serialization.PackedException holds, as plain data."""
    import traceback

    frames = exc.__traceback__
    while frames is not None and frames.tb_frame.f_globals is globals():
        frames = frames.tb_next  # the worker loop's own frames are noise to the caller
    tb = "".join(traceback.format_exception(type(exc), exc, frames))
    data: bytes | None
    try:
        data = dumps(exc, PROTOCOL)
        loads(data)
    except Exception:
        data = None
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return data, type_name, str(exc), f'\n"""\n{tb}"""'


def _reply(fn: Any, result: Any) -> bytes:
    try:
        return dumps(("ok", result), PROTOCOL)
    except Exception:
        from executors import serialization

        try:
            serialization.dumps(result, what=f"the result of {serialization.describe(fn)}")
        except Exception as exc:
            return dumps(("err", _pack(exc)), PROTOCOL)
        raise


def _call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], values: dict[str, Any]) -> Any:
    if not values:
        return fn(*args, **kwargs)
    from executors import context

    return context.run(values, fn, *args, **kwargs)


def serve(rfd: int, wfd: int, errfd: int) -> int:
    """Greet the parent, then run tasks until the task pipe closes."""
    inbox = os.fdopen(rfd, "rb")
    outbox = os.fdopen(wfd, "wb")
    hello = _recv(inbox)
    if hello is None:
        return 0
    first, last, init = loads(hello)
    sys.path[:] = [*first, *(p for p in sys.path if p not in first), *last]
    try:
        if init is not None:
            fn, initargs = loads(init)
            fn(*initargs)
    except BaseException as exc:
        _send(outbox, dumps(("init_error", _pack(exc)), PROTOCOL))
        return 1
    sys.stderr.flush()
    os.dup2(errfd, 2)
    os.close(errfd)
    _send(outbox, dumps(("ready", os.getpid(), sys.version), PROTOCOL))
    while True:
        data = _recv(inbox)
        if data is None:
            return 0
        task: Any = None
        try:
            task, args, kwargs, values = loads(data)
            reply = _reply(task, _call(task, args, kwargs, values))
        except BaseException as exc:
            reply = dumps(("err", _pack(exc)), PROTOCOL)
        del task, data
        sys.stdout.flush()
        _send(outbox, reply)
        del reply


def main(argv: list[str]) -> int:
    """Serve until the parent closes the pipes; leaving early because it went away is quiet."""
    try:
        return serve(*map(int, argv[:3]))
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
