"""``tomoscribe info`` and ``tomoscribe preprocess``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..outputs import read_provenance
from . import options
from .app import app
from .checks import STREAMED_VOLUME_NAMES, writes


@app.command()
def info(
    path: Path = typer.Argument(
        ...,
        help="A volume (.mrc, .tif, .zarr), a particle list (.star, .mod, .csv, .tbl, "
        "copick .json), a subtomogram dataset or feature store (.zarr), pick's filament "
        "table (.csv), a training set (.trainset) or a model (.tsm); on micrographs, "
        "picks (.star, .box, _info.json, .csv), particles (.star), a micrograph list "
        "(.star), a picking training set (.tss) or a picker (.tsp).",
    ),
    voxel_size: float = options.GivenVoxelSize,
    channel: int = options.Channel,
) -> None:
    """Show a volume's shape, type, voxel size and origin, or the contents of a particle
    list, a subtomogram dataset, picks or particles on micrographs, a training set or a
    model (as tomoscribe reads them)."""
    from ..classify.featurefile import feature_store_summary
    from ..errors import MissingVoxelSizeError
    from ..io import read_volume, read_volume_checked
    from ..io.micrograph_summaries import single_particle_kind, single_particle_summary
    from ..io.summaries import (
        dataset_summary,
        filament_table_summary,
        is_particle_file,
        is_subtomogram_dataset,
        particle_file_summary,
        tomograms_star_summary,
    )

    summary = _network_file_summary(path)
    if summary is None and single_particle_kind(path):
        summary = single_particle_summary(path)
    if summary is None and path.is_file():
        summary = tomograms_star_summary(path) or filament_table_summary(path)
    if summary is None and path.is_dir():  # classify's feature stores
        summary = feature_store_summary(path)
    if summary is not None:
        for line in summary:
            typer.echo(line)
        _say_maker(path)
        return
    if is_particle_file(path) or is_subtomogram_dataset(path):
        lines = dataset_summary(path) if is_subtomogram_dataset(path) else None
        for line in lines or particle_file_summary(path, voxel_size):
            typer.echo(line)
        _say_maker(path)
        return
    try:
        volume, recorded = read_volume_checked(path, voxel_size, channel), True
    except MissingVoxelSizeError:  # what info is asked for: say so, not exit 2
        volume, recorded = read_volume(path, 1.0, channel), False
    nz, ny, nx = volume.shape
    typer.echo(f"{path}\n  size (x, y, z): {nx} × {ny} × {nz} voxels, {volume.dtype}")
    typer.echo(
        "  voxel size (x, y, z): "
        + (
            ", ".join(f"{v:.4g}" for v in volume.voxel_size_A) + " Å"
            if recorded
            else "not recorded (give --voxel-size to the commands that read it)"
        )
    )
    typer.echo("  origin (x, y, z): " + ", ".join(f"{v:.4g}" for v in volume.origin_A) + " Å")
    from ..preprocess.check import beam_line, contrast_line

    for line in (contrast_line(volume), beam_line(volume)):
        if line:
            typer.echo(line)
    _say_maker(path)


def _network_file_summary(path: Path) -> list[str] | None:
    """The summary of a training set (.trainset, .tss), model (.tsm), picker (.tsp) or
    subtomogram classifier (.tsc), None for other files."""
    suffix = path.suffix.lower()
    if suffix == ".trainset":
        from ..segment.trainset import training_set_summary

        return training_set_summary(path)
    if suffix == ".tsm":
        from ..segment.modelfile import model_summary

        return model_summary(path)
    if suffix == ".tss":
        from ..spa.trainset import trainset_summary

        return trainset_summary(path)
    if suffix == ".tsp":
        from ..spa.picking import picker_summary

        return picker_summary(path)
    if suffix == ".tsc":
        from ..classify.modelfile import classifier_summary

        return classifier_summary(path)
    return None


def _say_maker(path: Path) -> None:
    record = read_provenance(path)
    if record:
        typer.echo(f"  made by: tomoscribe {record.get('version')} {record.get('step')}")


@app.command()
@writes(files=("output",), formats={"output": STREAMED_VOLUME_NAMES})
def preprocess(
    tomogram: Path = typer.Argument(..., help="Input tomogram (.mrc, .tif, .zarr)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .mrc or .zarr."),
    lowpass: float = typer.Option(20.0, "--lowpass", help="Low-pass in Å (0 = off)."),
    highpass: float = typer.Option(4000.0, "--highpass", help="In-plane high-pass in Å (0 = off)."),
    bin_factor: int = typer.Option(1, "--bin", min=1, help="Integer binning factor."),
    clamp: float = typer.Option(3.0, "--clamp", help="Clamp at ±this many σ (0 = off)."),
    invert: bool = typer.Option(
        False,
        "--invert",
        help="Multiply by −1 after normalising (dense matter bright ↔ dark), to match the "
        "tomograms a network learned on.",
    ),
    voxel_size: float = options.GivenVoxelSize,
    channel: int = options.Channel,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Band-pass (Å), normalise to mean 0 / sd 1, clamp, and optionally bin, slab by slab."""
    from ..preprocess import PreprocessParams
    from ..preprocess.workflow import preprocess_file

    params = PreprocessParams(
        lowpass_A=lowpass or None,
        highpass_A=highpass or None,
        bin_factor=bin_factor,
        clamp_sigma=clamp or None,
        invert=invert,
    )
    result = preprocess_file(
        tomogram,
        output,
        params,
        voxel_size_A=voxel_size,
        channel=channel,
        overwrite=overwrite,
        show_progress=not quiet,
    )
    nz, ny, nx = result.shape
    sizes = sorted({round(float(v), 4) for v in result.voxel_size_A})
    at = (
        f"{sizes[0]:.4g} Å"
        if len(sizes) == 1
        else "(x, y, z) " + ", ".join(f"{v:.4g}" for v in result.voxel_size_A) + " Å"
    )
    typer.echo(f"wrote {output} ({nx}×{ny}×{nz} at {at})")
    if result.statistics.get("fill_fraction"):
        typer.echo(
            f"left {100 * result.statistics['fill_fraction']:.1f}% of the voxels out of the "
            f"normalisation and wrote them as 0: fill of value {result.statistics['fill_value']:g} "
            "around the data (a turned or resampled volume's corners) and its edge"
        )
