"""Simulation workflows on files: what ``tomoscribe simulate cell`` does, as a call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import Acquisition
from ..io import write_volume
from ..outputs import atomic_path
from ..volume import Volume
from .cell import CELL_CLASS_IDS, TEMPLATE_CLASS_BASE, CellParams, make_cell
from .imaging import ImagingParams, image_volume


def simulate_cell_files(
    out_dir: Path,
    params: CellParams,
    imaging: ImagingParams,
    say: Callable[[str], None] = lambda message: None,
) -> tuple[pd.DataFrame, dict[str, str], Acquisition]:
    """Simulate a cellular tomogram with its truth and write it to ``out_dir``.

    Writes ``density.mrc``, ``labels.mrc``, ``instances.mrc``, ``tomogram.mrc``,
    ``tilt_series.mrc`` with ``tilt_series.tlt`` (angles, degrees) and
    ``particles.star`` (RELION coordinates in voxels, angles template → particle),
    each atomically once everything is computed.  Returns the particles' table, the
    class ids (label value → class name) and the acquisition record (tilt range, voxel
    size, tomogram name) for the tomogram's provenance.
    """
    say("building the phantom")
    density, labels, instances, particles = make_cell(params)
    say("imaging: projecting, CTF, noise, back-projecting")
    imaged = image_volume(density.data, params.voxel_size_A, imaging)
    vs = (params.voxel_size_A,) * 3
    # Everything is computed; now write, each file atomically.
    write_volume(out_dir / "density.mrc", density)
    write_volume(out_dir / "labels.mrc", labels)
    write_volume(
        out_dir / "instances.mrc",
        Volume(
            instances.data.astype(np.int16)
            if instances.data.max() < 32767
            else instances.data.astype(np.float32),
            vs,
        ),
    )
    write_volume(out_dir / "tomogram.mrc", Volume(imaged["tomogram"], vs))
    write_volume(out_dir / "tilt_series.mrc", Volume(imaged["tilt_series"], vs))
    with atomic_path(out_dir / "tilt_series.tlt") as tmp:
        tmp.write_text("".join(f"{a:.2f}\n" for a in imaged["angles_deg"]))
    class_ids = {str(v): k for k, v in CELL_CLASS_IDS.items()}
    class_ids.update({str(TEMPLATE_CLASS_BASE + i): n for i, n in enumerate(params.templates_uM)})
    write_truth_particles(out_dir / "particles.star", particles, params.voxel_size_A, "tomogram")
    angles = imaged["angles_deg"]
    return (
        particles,
        class_ids,
        Acquisition((min(angles), max(angles)), params.voxel_size_A, "tomogram"),
    )


def write_truth_particles(
    path: Path, particles: pd.DataFrame, voxel_size_A: float, tomo_name: str
) -> None:
    """The simulator's particle table as a RELION STAR file (coordinates in voxels),
    with its class names and instance ids."""
    import starfile

    table = pd.DataFrame(
        {
            "rlnTomoName": tomo_name,
            "rlnCoordinateX": particles["x_A"] / voxel_size_A,
            "rlnCoordinateY": particles["y_A"] / voxel_size_A,
            "rlnCoordinateZ": particles["z_A"] / voxel_size_A,
            "rlnAngleRot": particles["rot"],
            "rlnAngleTilt": particles["tilt"],
            "rlnAnglePsi": particles["psi"],
            "rlnClassNumber": particles["class_id"],
            "tsClassName": particles["class"],
            "tsInstance": particles["instance"],
        }
    )
    with atomic_path(path) as tmp:
        starfile.write({"particles": table}, tmp)
