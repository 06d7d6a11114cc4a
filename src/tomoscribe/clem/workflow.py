"""CLEM workflows: what ``tomoscribe clem register | watershed | transfer`` do, as calls.

:func:`register_images` is the one orchestration of the registration (holes →
lattices → anchor → robust fit), used by the command line through
:func:`register_files` and by the simulated pipeline
(:mod:`tomoscribe.experiments.clem`) on arrays.  The ``*_files`` functions read the
user's files, check that they belong together, run the step and write its output with
its provenance record.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidDataError, MissingVoxelSizeError, ParameterError, TomoscribeError
from ..io import read_volume, write_volume
from ..outputs import read_provenance, write_provenance
from ..segment.trainset import TrainingSet, annotation_warnings, save_training_set
from ..volume import Volume, check_finite, iter_slabs
from .holes import detect_holes, measured_hole_diameter_um
from .lattice import fit_lattice
from .register import (
    Registration,
    anchor_by_cell,
    anchor_by_landmarks,
    load_transform,
    register_lattices,
    save_registration,
)
from .transfer import TransferParams, fluorescence_in_tomogram, transfer_labels
from .watershed import WatershedParams, normalised_signal, remove_bleed_through, watershed_segment


@dataclass
class RegisteredPair:
    """A registration with the number of holes found in each image."""

    registration: Registration
    holes_overview: int
    holes_fluorescence: int
    hole_diameter_um: dict = field(default_factory=dict)  # µm, "overview"/"fluorescence"

    @property
    def anchor(self) -> dict:
        """How the lattice ambiguity was resolved (``ambiguous``, ``margin``, ...)."""
        return self.registration.anchor


def register_images(
    overview: np.ndarray,
    reflection: np.ndarray,
    overview_pixel_nm: float,
    fluorescence_pixel_nm: float,
    hole_diameter_um: float = 2.0,
    hole_spacing_um: float = 3.0,
    *,
    cell: np.ndarray | None = None,
    landmarks: np.ndarray | None = None,
    mirror: bool | None = None,
    model: str = "similarity",
    min_score: float = 0.4,
    seed: int = 0,
    names: tuple[str, str] = ("the overview", "the fluorescence image"),
) -> RegisteredPair:
    """Register fluorescence to an EM overview through the holes of the support film.

    Parameters
    ----------
    overview, reflection : 2D arrays
        The EM overview and the fluorescence/reflection image showing the holes.
    overview_pixel_nm, fluorescence_pixel_nm : float
        Their pixel sizes (nm).
    hole_diameter_um, hole_spacing_um : float
        The film's holes (µm; Quantifoil R2/1: 2 and 3).
    cell : 2D array, optional
        Fluorescence of the whole cell (same field as ``reflection``): anchors the
        lattice match by the cell's outline.
    landmarks : (n, 4) array, optional
        fx, fy, ox, oy: points in fluorescence and overview pixels; the other anchor.
        Exactly one of ``cell`` and ``landmarks`` is needed.
    mirror : bool, optional
        Whether the fluorescence is mirrored relative to the overview (None: find out).
    model : "similarity" or "affine"
    min_score : float
        Lowest hole-template correlation accepted.
    seed : int
        RANSAC's seed.
    names : how errors and warnings name the overview and the reflection image
    """
    film = (hole_diameter_um, hole_spacing_um, min_score)
    holes_ov, lattice_ov, measured_ov = _film_of(overview, overview_pixel_nm, film, names[0])
    holes_fm, lattice_fm, measured_fm = _film_of(reflection, fluorescence_pixel_nm, film, names[1])
    measured = {"overview": measured_ov, "fluorescence": measured_fm}  # names may coincide
    _warn_of_hole_sizes(zip(names, measured.values()), hole_diameter_um)
    scale = fluorescence_pixel_nm / overview_pixel_nm
    if cell is not None:
        symmetry, shift, anchor = anchor_by_cell(
            lattice_fm,
            lattice_ov,
            cell,
            overview,
            scale,
            hole_diameter_um * 500 / overview_pixel_nm,
            mirror,
        )
    else:
        landmarks = np.asarray(landmarks, float).reshape(-1, 4)
        symmetry, shift, anchor = anchor_by_landmarks(
            lattice_fm, lattice_ov, landmarks[:, :2], landmarks[:, 2:], scale, mirror
        )
    registration = register_lattices(
        lattice_fm, lattice_ov, symmetry, shift, overview_pixel_nm, model, anchor=anchor, seed=seed
    )
    _warn_of_disagreeing_holes(registration)
    return RegisteredPair(registration, len(holes_ov), len(holes_fm), measured)


def _film_of(image: np.ndarray, pixel_nm: float, film: tuple, name: str):
    """The holes an image shows, their lattice and their measured diameter (µm, or None);
    ``film``: the given diameter, spacing (µm) and lowest score.  Errors name the image
    and give the spacing its holes show (a trial's 4 µm film, given the default 3 µm,
    was said to be damaged, and "only 0 holes" did not say in which image)."""
    diameter_um, spacing_um, min_score = film
    holes = None
    try:
        holes = detect_holes(image, pixel_nm, diameter_um, "auto", min_score)
        lattice = fit_lattice(holes[["x", "y"]].to_numpy(), spacing_um * 1000 / pixel_nm)
    except TomoscribeError as err:
        shown = None if holes is None else _nearest_spacing_um(holes, pixel_nm)
        hint = (
            f" (its holes' nearest neighbours are a median {shown:.3g} µm apart; "
            f"`hole_spacing_um` is {spacing_um:g})"
            if shown is not None and abs(shown / spacing_um - 1) > 0.15
            else ""
        )
        text = f"{name}: {str(err).rstrip('.')}{hint}."
        named = (*err.parameters, "hole_spacing_um") if hint else err.parameters
        raise type(err)(text, parameter=named) from err
    inliers = lattice.points[lattice.inlier]
    polarity = holes.attrs["polarity"]
    return (
        holes,
        lattice,
        measured_hole_diameter_um(image, inliers, pixel_nm, lattice.spacing_px, polarity),
    )


def _nearest_spacing_um(holes: pd.DataFrame, pixel_nm: float) -> float | None:
    """The median distance (µm) from each detected hole to its nearest neighbour."""
    from scipy.spatial import cKDTree

    points = holes[["x", "y"]].to_numpy()
    if len(points) < 3:
        return None
    distance, _ = cKDTree(points).query(points, k=2)
    return float(np.median(distance[:, 1]) * pixel_nm / 1000)


#: Largest disagreement between the holes' measured and given diameter before it is
#: said: the measurement (half-way fall of the median hole's radial profile) gave
#: 1.91–1.98 µm for 2 µm holes and 1.14–1.15 µm for 1.2 µm in a trial's images.
HOLE_SIZE_DISAGREEMENT = 0.2
#: Fewest of the matched holes the fitted transform may leave out before it is said.
MIN_FITTING_FRACTION = 0.75


def _warn_of_hole_sizes(measured, given_um: float) -> None:
    """Say, for each image (``measured``: its name and measured diameter, µm, or None),
    holes that measure otherwise than ``given_um`` across."""
    for name, found in measured:
        if found is not None and abs(found / given_um - 1) > HOLE_SIZE_DISAGREEMENT:
            warnings.warn(
                f"the holes in {name} measure {found:.2g} µm across, where "
                f"`hole_diameter_um` gives {given_um:g}: the holes are found off their "
                "centres and the registration suffers; give the film's hole diameter (or "
                "check the image's pixel size).",
                stacklevel=3,
            )


def _warn_of_disagreeing_holes(registration: Registration) -> None:
    """Say when the fit leaves out more than a quarter of the matched holes (a trial's
    wrong hole diameter: 9 of 24 fitted, a registration 144–243 nm off, exit 0)."""
    summary = registration.summary()
    kept, matched = summary["n_inliers"], summary["n_matched"]
    if kept < MIN_FITTING_FRACTION * matched:
        warnings.warn(
            f"only {kept} of the {matched} holes matched between the images fit the "
            "transform; the rest are more than 150 nm off it, so the hole diameter or "
            "spacing given may not be the film's, or the anchor chose a wrong match: check "
            "the overlay before using the registration.",
            stacklevel=3,
        )


def register_files(
    overview: Path,
    reflection: Path,
    out: Path,
    hole_diameter_um: float = 2.0,
    hole_spacing_um: float = 3.0,
    *,
    cell: Path | None = None,
    landmarks: np.ndarray | None = None,
    mirror: bool | None = None,
    model: str = "similarity",
    min_score: float = 0.4,
    overview_pixel_A: float | None = None,
    fluorescence_pixel_A: float | None = None,
    channel: int | None = None,
    cell_channel: int | None = None,
) -> RegisteredPair:
    """:func:`register_images` on image files (MRC/TIFF, one slice each, with pixel sizes;
    ``cell`` a stack of the reflection's field, max-projected); writes the registration
    to ``out`` (JSON, with a ``.txt`` matrix beside) and its provenance record.

    ``overview_pixel_A`` and ``fluorescence_pixel_A`` (Å) replace the pixel sizes of the
    overview's and of the fluorescence images' headers, where those lack or misstate
    them; ``channel`` and ``cell_channel`` choose the reflection's and the cell's channel
    of multi-channel files (one file may hold both)."""
    ov_volume = read_sized(overview, overview_pixel_A, "overview_pixel_A", None, None)
    fm_volume = read_sized(reflection, fluorescence_pixel_A, "fluorescence_pixel_A", channel)
    ov_nm, fm_nm = ov_volume.voxel_size_A[0] / 10, fm_volume.voxel_size_A[0] / 10
    ov_image, fm_image = single_image(ov_volume, overview), single_image(fm_volume, reflection)
    check_finite(ov_image[None], str(overview))  # named here: hole detection knows no file
    check_finite(fm_image[None], str(reflection))
    cell_image = (
        None
        if cell is None
        else _cell_image(
            (cell, cell_channel),
            fluorescence_pixel_A,
            (fm_volume, reflection),
            (ov_volume, overview),
            fm_image,
        )
    )
    pair = register_images(
        ov_image,
        fm_image,
        ov_nm,
        fm_nm,
        hole_diameter_um,
        hole_spacing_um,
        cell=cell_image,
        landmarks=landmarks,
        mirror=mirror,
        model=model,
        min_score=min_score,
        names=(overview.name, reflection.name),
    )
    warn_scale_disagrees(pair.registration.matrix, fm_nm, ov_nm, reflection, overview)
    save_registration(
        out,
        pair.registration,
        {
            "overview": str(overview),
            "fluorescence": str(reflection),
            "fluorescence_pixel_nm": fm_nm,
            "holes_overview": pair.holes_overview,
            "holes_fluorescence": pair.holes_fluorescence,
            "hole_diameter_measured_um": pair.hole_diameter_um,
        },
    )
    settings = {"hole_diameter_um": hole_diameter_um, "hole_spacing_um": hole_spacing_um}
    settings |= {"model": model, "mirror": {None: "auto", True: "yes", False: "no"}[mirror]}
    settings |= {"min_score": min_score, "channel": channel, "cell_channel": cell_channel}
    inputs = [overview, reflection] + ([cell] if cell else [])
    write_provenance(out, "clem register", settings, inputs)
    return pair


#: Largest disagreement between the scale the holes measure and the ratio of the
#: pixel sizes before a warning: a trial's registration measured it within 0.1%, the
#: correlative simulator lets a fluorescence microscope's calibration be off by up to 3%
#: (``fm_scale_error``), and a 15% error (115 nm given for 100) passed without a word.
SCALE_DISAGREEMENT = 0.04


def warn_scale_disagrees(
    matrix: np.ndarray, fm_nm: float, ov_nm: float, reflection: Path, overview: Path
) -> None:
    """Warn, in one sentence, when the registration's scale (fluorescence → overview
    pixels, measured by the holes) differs from ``fm_nm / ov_nm`` by more than
    :data:`SCALE_DISAGREEMENT`: one of the pixel sizes is wrong, and the wrong one is
    carried on into ``transfer``'s lengths in nm."""
    from ..core.transforms2d import decompose

    measured, nominal = decompose(matrix)["scale"], fm_nm / ov_nm
    off = measured / nominal - 1
    if abs(off) > SCALE_DISAGREEMENT:
        warnings.warn(
            f"the holes scale {reflection.name}'s pixels to {overview.name}'s by "
            f"{measured:.4g}, where their pixel sizes ({fm_nm:g} nm and {ov_nm:g} nm) give "
            f"{nominal:.4g} ({off:+.0%}): one of the pixel sizes is wrong (the hole lattice "
            f"says {measured * ov_nm:.4g} nm for the fluorescence at {ov_nm:g} nm for the "
            "overview); check `fluorescence_pixel_A` and `overview_pixel_A`.",
            stacklevel=2,
        )


