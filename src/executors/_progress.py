"""Progress of long work, shared by ``map(progress=...)`` and ``python -m executors run``.

::

    progress=True ──────> stderr a terminal? ──no──> None: nothing drawn, no cost
                                │ yes
                                ├── tqdm installed ('pluggable-executors[progress]') ──> _TqdmBar
                                └── otherwise ─────────────────────────────> _PlainBar
    progress=fn ────────> _Callback: fn(done, total) as each result is taken

    map's results ──> track() ──> reporter.advance() per result ──> the caller

Both bars redraw on a ticker thread every half second as well, so the elapsed
time and the ETA move while a long item runs; the thread ends with the bar.
Counts are items, never chunks: ``track`` sees the results a map yields.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, TextIO, TypeVar, Union

if TYPE_CHECKING:
    from typing_extensions import TypeAlias

__all__ = ["ProgressArg", "Reporter", "reporter", "total_of", "track"]

R = TypeVar("R")

#: What ``map(progress=...)`` takes: a flag, or a callable given ``(done, total)``.
ProgressArg: TypeAlias = Union[bool, Callable[[int, Union[int, None]], object], None]

TICK = 0.5  # seconds between redraws while nothing finishes


class Reporter:
    """Counts finished items out of *total* (None: unknown); a bar or callback shows them."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0

    def advance(self, n: int = 1, failed: int = 0) -> None:
        """*n* more items are done, *failed* of them failed."""
        self.done += n
        self.failed += failed

    @contextlib.contextmanager
    def hidden(self) -> Iterator[None]:
        """The bar off the terminal while other output is written, then drawn again."""
        yield

    def close(self) -> None:
        """The final state drawn (or the bar cleared); no more redraws."""


class _Callback(Reporter):
    def __init__(self, fn: Callable[[int, int | None], object], total: int | None) -> None:
        super().__init__(total)
        self.fn = fn

    def advance(self, n: int = 1, failed: int = 0) -> None:
        super().advance(n, failed)
        self.fn(self.done, self.total)


class _Bar(Reporter):
    """A bar on *stream*, redrawn as items finish and by a ticker thread."""

    def __init__(self, total: int | None, stream: TextIO, unit: str, leave: bool) -> None:
        super().__init__(total)
        self.stream = stream
        self.unit = unit
        self.leave = leave
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="executors-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(TICK):
            with self._lock:
                if not self._closed.is_set():
                    self._draw()

    def _draw(self) -> None:
        raise NotImplementedError

    def _clear(self) -> None:
        raise NotImplementedError

    def advance(self, n: int = 1, failed: int = 0) -> None:
        with self._lock:
            super().advance(n, failed)
            self._draw()

    @contextlib.contextmanager
    def hidden(self) -> Iterator[None]:
        with self._lock:
            self._clear()
            try:
                yield
            finally:
                self._draw()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._lock:
            self._finish()

    def _finish(self) -> None:
        raise NotImplementedError


def _width(stream: TextIO) -> int:
    """The columns of the terminal *stream* writes to; 0 when it does not say."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # no descriptor, or not a terminal
        return 0


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _PlainBar(_Bar):
    """One line, ``42%|#####     | 42/100 [00:03<00:04, 12.5 it/s]``, redrawn at most ~10/s."""

    def __init__(self, total: int | None, stream: TextIO, unit: str, leave: bool) -> None:
        self._drawn = 0.0
        self._shown = False
        super().__init__(total, stream, unit, leave)

    def line(self, width: int) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        failed = f", {self.failed} failed" if self.failed else ""
        speed = f"{rate:.1f} {self.unit}/s{failed}"
        if not self.total:
            return f"{self.done} {self.unit} [{_clock(elapsed)}, {speed}]"
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "?"
        stats = f" {self.done}/{self.total} [{_clock(elapsed)}<{eta}, {speed}]"
        percent = f"{100 * self.done // self.total:3d}%|"
        room = max(10, min(40, width - len(percent) - len(stats) - 2))
        filled = room * min(self.done, self.total) // self.total
        return f"{percent}{'#' * filled}{' ' * (room - filled)}|{stats}"

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._shown and now - self._drawn < 0.1:
            return
        self._drawn = now
        width = _width(stream=self.stream) or shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + self.line(width)[: width - 1] + "\033[K")
        self.stream.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def _finish(self) -> None:
        if self.leave:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
        else:
            self._clear()


class _TqdmBar(_Bar):
    def __init__(self, total: int | None, stream: TextIO, unit: str, leave: bool) -> None:
        tqdm: Any = importlib.import_module("tqdm")
        # monitor_interval=0: our ticker redraws, and no thread of tqdm's is left behind
        kind = type("_Tqdm", (tqdm.tqdm,), {"monitor_interval": 0})
        # tqdm hides its bar on a terminal that reports no size (a fresh pty): give one
        size: dict[str, Any] = {"dynamic_ncols": True}
        if not _width(stream):
            size = {"ncols": 80, "nrows": 24}
        self.bar = kind(total=total, file=stream, unit=unit, leave=leave, **size)
        super().__init__(total, stream, unit, leave)

    def advance(self, n: int = 1, failed: int = 0) -> None:
        with self._lock:
            Reporter.advance(self, n, failed)
            if failed:
                self.bar.set_postfix_str(f"{self.failed} failed", refresh=False)
            self.bar.update(n)

    def _draw(self) -> None:
        self.bar.refresh()

    def _clear(self) -> None:
        self.bar.clear()

    def _finish(self) -> None:
        self.bar.close()


def _has_tqdm() -> bool:
    try:
        importlib.import_module("tqdm")
    except ImportError:
        return False
    return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or closed
        return False


def reporter(
    progress: ProgressArg,
    total: int | None,
    *,
    force: bool = False,
    unit: str = "it",
    leave: bool = True,
) -> Callable[[], Reporter] | None:
    """How to make the reporter *progress* asks for, or None when nothing is to be shown.

    ``True`` draws a bar on stderr when it is a terminal (always with *force*);
    a callable is called with ``(done, total)`` as items finish.

    :raises TypeError: for anything else, naming what is allowed.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        stream = sys.stderr
        if stream is None or not (force or _isatty(stream)):
            return None
        kind = _TqdmBar if _has_tqdm() else _PlainBar
        return lambda: kind(total, stream, unit, leave)
    if callable(progress):
        fn = progress
        return lambda: _Callback(fn, total)
    raise TypeError(
        f"progress must be True, False or a callable taking (done, total), got {progress!r} "
        f"({type(progress).__name__})"
    )


def total_of(iterables: Iterable[Iterable[Any]]) -> int | None:
    """How many items zipping *iterables* gives: the shortest length known, else None."""
    sizes = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
    return min(sizes) if sizes else None


def track(results: Iterator[R], progress: ProgressArg, total: int | None) -> Iterator[R]:
    """*results*, counted by the reporter *progress* asks for as each one is taken.

    The reporter is made on the first ``next()``, so an iterator never started
    leaves no thread behind; closing the iterator closes *results* too.
    """
    make = reporter(progress, total)
    return results if make is None else _tracked(results, make)


def _tracked(results: Iterator[R], make: Callable[[], Reporter]) -> Iterator[R]:
    shown = make()
    try:
        for result in results:
            shown.advance()
            yield result
    finally:
        shown.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
