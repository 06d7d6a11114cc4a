"""``tomoscribe clem simulate | register | watershed | transfer | pipeline``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ParameterError, missing_file
from . import options
from .app import app
from .checks import VOLUME_NAMES, writes

clem_app = typer.Typer(
    help="Annotation from correlative fluorescence: register through the "
    "film's holes, segment the fluorescence, transfer labels.",
    no_args_is_help=True,
)
app.add_typer(clem_app, name="clem")

FluorescencePixel = typer.Option(
    None,
    "--fluorescence-pixel-size",
    min=0.0,
    help="The fluorescence images' pixel size (Å; 100 nm = 1000), where their headers "
    "lack or misstate it.",
)
Channel = typer.Option(
    None, "--channel", min=0, help="The fluorescence's channel (from 0) in a multi-channel TIFF."
)
BleedChannel = typer.Option(
    None, "--bleed-channel", min=0, help="The --bleed-from image's channel (from 0), likewise."
)


@clem_app.command("simulate")
@writes(folders=("out",))
def simulate(
    out: Path = typer.Option(Path("clem-data"), "--out", help="Directory for the dataset."),
    size: str = typer.Option("medium", "--size", help="small or medium."),
    seed: int = options.Seed,
    snr: float = typer.Option(0.1, "--snr", min=0.0, help="Tomogram's signal-to-noise ratio."),
    mirror: bool = typer.Option(
        False, "--mirror/--no-mirror", help="Mirror the fluorescence relative to the overview."
    ),
) -> None:
    """A simulated tomogram with its correlative overview, fluorescence and truth."""
    from ..experiments.clem import simulate_clem_dataset

    simulate_clem_dataset(out, size, seed, snr, mirror)
    typer.echo(
        f"wrote tomogram_1.mrc, preprocessed_1.mrc, clem/ (overview, fluorescence_*, "
        f"placement.json) and truth/ under {out}"
    )


def _registration_companions(path: Path) -> list[Path]:
    """The 3×3 matrix text written beside a registration (refuses a .txt registration)."""
    from ..clem.register import matrix_path

    return [matrix_path(path)]


@clem_app.command("register")
@writes(files=("out",), companions=_registration_companions, formats={"out": (".json",)})
def register(
    overview: Path = typer.Argument(
        ..., help="EM overview of the grid square (MRC/TIFF, one slice, with its pixel size)."
    ),
    reflection: Path = typer.Argument(
        ..., help="Fluorescence/reflection image showing the film's holes (with its pixel size)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Transform (.json; a .txt matrix beside)."),
    hole_diameter_um: float = typer.Option(
        2.0, "--hole-diameter", min=0.1, help="Hole diameter (µm); Quantifoil R2/1: 2."
    ),
    hole_spacing_um: float = typer.Option(
        3.0, "--hole-spacing", min=0.2, help="Centre-to-centre hole spacing (µm)."
    ),
    cell: Path = typer.Option(
        None,
        "--cell",
        help="Fluorescence of the whole cell (a "
        "cytoplasmic stain) to resolve the lattice ambiguity.",
    ),
    landmark: list[str] = typer.Option(
        None,
        "--landmark",
        help="fx,fy,ox,oy: one point in "
        "fluorescence and overview pixels (repeat; ≥ 2, or ≥ 3 "
        "with --mirror auto).",
    ),
    mirror: str = typer.Option(
        "auto",
        "--mirror",
        help="auto, yes or no: whether the fluorescence is mirrored relative to the overview.",
    ),
    model: str = typer.Option("similarity", "--model", help="similarity or affine."),
    min_score: float = typer.Option(
        0.4, "--min-score", min=0.0, max=1.0, help="Lowest hole-template correlation accepted."
    ),
    overview_pixel_A: float = typer.Option(
        None,
        "--overview-pixel-size",
        min=0.0,
        help="The overview's pixel size (Å), where its header lacks or misstates it.",
    ),
    fluorescence_pixel_A: float = FluorescencePixel,
    channel: int = typer.Option(
        None, "--channel", min=0, help="The reflection's channel (from 0) in a multi-channel TIFF."
    ),
    cell_channel: int = typer.Option(
        None, "--cell-channel", min=0, help="The --cell image's channel (from 0), likewise."
    ),
) -> None:
    """Register fluorescence to an EM overview through the holes of the support film."""
    import numpy as np

    from ..clem.workflow import register_files

    for path in (overview, reflection, cell):  # a missing file first: no anchor helps it
        if path is not None and not path.exists():
            raise missing_file(path)
    mirror_flag = {"auto": None, "yes": True, "no": False}.get(mirror, "bad")
    if mirror_flag == "bad":
        raise ParameterError(f"--mirror must be auto, yes or no, got {mirror!r}.")
    if cell is not None and landmark:
        raise ParameterError(
            "give --cell or --landmark points, not both: each alone resolves the lattice "
            "ambiguity, and they could disagree."
        )
    if cell is None and not landmark:
        raise ParameterError(
            "give either --cell (the cell's fluorescence) or --landmark "
            "points to resolve the lattice ambiguity."
        )
    landmarks = None if cell is not None else np.array([_landmark(text) for text in landmark])
    registered = register_files(
        overview,
        reflection,
        out,
        hole_diameter_um,
        hole_spacing_um,
        cell=cell,
        landmarks=landmarks,
        mirror=mirror_flag,
        model=model,
        min_score=min_score,
        overview_pixel_A=overview_pixel_A,
        fluorescence_pixel_A=fluorescence_pixel_A,
        channel=channel,
        cell_channel=cell_channel,
    )
    anchor = registered.anchor
    summary = registered.registration.summary()
    if anchor.get("ambiguous"):
        typer.echo(
            f"warning: the cell's outline barely prefers this lattice match (margin "
            f"{anchor['margin']:.3f} over the next); check the overlay of the holes or "
            "give --landmark points.",
            err=True,
        )
    typer.echo(
        f"{summary['n_inliers']} of {summary['n_matched']} matched holes fit; FRE "
        f"{summary['fre_nm']:.1f} nm, leave-one-out TRE median "
        f"{summary['loo_tre_nm']['median']:.1f} nm (90%: "
        f"{summary['loo_tre_nm']['p90']:.1f} nm); wrote {out}"
    )


@clem_app.command("watershed")
@writes(files=("out",), formats={"out": VOLUME_NAMES})
def watershed(
    fluorescence: Path = typer.Argument(..., help="One fluorescence channel (z, y, x stack)."),
    out: Path = typer.Option(..., "--out", "-o", help="Region label volume (.mrc)."),
    bleed_from: Path = typer.Option(
        None,
        "--bleed-from",
        help="Channel whose dye bleeds into this one (same field and sampling).",
    ),
    bleed_fraction: float = typer.Option(
        0.0,
        "--bleed-fraction",
        min=0.0,
        max=1.0,
        help="How much of --bleed-from this channel sees.",
    ),
    smooth_px: float = typer.Option(1.0, "--smooth", min=0.0, help="Gaussian smoothing (px)."),
    foreground_sigma: float = typer.Option(
        4.0, "--foreground", min=0.0, help="Foreground level (noise deviations)."
    ),
    merge_depth_sigma: float = typer.Option(
        6.0,
        "--merge-depth",
        min=0.0,
        help="Merge basins shallower than this (noise deviations) ...",
    ),
    merge_depth_fraction: float = typer.Option(
        0.3, "--merge-fraction", min=0.0, max=1.0, help="... or than this fraction of their peak."
    ),
    min_voxels: int = typer.Option(20, "--min-voxels", min=1, help="Smallest region kept."),
    fluorescence_pixel_A: float = FluorescencePixel,
    channel: int = Channel,
    bleed_channel: int = BleedChannel,
) -> None:
    """3D watershed of a fluorescence channel, with saddle-based basin merging."""
    from ..clem.watershed import WatershedParams
    from ..clem.workflow import watershed_file

    params = WatershedParams(
        smooth_px, foreground_sigma, merge_depth_sigma, merge_depth_fraction, min_voxels
    )
    table = watershed_file(
        fluorescence,
        out,
        params,
        bleed_from,
        bleed_fraction,
        fluorescence_pixel_A,
        channel,
        bleed_channel,
    )
    typer.echo(
        f"{len(table)} regions ({int(table['voxels'].sum()) if len(table) else 0} "
        f"voxels); wrote {out}"
    )


@clem_app.command("transfer")
@writes(files=("out",), formats={"out": (".trainset",)})
def transfer(
    tomogram: Path = typer.Argument(..., help="Preprocessed tomogram (as for training)."),
    fluorescence: Path = typer.Option(..., "--fluorescence", help="The feature's channel."),
    regions: Path = typer.Option(..., "--regions", help="Its watershed regions."),
    transform: Path = typer.Option(..., "--transform", help="From `clem register`."),
    placement: Path = typer.Option(
        ...,
        "--placement",
        help="JSON: where the tomogram lies in the overview; keys and their conventions "
        "(rotation sign, pixel centres) in docs/method.md, 'Placement'.",
    ),
    feature: str = typer.Option(..., "--feature", help="Name of the labelled feature."),
    out: Path = typer.Option(..., "--out", "-o", help="Training set (.trainset)."),
    positive_level: float = typer.Option(
        0.5,
        "--positive-level",
        min=0.01,
        max=1.0,
        help="Band level: fraction of the brightest label.",
    ),
    negative_margin_nm: float = typer.Option(
        100.0,
        "--negative-margin",
        min=0.0,
        help="Negatives this far (nm) beyond the band and the registration error.",
    ),
    density_sigma: float = typer.Option(
        1.5,
        "--density-sigma",
        min=0.0,
        help="Dense voxels: this many SD beyond the far region's mean.",
    ),
    bright: bool = typer.Option(
        False,
        "--bright-features/--dark-features",
        help="Whether the feature is brighter than background.",
    ),
    smooth_nm: float = typer.Option(
        6.0,
        "--smooth",
        min=0.0,
        help="Gaussian smoothing (nm) "
        "before the density threshold: about half the feature's "
        "radius.",
    ),
    network_map: Path = typer.Option(
        None,
        "--network-map",
        help="Self-training: a map from "
        "`tomoscribe segment` of this tomogram by a network "
        "trained on a first transfer; its voxels ≥ "
        "--map-threshold inside the band become the masks.",
    ),
    map_threshold: float = typer.Option(
        1.0, "--map-threshold", help="Level of --network-map that counts as the feature."
    ),
    bleed_from: Path = typer.Option(None, "--bleed-from", help="As for `clem watershed`."),
    bleed_fraction: float = typer.Option(
        0.0, "--bleed-fraction", min=0.0, max=1.0, help="As for `clem watershed`."
    ),
    n_positive: int = typer.Option(10, "--positives", min=1),
    n_negative: int = typer.Option(100, "--negatives", min=1),
    seed: int = options.Seed,
    fluorescence_pixel_A: float = FluorescencePixel,
    channel: int = Channel,
    bleed_channel: int = BleedChannel,
) -> None:
    """Turn registered fluorescence regions into a training set for `tomoscribe train`."""
    from ..clem.transfer import TransferParams
    from ..clem.workflow import transfer_files

    params = TransferParams(
        feature,
        positive_level,
        negative_margin_nm,
        density_sigma,
        smooth_nm,
        not bright,
        n_positive=n_positive,
        n_negative=n_negative,
        seed=seed,
    )
    trainset, summary = transfer_files(
        tomogram,
        fluorescence,
        regions,
        transform,
        placement,
        out,
        params,
        network_map,
        map_threshold,
        bleed_from,
        bleed_fraction,
        fluorescence_pixel_A,
        channel,
        bleed_channel,
    )
    typer.echo(
        f"{trainset.n_positive} positive and {trainset.n_negative} negative tiles "
        f"(with augmented copies) from {summary['refined_voxels']} labelled voxels "
        f"({summary['refinement']} refinement); wrote {out}"
    )


@clem_app.command("pipeline")
@writes(folders=("out",))
def pipeline(
    out: Path = typer.Option(Path("clem-out"), "--out", help="Directory for every output."),
    size: str = typer.Option("medium", "--size", help="small or medium."),
    seed: int = options.Seed,
    device: str = options.Device,
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs per network."),
    threshold: float = typer.Option(
        1.0, "--threshold", help="Normalised output level that counts as the feature."
    ),
    training_tomograms: int = typer.Option(
        3,
        "--training-tomograms",
        min=1,
        max=8,
        help="Tomograms with fluorescence that train the CLEM network together (the human "
        "baseline still paints one).",
    ),
    quiet: bool = options.Quiet,
) -> None:
    """Simulated CLEM → registration → watershed → transfer → train → segment → scores."""
    from ..experiments.clem import ClemSettings, run_clem_pipeline

    result = run_clem_pipeline(
        ClemSettings(
            out_dir=out,
            size=size,
            seed=seed,
            device=device,
            epochs=epochs,
            threshold=threshold,
            training_tomograms=training_tomograms,
            show_progress=not quiet,
        )
    )
    reg = result["registration"]
    typer.echo(
        f"registration of tomogram {reg.get('tomogram', 1)}: FRE {reg['fre_nm']:.1f} nm, "
        f"leave-one-out TRE median "
        f"{reg['loo_tre_nm']['median']:.1f} nm, true error at the tomogram ≤ "
        f"{reg['true_error_at_tomogram_nm']['max']:.1f} nm"
    )
    for key, score in result["scores"].items():
        typer.echo(
            f"{key}: Dice {score['dice']:.3f}, precision {score['precision']:.3f}, "
            f"recall {score['recall']:.3f}, filament-seed F1 "
            f"{score['picking']['f1']:.3f}"
        )
    failed = (
        " (the human-trained network failed on it, so the ratio says little)"
        if result["human_network_failed"]["tomogram_2"]
        else ""
    )
    typer.echo(
        f"Dice CLEM / human: {result['dice_ratio']['tomogram_2']:.2f} on the tomogram "
        f"without fluorescence{failed}; report: {out / 'report.html'}"
    )


def _landmark(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ParameterError(f"--landmark wants fx,fy,ox,oy (four numbers), got {text!r}.")
    return values
