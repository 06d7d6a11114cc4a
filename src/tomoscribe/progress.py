"""Progress display for long work (rich), silent unless asked for.

Library functions take ``show_progress`` and wrap their loops in :func:`track`; the
command line turns it on.  Output goes to standard error so that it never mixes with
results on standard output.

A caller that shows progress elsewhere (the napari plugin's progress bars) wraps the
work in :func:`observe`: every :func:`track` loop of that thread then reports
``(description, done, total)`` to its callback after each item, and the callback may
raise :class:`Cancelled` to stop the work between two items.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_watchers = threading.local()
_live_bars: list = []  # the rich Progress displays drawn now, innermost last


class Cancelled(Exception):
    """The person who started the work stopped it (a viewer's cancel button).

    Not a :class:`tomoscribe.errors.TomoscribeError`: like Ctrl-C, it keeps what resumable
    work (``segment``'s unfinished maps, ``train``'s checkpoint) has done so far.
    """


@contextlib.contextmanager
def observe(callback: Callable[[str, int, int | None], None]):
    """Report every :func:`track` loop run in this thread to ``callback``.

    ``callback(description, done, total)`` is called before the first item (done 0) and
    after each item; it may raise :class:`Cancelled`.
    """
    previous = getattr(_watchers, "callback", None)
    _watchers.callback = callback
    try:
        yield
    finally:
        _watchers.callback = previous


def _observed(items: Iterable[T], description: str, total: int | None, callback) -> Iterator[T]:
    callback(description, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        callback(description, done, total)


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    show_progress: bool = False,
    transient: bool = False,
) -> Iterator[T]:
    """Iterate over ``items``, showing a progress bar on stderr when asked (and telling
    the thread's :func:`observe` callback, if any); a ``transient`` bar is cleared when
    done (a stage whose command may still end in an error sentence)."""
    callback = getattr(_watchers, "callback", None)
    if callback is not None:
        items = _observed(items, description, total, callback)
    if not show_progress:
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=transient) as bar:
        _live_bars.append(bar)
        try:
            yield from bar.track(items, total=total, description=description)
        except (Exception, GeneratorExit):  # the loop did not finish: an error ends it
            _clear_when_stopped(bar)
            raise
        finally:
            if bar in _live_bars:
                _live_bars.remove(bar)


def clear_bars() -> None:
    """Take every progress bar drawn now off the screen, as a transient bar goes.

    A command that stops on an error calls this before its one sentence: the bar of the
    stage that found the error (half drawn, at 0 of N) would otherwise stay above it.
    A loop that does not finish (an error in its items, or one in its body that closes
    the generator as the frames unwind) clears its own bar in :func:`track`; a generator
    still open when the sentence is due (its frame kept by the traceback) is stopped
    here, before the sentence, so that its clearing cannot erase it.
    """
    while _live_bars:
        bar = _live_bars.pop()
        _clear_when_stopped(bar)
        bar.stop()


def _clear_when_stopped(bar) -> None:
    """Make a bar go when it stops, on a terminal (elsewhere, a log, rich writes the bar
    once when it stops, and a cleared one would leave an empty line instead)."""
    if bar.console.is_terminal:
        bar.live.transient = True


def printer(prefix: str, enabled: bool) -> Callable[[str], None]:
    """A function printing ``[prefix] message`` lines to stderr, or nothing."""

    def say(message: str) -> None:
        if enabled:
            print(f"[{prefix}] {message}", file=sys.stderr, flush=True)

    return say


def step_timer(timings: dict[str, float]):
    """A context manager factory adding each block's wall time (s) to ``timings[name]``."""

    @contextlib.contextmanager
    def timed(name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    return timed
