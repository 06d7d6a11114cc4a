"""``tomoscribe spa boxes | train | pick | ncc | extract | score``: single-particle picking
and particle extraction."""

from __future__ import annotations

from pathlib import Path

import typer

from . import options
from .app import app
from .checks import arguments_as, writes

spa_app = typer.Typer(
    help="Single-particle picking on micrographs: a two-network CNN "
    "picker and a reference-based baseline.",
    no_args_is_help=True,
)
app.add_typer(spa_app, name="spa")

PixelSize = typer.Option(
    None,
    "--pixel-size",
    min=0.0,
    help="Pixel size in Å for all micrographs, overriding their headers.",
)
PICK_OUTPUTS = ["picks.star", "picks.csv", "info"]


@spa_app.command("boxes")
@writes(files=("output",), formats={"output": (".tss",)})
def boxes(
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC) the boxes lie on."),
    good: list[Path] = typer.Option(
        ...,
        "--good",
        help="Good (isolated) particle boxes: STAR, EMAN2 .box or info JSON, crYOLO .cbox, "
        "CSV; repeatable.",
    ),
    background: list[Path] = typer.Option(..., "--background", help="Empty ice boxes."),
    bad: list[Path] = typer.Option(
        ..., "--bad", help="Contamination, aggregates, anything else that is not a particle."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Training set (.tss)."),
    box: int = typer.Option(
        None,
        "--box",
        help="Box edge in pixels (default: the .box files' own); about 1.5 particle diameters.",
    ),
    pixel_size: float = PixelSize,
) -> None:
    """Training set of the two-network picker from three box sets."""
    from ..spa.micrographs import check_micrograph_paths
    from ..spa.workflow import boxes_to_trainset

    check_micrograph_paths(micrographs, ("--good", "--background", "--bad"))
    record, box_px = boxes_to_trainset(micrographs, good, background, bad, output, box, pixel_size)
    counts = record["counts"]
    typer.echo(
        f"wrote {output}: {counts['good']} good, {counts['background']} background, "
        f"{counts['bad']} bad boxes of {box_px} px (shrunk {record['shrink']}×)"
    )


@spa_app.command("train")
@writes(files=("output",), formats={"output": (".tsp",)})
def train(
    trainset: Path = typer.Argument(..., help="Training set from `spa boxes`."),
    output: Path = typer.Option(..., "--output", "-o", help="Picker (.tsp)."),
    steps: int = typer.Option(
        2500,
        "--steps",
        min=1,
        help="Steps per network of the final round (2500; the first round of "
        "self-training takes 40% of that: about 1 minute per pair on 2 cores).",
    ),
    pairs: int = typer.Option(
        2,
        "--pairs",
        min=1,
        max=5,
        help="Pairs of networks, each trained with another fifth of the boxes held out, "
        "their scores averaged: steadier picks and threshold; each pair adds its training "
        "time and about 0.7 s per 4k micrograph to picking on one core.",
    ),
    batch: int = typer.Option(32, "--batch", min=2, help="Patches per step."),
    self_training: bool = typer.Option(
        True,
        "--self-training/--no-self-training",
        help="Train twice, the second time with the first round's confident picks on the "
        "annotated micrographs as more good boxes for network 1 (good vs background).",
    ),
    device: str = options.Device,
    seed: int = options.Seed,
    quiet: bool = options.Quiet,
) -> None:
    """Train the picker: pairs of two networks (good vs background, good vs bad)."""
    from ..spa.ensemble import threshold_spread
    from ..spa.workflow import train_picker_file

    full = train_picker_file(
        trainset,
        output,
        steps,
        batch,
        seed,
        device,
        say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)),
        self_training=self_training,
        pairs=pairs,
    )
    held = full["training"]["calibration"].get("held_out_boxes", 0)
    how = "boxes held out of training" if held else "the default: too few boxes to hold out"
    added = full["training"]["self_training"]
    each = " and ".join(map(str, added.get("added_per_pair", [added["added"]])))
    whose = (
        "the good boxes of each pair's network 1, pair by pair"
        if "added_per_pair" in added
        else "network 1's good boxes"
    )
    more = (
        f"; {each} confident picks added to {whose}"
        if added["added"] or "why" not in added
        else f"; no self-training ({added['why']})"
    )
    spread = threshold_spread(full["training"])
    alone = f"; each pair's boxes alone gave {spread[0]:.2f}–{spread[1]:.2f}" if spread else ""
    density = full.get("density_range")
    levels = (
        f"; picks kept where the density level is {density[0]:.1f} to {density[1]:.1f}, "
        "as around the good boxes"
        if density
        else ""
    )
    typer.echo(
        f"wrote {output} (picking threshold {full['threshold']:.2f}, from {how}{alone}{more}"
        f"{levels})"
    )


