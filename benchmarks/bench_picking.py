"""Ribosome picking with pick's defaults among complexes of other sizes.

Simulated cells (``demo.cell_params("medium")``, 96×320×320 at 10 Å) hold 70S
ribosomes (4v5d) and five other complexes of different sizes (30S subunit 4v4r_30S,
3j9i, 1qvr, 3cf3, 1s3x).  The map picked is the worst case of a ribosome network that
fires on every complex: the label of all complexes seen through the missing wedge and
a 30 Å low-pass, thresholded at half the 90th percentile of the complexes' voxels (as
``bench_filaments.py`` does for filaments).  The wedge is a tilt series at 3° steps
reconstructed by weighted back-projection (``simulate.tubes.tilt_series_filter``, since
2026-12-05) or, with ``--wedge filter``, the circular Fourier filter of the figures
before (``wedge_filter``).
The painted sizes are those of the ribosomes an annotator would paint on another
cell (seed + 100): the true ribosome label's components (``painted_component_sizes``),
and pick's defaults come from them (``size_defaults``: no size flags).  Scored with
``match_picks`` (one to one within 5 voxels) against the ribosomes' true centres at
least ``edge`` voxels from the faces; component sizes per class are printed, to show
where the size window lies.

    PYTHONPATH=src python benchmarks/bench_picking.py [--seeds 1 2 3] [--tilts 60 45]
        [--wedge tilt-series|filter]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import scipy.ndimage
from bench_filaments import add_wedge_option  # the same --wedge

from tomoscribe.experiments.demo_setup import RIBOSOME, RIBOSOME_UM, cell_params
from tomoscribe.segment.painted_size import painted_component_sizes, size_defaults
from tomoscribe.simulate.cell import TEMPLATE_CLASS_BASE, make_cell
from tomoscribe.simulate.tubes import WEDGES
from tomoscribe.structure.picking import PickParams, match_picks, pick_particles

OTHERS_UM = {"4v4r_30S": 2.0, "3j9i": 2.0, "1qvr": 2.0, "3cf3": 2.0, "1s3x": 4.0}
EDGE = 4


def cell(seed: int):
    """(labels, particle table, template names) of one cell with every complex."""
    templates = {RIBOSOME: RIBOSOME_UM["medium"], **OTHERS_UM}
    params = dataclasses.replace(
        cell_params("medium", seed, RIBOSOME_UM["medium"], 1.0), templates_uM=templates, n_gold=0
    )
    _, labels, _, particles = make_cell(params)
    return np.asarray(labels.data), particles, list(templates)


def seen_mask(complexes: np.ndarray, tilt: int, wedge: str = "tilt-series") -> np.ndarray:
    """The complexes seen through the wedge (``WEDGES[wedge]``) and the low-pass,
    thresholded."""
    seen = WEDGES[wedge](complexes.astype(np.float32), tilt, 3.0)
    return seen >= 0.5 * float(np.percentile(seen[complexes], 90))


def run(seed: int, tilt: int, record: dict, voxel_A: float, wedge: str = "tilt-series") -> dict:
    labels, particles, names = cell(seed)
    mask = seen_mask(labels >= TEMPLATE_CLASS_BASE, tilt, wedge)
    learned = size_defaults(record, voxel_A)
    params = PickParams(
        1.0, learned["min_size"], learned["min_distance"], EDGE, max_size=learned["max_size"]
    )
    t0 = time.perf_counter()
    table = pick_particles(mask, None, params)
    seconds = time.perf_counter() - t0
    true = particles[particles["class"] == RIBOSOME][["z_A", "y_A", "x_A"]].to_numpy() / voxel_A
    inside = np.all((true >= EDGE) & (true <= np.asarray(mask.shape) - 1 - EDGE), axis=1)
    scores = match_picks(table[["z", "y", "x"]].to_numpy(), true[inside], 5.0)
    # component sizes of each class's particles in the thresholded mask
    components, _ = scipy.ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(components.ravel())
    per_class = {}
    for name in names:
        centres = particles[particles["class"] == name][["z_A", "y_A", "x_A"]].to_numpy()
        idx = np.rint(centres / voxel_A).astype(int)
        ids = components[tuple(idx.T)] if len(idx) else np.empty(0, int)
        got = sizes[ids[ids > 0]]
        per_class[name] = {
            "n": int(len(idx)),
            "median_component_voxels": float(np.median(got)) if len(got) else None,
        }
    out = {
        "seed": seed,
        "tilt": tilt,
        "n_true": int(inside.sum()),
        "n_picked": int(len(table)),
        "precision": round(scores["precision"], 3),
        "recall": round(scores["recall"], 3),
        "min_size": params.min_size,
        "max_size": params.max_size,
        "min_distance": round(params.min_distance, 1),
        "pick_seconds": round(seconds, 1),
        "classes": per_class,
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tilts", type=int, nargs="+", default=[60, 45])
    add_wedge_option(parser)
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        # the annotator paints the ribosomes of another cell of the same kind
        train_labels, _, names = cell(seed + 100)
        painted = train_labels == TEMPLATE_CLASS_BASE + names.index(RIBOSOME)
        record = painted_component_sizes(painted, 10.0)
        for tilt in args.tilts:
            results.append(run(seed, tilt, record, 10.0, args.wedge))
    for tilt in args.tilts:
        mine = [r for r in results if r["tilt"] == tilt]
        print(
            f"±{tilt}°: precision "
            + ", ".join(f"{r['precision']:.3f}" for r in mine)
            + "; recall "
            + ", ".join(f"{r['recall']:.3f}" for r in mine)
        )


if __name__ == "__main__":
    main()
