"""Options shared by several commands."""

from __future__ import annotations

import typer

VoxelSize = typer.Option(
    None, "--voxel-size", min=0.0, help="Voxel size in Å, overriding (or supplying) the file's own."
)
#: For commands that read maps made by tomoscribe or a painting tool: only supplies.
SuppliedVoxelSize = typer.Option(
    None,
    "--voxel-size",
    help="Voxel size in Å for a file that records none (a TIFF); a file that records "
    "one keeps it (refused when this differs by more than 1%).",
)
Channel = typer.Option(
    None,
    "--channel",
    min=0,
    help="Channel (from 0) of a colour or multi-channel TIFF; such files need one.",
)
Device = typer.Option("auto", "--device", help="auto, cpu or cuda.")
Overwrite = typer.Option(
    True, "--overwrite/--no-overwrite", help="Replace an existing output (atomically)."
)
Seed = typer.Option(0, "--seed", help="Random seed; the same seed gives the same result.")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bars.")
