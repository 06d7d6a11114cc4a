"""Preprocessing on files: what ``tomoscribe preprocess`` does, as a call.

:func:`preprocess_file` reads a tomogram (MRC, OME-Zarr, TIFF), checks the parameters
and the space for the output, and streams it slab by slab through
:func:`tomoscribe.preprocess.preprocess_into` into a float32 MRC or OME-Zarr file with
its provenance record (the acquisition record carried, at the binned voxel size).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import create_volume, read_volume_checked, warn_unset_voxel_size
from ..io.provenance import carried_acquisition
from ..outputs import check_free_space, write_provenance
from ..volume import check_is_tomogram
from . import PreprocessParams, binned_geometry, preprocess_into
from .check import warn_if_beam_not_along_z, warn_if_labels


@dataclass(frozen=True)
class Preprocessed:
    """What :func:`preprocess_file` wrote.

    Attributes
    ----------
    shape : (z, y, x) voxels of the output
    voxel_size_A : (x, y, z) voxel size of the output, Å
    statistics : mean and standard deviation (and more) of the band-passed volume
        before normalisation, as recorded in the provenance
    """

    shape: tuple[int, int, int]
    voxel_size_A: tuple[float, float, float]
    statistics: dict


def preprocess_file(
    tomogram: str | os.PathLike,
    output: str | os.PathLike,
    params: PreprocessParams,
    *,
    voxel_size_A: float | None = None,
    channel: int | None = None,
    overwrite: bool = True,
    show_progress: bool = False,
) -> Preprocessed:
    """Bin, band-pass (Å), normalise and clamp a tomogram file into ``output``.

    Parameters
    ----------
    tomogram : input volume (.mrc, .zarr, .tif)
    output : float32 .mrc or .zarr to write, with a provenance sidecar
    params : the preprocessing (lengths in Å; validated against the binned voxel size)
    voxel_size_A : the input's voxel size (Å) where its header lacks it (or records an
        unset 1 Å); one that disagrees with the header's by over 1% is refused
    channel : the channel of a colour TIFF
    overwrite : replace an earlier output of tomoscribe's

    Raises
    ------
    ParameterError
        A filter length is shorter than two binned voxels or otherwise out of range.
    OutputError
        The output's file system lacks the space for it.
    """
    tomogram, output = Path(tomogram), Path(output)
    volume = read_volume_checked(tomogram, voxel_size_A, channel)
    check_is_tomogram(volume, tomogram)
    # Its filters are in Å: at an unset 1 Å the default 20 Å low-pass is 20 voxels.
    warn_unset_voxel_size(tomogram, volume, "the tomogram to filter", "give it (`voxel_size_A`)")
    params.validate(volume.pixel_size_A * params.bin_factor)
    shape, voxel, origin = binned_geometry(volume, params.bin_factor)
    check_free_space(output, 4 * int(np.prod(shape)))  # float32
    warn_if_labels(volume, tomogram.name, "band-passed and normalised, its labels are lost")
    warn_if_beam_not_along_z(volume, tomogram.name)
    _warn_if_preprocessed(tomogram, params)
    _warn_if_coarse(tomogram, volume.pixel_size_A)
    with create_volume(output, shape, np.float32, voxel, origin, overwrite=overwrite) as out:
        stats = preprocess_into(volume, out, params, show_progress=show_progress)
    write_provenance(
        output,
        "preprocess",
        {**params.as_dict(), "voxel_size_A": voxel},
        [tomogram],
        extra={
            "binning": "centred",  # its absence marks block binning: io.warn_block_binned
            "source_shape_zyx": list(volume.shape),  # the centre RELION 5 measures from
            "statistics_before_normalisation": stats,
            **carried_acquisition([tomogram], voxel[0]),
        },
    )
    return Preprocessed(tuple(shape), tuple(voxel), stats)


def _warn_if_preprocessed(tomogram: Path, params: PreprocessParams) -> None:
    """Say when the tomogram is already ``preprocess``'s output, as its record says: it
    is filtered and normalised a second time, and ``invert`` turns an inverted one back
    (a trial: `--invert` twice gave the original contrast, band-passed twice, and the new
    record said only "invert: true")."""
    import warnings

    from ..outputs import read_provenance
    from .check import preprocess_flags

    record = read_provenance(tomogram) or {}
    if record.get("step") != "preprocess":
        return
    earlier = record.get("parameters") or {}
    inverted = bool(earlier.get("invert"))
    back = " and inverts it back" if inverted and params.invert else ""
    warnings.warn(
        f"{tomogram.name} is already preprocess's output ({preprocess_flags(earlier)}"
        + (" --invert" if inverted else "")
        + f"): this run filters and normalises it a second time{back}; preprocess the "
        "original tomogram instead if that was not meant.",
        stacklevel=3,
    )


#: Tomograms are reconstructed at this many Å per voxel or less (bin 8 of 6 Å pixels is
#: 48 Å); a coarser size is likely a header's typo.
COARSEST_TOMOGRAM_VOXEL_A = 500.0


def _warn_if_coarse(tomogram: Path, voxel_size_A: float) -> None:
    """Say when the tomogram's voxels are coarser than :data:`COARSEST_TOMOGRAM_VOXEL_A`:
    its filters, in Å, then keep almost nothing (a trial's header said 105,200 Å; the
    default 4000 Å high-pass left only edges, and the one warning was about the
    low-pass)."""
    import warnings

    if voxel_size_A > COARSEST_TOMOGRAM_VOXEL_A:
        warnings.warn(
            f"{tomogram.name} is read at {voxel_size_A:g} Å per voxel, coarser than "
            f"tomograms are reconstructed at (rarely above {COARSEST_TOMOGRAM_VOXEL_A:g} Å), "
            "so the band-pass in Å keeps almost nothing of it: if its header is wrong, "
            "correct it first (IMOD's alterheader -del).",
            stacklevel=3,
        )
