"""What each backend does under each fault: the one table the fault matrix asserts.

Read a row across: the fault, then what ``future.result()`` (or ``submit``) gives
on each backend. After every cell that is not "n/a", the same executor still runs
a new task and nothing the task started is left running. ``docs/faults_table.rst``
is generated from this module (``python -m tests.faults.expectations``), and a
test checks the committed file is current, so the docs cannot drift.

Outcomes:

- ``ok``: the task's value arrives (nothing had to cross a process boundary);
- a task's own exception type (``ValueError``, ``NeedsTwoArgs``...): the future
  raises that type, with the worker's traceback as its ``__cause__``;
- a library error (``SerializationError``, ``WorkerCrashed``, ``WorkerLost``,
  ``TaskTimeout``): the future raises it; ``@submit`` means ``submit`` raises it;
- ``n/a: why``: the fault cannot apply to the backend; the cell is not run.
"""

from __future__ import annotations

BACKENDS = (
    "inline",
    "thread",
    "asyncio",
    "interpreter",
    "fork",
    "process",
    "pool",
    "subprocess",
    "remote",
    "dask",
    "ray",
)

#: Each fault: (what the task does, how the matrix provokes it).
FAULTS: dict[str, str] = {
    "raises": "raises ValueError",
    "raises-unroundtrippable": (
        "raises an exception whose constructor does not round-trip through pickle"
    ),
    "raises-unpicklable": "raises an exception that cannot be pickled (it holds a lock)",
    "raises-bad-str": "raises an exception whose ``__str__`` raises",
    "returns-unpicklable": "returns a value that does not pickle (a lock)",
    "arg-unpicklable": "takes an argument that does not pickle (a lock)",
    "arg-fails-to-load": "takes an argument that pickles but fails to load in the worker",
    "sigkill": "its worker is killed by SIGKILL mid-task",
    "os-exit": "calls ``os._exit(3)``",
    "segfault": "segfaults (``ctypes.string_at(0)``)",
    "memory-error": "raises MemoryError (asks for 4 EiB)",
    "recursion": "recurses without end (RecursionError)",
    "sys-exit": "calls ``sys.exit(2)``",
    "hang-timeout": "hangs, with ``task_timeout`` set",
    "hang-grandchild-timeout": (
        "starts a child process and hangs, with ``task_timeout`` set (the tree is killed)"
    ),
    "crash-grandchild": "starts a child process and exits (the child is killed too)",
    "log-unpicklable-extra": "logs with an ``extra`` the worker cannot pickle",
}

#: Why a cell does not apply.
NA_IN_PROCESS = "n/a: runs in the caller's own process, which this fault would end"
NA_NO_TIMEOUT = "n/a: takes no task_timeout"
NA_THREAD_TREE = (
    "n/a: the task's thread cannot be stopped at the timeout, nor what it started "
    "(its future does fail with TaskTimeout: see hang-timeout)"
)
NA_CLUSTER_TIMEOUT = "n/a: takes no task_timeout (the cluster's scheduler runs the task)"

_I = NA_IN_PROCESS
_T = NA_NO_TIMEOUT
_G = NA_THREAD_TREE
_C = NA_CLUSTER_TIMEOUT

