"""Pickling for backends that cross a process boundary: clear errors and remote tracebacks.

A backend that sends work to another process calls :func:`dumps` (which names the
object that would not pickle instead of failing somewhere inside a pipe), and
ships a task's exception with :func:`pack_exception` / :func:`unpack_exception`,
so the caller gets the original exception type with the worker's traceback as
its ``__cause__``, as :mod:`concurrent.futures` does for processes::

    >>> from executors.serialization import pack_exception, unpack_exception
    >>> try:
    ...     1 / 0
    ... except ZeroDivisionError as exc:
    ...     back = unpack_exception(pack_exception(exc))
    >>> type(back).__name__, type(back.__cause__).__name__
    ('ZeroDivisionError', 'RemoteTraceback')
"""

from __future__ import annotations

import functools
import pickle
import traceback
from typing import Any, Callable

from .errors import RemoteError, SerializationError

__all__ = [
    "PackedException",
    "RemoteTraceback",
    "describe",
    "dumps",
    "exception_recipe",
    "get_pickler",
    "loads",
    "pack_exception",
    "safe_str",
    "unpack_exception",
]

Dumps = Callable[[Any], bytes]

_HINT = (
    "objects sent to another process must pickle: define functions at module level "
    "(not lambdas, closures or functions typed into an interactive session), "
    "or pass serializer='cloudpickle' (pip install 'pluggable-executors[cloudpickle]'), "
    "or use an in-process backend ('thread', 'inline') or 'fork'"
)


def get_pickler(serializer: str = "pickle") -> Dumps:
    """The ``dumps`` function for *serializer* (``"pickle"`` or ``"cloudpickle"``).

    :raises InvalidOption: for another name.
    :raises BackendUnavailable: for ``"cloudpickle"`` when it is not installed.
    """
    if serializer == "pickle":
        return _pickle_dumps
    if serializer == "cloudpickle":
        try:
            import cloudpickle
        except ImportError as exc:
            from .errors import BackendUnavailable

            raise BackendUnavailable(
                "serializer='cloudpickle' needs the 'cloudpickle' package; install it with: "
                "pip install 'pluggable-executors[cloudpickle]'"
            ) from exc

        def _cloud_dumps(obj: Any) -> bytes:
            data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            return data

        return _cloud_dumps
    from .errors import InvalidOption

    raise InvalidOption(f"serializer must be 'pickle' or 'cloudpickle', got {serializer!r}")


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def describe(obj: Any) -> str:
    """A short, safe description of *obj* for error messages."""
    name = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(name, str):
        return f"{getattr(obj, '__module__', '?')}.{name}"
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object (its repr raised)>"
    return text if len(text) <= 80 else text[:77] + "..."


def dumps(
    obj: Any,
    *,
    what: str = "object",
    parts: dict[str, Any] | None = None,
    pickler: Dumps = _pickle_dumps,
) -> bytes:
    """Pickle *obj*, or raise :class:`~executors.SerializationError` naming what would not pickle.

    *parts* maps labels (``"the function"``, ``"argument 2"``) to the pieces of
    *obj*; on failure each is tried alone so the message can point at the culprit.
    """
    try:
        return pickler(obj)
    except Exception as exc:
        culprit, error = f"{what} ({describe(obj)})", exc
        for label, part in (parts or {}).items():
            try:
                pickler(part)
            except Exception as part_exc:
                culprit, error = f"{label} ({describe(part)})", part_exc
                break
        raise SerializationError(
            f"cannot pickle {culprit}: {type(error).__name__}: {error}; {_HINT}"
        ) from error


def loads(data: bytes) -> Any:
    """Unpickle *data* (cloudpickle output included: it is plain pickle data)."""
    return pickle.loads(data)


class RemoteTraceback(Exception):
    """The formatted traceback of a task that failed in another process.

    Chained as the ``__cause__`` of the task's exception, so it prints above it.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class PackedException:
    """A picklable carrier for a task's exception and its formatted traceback."""

    __slots__ = ("data", "message", "tb", "type_name")

    def __init__(self, data: bytes | None, type_name: str, message: str, tb: str) -> None:
        self.data = data
        self.type_name = type_name
        self.message = message
        self.tb = tb

    def __reduce__(self) -> tuple[object, ...]:
        return (PackedException, (self.data, self.type_name, self.message, self.tb))


def pack_exception(exc: BaseException) -> PackedException:
    """Capture *exc* and its traceback for sending to the caller's process.

    The exception itself travels when it survives a pickle round trip. When it
    does not (a constructor that takes other arguments than ``args``, an attribute
    that will not pickle), its type, ``args`` and the attributes that pickle travel,
    and the caller rebuilds it without calling ``__init__`` (see
    :func:`unpack_exception`). Only when even that fails (a type the caller cannot
    import) does it arrive as :class:`~executors.errors.RemoteError`. Never raises,
    even for an exception whose ``__str__`` does.
    """
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a __str__ or a frame that cannot be formatted
        tb = f"{safe_str(exc)} (its traceback could not be formatted)\n"
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    data: bytes | None
    try:
        data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:
        data = exception_recipe(exc)
    return PackedException(data, type_name, safe_str(exc), f'\n"""\n{tb}"""')


#: Marks the pickled ``(mark, type, args, attributes)`` of an exception to rebuild.
_RECIPE = "executors.rebuild-exception/1"


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's ``__str__`` raises."""
    try:
        return str(exc)
    except Exception as error:
        return f"<{type(exc).__qualname__}.__str__ raised {type(error).__name__}>"


def exception_recipe(exc: BaseException) -> bytes | None:
    """Pickled ``(type, args, attributes)`` of *exc*, keeping what pickles; None if it cannot.

    Used when *exc* itself does not survive a pickle round trip. ``args`` that do not
    pickle become ``(str(exc),)``; attributes that do not pickle are left out.
    """
    dumps_ = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
    args: tuple[Any, ...] = exc.args
    try:
        pickle.loads(dumps_(args))
    except Exception:
        args = (safe_str(exc),)
    state = {}
    for key, value in getattr(exc, "__dict__", {}).items():
        try:
            pickle.loads(dumps_(value))
        except Exception:
            continue
        state[key] = value
    try:
        data = dumps_((_RECIPE, type(exc), args, state))
        _rebuild(pickle.loads(data))
    except Exception:
        return None
    return data


def _rebuild(recipe: Any) -> BaseException | None:
    if not (isinstance(recipe, tuple) and len(recipe) == 4 and recipe[0] == _RECIPE):
        return None
    _, cls, args, state = recipe
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return None
    exc = cls.__new__(cls, *args)
    exc.args = args
    for key, value in state.items():
        setattr(exc, key, value)
    return exc


def unpack_exception(packed: PackedException) -> BaseException:
    """The exception :func:`pack_exception` captured, with its remote traceback as cause."""
    exc: BaseException | None = None
    if packed.data is not None:
        try:
            exc = pickle.loads(packed.data)
            if isinstance(exc, tuple):
                exc = _rebuild(exc)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(
            f"{packed.type_name}: {packed.message} (the exception could not be pickled "
            "nor rebuilt here, so it arrives as RemoteError; the worker's traceback is its cause)",
            type_name=packed.type_name,
        )
    exc.__cause__ = RemoteTraceback(packed.tb)
    return exc
