"""Which axis of a tomogram the electron beam ran along, read from its missing wedge.

Every step here takes a tomogram's z axis as the beam's direction: networks see x–y
slices, the missing wedge that ``pick --filament``, ``vesicles``, ``average`` and the
training sets' augmentation allow for lies about k_z, and the tilt axis is y.
Reconstruction programs do not all write their volumes that way round: IMOD's
``tilt`` writes x–z slices stacked along y (the thickness is the file's y) until
``trimvol -rx`` or ``clip rotx`` turns the volume, and AreTomo does the same without
``-FlipVol 1``.  Such a file reads as a tomogram whose slices are side views, and
every command ran on it without a word (a 300-voxel-thick tomogram 1,000 pixels wide
looks like 1,000 slices of 1,000 × 300).

The data say which way they were recorded: a single-axis tilt series measures no
Fourier components within the missing wedge about the beam's axis, so their power is a
small share of that outside it (:func:`tomoscribe.core.imagestats.wedge_power_ratios`).
:func:`beam_axis` compares the lowest such ratio with the beam along each axis, on a
block of at most :data:`BLOCK_VOXELS` per axis about the volume's centre (a few tenths of
a second; no whole tomogram is read).

Measured (``tests/test_beam_axis.py``, ±60° assumed): the real cylindra microtubule crop
gives 0.09 with the beam along z against 0.43 along y, the three TARDIS patches
0.38–0.51 along z against 0.85–1.03 along y, and the same figures the other way round
once turned about x; white noise 0.98–1.02 along every axis.  Other things than a tilt
series' wedge make a spectrum poor about one axis (a review: a tomogram low-passed at
100 Å, one whose wedge a denoiser filled, density maps such as 6qzp), so y or x is
claimed only where that axis is the volume's thinnest, as a volume not turned has its
thickness there.  The commands read tomograms only, never maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .imagestats import tapered_power, wedge_power_ratios, wedge_ratios_of_power

#: The block about the volume's centre that is measured, voxels per axis (at most).
BLOCK_VOXELS = 128
#: Axes shorter than this (voxels) are not measured: a thin slab's spectrum is too
#: coarse along it to tell a wedge.
SHORTEST_AXIS = 24
#: A wedge is seen along an axis when its ratio is below this.
WEDGE_SEEN_RATIO = 0.7
#: The beam is taken to run along an axis other than z only when that axis's ratio is
#: below this share of z's (the real crops: 0.19–0.51 turned, 1.98–5.2 as they are).
OTHER_AXIS_SHARE = 0.75
#: ... below this share of z's to claim y or x (turned real crops 0.20–0.51; a review's
#: map 2uv8 cut thin in y, 0.74).
TURNED_SHARE = 0.6
#: ... and when z itself shows no wedge, its ratio at least this (turned real crops:
#: 0.43–1.03; a trial's crop of a tomogram as it is, narrow in y and low-passed at 50–100
#: Å, gave 0.02–0.06 about y but 0.10–0.13 about z: its microtubules along y, not a
#: wedge, made the spectrum poor about y).
Z_WITHOUT_WEDGE = 0.3


@dataclass(frozen=True)
class BeamEvidence:
    """What the missing wedge says of the beam's direction.

    Attributes
    ----------
    axis : "z", "y" or "x" where the wedge is seen about one axis clearly more than the
        others (see :data:`OTHER_AXIS_SHARE`), else None (no wedge, or too little data)
    ratios : {axis: lowest wedge power ratio with the beam along that axis}
    seen_about : the axis a wedge stands out about, claimed or not
    tilt_axis : with the beam along z, "y" or "x" where the wedge about one of them stands
        out (:func:`tilt_axis_of`), else None
    tilt_ratios : {tilt axis: wedge power ratio with the beam along z}
    """

    axis: str | None
    ratios: dict
    seen_about: str | None = None
    tilt_axis: str | None = None
    tilt_ratios: dict | None = None

    @property
    def other_than_z(self) -> bool:
        """Whether the wedge clearly lies about the file's y or x axis, not about z."""
        return self.axis in ("y", "x")


