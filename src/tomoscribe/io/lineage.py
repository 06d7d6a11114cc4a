"""Which copy ``preprocess --bin`` made lies behind a file, from its provenance records.

A binned copy cannot say by itself how it was binned, nor how large the tomogram it was
binned from is, and both decide where its positions lie on the unbinned tomogram:

* ``preprocess --bin`` centres binned voxel j on original voxel b·j (as RELION's and
  Warp's binned reconstructions do), where IMOD bins by blocks from the volume's
  corner (binvol, etomo) and an IMOD model is rescaled by IMOD's corner rule — the two
  differ by (b − 1)/2 original voxels (:mod:`tomoscribe.io.points`);
* RELION 5 measures positions in Å from the unbinned tomogram's centre, n/2 voxels;
  the binned copy holds n // b voxels, so from it alone that centre is (n mod b)/2
  original voxels uncertain.

tomoscribe's outputs carry provenance sidecars naming their inputs
(:func:`tomoscribe.outputs.write_provenance`); :func:`binned_copy_behind` follows them
from a file (a pick's model, a segmentation map) back through the files on whose grid
each was made (a first input, as :func:`tomoscribe.io.particles.lineage_stems` does; a
model file's own training history is not the map's grid) to the ``preprocess`` record
of a centred binning, which records the factor and the original's shape.  Inputs
replaced since (another size) are not followed.  Where no record leads there (a map
saved by another program, a model drawn in 3dmod), nothing is known and the callers
keep the formats' own rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: How many records :func:`binned_copy_behind` follows back: the longest chain the
#: commands make (picks ← convert ← picks ← merge ← map ← binned copy) has 5.
PROVENANCE_DEPTH = 8

#: Steps whose output lies on the grid of their first input (``segment``: the tomogram
#: its record names), followed back by :func:`binned_copy_behind`.
_SAME_GRID_STEPS = ("pick", "merge", "vesicles", "segment", "select", "clean", "extract")


@dataclass(frozen=True)
class BinnedCopy:
    """A copy ``preprocess --bin`` made (centred binning).

    Attributes
    ----------
    factor : the binning factor b
    source_shape_zyx : the shape (voxels) of the tomogram it was binned from, None
        where neither its record nor that file says
    """

    factor: int
    source_shape_zyx: tuple[int, int, int] | None


def binned_copy_behind(path: str | os.PathLike) -> BinnedCopy | None:
    """The centred binning by ``preprocess --bin`` that ``path`` was made from (itself
    included), or None where its records lead to none.

    Each record leads to the file its output lies on the grid of: the first input (a
    map's tomogram, picks' map; ``merge`` checks its maps share one grid), through
    :data:`_SAME_GRID_STEPS`, ``preprocess`` without binning and ``convert`` without
    ``--binning``.  A block binning (an older ``preprocess``: IMOD's grid), a
    ``convert --binning`` or any other step ends the search with None, as does an input
    that is gone or no longer the size its record says.
    """
    from ..outputs import read_provenance

    current = Path(path)
    for _ in range(PROVENANCE_DEPTH):
        record = read_provenance(current)
        if not isinstance(record, dict):
            return None
        step, params = record.get("step"), record.get("parameters") or {}
        if step == "preprocess":
            factor = int(params.get("bin_factor") or 1)
            if factor > 1:
                centred = record.get("binning") == "centred"
                return BinnedCopy(factor, _source_shape(record)) if centred else None
        elif step == "convert":
            if params.get("binning") is not None:
                return None
        elif step not in _SAME_GRID_STEPS:
            return None
        source = _grid_source(record)
        if source is None:
            return None
        current = source
    return None


def _grid_source(record: dict) -> Path | None:
    """The input a record's output lies on the grid of (first input; ``segment``: the
    tomogram it names), None when gone or replaced since (another size)."""
    inputs = [i for i in record.get("inputs") or [] if isinstance(i, dict) and i.get("path")]
    named = record.get("tomogram") if record.get("step") == "segment" else None
    if isinstance(named, dict) and named.get("path"):
        entry = next((i for i in inputs if i["path"] == named["path"]), named)
    elif inputs:
        entry = inputs[0]
    else:
        return None
    source = Path(str(entry["path"]))
    if not source.exists():
        return None
    if source.is_file() and entry.get("bytes") is not None:
        if source.stat().st_size != entry["bytes"]:
            return None  # replaced since: its record no longer describes it
    return source


def _source_shape(record: dict) -> tuple[int, int, int] | None:
    """The original's shape (z, y, x): recorded by ``preprocess`` since this record
    field was added (tomoscribe 0.2.1, 2026-12-02), else read from the original's header
    where it is still the file recorded."""
    shape = record.get("source_shape_zyx")
    if isinstance(shape, list) and len(shape) == 3:
        return tuple(int(n) for n in shape)
    source = _grid_source(record)
    if source is None:
        return None
    from . import read_volume

    try:
        return tuple(int(n) for n in read_volume(source).shape)
    except Exception:  # unreadable now, or without a voxel size: unknown
        return None


def centred_extent(path: str | os.PathLike, shape_zyx) -> tuple:
    """The size, in voxels of ``path``, whose half is the unbinned tomogram's centre
    (RELION 5's centred Å): n / b for a copy ``preprocess --bin`` made from an n-voxel
    tomogram (n // b voxels, ``shape_zyx``), else ``shape_zyx`` itself."""
    binned = binned_copy_behind(path)
    if binned is None or binned.source_shape_zyx is None:
        return tuple(shape_zyx)
    source = binned.source_shape_zyx
    if tuple(n // binned.factor for n in source) != tuple(int(n) for n in shape_zyx):
        return tuple(shape_zyx)  # not that copy's grid (cropped, or another chain)
    return tuple(n / binned.factor for n in source)


__all__ = ["BinnedCopy", "PROVENANCE_DEPTH", "binned_copy_behind", "centred_extent"]