def _cell_image(cell: tuple, fluorescence_pixel_A, reflection: tuple, overview: tuple, fm_image):
    """The cell's fluorescence (``cell``: its path and channel; maximum over z), checked
    to be sampled as the reflection is (``reflection``, ``overview``: (volume, path)
    each), over the same field."""
    (fm_volume, reflection), (ov_volume, overview) = reflection, overview
    cell, channel = cell
    cell_volume = read_sized(
        cell, fluorescence_pixel_A, "fluorescence_pixel_A", channel, "cell_channel"
    )
    if not np.allclose(cell_volume.voxel_size_A[:2], fm_volume.voxel_size_A[:2], rtol=0.01):
        swapped = np.allclose(cell_volume.voxel_size_A[:2], ov_volume.voxel_size_A[:2], 0.01)
        raise InvalidDataError(
            f"{cell} and {reflection} have different pixel sizes; the "
            "cell's fluorescence must be imaged like the reflection"
            + (
                f" ({cell} is sampled like {overview}: are the overview and the "
                "reflection swapped? The EM overview comes first)."
                if swapped
                else "."
            )
        )
    cell_image = np.asarray(cell_volume.data, np.float32).max(0)
    check_finite(cell_image[None], str(cell))
    if cell_image.shape != fm_image.shape:
        raise InvalidDataError(
            f"{cell} is {cell_image.shape} pixels, {reflection} "
            f"{fm_image.shape}; give images of the same field."
        )
    return cell_image


