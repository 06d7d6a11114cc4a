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
from a file (a pick's model, a segmentation map) back through the volumes it was made
from to the ``preprocess`` record of a centred binning, which records the factor and
the original's shape.  Records of inputs replaced since (another size) are not
followed, nor inputs that are not volumes (a model file's own training history is not
the map's).  Where no record leads there (a map saved by another program, a model
drawn in 3dmod), nothing is known and the callers keep the formats' own rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: How many records :func:`binned_copy_behind` reads at most.
PROVENANCE_DEPTH = 12


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
    included), or None where its records lead to none."""
    from ..outputs import read_provenance

    todo, seen = [Path(path)], set()
    while todo and len(seen) < PROVENANCE_DEPTH:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        record = read_provenance(current)
        if not isinstance(record, dict):
            continue
        factor = int((record.get("parameters") or {}).get("bin_factor") or 1)
        if record.get("step") == "preprocess" and record.get("binning") == "centred" and factor > 1:
            return BinnedCopy(factor, _source_shape(record))
        todo.extend(_volume_inputs(record))
    return None


def _volume_inputs(record: dict) -> list[Path]:
    """The inputs of a record that are volumes and still the size recorded."""
    from . import volume_format

    found = []
    for entry in record.get("inputs") or []:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        source = Path(str(entry["path"]))
        try:
            volume_format(source)
        except Exception:  # not a volume's name: a model, a table
            continue
        if not source.exists():
            continue
        if source.is_file() and entry.get("bytes") is not None:
            if source.stat().st_size != entry["bytes"]:
                continue  # replaced since: its record no longer describes it
        found.append(source)
    return found


def _source_shape(record: dict) -> tuple[int, int, int] | None:
    """The original's shape (z, y, x): recorded by ``preprocess`` since 0.2.2, else read
    from the original's header where it is still the file recorded."""
    shape = record.get("source_shape_zyx")
    if isinstance(shape, list) and len(shape) == 3:
        return tuple(int(n) for n in shape)
    sources = _volume_inputs(record)
    if not sources:
        return None
    from . import read_volume

    try:
        return tuple(int(n) for n in read_volume(sources[0]).shape)
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
