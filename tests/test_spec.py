from __future__ import annotations

import pytest

from executors import InvalidOption, get_executor
from executors.spec import Spec, convert_options, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thread", Spec("thread", {})),
        ("Thread", Spec("thread", {})),
        ("pool?max_workers=4", Spec("pool", {"max_workers": "4"})),
        (
            "pool?timeout=2.5&fresh=true&x=none",
            Spec("pool", {"timeout": "2.5", "fresh": "true", "x": "none"}),
        ),
        ("remote://127.0.0.1:5000", Spec("remote", {"address": "127.0.0.1:5000"})),
        (
            "remote://0.0.0.0:5000?local_workers=2",
            Spec("remote", {"address": "0.0.0.0:5000", "local_workers": "2"}),
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


# -- values are converted by the type each backend declares (issue #11, item 9) -------


@pytest.mark.parametrize(
    ("spec", "attr", "expected"),
    [
        ("thread?thread_name_prefix=007", "thread_name_prefix", "007"),  # was 7
        ("thread?thread_name_prefix=on", "thread_name_prefix", "on"),  # was True
        ("thread?thread_name_prefix=none", "thread_name_prefix", "none"),
        ("thread?max_workers=007", "max_workers", 7),
        ("thread?task_timeout=2", "task_timeout", 2.0),
        ("subprocess?fresh=on", "fresh", True),
        ("inline?max_tasks_per_child=none", "max_tasks_per_child", None),
    ],
)
def test_spec_values_take_the_declared_type(spec: str, attr: str, expected: object) -> None:
    ex = get_executor(spec)
    try:
        value = getattr(ex, attr)
        assert value == expected
        assert type(value) is type(expected)
    finally:
        ex.shutdown()


def test_an_all_digit_authkey_stays_a_key() -> None:
    ex = get_executor("remote?authkey=1234567890123456&local_workers=1&max_workers=1")
    try:
        assert ex.submit(abs, -3).result(timeout=60) == 3
    finally:
        ex.shutdown()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("thread?max_workers=many", r"option 'max_workers' expects int or None, got 'many'"),
        ("subprocess?fresh=maybe", r"option 'fresh' expects bool, got 'maybe'"),
        ("thread?task_timeout=soon", r"option 'task_timeout' expects float or None, got 'soon'"),
    ],
)
def test_a_bad_value_names_the_option_the_type_and_the_value(spec: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        get_executor(spec)


def test_plugins_declare_types_with_annotations() -> None:
    def make(workers: int, ratio: float | None = None, name: str = "", other: list[int] = []):
        raise AssertionError

    converted = convert_options(
        {"workers": "3", "ratio": "none", "name": "12", "other": "1", "extra": "x"}, make
    )
    assert converted == {"workers": 3, "ratio": None, "name": "12", "other": "1", "extra": "x"}