def _check_finite_volume(volume: Volume, path: Path, slab_slices: int = 64) -> None:
    """Refuse a volume with NaN or infinite voxels, naming its first such slice (read
    slab by slab)."""
    for z0, z1 in iter_slabs(volume.shape[0], slab_slices):
        check_finite(volume.slab(z0, z1), str(path), z_offset=z0)


def read_sized(
    path: Path,
    pixel_A: float | None,
    parameter: str | None,
    channel: int | None = None,
    channel_parameter: str | None = "channel",
) -> Volume:
    """``read_volume(path, pixel_A, channel)``; a file without a pixel size is refused
    naming the argument ``parameter`` that supplies it (Å), or, where none does
    (``None``), asking for it in the file's header; a multi-channel file without
    ``channel`` is refused naming ``channel_parameter``, the argument that chooses its
    channel (``cell_channel``, ``bleed_channel``; None: the input takes one channel and
    no argument chooses one).  Fluorescence stacks (``parameter``
    ``fluorescence_pixel_A``) are read without the warning about voxels that are not
    cubes: confocal stacks rarely are, and CLEM uses each axis's size (or works in
    pixels, the watershed's seeds one slice apart in z)."""
    from ..io.mrc import anisotropic_voxels_expected
    from ..io.tiff import unnamed_channels_expected

    if pixel_A is not None and not pixel_A > 0:
        raise ParameterError(
            f"`{parameter}` must be a positive pixel size (Å), got {pixel_A}.", parameter=parameter
        )
    fluorescence = parameter == "fluorescence_pixel_A"
    try:
        with contextlib.ExitStack() as fluorescence_read:
            if fluorescence:  # each axis's own size; two-colour files
                fluorescence_read.enter_context(anisotropic_voxels_expected())
                fluorescence_read.enter_context(unnamed_channels_expected())
            return read_volume(path, pixel_A, channel)
    except MissingVoxelSizeError as err:
        if parameter is None:
            raise MissingVoxelSizeError(
                f"{path} records no pixel size; set it in the file's header."
            ) from err
        raise MissingVoxelSizeError(
            f"{path} records no pixel size; give it with `{parameter}` (Å) or set it in "
            "the file's header.",
            parameter=parameter,
        ) from err
    except TomoscribeError as err:  # the channel's argument, as the command names it
        if channel_parameter == "channel" or "channel" not in err.parameters:
            raise
        if channel_parameter is None:  # an input of one channel (overview, tomogram)
            raise InvalidDataError(
                f"{path} holds several channels or colours, and this input takes one; save "
                "the one wanted as a file of its own."
            ) from err
        text = str(err).replace("`channel", f"`{channel_parameter}")
        raise type(err)(text, parameter=channel_parameter) from err


