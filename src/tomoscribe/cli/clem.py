"""``tomoscribe clem simulate | register | watershed | transfer | pipeline``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import InvalidDataError, ParameterError
from ..outputs import write_provenance
from . import options
from .checks import writes
from .app import app

if TYPE_CHECKING:  # annotations only; imported where used
    import numpy as np

clem_app = typer.Typer(help="Annotation from correlative fluorescence: register through the "
                            "film's holes, segment the fluorescence, transfer labels.",
                       no_args_is_help=True)
app.add_typer(clem_app, name="clem")


@clem_app.command("simulate")
@writes(folders=("out",))
def simulate(
    out: Path = typer.Option(Path("clem-data"), "--out", help="Directory for the dataset."),
    size: str = typer.Option("medium", "--size", help="small or medium."),
    seed: int = options.Seed,
    snr: float = typer.Option(0.1, "--snr", min=0.0, help="Tomogram's signal-to-noise ratio."),
    mirror: bool = typer.Option(False, "--mirror/--no-mirror",
                                help="Mirror the fluorescence relative to the overview."),
) -> None:
    """A simulated tomogram with its correlative overview, fluorescence and truth."""
    from ..clem.pipeline import simulate_clem_dataset

    simulate_clem_dataset(out, size, seed, snr, mirror)
    typer.echo(f"wrote tomogram_1.mrc, preprocessed_1.mrc, clem/ (overview, fluorescence_*, "
               f"placement.json) and truth/ under {out}")


@clem_app.command("register")
@writes(files=("out",))
def register(
    overview: Path = typer.Argument(..., help="EM overview of the grid square (MRC/TIFF, one "
                                    "slice, with its pixel size)."),
    reflection: Path = typer.Argument(..., help="Fluorescence/reflection image showing the "
                                      "film's holes (with its pixel size)."),
    out: Path = typer.Option(..., "--out", "-o", help="Transform (.json; a .txt matrix beside)."),
    hole_diameter_um: float = typer.Option(2.0, "--hole-diameter", min=0.1,
                                           help="Hole diameter (µm); Quantifoil R2/1: 2."),
    hole_spacing_um: float = typer.Option(3.0, "--hole-spacing", min=0.2,
                                          help="Centre-to-centre hole spacing (µm)."),
    cell: Path = typer.Option(None, "--cell", help="Fluorescence of the whole cell (a "
                              "cytoplasmic stain) to resolve the lattice ambiguity."),
    landmark: list[str] = typer.Option(None, "--landmark", help="fx,fy,ox,oy: one point in "
                                       "fluorescence and overview pixels (repeat; ≥ 2, or ≥ 3 "
                                       "with --mirror auto)."),
    mirror: str = typer.Option("auto", "--mirror", help="auto, yes or no: whether the "
                               "fluorescence is mirrored relative to the overview."),
    model: str = typer.Option("similarity", "--model", help="similarity or affine."),
    min_score: float = typer.Option(0.4, "--min-score", min=0.0, max=1.0,
                                    help="Lowest hole-template correlation accepted."),
    overview_pixel_A: float = typer.Option(None, "--overview-pixel-size", min=0.0,
                                           help="The overview's pixel size (Å), where its "
                                                "header lacks or misstates it."),
) -> None:
    """Register fluorescence to an EM overview through the holes of the support film."""
    import numpy as np

    from ..clem.holes import detect_holes
    from ..clem.lattice import fit_lattice
    from ..clem.register import (anchor_by_cell, anchor_by_landmarks, register_lattices,
                                 save_registration)
    from ..io import read_volume

    mirror_flag = {"auto": None, "yes": True, "no": False}.get(mirror, "bad")
    if mirror_flag == "bad":
        raise ParameterError(f"--mirror must be auto, yes or no, got {mirror!r}.")
    if (cell is None) == (not landmark):
        raise ParameterError("give either --cell (the cell's fluorescence) or --landmark "
                             "points to resolve the lattice ambiguity.")
    ov_volume = read_volume(overview, overview_pixel_A)
    fm_volume = read_volume(reflection)
    ov_nm, fm_nm = ov_volume.voxel_size_A[0] / 10, fm_volume.voxel_size_A[0] / 10
    ov_image, fm_image = _single_image(ov_volume, overview), _single_image(fm_volume, reflection)
    holes_ov = detect_holes(ov_image, ov_nm, hole_diameter_um, "auto", min_score)
    holes_fm = detect_holes(fm_image, fm_nm, hole_diameter_um, "auto", min_score)
    spacing_nm = hole_spacing_um * 1000
    lattice_ov = fit_lattice(holes_ov[["x", "y"]].to_numpy(), spacing_nm / ov_nm)
    lattice_fm = fit_lattice(holes_fm[["x", "y"]].to_numpy(), spacing_nm / fm_nm)
    if cell is not None:
        cell_volume = read_volume(cell)
        if not np.allclose(cell_volume.voxel_size_A[:2], fm_volume.voxel_size_A[:2], rtol=0.01):
            raise InvalidDataError(f"{cell} and {reflection} have different pixel sizes; the "
                                   "cell's fluorescence must be imaged like the reflection.")
        cell_image = np.asarray(cell_volume.data, np.float32).max(0)
        if cell_image.shape != fm_image.shape:
            raise InvalidDataError(f"{cell} is {cell_image.shape} pixels, {reflection} "
                                   f"{fm_image.shape}; give images of the same field.")
        symmetry, shift, anchor = anchor_by_cell(
            lattice_fm, lattice_ov, cell_image, ov_image, fm_nm / ov_nm,
            hole_diameter_um * 500 / ov_nm, mirror_flag)
    else:
        pairs = np.array([_landmark(text) for text in landmark])
        symmetry, shift, anchor = anchor_by_landmarks(lattice_fm, lattice_ov, pairs[:, :2],
                                                      pairs[:, 2:], fm_nm / ov_nm, mirror_flag)
    registration = register_lattices(lattice_fm, lattice_ov, symmetry, shift, ov_nm, model,
                                     anchor=anchor)
    save_registration(out, registration, {"overview": str(overview),
                                          "fluorescence": str(reflection),
                                          "fluorescence_pixel_nm": fm_nm,
                                          "holes_overview": len(holes_ov),
                                          "holes_fluorescence": len(holes_fm)})
    write_provenance(out, "clem register", {"hole_diameter_um": hole_diameter_um,
                                            "hole_spacing_um": hole_spacing_um, "model": model,
                                            "mirror": mirror, "min_score": min_score},
                     [overview, reflection] + ([cell] if cell else []))
    summary = registration.summary()
    if anchor.get("ambiguous"):
        typer.echo(f"warning: the cell's outline barely prefers this lattice match (margin "
                   f"{anchor['margin']:.3f} over the next); check the overlay of the holes or "
                   "give --landmark points.", err=True)
    typer.echo(f"{summary['n_inliers']} of {summary['n_matched']} matched holes fit; FRE "
               f"{summary['fre_nm']:.1f} nm, leave-one-out TRE median "
               f"{summary['loo_tre_nm']['median']:.1f} nm (90%: "
               f"{summary['loo_tre_nm']['p90']:.1f} nm); wrote {out}")


@clem_app.command("watershed")
@writes(files=("out",))
def watershed(
    fluorescence: Path = typer.Argument(..., help="One fluorescence channel (z, y, x stack)."),
    out: Path = typer.Option(..., "--out", "-o", help="Region label volume (.mrc)."),
    bleed_from: Path = typer.Option(None, "--bleed-from", help="Channel whose dye bleeds "
                                    "into this one (same field and sampling)."),
    bleed_fraction: float = typer.Option(0.0, "--bleed-fraction", min=0.0, max=1.0,
                                         help="How much of --bleed-from this channel sees."),
    smooth_px: float = typer.Option(1.0, "--smooth", min=0.0, help="Gaussian smoothing (px)."),
    foreground_sigma: float = typer.Option(4.0, "--foreground", min=0.0,
                                           help="Foreground level (noise deviations)."),
    merge_depth_sigma: float = typer.Option(6.0, "--merge-depth", min=0.0,
                                            help="Merge basins shallower than this "
                                                 "(noise deviations) ..."),
    merge_depth_fraction: float = typer.Option(0.3, "--merge-fraction", min=0.0, max=1.0,
                                               help="... or than this fraction of their peak."),
    min_voxels: int = typer.Option(20, "--min-voxels", min=1, help="Smallest region kept."),
) -> None:
    """3D watershed of a fluorescence channel, with saddle-based basin merging."""
    import numpy as np

    from ..clem.watershed import WatershedParams, watershed_segment
    from ..io import read_volume, write_volume

    volume = read_volume(fluorescence)
    stack = _unmixed(volume, fluorescence, bleed_from, bleed_fraction)
    params = WatershedParams(smooth_px, foreground_sigma, merge_depth_sigma, merge_depth_fraction,
                             min_voxels)
    regions, table, _ = watershed_segment(stack, params)
    if int(regions.max()) > np.iinfo(np.int16).max:
        raise InvalidDataError("more than 32767 regions; raise --foreground or --merge-depth.")
    write_volume(out, volume.with_data(regions.astype(np.int16)))
    write_provenance(out, "clem watershed", params.as_dict() | {"bleed_fraction": bleed_fraction},
                     [fluorescence] + ([bleed_from] if bleed_from else []))
    typer.echo(f"{len(table)} regions ({int(table['voxels'].sum()) if len(table) else 0} "
               f"voxels); wrote {out}")


@clem_app.command("transfer")
@writes(files=("out",))
def transfer(
    tomogram: Path = typer.Argument(..., help="Preprocessed tomogram (as for training)."),
    fluorescence: Path = typer.Option(..., "--fluorescence", help="The feature's channel."),
    regions: Path = typer.Option(..., "--regions", help="Its watershed regions."),
    transform: Path = typer.Option(..., "--transform", help="From `clem register`."),
    placement: Path = typer.Option(..., "--placement", help="JSON: the tomogram's place in the "
                                   "overview (tomogram_centre_overview_px, "
                                   "tomogram_rotation_deg, overview_pixel_nm, "
                                   "fluorescence_z_slice)."),
    feature: str = typer.Option(..., "--feature", help="Name of the labelled feature."),
    out: Path = typer.Option(..., "--out", "-o", help="Training set (.trainset)."),
    positive_level: float = typer.Option(0.5, "--positive-level", min=0.01, max=1.0,
                                         help="Band level: fraction of the brightest label."),
    negative_margin_nm: float = typer.Option(100.0, "--negative-margin", min=0.0,
                                             help="Negatives this far (nm) beyond the band "
                                                  "and the registration error."),
    density_sigma: float = typer.Option(1.5, "--density-sigma", min=0.0,
                                        help="Dense voxels: this many SD beyond the far "
                                             "region's mean."),
    bright: bool = typer.Option(False, "--bright-features/--dark-features",
                                help="Whether the feature is brighter than background."),
    smooth_nm: float = typer.Option(6.0, "--smooth", min=0.0, help="Gaussian smoothing (nm) "
                                    "before the density threshold: about half the feature's "
                                    "radius."),
    network_map: Path = typer.Option(None, "--network-map", help="Self-training: a map from "
                                     "`tomoscribe segment` of this tomogram by a network "
                                     "trained on a first transfer; its voxels ≥ "
                                     "--map-threshold inside the band become the masks."),
    map_threshold: float = typer.Option(1.0, "--map-threshold", help="Level of --network-map "
                                        "that counts as the feature."),
    bleed_from: Path = typer.Option(None, "--bleed-from", help="As for `clem watershed`."),
    bleed_fraction: float = typer.Option(0.0, "--bleed-fraction", min=0.0, max=1.0,
                                         help="As for `clem watershed`."),
    n_positive: int = typer.Option(10, "--positives", min=1),
    n_negative: int = typer.Option(100, "--negatives", min=1),
    seed: int = options.Seed,
) -> None:
    """Turn registered fluorescence regions into a training set for `tomoscribe train`."""
    import numpy as np

    from ..clem.register import load_transform
    from ..clem.transfer import TransferParams, fluorescence_in_tomogram, transfer_labels
    from ..clem.watershed import normalised_signal
    from ..io import read_volume
    from ..outputs import read_provenance
    from ..segment.trainset import save_training_set

    tomo = read_volume(tomogram)
    fm = read_volume(fluorescence)
    region_volume = read_volume(regions)
    if region_volume.shape != fm.shape:
        raise InvalidDataError(f"{regions} ({region_volume.shape}) is not the watershed of "
                               f"{fluorescence} ({fm.shape}).")
    try:
        place = json.loads(Path(placement).read_text())
    except (OSError, ValueError) as err:
        raise InvalidDataError(f"{placement} is not a readable placement JSON ({err}).") from err
    place = dict(place)
    if [int(s) for s in place.get("tomogram_shape", tomo.shape)] != list(tomo.shape):
        raise InvalidDataError(f"{placement} describes a tomogram of shape "
                               f"{place['tomogram_shape']}, but {tomogram} is {list(tomo.shape)}.")
    place["tomogram_shape"] = list(tomo.shape)
    place.setdefault("tomogram_voxel_nm", tomo.voxel_size_A[0] / 10)
    if abs(place["tomogram_voxel_nm"] * 10 / tomo.voxel_size_A[0] - 1) > 0.02:
        raise InvalidDataError(f"{placement} says {place['tomogram_voxel_nm']} nm voxels but "
                               f"{tomogram} has {tomo.voxel_size_A[0] / 10} nm.")
    matrix = load_transform(transform)
    record = json.loads(Path(transform).read_text())
    tre = float(record.get("loo_tre_nm", {}).get("p90", 0.0))
    params = TransferParams(feature, positive_level, negative_margin_nm, density_sigma,
                            smooth_nm, not bright, n_positive=n_positive,
                            n_negative=n_negative, seed=seed)
    map_values = None
    if network_map is not None:
        map_volume = read_volume(network_map)
        if map_volume.shape != tomo.shape:
            raise InvalidDataError(f"{network_map} ({map_volume.shape}) is not a map of "
                                   f"{tomogram} ({tomo.shape}).")
        map_values = np.asarray(map_volume.data, np.float32)
    signal = normalised_signal(_unmixed(fm, fluorescence, bleed_from, bleed_fraction))
    fm_voxel_nm = tuple(v / 10 for v in fm.voxel_size_A)
    sampled = fluorescence_in_tomogram(np.asarray(region_volume.data), signal, fm_voxel_nm,
                                       matrix, place, positive_level)
    preprocessing = (read_provenance(tomogram) or {}).get("parameters")
    trainset, _, summary = transfer_labels(tomo, sampled, params, tre, preprocessing,
                                           map_values, map_threshold)
    save_training_set(out, trainset)
    write_provenance(out, "clem transfer", params.as_dict() | {"map_threshold": map_threshold},
                     [tomogram, fluorescence, regions, transform, placement]
                     + ([network_map] if network_map else []))
    typer.echo(f"{trainset.n_positive} positive and {trainset.n_negative} negative tiles "
               f"(with augmented copies) from {summary['refined_voxels']} labelled voxels "
               f"({summary['refinement']} refinement); wrote {out}")


@clem_app.command("pipeline")
@writes(folders=("out",))
def pipeline(
    out: Path = typer.Option(Path("clem-out"), "--out", help="Directory for every output."),
    size: str = typer.Option("medium", "--size", help="small or medium."),
    seed: int = options.Seed,
    device: str = options.Device,
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs per network."),
    threshold: float = typer.Option(1.0, "--threshold", help="Normalised output level that "
                                    "counts as the feature."),
    training_tomograms: int = typer.Option(
        3, "--training-tomograms", min=1, max=8,
        help="Tomograms with fluorescence that train the CLEM network together (the human "
             "baseline still paints one)."),
    quiet: bool = options.Quiet,
) -> None:
    """Simulated CLEM → registration → watershed → transfer → train → segment → scores."""
    from ..clem.pipeline import ClemSettings, run_clem_pipeline

    result = run_clem_pipeline(ClemSettings(out_dir=out, size=size, seed=seed, device=device,
                                            epochs=epochs, threshold=threshold,
                                            training_tomograms=training_tomograms,
                                            show_progress=not quiet))
    reg = result["registration"]
    typer.echo(f"registration: FRE {reg['fre_nm']:.1f} nm, leave-one-out TRE median "
               f"{reg['loo_tre_nm']['median']:.1f} nm, true error at the tomogram ≤ "
               f"{reg['true_error_at_tomogram_nm']['max']:.1f} nm")
    for key, score in result["scores"].items():
        typer.echo(f"{key}: Dice {score['dice']:.3f}, precision {score['precision']:.3f}, "
                   f"recall {score['recall']:.3f}, filament-seed F1 "
                   f"{score['picking']['f1']:.3f}")
    failed = (" (the human-trained network failed on it, so the ratio says little)"
              if result["human_network_failed"]["tomogram_2"] else "")
    typer.echo(f"Dice CLEM / human: {result['dice_ratio']['tomogram_2']:.2f} on the tomogram "
               f"without fluorescence{failed}; report: {out / 'report.html'}")


def _unmixed(volume, path: Path, bleed_from: Path | None, fraction: float) -> np.ndarray:
    """A channel as float32, with ``fraction`` of another channel's dye removed."""
    import numpy as np

    from ..clem.watershed import remove_bleed_through
    from ..io import read_volume

    stack = np.asarray(volume.data, np.float32)
    if bleed_from is None:
        return stack
    other = read_volume(bleed_from)
    if other.shape != volume.shape or not np.allclose(other.voxel_size_A, volume.voxel_size_A,
                                                      rtol=0.01):
        raise InvalidDataError(f"{bleed_from} and {path} differ in shape or voxel size; "
                               "unmixing needs the same field and sampling.")
    return remove_bleed_through(stack, other.data, fraction)


def _single_image(volume, path: Path) -> np.ndarray:
    import numpy as np

    if volume.shape[0] != 1:
        raise InvalidDataError(f"{path} has {volume.shape[0]} slices; give one image (the "
                               "in-focus slice).")
    return np.asarray(volume.data[0], np.float32)


def _landmark(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ParameterError(f"--landmark wants fx,fy,ox,oy (four numbers), got {text!r}.")
    return values
