"""Single-particle picking on files: what ``tomoscribe spa boxes | train | pick | ncc |
extract`` do, as calls.

- :func:`boxes_to_trainset`: the picker's training set from three box sets (good,
  background, bad) on micrographs;
- :func:`train_picker_file`: the two networks trained, their threshold chosen on
  boxes held out of training, saved;
- :func:`pick_files`: both networks on micrographs → a picks folder;
- :func:`ncc_pick_files`: the reference-based (NCC) baseline → a picks folder;
- :func:`extract_files`: particles cut at picks as RELION's Extract job cuts them →
  ``Particles/NAME.mrcs`` and ``particles.star`` (:mod:`tomoscribe.spa.extract`).

A picks folder holds ``picks.star`` (with its provenance record), ``picks.csv``, one
EMAN2 ``NAME.box`` and ``info/NAME_info.json`` per micrograph, and RELION 4/5's
``autopick.star`` with ``coordinates/NAME_autopick.star`` per micrograph
(:func:`~tomoscribe.io.boxfiles.write_relion_coordinates`: what a RELION Extract job
takes as its input coordinates).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage

from ..errors import AnnotationError, InputFileError, ParameterError, VoxelSizeMismatchError
from ..io.boxfiles import (
    NO_SCORE,
    apply_origins,
    micrograph_name,
    write_box_files,
    write_csv,
    write_info_files,
    write_relion_coordinates,
    write_star,
)
from ..outputs import check_output_folder, output_folder, write_provenance
from ..progress import track
from ..said import said_when_done
from .micrographs import MicrographFiles, common_pixel_size, read_micrograph, shrink_factor


def read_micrographs(paths: list[Path], pixel_size_A: float | None) -> tuple[dict, float]:
    """Micrograph images by name and their one pixel size (Å; ``pixel_size_A`` overrides
    the headers): all held at once, for the few a training set is cut from (picking
    goes one at a time: :func:`checked_micrographs`).

    Raises
    ------
    ParameterError
        A micrograph given twice, or two that share a name.
    """
    size = check_micrograph_files(paths, pixel_size_A)
    images = {}
    for path in paths:
        image, _, name = read_micrograph(path, size)
        images[name] = image
    return images, size


def checked_micrographs(
    paths: list[Path], pixel_size_A: float | None, invert: bool = False
) -> MicrographFiles:
    """The micrographs by name, each read and checked once here (as
    :func:`read_micrographs` does) and read again from its file when it is used
    (:class:`~tomoscribe.spa.micrographs.MicrographFiles`; ``invert`` negates them).

    Picking holds one at a time: all were held as float32 (memory-mapped where the file
    is float32 MRC, copies otherwise and with ``invert``), and a session's 500
    micrographs of 4096² are 32 GB, more than a workstation holds.  A micrograph that
    cannot be picked is still refused before any is picked.
    """
    size = check_micrograph_files(paths, pixel_size_A)
    shapes = {}
    for path in paths:
        image, _, name = read_micrograph(path, size)
        shapes[name] = image.shape
        del image
    return MicrographFiles(paths, size, shapes, invert)


def check_micrograph_files(paths: list[Path], pixel_size_A: float | None) -> float:
    """Refuse a micrograph given twice or two of one name; return their one pixel size
    (Å; ``pixel_size_A`` overrides the headers: :func:`common_pixel_size`)."""
    seen, names = {}, {}
    for path in map(Path, paths):
        real = os.path.realpath(path)  # (Path.resolve raises on a link loop)
        if real in seen:
            what = (
                "given twice" if str(seen[real]) == str(path) else f"the same file as {seen[real]}"
            )
            raise ParameterError(f"{path} is {what}; give each micrograph once.")
        seen[real] = path
        if micrograph_name(path) in names:
            raise ParameterError(
                f"two micrographs are named {micrograph_name(path)} (boxes and picks name a "
                "micrograph by its file name); give each its own name."
            )
        names[micrograph_name(path)] = path
    return common_pixel_size(paths, pixel_size_A)


def check_edge(shapes: dict[str, tuple], edge_px: float) -> None:
    """Refuse an ``edge`` (pixels kept free at each edge) that leaves no pixel centre of
    a micrograph (``shapes``: (ny, nx) by name) to pick on (picks lie within
    edge ≤ x ≤ n − 1 − edge): such a pick run gave 0 picks and no word of why."""
    for name, shape in shapes.items():
        if 2 * edge_px > min(shape) - 1:
            raise ParameterError(
                f"`edge={edge_px:g}` pixels leaves nothing of micrograph {name} "
                f"({shape[1]}×{shape[0]} px) to pick on; give less than half "
                f"its smaller side ({(min(shape) - 1) / 2:g} px at most).",
                parameter="edge",
            )


def check_fits(shapes: dict[str, tuple], box_px: int, whose: str = "") -> None:
    """Refuse micrographs (``shapes``: (ny, nx) by name) smaller than a box (nothing could
    be picked on them); ``whose`` names a box the user cannot choose here (the picker's:
    a trial's `spa pick` was told to give a smaller box, which it has no option for)."""
    for name, shape in shapes.items():
        if min(shape) < box_px:
            raise ParameterError(
                f"micrograph {name} ({shape[1]}×{shape[0]} px) is smaller than "
                + (
                    f"{whose} box ({box_px} px); give whole micrographs."
                    if whose
                    else f"the box ({box_px} px); give whole micrographs or a smaller `box`."
                ),
                parameter=None if whose else "box",
            )


def boxes_to_trainset(
    micrographs: list[Path],
    good: list[Path],
    background: list[Path],
    bad: list[Path],
    output: str | os.PathLike,
    box: int | None = None,
    pixel_size_A: float | None = None,
) -> tuple[dict, int]:
    """The two-network picker's training set from three box sets (STAR, EMAN2 .box or
    info JSON, CSV) on ``micrographs``, saved to ``output`` with its provenance.

    ``box``: box edge in pixels (default: the .box files' own).  Returns the set's
    record (counts per set, shrink, pixel size) and the box edge used (pixels)."""
    from .trainset import build_trainset, read_box_sets, save_trainset

    sets, box_px = read_box_sets(
        {"good": good, "background": background, "bad": bad}, micrographs, box
    )
    used = {m for t in sets.values() for m in t["micrograph"]}
    images, size = read_micrographs(
        [p for p in micrographs if micrograph_name(p) in used], pixel_size_A
    )  # then the warning: a refusal of one of these stays one sentence (a review)
    _warn_of_micrographs_without_boxes([p for p in micrographs if micrograph_name(p) not in used])
    sets = {k: apply_origins(t, size) for k, t in sets.items()}
    trainset = build_trainset(images, size, sets, box_px)
    save_trainset(output, trainset)
    write_provenance(
        output, "spa boxes", trainset["record"], [*micrographs, *good, *background, *bad]
    )
    return trainset["record"], box_px


def _warn_of_micrographs_without_boxes(unused: list[Path]) -> None:
    """Say which micrographs given hold no box of any set: they are left out of the
    training set unread (a trial's micrograph of another pixel size, one smaller than
    the box and one without a pixel size were each dropped without a word)."""
    if not unused:
        return
    import warnings

    names = ", ".join(p.name for p in unused[:5]) + (" …" if len(unused) > 5 else "")
    one = len(unused) == 1
    warnings.warn(
        f"{len(unused)} micrograph{'' if one else 's'} given hold{'s' if one else ''} no box "
        f"of any set and {'is' if one else 'are'} left out, unread: {names}.",
        stacklevel=3,
    )


def train_picker_file(
    trainset: str | os.PathLike,
    output: str | os.PathLike,
    steps: int = 2500,
    batch: int = 32,
    seed: int = 0,
    device: str = "auto",
    say: Callable[[str], None] = lambda message: None,
    self_training: bool = True,
    pairs: int = 2,
) -> dict:
    """Train ``pairs`` pairs of networks (good vs background, good vs bad; 2:
    ``ensemble.DEFAULT_PAIRS``, why there) on a training set file for ``steps`` steps
    of ``batch`` patches each (2500: ``network.DEFAULT_STEPS``, why there), each pair
    with another fifth of each set's boxes held out to choose the picking threshold on,
    self-training on the annotated micrographs first (:mod:`tomoscribe.spa.selftraining`)
    unless ``self_training`` is False, and save the picker to ``output``.  Returns the
    picker's record (geometry, training history, ``threshold``)."""
    from ..core.device import resolve_device
    from .ensemble import train_ensemble
    from .network import calibration_warning
    from .picking import picker_record, save_picker
    from .trainset import load_trainset

    data = load_trainset(trainset)
    picker, record = train_ensemble(
        data,
        pairs=pairs,
        steps=steps,
        batch=batch,
        seed=seed,
        device=str(resolve_device(device)),
        say=say,
        self_training=self_training,
    )
    full = picker_record(data["record"], record)
    save_picker(output, picker, full)
    write_provenance(output, "spa train", full, [Path(trainset)])
    uncertain = calibration_warning(record["calibration"])
    if uncertain:
        import warnings

        warnings.warn(uncertain, stacklevel=2)
    return full


def pick_files(
    picker: str | os.PathLike,
    micrographs: list[Path],
    out_dir: str | os.PathLike,
    threshold: float | None = None,
    min_distance: float | None = None,
    edge: float | None = None,
    pixel_size_A: float | None = None,
    isolation: float | None = None,
    density_check: bool = True,
    invert: bool = False,
    show_progress: bool = False,
) -> pd.DataFrame:
    """Pick particles on micrographs with a picker file (both networks; a score per
    pick) into the picks folder ``out_dir`` (``invert``: micrographs of the other contrast
    than the picker learned from, negated first), where the combined score reaches
    ``threshold`` (default: the one the picker recorded, chosen on held-out boxes).
    ``min_distance`` and ``edge`` in pixels (default half a box); ``isolation`` in
    pixels (default three quarters of a box): picks with another particle nearer are
    left out (:func:`tomoscribe.spa.picking.crowded`); with ``density_check``, so are
    picks off the good boxes' density range, and regions far off it are hidden from the
    networks (:mod:`tomoscribe.spa.density`; pickers trained before it was recorded
    check nothing, and say so).  The micrographs are read one at a time
    (:func:`checked_micrographs`); ``show_progress``: a bar on stderr.  Returns the picks.

    Raises
    ------
    VoxelSizeMismatchError
        The micrographs' pixel size differs from the picker's by more than 5%.
    """
    from .picking import load_picker, pick_micrograph

    networks, record = load_picker(picker)
    threshold = float(record["threshold"]) if threshold is None else threshold
    images = checked_micrographs(micrographs, pixel_size_A, invert)
    size = images.pixel_size_A
    if abs(size - record["pixel_size_A"]) > 0.05 * record["pixel_size_A"]:
        raise VoxelSizeMismatchError(
            f"the micrographs have {size:g} Å pixels but {picker} was trained on "
            f"{record['pixel_size_A']:g} Å; resample them or train on such micrographs "
            "(or pass `pixel_size_A` if their headers are wrong).",
            parameter="pixel_size_A",
        )
    check_fits(images.shapes, int(record["box_px"]), "the picker's")
    check_edge(images.shapes, int(record["box_px"]) / 2 if edge is None else edge)

    def pick(image, name):
        return pick_micrograph(
            networks, image, name, record, threshold, min_distance, edge, isolation, density_check
        )

    with said_when_done():  # after the bar, not through it
        tables = [pick(image, name) for name, image in _one_by_one(images, show_progress)]
        _warn_of_white_protein(images, tables, pick, invert)
    _warn_of_an_older_picker(picker, record, density_check)
    _warn_off_range(tables)
    picks = pd.concat(tables, ignore_index=True)
    _warn_if_none(picks, len(tables), threshold)
    write_picks_folder(
        out_dir,
        picks.assign(pixel_size_A=size),
        micrographs,
        int(record["box_px"]),
        "auto_cnn",
        "spa pick",
        {
            "threshold": threshold,
            "picker": str(picker),
            "isolation_px": 0.75 * int(record["box_px"]) if isolation is None else isolation,
            "density_range": record.get("density_range") if density_check else None,
            "inverted": invert,
        },
    )
    return picks


def _one_by_one(images: MicrographFiles, show_progress: bool):
    """(name, image) of each micrograph, read in turn, with a bar that is cleared when
    done (``show_progress``)."""
    return track(images.items(), "picking", len(images), show_progress, transient=True)


#: A micrograph of fewer picks than this whose negative gives at least this many, and
#: five times its own, is said to show protein of the other contrast than the picker
#: learned.
WHITE_PROTEIN_PICKS = 5


def _warn_of_white_protein(
    images: Mapping,
    tables: list,
    pick,
    inverted: bool,
    ratio: float = 5.0,
    against: str = "in the micrographs the picker learned from",
) -> None:
    """Where a micrograph gave (almost) no pick, pick its negative: many picks there
    (``ratio`` times its own at least) mean its protein has the other contrast than
    ``against`` (a
    trial's micrographs, inverted already as some pipelines write them, gave 0 picks and
    only "check that these micrographs are like those the picker was trained on").
    Costs one more picking of those micrographs only."""
    import warnings

    found = {}
    for name, table in zip(images, tables):
        if len(table) < WHITE_PROTEIN_PICKS:
            flipped = len(pick(-images[name], name))
            if flipped >= max(WHITE_PROTEIN_PICKS, ratio * len(table)):
                found[name] = flipped
    if found:
        names = sorted(found)
        warnings.warn(
            f"{len(names)} micrograph(s) ({', '.join(names[:3])}"
            f"{', …' if len(names) > 3 else ''}) gave (almost) no pick, where their negatives "
            f"give {sum(found.values())}: their protein has the other contrast than "
            f"{against}; "
            + ("pick them without --invert." if inverted else "pick them with --invert."),
            stacklevel=3,
        )


def _warn_if_none(picks: pd.DataFrame, n_micrographs: int, threshold: float) -> None:
    """Warn where nothing reached the threshold: the picks files will be empty."""
    if picks.empty:
        import warnings

        warnings.warn(
            f"no pick on the {n_micrographs} micrograph(s) reached the threshold, "
            f"{threshold:g}, and passed the checks, so the picks files are empty; lower "
            "--threshold, or check that these micrographs are like those the picker "
            "was trained on.",
            stacklevel=3,
        )


def _warn_of_an_older_picker(picker, record: dict, density_check: bool) -> None:
    """Warn where the picker file predates what picking now does: the good boxes'
    density levels, or the ice's scale (since 2026-12-06)."""
    import warnings

    from .picking import MICROGRAPH_SCALE

    if density_check and record.get("density_range") is None:
        warnings.warn(
            f"{picker} was trained from a training set without the good boxes' density "
            "levels, so picks on carbon are not left out; make the set again with "
            "`spa boxes` and train on it to have them left out.",
            stacklevel=3,
        )
    if record.get("micrograph_scale") != MICROGRAPH_SCALE:
        warnings.warn(
            f"{picker} learned from micrographs scaled by the spread of all their pixels, "
            "which the carbon's texture widens; they are now scaled by the ice's, so on "
            "micrographs with carbon it sees particles at more contrast than it learned; "
            "train it again with `spa train` on a set made again with `spa boxes`.",
            stacklevel=3,
        )


def _warn_off_range(tables: list[pd.DataFrame]) -> None:
    """Warn of micrographs with much of their area less dense than the good boxes'
    range (:mod:`tomoscribe.spa.density`: ``attrs["thin_fraction"]`` of each table)."""
    from .density import WARN_THIN_FRACTION

    many = [
        f"{t.attrs['micrograph']} ({t.attrs['thin_fraction']:.0%})"
        for t in tables
        if t.attrs.get("thin_fraction", 0) > WARN_THIN_FRACTION
    ]
    if many:
        import warnings

        warnings.warn(
            f"{len(many)} of the {len(tables)} micrographs have more than "
            f"{WARN_THIN_FRACTION:.0%} of their area less dense than around the good boxes, "
            f"and nothing was picked in that area ({', '.join(many[:5])}"
            f"{' …' if len(many) > 5 else ''}): harmless for "
            "empty holes, but a micrograph mostly on carbon loses its ice this way, so "
            "check them and pick those again alone with --any-density.",
            stacklevel=3,
        )


def ncc_pick_files(
    micrographs: list[Path],
    out_dir: str | os.PathLike,
    references: list[Path] | None = None,
    reference_map: Path | None = None,
    n_projections: int = 20,
    box: int | None = None,
    threshold: float = 0.25,
    pixel_size_A: float | None = None,
    seed: int = 0,
    invert: bool = False,
    show_progress: bool = False,
) -> pd.DataFrame:
    """The NCC baseline picker into the picks folder ``out_dir``: references averaged
    from hand-picked boxes (``references``: box files on some of the micrographs) or
    ``n_projections`` projections of ``reference_map`` (then ``box``, pixels, is
    required; the projections are taken to show protein dark, as raw micrographs do,
    and ``invert`` negates micrographs that show it white); picks where the normalised
    cross-correlation reaches ``threshold``; the micrographs are read one at a time,
    ``show_progress``: a bar on stderr.  Returns the picks."""
    from .reference import ncc_pick_micrograph

    if bool(references) == (reference_map is not None):
        raise ParameterError(
            "give either `references` or `reference_map`.",
            parameter=["references", "reference_map"],
        )
    table = None
    if references:
        from .trainset import MIN_BOXES, read_box_sets

        sets, box_px = read_box_sets({"good": references}, micrographs, box)
        table = sets["good"]
        if len(table) < MIN_BOXES:  # (check_boxes would name the picker's good set)
            raise AnnotationError(
                f"the reference boxes are {len(table)}; draw at least {MIN_BOXES} "
                "(10–15 work well).",
                parameter="references",
            )
    elif box is None:
        raise ParameterError(
            "pass `box` (pixels) with `reference_map`.", parameter=["box", "reference_map"]
        )
    else:
        box_px = box
    images = checked_micrographs(micrographs, pixel_size_A, invert)
    size = images.pixel_size_A
    check_fits(images.shapes, box_px)
    table = None if table is None else apply_origins(table, size)
    shrink = shrink_factor(box_px)
    refs = _ncc_references(table, reference_map, images, size, box_px, shrink, n_projections, seed)

    def pick(image, name):
        return ncc_pick_micrograph(image, name, refs, shrink, box_px, threshold)

    with said_when_done():
        tables = [pick(image, name) for name, image in _one_by_one(images, show_progress)]
        if reference_map is not None:  # boxes cut from the micrographs share their
            # contrast; noise alone passes 0.25 at a few places of either sign (4 of 16
            # particles' worth on a white 256² micrograph), so 3 times, not the networks' 5
            _warn_of_white_protein(images, tables, pick, invert, 3.0, "in the map's projections")
    picks = pd.concat(tables, ignore_index=True)
    _warn_if_none(picks, len(images), threshold)
    write_picks_folder(
        out_dir,
        picks.assign(pixel_size_A=size),
        micrographs,
        box_px,
        "auto_ncc",
        "spa ncc",
        {"threshold": threshold, "references": len(refs), "inverted": invert},
    )
    return picks


def _ncc_references(table, reference_map, images, size, box_px, shrink, n, seed) -> np.ndarray:
    """References of the NCC picker (shrunk): projections of ``reference_map``, else the
    average of the boxes in ``table`` cut from ``images`` (:class:`MicrographFiles`)."""
    from .micrographs import shrink_and_normalise, to_shrunk
    from .reference import references_from_map, references_from_patches
    from .trainset import check_boxes, cut_patches, patch_geometry

    geometry = patch_geometry(box_px, shrink)
    if reference_map is not None:
        from ..errors import MissingVoxelSizeError
        from ..io import read_volume, warn_unset_voxel_size

        try:
            volume = read_volume(reference_map)
            pixel_size_map = volume.pixel_size_A
            warn_unset_voxel_size(reference_map, volume, "the reference map")
        except MissingVoxelSizeError:
            raise MissingVoxelSizeError(
                f"{reference_map} records no voxel size; set it in its header (e.g. "
                "`alterheader -del` in IMOD, or mrcfile's voxel_size)."
            ) from None
        from ..volume import check_reference_map

        data = check_reference_map(volume.load(), f"the reference map {reference_map}")
        _warn_box_within_particle(data, pixel_size_map, size, box_px, reference_map)
        return references_from_map(data, pixel_size_map, size * shrink, geometry["box"], n, seed)
    check_boxes(
        {"good": table, "background": table, "bad": table},
        images.shapes,
        box_px,
    )
    patches = [
        cut_patches(
            shrink_and_normalise(images[m], shrink),
            to_shrunk(rows[["x", "y"]].to_numpy(float), shrink),
            geometry["patch"],
        )
        for m, rows in table.groupby("micrograph")
    ]
    return references_from_patches(np.concatenate(patches), geometry["box"])


def particle_diameter_A(data: np.ndarray, voxel_size_A: float) -> float:
    """Diameter (Å) of a map's particle, roughly (a warning's figure): twice the
    farthest voxel from its centre of mass of the connected region, at a tenth of the
    peak of the map smoothed by one voxel, that holds the peak (the noise of an unmasked
    map lies outside it).  The blur widens it: a ball's comes out ~18% large, a
    bundled map's 10–40%; density joined to the particle (a micelle) counts as it."""
    smooth = scipy.ndimage.gaussian_filter(np.asarray(data, np.float32), 1.0)
    regions, _ = scipy.ndimage.label(smooth >= 0.1 * float(smooth.max()))
    peak = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    region = regions == regions[peak]
    centre = np.array(scipy.ndimage.center_of_mass(smooth, region.astype(np.int32), 1))
    inside = np.argwhere(region)
    return 2.0 * float(np.sqrt(((inside - centre) ** 2).sum(1)).max() + 0.5) * voxel_size_A


def _warn_box_within_particle(data, voxel_size_A, pixel_size_A, box_px, reference_map) -> None:
    """Warn when the box is narrower than the reference map's particle: its projections
    are cut to a piece of it (a trial's 32 px box on an 89 px particle picked at
    precision 0.09, 134 px at 0.59, without a word)."""
    import warnings

    diameter_px = particle_diameter_A(data, voxel_size_A) / pixel_size_A
    if box_px < diameter_px:
        warnings.warn(
            f"a box of {box_px} px is narrower than the particle of {Path(reference_map).name} "
            f"(about {diameter_px:.0f} px across at {pixel_size_A:g} Å per pixel), so the "
            f"references hold only a piece of it; give --box of about {1.5 * diameter_px:.0f} "
            "px (1.5 diameters).",
            stacklevel=3,
        )


def write_picks_folder(
    out_dir: str | os.PathLike,
    picks: pd.DataFrame,
    micrographs: list[Path],
    box_px: int,
    kind: str,
    command: str,
    parameters: dict,
) -> None:
    """Write a picks folder (see the module docstring); ``kind`` names the picker in the
    info files (``auto_cnn``, ``auto_ncc``), ``command`` the provenance step (``spa
    pick``, ``spa ncc``: the command that wrote them).  A ``pixel_size_A``
    column of ``picks`` (Å) becomes ``rlnMicrographPixelSize`` on every row of
    ``picks.star`` (a column, not an optics block: readers that take a coordinate
    file's first block still find the coordinates)."""
    files = {micrograph_name(p): str(p) for p in micrographs}  # as given, as RELION keeps them
    extra = {"pixel_size_A": "rlnMicrographPixelSize"} if "pixel_size_A" in picks else None
    with output_folder(out_dir, True, micrographs, step="spa picks") as staging:
        write_star(staging / "picks.star", picks, files, extra)
        write_csv(staging / "picks.csv", picks.drop(columns=["pixel_size_A"], errors="ignore"))
        write_box_files(staging, picks, box_px)
        write_info_files(staging, picks, kind)
        write_relion_coordinates(staging, picks, files, final_folder=out_dir)
        write_provenance(staging / "picks.star", command, parameters, micrographs)


#: Runs of more micrographs than this say how far they are (a short run's error stays
#: the one line it prints).
PROGRESS_FROM = 10


def extract_files(
    micrographs: list[Path],
    picks: list[Path],
    out_dir: str | os.PathLike,
    box: int | None = None,
    ctf_star: str | os.PathLike | None = None,
    bg_radius: int | None = None,
    invert: bool = True,
    normalise: bool = True,
    pixel_size_A: float | None = None,
    microscope: dict | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> pd.DataFrame:
    """Cut the particles at ``picks`` (STAR, EMAN2 .box or info JSON, CSV; a picks
    folder's ``picks.star``) out of ``micrographs`` as RELION's Extract job does
    (:mod:`tomoscribe.spa.extract`) into the folder ``out_dir``: ``Particles/NAME.mrcs``
    per micrograph with picks and ``particles.star`` (an optics block; one row per
    particle: ``rlnImageName`` ``N@…/Particles/NAME.mrcs`` named from the working folder
    as RELION reads it, ``rlnMicrographName``, the coordinates, and the micrograph's CTF
    and optics group from ``ctf_star``, a CtfFind job's ``micrographs_ctf.star``, where
    given), which ``classify2d`` and RELION read.  Micrographs are read one at a time.
    Picks on micrographs not given are left out, with a warning (RELION extracts the
    micrographs it is given).

    ``box`` in pixels, even (default: the .box files' own); ``bg_radius`` in pixels
    (default RELION's, :func:`~tomoscribe.spa.extract.default_bg_radius`);
    ``microscope`` (``voltage_kV``, ``cs_mm``, ``amplitude_contrast``) fills what
    ``ctf_star`` lacks.  ``say`` hears the progress of runs of more than
    ``PROGRESS_FROM`` micrographs, about every tenth.  Returns the particle rows.

    Raises
    ------
    InputFileError
        No picks on the micrographs given, one pick in two files, picks wholly outside
        their micrograph, a micrograph with picks that ``ctf_star`` lacks or names by a
        path holding another image, a ``ctf_star`` of another pixel size.
    ParameterError
        No box size given and none in the files, an odd box, a box larger than a
        micrograph, a background radius wider than half the box.
    """
    from .extract import check_bg_radius, check_even_box, default_bg_radius

    table, box_px, left_out = _picks_to_extract(picks, micrographs, box)
    check_even_box(box_px, "the .box files'" if box is None else None)
    radius = default_bg_radius(box_px) if bg_radius is None else bg_radius
    if normalise:
        check_bg_radius(radius, box_px)
    used = [p for p in micrographs if micrograph_name(p) in set(table["micrograph"])]
    size = check_micrograph_files(used, pixel_size_A)
    table = apply_origins(table, size)
    ctf, optics = _micrograph_ctf(ctf_star, used, size) if ctf_star else (None, None)
    inputs = [*micrographs, *picks, *([Path(ctf_star)] if ctf_star else [])]
    check_output_folder(out_dir, inputs, ["particles.star"])  # before the work, not after
    with output_folder(out_dir, True, inputs, step="spa extract") as staging:
        rows = []
        for k, path in enumerate(used, 1):
            how = (radius, invert, normalise)
            rows.append(_extract_one(path, table, box_px, size, how, staging, out_dir))
            if len(used) > PROGRESS_FROM and (k % max(1, len(used) // 10) == 0 or k == len(used)):
                say(f"extracted {k} of {len(used)} micrographs")
        table = pd.concat(rows, ignore_index=True)
        table = _with_ctf(table, ctf)
        lacking = _write_particle_star(
            staging / "particles.star", table, size, box_px, optics, microscope
        )
        settings = {"box_px": box_px, "bg_radius_px": radius, "invert": invert}
        settings["normalise"] = normalise
        write_provenance(staging / "particles.star", "spa extract", settings, inputs)
    if left_out:  # said once the work is done: an error instead is one sentence
        warnings.warn(left_out, stacklevel=2)
    _warn_of_what_relion_lacks(ctf is not None, lacking)
    return table


def _picks_to_extract(picks: list[Path], micrographs: list[Path], box: int | None):
    """The picks on the micrographs given, the box size, and what was left out (picks on
    other micrographs; a sentence, or None).  Refuses a pick given in two files
    (extracted twice, a duplicate particle inflates a gold-standard FSC)."""
    from .trainset import read_box_sets

    sets, box_px = read_box_sets({"picks": picks}, micrographs, box, others="leave out")
    table = sets["picks"].reset_index(drop=True)
    left_out = table["micrograph"].isna()
    if left_out.all():
        names = sorted(set(table["unmatched"]))
        raise InputFileError(
            f"the picks are on {', '.join(names[:3])}{', …' if len(names) > 3 else ''}, none "
            "of them a micrograph given (names must match exactly); give those micrographs."
        )
    notes = []
    if left_out.any():
        names = sorted(set(table.loc[left_out, "unmatched"]))
        notes.append(
            f"{int(left_out.sum())} picks on {len(names)} "
            f"micrograph{'s' if len(names) > 1 else ''} not given "
            f"({', '.join(names[:3])}{', …' if len(names) > 3 else ''}) are left out."
        )
    empty = sorted({micrograph_name(p) for p in micrographs} - set(table["micrograph"].dropna()))
    if empty:  # a trial's misnamed micrograph was hidden behind the '…' above
        notes.append(
            f"{len(empty)} micrograph{'s' if len(empty) > 1 else ''} given "
            f"({', '.join(empty[:5])}{', …' if len(empty) > 5 else ''}) "
            f"{'have' if len(empty) > 1 else 'has'} no pick: check that the picks name "
            f"{'them' if len(empty) > 1 else 'it'} as given."
        )
    note = " ".join(notes) or None
    table = table[~left_out].reset_index(drop=True)
    _refuse_picks_in_two_files(table)
    return table, box_px, note


def _refuse_picks_in_two_files(table: pd.DataFrame) -> None:
    """Refuse picks within a pixel of each other on one micrograph from two files
    (``picks.star`` and ``NAME.box`` of one picks folder: the .box corners are whole
    pixels): each particle would be cut twice, and duplicates inflate a gold-standard
    FSC."""
    from scipy.spatial import cKDTree

    if "source" not in table:
        return
    for name, rows in table.groupby("micrograph"):
        pairs = cKDTree(rows[["x", "y"]].to_numpy(float)).query_pairs(1.0, output_type="ndarray")
        sources = rows["source"].to_numpy()
        twice = pairs[sources[pairs[:, 0]] != sources[pairs[:, 1]]]
        if len(twice):
            files = sorted({sources[twice[0, 0]], sources[twice[0, 1]]})
            raise InputFileError(
                f"{files[0]} and {files[1]} hold the same picks ({len(twice)} within a pixel "
                f"on {name}); give each pick once: one file of a picks folder, not several."
            )


def _extract_one(path: Path, table, box_px: int, size: float, how, staging: Path, out_dir):
    """Read one micrograph, cut its picks' boxes into ``Particles/NAME.mrcs`` (in
    ``staging``) and return its particle rows; ``how``: (background radius, invert,
    normalise)."""
    from ..io.image_names import relion_image_name
    from .extract import check_inside, extract_particles

    image, _, name = read_micrograph(path, size)
    check_fits({name: image.shape}, box_px)
    mine = table[table["micrograph"] == name]
    xy = mine[["x", "y"]].to_numpy(float)
    check_inside(xy, box_px, image.shape, name)
    stack = Path("Particles") / f"{name}.mrcs"
    radius, invert, normalise = how
    particles = extract_particles(image, xy, box_px, radius, invert, normalise)
    del image
    _write_stack(staging / stack, particles, size)
    final = Path(out_dir)
    named = relion_image_name(os.path.abspath(final / stack), final)
    rows = pd.DataFrame(
        {
            "rlnImageName": [f"{k + 1:06d}@{named}" for k in range(len(mine))],
            "rlnMicrographName": relion_image_name(os.path.abspath(path), final),
            "rlnCoordinateX": mine["x"].to_numpy(float),
            "rlnCoordinateY": mine["y"].to_numpy(float),
            "micrograph": name,
        }
    )
    if "score" in mine:
        rows["rlnAutopickFigureOfMerit"] = mine["score"].fillna(NO_SCORE).to_numpy(float)
    return rows


def _write_stack(path: Path, particles: np.ndarray, pixel_size_A: float) -> None:
    """An MRC image stack (mode 2) of ``particles`` with its pixel size in the header."""
    import mrcfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(particles, np.float32))
        mrc.set_image_stack()
        mrc.voxel_size = pixel_size_A


def _micrograph_ctf(ctf_star, used: list[Path], size: float):
    """The CTF rows (by micrograph name) of the micrographs with picks and the file's
    optics block.  Refuses a micrograph the file lacks, one it names by a path that
    holds another image (:func:`~tomoscribe.io.boxfiles.check_named_micrographs`), and
    a file whose micrographs have another pixel size than these."""
    from ..io.boxfiles import check_named_micrographs
    from ..io.micrograph_ctf import read_micrograph_ctf

    ctf, optics = read_micrograph_ctf(ctf_star)
    names = [micrograph_name(p) for p in used]
    missing = [name for name in names if name not in ctf.index]
    if missing:
        raise InputFileError(
            f"{ctf_star} has no CTF estimate of micrograph {missing[0]}"
            + (f" (nor of {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; give the micrographs_ctf.star of a CtfFind job that ran on them."
        )
    ctf = ctf.loc[names]
    named = pd.DataFrame(
        {"micrograph": names, "named": ctf["rlnMicrographName"].to_numpy(), "source": str(ctf_star)}
    )
    check_named_micrographs(
        named, dict(zip(names, used)), "give the CTF estimates of the micrographs given"
    )
    _warn_of_unfound_paths(ctf_star, [str(n) for n in named["named"]])
    recorded = ctf["rlnMicrographPixelSize"] if "rlnMicrographPixelSize" in ctf else None
    if recorded is not None and (abs(recorded - size) > 0.01 * size).any():
        raise InputFileError(
            f"{ctf_star} gives the micrographs {float(recorded.iloc[0]):g} Å pixels "
            f"but they have {size:g} Å; give the estimates of these micrographs, or "
            "their true pixel size with `pixel_size_A`.",
            parameter="pixel_size_A",
        )
    return ctf, optics


def _warn_of_unfound_paths(ctf_star, named: list[str]) -> None:
    """Say when a CTF file names its micrographs by paths found neither from the working
    folder nor from the RELION project holding it: their estimates are then matched to
    the micrographs given by file name alone (a trial: another project's
    ``micrographs_ctf.star`` gave mic_000's particles another mic_000's defocus, exit 0)."""
    bases = [Path.cwd(), *Path(ctf_star).resolve().parents]
    unfound = [n for n in named if os.path.dirname(n) and not any((b / n).is_file() for b in bases)]
    if unfound:
        warnings.warn(
            f"{Path(ctf_star).name} names {len(unfound)} of these micrographs by paths not "
            f"found here (e.g. {unfound[0]}), so their CTF estimates are matched by file "
            "name alone: check that it is the CtfFind job of these micrographs.",
            stacklevel=4,
        )


def _with_ctf(table: pd.DataFrame, ctf) -> pd.DataFrame:
    """The particle rows with their micrograph's CTF columns and optics group."""
    from ..io.micrograph_ctf import PER_MICROGRAPH

    if ctf is not None:
        kept = [c for c in (*PER_MICROGRAPH, "rlnOpticsGroup") if c in ctf]
        table = table.merge(ctf[kept], left_on="micrograph", right_index=True, how="left")
    return table.drop(columns=["micrograph"])


def _write_particle_star(
    path: Path, rows, size: float, box_px: int, optics, microscope
) -> list[str]:
    """particles.star: the CTF file's optics groups (their columns kept, RELION's image
    columns added) or a new block (:func:`~tomoscribe.io.particlestacks.new_optics`),
    voltage, Cs and amplitude contrast from ``microscope`` where neither gives them.
    Returns the columns RELION 3.1+ needs that the block still lacks (voltage, Cs)."""
    import starfile

    from ..io.microscope import MICROSCOPE_LABELS
    from ..io.particlestacks import new_optics

    rows = rows.copy()
    if optics is not None and "rlnOpticsGroup" in rows:
        optics = optics.copy()  # whole, as RELION's Extract copies the micrographs' block
        on_rows = [c for c in MICROSCOPE_LABELS.values() if c in rows and c in optics]
        rows = rows.drop(columns=on_rows)  # the block's (RELION 3.1+ reads them there)
        optics = optics.assign(
            rlnImagePixelSize=float(size), rlnImageSize=box_px, rlnImageDimensionality=2
        )
    else:
        optics, rows = new_optics(rows, np.full(len(rows), float(size)), box_px)
        optics["rlnMicrographPixelSize"] = float(size)
    for ours, value in (microscope or {}).items():
        if value is not None and MICROSCOPE_LABELS[ours] not in optics:
            optics[MICROSCOPE_LABELS[ours]] = float(value)
    starfile.write({"optics": optics, "particles": rows}, path)
    return [c for c in ("rlnVoltage", "rlnSphericalAberration") if c not in optics]


def _warn_of_what_relion_lacks(with_ctf: bool, lacking: list[str]) -> None:
    """Say what particles.star lacks that classify2d's CTF correction or RELION 3.1+
    needs: a defocus (no ``ctf_star``), voltage and Cs (``lacking``: their columns)."""
    if with_ctf and not lacking:
        return
    what = ([] if with_ctf else ["no defocus"]) + [f"no {c}" for c in lacking]
    warnings.warn(
        f"particles.star has {' and '.join(what)}"
        + ("" if with_ctf else " (no `ctf_star` was given)")
        + ", so RELION 3.1+ cannot use it"
        + ("" if with_ctf else " and classify2d averages without CTF correction")
        + "; give a CtfFind job's micrographs_ctf.star"
        + (", and `voltage` and `cs`" if lacking else "")
        + ".",
        stacklevel=3,
    )
