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

import copyreg
import functools
import io
import logging
import pickle
import platform
import sys
import traceback
import types
from collections.abc import Mapping
from typing import Any, Callable, ClassVar

from .errors import RemoteError, SerializationError

__all__ = [
    "PackedException",
    "PickledCall",
    "RemoteTraceback",
    "Unloadable",
    "auto_dumps",
    "call_parts",
    "cloud_dumps",
    "describe",
    "dumps",
    "exception_recipe",
    "fallback_dumps",
    "get_pickler",
    "load_error",
    "load_outcomes",
    "loads",
    "pack_exception",
    "picklable_record",
    "safe_str",
    "unpack_exception",
]

Dumps = Callable[[Any], bytes]

_HINT = (
    "what crosses to another process is pickled, and some objects cannot be: open files, "
    "locks, sockets, threads, generators and connections belong to the process that made "
    "them; create them inside the task (or in an initializer), or use an in-process backend "
    "('thread', 'inline'); with serializer='pickle', lambdas and closures cannot cross either "
    "(the default, serializer='auto', sends them by value)"
)

#: What every backend uses unless told otherwise.
DEFAULT_SERIALIZER = "auto"
SERIALIZERS = ("auto", "pickle", "cloudpickle")


def get_pickler(serializer: str = DEFAULT_SERIALIZER, *, main_by_value: bool = True) -> Dumps:
    """The ``dumps`` function for *serializer*: ``"auto"``, ``"pickle"`` or ``"cloudpickle"``.

    ``"auto"`` (the default) is plain pickle, by reference, for everything that a
    fresh process can import, and cloudpickle, by value, for the rest: lambdas,
    closures, and (when *main_by_value*) functions and classes of ``__main__``,
    which another interpreter does not have. Pass ``main_by_value=False`` where
    the receiver is a fork of the sender, whose ``__main__`` is the same.
    ``"pickle"`` never uses cloudpickle; ``"cloudpickle"`` always does.

    :raises InvalidOption: for another name.
    """
    if serializer == "auto":
        return auto_dumps if main_by_value else fallback_dumps
    if serializer == "pickle":
        return _pickle_dumps
    if serializer == "cloudpickle":
        return cloud_dumps
    from .errors import InvalidOption

    raise InvalidOption(
        f"serializer must be one of {', '.join(map(repr, SERIALIZERS))}, got {serializer!r}"
    )


def _pickle_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)


def cloud_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    """cloudpickle: by value what plain pickle would send by reference to ``__main__`` or
    cannot send at all; by reference everything importable (imported on first use).

    Every pickler here takes pickle's *buffer_callback* (protocol 5's out-of-band
    buffers); one that retries with another pickler calls its ``clear()`` first.
    """
    if _PYPY:
        return _pypy_cloud_dumps(obj, buffer_callback)
    import cloudpickle

    data: bytes = cloudpickle.dumps(
        obj, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback
    )
    return data


def _again(buffer_callback: Any) -> Any:
    """*buffer_callback* emptied of what a failed attempt gave it, for the next pickler."""
    clear = getattr(buffer_callback, "clear", None)
    if clear is not None:
        clear()
    return buffer_callback


# -- PyPy: cloudpickle would send built-in types by value --------------------------------
#
# CPython's built-in objects that belong to their process (locks, files, sockets,
# frames) refuse ``__reduce_ex__``. PyPy's do not: there pickle refuses a lock only
# because ``_thread.lock`` cannot be found by name, and cloudpickle then sends the
# class ``_thread.lock`` *by value*. That pickles, and fails at the receiver ("can't set
# lock.__doc__"), in the worker or, for a result, in the caller. We refuse such a
# class at the sender instead, with CPython's words, so PyPy fails where CPython does.

_PYPY = platform.python_implementation() == "PyPy"
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement; PyPy has it too
#: Built-in types that cloudpickle sends by name from :mod:`types` (or as singletons).
_CLOUDPICKLE_KNOWS = frozenset(
    [type(None), type(Ellipsis), type(NotImplemented)]
    + [v for v in vars(types).values() if type(v) is type]
)


def _found_by_name(cls: type) -> bool:
    found: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is cls


def _refuse_builtin_by_value(cls: type) -> None:
    if not cls.__flags__ & _HEAPTYPE and cls not in _CLOUDPICKLE_KNOWS and not _found_by_name(cls):
        name = cls.__qualname__
        if cls.__module__ != "builtins":
            name = f"{cls.__module__}.{name}"
        raise pickle.PicklingError(f"cannot pickle {name!r} object")


