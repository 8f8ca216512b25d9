"""Sphinx configuration: autodoc from docstrings, every example run by the doctest builder."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "executors"
author = "the executors developers"
copyright = "2026, the executors developers"  # noqa: A001
release = version = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "backends_directive",
]
exclude_patterns = ["_build", "faults_table.rst"]  # included by faults.rst
html_theme = "furo"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

# Every cross-reference must resolve...
nitpicky = True
# ...except into the standard library and typing internals: the build runs
# offline (CI reaches only package registries), so there is no intersphinx
# inventory to resolve them against.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(concurrent|asyncio|multiprocessing|subprocess|threading|contextvars|typing"
        r"|typing_extensions|collections|types|importlib|pickle|_pickle|logging|os|queue"
        r"|_asyncio|contextlib|doctest|unittest|pdb|json|sqlite3)(\..*)?",
    ),
    (
        r"py:.*",
        r"(Any|Callable|Iterable|Iterator|Mapping|Sequence|Self|P|R|R_co|T|Future|Factory"
        r"|BaseException|Exception|TimeoutError|LookupError|ImportError|TypeError|ValueError"
        r"|RuntimeError|NamedTuple|Protocol|Dumps|EntryPoint|TracebackType|Path|ClassVar|Make)",
    ),
    (r"py:.*", r"(P\.args|P\.kwargs|_thread\._local|_Item|optional|map)"),
    (r"py:class", r"~?([\w.]*\.)?(P|R|R_co|T)"),
    (r"py:class", r"executors\.testing\.\w+Tests"),
    # shared bases in private modules (executors._proc.backend, ...): their members are documented
    # on each backend's class
    (r"py:class", r"executors\._[\w.]+"),
    (r"py:class", r"executors\.sync\._Proxied"),
]

# Examples read $EXECUTORS_BACKEND like any program; run them on a clean slate.
# The cluster pages' examples carry ``:skipif: no_dask`` / ``no_ray``, the interpreter
# page's ``:skipif: interpreter_unavailable``: they run where the engine is available
# and are reported as skipped elsewhere.
doctest_global_setup = """
import importlib, importlib.util, os
os.environ.pop('EXECUTORS_MAX_WORKERS', None)
no_dask = importlib.util.find_spec('distributed') is None
no_ray = importlib.util.find_spec('ray') is None
numpy = importlib.import_module('numpy') if importlib.util.find_spec('numpy') else None
from executors import unavailable_reason as _unavailable
interpreter_unavailable = _unavailable('interpreter') is not None
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
