"""Backends by name: the built-in table, plugins from entry points, and get_executor().

Built-in backends live in ``executors.backends`` and are imported only when first
used, so ``import executors`` stays light. Third-party backends register with
:func:`~executors.register_backend` or through the ``executors.backends`` entry-point
group; the entry point's value is ``"module:Factory"``. Built-in names win over
plugins.

Built-in backends (module names that would shadow the standard library differ
from the backend name):

- ``asyncio``: ``executors.backends.aio:AsyncioExecutor`` (module ``aio``: ``asyncio``
  would shadow the standard library); aliases ``aio``, ``async``
- ``dask``: ``executors.backends.dask:DaskExecutor`` (needs the ``dask`` extra)
- ``fork``: ``executors.backends.fork:ForkExecutor``; alias ``os.fork``
- ``inline``: ``executors.backends.inline:InlineExecutor``; aliases ``serial``, ``sync``
- ``interpreter``: ``executors.backends.interpreter:InterpreterExecutor``; aliases
  ``subinterpreter``, ``subinterpreters``, ``interpreters`` (CPython 3.12+)
- ``pool``: ``executors.backends.pool:PoolExecutor``; aliases ``processpool``, ``multiprocessing``
- ``process``: ``executors.backends.process:ProcessExecutor``; alias ``processes``
- ``ray``: ``executors.backends.ray:RayExecutor`` (needs the ``ray`` extra)
- ``remote``: ``executors.backends.remote:RemoteExecutor``
- ``subprocess``: ``executors.backends.commands:SubprocessExecutor`` (not ``subprocess.py``,
  which would shadow the standard library); alias ``subprocesses``
- ``thread``: ``executors.backends.thread:ThreadExecutor``; aliases ``threading``, ``threads``
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union, cast

from ._compat import entry_points
from .errors import BackendError, BackendNotFound, BackendUnavailable, InvalidOption
from .spec import convert_options, parse_spec

if TYPE_CHECKING:
    from .protocol import BaseExecutor, Executor

__all__ = [
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "Availability",
    "BackendInfo",
    "available_backends",
    "backends",
    "get_backend",
    "get_executor",
    "names",
    "register_backend",
    "unavailable_reason",
    "unregister_backend",
]

DEFAULT_BACKEND = "thread"
ENTRY_POINT_GROUP = "executors.backends"

Factory = Callable[..., "Executor"]


class BackendInfo(NamedTuple):
    """One row of the registry."""

    name: str
    #: ``"module:attr"`` (imported on first use) or the factory itself.
    target: Union[str, Factory]
    aliases: tuple[str, ...] = ()
    #: How to make the backend available when it is not (an install command).
    hint: str = ""
    #: ``"built-in"``, ``"register_backend()"`` or ``"entry point of <distribution>"``.
    origin: str = "built-in"


class Availability(NamedTuple):
    """Whether a backend can run here; false with a ``reason`` when it cannot."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


# Keep sorted by name (a test checks). Where a module name would shadow the
# standard library, the module takes another name and this table maps to it.
_BUILTINS: tuple[BackendInfo, ...] = (
    BackendInfo("asyncio", "executors.backends.aio:AsyncioExecutor", ("aio", "async")),
    BackendInfo(
        "dask",
        "executors.backends.dask:DaskExecutor",
        hint="install it with: pip install 'pluggable-executors[dask]'",
    ),
    BackendInfo("fork", "executors.backends.fork:ForkExecutor", ("os.fork",)),
    BackendInfo("inline", "executors.backends.inline:InlineExecutor", ("serial", "sync")),
    BackendInfo(
        "interpreter",
        "executors.backends.interpreter:InterpreterExecutor",
        ("subinterpreter", "subinterpreters", "interpreters"),
        "on Python 3.13: pip install 'pluggable-executors[interpreters]'",
    ),
    BackendInfo("pool", "executors.backends.pool:PoolExecutor", ("processpool", "multiprocessing")),
    BackendInfo("process", "executors.backends.process:ProcessExecutor", ("processes",)),
    BackendInfo(
        "ray",
        "executors.backends.ray:RayExecutor",
        hint="install it with: pip install 'pluggable-executors[ray]'",
    ),
    BackendInfo("remote", "executors.backends.remote:RemoteExecutor"),
    BackendInfo("subprocess", "executors.backends.commands:SubprocessExecutor", ("subprocesses",)),
    BackendInfo("thread", "executors.backends.thread:ThreadExecutor", ("threading", "threads")),
)

_NAME = re.compile(r"[a-z][a-z0-9_.+-]*\Z")
#: Held while reading or mutating _rows, _aliases, _loaded, _clashes and _plugins_read.
_lock = threading.RLock()