@spa_app.command("pick")
@writes(folders=("out_dir",))
def pick(
    picker: Path = typer.Argument(..., help="Picker from `spa train`."),
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC)."),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Folder: picks.star, picks.csv, NAME.box, info/NAME_info.json."
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Lowest score (0–1) picked (default: the picker's, chosen on boxes held out "
        "of training); higher: fewer, surer picks.",
    ),
    min_distance: float = typer.Option(
        None, "--min-distance", help="Pixels between picks (default half a box)."
    ),
    edge: float = typer.Option(
        None, "--edge", help="Pixels kept free at the edges (default half a box)."
    ),
    isolation: float = typer.Option(
        None,
        "--isolation",
        help="Pixels: a pick with another particle nearer is left out as part of an "
        "aggregate (default three quarters of a box; 0 keeps every pick).",
    ),
    density_check: bool = typer.Option(
        True,
        "--density-check/--any-density",
        help="Leave out picks on regions much denser (or thinner) than around the good "
        "boxes, such as carbon, and hide regions far off from the networks (default); "
        "--any-density does neither.",
    ),
    invert: bool = typer.Option(
        False,
        "--invert",
        help="The micrographs show protein with the other contrast than those the picker "
        "learned from (white, inverted already, for a picker of raw micrographs): negate "
        "them before picking.",
    ),
    pixel_size: float = PixelSize,
    quiet: bool = options.Quiet,
) -> None:
    """Pick particles with both networks; score per pick."""
    from ..spa.micrographs import check_micrograph_paths
    from ..spa.workflow import pick_files

    check_micrograph_paths(micrographs)
    earlier = _earlier_picks(out_dir)
    picks = pick_files(
        picker,
        micrographs,
        out_dir,
        threshold,
        min_distance,
        edge,
        pixel_size,
        isolation,
        density_check,
        invert,
        show_progress=not quiet,
    )
    _report_picks(out_dir, picks, micrographs, earlier)


@spa_app.command("ncc")
@writes(folders=("out_dir",))
def ncc(
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder, as for `spa pick`."),
    references: list[Path] = typer.Option(
        None,
        "--references",
        help="Hand-picked "
        "reference boxes (STAR, .box, .cbox, info JSON, CSV) on "
        "some of the micrographs given.",
    ),
    reference_map: Path = typer.Option(
        None, "--reference-map", help="A map whose projections are the references instead."
    ),
    n_projections: int = typer.Option(20, "--projections", min=1),
    box: int = typer.Option(None, "--box", help="Box edge in pixels."),
    threshold: float = typer.Option(0.25, "--threshold", help="Lowest correlation picked."),
    invert: bool = typer.Option(
        False,
        "--invert",
        help="The micrographs show protein white (inverted already): negate them, so that "
        "a --reference-map's projections (protein dark, as in raw micrographs) match.",
    ),
    pixel_size: float = PixelSize,
    seed: int = options.Seed,
    quiet: bool = options.Quiet,
) -> None:
    """Reference-based baseline picker (normalised cross-correlation)."""
    from ..spa.micrographs import check_micrograph_paths
    from ..spa.workflow import ncc_pick_files

    check_micrograph_paths(micrographs, ("--references",))
    earlier = _earlier_picks(out_dir)
    picks = ncc_pick_files(
        micrographs,
        out_dir,
        references,
        reference_map,
        n_projections,
        box,
        threshold,
        pixel_size,
        seed,
        invert,
        show_progress=not quiet,
    )
    _report_picks(out_dir, picks, micrographs, earlier)


