"""Micrographs for picking: read (one image each, one pixel size), shrink, normalise.

Picking works on micrographs shrunk by an integer factor (block means: a box of the
particle becomes about ``TARGET_BOX`` pixels), the local mean of the ice removed (over
a window of about four boxes: two passes of a box filter, ``scipy.ndimage.uniform_filter``,
a smooth window at a cost that does not grow with its size; contamination and carbon
left out of it, :func:`ice_background`), and scaled by the median
absolute deviation of what is left over the ice (:func:`ice_spread`: neighbourhoods
that vary much more than most, carbon and contamination, do not set the scale),
clipped at ±5.  Without removing the local mean (as before 2026-12-01) the
median and MAD of a micrograph with carbon are those of two levels, ice and carbon:
its ice came out 20% lower in contrast and 0.2 σ brighter than elsewhere, and the
CNN picker found 0–5% of its particles against 90–97% on micrographs without carbon
(docs/performance.md).  Shrunk pixel (j, i) covers full pixels
``shrink·j … shrink·j + shrink − 1``, so its centre is at full-resolution
``(i + ½)·shrink − ½``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import InvalidDataError, ParameterError, VoxelSizeMismatchError, missing_file
from ..io.boxfiles import micrograph_name
from .density import block_mean

TARGET_BOX = 16
#: How much more than the micrograph's median local spread a neighbourhood may vary
#: and still count as ice for the normalising spread (:func:`ice_spread`).
ICE_SPREAD_WIDENING = 1.5


#: Suffixes of the box files ``io.boxfiles`` reads: never a micrograph.
BOX_FILE_SUFFIXES = (".box", ".cbox", ".star", ".json", ".csv")


def check_micrograph_paths(paths: list[Path], box_options: tuple[str, ...] = ()) -> None:
    """Refuse micrograph arguments that are box files, folders or not there.

    A shell glob after a box option (``--good *.box``) gives the option its first file
    and puts the others among the micrographs, where they were silently dropped, as was
    a micrograph that does not exist.  ``box_options`` names the command's options that
    take box files (``("--good", "--background", "--bad")``), for the message.

    Raises
    ------
    ParameterError
        A box file (:data:`BOX_FILE_SUFFIXES`) among the micrographs.
    InputFileError
        A path that does not exist, or a folder (other than OME-Zarr).
    """
    from ..errors import InputFileError

    for path in map(Path, paths):
        if path.suffix.lower() in BOX_FILE_SUFFIXES:
            if not box_options:
                raise ParameterError(f"{path} is a box file, not a micrograph (MRC).")
            flag, named = box_options[0], ", ".join(box_options[:-1])
            named = f"{named} or {box_options[-1]}" if len(box_options) > 1 else flag
            raise ParameterError(
                f"{path} is a box file, given among the micrographs; give each box file "
                f"after its own {named} (`{flag} a.box {flag} b.box`): after a shell glob "
                f"such as `{flag} *.box` only the first file is the option's."
            )
        if path.is_dir() and path.suffix.lower() != ".zarr":
            raise InputFileError(f"{path} is a folder, not a micrograph; give the files in it.")
        if not path.exists():
            raise missing_file(path)


def read_micrograph(path: str | os.PathLike, pixel_size_A: float | None = None):
    """One micrograph: (float32 image (ny, nx), pixel size Å, name).

    Raises
    ------
    InputFileError
        Unreadable files (through ``io.read_volume``).
    InvalidDataError
        A stack of more than one image, or NaN or infinite pixels.
    """
    from ..io import read_volume

    volume = read_volume(path, pixel_size_A)
    if volume.shape[0] != 1:
        if _header_says_volume(path):  # a tomogram was called a movie (a trial)
            raise InvalidDataError(
                f"{path} is a volume of {volume.shape[0]} sections (its header says so: a "
                "tomogram or a map?), not a micrograph; give the micrographs."
            )
        raise InvalidDataError(
            f"{path} holds {volume.shape[0]} images; give one micrograph "
            "per file (a movie must be aligned and summed first)."
        )
    if pixel_size_A is None:
        _check_square_pixels(path, volume.voxel_size_A)
    image = np.asarray(volume.load(np.float32)[0])
    if not np.isfinite(image).all():
        raise InvalidDataError(f"{path} has NaN or infinite pixels.")
    _check_has_contrast(path, image)
    return image, float(volume.pixel_size_A), micrograph_name(path)


class MicrographFiles(Mapping):
    """Micrographs by name, each read from its file when it is asked for (float32
    (ny, nx); negated with ``invert``), so that going through them holds one at a time:
    a float32 MRC is memory-mapped, but 8- and 16-bit files, TIFFs and negated images
    are copies in memory (500 micrographs of 4096² are 32 GB as float32).

    Parameters
    ----------
    paths : the micrograph files, in order.
    pixel_size_A : their pixel size (Å), as checked.
    shapes : (ny, nx) of each by name (from a first reading), in the order of ``paths``.
    """

    def __init__(self, paths, pixel_size_A: float, shapes: dict, invert: bool = False):
        self.paths = {micrograph_name(path): Path(path) for path in paths}
        self.pixel_size_A = float(pixel_size_A)
        self.shapes = dict(shapes)
        self.invert = invert

    def __getitem__(self, name: str) -> np.ndarray:
        image = read_micrograph(self.paths[name], self.pixel_size_A)[0]
        return -image if self.invert else image  # (a float32 MRC's image is its read-only map)

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def _check_has_contrast(path, image: np.ndarray) -> None:
    """Refuse an image of one value (blank) or two (a mask): a trial's picker found
    256 "particles" on a grid over a blank micrograph, and as many on the simulator's
    contamination mask, exit 0."""
    low, high = float(image.min()), float(image.max())
    if low == high:
        raise InvalidDataError(
            f"{path} is blank (every pixel {low:g}), not a micrograph; leave it out or give "
            "the micrograph."
        )
    if not np.any((image != low) & (image != high)):
        raise InvalidDataError(
            f"{path} holds only the values {low:g} and {high:g} (a mask?), not a "
            "micrograph; leave it out or give the micrograph."
        )


def _header_says_volume(path) -> bool:
    """Whether an MRC header calls the file a volume: a space group of 1–230 (0 marks
    images and stacks of them) and as many sampled sections as slices."""
    import mrcfile

    if Path(path).suffix.lower() not in (".mrc", ".map", ".rec"):
        return False
    try:
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            header = mrc.header
            return 1 <= int(header.ispg) <= 230 and int(header.mz) == int(header.nz) > 1
    except (OSError, ValueError):
        return False


def _header_pixel_size(path) -> float | None:
    """A micrograph header's pixel size (Å), None where it records none or an unset 1 Å
    (as the tomogram readers take it, ``io.supplied_voxel_size``)."""
    from ..errors import MissingVoxelSizeError
    from ..io import read_volume

    try:
        volume = read_volume(path)
    except MissingVoxelSizeError:
        return None
    _check_square_pixels(path, volume.voxel_size_A)
    size = float(volume.pixel_size_A)
    return None if abs(size - 1.0) < 1e-6 else size


def _check_square_pixels(path, voxel_size_A) -> None:
    """Refuse a micrograph whose header gives x and y pixels of different sizes (more
    than 1%): boxes, shrinking and the networks take a pixel as a square of the x size,
    so its particles would be picked and cut stretched, silently (a trial)."""
    x_size, y_size = float(voxel_size_A[0]), float(voxel_size_A[1])
    if abs(y_size - x_size) > 0.01 * x_size:
        raise InvalidDataError(
            f"{path} has pixels of {x_size:g} × {y_size:g} Å (x × y), not squares; "
            "resample it to square pixels first, or give the pixel size "
            "(`pixel_size_A`) if the header is wrong.",
            parameter="pixel_size_A",
        )


def common_pixel_size(paths: list[Path], pixel_size_A: float | None) -> float:
    """The micrographs' common pixel size (Å) from their headers, or ``pixel_size_A``.

    A header's 1 Å is unset (an MRC writer's default), as no pixel size.

    Raises
    ------
    MissingVoxelSizeError
        A header records no pixel size (or 1 Å) and no ``pixel_size_A`` was given.
    VoxelSizeMismatchError
        Headers differ by more than 1% and no ``pixel_size_A`` was given.
    """
    from ..errors import MissingVoxelSizeError

    if pixel_size_A is not None:
        if not pixel_size_A > 0:
            raise ParameterError(
                f"`pixel_size_A` must be positive, got {pixel_size_A}.", parameter="pixel_size_A"
            )
        for path in paths:  # say so when the override contradicts a header
            header = _header_pixel_size(path)
            if header is None:
                continue
            if abs(header - pixel_size_A) > 0.05 * header:
                warnings.warn(
                    f"the pixel size given ({pixel_size_A:g} Å) is not {path}'s header's "
                    f"({header:g} Å); the one given is used.",
                    stacklevel=2,
                )
                break
        return float(pixel_size_A)

    sizes = {}
    for path in paths:
        header = _header_pixel_size(path)
        if header is None:
            raise MissingVoxelSizeError(
                f"{path} records no pixel size (none, or 1 Å: unset); pass `pixel_size_A` (Å).",
                parameter="pixel_size_A",
            )
        sizes[str(path)] = header
    low, high = min(sizes.values()), max(sizes.values())
    if high > 1.01 * low:
        first = min(sizes, key=sizes.get)
        last = max(sizes, key=sizes.get)
        raise VoxelSizeMismatchError(
            f"the micrographs have different pixel sizes ({first}: {low:g} Å, {last}: "
            f"{high:g} Å); pick them separately or pass `pixel_size_A` to treat them as one.",
            parameter="pixel_size_A",
        )
    return low


def shrink_factor(box_px: int, target_box: int = TARGET_BOX) -> int:
    """Integer shrink that brings a ``box_px`` box to about ``target_box`` pixels."""
    return max(1, int(round(box_px / target_box)))


def shrink_and_normalise(
    image: np.ndarray, shrink: int, window: int = 2 * TARGET_BOX
) -> np.ndarray:
    """Block-mean shrink by ``shrink`` (the right and bottom remainders dropped), minus
    the local mean of the ice (:func:`ice_background`), over 1.4826 × the median
    absolute deviation of the result over the ice (:func:`ice_spread`, in
    neighbourhoods half a ``window`` wide), clipped at ±5: float32.

    ``window``: edge of each of the two box filters of the local mean (shrunk pixels;
    together they weigh a neighbourhood about twice that across)."""
    return normalise_shrunk(block_mean(image, shrink), window)


def normalise_shrunk(small: np.ndarray, window: int = 2 * TARGET_BOX) -> np.ndarray:
    """:func:`shrink_and_normalise` on a micrograph already block-mean shrunk
    (:func:`~tomoscribe.spa.density.block_mean`)."""
    small = small - ice_surface(small, window)
    centred = small - ice_background(small, window)
    spread = ice_spread(centred, max(1, window // 2))
    if not spread > 0:
        spread = float(centred.std()) or 1.0
    return np.clip(centred / spread, -5, 5).astype(np.float32)


def ice_spread(centred: np.ndarray, box: int, widening: float = ICE_SPREAD_WIDENING) -> float:
    """The noise of the ice in ``centred`` (a shrunk micrograph less its local mean):
    1.4826 × the median absolute deviation over the pixels whose standard deviation
    over a ``box``-wide neighbourhood is at most ``widening`` × its median over the
    micrograph, in the micrograph's units.

    Carbon, contamination and their fringes vary more than the ice, and over the whole
    micrograph they widen its deviation: by 8–16% at 3× shrink and 30–62% at 7× (where
    block means have averaged the ice's noise down and left the carbon's texture) on
    simulated micrographs with a carbon edge over 16–31% of them, against 1–2% and
    8–10% without; a picker trained on micrographs without carbon then saw particles
    there at 0.62–0.77 of their contrast and missed up to half of them
    (docs/performance.md).  The reference is the median neighbourhood, so this holds
    while the ice covers more than about half of the micrograph (a test's 30% carbon:
    the ice at 1.00 σ; at 50% 0.74, at 60% within 5% of every pixel's
    scale, where the density check leaves the ice unpicked anyway:
    :mod:`tomoscribe.spa.density`), and texture up to 1.5× the ice's is kept with it
    (the ice at 0.96 σ beside carbon 1.8× as rough).  Never wider than every pixel's
    deviation in practice."""
    from scipy.ndimage import uniform_filter

    values = np.asarray(centred, np.float32)
    local_var = uniform_filter(values * values, box) - uniform_filter(values, box) ** 2
    local_sd = np.sqrt(np.maximum(local_var, 0.0))
    quiet = values[local_sd <= widening * float(np.median(local_sd))]
    if not quiet.size:
        quiet = values.ravel()
    return 1.4826 * float(np.median(np.abs(quiet - np.median(quiet))))


def ice_surface(small: np.ndarray, window: int) -> np.ndarray:
    """A plane through the slow gradient of ice thickness or illumination across a
    micrograph (``small``, shrunk), taken off before the local mean: its slopes are the
    medians of the neighbourhood means' differences between neighbouring pixels, so
    that particles (slopes both ways), contamination and the carbon's edge (a thin line
    of steep ones) and the carbon's flat inside do not tilt it.  Its level is the
    median's (the local mean takes off the rest).

    The local mean over the ice alone (a normalised convolution) follows a gradient
    only where the ice around a pixel is symmetric: beside particles, aggregates and
    contamination, left out of it, it is pulled up or down the slope.  In a trial's
    micrographs (2048², particles 95 px across) a ramp of 11 counts (1.4 × the pixels'
    noise) across them cut the picker's recall from 0.89 to 0.71, one of 22 counts to
    0.58, a ±10% multiplicative one to 0.59, precision unchanged; with the plane taken
    off, 0.82 (docs/performance.md).  A least-squares plane over the ice was tried
    first: carbon over a third of a micrograph, level with its own local mean and so
    not left out, tilted it 17 σ across the ice (a review); a quadratic cost a third of
    one micrograph's picks on a smooth patch 15% darker in the middle."""
    from scipy.ndimage import uniform_filter

    values = np.asarray(small, np.float32)
    ny, nx = values.shape
    smooth = uniform_filter(values, max(1, window // 4), mode="reflect")
    slope_x = float(np.median(np.diff(smooth, axis=1))) if nx > 1 else 0.0
    slope_y = float(np.median(np.diff(smooth, axis=0))) if ny > 1 else 0.0
    y, x = np.mgrid[:ny, :nx].astype(np.float32)
    plane = slope_x * (x - (nx - 1) / 2) + slope_y * (y - (ny - 1) / 2)
    return (plane + float(np.median(values))).astype(np.float32)


def ice_background(
    small: np.ndarray, window: int, rounds: int = 2, outlier: float = 4.0
) -> np.ndarray:
    """The local mean of ``small`` over the ice only: two passes of a ``window`` box
    filter weighted by a mask that leaves out dense objects (normalised convolution).

    A plain local mean next to carbon or contamination is pulled towards their level,
    so the ice beside them came out brighter than elsewhere (by 1.2 σ of the shrunk
    micrograph within 1.5 particle diameters of a blob or the carbon, against −0.2 σ on
    a particle in open ice), and the picker missed every particle there and half of
    those within 2 diameters (docs/performance.md).  Dense objects are the pixels
    whose residual, box-averaged over ``window // 4``, lies more than ``outlier``
    robust σ (1.4826 × MAD) from its median, grown by ``window // 8``; ``rounds``
    times, each from the residual to the last estimate.  Where no ice lies within reach
    (inside a large blob or the carbon) the unweighted local mean is kept."""
    from scipy.ndimage import binary_dilation, uniform_filter

    def smooth(values):
        return uniform_filter(uniform_filter(values, window, mode="reflect"), window)

    plain = smooth(small)
    background = plain
    for _ in range(rounds):
        residual = uniform_filter(small - background, max(1, window // 4), mode="reflect")
        median = float(np.median(residual))
        spread = 1.4826 * float(np.median(np.abs(residual - median)))
        if not spread > 0:
            break
        dense = np.abs(residual - median) > outlier * spread
        if not dense.any():
            break
        dense = binary_dilation(dense, iterations=max(1, window // 8))
        ice = (~dense).astype(np.float32)
        weight = smooth(ice)
        reach = weight > 0.05
        background = np.where(reach, smooth(small * ice) / np.maximum(weight, 1e-6), plain)
    return background.astype(np.float32)


def to_shrunk(xy: np.ndarray, shrink: int) -> np.ndarray:
    """Full-resolution pixel coordinates → shrunk ones."""
    return (np.asarray(xy, float) + 0.5) / shrink - 0.5


def to_full(xy: np.ndarray, shrink: int) -> np.ndarray:
    """Shrunk pixel coordinates → full-resolution ones."""
    return (np.asarray(xy, float) + 0.5) * shrink - 0.5
