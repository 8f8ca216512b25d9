"""Bad input at the public entry points, tried as a new user would: clear, documented errors.

Specs are fuzzed with hypothesis: whatever the text, ``get_executor`` either
makes an executor or raises one of the errors it documents (BackendError
subclasses, InvalidOption), never something from deep inside a backend. The
worker command line's bad addresses and keys are covered by
tests/test_worker_cli.py; its address parser is fuzzed here.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executors import BackendError, InvalidOption, get_executor, registry
from executors._remote.wire import parse_address

from . import fault_tasks as t

#: Backends cheap enough to create hundreds of times in a fuzz run (remote starts
#: worker interpreters; its options are checked below with bad values only).
CHEAP = [
    n
    for n in ("inline", "thread", "asyncio", "fork", "process", "pool", "subprocess")
    if registry.unavailable_reason(n) is None
]
OPTION_NAMES = [
    "max_workers",
    "task_timeout",
    "initializer",
    "initargs",
    "serializer",
    "start_method",
    "max_tasks_per_child",
    "thread_name_prefix",
    "bogus",
    "address",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=12),
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis directory in the tree (pytest would warn about it)
    suppress_health_check=[HealthCheck.too_slow],
)


def _try(spec: Any, **options: Any) -> None:
    error: Exception | None = None
    try:
        ex = get_executor(spec, **options)
    except (BackendError, InvalidOption) as exc:
        error = exc
    if error is not None:
        assert str(error)  # a message, naming the problem
        return
    ex.shutdown(wait=True, cancel_futures=True)


@FUZZ
@given(st.text(max_size=40))
def test_any_spec_text_gives_an_executor_or_a_documented_error(text: str) -> None:
    if text.strip().lower().partition("?")[0].partition("://")[0] == "remote":
        return  # a valid remote spec would start worker interpreters: checked below
    _try(text)


@FUZZ
@given(
    st.sampled_from(CHEAP),
    st.dictionaries(st.sampled_from(OPTION_NAMES), VALUES, max_size=3),
)
def test_any_options_give_an_executor_or_invalid_option(name: str, options: dict[str, Any]) -> None:
    if isinstance(options.get("max_workers"), int) and not isinstance(
        options.get("max_workers"), bool
    ):
        options["max_workers"] = min(options["max_workers"], 2)
    _try(name, **options)


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"max_workers": "2"}, "max_workers"),
        ({"max_workers": -1}, "max_workers"),
        ({"max_workers": 1.5}, "max_workers"),
        ({"max_workers": True}, "max_workers"),
        ({"initializer": 5}, "initializer"),
        ({"bogus": 1}, "bogus"),
        ({"task_timeout": "soon"}, "task_timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"authkey": "short"}, "authkey"),
        ({"worker_backend": "remote"}, "worker_backend"),
    ],
)
@pytest.mark.parametrize("backend", [*CHEAP, "remote"])
def test_options_of_the_wrong_type_name_the_option(
    backend: str, options: dict[str, Any], names: str
) -> None:
    if registry.unavailable_reason(backend) is not None:
        pytest.skip(str(registry.unavailable_reason(backend)))
    with pytest.raises(InvalidOption, match=names):
        get_executor(backend, **options)


@pytest.mark.parametrize("backend", [*CHEAP, "remote"])
def test_map_without_iterables_and_submit_after_shutdown(backend: str) -> None:
    if registry.unavailable_reason(backend) is not None:
        pytest.skip(str(registry.unavailable_reason(backend)))
    ex = get_executor(backend, max_workers=1)
    try:
        with pytest.raises(TypeError, match=r"at least one iterable.*ex\.map\(fn, items\)"):
            ex.map(t.ok)
        # unequal lengths stop at the shortest, as the built-in map and zip do
        assert list(ex.map(pow, [1, 2, 3], [1, 2])) == [1, 4]
    finally:
        ex.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.ok, 1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        list(ex.map(t.ok, [1]))


@FUZZ
@given(st.text(max_size=30))
def test_any_worker_address_parses_or_says_how_to_write_it(text: str) -> None:
    error: InvalidOption | None = None
    try:
        host, port = parse_address(text, source="the command line")
    except InvalidOption as exc:
        error = exc
    if error is not None:
        assert "HOST:PORT" in str(error)
        return
    assert 0 <= port <= 65535
    assert isinstance(host, str)
