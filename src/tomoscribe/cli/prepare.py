"""``tomoscribe info`` and ``tomoscribe preprocess``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..outputs import check_free_space, read_provenance, write_provenance
from . import options
from .app import app
from .checks import writes


@app.command()
def info(
    path: Path = typer.Argument(..., help="A volume (.mrc, .tif, .zarr)."),
    voxel_size: float = options.VoxelSize,
    channel: int = options.Channel,
) -> None:
    """Show a volume's shape, type, voxel size and origin (as tomoscribe reads them)."""
    from ..io import read_volume

    volume = read_volume(path, voxel_size, channel)
    nz, ny, nx = volume.shape
    typer.echo(f"{path}\n  size (x, y, z): {nx} × {ny} × {nz} voxels, {volume.dtype}")
    typer.echo(
        "  voxel size (x, y, z): " + ", ".join(f"{v:.4g}" for v in volume.voxel_size_A) + " Å"
    )
    typer.echo("  origin (x, y, z): " + ", ".join(f"{v:.4g}" for v in volume.origin_A) + " Å")
    record = read_provenance(path)
    if record:
        typer.echo(f"  made by: tomoscribe {record.get('version')} {record.get('step')}")


@app.command()
@writes(files=("output",))
def preprocess(
    tomogram: Path = typer.Argument(..., help="Input tomogram (.mrc, .tif, .zarr)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .mrc or .zarr."),
    lowpass: float = typer.Option(20.0, "--lowpass", help="Low-pass in Å (0 = off)."),
    highpass: float = typer.Option(4000.0, "--highpass", help="In-plane high-pass in Å (0 = off)."),
    bin_factor: int = typer.Option(1, "--bin", min=1, help="Integer binning factor."),
    clamp: float = typer.Option(3.0, "--clamp", help="Clamp at ±this many σ (0 = off)."),
    voxel_size: float = options.VoxelSize,
    channel: int = options.Channel,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Band-pass (Å), normalise to mean 0 / sd 1, clamp, and optionally bin, slab by slab."""
    import numpy as np

    from ..io import create_volume, read_volume
    from ..io.provenance import carried_acquisition
    from ..preprocess import PreprocessParams, binned_geometry, preprocess_into

    volume = read_volume(tomogram, voxel_size, channel)
    params = PreprocessParams(
        lowpass_A=lowpass or None,
        highpass_A=highpass or None,
        bin_factor=bin_factor,
        clamp_sigma=clamp or None,
    )
    params.validate(volume.pixel_size_A * bin_factor)
    shape, voxel, origin = binned_geometry(volume, bin_factor)
    check_free_space(output, 4 * int(np.prod(shape)))  # float32
    with create_volume(output, shape, np.float32, voxel, origin, overwrite=overwrite) as out:
        stats = preprocess_into(volume, out, params, show_progress=not quiet)
    write_provenance(
        output,
        "preprocess",
        {**params.as_dict(), "voxel_size_A": voxel},
        [tomogram],
        extra={
            "statistics_before_normalisation": stats,
            **carried_acquisition([tomogram], voxel[0]),
        },
    )
    typer.echo(f"wrote {output} ({shape[2]}×{shape[1]}×{shape[0]} at {voxel[0]:.4g} Å)")