def single_image(volume: Volume, path: Path) -> np.ndarray:
    """The one slice of an image file, as float32; refuses a stack."""
    if volume.shape[0] != 1:
        raise InvalidDataError(
            f"{path} has {volume.shape[0]} slices; give one image (the in-focus slice)."
        )
    return np.asarray(volume.data[0], np.float32)


def check_unmixing(bleed_from: Path | None, fraction: float) -> None:
    """Refuse half an unmixing: a fraction without the channel it is of (a trial's
    ``--bleed-fraction 0.1`` alone was ignored without a word), or a channel with no
    fraction (0: nothing would be removed)."""
    if bleed_from is None and fraction > 0:
        raise ParameterError(
            f"`bleed_fraction={fraction:g}` needs `bleed_from`, the channel whose dye bleeds "
            "into this one; give both, or neither.",
            parameter=("bleed_fraction", "bleed_from"),
        )
    if bleed_from is not None and fraction <= 0:
        raise ParameterError(
            f"`bleed_from` {bleed_from} needs `bleed_fraction`, how much of it this channel "
            "sees (e.g. 0.1); at 0 nothing would be removed.",
            parameter=("bleed_fraction", "bleed_from"),
        )


def unmixed_channel(
    volume: Volume,
    path: Path,
    bleed_from: Path | None,
    fraction: float,
    fluorescence_pixel_A: float | None = None,
    bleed_channel: int | None = None,
) -> np.ndarray:
    """A channel as float32, with ``fraction`` of the dye of the channel in file
    ``bleed_from`` (its channel ``bleed_channel`` of a multi-channel file; same field and
    sampling; its pixel size ``fluorescence_pixel_A`` (Å) where given, as the channel's)
    removed."""
    stack = np.asarray(volume.data, np.float32)
    if bleed_from is None:
        return stack
    other = read_sized(
        bleed_from, fluorescence_pixel_A, "fluorescence_pixel_A", bleed_channel, "bleed_channel"
    )
    if other.shape != volume.shape or not np.allclose(
        other.voxel_size_A, volume.voxel_size_A, rtol=0.01
    ):
        raise InvalidDataError(
            f"{bleed_from} and {path} differ in shape or voxel size; "
            "unmixing needs the same field and sampling."
        )
    return remove_bleed_through(stack, other.data, fraction)


