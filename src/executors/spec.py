"""The spec grammar: how a string (argument or ``$EXECUTORS_BACKEND``) names a backend.

::

    spec    = name [ "://" address ] [ "?" option *( "&" option ) ]
    option  = key "=" value

``thread``, ``pool?max_workers=4&max_tasks_per_child=100``,
``remote://127.0.0.1:5000``, ``dask://scheduler:8786``. Names are case-insensitive.
The address becomes the ``address`` option. Values are percent-decoded and read
as ``int``, ``float``, ``true``/``false`` and ``none`` when they look like one,
else kept as strings; the backend then checks them.

>>> from executors.spec import parse_spec
>>> parse_spec("pool?max_workers=4&start_method=spawn")
Spec(name='pool', options={'max_workers': 4, 'start_method': 'spawn'})
>>> parse_spec("remote://127.0.0.1:5000")
Spec(name='remote', options={'address': '127.0.0.1:5000'})
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import unquote

from .errors import InvalidOption

__all__ = ["Spec", "parse_spec"]

_NAME = re.compile(r"[a-z][a-z0-9_.+-]*\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


class Spec(NamedTuple):
    """A parsed spec: the backend name and the options it carries."""

    name: str
    options: dict[str, Any]


def parse_spec(spec: str, *, source: str = "argument") -> Spec:
    """Split *spec* into a backend name and options.

    :param source: where *spec* came from, for error messages.
    :raises InvalidOption: when *spec* does not follow the grammar.
    """
    if not isinstance(spec, str):
        raise InvalidOption(
            f"backend spec must be a str such as 'thread' or 'pool?max_workers=4', "
            f"got {spec!r} ({type(spec).__name__})"
        )
    text = spec.strip()
    head, _, query = text.partition("?")
    name, sep, address = head.partition("://")
    name = name.lower()
    if not _NAME.match(name):
        raise InvalidOption(
            f"bad backend spec {spec!r} (from {source}): it must start with a backend name "
            "such as 'thread', then optionally '://address' and '?key=value&...'"
        )
    options: dict[str, Any] = {}
    if sep and address:
        options["address"] = unquote(address)
    for part in query.split("&") if query else ():
        key, eq, value = part.partition("=")
        if not eq or not _KEY.match(key):
            raise InvalidOption(
                f"bad option {part!r} in backend spec {spec!r} (from {source}); "
                "write options as ?key=value&key=value"
            )
        if key in options:
            raise InvalidOption(f"option {key!r} given twice in backend spec {spec!r}")
        options[key] = _coerce(unquote(value))
    return Spec(name, options)


def _coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in _WORDS:
        return _WORDS[lowered]
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
