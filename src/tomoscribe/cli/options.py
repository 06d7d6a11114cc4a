"""Options shared by several commands."""

from __future__ import annotations

import typer

#: ``--voxel-size`` of the commands that read a tomogram or map: it supplies a size the
#: file lacks (or an unset 1 Å), and one that disagrees with the file's is refused, since
#: outputs on the input's grid or in Å would no longer overlay the file.
GivenVoxelSize = typer.Option(
    None,
    "--voxel-size",
    min=0.0,
    help="Voxel size in Å for a file that records none (or an unset 1 Å); refused when "
    "it disagrees with the file's own by more than 1%.",
)
Channel = typer.Option(
    None,
    "--channel",
    min=0,
    help="Channel (from 0) of a colour or multi-channel TIFF; such files need one.",
)
Device = typer.Option("auto", "--device", help="auto, cpu or cuda.")
Voltage = typer.Option(
    None,
    "--voltage",
    help="Voltage in kV where the input files give none (written into particles.star's "
    "optics block, which RELION 3.1+ needs; never over a file's own).",
)
SphericalAberration = typer.Option(
    None, "--cs", help="Spherical aberration in mm where the input files give none."
)
AmplitudeContrast = typer.Option(
    None, "--amplitude-contrast", help="Amplitude contrast where the input files give none."
)
Overwrite = typer.Option(
    True, "--overwrite/--no-overwrite", help="Replace an existing output (atomically)."
)
Seed = typer.Option(
    0, "--seed", min=0, help="Random seed (≥ 0); the same seed gives the same result."
)
Quiet = typer.Option(False, "--quiet", "-q", help="No progress output.")