def watershed_file(
    fluorescence: Path,
    out: Path,
    params: WatershedParams | None = None,
    bleed_from: Path | None = None,
    bleed_fraction: float = 0.0,
    fluorescence_pixel_A: float | None = None,
    channel: int | None = None,
    bleed_channel: int | None = None,
) -> pd.DataFrame:
    """3D watershed of a fluorescence channel file; writes the int16 region labels to
    ``out`` with its provenance record and returns the regions' table.
    ``fluorescence_pixel_A`` (Å) replaces the channels' header pixel size; ``channel``
    and ``bleed_channel`` choose the channels of multi-channel files."""
    params = params or WatershedParams()
    check_unmixing(bleed_from, bleed_fraction)
    volume = read_sized(fluorescence, fluorescence_pixel_A, "fluorescence_pixel_A", channel)
    stack = unmixed_channel(
        volume, fluorescence, bleed_from, bleed_fraction, fluorescence_pixel_A, bleed_channel
    )
    if float(np.nanmax(stack)) == float(np.nanmin(stack)):  # an empty label map, exit 0
        raise InvalidDataError(
            f"{fluorescence} holds one value throughout (no contrast), so there is no "
            "signal to segment; is it the right channel?"
        )
    regions, table, _ = watershed_segment(stack, params)
    if not len(table):
        import warnings

        warnings.warn(
            f"no region of {fluorescence} rises {params.foreground_sigma:g} noise deviations "
            "above its background; the label map is empty (a lower --foreground finds "
            "fainter regions).",
            stacklevel=2,
        )
    if int(regions.max()) > np.iinfo(np.int16).max:
        raise InvalidDataError(
            "more than 32767 regions; raise `foreground_sigma` or `merge_depth_sigma`.",
            parameter=["foreground_sigma", "merge_depth_sigma"],
        )
    write_volume(out, volume.with_data(regions.astype(np.int16)))
    write_provenance(
        out,
        "clem watershed",
        params.as_dict()
        | {"bleed_fraction": bleed_fraction, "channel": channel, "bleed_channel": bleed_channel},
        [fluorescence] + ([bleed_from] if bleed_from else []),
    )
    return table


