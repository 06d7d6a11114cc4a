"""``tomoscribe convert``: particle files from one format to another."""

from __future__ import annotations

from pathlib import Path

import typer

from . import options
from .app import app
from .checks import writes


@app.command()
@writes(files=("output",))
def convert(
    source: Path = typer.Argument(
        ...,
        help="Particle file: .star (RELION 3/4/5, Warp, "
        "pytom), .mod (IMOD), .csv, .json (copick), .tbl (Dynamo), "
        "or copick picks, copick:CONFIG.json#RUN/OBJECT:USER/SESSION.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Particle file to write; its suffix names the format."
    ),
    tomo_name: str = typer.Option(
        None,
        "--tomo-name",
        help="Keep only this tomogram's rows; of a file that names no tomogram, the name "
        "its particles are written under.",
    ),
    voxel_size: float = typer.Option(
        None,
        "--voxel-size",
        help="Å per coordinate unit, where the source does not record it (or records an "
        "unset 1 Å); a size the source contradicts is refused.",
    ),
    binning: float = typer.Option(
        None, "--binning", help="Write coordinates binned by this factor (voxel size × factor)."
    ),
    tomograms_star: Path = typer.Option(
        None, "--tomograms", help="RELION 5 tomograms.star, for centred-Å coordinates."
    ),
    drop_orientations: bool = typer.Option(
        False, "--drop-orientations", help="Allow a target that cannot hold orientations (IMOD)."
    ),
    overwrite: bool = options.Overwrite,
) -> None:
    """Convert particles between formats, each with its own orientation convention."""
    from ..io.convert import convert_particles

    report = convert_particles(
        source,
        output,
        voxel_size,
        binning,
        tomo_name,
        tomograms=tomograms_star,
        drop_orientations=drop_orientations,
    )
    typer.echo(
        f"wrote {report['n']} particles from {report['source_format']} to "
        f"{report['target_format']} in {output}"
        + (f" (tomogram numbers named in {report['table_map']})" if report["table_map"] else "")
        + (f"; dropped {', '.join(report['dropped'])}" if report["dropped"] else "")
    )
