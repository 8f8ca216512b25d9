"""Reading what a child wrote to a pseudo-terminal, as a user's terminal would show it."""

from __future__ import annotations

import os


def read_to_end(controller: int, seen: bytes = b"") -> bytes:
    """*seen* plus everything written to the pty of *controller* until its other end closes."""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other end closed
            return seen
        if not chunk:
            return seen
        seen += chunk
