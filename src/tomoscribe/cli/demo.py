"""``tomoscribe demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from . import options
from .app import app
from .checks import writes


@app.command()
@writes(folders=("out",))
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Directory for every output."),
    size: str = typer.Option("medium", "--size", help="small, medium or large."),
    seed: int = options.Seed,
    device: str = options.Device,
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs per feature."),
    threshold: float = typer.Option(
        1.0,
        "--threshold",
        help="Merge threshold (normalised network output; the paper uses 1.0, EMAN2 0.8).",
    ),
    close: bool = typer.Option(
        True,
        "--close-vesicles/--no-close-vesicles",
        help="Close spherical vesicles across the missing wedge after "
        "the merge (the networks-only scores are reported either way).",
    ),
    quiet: bool = options.Quiet,
) -> None:
    """Simulate, annotate, train, segment, merge, pick, clean, average and score: no input
    needed."""
    from ..experiments.demo import DemoSettings, run_demo

    results = run_demo(
        DemoSettings(
            out_dir=out,
            size=size,
            seed=seed,
            device=device,
            epochs=epochs,
            threshold=threshold,
            close_vesicles=close,
            show_progress=not quiet,
        )
    )
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Scores against the truth")
    for column in ("tomogram", "feature", "Dice", "precision", "recall"):
        table.add_column(column, justify="right")
    for tomo, scores in results["segmentation"].items():
        for feature, s in scores.items():
            table.add_row(
                tomo, feature, f"{s['dice']:.3f}", f"{s['precision']:.3f}", f"{s['recall']:.3f}"
            )
            if feature == "membrane" and results["vesicles"]:
                raw = results["segmentation_network_only"][tomo][feature]
                table.add_row(
                    tomo,
                    "membrane (networks only)",
                    f"{raw['dice']:.3f}",
                    f"{raw['precision']:.3f}",
                    f"{raw['recall']:.3f}",
                )
    console = Console()
    console.print(table)
    for tomo, p in results["picking"].items():
        console.print(
            f"ribosome picking, {tomo}: precision {p['precision']:.3f}, recall "
            f"{p['recall']:.3f}, F1 {p['f1']:.3f}"
        )
    avg = results["average"]
    half_maps = avg.get("half_map_fsc_0143") or f"at {avg['half_map_fsc_0143_A']:.1f} Å"
    console.print(
        f"average of {avg['n_particles']} ribosomes: half maps FSC 0.143 "
        f"{half_maps}; against the true map FSC 0.5 at "
        f"{avg['fsc_05_vs_truth_A']:.1f} Å"
    )
    total = sum(results["timings_s"].values())
    console.print(f"total {total:.0f} s; report: {out / 'report.html'}")
