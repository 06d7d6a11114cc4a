"""How hard is a tomogram to annotate? Real crops against the demo's simulated cells.

Issue 23, item 7.  The same statistics (``tomoscribe.core.imagestats``) on

* the real crops in ../shared/data/real: the three TARDIS filament patches (inside
  their zero padding; contrast against the authors' masks) and the cylindra
  microtubule crop (10.52 Å; no mask);
* simulated cells as the demo makes them (``experiments.demo_setup.cell_params``:
  membranes, microtubules, actin, ribosomes, proteasomes, gold; 10 Å voxels) imaged as
  the demo does (``simulate.imaging``: ±60°, 3° steps, CTF, detector MTF, SNR 0.1,
  weighted back-projection), raw and after the demo's preprocessing (60 Å low-pass);
  contrast against the truth labels of microtubules (filled tubes) and membranes.

Columns: in-plane power-spectrum slope (0.05–0.5 Nyquist; white noise 0), lag-1
correlation along z and x after removing the background (σ 8 voxels), the missing
wedge's power ratio (inside / outside, the lower of the two candidate tilt axes), and
feature contrast in σ of the surroundings (2–6 voxels away).

    PYTHONPATH=src python benchmarks/bench_image_stats.py [--seeds 0 1] [--shape 64 192 192]
        [--snr 0.1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tomoscribe.core.imagestats import (
    axis_correlation,
    feature_contrast,
    power_spectrum_slope,
    wedge_power_ratio,
)
from tomoscribe.experiments.demo_setup import cell_params
from tomoscribe.preprocess import PreprocessParams, data_box, preprocess_array
from tomoscribe.simulate.cell import CELL_CLASS_IDS, make_cell
from tomoscribe.simulate.imaging import ImagingParams, image_volume
from tomoscribe.volume import Volume

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"
PATCHES = ("filament_patch", "filament_patch3", "filament_patch4", "microtubule_14pf_crop")


def statistics(data: np.ndarray, masks: dict, valid=None) -> dict:
    """The row of one volume: slope, correlations, wedge ratio, contrast per mask."""
    wedge = wedge_power_ratio(data)
    corr = axis_correlation(data, valid=valid)
    row = {
        "slope": power_spectrum_slope(data),
        "corr z": corr["z"],
        "corr x": corr["x"],
        "wedge": min(wedge.values()),
    }
    for name, mask in masks.items():
        row[f"contrast {name}"] = feature_contrast(data, mask, valid=valid)
    return row


def real_rows() -> dict:
    """Statistics of the real crops (inside their padding)."""
    import tifffile

    rows = {}
    for name in PATCHES:
        path = REAL / f"{name}.tif"
        if not path.is_file():
            continue
        image = tifffile.imread(path).astype(np.float32)
        box = data_box(Volume(image, 10.0))
        masks = {}
        if (REAL / f"{name}_mask.tif").is_file():
            masks["filament"] = tifffile.imread(REAL / f"{name}_mask.tif")[box] > 0
        rows[f"real {name}"] = statistics(image[box], masks)
        if name == "microtubule_14pf_crop":  # a real 10.52 Å tomogram: as the demo's are
            pre = preprocess_array(Volume(image, 10.52), PreprocessParams(lowpass_A=60.0))
            rows[f"real {name} preprocessed 60 Å"] = statistics(np.asarray(pre.data), masks)
    return rows


def simulated_rows(seed: int, shape, snr: float) -> dict:
    """Statistics of one simulated cell, raw and preprocessed as the demo does."""
    params = cell_params("small", seed, 7.0, 1.0)
    params = type(params)(**{**params.__dict__, "shape": tuple(shape)})
    density, labels, _, _ = make_cell(params)
    tomogram = image_volume(density.data, params.voxel_size_A, ImagingParams(snr=snr, seed=seed))[
        "tomogram"
    ]
    pre = preprocess_array(Volume(tomogram, params.voxel_size_A), PreprocessParams(lowpass_A=60.0))
    truth = np.asarray(labels.data)
    masks = {
        "filament": truth == CELL_CLASS_IDS["microtubule"],
        "membrane": truth == CELL_CLASS_IDS["membrane"],
    }
    masks = {k: v for k, v in masks.items() if v.any()}
    return {
        f"sim seed {seed} raw (SNR {snr:g})": statistics(np.asarray(tomogram), masks),
        f"sim seed {seed} preprocessed 60 Å": statistics(np.asarray(pre.data), masks),
    }


def table(rows: dict) -> str:
    columns = sorted({c for row in rows.values() for c in row}, key=_column_order)
    lines = ["| volume | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, row in rows.items():
        cells = [f"{row[c]:.2f}" if c in row else "–" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _column_order(column: str):
    order = ["slope", "corr z", "corr x", "wedge", "contrast filament", "contrast membrane"]
    return order.index(column) if column in order else len(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 192, 192])
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = real_rows()
    for seed in args.seeds:
        rows.update(simulated_rows(seed, args.shape, args.snr))
    print(table(rows))
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
