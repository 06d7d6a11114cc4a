"""``tomoscribe spa boxes | train | pick | ncc | score``: single-particle picking."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ParameterError
from . import options
from .app import app
from .checks import writes

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


def _micrographs(paths: list[Path], pixel_size: float | None) -> tuple[dict, float]:
    from ..spa.micrographs import common_pixel_size, read_micrograph

    size = common_pixel_size(paths, pixel_size)
    images = {}
    for path in paths:
        image, _, name = read_micrograph(path, size)
        if name in images:
            raise ParameterError(f"two micrographs are named {name}; give each its own name.")
        images[name] = image
    return images, size


@spa_app.command("boxes")
@writes(files=("output",))
def boxes(
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC) the boxes lie on."),
    good: list[Path] = typer.Option(
        ...,
        "--good",
        help="Good (isolated) particle boxes: STAR, EMAN2 .box or info JSON, CSV; repeatable.",
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
    from ..outputs import write_provenance
    from ..spa.micrographs import micrograph_name
    from ..spa.trainset import build_trainset, read_box_sets, save_trainset

    names = [micrograph_name(p) for p in micrographs]
    sets, box_px = read_box_sets({"good": good, "background": background, "bad": bad}, names, box)
    used = {m for t in sets.values() for m in t["micrograph"]}
    images, size = _micrographs([p for p in micrographs if micrograph_name(p) in used], pixel_size)
    trainset = build_trainset(images, size, sets, box_px)
    save_trainset(output, trainset)
    write_provenance(
        output, "spa boxes", trainset["record"], [*micrographs, *good, *background, *bad]
    )
    counts = trainset["record"]["counts"]
    typer.echo(
        f"wrote {output}: {counts['good']} good, {counts['background']} background, "
        f"{counts['bad']} bad boxes of {box_px} px (shrunk {trainset['record']['shrink']}×)"
    )


@spa_app.command("train")
@writes(files=("output",))
def train(
    trainset: Path = typer.Argument(..., help="Training set from `spa boxes`."),
    output: Path = typer.Option(..., "--output", "-o", help="Picker (.tsp)."),
    steps: int = typer.Option(300, "--steps", min=1, help="Steps per network."),
    batch: int = typer.Option(32, "--batch", min=2, help="Patches per step."),
    device: str = options.Device,
    seed: int = options.Seed,
) -> None:
    """Train the two networks (good vs background, good vs bad)."""
    from ..core.device import resolve_device
    from ..outputs import write_provenance
    from ..spa.network import calibrate_threshold, train_pair
    from ..spa.picking import save_picker
    from ..spa.trainset import load_trainset

    data = load_trainset(trainset)
    pair, record = train_pair(
        data,
        steps=steps,
        batch=batch,
        seed=seed,
        device=str(resolve_device(device)),
        say=lambda m: typer.echo(m, err=True),
    )
    full = {
        **{k: data["record"][k] for k in ("box_px", "shrink", "pixel_size_A", "geometry")},
        "training": record,
        "threshold": calibrate_threshold(pair, data),
    }
    save_picker(output, pair, full)
    write_provenance(output, "spa train", full, [trainset])
    typer.echo(
        f"wrote {output} (a strict threshold from the training boxes: "
        f"{full['threshold']:.2f}; `spa pick` uses 0.4 unless told otherwise)"
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
        0.4,
        "--threshold",
        help="Lowest score (0–1) picked; higher: fewer, surer picks (docs/performance.md).",
    ),
    min_distance: float = typer.Option(
        None, "--min-distance", help="Pixels between picks (default half a box)."
    ),
    edge: float = typer.Option(
        None, "--edge", help="Pixels kept free at the edges (default half a box)."
    ),
    pixel_size: float = PixelSize,
) -> None:
    """Pick particles with both networks; score per pick."""
    from ..errors import VoxelSizeMismatchError
    from ..spa.picking import load_picker, pick_micrograph

    pair, record = load_picker(picker)
    images, size = _micrographs(micrographs, pixel_size)
    if abs(size - record["pixel_size_A"]) > 0.05 * record["pixel_size_A"]:
        raise VoxelSizeMismatchError(
            f"the micrographs have {size:g} Å pixels but {picker} was trained on "
            f"{record['pixel_size_A']:g} Å; resample them or train on such micrographs."
        )
    import pandas as pd

    tables = [
        pick_micrograph(pair, image, name, record, threshold, min_distance, edge)
        for name, image in images.items()
    ]
    picks = pd.concat(tables, ignore_index=True)
    _write_picks(
        out_dir,
        picks,
        micrographs,
        int(record["box_px"]),
        "auto_cnn",
        {"threshold": threshold, "picker": str(picker)},
    )


@spa_app.command("ncc")
@writes(folders=("out_dir",))
def ncc(
    micrographs: list[Path] = typer.Argument(..., help="Micrographs (MRC)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder, as for `spa pick`."),
    references: list[Path] = typer.Option(
        None,
        "--references",
        help="Hand-picked "
        "reference boxes (STAR, .box, info JSON, CSV) on "
        "some of the micrographs given.",
    ),
    reference_map: Path = typer.Option(
        None, "--reference-map", help="A map whose projections are the references instead."
    ),
    n_projections: int = typer.Option(20, "--projections", min=1),
    box: int = typer.Option(None, "--box", help="Box edge in pixels."),
    threshold: float = typer.Option(0.25, "--threshold", help="Lowest correlation picked."),
    pixel_size: float = PixelSize,
    seed: int = options.Seed,
) -> None:
    """Reference-based baseline picker (normalised cross-correlation)."""
    from ..spa.micrographs import micrograph_name, shrink_factor
    from ..spa.reference import ncc_pick_micrograph

    if bool(references) == (reference_map is not None):
        raise ParameterError("give either --references or --reference-map.")
    names = [micrograph_name(p) for p in micrographs]
    if references:
        from ..spa.trainset import read_box_sets

        sets, box_px = read_box_sets({"good": references}, names, box)
    elif box is None:
        raise ParameterError("pass --box (pixels) with --reference-map.")
    else:
        box_px = box
    images, size = _micrographs(micrographs, pixel_size)
    shrink = shrink_factor(box_px)
    refs = _ncc_references(
        references and sets["good"],
        reference_map,
        images,
        size,
        box_px,
        shrink,
        n_projections,
        seed,
    )
    import pandas as pd

    picks = pd.concat(
        [
            ncc_pick_micrograph(image, name, refs, shrink, box_px, threshold)
            for name, image in images.items()
        ],
        ignore_index=True,
    )
    _write_picks(
        out_dir,
        picks,
        micrographs,
        box_px,
        "auto_ncc",
        {"threshold": threshold, "references": len(refs)},
    )


def _ncc_references(table, reference_map, images, size, box_px, shrink, n, seed):
    from ..spa.micrographs import shrink_and_normalise, to_shrunk
    from ..spa.reference import references_from_map, references_from_patches
    from ..spa.trainset import check_boxes, cut_patches, patch_geometry

    geometry = patch_geometry(box_px, shrink)
    if reference_map is not None:
        from ..io import read_volume

        volume = read_volume(reference_map)
        return references_from_map(
            volume.load(), volume.pixel_size_A, size * shrink, geometry["box"], n, seed
        )
    check_boxes(
        {"good": table, "background": table, "bad": table},
        {k: v.shape for k, v in images.items()},
        box_px,
    )
    import numpy as np

    patches = [
        cut_patches(
            shrink_and_normalise(images[m], shrink),
            to_shrunk(rows[["x", "y"]].to_numpy(float), shrink),
            geometry["patch"],
        )
        for m, rows in table.groupby("micrograph")
    ]
    return references_from_patches(np.concatenate(patches), geometry["box"])


def _write_picks(
    out_dir: Path, picks, micrographs: list[Path], box_px: int, kind: str, parameters: dict
) -> None:
    from ..io.boxfiles import (
        micrograph_name,
        write_box_files,
        write_csv,
        write_info_files,
        write_star,
    )
    from ..outputs import output_folder, write_provenance

    files = {micrograph_name(p): p.name for p in micrographs}
    with output_folder(out_dir, True, micrographs) as staging:
        write_star(staging / "picks.star", picks, files)
        write_csv(staging / "picks.csv", picks)
        write_box_files(staging, picks, box_px)
        write_info_files(staging, picks, kind)
        write_provenance(staging / "picks.star", f"spa {kind}", parameters, micrographs)
    counts = picks["micrograph"].value_counts().reindex(list(files), fill_value=0)
    typer.echo(
        f"wrote {out_dir}: {len(picks)} picks on {len(micrographs)} micrographs "
        f"({counts.min()}–{counts.max()} each): picks.star, picks.csv, NAME.box, info/"
    )


@spa_app.command("score")
@writes(files=("output",))
def score(
    picks: Path = typer.Argument(..., help="Picks (STAR, CSV)."),
    truth: Path = typer.Option(..., "--truth", help="Folder of `simulate micrographs`."),
    output: Path = typer.Option(None, "--output", "-o", help="Scores (.json)."),
) -> None:
    """Precision and recall of picks against simulated truth."""
    import json

    from ..outputs import atomic_path
    from ..spa.scoring import score_against_folder

    result = score_against_folder(picks, truth)
    text = json.dumps(result, indent=1)
    if output is not None:
        with atomic_path(output) as tmp:
            tmp.write_text(text + "\n")
    typer.echo(
        f"precision {result['precision']:.3f}, recall {result['recall']:.3f}, "
        f"aggregates unpicked {result['aggregates_unpicked']:.3f}, contamination "
        f"unpicked {result['blobs_unpicked']:.3f} ({result['picks']} picks on "
        f"{result['micrographs']} micrographs)"
    )