# fmt: off
#: fault -> one outcome per backend, in the order of BACKENDS.
_TABLE: dict[str, tuple[str, ...]] = {
    #                            inline            thread            asyncio           interpreter                  fork                  process               pool                         subprocess                   remote                       dask                         ray
    "raises":                   ("ValueError",     "ValueError",     "ValueError",     "ValueError",                "ValueError",         "ValueError",         "ValueError",                "ValueError",                "ValueError",                "ValueError",                "ValueError"),
    "raises-unroundtrippable":  ("NeedsTwoArgs",   "NeedsTwoArgs",   "NeedsTwoArgs",   "NeedsTwoArgs",              "NeedsTwoArgs",       "NeedsTwoArgs",       "NeedsTwoArgs",              "NeedsTwoArgs",              "NeedsTwoArgs",              "NeedsTwoArgs",              "NeedsTwoArgs"),
    "raises-unpicklable":       ("HoldsLock",      "HoldsLock",      "HoldsLock",      "HoldsLock",                 "HoldsLock",          "HoldsLock",          "HoldsLock",                 "HoldsLock",                 "HoldsLock",                 "HoldsLock",                 "HoldsLock"),
    "raises-bad-str":           ("BadStr",         "BadStr",         "BadStr",         "BadStr",                    "BadStr",             "BadStr",             "BadStr",                    "BadStr",                    "BadStr",                    "BadStr",                    "BadStr"),
    "returns-unpicklable":      ("ok",             "ok",             "ok",             "SerializationError",        "SerializationError", "SerializationError", "SerializationError",        "SerializationError",        "SerializationError",        "SerializationError",        "SerializationError"),
    "arg-unpicklable":          ("ok",             "ok",             "ok",             "SerializationError@submit", "ok",                 "ok",                 "SerializationError@submit", "SerializationError@submit", "SerializationError@submit", "SerializationError@submit", "SerializationError@submit"),
    "arg-fails-to-load":        ("ok",             "ok",             "ok",             "SerializationError",        "ok",                 "ok",                 "SerializationError",        "SerializationError",        "SerializationError",        "SerializationError",        "SerializationError"),
    "sigkill":                  (_I,               _I,               _I,               _I,                          "WorkerCrashed",      "WorkerCrashed",      "WorkerCrashed",             "WorkerCrashed",             "WorkerLost",                "WorkerLost",                "WorkerLost"),
    "os-exit":                  (_I,               _I,               _I,               _I,                          "WorkerCrashed",      "WorkerCrashed",      "WorkerCrashed",             "WorkerCrashed",             "WorkerLost",                "WorkerLost",                "WorkerLost"),
    "segfault":                 (_I,               _I,               _I,               _I,                          "WorkerCrashed",      "WorkerCrashed",      "WorkerCrashed",             "WorkerCrashed",             "WorkerLost",                "WorkerLost",                "WorkerLost"),
    "memory-error":             ("MemoryError",    "MemoryError",    "MemoryError",    "MemoryError",               "MemoryError",        "MemoryError",        "MemoryError",               "MemoryError",               "MemoryError",               "MemoryError",               "MemoryError"),
    "recursion":                ("RecursionError", "RecursionError", "RecursionError", "RecursionError",            "RecursionError",     "RecursionError",     "RecursionError",            "RecursionError",            "RecursionError",            "RecursionError",            "RecursionError"),
    "sys-exit":                 ("SystemExit",     "SystemExit",     "SystemExit",     "SystemExit",                "SystemExit",         "SystemExit",         "SystemExit",                "SystemExit",                "SystemExit",                "SystemExit",                "SystemExit"),
    "hang-timeout":             ("TaskTimeout",    "TaskTimeout",    "TaskTimeout",    _T,                          "TaskTimeout",        "TaskTimeout",        "TaskTimeout",               "TaskTimeout",               "TaskTimeout",               _C,                          _C),
    "hang-grandchild-timeout":  (_G,               _G,               _G,               _T,                          "TaskTimeout",        "TaskTimeout",        "TaskTimeout",               "TaskTimeout",               "TaskTimeout",               _C,                          _C),
    "crash-grandchild":         (_I,               _I,               _I,               _I,                          "WorkerCrashed",      "WorkerCrashed",      "WorkerCrashed",             "WorkerCrashed",             "WorkerLost",                "WorkerLost",                "WorkerLost"),
    "log-unpicklable-extra":    ("ok",             "ok",             "ok",             "ok",                        "ok",                 "ok",                 "ok",                        "ok",                        "ok",                        "ok",                        "ok"),
}
# fmt: on

#: fault -> backend -> outcome.
EXPECTED: dict[str, dict[str, str]] = {
    fault: dict(zip(BACKENDS, row)) for fault, row in _TABLE.items()
}

#: Notes printed under the table in the docs.
NOTES = (
    "interpreter runs tasks in subinterpreters of the caller's own process (Python 3.12+): "
    "what would end a worker process ends the caller there, so those cells do not apply.",
    "dask and ray need their packages and are not in the default test run; their cells "
    "state what the library promises, and run wherever those backends are available.",
    "fork and process run a task in a child forked from the caller: its function and "
    "arguments are not pickled, so arguments that would not pickle or load arrive as they are.",
    "remote hands a task whose worker died to another worker, up to ``max_retries`` (2) "
    "more times, then raises WorkerLost: tasks run at least once, and may run more than once.",
    "An exception that does not survive pickle is rebuilt in the caller as its own type, "
    "with its ``args`` and the attributes that pickle, without calling ``__init__``; only "
    "a type the caller cannot import arrives as RemoteError.",
    "A task's grandchildren die with it: its worker leads a process group, killed when "
    "the task times out, is cancelled or its worker dies.",
    "dask: on a LocalCluster the executor started, each worker leads a process group that "
    "a watcher kills when the worker dies; on a cluster it joins, the workers are not the "
    "library's, and what a dead worker's task started is left to that cluster.",
)


def is_applicable(outcome: str) -> bool:
    return not outcome.startswith("n/a")


def render_rst() -> str:
    """The docs table (``docs/faults_table.rst``): faults down, backends across."""
    header = ["Fault", *BACKENDS]
    rows = [[FAULTS[fault], *(_cell(EXPECTED[fault][b]) for b in BACKENDS)] for fault in FAULTS]
    lines = [
        ".. This file is generated by `python -m tests.faults.expectations`; do not edit.",
        "",
        ".. list-table:: What ``future.result()`` gives, per fault and backend",
        "   :header-rows: 1",
        "   :stub-columns: 1",
        "",
    ]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    lines.append("")
    lines.extend(f"- {note}" for note in NOTES)
    lines.append("")
    return "\n".join(lines)


def _cell(outcome: str) -> str:
    if outcome.startswith("n/a"):
        return "n/a"
    if outcome.endswith("@submit"):
        return f"``{outcome.removesuffix('@submit')}`` from ``submit``"
    return outcome if outcome == "ok" else f"``{outcome}``"


if __name__ == "__main__":  # pragma: no cover
    import pathlib

    target = pathlib.Path(__file__).resolve().parents[2] / "docs" / "faults_table.rst"
    target.write_text(render_rst())
    print(f"wrote {target}")
