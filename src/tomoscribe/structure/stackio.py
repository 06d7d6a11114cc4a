"""Subtomogram sets on disk: one MRC per particle plus a RELION-style STAR index.

An extraction folder holds ``subtomo_000001.mrc`` … (float32, the voxel size in the
header), ``projections.mrcs`` (their Z-projections, one image per particle) and
``particles.star`` whose rows carry ``rlnImageName`` (named from the working folder,
as RELION reads them, else absolute: :mod:`tomoscribe.io.image_names`),
the coordinates in the source tomogram, the rounding residual and the CRC-32 of each
subtomogram's voxels (``tomoscribeImageCrc32``: float32 values in native byte order),
which every later reader of the subtomograms checks: a STAR file of ``clean``,
``select`` or ``average`` whose folder was extracted again (other particles under the
same names) is refused instead of pairing one particle's row with another's voxels.
Where the tilt range is known the folder also holds ``wedge.mrc``, every row's
``rlnCtfImage``: RELION's subtomogram averaging (relion_refine ``--ctf`` on 3D
images, as RELION 3.0 and Warp's subtomograms give it) weights each subtomogram's
Fourier components by such a 3D CTF volume, and without one takes the missing wedge
for measured zeros.  It holds the wedge only (1 measured, 0 missing; no CTF or dose
weights, which a tomogram does not record), in the FFTW half layout RELION windows
(``ml_optimiser.cpp``: x size = y size / 2 + 1, frequency 0 at the first voxel), the
same for every particle of a tomogram: the wedge is fixed in the tomogram's frame.
Writing goes to a staging folder whose files move into place when complete
(:func:`tomoscribe.outputs.output_folder`), so an interrupted run never leaves a folder
that looks finished, and an existing folder keeps every file tomoscribe did not write.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError
from ..io.formats.relion import BOX_COLUMNS, IMAGE_COLUMNS
from ..io.image_names import located_image_names, split_image_name, voxel_checksum
from ..io.mrc import zyx_ordered
from ..io.particles import read_particles, recorded_voxel_size, write_particles
from ..outputs import output_folder
from ..progress import track


def write_particle_folder(
    folder: str | os.PathLike,
    stack,
    table: pd.DataFrame,
    voxel_size_A: float,
    tomogram_shape_zyx=None,
    overwrite: bool = True,
    wedge: np.ndarray | None = None,
    show_progress: bool = False,
) -> Path:
    """Write subtomograms, their Z-projections and the index STAR into ``folder``;
    ``stack`` is an array (p, box, box, box) or any iterable of ``table``'s boxes in its
    order (:func:`tomoscribe.structure.extract.iter_subtomograms`: one in memory at a
    time); ``wedge`` (box × box × (box/2 + 1), measured 1 / missing 0 on the rfftn
    grid, :func:`tomoscribe.core.wedge.wedge_mask`), when given, as :data:`WEDGE_FILE`,
    every row's ``rlnCtfImage``: RELION's 3D CTF volume of a subtomogram (module
    docstring)."""
    import mrcfile

    folder = Path(folder)
    with output_folder(folder, overwrite, step="extract") as tmp:
        names, checksums, projections = [], [], []
        boxes = track(stack, "extract", len(table), show_progress, transient=True)
        for i, volume in enumerate(boxes):
            name = f"subtomo_{i + 1:06d}.mrc"
            data = np.ascontiguousarray(volume, np.float32)
            with mrcfile.new(tmp / name) as mrc:
                mrc.set_data(data)
                mrc.voxel_size = voxel_size_A
            names.append(name)
            checksums.append(voxel_checksum(data))
            projections.append(data.sum(axis=0))
        box = int(projections[0].shape[-1])
        with mrcfile.new(tmp / "projections.mrcs") as mrc:
            mrc.set_data(np.ascontiguousarray(np.stack(projections), np.float32))
            mrc.set_image_stack()
            mrc.voxel_size = voxel_size_A
        # new boxes, cut about the positions: not the coordinates an input's boxes had
        index = table.drop(columns=[*BOX_COLUMNS, *IMAGE_COLUMNS], errors="ignore")
        final = Path(os.path.abspath(folder))  # named from the working folder (RELION's)
        index["image_name"] = [str(final / name) for name in names]
        index["image_crc32"] = checksums
        index["image_voxel_size_A"] = float(voxel_size_A)  # new images: not the input's
        index["image_size_px"] = box  # RELION's rlnImageSize (optics)
        if wedge is not None:
            _write_wedge(tmp / WEDGE_FILE, wedge, box, voxel_size_A)
            index["ctf_image"] = str(final / WEDGE_FILE)
        write_particles(tmp / "particles.star", index, voxel_size_A, tomogram_shape_zyx)
    return folder


#: The missing-wedge volume of an extraction folder whose tilt range is known.
WEDGE_FILE = "wedge.mrc"


def _write_wedge(path: Path, wedge: np.ndarray, box: int, voxel_size_A: float) -> None:
    """The wedge as RELION reads a 3D CTF volume in FFTW's half layout: nx = box/2 + 1,
    ny = nz = box, frequency 0 at voxel (0, 0, 0), negative frequencies wrapped
    (relion_refine windows such a volume; a cubic one it reads centred instead)."""
    import mrcfile

    if wedge.shape != (box, box, box // 2 + 1):
        raise ValueError(f"a wedge of shape {wedge.shape} for boxes of {box} voxels")
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(wedge, np.float32))
        mrc.voxel_size = voxel_size_A


def check_subtomogram_files(star: str | os.PathLike) -> None:
    """Refuse, before coordinates are read, a STAR file whose particle images are not
    3D subtomograms here: RELION 5 2D stacks of the tilt series
    (``rlnTomoSubTomosAre2DStacks`` 1), RELION 4/5's CTF-premultiplied
    pseudo-subtomograms (``rlnCtfDataAreCtfPremultiplied`` 1: "abstract 3D image
    terms" for relion_refine, as relion_tomo_subtomo's documentation calls them, whose
    average is not the particle's density), or files found nowhere
    (:func:`tomoscribe.io.image_names.found_image_file`).
    """
    from ..io.formats.relion import particle_block_key, read_star_blocks
    from ..io.particles import FORMATS

    star = Path(star)
    if star.is_file() and star.suffix.lower() not in FORMATS:
        # a trial's `average tomogram.mrc` was told "unknown particle format"
        raise InputFileError(
            f"{star} is not a particle list; give a STAR file that names the subtomograms "
            "(rlnImageName), such as the particles.star of an extraction folder."
        )
    if star.suffix.lower() != ".star" or not star.is_file():
        return
    blocks = read_star_blocks(star)
    for block in blocks.values():
        flag = block.get("rlnTomoSubTomosAre2DStacks") if isinstance(block, dict) else None
        if flag is None and isinstance(block, pd.DataFrame):
            column = block.get("rlnTomoSubTomosAre2DStacks")
            flag = column.iloc[0] if column is not None and len(column) else None
        if flag is not None and str(flag).strip() == "1":
            raise InputFileError(
                f"{star}'s particle images are RELION 5 2D stacks of the tilt series, "
                "not subtomograms; cut subtomograms with `tomoscribe extract` from the "
                "tomogram and this file."
            )
    particles = blocks[particle_block_key(blocks, star)]
    if "rlnImageName" not in particles:
        return
    if _premultiplied(particles, blocks.get("optics")):
        raise InputFileError(
            f"{star}'s particle images are RELION's CTF-premultiplied pseudo-subtomograms "
            "(rlnCtfDataAreCtfPremultiplied 1: image terms for relion_refine, not the "
            "particles' density); cut subtomograms with `tomoscribe extract` from the "
            "tomogram and this file."
        )
    checksums = None
    if "tomoscribeImageCrc32" in particles:  # a folder of ours: its own files, moved
        checksums = pd.to_numeric(particles["tomoscribeImageCrc32"], errors="coerce").to_numpy()
    names = particles["rlnImageName"].astype(str)
    for name in located_image_names(names, star, checksums):
        file = split_image_name(name)[1]
        if not Path(file).is_file():  # found nowhere: kept as written
            raise InputFileError(
                f"{star} lists subtomograms that are not here ({file}, looked for beside "
                "it, from the working folder and from the folders above it); run from the "
                "RELION project folder, or cut them with `tomoscribe extract`."
            )


def _premultiplied(particles: pd.DataFrame, optics) -> bool:
    """Whether any particle's images are CTF-premultiplied (RELION 4/5's
    ``rlnCtfDataAreCtfPremultiplied`` 1, on the row or in its optics group)."""
    column = "rlnCtfDataAreCtfPremultiplied"
    flags = [particles[column]] if column in particles else []
    if isinstance(optics, pd.DataFrame) and column in optics:
        if "rlnOpticsGroup" in optics and "rlnOpticsGroup" in particles:
            used = optics["rlnOpticsGroup"].isin(particles["rlnOpticsGroup"])
            flags.append(optics.loc[used, column])
        else:
            flags.append(optics[column])
    return any((pd.to_numeric(f, errors="coerce") == 1).any() for f in flags)


def _image_voxel_size(star: Path, header_A: float | None, table: pd.DataFrame) -> float | None:
    """The subtomograms' voxel size (Å): their headers' (0, and IMOD's unset 1 Å, are no
    record), else the STAR's ``rlnImagePixelSize`` (else tilt-series pixel × binning:
    :func:`tomoscribe.io.formats.relion.image_pixel_sizes`), else its coordinates'.
    A header that contradicts an ``rlnImagePixelSize`` the file states by over 1% is
    refused: RELION takes the STAR's, tomoscribe took the header's, and nothing said
    which was right (the derived size, which an import may leave at binning 1, is
    only a fallback)."""
    from ..io.formats.relion import image_pixel_sizes, read_star_blocks

    given = derived = None
    if star.suffix.lower() == ".star":
        blocks = read_star_blocks(star)
        sizes = image_pixel_sizes(blocks, star, derived=False)
        given = float(np.median(sizes)) if sizes is not None else None
        sizes = image_pixel_sizes(blocks, star)  # or tilt-series pixel × binning
        derived = float(np.median(sizes)) if sizes is not None else None
    recorded = header_A is not None and header_A > 0 and abs(header_A - 1.0) > 1e-6
    if recorded and given is not None and abs(header_A - given) > 0.01 * given:
        raise InputFileError(
            f"{star} gives its subtomograms {given:g} Å voxels (rlnImagePixelSize) but "
            f"their headers record {header_A:g} Å; correct whichever is wrong (the STAR's "
            "rlnImagePixelSize, or the headers with IMOD's alterheader -del)."
        )
    if recorded:
        return header_A
    return given or derived or recorded_voxel_size(table)


def _check_alike(paths: list[Path], values: list[float], what: str, describe) -> None:
    """Refuse subtomograms whose ``values`` (box edge, voxel size) differ by more than
    1 in 1,000 from the value most of them have, naming the first that does (the first
    listed was named as the odd one when it alone differed).  ``describe(value)``
    words a value and ``what`` the quantity for the message."""
    values = np.asarray(values, float)
    # the value nearest the median: most subtomograms' (one pass, not pairwise)
    common = values[int(np.argmin(np.abs(values - np.median(values))))]
    alike = np.abs(values - common) <= 1e-3 * abs(common)
    if alike.all():
        return
    first = int(np.flatnonzero(~alike)[0])
    raise InputFileError(
        f"{paths[first]} has {describe(values[first])} where {int(alike.sum())} of the "
        f"{len(values)} subtomograms have {describe(common)}; all {what} must match."
    )


def read_particle_set(star: str | os.PathLike):
    """Subtomograms listed by a STAR file with ``rlnImageName``.

    Returns
    -------
    stack (p, n, n, n) float32, table (DataFrame), voxel size (Å: the subtomograms'
    headers', else the STAR file's; refused when the two disagree: :func:`_image_voxel_size`)

    Raises
    ------
    InputFileError
        RELION 5's 2D-stack and CTF-premultiplied pseudo-subtomograms, unreadable or
        changed subtomograms (:func:`voxel_checksum`), mixed or non-cubic boxes, no
        voxel size anywhere, headers that contradict ``rlnImagePixelSize``.
    """
    import mrcfile

    star = Path(star)
    check_subtomogram_files(star)
    table = read_particles(star)
    if "image_name" not in table:
        raise InputFileError(
            f"{star} lists no subtomograms (no rlnImageName column); "
            "run `tomoscribe extract` first."
        )
    stack, sizes, paths = None, [], []
    checksums = table["image_crc32"] if "image_crc32" in table else None
    for row, name in enumerate(table["image_name"]):
        path = Path(name)
        try:
            with mrcfile.open(path, permissive=False) as mrc:
                data = np.asarray(zyx_ordered(mrc.data, mrc.header, path), np.float32)
                size = float(mrc.voxel_size.x)
        except (OSError, ValueError) as err:
            raise InputFileError(f"{path} is not a readable MRC subtomogram ({err}).") from err
        if data.ndim != 3 or len(set(data.shape)) != 1:
            raise InputFileError(f"{path} is not a cubic subtomogram ({data.shape}).")
        if stack is None:  # filled in place: a list stacked at the end held it twice
            stack = _empty_stack(star, len(table), data.shape[0])
        elif data.shape != stack.shape[1:]:  # named against most of them (the first
            _refuse_mixed_boxes(table["image_name"])  # may be the odd one)
        expected = checksums.iloc[row] if checksums is not None else np.nan
        if np.isfinite(expected) and voxel_checksum(data) != int(expected):
            raise InputFileError(
                f"{path} no longer holds the particle of row {row + 1} of {star} (its "
                "voxels changed since they were extracted: was `extract` run again into "
                "that folder?); use the particles.star written with it, or extract again."
            )
        stack[row] = data
        sizes.append(size)
        paths.append(path)
    if stack is None:
        raise InputFileError(f"{star} lists no particles.")
    _check_alike(paths, sizes, "voxel sizes", lambda a: f"{a:.6g} Å voxels")
    voxel = sizes[-1]
    voxel = _image_voxel_size(star, voxel, table)
    if not (voxel and voxel > 0):
        raise InputFileError(
            f"neither {star} nor its subtomograms record a voxel size; set it in the "
            "subtomograms' headers (IMOD's alterheader, or mrcfile's voxel_size)."
        )
    if not np.isfinite(stack).all():
        raise InputFileError(f"the subtomograms listed by {star} contain NaN or infinite values.")
    return stack, table, voxel


def _refuse_mixed_boxes(names) -> None:
    """Refuse subtomograms of several box sizes (:func:`_check_alike`), from their
    headers."""
    import mrcfile

    paths = [Path(name) for name in names]
    boxes = []
    for path in paths:
        try:
            with mrcfile.open(path, permissive=False, header_only=True) as mrc:
                n = max(int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz))
        except (OSError, ValueError) as err:
            raise InputFileError(f"{path} is not a readable MRC subtomogram ({err}).") from err
        boxes.append(float(n))
    _check_alike(paths, boxes, "boxes", lambda n: f"a {n:g}³ box")
    raise InputFileError(f"the subtomograms listed by {paths[0].parent} differ in box size.")


def _empty_stack(star: Path, count: int, box: int) -> np.ndarray:
    """Room for ``count`` subtomograms of ``box``³ (float32), refused in one sentence
    where they and the work on them (twice their size) would not fit in half the
    machine's memory: 5,000 boxes of 128³ are 42 GB, and the system kills such a run
    without a word."""
    from ..volume import check_fits_in_memory

    check_fits_in_memory(
        3.0 * count * box**3 * 4,
        f"holding the {count} subtomograms of {box}³ voxels that {star.name} lists",
        "take a subset (`tomoscribe select`), or extract smaller boxes from a binned "
        "tomogram (`preprocess --bin`)",
    )
    return np.empty((count, box, box, box), np.float32)


def check_no_repeats(star: Path, table, consequence: str, halves_kept: bool = False) -> None:
    """Refuse a particle listed twice (one subtomogram, or one position of one named
    tomogram, in two rows: two STAR files joined, a selection appended to its source),
    whose copies would land on both sides of a comparison (``consequence``: "in both
    half sets", "in training and test alike") and make the FSC or accuracy better than
    the data (a trial: 30.8 Å became "better than Nyquist" with every row listed twice).
    With ``halves_kept`` (the file's own ``rlnRandomSubset`` is used), copies that all
    sit in one half pass: a symmetry-expanded set, made so on purpose."""
    names = table["image_name"].astype(str)
    keys = [("subtomogram", names)]
    if {"x", "y", "z", "tomo_name"} <= set(table):  # without names: maybe other tomograms
        xyz = table[["x", "y", "z"]].to_numpy(float).round(3)
        where = pd.Series([f"{x:g}, {y:g}, {z:g}" for x, y, z in xyz], index=table.index)
        keys.append(("position", table["tomo_name"].astype(str) + " at " + where))
    known = (
        np.isfinite(table[["x", "y", "z"]].to_numpy(float)).all(axis=1)
        if {"x", "y", "z"} <= set(table)
        else np.ones(len(table), bool)
    )
    for what, key in keys:
        repeated = key.duplicated(keep=False).to_numpy()
        if what == "position":  # rows without a position (another tomogram's) are none
            repeated = repeated & known
        if halves_kept and "half" in table and repeated.any():
            spread = table["half"].groupby(key.to_numpy()).transform("nunique").to_numpy()
            repeated = repeated & (spread > 1)  # copies split between the halves
        if repeated.any():
            rows = np.flatnonzero(repeated)
            first = rows[key.iloc[rows] == key.iloc[rows[0]]][:2] + 1
            shown = names.iloc[rows[0]] if what == "subtomogram" else key.iloc[rows[0]]
            count = key.iloc[rows].nunique()
            raise InputFileError(
                f"{star} lists {count} particle{'s' if count > 1 else ''} more than once "
                f"(the same {what} in rows {first[0]} and {first[1]}: {shown}), whose "
                f"copies would sit {consequence}; remove the repeated rows."
            )


def read_projections(star: str | os.PathLike, stack: np.ndarray | None = None) -> np.ndarray:
    """The Z-projections beside ``star`` (``projections.mrcs``), or made from ``stack``."""
    import mrcfile

    path = Path(star).parent / "projections.mrcs"
    if path.is_file():
        with mrcfile.open(path, permissive=False) as mrc:
            return np.asarray(mrc.data, np.float32)
    if stack is None:
        raise InputFileError(f"no projections.mrcs beside {star}.")
    return stack.sum(axis=1)
