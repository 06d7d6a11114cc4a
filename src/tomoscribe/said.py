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
