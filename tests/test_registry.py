"""Backend lookup: names, aliases, env var precedence, options, plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import executors
from executors import (
    BackendNotFound,
    BackendUnavailable,
    InvalidOption,
    available_backends,
    get_executor,
    register_backend,
    registry,
    unregister_backend,
)
from executors.backends.inline import InlineExecutor


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("EXECUTORS_BACKEND", raising=False)
    monkeypatch.delenv("EXECUTORS_MAX_WORKERS", raising=False)
    return monkeypatch


def test_builtin_table_is_sorted_and_names_its_modules() -> None:
    rows = [row.name for row in registry._BUILTINS]
    assert rows == sorted(rows)
    for row in registry._BUILTINS:
        assert isinstance(row.target, str)
        assert row.target.startswith("executors.backends.")


def test_default_is_thread(clean_env: pytest.MonkeyPatch) -> None:
    with get_executor() as ex:
        assert ex.backend == "thread"


def test_env_var_is_read_at_call_time(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_BACKEND", "inline")
    with get_executor() as ex:
        assert ex.backend == "inline"
    clean_env.setenv("EXECUTORS_BACKEND", "  THREAD?max_workers=3 ")
    with get_executor() as ex:
        assert (ex.backend, ex.max_workers) == ("thread", 3)  # type: ignore[attr-defined]


def test_argument_beats_env_var(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_BACKEND", "inline")
    with get_executor("thread") as ex:
        assert ex.backend == "thread"


def test_empty_env_var_means_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_BACKEND", "   ")
    with get_executor() as ex:
        assert ex.backend == "thread"


def test_unknown_backend_lists_names_and_closest(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_BACKEND", "thraed")
    with pytest.raises(BackendNotFound) as info:
        get_executor()
    message = str(info.value)
    assert "unknown backend 'thraed' (from $EXECUTORS_BACKEND)" in message
    assert "inline" in message
    assert "did you mean 'thread'?" in message
    assert isinstance(info.value, LookupError)


def test_aliases_resolve() -> None:
    with get_executor("threads") as ex:
        assert ex.backend == "thread"
    with get_executor("serial") as ex:
        assert ex.backend == "inline"


def test_keyword_options_override_spec_options() -> None:
    with get_executor("thread?max_workers=3", max_workers=5) as ex:
        assert ex.max_workers == 5  # type: ignore[attr-defined]


def test_max_workers_env_var(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_MAX_WORKERS", "3")
    with get_executor("thread") as ex:
        assert ex.max_workers == 3  # type: ignore[attr-defined]
    with get_executor("thread", max_workers=2) as ex:
        assert ex.max_workers == 2  # type: ignore[attr-defined]
    clean_env.setenv("EXECUTORS_MAX_WORKERS", "many")
    with pytest.raises(
        InvalidOption, match=r"\$EXECUTORS_MAX_WORKERS must be a positive integer, got 'many'"
    ):
        get_executor("thread")


def test_bad_option_from_env_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXECUTORS_BACKEND", "thread?max_workers=0")
    with pytest.raises(
        InvalidOption, match=r"max_workers must be greater than 0.*EXECUTORS_BACKEND"
    ):
        get_executor()
    clean_env.setenv("EXECUTORS_BACKEND", "thread?max_wrokers=2")
    with pytest.raises(InvalidOption, match="did you mean 'max_workers'"):
        get_executor()


def test_address_on_a_local_backend_is_refused() -> None:
    with pytest.raises(InvalidOption, match="takes no address"):
        get_executor("thread://127.0.0.1:5000")


def test_available_backends_reports_reasons() -> None:
    table = available_backends()
    assert table["thread"] and table["thread"].ok and table["thread"].reason == ""
    assert set(table) == set(registry.names())


class _Unavailable(InlineExecutor):
    @classmethod
    def unavailable_reason(cls) -> str | None:
        return "needs a quantum computer; use 'thread' instead"


@pytest.fixture
def registered() -> Iterator[None]:
    register_backend("myinline", InlineExecutor, aliases=["mine"])
    register_backend("lazyinline", "executors.backends.inline:InlineExecutor")
    register_backend("nowhere", "executors_missing_module:Factory")
    register_backend("quantum", _Unavailable)
    yield
    for name in ("myinline", "lazyinline", "nowhere", "quantum"):
        unregister_backend(name)


@pytest.mark.usefixtures("registered")
def test_registered_backends() -> None:
    with get_executor("mine") as ex:
        assert ex.submit(abs, -2).result() == 2
    with get_executor("lazyinline") as ex:
        assert ex.backend == "inline"
    with pytest.raises(BackendUnavailable, match="executors_missing_module"):
        get_executor("nowhere")
    with pytest.raises(BackendUnavailable, match="quantum computer"):
        get_executor("quantum")
    table = available_backends()
    assert not table["quantum"]
    assert "quantum computer" in table["quantum"].reason
    assert isinstance(BackendUnavailable("x"), ImportError)


@pytest.mark.usefixtures("registered")
def test_names_cannot_be_taken_twice() -> None:
    with pytest.raises(InvalidOption, match="already taken; pick another name$"):
        register_backend("thread", InlineExecutor)
    with pytest.raises(InvalidOption, match="replace=True"):
        register_backend("myinline", InlineExecutor)
    register_backend("myinline", InlineExecutor, replace=True)
    with pytest.raises(InvalidOption, match="not valid"):
        register_backend("Bad Name", InlineExecutor)
    with pytest.raises(InvalidOption, match="factory must be"):
        register_backend("fine", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="register_backend"):
        unregister_backend("thread")


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real installed distribution on sys.path, declaring entry points."""
    (tmp_path / "myplugin.py").write_text(
        "from executors.backends.inline import InlineExecutor\n"
        "class PluginExecutor(InlineExecutor):\n    name = 'plugged'\n"
    )
    info = tmp_path / "my_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [executors.backends]
            plugged = myplugin:PluginExecutor
            thread = myplugin:PluginExecutor
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_read", False)
    monkeypatch.setattr(registry, "_rows", dict(registry._rows))
    monkeypatch.setattr(registry, "_loaded", dict(registry._loaded))
    yield tmp_path
    sys.modules.pop("myplugin", None)


@pytest.mark.usefixtures("plugin_dist")
def test_entry_point_plugins_load_lazily_and_builtins_win() -> None:
    with pytest.warns(RuntimeWarning, match="'my-plugin'.*built-in names win"):
        names = registry.names()
    assert "plugged" in names
    assert "myplugin" not in sys.modules  # listed, not imported
    with get_executor("plugged") as ex:
        assert type(ex).__name__ == "PluginExecutor"
    with get_executor("thread") as ex:
        assert type(ex).__name__ == "ThreadExecutor"
    assert "entry point of 'my-plugin'" in registry.backends()["plugged"].origin


def test_get_executor_is_exported() -> None:
    assert executors.get_executor is get_executor


class _NoSharing(InlineExecutor):
    """A plugin whose tasks cannot reach anything of the caller's."""

    sharing = "none"


def test_a_backend_without_shared_objects_says_what_to_do_instead() -> None:
    with _NoSharing() as ex:
        for make in (ex.Queue, ex.JoinableQueue, ex.Lock, ex.Event, ex.dict):
            with pytest.raises(NotImplementedError, match="cannot hand out shared objects") as err:
                make()
            # the call it could not serve (a JoinableQueue is a Queue)
            assert f"ex.{make.__name__.replace('Joinable', '')}()" in str(err.value)
            assert "task arguments and results" in str(err.value)
