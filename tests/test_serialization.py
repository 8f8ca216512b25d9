from __future__ import annotations

import pickle
import threading
import traceback

import pytest

from executors import RemoteError, SerializationError
from executors.serialization import (
    RemoteTraceback,
    dumps,
    get_pickler,
    pack_exception,
    unpack_exception,
)


class NeedsTwoArgs(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}-{b}")


def raise_and_pack(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return unpack_exception(pickle.loads(pickle.dumps(pack_exception(caught))))


def test_exception_round_trip_keeps_type_and_traceback() -> None:
    back = raise_and_pack(KeyError("missing"))
    assert type(back) is KeyError
    assert isinstance(back.__cause__, RemoteTraceback)
    assert "raise_and_pack" in str(back.__cause__)
    text = "".join(traceback.format_exception(type(back), back, back.__traceback__))
    assert "raise exc" in text


def test_exception_whose_constructor_does_not_round_trip_is_rebuilt_as_itself() -> None:
    back = raise_and_pack(NeedsTwoArgs("a", "b"))
    assert type(back) is NeedsTwoArgs  # so ``except NeedsTwoArgs`` still catches it
    assert back.args == ("a-b",)
    assert "raise_and_pack" in str(back.__cause__)


class HoldsLock(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()
        self.code = 7


def test_exception_that_cannot_pickle_keeps_its_type_and_the_attributes_that_pickle() -> None:
    back = raise_and_pack(HoldsLock("locked"))
    assert type(back) is HoldsLock
    assert back.args == ("locked",)
    assert back.code == 7
    assert not hasattr(back, "lock")


def test_exception_of_a_local_class_travels_by_value() -> None:
    class Local(Exception):  # not importable by name: cloudpickle sends the class itself
        pass

    back = raise_and_pack(Local("kept"))
    assert type(back).__qualname__.endswith("Local")
    assert str(back) == "kept"
    assert "raise_and_pack" in str(back.__cause__)


def test_exception_whose_type_cannot_be_found_arrives_as_remote_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from executors.serialization import PackedException, unpack_exception

    gone = types.ModuleType("gone_module")
    monkeypatch.setitem(sys.modules, "gone_module", gone)
    local = type("Local", (Exception,), {"__module__": "gone_module"})
    gone.Local = local  # type: ignore[attr-defined]
    data = pickle.dumps(local("lost"))
    monkeypatch.delitem(sys.modules, "gone_module")  # the caller cannot import it
    back = unpack_exception(PackedException(data, "gone_module.Local", "lost", "tb"))
    assert isinstance(back, RemoteError)
    assert "Local: lost" in str(back)
    assert back.type_name.endswith("Local")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


def test_exception_whose_str_raises_is_packed_as_itself() -> None:
    back = raise_and_pack(BadStr("hidden"))
    assert type(back) is BadStr
    assert back.args == ("hidden",)
    assert "BadStr" in str(back.__cause__)


def test_dumps_names_the_part_that_would_not_pickle() -> None:
    lock = threading.Lock()
    with pytest.raises(
        SerializationError, match=r"cannot pickle argument 2 \(<unlocked _thread.lock.*locks"
    ):
        dumps((abs, (1, lock)), what="the task", parts={"argument 1": 1, "argument 2": lock})
    with pytest.raises(SerializationError, match="cannot pickle the function .*<lambda>"):
        dumps(lambda: 1, what="the function", pickler=get_pickler("pickle"))
    assert pickle.loads(dumps(lambda: 1, what="the function"))() == 1  # by value by default
    assert isinstance(SerializationError("x"), TypeError)


def test_cloudpickle_serializer_pickles_lambdas() -> None:
    pytest.importorskip("cloudpickle", reason="the cloudpickle extra is not installed")
    data = dumps(lambda x: x + 1, pickler=get_pickler("cloudpickle"))
    assert pickle.loads(data)(1) == 2


def test_unknown_serializer() -> None:
    from executors import InvalidOption

    with pytest.raises(InvalidOption, match="'auto', 'pickle', 'cloudpickle'"):
        get_pickler("json")


def test_the_pool_worker_leaf_packs_exceptions_as_serialization_unpacks_them() -> None:
    from executors import serialization
    from executors._pool import _subworker

    assert _subworker.RECIPE == serialization._RECIPE
    for exc in (NeedsTwoArgs("a", "b"), HoldsLock("locked"), BadStr("hidden")):
        try:
            raise exc
        except Exception as caught:
            back = unpack_exception(serialization.PackedException(*_subworker.pack(caught)))
        assert type(back) is type(exc)
        assert back.args == exc.args