def read_placement(path: Path, tomogram: Volume, tomogram_path: Path) -> dict:
    """The tomogram's place in the overview (JSON: ``tomogram_centre_overview_px``,
    ``tomogram_rotation_deg``, ``overview_pixel_nm``, ``fluorescence_z_slice``),
    checked against the tomogram's shape and voxel size and completed with them."""
    try:
        place = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InvalidDataError(f"{path} is not a readable placement JSON ({err}).") from err
    if not isinstance(place, dict):
        raise InvalidDataError(f"{path} is not a placement: it holds no keys and values.")
    place = dict(place)
    _check_placement_numbers(place, path)
    if [int(s) for s in place.get("tomogram_shape", tomogram.shape)] != list(tomogram.shape):
        raise InvalidDataError(
            f"{path} describes a tomogram of shape "
            f"{place['tomogram_shape']}, but {tomogram_path} is "
            f"{list(tomogram.shape)}."
        )
    place["tomogram_shape"] = list(tomogram.shape)
    place.setdefault("tomogram_voxel_nm", tomogram.voxel_size_A[0] / 10)
    if abs(place["tomogram_voxel_nm"] * 10 / tomogram.voxel_size_A[0] - 1) > 0.02:
        raise InvalidDataError(
            f"{path} says {place['tomogram_voxel_nm']} nm voxels but "
            f"{tomogram_path} has {tomogram.voxel_size_A[0] / 10} nm."
        )
    return place


#: The placement's numbers: each key's count of finite numbers.
_PLACEMENT_NUMBERS = {
    "tomogram_centre_overview_px": 2,
    "tomogram_rotation_deg": 1,
    "overview_pixel_nm": 1,
    "fluorescence_z_slice": 1,
    "tomogram_voxel_nm": 1,
    "tomogram_shape": 3,
}