@functools.cache
def _pypy_pickler() -> Any:
    import cloudpickle

    base: Any = cloudpickle.Pickler

    class _Pickler(base):  # type: ignore[misc]
        dispatch = base.dispatch.copy()

        def save_global(self, obj: Any, name: str | None = None) -> None:
            if name is None and isinstance(obj, type):
                _refuse_builtin_by_value(obj)
            super().save_global(obj, name)

        dispatch[type] = save_global

    return _Pickler


def _pypy_cloud_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    with io.BytesIO() as file:
        pickler = _pypy_pickler()(
            file, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback
        )
        pickler.dump(obj)
        return file.getvalue()


def fallback_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    """Plain pickle; :func:`cloud_dumps` only when plain pickle refuses *obj*."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
    except Exception:
        return cloud_dumps(obj, _again(buffer_callback))


def auto_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    """:func:`fallback_dumps`, and :func:`cloud_dumps` for data naming ``__main__``.

    Plain pickle names a ``__main__`` function or class by reference, which a
    worker interpreter cannot resolve; the bytes then contain ``__main__``, a
    check that costs a scan of the bytes (a stray ``"__main__"`` string in the
    data only means the slower pickler is used).
    """
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
    except Exception:
        return cloud_dumps(obj, _again(buffer_callback))
    if b"__main__" in data:
        return cloud_dumps(obj, _again(buffer_callback))
    return data


class PickledCall:
    """``fn(*args)`` carried as bytes that *pickler* made, called where it is loaded.

    :mod:`multiprocessing` pickles a spawned process's arguments with plain
    pickle; wrapped in this, an initializer that is a lambda or lives in
    ``__main__`` gets there by value all the same. It keeps *fn*'s name, for
    messages about it.
    """

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], pickler: Dumps) -> None:
        self.data = dumps(
            (fn, args),
            what="the initializer",
            parts={"the initializer": fn, "initargs": args},
            pickler=pickler,
        )
        self.__qualname__ = str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)

    def __call__(self) -> Any:
        fn, args = pickle.loads(self.data)
        return fn(*args)


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
    pickler: Dumps = auto_dumps,
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


def call_parts(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    values: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The pieces of a task, labelled for the message of :func:`dumps`: ``"the function"``,
    ``"argument 2"``, ``"keyword argument 'key'"``, ``"context value 'name'"``."""
    parts: dict[str, Any] = {"the function": fn}
    parts.update({f"argument {i + 1}": a for i, a in enumerate(args)})
    parts.update({f"keyword argument {k!r}": v for k, v in kwargs.items()})
    parts.update({f"context value {k!r}": v for k, v in (values or {}).items()})
    return parts


def loads(data: bytes) -> Any:
    """Unpickle *data* (cloudpickle output included: it is plain pickle data)."""
    return pickle.loads(data)


def picklable_record(record: logging.LogRecord, pickler: Dumps) -> logging.LogRecord:
    """*record* with each attribute that will not pickle replaced by its ``repr``.

    A worker's log record travels to the caller; an ``extra=`` holding a lock must
    not cost the task its result.
    """
    fields: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        try:
            pickler(value)
            fields[name] = value
        except Exception:
            try:
                fields[name] = repr(value)
            except Exception:
                fields[name] = f"<unrepresentable {type(value).__name__}>"
    return logging.makeLogRecord(fields)


# -- loading a worker's batch of outcomes: one bad result must not take the rest down --


class Unloadable:
    """Stands in the caller for an outcome's value that could not be unpickled there.

    ``cause`` is what unpickling raised (any exception, SystemExit included: a
    ``__reduce__`` can return any callable).
    """

    __slots__ = ("cause",)

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause

    def error(self, task: str, what: str = "result") -> SerializationError:
        """The :class:`~executors.SerializationError` for the future of *task* (``crunch()``)."""
        return load_error(task, self.cause, what)


def load_error(task: str, cause: BaseException, what: str = "result") -> SerializationError:
    """The error of a task whose *what* pickled in the worker but failed to load here."""
    error = SerializationError(
        f"the {what} of {task} pickled in the worker but cannot be unpickled in the caller: "
        f"{type(cause).__name__}: {cause}; return plain data (numbers, strings, lists, dicts, "
        "dataclasses of those) or objects whose classes the caller can import"
    )
    error.__cause__ = cause
    return error


def load_outcomes(data: bytes, buffers: Any = None) -> list[tuple[Any, int, Any]] | None:
    """Unpickle a worker's ``[(key, kind, value), ...]``; a value that fails becomes
    :class:`Unloadable`, and the others load as they are. *buffers*: the pickle's
    out-of-band buffers, if it has any.

    The whole list is loaded at once (the fast path); only when that raises is it
    loaded again, item by item as far as pickle allows, with a pure-Python
    unpickler that stands a marker for each object that fails. None when even
    that cannot make sense of *data*.
    """
    try:
        items: list[tuple[Any, int, Any]] = pickle.loads(data, buffers=buffers)
    except BaseException:  # any callable can raise anything while loading
        return _salvage(data, buffers)
    return items


