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


def test_exception_that_does_not_rebuild_arrives_as_remote_error() -> None:
    back = raise_and_pack(NeedsTwoArgs("a", "b"))
    assert isinstance(back, RemoteError)
    assert "NeedsTwoArgs: a-b" in str(back)
    assert back.type_name.endswith("NeedsTwoArgs")
    assert "raise_and_pack" in str(back.__cause__)


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
