"""The CLEM pipeline's HTML report: registration, watershed, transfer, scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.transforms2d import apply, placement_matrix
from ..report import Report
from ..simulate.cell import CELL_CLASS_IDS

FEATURE_ID = CELL_CLASS_IDS["microtubule"]


def write_clem_report(
    path: Path,
    result: dict,
    pair: dict,
    registration,
    regions: np.ndarray,
    sampled: dict,
    refined: np.ndarray,
    tomos: list,
    maps: dict,
    histories: dict,
) -> None:
    """Write ``report.html`` for :func:`tomoscribe.experiments.clem.run_clem_pipeline` (a
    report writer: one figure or table after another, so longer than 80 lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Report("tomoscribe CLEM: annotation from correlative fluorescence")
    reg = result["registration"]
    report.heading("Targets")
    ratio, failed = result["dice_ratio"], result["human_network_failed"]

    def ratio_met(t: int):
        if failed[f"tomogram_{t}"]:
            return "no verdict: the human-trained network failed here"
        return ratio[f"tomogram_{t}"] >= 0.8

    report.table(
        ["measure", "target", "value", "met"],
        [
            [
                "true registration error at the tomogram (nm, worst corner)",
                "≤ 50",
                reg["true_error_at_tomogram_nm"]["max"],
                reg["true_error_at_tomogram_nm"]["max"] <= 50,
            ],
            [
                "Dice ratio CLEM / human, tomogram 2 (no fluorescence)",
                "≥ 0.8",
                ratio["tomogram_2"],
                ratio_met(2),
            ],
            ["Dice ratio CLEM / human, tomogram 1", "≥ 0.8", ratio["tomogram_1"], ratio_met(1)],
        ],
    )

    report.heading("Registration through the holes of the film")
    report.table(
        [
            "holes matched",
            "inliers",
            "FRE (nm)",
            "LOO TRE median (nm)",
            "LOO TRE 90% (nm)",
            "anchor",
            "anchor margin",
            "scale",
            "rotation (°)",
            "mirror",
        ],
        [
            [
                reg["n_matched"],
                reg["n_inliers"],
                reg["fre_nm"],
                reg["loo_tre_nm"]["median"],
                reg["loo_tre_nm"]["p90"],
                reg["anchor"].get("method"),
                reg["anchor"].get("margin"),
                reg["scale"],
                reg["rotation_deg"],
                reg["mirror"],
            ]
        ],
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    overview = pair["overview"][0]
    axes[0].imshow(overview, cmap="gray")
    mapped = apply(registration.matrix, registration.fm_points)
    inl = registration.inlier
    axes[0].plot(
        registration.ov_points[inl, 0],
        registration.ov_points[inl, 1],
        "o",
        mfc="none",
        color="lime",
        ms=6,
        label="overview holes",
    )
    axes[0].plot(
        mapped[inl, 0], mapped[inl, 1], "+", color="red", ms=6, label="fluorescence holes, mapped"
    )
    corners = apply(placement_matrix(pair["placement"]), _corners(pair["placement"]))
    axes[0].plot(*np.vstack([corners, corners[:1]]).T, color="yellow", label="tomogram")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title("EM overview with matched holes")
    z = int(round(pair["placement"]["fluorescence_z_slice"]))
    fm_corners = apply(np.linalg.inv(registration.matrix), corners)
    axes[1].imshow(pair["fluorescence"]["microtubule"][z], cmap="magma")
    axes[1].contour(regions[z] > 0, [0.5], colors="cyan", linewidths=0.5)
    axes[1].plot(*np.vstack([fm_corners, fm_corners[:1]]).T, color="yellow")
    axes[1].set_title("microtubule fluorescence, watershed regions (cyan), tomogram")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    report.figure(
        fig,
        "Left: the overview's holes (green) and the fluorescence holes mapped "
        "by the fitted transform (red). Right: the fluorescence at the "
        "tomogram's height, its 3D-watershed regions and the tomogram's "
        "footprint.",
    )

    report.heading("Label transfer into tomogram 1")
    transfer = result["transfer"]
    report.table(
        [
            "band pixels",
            "far pixels",
            "density threshold",
            "components kept",
            "refined voxels",
            "label Dice vs truth",
            "label precision",
            "label recall",
        ],
        [
            [
                transfer["band_pixels"],
                transfer["far_pixels"],
                transfer["density_threshold"],
                transfer["components_kept"],
                transfer["refined_voxels"],
                transfer["label_vs_truth"]["dice"],
                transfer["label_vs_truth"]["precision"],
                transfer["label_vs_truth"]["recall"],
            ]
        ],
    )
    report.text(
        "Labels against the truth of tomogram 1, by refinement: the density "
        "inside the band, then each self-training round (a network trained on the "
        "previous labels, thresholded inside the band)."
    )
    report.table(
        ["labels", "Dice", "precision", "recall"],
        [
            [name, q["dice"], q["precision"], q["recall"]]
            for name, q in transfer["labels_vs_truth_by_round"].items()
        ],
    )
    labelled = result.get("training_tomograms", {})
    if len(labelled) > 1:
        report.text(
            f"The CLEM network trained on {len(labelled)} tomograms with fluorescence "
            "together (each its own cell, correlative pair and registration); their "
            "density-refined labels against the truth:"
        )
        report.table(
            [
                "tomogram",
                "true registration error (nm, worst corner)",
                "tiles",
                "label Dice",
                "label precision",
                "label recall",
            ],
            [
                [
                    name.replace("_", " "),
                    r["true_error_at_tomogram_nm"]["max"],
                    r["clem_tiles"],
                    r["label_vs_truth"]["dice"],
                    r["label_vs_truth"]["precision"],
                    r["label_vs_truth"]["recall"],
                ]
                for name, r in labelled.items()
            ],
        )
    truth = tomos[0].truth_of(FEATURE_ID)
    zc = int(np.argmax(refined.sum((1, 2)))) if refined.any() else truth.shape[0] // 2
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    axes[0].imshow(np.asarray(tomos[0].pre.data[zc]), cmap="gray")
    axes[0].imshow(
        np.ma.masked_less(sampled["signal"] * (sampled["region"] > 0), 1e-3),
        cmap="viridis",
        alpha=0.35,
    )
    axes[0].set_title(f"tomogram 1, slice {zc}, with the transferred fluorescence")
    axes[1].imshow(np.asarray(tomos[0].pre.data[zc]), cmap="gray")
    axes[1].contour(truth[zc], [0.5], colors="lime", linewidths=0.8)
    axes[1].contour(refined[zc], [0.5], colors="red", linewidths=0.8)
    axes[1].set_title("refined label (red) and the truth (green)")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    report.figure(fig)

    report.heading("Networks trained from the transfer and from a simulated human")
    rows = []
    for key, score in result["scores"].items():
        source, _, t = key.partition("_tomogram_")
        rows.append(
            [source, t, score["dice"], score["precision"], score["recall"], score["picking"]["f1"]]
        )
    report.table(
        ["labels from", "tomogram", "Dice", "precision", "recall", "filament-seed F1"], rows
    )
    report.text(
        "Tomogram 2 was never seen by either annotation. Voxels count as microtubule "
        "where the network's normalised output reaches "
        f"{result['settings']['threshold']}; filament seeds every 40 nm along the "
        "predicted and the true microtubules match within 30 nm."
    )
    truth2 = tomos[1].truth_of(FEATURE_ID)
    z2 = int(np.argmax(truth2.sum((1, 2))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax, source in zip(axes, ("clem", "human")):
        ax.imshow(np.asarray(tomos[1].pre.data[z2]), cmap="gray")
        ax.contour(truth2[z2], [0.5], colors="lime", linewidths=0.8)
        ax.contour(
            maps[(source, 2)][z2] >= result["settings"]["threshold"],
            [0.5],
            colors="red",
            linewidths=0.8,
        )
        ax.set_title(f"tomogram 2, slice {z2}: {source} network (red), truth (green)")
        ax.set_xticks([]), ax.set_yticks([])
    report.figure(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for source, history in histories.items():
        ax.plot([h["train_loss"] for h in history], label=source)
    ax.set_xlabel("epoch"), ax.set_ylabel("training loss"), ax.legend()
    report.figure(fig)

    retried = {k: v for k, v in result.get("training_retries", {}).items() if v}
    if retried:
        report.text(
            "Training collapsed and was restarted from a new initialisation: "
            + ", ".join(f"{k} ({v}×)" for k, v in retried.items())
            + "."
        )
    report.heading("Run times (s)")
    report.table(list(result["timings_s"]), [list(result["timings_s"].values())])
    report.write(path)


def _corners(placement: dict) -> np.ndarray:
    ny, nx = placement["tomogram_shape"][1:]
    return np.array([[0, 0], [nx - 1, 0], [nx - 1, ny - 1], [0, ny - 1]], float)
