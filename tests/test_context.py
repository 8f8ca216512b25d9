from __future__ import annotations

import pytest

from executors import InvalidOption, context


def test_bind_nests_and_restores() -> None:
    assert context.current() == {}
    with context.bind(user="alice", request_id=1):
        assert context.user == "alice"
        with context.bind(request_id=2):
            assert (context.user, context.request_id) == ("alice", 2)
        assert context.request_id == 1
    assert context.get("user") is None
    assert context.get("user", "nobody") == "nobody"


def test_missing_value_says_how_to_bind_it() -> None:
    with (
        context.bind(user="alice"),
        pytest.raises(AttributeError, match=r"bound here: user.*bind\(tenant="),
    ):
        context.tenant


def test_reserved_names_are_refused() -> None:
    with pytest.raises(InvalidOption, match="would hide executors.context.worker"):
        with context.bind(worker=1):
            pass


def test_current_is_read_only() -> None:
    with context.bind(user="alice"):
        with pytest.raises(TypeError):
            context.current()["user"] = "mallory"  # type: ignore[index]


def test_capture_and_run_carry_values_elsewhere() -> None:
    with context.bind(user="alice"):
        captured = context.capture()
    assert context.run(captured, context.get, "user") == "alice"
    assert context.get("user") is None
    assert context.run({}, context.get, "user") is None


def test_run_unbinds_even_when_the_task_fails() -> None:
    def boom() -> None:
        raise ValueError

    with pytest.raises(ValueError):
        context.run({"user": "alice"}, boom)
    assert context.get("user") is None