@spa_app.command("extract")
@writes(folders=("out_dir",))
def extract(
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC) the picks lie on."),
    picks: list[Path] = typer.Option(
        ...,
        "--picks",
        help="Picks: a picks folder's picks.star, RELION coordinates, EMAN2 .box or info "
        "JSON, crYOLO .cbox, CSV; repeatable.",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="Folder: particles.star, Particles/NAME.mrcs."
    ),
    box: int = typer.Option(
        None,
        "--box",
        min=2,
        help="Box edge in pixels, even (default: the .box files' own); 1.5–2 particle diameters.",
    ),
    ctf: Path = typer.Option(
        None,
        "--ctf",
        help="CTF estimates: a micrographs STAR with rlnDefocusU/V per micrograph (a "
        "CtfFind job's micrographs_ctf.star; simulate micrographs writes one).",
    ),
    bg_radius: int = typer.Option(
        None,
        "--bg-radius",
        min=1,
        help="Pixels: normalised on the background beyond this radius (default RELION's: "
        "0.375 × box, truncated).",
    ),
    invert: bool = typer.Option(
        True,
        "--invert/--no-invert",
        help="Invert contrast, protein white as RELION and classify2d expect (default); "
        "--no-invert for micrographs with white protein already.",
    ),
    normalise: bool = typer.Option(
        True, "--normalise/--no-normalise", help="Normalise each box on its background."
    ),
    pixel_size: float = PixelSize,
    voltage: float = options.Voltage,
    cs: float = options.SphericalAberration,
    amplitude_contrast: float = options.AmplitudeContrast,
    quiet: bool = options.Quiet,
) -> None:
    """Cut particles out of micrographs at picks, as RELION's Extract job does."""
    from ..spa.micrographs import check_micrograph_paths
    from ..spa.workflow import extract_files

    check_micrograph_paths(micrographs, ("--picks",))
    earlier = (Path(out_dir) / "particles.star").is_file()
    microscope = {"voltage_kV": voltage, "cs_mm": cs, "amplitude_contrast": amplitude_contrast}
    with arguments_as(pixel_size_A="pixel_size"):
        table = extract_files(
            micrographs,
            picks,
            out_dir,
            box,
            ctf,
            bg_radius,
            invert,
            normalise,
            pixel_size,
            {k: v for k, v in microscope.items() if v is not None},
            say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)),
        )
    stacks = table["rlnImageName"].str.partition("@")[2].nunique()
    typer.echo(
        f"wrote {out_dir}: {len(table)} particles from {stacks} "
        f"micrograph{'s' if stacks != 1 else ''}: particles.star, Particles/NAME.mrcs"
        + (
            "; the earlier extraction there is replaced (STAR files made from it, such as "
            "classify2d's, no longer match these stacks)"
            if earlier
            else ""
        )
    )


def _earlier_picks(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds an earlier run's picks (which a run replaces whole)."""
    return (Path(out_dir) / "picks.star").is_file()


def _report_picks(out_dir: Path, picks, micrographs: list[Path], earlier: bool) -> None:
    from ..io.boxfiles import micrograph_name

    names = [micrograph_name(p) for p in micrographs]
    counts = picks["micrograph"].value_counts().reindex(names, fill_value=0)
    replaced = (
        "; the earlier run's picks there are replaced (any of its files edited since are kept)"
        if earlier
        else ""
    )
    span = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"
    files = (  # the per-micrograph files are written for micrographs with picks only
        "picks.star, picks.csv, autopick.star, NAME.box, info/, coordinates/"
        if len(picks)
        else "picks.star, picks.csv, autopick.star (no picks: no per-micrograph files)"
    )
    plural = "s" * (len(micrographs) != 1)
    typer.echo(
        f"wrote {out_dir}: {len(picks)} picks on {len(micrographs)} micrograph{plural} "
        f"({span} each): {files}{replaced}"
    )


@spa_app.command("score")
@writes(files=("output",), formats={"output": (".json",)})
def score(
    picks: Path = typer.Argument(..., help="Picks (STAR, CSV)."),
    truth: Path = typer.Option(..., "--truth", help="Folder of `simulate micrographs`."),
    output: Path = typer.Option(None, "--output", "-o", help="Scores (.json)."),
) -> None:
    """Precision and recall of picks against simulated truth."""
    from ..spa.scoring import score_against_folder

    result = score_against_folder(picks, truth, output)
    typer.echo(
        f"precision {result['precision']:.3f}, recall {result['recall']:.3f}, "
        f"aggregates unpicked {result['aggregates_unpicked']:.3f}, contamination "
        f"unpicked {result['blobs_unpicked']:.3f} ({result['picks']} picks on "
        f"{result['micrographs']} micrographs, {result['picks_on_carbon']} on carbon)"
    )
