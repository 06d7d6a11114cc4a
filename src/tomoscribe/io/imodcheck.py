"""Bounds check of an IMOD binary model before imodmodel parses it.

Why this is hand-written: imodmodel (the kept IMOD reader) reads chunk after chunk
until it meets ``IEOF``.  At the end of a truncated file ``file.read`` returns empty
bytes, which imodmodel takes as an unknown chunk of size 0, so it loops forever at
100% CPU; a damaged count (points, vertices) also makes it build a format string of
any length.  imodmodel has no bounds check or time limit to switch on, so this module
walks the chunk structure exactly as imodmodel will read it and refuses the file
unless every chunk lies inside the file and an ``IEOF`` marker ends the walk.  Only
the structure is checked; imodmodel still parses the values.

Layout (https://bio3d.colorado.edu/imod/doc/binspec.html; all numbers big-endian):

* ``IMOD`` ``V1.2`` (8 bytes), then the model header (232 bytes).
* Chunks without a size field: ``OBJT`` (176 bytes), ``CONT`` (16-byte header with
  the point count ``psize``, then 12 bytes per point) and ``MESH`` (16-byte header with
  ``vsize`` and ``lsize``, then 12 bytes per vertex and 4 per index).
* Chunks with a 4-byte size after the ID.  imodmodel reads a fixed number of bytes for
  some of them whatever the size says, so the size must be exactly that: ``IMAT``
  (16), ``MINX`` (72), ``SLAN`` (60), ``SIZE`` (4 × the last contour's ``psize``), and
  the general-storage chunks ``MOST OBST COST MEST`` (a multiple of 12).  Any other
  chunk ID (``VIEW``, ``MEPA``, ``LABL``, ``CLIP`` …) is skipped by its size.
* ``IEOF`` ends the model.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..errors import InputFileError

_ID_AND_HEADER = 8 + 232
_OBJT_SIZE = 176
_CONT_HEADER = 16
_MESH_HEADER = 16
_EXACT_SIZES = {b"IMAT": 16, b"MINX": 72, b"SLAN": 60}
_STORAGE = (b"MOST", b"OBST", b"COST", b"MEST")
#: Owner each chunk needs before it: an object, a contour or a mesh of that object.
_NEEDS = {
    b"CONT": "object",
    b"MESH": "object",
    b"IMAT": "object",
    b"OBST": "object",
    b"COST": "contour",
    b"SIZE": "contour",
    b"MEST": "mesh",
}


class _Walk:
    """A cursor over the model's bytes that refuses any read past the end."""

    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.pos = path, data, 0

    def fail(self, what: str, at: int | None = None) -> InputFileError:
        at = self.pos if at is None else at
        return InputFileError(
            f"{self.path} is not a complete IMOD model: {what} at byte "
            f"{at} (file length {len(self.data)}); save it again from 3dmod."
        )

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InputFileError(
                f"{self.path} is not a complete IMOD model: {what} needs {n} bytes from "
                f"byte {self.pos} but the file is {len(self.data)} bytes long; save it "
                "again from 3dmod."
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int32(self, what: str) -> int:
        return struct.unpack(">i", self.take(4, what))[0]

    def uint32(self, what: str) -> int:
        return struct.unpack(">I", self.take(4, what))[0]


def check_imod_structure(path: str | os.PathLike, data: bytes | None = None) -> None:
    """Refuse an IMOD model that imodmodel could not read to its end.

    Parameters
    ----------
    path : path
        The ``.mod`` file.
    data : bytes, optional
        Its contents, when already read (``path`` then only names it in messages).

    Raises
    ------
    InputFileError
        One sentence naming the file, the chunk and its byte offset: the file is not
        an IMOD model, a chunk or count runs past the end of the file, a chunk appears
        where imodmodel cannot place it, or ``IEOF`` is missing.
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise InputFileError(f"{path} cannot be read ({err.strerror or err}).") from err
    walk = _Walk(path, data)
    if data[:4] != b"IMOD":
        raise InputFileError(f"{path} is not an IMOD model (it does not start with 'IMOD').")
    walk.take(_ID_AND_HEADER, "the model header")
    state = {"object": False, "contour": False, "mesh": False, "psize": 0}
    while True:
        start = walk.pos
        if start == len(data):
            raise walk.fail("the end marker IEOF is missing (the file is truncated)")
        name = walk.take(4, "a chunk ID")
        if name == b"IEOF":
            return
        _check_owner(walk, name, state, start)
        _skip_chunk(walk, name, state, start)


def _check_owner(walk: _Walk, name: bytes, state: dict, start: int) -> None:
    need = _NEEDS.get(name)
    if need and not state[need]:
        raise walk.fail(f"chunk {name.decode()} comes before any {need}", start)


def _skip_chunk(walk: _Walk, name: bytes, state: dict, start: int) -> None:
    label = _label(name)
    if name == b"OBJT":
        walk.take(_OBJT_SIZE, "object chunk OBJT")
        state.update(object=True, contour=False, mesh=False)
    elif name == b"CONT":
        psize = _count(walk, "point count of contour chunk CONT", start)
        walk.take(_CONT_HEADER - 4, "contour chunk CONT")
        walk.take(12 * psize, f"the {psize} points of contour chunk CONT")
        state.update(contour=True, psize=psize)
    elif name == b"MESH":
        vsize = _count(walk, "vertex count of mesh chunk MESH", start)
        lsize = _count(walk, "index count of mesh chunk MESH", start)
        walk.take(_MESH_HEADER - 8, "mesh chunk MESH")
        walk.take(12 * vsize + 4 * lsize, "the vertices and indices of mesh chunk MESH")
        state["mesh"] = True
    else:
        if label.startswith("b'"):
            raise walk.fail(f"{label} is not a chunk ID", start)
        size = walk.uint32(f"the size of chunk {label}")
        expected = _expected_size(name, state)
        if expected is not None and size != expected:
            raise walk.fail(f"chunk {label} says {size} bytes where {expected} belong", start)
        if name in _STORAGE and size % 12:
            raise walk.fail(f"chunk {label} has size {size}, not a multiple of 12", start)
        walk.take(size, f"chunk {label}")


def _expected_size(name: bytes, state: dict) -> int | None:
    if name == b"SIZE":
        return 4 * state["psize"]
    return _EXACT_SIZES.get(name)


def _count(walk: _Walk, what: str, start: int) -> int:
    value = walk.int32(what)
    if value < 0:
        raise walk.fail(f"the {what} is negative ({value})", start)
    return value


def _label(name: bytes) -> str:
    if all(32 < b < 127 for b in name):
        return name.decode("ascii")
    return repr(name)
