"""The layout's rules, read from the source (AST), as trio's ``test_exports`` does.

- ``backends/<name>.py`` is what a user configures; an engine package
  (``_proc``, ``_pool``, ``_remote``, ``_aio``, ``_cli``) is what runs it.
- The core (the modules directly in ``executors/``) imports no backend and no engine.
- No backend imports another backend; no engine imports a backend.
- Engines import no other engine, except ``_proc``, the child-process plumbing
  the process engines share, and ``_cluster``, the queue the cluster engines share.
- The pool engine's worker leaf imports only the standard library (it runs as a
  top-level module in fresh interpreters) and speaks the wire ``_proc`` defines.
- The remote master shares vocabulary with the worker program through
  ``_remote.wire``; it does not import the program.
- No import cycle anywhere, counting imports inside functions.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import executors

ROOT = Path(executors.__file__).resolve().parent
ENGINES = ("_aio", "_cli", "_cluster", "_dask", "_pool", "_proc", "_ray", "_remote", "_subinterp")
# _proc: the child-process plumbing of the process engines; _cluster: the queue and
# batches of the cluster engines (_dask, _ray).
SHARED_ENGINES = ("_cluster", "_proc")
LEAF = "executors._pool._subworker"


def _module_name(path: Path) -> str:
    parts = ["executors", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The modules *name* imports anywhere in its source (functions included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
    return found


GRAPH = {name: {m for m in _imports(name) if m in MODULES} for name in MODULES}


def _area(name: str) -> str:
    """``core``, ``backends`` or the engine package a module belongs to."""
    parts = name.split(".")
    if len(parts) < 2 or parts[1] not in (*ENGINES, "backends"):
        return "core"
    return parts[1]


def test_every_module_is_seen() -> None:
    assert "executors._pool.engine" in MODULES
    assert "executors.backends.pool" in MODULES
    assert _area("executors.registry") == "core"
    assert _area("executors._proc.wire") == "_proc"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _area(n) == "core"))
def test_core_imports_no_backend_and_no_engine(name: str) -> None:
    bad = {m for m in GRAPH[name] if _area(m) != "core"}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _area(n) == "backends"))
def test_no_backend_imports_another(name: str) -> None:
    bad = {m for m in GRAPH[name] if _area(m) == "backends"}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _area(n) in ENGINES))
def test_engines_import_no_backend_and_only_the_shared_engine(name: str) -> None:
    mine = _area(name)
    bad = {m for m in GRAPH[name] if _area(m) not in ("core", mine, *SHARED_ENGINES)}
    if mine in SHARED_ENGINES:
        bad |= {m for m in GRAPH[name] if _area(m) not in ("core", mine)}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.skipif(sys.version_info < (3, 10), reason="needs sys.stdlib_module_names")
def test_worker_leaf_imports_only_the_standard_library() -> None:
    # cloudpickle (a dependency) is imported only when plain pickle refuses a result;
    # on PyPy that path takes executors.serialization's cloudpickle, which refuses
    # PyPy's process-bound built-ins (locks) with CPython's words. Nothing else.
    ours = {m for m in _imports(LEAF) if m.startswith("executors")}
    assert ours <= {"executors.serialization"}, ours
    tops = {m.partition(".")[0] for m in _imports(LEAF) - ours}
    assert tops - {"__future__", "cloudpickle"} <= set(sys.stdlib_module_names), tops
    source = MODULES[LEAF].read_text(encoding="utf-8")
    at = source.index("from executors.serialization import")
    assert 'sys.implementation.name == "pypy"' in source[source.rindex("def ", 0, at) : at]


def test_worker_leaf_speaks_the_wire_of_proc() -> None:
    leaf = importlib.import_module(LEAF)
    wire = importlib.import_module("executors._proc.wire")
    for kind in wire.__all__:
        if kind.isupper():
            assert getattr(leaf, kind) == getattr(wire, kind), kind
    assert leaf.frame(b"abc") == wire.frame(b"abc")


def test_remote_master_does_not_import_the_worker_program() -> None:
    for master in ("executors.backends.remote", "executors._remote.hub", "executors._remote.local"):
        assert "executors._remote.worker" not in GRAPH[master], master


def test_no_import_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = [*path[path.index(name) :], name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        path.append(name)
        for dep in sorted(GRAPH[name]):
            visit(dep)
        path.pop()
        done.add(name)

    for name in sorted(GRAPH):
        visit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_all_is_true(name: str) -> None:
    """Each module's ``__all__`` is sorted and names what it defines (not what it imports)."""
    if name == "executors.__main__":
        pytest.skip("a program, not a library module")
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    if name.count(".") == 1 and MODULES[name].name == "__init__.py" and name != "executors":
        assert names is None or names == [], f"{name}: an engine package's __init__ exports nothing"
        return
    assert isinstance(names, list), f"{name} has no __all__"
    assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(names)
    for attr in names:
        value = getattr(module, attr)
        home = getattr(value, "__module__", name)
        if name != "executors" and isinstance(home, str) and home.startswith("executors"):
            assert home == name, f"{name}.__all__ lists {attr}, which {home} defines"
