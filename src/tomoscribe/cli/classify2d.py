"""``tomoscribe classify2d``: 2D classification of single-particle stacks at scale."""

from __future__ import annotations

from pathlib import Path

import typer

from . import options
from .app import app
from .checks import arguments_as, writes


@app.command("classify2d")
@writes(folders=("out_dir",))
def classify2d(
    inputs: list[Path] = typer.Argument(
        ...,
        help="Particle stacks (MRC, one box size) and/or one RELION particle STAR "
        "(rlnImageName N@STACK; CTF from rlnDefocusU/V and the optics block).",
    ),
    out_dir: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder: class_averages.mrcs, classes.png, particles.star (RELION).",
    ),
    classes: int = typer.Option(64, "--classes", "-k", min=1, help="Number of classes."),
    rounds: int = typer.Option(3, "--rounds", min=0, help="Aligned refinement rounds."),
    candidates: int = typer.Option(
        6, "--candidates", min=1, help="Classes each particle is aligned to per round."
    ),
    align_size: int = typer.Option(
        0,
        "--align-size",
        min=0,
        help="Working box for alignment in pixels (0: chosen from the data's signal).",
    ),
    max_shift: float = typer.Option(
        0.15, "--max-shift", help="Largest shift, fraction of the box."
    ),
    mask_radius: float = typer.Option(
        0.45, "--mask-radius", help="References' mask radius, fraction of the box."
    ),
    ctf: str = typer.Option("flip", "--ctf", help="CTF correction: flip, wiener or none."),
    pixel_size: float = typer.Option(
        None, "--pixel-size", min=0.0, help="Pixel size in Å, overriding the files."
    ),
    voltage: float = options.Voltage,
    cs: float = options.SphericalAberration,
    amplitude_contrast: float = options.AmplitudeContrast,
    chunk: int = typer.Option(1024, "--chunk", min=1, help="Particles read per batch."),
    device: str = options.Device,
    seed: int = options.Seed,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Classify particle images into aligned 2D classes (CTF-corrected averages)."""
    from ..structure.classes2d import Classify2DParams
    from ..structure.workflow import classify2d_files

    params = Classify2DParams(
        n_classes=classes,
        align_size=align_size,
        rounds=rounds,
        candidates=candidates,
        max_shift=max_shift,
        mask_radius=mask_radius,
        ctf=ctf,
        chunk=chunk,
        seed=seed,
    )
    names = dict(n_classes="classes", pixel_size_A="pixel_size", voltage_kV="voltage", cs_mm="cs")
    with arguments_as(**names):
        result = classify2d_files(
            inputs,
            out_dir,
            params,
            pixel_size,
            device,
            overwrite,
            say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)),
            microscope={
                "voltage_kV": voltage,
                "cs_mm": cs,
                "amplitude_contrast": amplitude_contrast,
            },
        )
    counts = result.classes.counts
    typer.echo(
        f"wrote {out_dir}: {len(result.classes.labels)} particles in {int((counts > 0).sum())} "
        f"of {classes} classes ({counts.min()}–{counts.max()} each): class_averages.mrcs, "
        "classes.png, particles.star"
    )
