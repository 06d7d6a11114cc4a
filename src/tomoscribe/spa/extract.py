"""Particle images cut from micrographs at picks, as RELION's Extract job cuts them.

The conventions are RELION's (``relion_preprocess --extract``, read in its source:
``src/preprocessing.cpp`` and ``src/image.cpp``, RELION 3 and 4), so that particles cut
here and there are the same images and a STAR file of either works in the other:

- A pick at (x, y) (pixels from 0, x along a row, y down the rows) is truncated to
  whole pixels, and that pixel becomes pixel (box/2, box/2) of its box (integer
  division): the box runs from x − box/2 to x − box/2 + box − 1.
- Pixels of a box beyond the micrograph's edge take the value of the nearest pixel
  inside it (RELION repeats the edge rows and columns rather than fill zeros).  A box
  wholly outside is an error there and here.
- Normalisation: the background is every pixel farther than ``bg_radius`` pixels from
  the centre pixel; a least-squares plane fitted to it is subtracted (RELION's ramp),
  then the background's mean, and the box is divided by the background's standard
  deviation (over n, not n − 1).  ``bg_radius`` defaults to RELION's, a circle of 75%
  of the box across: 0.375 · box truncated to whole pixels.  Boxes are even, as
  RELION's Extract job requires.
- Contrast is then inverted (protein white, what RELION's refinement and
  :mod:`tomoscribe.structure.classes2d` expect of cryo-EM micrographs, where protein is
  dark), unless asked not to.

RELION's dust removal (``--white_dust``/``--black_dust``: outliers replaced by random
values) and CTF premultiplication while extracting are not done; phase flipping is
left to the classification (``classify2d --ctf flip``), which reads each particle's
defocus from the STAR file.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputFileError, ParameterError

#: The background circle's diameter as a share of the box unless told (RELION's).
BG_DIAMETER_SHARE = 0.75


#: Boxes cut and normalised at a time (bounds the float64 working memory).
CHUNK = 256


def default_bg_radius(box_px: int) -> int:
    """RELION's default background radius for a box of ``box_px`` pixels (pixels): its
    Extract job passes ``(int)(0.75 · box / 2)``, truncated (box 90: 33, not 34)."""
    return int(BG_DIAMETER_SHARE * box_px / 2.0)


def check_even_box(box_px: int, whose: str | None = None) -> None:
    """Refuse an odd box: RELION extracts even boxes only (its Extract job refuses
    others), and its centre pixel box/2 is where it expects the particle.  ``whose``
    names a box the user did not give (``"the .box files'"``).

    Raises
    ------
    ParameterError
    """
    if box_px % 2:
        what = f"{whose} box, {box_px} px," if whose else f"`box` {box_px}"
        raise ParameterError(
            f"{what} is odd; RELION extracts even boxes only: give `box` {box_px + 1} "
            f"or {box_px - 1}.",
            parameter="box",
        )


def box_corners(xy: np.ndarray, box_px: int) -> np.ndarray:
    """The first column and row (x0, y0) of each pick's box, (n, 2) integers: the pick
    truncated to whole pixels, minus half the box (``xy``: (n, 2) pixels, x, y)."""
    whole = np.trunc(np.asarray(xy, float)).astype(np.int64)
    return whole - box_px // 2


def check_inside(xy: np.ndarray, box_px: int, shape: tuple[int, int], name: str) -> None:
    """Refuse picks whose box lies wholly outside a micrograph of ``shape`` (rows,
    columns): RELION stops there too; here the likely cause is named.

    Raises
    ------
    InputFileError
        A box with no pixel on the micrograph.
    """
    corners = box_corners(xy, box_px)
    height, width = shape
    outside = (
        (corners[:, 0] + box_px <= 0)
        | (corners[:, 0] >= width)
        | (corners[:, 1] + box_px <= 0)
        | (corners[:, 1] >= height)
    )
    if outside.any():
        first = np.asarray(xy, float)[np.flatnonzero(outside)[0]]
        raise InputFileError(
            f"{int(outside.sum())} of {len(corners)} picks on micrograph {name} "
            f"({width}×{height} px) lie wholly outside it (the first at x {first[0]:g}, "
            f"y {first[1]:g} px); were they picked on another micrograph, or at another "
            "binning?"
        )


def cut_boxes(image: np.ndarray, xy: np.ndarray, box_px: int) -> np.ndarray:
    """The box of each pick, (n, box, box) float32, edge pixels repeated beyond the
    micrograph (module docstring); ``image`` (rows, columns), ``xy`` (n, 2) pixels."""
    corners = box_corners(xy, box_px)
    span = np.arange(box_px)
    columns = np.clip(corners[:, 0, None] + span, 0, image.shape[1] - 1)
    rows = np.clip(corners[:, 1, None] + span, 0, image.shape[0] - 1)
    return np.asarray(image, np.float32)[rows[:, :, None], columns[:, None, :]]


def check_bg_radius(bg_radius_px: float, box_px: int) -> None:
    """Refuse a background circle wider than the box (RELION refuses 2 · radius > box).

    Raises
    ------
    ParameterError
    """
    if 2 * bg_radius_px > box_px or bg_radius_px < 0:
        raise ParameterError(
            f"`bg_radius` {bg_radius_px:g} px leaves no background in a {box_px}-pixel box; "
            f"give at most half the box ({box_px // 2} px).",
            parameter="bg_radius",
        )


def normalise_boxes(boxes: np.ndarray, bg_radius_px: float) -> np.ndarray:
    """RELION's normalisation of each box (module docstring): plane fitted to the
    background and subtracted, then background mean 0 and standard deviation 1.

    Parameters
    ----------
    boxes : (n, box, box) images.
    bg_radius_px : background = pixels farther than this from pixel (box/2, box/2).

    Raises
    ------
    ParameterError
        A circle wider than the box (:func:`check_bg_radius`).
    """
    n, size = len(boxes), boxes.shape[-1]
    check_bg_radius(bg_radius_px, size)
    j = np.arange(size) - size // 2
    x, y = np.meshgrid(j, j)
    background = (x**2 + y**2) > bg_radius_px**2
    design = np.stack([x[background], y[background], np.ones(background.sum())], 1)
    values = boxes.reshape(n, -1)[:, background.ravel()].astype(np.float64)
    planes, *_ = np.linalg.lstsq(design, values.T, rcond=None)  # (3, n)
    flat = boxes.reshape(n, -1).astype(np.float64) - (
        planes[0][:, None] * x.ravel() + planes[1][:, None] * y.ravel() + planes[2][:, None]
    )
    ring = flat[:, background.ravel()]
    mean, spread = ring.mean(1), ring.std(1)
    spread = np.where(spread > 1e-10, spread, 1.0)  # a flat box is left as it is, centred
    return ((flat - mean[:, None]) / spread[:, None]).reshape(boxes.shape).astype(np.float32)


def extract_particles(
    image: np.ndarray,
    xy: np.ndarray,
    box_px: int,
    bg_radius_px: float | None = None,
    invert: bool = True,
    normalise: bool = True,
) -> np.ndarray:
    """Particle images (n, box, box) float32 cut at picks ``xy`` ((n, 2) pixels, x, y)
    of one micrograph ``image`` (rows, columns), as RELION's Extract job cuts them
    (module docstring): normalised on the background beyond ``bg_radius_px`` (default
    :func:`default_bg_radius`) unless ``normalise`` is False, contrast inverted unless
    ``invert`` is False."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    radius = default_bg_radius(box_px) if bg_radius_px is None else bg_radius_px
    out = np.empty((len(xy), box_px, box_px), np.float32)
    for start in range(0, len(xy), CHUNK):  # normalising works in float64: in chunks
        boxes = cut_boxes(image, xy[start : start + CHUNK], box_px)
        if normalise:
            boxes = normalise_boxes(boxes, radius)
        out[start : start + CHUNK] = -boxes if invert else boxes
    return out
