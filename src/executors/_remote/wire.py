"""What the remote master and its workers share: addresses, authkeys, the task payload.

The master (:mod:`executors.backends.remote`, :mod:`executors._remote.hub`) and the
worker program (:mod:`executors._remote.worker`) both import this module; neither
imports the other.
"""

from __future__ import annotations

import contextlib
import os
import socket
from multiprocessing import connection

from .. import command
from ..errors import InvalidOption

__all__ = [
    "AUTHKEY_ENV",
    "LOG_LEVEL_ENV",
    "LOG_TID",
    "MIN_AUTHKEY",
    "NAME_ENV",
    "Payload",
    "check_authkey",
    "is_command",
    "nodelay",
    "parse_address",
]

#: Environment variable holding the shared secret, when ``authkey=`` is not given.
AUTHKEY_ENV = "EXECUTORS_AUTHKEY"
#: Environment variable a master sets for the local workers it starts (their name).
NAME_ENV = "EXECUTORS_WORKER_NAME"
#: Environment variable a master sets for the local workers it starts: its root logging
#: level; such a worker sends the records its tasks log to the master's handlers.
LOG_LEVEL_ENV = "EXECUTORS_WORKER_LOG_LEVEL"
#: The task id of a log record among a worker's results.
LOG_TID = -1
MIN_AUTHKEY = 16

#: A task as it travels: the pickled function, and the pickled ``(args, kwargs, context)``.
Payload = tuple[bytes, bytes]


def parse_address(text: str, *, source: str = "argument") -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) as ``(host, port)``.

    >>> parse_address("127.0.0.1:5000")
    ('127.0.0.1', 5000)

    :raises InvalidOption: for anything else, naming where it came from.
    """
    host, sep, port_text = str(text).strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise InvalidOption(
            f"address must be HOST:PORT such as '127.0.0.1:5000' (port 0 picks a free "
            f"one), got {text!r} (from {source})"
        )
    return host, port


def check_authkey(value: bytes | str | None, *, source: str) -> bytes:
    """*value* (or ``$EXECUTORS_AUTHKEY`` when None) as bytes, refusing missing or short keys.

    :raises InvalidOption: when there is no key or it is shorter than 16 bytes.
    """
    if value is None:
        value = os.fsencode(os.environ.get(AUTHKEY_ENV, ""))
        source = f"${AUTHKEY_ENV}"
    key = value.encode() if isinstance(value, str) else value
    if not isinstance(key, bytes):
        raise InvalidOption(f"authkey must be bytes or str, got {value!r} (from {source})")
    fix = (
        f"set ${AUTHKEY_ENV} (or pass authkey=...) to a secret of at least {MIN_AUTHKEY} "
        "characters shared with the workers, e.g. the output of: "
        "python -c 'import secrets; print(secrets.token_hex(16))'"
    )
    if not key:
        raise InvalidOption(f"an authkey is required for remote workers and none was given; {fix}")
    if len(key) < MIN_AUTHKEY:
        raise InvalidOption(
            f"the authkey from {source} is {len(key)} bytes long, too short to be safe; {fix}"
        )
    return key


def is_command(fn: object) -> bool:
    """Whether *fn* runs a command (:func:`executors.run_command`, a :class:`executors.Command`)."""
    return fn is command.run_command or isinstance(fn, command.Command)


def nodelay(conn: connection.Connection) -> None:
    """Turn off Nagle's algorithm on *conn*'s socket, where the platform lets us.

    The manager protocol writes twice in a row in places (the end of the authkey
    handshake then the first request; a big message's header then its body), and
    Nagle holds the second write until the peer's delayed ACK, 40 ms later.
    """
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:  # a handle os.dup() cannot copy (Windows): leave it as it is
        return
    with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to turn off
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.close()
