"""The guide's examples and docstrings, repeated under each backend via $EXECUTORS_BACKEND.

pytest's own doctest run covers them under the default backend; this repeats
the pages whose examples use ``get_executor()`` without naming a backend, so the
documented behaviour holds on every backend, as a user switching backends sees it.

Tutorial pages (``docs/tutorial/``) say which backends they run on, at their top::

    .. backends:: fork pool process

       thread, inline: why they are left out

and run under exactly those; every other backend of the registry must be left
out with a reason (``test_tutorial_page_considers_every_backend``).
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

from executors import registry
from tests.conftest import backend_name_fixture

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "docs/index.rst",
    "docs/commands.rst",
    "docs/quickstart.rst",
    "docs/context.rst",
    "docs/errors.rst",
    "docs/migrating.rst",
    "docs/progress.rst",
]
MODULES = ["executors", "executors.context", "executors.examples", "executors.protocol"]
TUTORIAL = sorted(p.name for p in (ROOT / "docs" / "tutorial").glob("*.rst") if p.stem != "index")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


#: The pages show what a user sees; the pool's start method changes none of it that
#: the conformance matrix (which runs the start methods) and tests/test_by_value.py
#: (functions defined in a script, as in the pages, under forkserver and spawn) do not
#: check. The two variants took a third of this module's time (a page: up to 20 s under spawn).
backend_name = backend_name_fixture(variants=[])

#: Known bugs a page finds on one backend: (page, backend spec) -> the bug. The test
#: is an xfail with strict=True, so it fails (and must be removed here) once fixed.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


#: The pages' repeats under each backend: pytest's own doctest run covers them under the
#: default backend in every env; tox runs every repeat in py311, a share of them in
#: each other env (see tests/conftest.py).
@pytest.mark.exhaustive
@pytest.mark.parametrize("page", PAGES)
def test_page(
    page: str, backend_name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    bug = KNOWN_BUGS.get((page, backend_name))
    if bug is not None:
        request.applymarker(pytest.mark.xfail(reason=bug, strict=True))
    monkeypatch.setenv("EXECUTORS_BACKEND", backend_name)
    result = doctest.testfile(
        str(ROOT / page), module_relative=False, optionflags=FLAGS, verbose=False, report=True
    )
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.exhaustive
@pytest.mark.parametrize("module", MODULES)
def test_docstrings(module: str, backend_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTORS_BACKEND", backend_name)
    result = doctest.testmod(importlib.import_module(module), optionflags=FLAGS, report=True)
    assert result.attempted > 0
    assert result.failed == 0


def declared_backends(page: str) -> tuple[list[str], dict[str, str]]:
    """The backends a tutorial page runs on, and those it leaves out with the reason."""
    text = (ROOT / "docs" / "tutorial" / page).read_text(encoding="utf-8")
    match = re.search(r"^\.\. backends:: (.+)\n((?:\n|   .*\n)*)", text, re.MULTILINE)
    assert match, f"{page} has no '.. backends::' directive"
    runs = match.group(1).split()
    left_out: dict[str, str] = {}
    for line in match.group(2).splitlines():
        names, _, why = line.strip().partition(":")
        for name in filter(None, (n.strip() for n in names.split(","))):
            left_out[name] = why.strip()
    return runs, left_out


@pytest.mark.parametrize("page", TUTORIAL)
def test_tutorial_page_considers_every_backend(page: str) -> None:
    runs, left_out = declared_backends(page)
    assert not set(runs) & set(left_out), f"{page} both runs on and leaves out a backend"
    assert all(left_out.values()), f"{page} leaves out a backend without saying why"
    assert sorted([*runs, *left_out]) == sorted(registry.names())


#: A tutorial page runs under the first backend it names in every env (nothing else
#: runs it), under the others in py311 and a share of the other envs.
@pytest.mark.exhaustive(unless=lambda p: p["backend_name"] == declared_backends(p["page"])[0][0])
@pytest.mark.parametrize("page", TUTORIAL)
def test_tutorial_page(
    page: str, backend_name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    runs, left_out = declared_backends(page)
    name = backend_name.partition("?")[0]
    if name not in runs:
        pytest.skip(f"{page} leaves out {name!r}: {left_out.get(name, 'not listed')}")
    test_page(f"docs/tutorial/{page}", backend_name, monkeypatch, request)
