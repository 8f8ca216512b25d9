"""The spec grammar: how a string (argument or ``$EXECUTORS_BACKEND``) names a backend.

::

    spec    = name [ "://" address ] [ "?" option *( "&" option ) ]
    option  = key "=" value

``thread``, ``pool?max_workers=4&max_tasks_per_child=100``,
``remote://127.0.0.1:5000``, ``dask://scheduler:8786``. Names are case-insensitive.
The address becomes the ``address`` option. Values are percent-decoded strings;
:func:`convert_options` then turns each into the type its backend declares for
that option (the annotation of the backend's parameter), never by its look:
``thread_name_prefix=007`` stays ``"007"``, ``max_workers=007`` is ``7``.

>>> from executors.spec import parse_spec
>>> parse_spec("pool?max_workers=4&start_method=spawn")
Spec(name='pool', options={'max_workers': '4', 'start_method': 'spawn'})
>>> parse_spec("remote://127.0.0.1:5000")
Spec(name='remote', options={'address': '127.0.0.1:5000'})
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, NamedTuple
from urllib.parse import unquote

from .errors import InvalidOption

__all__ = ["Spec", "convert_options", "parse_spec"]

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
        options[key] = unquote(value)
    return Spec(name, options)


def convert_options(options: dict[str, Any], factory: Callable[..., Any]) -> dict[str, Any]:
    """*options* from a spec (strings), each converted to the type *factory* declares for it.

    The declaration is the annotation of the factory's parameter of that name
    (``max_workers: int | None``); its plain types are tried in the order None
    (``none``, ``null``), bool (``true``/``false``, ``yes``/``no``, ``on``/``off``),
    int, float, str, bytes. An option without such a declaration stays a string.

    >>> from executors.spec import convert_options
    >>> def make(max_workers: int | None = None, prefix: str = "", flag: bool = False): ...
    >>> convert_options({"max_workers": "007", "prefix": "007", "flag": "on"}, make)
    {'max_workers': 7, 'prefix': '007', 'flag': True}

    :raises InvalidOption: naming the option, the type it expects and the value.
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(options)
    converted = {}
    for key, raw in options.items():
        param = params.get(key)
        kinds = _kinds(param.annotation) if param is not None else []
        converted[key] = _convert(key, raw, kinds) if kinds and isinstance(raw, str) else raw
    return converted


_PLAIN = ("None", "bool", "int", "float", "str", "bytes")


def _kinds(annotation: Any) -> list[str]:
    """The plain types in an annotation (a string under ``from __future__ import annotations``).

    Empty when the annotation has none or another part (a callable, a path) that a
    string cannot be converted to: the backend then gets the string and checks it.
    """
    if annotation is inspect.Parameter.empty:
        return []
    text = annotation if isinstance(annotation, str) else _type_text(annotation)
    text = re.sub(r"\b(?:typing\.)?Optional\[(.*)\]\Z", r"\1 | None", text.strip())
    parts = [p.strip() for p in _top_level(text)]
    kinds = [p for p in parts if p in _PLAIN]
    return kinds if kinds and (len(kinds) == len(parts) or "str" in kinds) else []


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _top_level(text: str) -> list[str]:
    """*text* split at the ``|`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _convert(key: str, raw: str, kinds: list[str]) -> Any:
    lowered = raw.strip().lower()
    for kind in _PLAIN:
        if kind not in kinds:
            continue
        if kind == "None" and lowered in ("none", "null"):
            return None
        if kind == "bool" and lowered in _WORDS:
            return _WORDS[lowered]
        if kind in ("int", "float"):
            try:
                return int(raw) if kind == "int" else float(raw)
            except ValueError:
                continue
        if kind == "str":
            return raw
        if kind == "bytes":
            return raw.encode()
    expected = " or ".join(kinds)
    raise InvalidOption(f"option {key!r} expects {expected}, got {raw!r}")