def _check_placement_numbers(place: dict, path: Path) -> None:
    """Refuse a placement value that is not as many finite numbers as its key takes (a
    trial's NaN rotation was reported as no fluorescence inside the tomogram, a centre
    given as a string as "too many values to unpack"); required keys are checked later
    (:func:`tomoscribe.core.transforms2d.placement_matrix`)."""
    for key, count in _PLACEMENT_NUMBERS.items():
        if key not in place:
            continue
        value = place[key]
        items = value if isinstance(value, list) else [value]
        shape_text = " (z, y, x)" if key == "tomogram_shape" else ""
        shape_text = " (x, y)" if key == "tomogram_centre_overview_px" else shape_text
        if len(items) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            for v in items
        ):
            wanted = "a finite number" if count == 1 else f"{count} finite numbers{shape_text}"
            raise InvalidDataError(f"{path}: {key} must be {wanted}, got {value!r}.")


def check_pixel_sizes(
    record: dict, transform: Path, fm: Volume, fluorescence: Path, place: dict, placement: Path
) -> None:
    """Refuse a channel or a placement sampled otherwise than the registration's images.

    The registration maps fluorescence pixels to overview pixels of the images it was
    made on (its ``fluorescence_pixel_nm`` and ``overview_pixel_nm``); a channel binned
    2× or with a wrong header, or a placement in pixels of another overview binning,
    would otherwise put the labels in the wrong place or give misleading errors.
    Nothing is rescaled: which image is off is the user's to say.  Records without
    the sizes (older ones) are not checked.

    Raises
    ------
    InvalidDataError
        If a size differs from the registration's by more than 1%.
    """
    fm_nm = fm.voxel_size_A[0] / 10
    if _differs(fm_nm, record.get("fluorescence_pixel_nm")):
        raise InvalidDataError(
            f"{fluorescence} has {fm_nm:.4g} nm pixels but the registration {transform} was "
            f"made with {float(record['fluorescence_pixel_nm']):.4g} nm fluorescence pixels; "
            "give the channel at the sampling of the registered fluorescence (or correct "
            "its header)."
        )
    if _differs(place.get("overview_pixel_nm"), record.get("overview_pixel_nm")):
        raise InvalidDataError(
            f"{placement} places the tomogram in overview pixels of "
            f"{float(place['overview_pixel_nm']):.4g} nm but the registration {transform} was "
            f"made on an overview with {float(record['overview_pixel_nm']):.4g} nm pixels; "
            "give a placement and a registration on the same overview sampling."
        )


def _differs(have, want, tolerance: float = 0.01) -> bool:
    """Whether two pixel sizes differ by more than ``tolerance``; False if either is unknown."""
    try:
        have, want = float(have), float(want)
    except (TypeError, ValueError):
        return False
    return have > 0 and want > 0 and abs(have / want - 1) > tolerance


def _check_region_labels(volume: Volume, path: Path, fluorescence: Path) -> None:
    """Refuse regions that are not labels: the fluorescence file itself, a file another
    step recorded writing (not `clem watershed`), or values that are not whole numbers
    (judged on a few slices).  The fluorescence given as ``--regions`` made every bright
    voxel one region, without a word; a raw uint16 channel is whole numbers, hence the
    first two tests (review)."""
    from ..preprocess.check import sampled_values

    step = (read_provenance(path) or {}).get("step")
    if Path(path).resolve() == Path(fluorescence).resolve() or step not in (
        None,
        "clem watershed",
    ):
        made = f" (`tomoscribe {step}` wrote it)" if step else " (it is the fluorescence)"
        raise InvalidDataError(
            f"{path.name} is not a volume of watershed regions{made}; give the regions "
            "`tomoscribe clem watershed` wrote."
        )
    values = sampled_values(volume)
    values = values[np.isfinite(values)]
    if values.size and not np.array_equal(values, np.round(values)):
        raise InvalidDataError(
            f"{path.name} holds values that are not whole numbers, so it is not a volume of "
            "watershed regions; give the regions `tomoscribe clem watershed` wrote."
        )


