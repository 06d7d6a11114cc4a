"""Writing an averaging run's results: maps, FSC table and plot, refined particles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.rotations import to_euler
from ..io import write_volume
from ..io.formats.relion import BOX_COLUMNS
from ..io.particles import recorded_voxel_size, write_particles
from ..outputs import atomic_path, write_provenance
from ..volume import Volume
from .average import reliability_warnings
from .fsc import describe_resolution, reaches_nyquist

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


def box_centres(table: pd.DataFrame, voxel: float, unit: float) -> np.ndarray:
    """Where each subtomogram's box is centred (x, y, z, Å): on the voxel nearest the
    coordinate for tomoscribe's own extractions (``extract`` cuts whole voxels and keeps
    the fractional coordinate; its rows carry ``image_crc32``, and in memory the
    residual ``shift_x/y/z``, voxels); at the coordinate for subtomograms made
    elsewhere (:data:`BOX_COLUMNS`: RELION reconstructs them about ``rlnCoordinate*``,
    and its origin shift places the particle in the box, so a refined STAR's particles
    lie off the centre by it); at the position where no coordinate was kept.
    ``voxel``: the subtomograms' voxel size, ``unit``: Å per coordinate unit of
    ``table``."""
    position = table[["x", "y", "z"]].to_numpy(float) * unit
    if {"shift_x", "shift_y", "shift_z"} <= set(table):  # extract's table, in memory
        return position - table[["shift_x", "shift_y", "shift_z"]].to_numpy(float) * voxel
    if set(BOX_COLUMNS) <= set(table):  # the coordinate before a refinement's origin
        position = table[list(BOX_COLUMNS)].to_numpy(float) * unit
    if "image_crc32" in table and np.isfinite(pd.to_numeric(table["image_crc32"])).all():
        return np.rint(position / voxel) * voxel
    return position


def refined_moves_A(result: dict, table: pd.DataFrame, voxel: float, unit: float) -> np.ndarray:
    """Refined position minus position read (x, y, z, Å, per particle): the box centre
    used plus the shift found, never the read position plus a shift from elsewhere."""
    refined = box_centres(table, voxel, unit) + result["shifts_zyx"][:, ::-1] * voxel
    return refined - table[["x", "y", "z"]].to_numpy(float) * unit


def _write_refined_table(path: Path, result: dict, table, moves_A, scores, voxel, unit) -> None:
    """A particle table made in memory, written at its refined positions (``moves_A``:
    x, y, z, Å) in its own unit (``unit`` Å) with angles, half sets and any computed
    scores; ``voxel``: the subtomograms' voxel size (Å)."""
    refined = table.copy()
    refined[["rot", "tilt", "psi"]] = to_euler(result["rotations"])
    refined[["x", "y", "z"]] = refined[["x", "y", "z"]].to_numpy(float) + moves_A / unit
    refined = refined.drop(columns=["score", "shift_x", "shift_y", "shift_z"], errors="ignore")
    if scores is not None:
        refined["score"] = scores
    refined["half"] = result["half"]
    refined["image_voxel_size_A"] = voxel  # rlnImagePixelSize: the subtomograms' own
    write_particles(path, refined, unit)


def write_average_outputs(
    out_dir: Path, result: dict, table: pd.DataFrame, voxel: float, inputs, parameters: dict
) -> None:
    """Map, half maps, FSC CSV and plot, and ``refined.star``: the input STAR file with
    the refined angles, origins (Å, from the coordinates as the input wrote them),
    half sets and, where a search computed them, scores
    (:func:`tomoscribe.io.formats.relion.write_refined`).  ``inputs[0]`` is that STAR
    file (without one, the table is written anew at the refined positions);
    ``voxel``: the subtomograms' voxel size (Å)."""
    from ..io.formats.relion import write_refined

    write_volume(out_dir / "average.mrc", Volume(result["map"], voxel))
    for i, half in enumerate(result["half_maps"], start=1):
        write_volume(out_dir / f"half{i}.mrc", Volume(half, voxel))
    with atomic_path(out_dir / "fsc.csv") as tmp:
        result["fsc"].to_csv(tmp, index=False)
    plot_fsc(out_dir / "fsc.png", {"half maps": result["fsc"]})
    # coordinates stay in the STAR's own unit (binned picks: not the subtomograms' voxel)
    unit = recorded_voxel_size(table) or voxel
    scores = result["scores"]
    scores = scores if np.isfinite(scores).all() else None  # none where nothing searched
    moves_A = refined_moves_A(result, table, voxel, unit)
    if inputs and Path(inputs[0]).suffix.lower() == ".star":
        write_refined(
            Path(inputs[0]),
            out_dir / "refined.star",
            moves_A,
            result["rotations"],
            result["half"],
            scores,
            image_pixel_A=voxel,
        )
    else:  # a table made in memory (the demo): written anew at the refined positions
        _write_refined_table(out_dir / "refined.star", result, table, moves_A, scores, voxel, unit)

    summary = {
        "resolution_0143_A": result["resolution_0143_A"],
        "resolution_05_A": result["resolution_05_A"],
        "fsc_0143_reaches_nyquist": reaches_nyquist(result["fsc"], 0.143),
        "fsc_05_reaches_nyquist": reaches_nyquist(result["fsc"], 0.5),
        # In words, since the numbers above are bounds at either end of the box: "at
        # 31.2 Å", "better than 20.0 Å (Nyquist)" or "worse than 456.0 Å (the box)".
        "resolution_0143": describe_resolution(result["fsc"], 0.143),
        "resolution_05": describe_resolution(result["fsc"], 0.5),
        "history": result["history"],
        "n_particles": len(table),
        "half_sets": result.get("half_sets", "drawn"),
        "initial_model": result.get("initial_model"),
        "denovo_stability": result.get("denovo_stability"),
        "warnings": list(result.get("warnings", reliability_warnings(result))),
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
