"""Progress display for long work (rich), silent unless asked for.

Library functions take ``show_progress`` and wrap their loops in :func:`track`; the
command line turns it on.  Output goes to standard error so that it never mixes with
results on standard output.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None,
          show_progress: bool = False) -> Iterator[T]:
    """Iterate over ``items``, showing a progress bar on stderr when asked."""
    if not show_progress:
        yield from items
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield from bar.track(items, total=total, description=description)


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
