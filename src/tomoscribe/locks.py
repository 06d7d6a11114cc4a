"""One writer per output: an exclusive lock beside each output while it is written.

A run that writes ``out.mrc`` (or fills the resumable ``.out.mrc.partial``) holds an
``fcntl.flock`` on the hidden file ``.out.mrc.lock`` in the same folder, which records
the owner's pid, host and command.  A second run asking for the same output is refused
at once with one sentence naming the first.  ``flock`` locks belong to the open file and
vanish when their process dies (``kill -9`` included), so a lock left by a dead run is
taken over without any guessing about pids; the lock file is removed when the lock is
released.  Removal races are closed the usual way: after locking, the holder checks that
the name still refers to the file it locked, and tries again if not.

Locks are re-entrant within one process (a writer that holds ``out.mrc``'s lock may open
nested writers of the same output).  The lock file is opened with ``O_NOFOLLOW``, so a
symbolic link planted under its name is refused rather than followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

from .errors import OutputError

_held: dict[str, list] = {}  # absolute lock path -> [fd, depth]
_held_guard = threading.Lock()


def lock_path(output: str | os.PathLike) -> Path:
    """The hidden lock file that guards ``output``: ``.NAME.lock`` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


def _owner_text(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
        return f"pid {record.get('pid')} on {record.get('host')}" + (
            f" ({record.get('command')})" if record.get("command") else ""
        )
    except (OSError, ValueError, AttributeError):
        return "another process"


@contextlib.contextmanager
def output_lock(output: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive writer's lock of ``output`` for the ``with`` block.

    Parameters
    ----------
    output : path
        The output the lock guards (the file or folder the run will write).

    Raises
    ------
    OutputError
        If another live process holds the lock (the message names it), or the lock
        cannot be created (no permission, read-only file system, a link in its place).
    """
    path = lock_path(output)
    key = str(path.absolute())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    from .outputs import make_folders, remove_empty_folders

    try:
        created = make_folders(path.parent)
    except OSError as err:
        raise OutputError(
            f"cannot create the folder {path.parent}: {err.strerror or err}."
        ) from None
    try:
        fd = _acquire(path, output)
    except BaseException:
        remove_empty_folders(created)
        raise
    with _held_guard:
        _held[key] = [fd, 1]
    try:
        yield path
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        remove_empty_folders(created)


def _acquire(path: Path, output) -> int:
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OutputError(
                    f"{path} is a symbolic link; remove it before writing {output}."
                ) from None
            raise OutputError(
                f"cannot write beside {output}: {err.strerror or err} ({path.parent})."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"{output} is being written by another tomoscribe run "
                    f"({_owner_text(path)}); wait for it to finish or choose "
                    "another output."
                ) from None
            raise
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the name between our open and lock
            os.close(fd)
            continue
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["tomoscribe", *sys.argv[1:]])[:200],
        }
        with contextlib.suppress(OSError):  # the record only informs; a full disk is met later
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(record) + "\n").encode())
        return fd
    raise OutputError(
        f"could not lock {output}: its lock file keeps changing; is another "
        "run starting and stopping?"
    )


__all__ = ["output_lock", "lock_path"]
