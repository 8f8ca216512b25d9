"""The environment of a worker process: no runaway nesting through ``$EXECUTORS_BACKEND``.

A task that calls :func:`executors.get_executor` with no spec gets the backend
``$EXECUTORS_BACKEND`` names. Were worker processes to inherit it, a program
run with ``EXECUTORS_BACKEND=pool`` whose tasks fan out too would start a pool
in every worker, and those pools' tasks pools of their own. So a worker's
environment (pool and process workers, fork children, worker interpreters,
remote workers) has no ``$EXECUTORS_BACKEND``: a task there gets the default,
``thread``, unless asked otherwise: ``$EXECUTORS_WORKER_BACKEND`` in the
caller's environment becomes the workers' ``$EXECUTORS_BACKEND``, for one level
(their own workers get neither). An explicit spec, ``get_executor("pool")``,
is always obeyed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

__all__ = ["BACKEND_ENV", "WORKER_BACKEND_ENV", "enter_worker", "worker_environ"]

BACKEND_ENV = "EXECUTORS_BACKEND"
WORKER_BACKEND_ENV = "EXECUTORS_WORKER_BACKEND"


def worker_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of *environ* (default: ``os.environ``) as a worker process gets it."""
    env = dict(os.environ if environ is None else environ)
    _adjust(env)
    return env


def enter_worker() -> None:
    """In a worker process that inherited the caller's environment: adjust ``os.environ``."""
    if BACKEND_ENV in os.environ or WORKER_BACKEND_ENV in os.environ:
        _adjust(os.environ)


def _adjust(env: MutableMapping[str, str]) -> None:
    worker_backend = env.pop(WORKER_BACKEND_ENV, "")
    if worker_backend:
        env[BACKEND_ENV] = worker_backend
    else:
        env.pop(BACKEND_ENV, None)