def _new_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # the parent's may be held by a thread the child lacks


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)
_rows: dict[str, BackendInfo] = {row.name: row for row in _BUILTINS}
_aliases: dict[str, str] = {a: row.name for row in _BUILTINS for a in row.aliases}
_loaded: dict[str, Factory] = {}
_clashes: dict[str, str] = {}
_plugins_read = False


def _read_plugins() -> None:
    """Add entry-point backends to the table, once; nothing is imported here."""
    global _plugins_read
    with _lock:
        if _plugins_read:
            return
        _plugins_read = True
        seen: dict[str, str] = {}
        for ep, dist in entry_points(ENTRY_POINT_GROUP):
            name = ep.name.lower()
            if name in seen and seen[name] != dist:
                _clashes[name] = (
                    f"backend name {name!r} is claimed by two plugins: {seen[name]!r} and "
                    f"{dist!r}; uninstall one of them"
                )
                continue
            seen[name] = dist
            if name in _rows or name in _aliases or not _NAME.match(name):
                owner = _rows[name].origin if name in _rows else "an existing alias"
                warnings.warn(
                    f"ignoring the {ENTRY_POINT_GROUP!r} entry point {name!r} of {dist!r}: "
                    f"the name is taken by {owner} (built-in names win) or is not a valid name",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            _rows[name] = BackendInfo(name, ep.value, origin=f"entry point of {dist!r}")


def names() -> list[str]:
    """Every backend name known here, sorted (built-ins, registered, plugins)."""
    _read_plugins()
    return sorted(_rows)


def backends() -> Mapping[str, BackendInfo]:
    """A read-only view of the registry table."""
    _read_plugins()
    return MappingProxyType(_rows)


def _canonical(name: str, source: str) -> str:
    key = name.lower()
    _read_plugins()
    key = _aliases.get(key, key)
    if key in _clashes:
        raise BackendError(_clashes[key])
    if key not in _rows:
        choices = sorted(_rows)
        close = difflib.get_close_matches(key, [*choices, *_aliases], n=1)
        hint = f"; did you mean {_aliases.get(close[0], close[0])!r}?" if close else ""
        raise BackendNotFound(
            f"unknown backend {name!r} (from {source}); choose one of: {', '.join(choices)}{hint}"
        )
    return key


def get_backend(name: str, *, source: str = "argument") -> Factory:
    """The factory (usually the executor class) registered as *name*.

    :raises BackendNotFound: for a name no backend has.
    :raises BackendUnavailable: for a backend this platform or installation lacks.
    """
    key = _canonical(name, source)
    with _lock:
        factory = _loaded.get(key)
    if factory is None:
        factory = _load(_rows[key])
        with _lock:
            _loaded[key] = factory
    reason = _reason_of(factory)
    if reason:
        raise BackendUnavailable(f"backend {key!r} {reason}")
    return factory


def _load(row: BackendInfo) -> Factory:
    if not isinstance(row.target, str):
        return row.target
    module_name, _, attr = row.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = cast("Factory", getattr(module, attr) if attr else module)
    except (ImportError, AttributeError) as exc:
        fix = f"; {row.hint}" if row.hint else ""
        raise BackendUnavailable(
            f"backend {row.name!r} ({row.origin}) could not be loaded from "
            f"{row.target!r}: {exc}{fix}"
        ) from exc
    return factory


def _reason_of(factory: Factory) -> str | None:
    check = getattr(factory, "unavailable_reason", None)
    reason = check() if callable(check) else None
    return str(reason) if reason else None


def unavailable_reason(name: str) -> str | None:
    """Why backend *name* cannot be used here, or None when it can."""
    try:
        get_backend(name)
    except BackendError as exc:
        return str(exc)
    return None


def available_backends() -> dict[str, Availability]:
    """Every known backend mapped to whether it is usable here (and why not).

    >>> from executors import available_backends
    >>> bool(available_backends()["thread"])
    True
    """
    return {n: Availability(r is None, r or "") for n in names() for r in [unavailable_reason(n)]}


def register_backend(
    name: str, factory: str | Factory, *, aliases: Iterable[str] = (), replace: bool = False
) -> None:
    """Make *factory* available as backend *name* (and its *aliases*).

    *factory* is a callable returning an executor (usually the class) or a
    ``"module:attr"`` string imported on first use.

    :raises InvalidOption: for a malformed name or a name already taken
        (built-in names can never be replaced; others only with ``replace=True``).
    """
    key = name.lower() if isinstance(name, str) else name
    alias_keys = tuple(a.lower() for a in aliases)
    for n in (key, *alias_keys):
        if not isinstance(n, str) or not _NAME.match(n):
            raise InvalidOption(
                f"backend name {n!r} is not valid: use lower-case letters, digits and "
                "'_.+-', starting with a letter"
            )
    if not (isinstance(factory, str) or callable(factory)):
        raise InvalidOption(
            f"factory must be a callable or a 'module:attr' string, got {factory!r}"
        )
    _read_plugins()
    with _lock:
        taken = [n for n in (key, *alias_keys) if n in _rows or n in _aliases]
        builtin = {row.name for row in _BUILTINS} | {a for row in _BUILTINS for a in row.aliases}
        if any(n in builtin for n in taken) or (taken and not replace):
            raise InvalidOption(
                f"backend name(s) {', '.join(map(repr, taken))} already taken; pick another "
                "name" + ("" if any(n in builtin for n in taken) else " or pass replace=True")
            )
        if replace:
            _forget(key)
            for a in alias_keys:
                _forget(_aliases.pop(a, a))
        _rows[key] = BackendInfo(key, factory, alias_keys, origin="register_backend()")
        _aliases.update(dict.fromkeys(alias_keys, key))


def _forget(key: str) -> None:
    row = _rows.pop(key, None)
    _loaded.pop(key, None)
    for a in row.aliases if row else ():
        _aliases.pop(a, None)


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`~executors.register_backend` (built-ins stay)."""
    key = name.lower()
    with _lock:
        if key not in _rows or _rows[key].origin != "register_backend()":
            raise InvalidOption(f"no backend {name!r} was added with register_backend()")
        _forget(key)


def get_executor(spec: str | None = None, /, **options: Any) -> BaseExecutor:
    """Create an executor from *spec*, else ``$EXECUTORS_BACKEND``, else ``"thread"``.

    Typed as :class:`~executors.BaseExecutor`, a :class:`concurrent.futures.Executor`,
    so the result goes wherever one does (``loop.run_in_executor``, a variable
    annotated ``concurrent.futures.Executor``); plugin backends should subclass it.

    Keyword *options* are added to (and override) those in the spec; each backend
    checks its own. ``$EXECUTORS_MAX_WORKERS`` gives ``max_workers`` when neither does.

    >>> from executors import get_executor
    >>> with get_executor("thread?max_workers=2") as ex:
    ...     ex.backend, ex.submit(sum, [1, 2, 3]).result()
    ('thread', 6)

    :raises BackendNotFound: for an unknown name (with the closest match).
    :raises BackendUnavailable: for a backend this machine cannot run.
    :raises InvalidOption: for a bad spec, an unknown option or a bad value.
    """
    source = "argument"
    if spec is None:
        env = os.environ.get("EXECUTORS_BACKEND", "").strip()
        spec, source = (env, "$EXECUTORS_BACKEND") if env else (DEFAULT_BACKEND, "the default")
    parsed = parse_spec(spec, source=f"{source} {spec!r}" if source != "argument" else source)
    factory = get_backend(parsed.name, source=source)
    try:
        spec_options = convert_options(parsed.options, factory)
    except InvalidOption as exc:
        raise InvalidOption(f"{exc} (in {source} {spec!r})") from None
    merged = {**spec_options, **options}
    accepted = _accepted_options(factory)
    if accepted is not None:
        _check_names(_canonical(parsed.name, source), merged, accepted, spec)
        if "max_workers" in accepted and "max_workers" not in merged:
            env_workers = _env_max_workers()
            if env_workers is not None:
                merged["max_workers"] = env_workers
    try:
        return factory(**merged)  # type: ignore[return-value]  # plugins: see the docstring
    except InvalidOption as exc:
        if source == "argument" or not parsed.options:
            raise
        raise InvalidOption(f"{exc} (in {source} = {spec!r})") from None


def _accepted_options(factory: Factory) -> set[str] | None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _check_names(name: str, options: dict[str, Any], accepted: set[str], spec: str) -> None:
    for key in options:
        if key in accepted:
            continue
        if key == "address":
            raise InvalidOption(
                f"backend {name!r} takes no address, but spec {spec!r} gives one; "
                f"write {name!r} or {name + '?key=value'!r}"
            )
        close = difflib.get_close_matches(key, sorted(accepted), n=1)
        raise InvalidOption(
            f"backend {name!r} has no option {key!r}; valid options: "
            f"{', '.join(sorted(accepted)) or 'none'}"
            + (f"; did you mean {close[0]!r}?" if close else "")
        )


def _env_max_workers() -> int | None:
    raw = os.environ.get("EXECUTORS_MAX_WORKERS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidOption(
            f"$EXECUTORS_MAX_WORKERS must be a positive integer, got {raw!r}; "
            "set it to e.g. 4, or unset it to use each backend's default"
        )
    return value
