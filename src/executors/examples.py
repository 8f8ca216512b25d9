"""The task functions of the tutorial pages (``docs/tutorial/``), one group per program.

The tutorial pages (``docs/tutorial/``) retell the classic programs of Python's
concurrency toolbox (a ``fork`` server, ``Process`` and ``Pool``, producer and
consumer on a queue, the bank balance and its lock, ...) with this library.
The functions live in a real module so that every backend can run them: process
backends pickle a function by its module and name, and a function typed into a
doctest or an interactive session has no module to be found in.

>>> from executors import get_executor
>>> from executors.examples import total_of_squares
>>> with get_executor() as ex:               # $EXECUTORS_BACKEND picks the backend
...     total_of_squares(ex, range(10))
285
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any

from . import context

__all__ = [
    "InsufficientFunds",
    "change_balance",
    "connect",
    "consumer",
    "count_words",
    "fetch",
    "handle_request",
    "long_time_task",
    "lookup",
    "producer",
    "run_task",
    "square",
    "total_of_squares",
    "transfer",
    "whoami",
    "worker_loop",
]

log = logging.getLogger("executors.examples")


# -- the quick start's crawler ------------------------------------------------------


def fetch(url: str, timeout: float = 30) -> tuple[str, int]:
    """Download *url* (``http``, ``https`` or ``file``); the url and its size in bytes."""
    from urllib.request import urlopen

    with urlopen(url, timeout=timeout) as response:
        return url, len(response.read())


# -- fork, Process, Pool ----------------------------------------------------------


def handle_request(request: str) -> tuple[str, int]:
    """What a forking server's child does: answer *request*; the answer and its pid."""
    return f"answer to {request}", os.getpid()


def long_time_task(name: str, seconds: float = 0.2) -> str:
    """The classic ``Pool`` demo's task: work for *seconds*, then report *name* done."""
    time.sleep(seconds)
    return f"task {name} done"


def square(x: int) -> int:
    """``x * x``, the distributed master's job."""
    return x * x


def total_of_squares(ex: Any, numbers: Any) -> int:
    """Square *numbers* on the executor *ex*; the sum of the squares.

    >>> from executors import get_executor
    >>> with get_executor("inline") as ex:
    ...     total_of_squares(ex, [1, 2, 3])
    14
    """
    return sum(ex.map(square, numbers))


# -- queues -------------------------------------------------------------------------


def producer(q: Any, items: list[Any], consumers: int = 1) -> int:
    """Put *items* on *q*, then one ``None`` sentinel per consumer; how many were put."""
    for item in items:
        q.put(item)
    for _ in range(consumers):
        q.put(None)
    return len(items)


def consumer(q: Any) -> list[Any]:
    """Take items from *q* until a ``None`` sentinel; the items taken, in order."""
    taken: list[Any] = []
    while True:
        item = q.get(timeout=30)
        if item is None:
            return taken
        taken.append(item)


def worker_loop(q: Any, results: Any) -> int:
    """A ``JoinableQueue`` worker: count the words of each text, mark each one done.

    Stops at a ``None`` sentinel (marked done too); returns how many texts it counted.
    """
    handled = 0
    while True:
        text = q.get(timeout=30)
        try:
            if text is None:
                return handled
            results[text] = count_words(text)
            handled += 1
        finally:
            q.task_done()


def count_words(text: str) -> int:
    """The number of words in *text*."""
    return len(text.split())


# -- the bank balance ------------------------------------------------------------------


def change_balance(account: Any, lock: Any, amount: int, times: int) -> None:
    """Deposit *amount* and take it out again, *times* times, each under *lock*.

    The classic thread-safety demo: without the lock, two tasks can read the same
    old balance and one of the updates is lost.
    """
    for _ in range(times):
        with lock:
            account["balance"] = account["balance"] + amount
            account["balance"] = account["balance"] - amount


class InsufficientFunds(Exception):
    """A custom exception: the account holds less than the transfer asks for."""

    def __init__(self, balance: int, amount: int) -> None:
        super().__init__(f"balance {balance} is less than {amount}")
        self.balance = balance
        self.amount = amount

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.balance, self.amount))


def transfer(balance: int, amount: int) -> int:
    """The balance after taking *amount* out; raise :class:`InsufficientFunds` if short.

    A negative *amount* is a bug in the caller: it is logged with its traceback by
    :func:`logging.exception`, then raised again as :class:`ValueError`.
    """
    try:
        if amount < 0:
            raise ValueError(f"amount must not be negative, got {amount}")
    except ValueError:
        log.exception("transfer(%d, %d) refused", balance, amount)
        raise
    if amount > balance:
        raise InsufficientFunds(balance, amount)
    return balance - amount


# -- ThreadLocal: task context and one connection per worker ---------------------------


def whoami() -> str:
    """The student bound with :func:`executors.context.bind` where the task was submitted."""
    return f"Hello, {context.student}"


class _Closer:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __del__(self) -> None:
        self.db.close()


def connect(path: str) -> None:
    """An ``initializer``: open one database connection for this worker, create a table."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("create table if not exists students (name text primary key, grade int)")
    db.executemany("insert or replace into students values (?, ?)", [("Alice", 90), ("Bob", 85)])
    db.commit()
    context.worker.db = db
    # A thread worker's namespace is dropped when the thread ends; the closer goes
    # first and closes the connection (Python 3.13 warns about unclosed ones).
    context.worker.closer = _Closer(db)
    context.worker.opened_by = threading.current_thread().name


def lookup(name: str) -> int:
    """A task that uses its worker's connection; the student's grade."""
    row = context.worker.db.execute("select grade from students where name = ?", (name,)).fetchone()
    return int(row[0])


# -- coroutines ------------------------------------------------------------------------


async def run_task(url: str, seconds: float = 0.05) -> str:
    """The classic gevent crawler's task as a coroutine: "download" *url*, report it.

    The download is a stand-in (a sleep), so the examples run offline.
    """
    import asyncio

    await asyncio.sleep(seconds)
    return f"url:{url} --->finish"
