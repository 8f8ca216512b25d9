"""Version shims: typing names that older Pythons lack, and entry point lookup."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if sys.version_info >= (3, 11):
    from typing import ParamSpec, Self
else:  # pragma: no cover - exercised by the py39/py310 tox envs
    from typing_extensions import ParamSpec, Self

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ParamSpec", "Self", "entry_points"]


def entry_points(group: str) -> list[EntryPoint]:
    """The installed entry points of *group* (``select`` on 3.10+, ``get`` on 3.9)."""
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return list(metadata.entry_points(group=group))
    return list(metadata.entry_points().get(group, ()))  # pragma: no cover
