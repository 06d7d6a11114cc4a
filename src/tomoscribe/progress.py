"""Progress display for long work (rich), silent unless asked for.

Library functions take ``show_progress`` and wrap their loops in :func:`track`; the
command line turns it on.  Output goes to standard error so that it never mixes with
results on standard output.
"""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

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
