"""The demo's lamella cells' microtubules through a tilt series, as
``benchmarks/bench_filaments.py`` makes them (bend-limited, filaments at their own
depths), traced and scored: shared by the filament tests that check a demo cell."""

import dataclasses

import numpy as np

from tomoscribe.structure.filaments import score_centrelines, trace_centrelines, tube_model

RADIUS = 12.5  # a microtubule's R in voxels of 10 Å


def traced_lamella_cell(seed: int, tilt: int = 45) -> dict:
    """`score_centrelines` of the tracer's lines in the medium lamella cell ``seed``
    through a ±``tilt``° tilt series, against the tubes a perfect segmentation holds
    (seen along ≥ 0.05 of the label, as the benchmark's "in the data")."""
    from tomoscribe.experiments.demo_setup import RIBOSOME_UM, cell_params
    from tomoscribe.simulate.cell import CELL_CLASS_IDS, FILAMENT_MIN_BEND_RADIUS_NM, make_cell
    from tomoscribe.simulate.tubes import seen_along_axes, tilt_series_filter

    params = dataclasses.replace(
        cell_params("medium", seed, RIBOSOME_UM["medium"], 1.0),
        templates_uM={},
        n_gold=0,
        min_bend_radius_nm=dict(FILAMENT_MIN_BEND_RADIUS_NM),
        filament_depths="lamella",
    )
    _, labels, _, _, axes = make_cell(params, filament_axes=True)
    label = (np.asarray(labels.data) == CELL_CLASS_IDS["microtubule"]).astype(np.float32)
    seen = tilt_series_filter(label, tilt, 3.0)
    mask = seen >= 0.5 * float(np.percentile(seen[label > 0.5], 90))
    true = [a["axis_zyx"] for a in axes.values() if a["class"] == "microtubule"]
    shown = [f >= 0.05 for f in seen_along_axes(label, mask, true, RADIUS)]
    lines = trace_centrelines(mask, 10.0, tube_model("microtubule"), tilt_range_deg=(-tilt, tilt))
    return score_centrelines(lines, true, RADIUS, min_length=2 * RADIUS, seen=shown)