def _salvage(data: bytes, buffers: Any = None) -> list[tuple[Any, int, Any]] | None:
    try:
        unpickler = _Salvager(data, buffers)
        items = unpickler.load()
        if not isinstance(items, list):
            return None
        for index, cause in unpickler.failures.items():
            key, kind, _ = items[index]
            items[index] = (key, kind, Unloadable(cause))
    except BaseException:  # not a list of outcomes we can split
        return None
    return items


class _Broken:
    """What a failed object becomes while salvaging: absorbs whatever the stream does to it."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause

    def __call__(self, *args: Any, **kwargs: Any) -> _Broken:
        return self

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass


def _guarded(load: Callable[[Any], None], pops: int) -> Callable[[Any], None]:
    """*load* (an opcode of pickle's Python unpickler that pops *pops* items and pushes
    one), recording a failure for the outcome being loaded and pushing a marker."""

    def guarded(self: _Salvager) -> None:
        depth, size = len(self.metastack), len(self.stack)
        inputs = self.stack[max(0, size - pops) :]
        try:
            load(self)
        except BaseException as exc:
            # a class or function that failed before (memoized) fails again: same cause
            cause = next((x.cause for x in inputs if isinstance(x, _Broken)), exc)
            self.failed(cause)
            if len(self.metastack) == depth:
                del self.stack[max(0, size - pops) :]
            self.stack.append(_Broken(cause))

    return guarded


class _Salvager(pickle._Unpickler):
    """Loads ``[(key, kind, value), ...]``, noting which item's value failed, and why.

    The list's items sit on pickle's stack between a MARK and APPENDS (or, for a
    single item, after the list itself, before APPEND); an item being loaded is
    the first ``None`` key there (finished ones are tuples by then).
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    for _code, _load in list(dispatch.items()):
        _pops = {
            "load_reduce": 2,
            "load_build": 2,
            "load_newobj": 2,
            "load_newobj_ex": 3,
            "load_stack_global": 2,
            "load_global": 0,
            "load_obj": 0,
        }.get(_load.__name__)
        if _pops is not None:
            dispatch[_code] = _guarded(_load, _pops)
    del _code, _load, _pops

    def __init__(self, data: bytes, buffers: Any = None) -> None:
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.failures: dict[int, BaseException] = {}
        self.stack: list[Any]
        self.metastack: list[list[Any]]

    def failed(self, exc: BaseException) -> None:
        stacks = [*self.metastack, self.stack]
        base = stacks[0]
        if not base or not isinstance(base[0], list):
            raise exc  # not a list of outcomes
        done = len(base[0])
        level = base[1:] if len(base) > 1 else stacks[1] if len(stacks) > 1 else []
        index = next((i for i, x in enumerate(level) if x is None), None)
        if index is None:
            raise exc
        self.failures.setdefault(done + index, exc)


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
        data = _exception_dumps(exc)
        pickle.loads(data)
    except BaseException:  # loading may call anything, SystemExit included
        data = exception_recipe(exc)
    return PackedException(data, type_name, safe_str(exc), f'\n"""\n{tb}"""')


def _exception_dumps(exc: BaseException) -> bytes:
    """*exc* pickled by its own ``__reduce__``, as :func:`fallback_dumps` would.

    Not by a reducer another library registered with :mod:`copyreg` for every
    exception type: dask's workers install tblib's, which rebuilds an exception
    without calling ``__init__``, so ``SystemExit.code`` or ``OSError.errno`` arrive
    as None.
    """
    table = {
        key: reduce
        for key, reduce in copyreg.dispatch_table.items()
        if not (isinstance(key, type) and issubclass(key, BaseException))
    }
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    try:
        pickler.dump(exc)
    except Exception:
        return cloud_dumps(exc)
    return buffer.getvalue()


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


def unpack_exception(packed: PackedException | BaseException) -> BaseException:
    """The exception :func:`pack_exception` captured, with its remote traceback as cause.

    An exception made in the caller (e.g. by :meth:`Unloadable.error`) is returned as is.
    """
    if isinstance(packed, BaseException):
        return packed
    exc: BaseException | None = None
    if packed.data is not None:
        try:
            exc = pickle.loads(packed.data)
            if isinstance(exc, tuple):
                exc = _rebuild(exc)
        except BaseException:  # loading may call anything, SystemExit included
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(
            f"{packed.type_name}: {packed.message} (the exception could not be pickled "
            "nor rebuilt here, so it arrives as RemoteError; the worker's traceback is its cause)",
            type_name=packed.type_name,
        )
    exc.__cause__ = RemoteTraceback(packed.tb)
    return exc
