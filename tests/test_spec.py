from __future__ import annotations

import pytest

from executors import InvalidOption
from executors.spec import Spec, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thread", Spec("thread", {})),
        ("Thread", Spec("thread", {})),
        ("pool?max_workers=4", Spec("pool", {"max_workers": 4})),
        (
            "pool?timeout=2.5&fresh=true&x=none",
            Spec("pool", {"timeout": 2.5, "fresh": True, "x": None}),
        ),
        ("remote://127.0.0.1:5000", Spec("remote", {"address": "127.0.0.1:5000"})),
        (
            "remote://0.0.0.0:5000?local_workers=2",
            Spec("remote", {"address": "0.0.0.0:5000", "local_workers": 2}),
        ),
        ("dask://scheduler:8786", Spec("dask", {"address": "scheduler:8786"})),
        ("thread?thread_name_prefix=a%20b", Spec("thread", {"thread_name_prefix": "a b"})),
        ("remote://", Spec("remote", {})),
    ],
)
def test_grammar(text: str, expected: Spec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with a backend name"),
        ("4pool", "must start with a backend name"),
        ("pool?max_workers", "write options as"),
        ("pool?=3", "write options as"),
        ("pool?a=1&a=2", "given twice"),
    ],
)
def test_bad_specs_say_how_to_write_them(text: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse_spec(text)


def test_non_string_spec() -> None:
    with pytest.raises(InvalidOption, match="must be a str"):
        parse_spec(42)  # type: ignore[arg-type]
