"""What one command run has already said: readers warn of a file's oddities once per run.

A command reads its input more than once (a trial's ``segment`` said three times that
its tomogram's voxels were not cubes).  :func:`said_once` marks a command run (the
command line wraps every command in it); :func:`first_time` then answers whether a
warning about one state of one file is new.  Outside a run (a notebook, a viewer) every
warning is new.  Kept free of heavy imports: the command line imports it at start.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

_SAID: contextvars.ContextVar[set | None] = contextvars.ContextVar("tomoscribe_said", default=None)


@contextlib.contextmanager
def said_once() -> Iterator[None]:
    """Within it (one command run), each warning about a file's state is said once."""
    token = _SAID.set(set())
    try:
        yield
    finally:
        _SAID.reset(token)


def first_time(path: str | os.PathLike, what: tuple) -> bool:
    """Whether ``what`` (the oddities found) has not yet been said of ``path`` as it is
    now (real path, size, modification time) in this run; records it as said."""
    said = _SAID.get()
    if said is None:
        return True
    try:
        st = os.stat(path)
    except OSError:
        return True
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, tuple(what))
    if key in said:
        return False
    said.add(key)
    return True


@contextlib.contextmanager
def said_when_done() -> Iterator[list]:
    """Warnings raised inside (the list yielded holds them meanwhile), said only once it
    ends without an error: where the work
    may still end in a refusal, the refusal is then the only line (a trial's PNG given
    as a particle stack printed four of mrcfile's complaints before it; extract's
    warnings about the picks came before a NaN voxel found while it wrote the boxes)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
