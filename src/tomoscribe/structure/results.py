"""Writing an averaging run's results: maps, FSC table and plot, refined particles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.rotations import to_euler
from ..io import write_volume
from ..io.particles import recorded_voxel_size, write_particles
from ..outputs import atomic_path, write_provenance
from ..volume import Volume

#: The files :func:`write_average_outputs` writes into its folder.
AVERAGE_OUTPUTS = (
    "average.mrc",
    "average.mrc.json",
    "half1.mrc",
    "half2.mrc",
    "fsc.csv",
    "fsc.png",
    "refined.star",
)


def write_average_outputs(
    out_dir: Path, result: dict, table: pd.DataFrame, voxel: float, inputs, parameters: dict
) -> None:
    """Map, half maps, FSC CSV and plot, refined STAR (coordinates moved by the shifts,
    in the unit of ``table``'s coordinates: its recorded voxel size, else ``voxel``)."""
    write_volume(out_dir / "average.mrc", Volume(result["map"], voxel))
    for i, half in enumerate(result["half_maps"], start=1):
        write_volume(out_dir / f"half{i}.mrc", Volume(half, voxel))
    with atomic_path(out_dir / "fsc.csv") as tmp:
        result["fsc"].to_csv(tmp, index=False)
    plot_fsc(out_dir / "fsc.png", {"half maps": result["fsc"]})
    refined = table.copy()
    refined[["rot", "tilt", "psi"]] = to_euler(result["rotations"])
    # coordinates stay in the STAR's own unit (binned picks: not the subtomograms' voxel)
    unit = recorded_voxel_size(table) or voxel
    shift = result["shifts_zyx"] * (voxel / unit)
    refined["z"] = refined["z"] + shift[:, 0]
    refined["y"] = refined["y"] + shift[:, 1]
    refined["x"] = refined["x"] + shift[:, 2]
    refined["score"] = result["scores"]
    refined["half"] = result["half"]
    refined["image_voxel_size_A"] = voxel  # rlnImagePixelSize: the subtomograms' own
    write_particles(out_dir / "refined.star", refined, unit)
    summary = {
        "resolution_0143_A": result["resolution_0143_A"],
        "resolution_05_A": result["resolution_05_A"],
        "history": result["history"],
        "n_particles": len(table),
    }
    write_provenance(out_dir / "average.mrc", "average", parameters, inputs, extra=summary)


def plot_fsc(path: Path, curves: dict) -> None:
    """FSC curves against resolution with the 0.143 and 0.5 lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = fsc_figure(curves)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def fsc_figure(curves: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, curve in curves.items():
        ax.plot(1.0 / curve["resolution_A"], curve["fsc"], label=name)
    for level in (0.143, 0.5):
        ax.axhline(level, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.2, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