def transfer_files(
    tomogram: Path,
    fluorescence: Path,
    regions: Path,
    transform: Path,
    placement: Path,
    out: Path,
    params: TransferParams,
    network_map: Path | None = None,
    map_threshold: float = 1.0,
    bleed_from: Path | None = None,
    bleed_fraction: float = 0.0,
    fluorescence_pixel_A: float | None = None,
    channel: int | None = None,
    bleed_channel: int | None = None,
) -> tuple[TrainingSet, dict]:
    """Registered fluorescence regions → a training set for the tomogram, written to
    ``out`` with its provenance record; returns it with the transfer's summary.
    ``fluorescence_pixel_A`` (Å) replaces the header pixel size of the channel, its
    regions and ``bleed_from``; ``channel`` and ``bleed_channel`` choose the channels of
    multi-channel files.

    ``network_map`` (self-training): a map of this tomogram by a network trained on a
    first transfer; its voxels ≥ ``map_threshold`` inside the band become the masks.
    """
    check_unmixing(bleed_from, bleed_fraction)
    tomo = read_sized(tomogram, None, None, None, None)
    fm = read_sized(fluorescence, fluorescence_pixel_A, "fluorescence_pixel_A", channel)
    region_volume = read_sized(regions, fluorescence_pixel_A, "fluorescence_pixel_A", None, None)
    for volume, path in ((tomo, tomogram), (fm, fluorescence)):  # a NaN voxel was met
        _check_finite_volume(volume, path)  # later as a registration that did not fit
    if region_volume.shape != fm.shape:
        raise InvalidDataError(
            f"{regions} ({region_volume.shape}) is not the watershed of "
            f"{fluorescence} ({fm.shape})."
        )
    _check_region_labels(region_volume, regions, fluorescence)
    place = read_placement(placement, tomo, tomogram)
    matrix = load_transform(transform)
    record = json.loads(Path(transform).read_text())
    check_pixel_sizes(record, transform, fm, fluorescence, place, placement)
    tre = float(record.get("loo_tre_nm", {}).get("p90", 0.0))
    map_values = None
    if network_map is not None:
        map_volume = read_sized(network_map, None, None, None, None)
        if map_volume.shape != tomo.shape:
            raise InvalidDataError(
                f"{network_map} ({map_volume.shape}) is not a map of {tomogram} ({tomo.shape})."
            )
        map_values = np.asarray(map_volume.data, np.float32)
    signal = normalised_signal(
        unmixed_channel(
            fm, fluorescence, bleed_from, bleed_fraction, fluorescence_pixel_A, bleed_channel
        )
    )
    fm_voxel_nm = tuple(v / 10 for v in fm.voxel_size_A)
    sampled = fluorescence_in_tomogram(
        np.asarray(region_volume.data), signal, fm_voxel_nm, matrix, place, params.positive_level
    )
    preprocessing = (read_provenance(tomogram) or {}).get("parameters")
    trainset, _, summary = transfer_labels(
        tomo, sampled, params, tre, preprocessing, map_values, map_threshold
    )
    for warning in annotation_warnings(trainset.metadata, params.feature):
        warnings.warn(warning, stacklevel=2)  # a raw tomogram, tiles over the edge
    save_training_set(out, trainset)
    write_provenance(
        out,
        "clem transfer",
        params.as_dict()
        | {"map_threshold": map_threshold, "bleed_fraction": bleed_fraction}
        | {"channel": channel, "bleed_channel": bleed_channel},
        [tomogram, fluorescence, regions, transform, placement]
        + ([network_map] if network_map else [])
        + ([bleed_from] if bleed_from else []),
    )
    return trainset, summary


__all__ = [
    "RegisteredPair",
    "check_pixel_sizes",
    "read_placement",
    "read_sized",
    "register_files",
    "register_images",
    "single_image",
    "transfer_files",
    "unmixed_channel",
    "watershed_file",
]