def central_block(data, block: int = BLOCK_VOXELS) -> np.ndarray:
    """The block of at most ``block`` voxels per axis about the centre of a (z, y, x)
    array (numpy, memory-mapped or chunked), as float64."""
    index = tuple(
        slice(max(0, n // 2 - block // 2), max(0, n // 2 - block // 2) + min(n, block))
        for n in data.shape
    )
    return np.asarray(data[index], np.float64)


def constant_planes(block: np.ndarray) -> list[np.ndarray]:
    """Per axis (z, y, x), which planes of ``block`` hold one value throughout: constant
    padding (zeros where a patch was cut at a tomogram's edge, as TARDIS pads its
    patches), which is no data."""
    flat = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        flat.append(np.ptp(block, axis=others) == 0)
    return flat


def without_padding(block: np.ndarray) -> np.ndarray:
    """``block`` less the runs of constant planes at its faces (:func:`constant_planes`;
    a review: 16 zero slices under the real crop turned its verdict from z to y).  The
    rule is :func:`tomoscribe.preprocess.data_box`'s, written again for an in-memory
    block: that one reads a whole file slab by slab, and core sits below preprocess."""
    index = []
    for flat in constant_planes(block):
        data = np.flatnonzero(~flat)
        index.append(slice(data[0], data[-1] + 1) if len(data) else slice(0, 0))
    return block[tuple(index)]


def beam_axis(data, max_tilt_deg: float = 60.0) -> BeamEvidence:
    """The axis a tomogram's beam ran along, from the missing wedge of its central block.

    Parameters
    ----------
    data : array-like (z, y, x)
        The tomogram (numpy, memmap or zarr; only the central block is read).
    max_tilt_deg : float
        Highest tilt of the series (degrees); the wedge measured is the one beyond it.

    Returns
    -------
    BeamEvidence
        ``axis`` None where the block (constant padding left out) is shorter than
        :data:`SHORTEST_AXIS` along an axis, holds non-finite values or no contrast, or
        no axis stands out; y or x is named only where z shows no wedge
        (:data:`Z_WITHOUT_WEDGE`), its ratio lies under :data:`TURNED_SHARE` of z's and
        that axis is also the volume's thinnest (the
        thickness of a volume not turned lies along it): a review found wedge-like
        spectra about y in a tomogram low-passed at 100 Å, in one filled in by a
        denoiser, and in density maps, each of which the advice would have spoiled.
        ``seen_about`` names the axis a wedge stands out about as for a turned volume
        even where the volume is not thinnest along it (``info`` says so).
    """
    block = without_padding(central_block(data))
    if min(block.shape) < SHORTEST_AXIS or not np.isfinite(block).all() or not np.ptp(block) > 0:
        return BeamEvidence(None, {})
    ratios = {}
    pairs = wedge_power_ratios(block, max_tilt_deg)
    for (beam, _tilt), ratio in pairs.items():
        ratios[beam] = min(ratio, ratios.get(beam, np.inf))
    best = min(ratios, key=ratios.get)
    others = [ratios[axis] for axis in ratios if axis != best]
    clear = ratios[best] < WEDGE_SEEN_RATIO and ratios[best] < OTHER_AXIS_SHARE * min(others)
    shape = dict(zip("zyx", data.shape))
    thinnest = all(shape[best] < shape[axis] for axis in "zyx" if axis != best)
    turned = clear and ratios["z"] >= Z_WITHOUT_WEDGE and ratios[best] < TURNED_SHARE * ratios["z"]
    claimed = clear and (best == "z" or (turned and thinnest))
    tilt_ratios = {"y": pairs[("z", "y")], "x": pairs[("z", "x")]}
    return BeamEvidence(
        best if claimed else None,
        ratios,
        best if best == "z" or turned else None,
        tilt_axis_of(tilt_ratios) if claimed and best == "z" else None,
        tilt_ratios,
    )


def tilt_axis_of(tilt_ratios: dict) -> str | None:
    """The axis ("y" or "x") a tomogram was tilted about, the beam along z, from the
    wedge power ratios about each (``{"y": ratio, "x": ratio}``): the one whose ratio is
    below :data:`WEDGE_SEEN_RATIO` and :data:`TURNED_SHARE` of the other's, else None.

    Every step takes the tilt axis along y (IMOD, AreTomo, Warp and RELION write their
    tomograms so); a volume turned in-plane by 90° (or reconstructed from a tilt series
    whose axis ran along x without turning it) had its wedge taken the wrong way without
    a word.  The real cylindra crop: 0.09 about y against 0.76 about x, and the reverse
    turned; the TARDIS patches, low-passed, 0.38–0.51 against 0.48–0.71: not told; the
    other axis must show no wedge (:data:`UNTILTED_MIN`).
    """
    ordered = sorted(tilt_ratios, key=tilt_ratios.get)
    best, other = tilt_ratios[ordered[0]], tilt_ratios[ordered[1]]
    clear = best < WEDGE_SEEN_RATIO and best < TURNED_SHARE * other
    return ordered[0] if clear and other >= UNTILTED_MIN else None


#: :func:`tilt_axis_of` names an axis only where the other shows no wedge, its ratio at
#: least this (the turned cylindra crop: 0.76; a simulated cell, 0.68 about x; a review's
#: filaments along x at SNR 3 through a wedge about y: 0.15 about x and 0.37 about y,
#: since the wedge takes the filaments' own k_x ≈ 0 plane).
UNTILTED_MIN = 0.5


def beam_sentence(name: str, evidence: BeamEvidence) -> str | None:
    """The warning for a tomogram whose beam ran along its y or x axis, or along z with
    the tilt axis along x, else None."""
    if evidence.axis == "z" and evidence.tilt_axis == "x":
        return (
            f"{name}'s missing wedge says it was tilted about its x axis (the wedge's power "
            f"inside / outside {evidence.tilt_ratios['x']:.2f} about x, "
            f"{evidence.tilt_ratios['y']:.2f} about y), while tomoscribe takes the tilt "
            "axis along y (the missing wedge of filament tracing, vesicle closing, "
            "averaging and the wedge-keeping augmentations); turn it by 90° about z first "
            "(IMOD's `rotatevol -a 90,0,0`)."
        )
    if not evidence.other_than_z:
        return None
    axis = evidence.axis
    return (
        f"{name}'s missing wedge says the beam ran along its {axis} axis (the wedge's "
        f"power inside / outside {evidence.ratios[axis]:.2f} with the beam along {axis}, "
        f"{evidence.ratios['z']:.2f} along z), as in a volume not turned after "
        "reconstruction (IMOD's `tilt` before `trimvol -rx`, AreTomo without "
        "`-FlipVol 1`), while tomoscribe "
        f"takes z as the beam (slices, missing wedge); {TURN_ADVICE[axis]}"
    )


#: How to turn a volume whose beam ran along y or x (IMOD's clip).
TURN_ADVICE = {
    "y": "if its slices are side views, turn it first (`clip rotx` or `trimvol -rx`).",
    "x": "if its slices are side views, turn it about y first (`rotatevol -a 0,90,0`).",
}


#: Subtomograms whose power spectra are averaged by :func:`subtomogram_wedge` (at most).
SUBTOMOGRAMS_MEASURED = 200


@dataclass(frozen=True)
class WedgeAxes:
    """How the missing wedge of a set of subtomograms lies.

    Attributes
    ----------
    pair : (beam, tilt axis), e.g. ("z", "y"), where one way stands out (its ratio below
        :data:`WEDGE_SEEN_RATIO` and :data:`OTHER_AXIS_SHARE` of the next), else None
    ratios : {(beam, tilt axis): wedge power ratio of the averaged spectrum}
    """

    pair: tuple[str, str] | None
    ratios: dict


def subtomogram_wedge(volumes, max_tilt_deg: float = 60.0) -> WedgeAxes:
    """Which way the beam ran and the tilt axis lay for a set of subtomograms (N, n, n, n)
    cut from tomograms without turning them: their tapered power spectra, averaged over
    up to :data:`SUBTOMOGRAMS_MEASURED` of them, share the tomograms' missing wedge
    (particles in every orientation average to a round spectrum, noise keeps the wedge).

    On a trial's own subtomograms (32³, SNR 0.5, 160 each) the pair made with stood out
    at 0.15 against 0.51–0.53 for the next (tilt axis y or x, beam z or x alike); boxes
    under :data:`SHORTEST_AXIS` voxels or fewer than 3 subtomograms name none.
    """
    volumes = np.asarray(volumes)
    if volumes.ndim != 4 or len(volumes) < 3 or min(volumes.shape[1:]) < SHORTEST_AXIS:
        return WedgeAxes(None, {})
    chosen = np.linspace(0, len(volumes) - 1, min(len(volumes), SUBTOMOGRAMS_MEASURED))
    power = sum(tapered_power(volumes[int(i)]) for i in np.unique(chosen.round()))
    if not np.any(power > 0):
        return WedgeAxes(None, {})
    ratios = wedge_ratios_of_power(power, max_tilt_deg)
    ordered = sorted(ratios, key=ratios.get)
    best, second = ratios[ordered[0]], ratios[ordered[1]]
    clear = best < WEDGE_SEEN_RATIO and best < OTHER_AXIS_SHARE * second
    return WedgeAxes(ordered[0] if clear else None, ratios)
