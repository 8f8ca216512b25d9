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


def entry_points(group: str) -> list[tuple[EntryPoint, str]]:
    """The installed entry points of *group*, each with its distribution's name."""
    from importlib import metadata

    found: list[tuple[EntryPoint, str]] = []
    if sys.version_info >= (3, 10):
        for ep in metadata.entry_points(group=group):
            found.append((ep, ep.dist.name if ep.dist is not None else "an unknown distribution"))
        return found
    for dist in metadata.distributions():  # pragma: no cover - 3.9 has no EntryPoint.dist
        name = dist.metadata["Name"] or "an unknown distribution"
        found.extend((ep, name) for ep in dist.entry_points if ep.group == group)
    return found
