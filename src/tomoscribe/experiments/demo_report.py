"""The demo's self-contained HTML report (figures embedded as PNG)."""

from __future__ import annotations

import numpy as np

from ..report import Report
from .demo_setup import FEATURES

TARGETS = [  # (what, how to read it from the results, target, direction)
    ("membrane Dice, tomogram 1", ("segmentation", "tomogram_1", "membrane", "dice"), 0.8, ">="),
    (
        "microtubule Dice, tomogram 1",
        ("segmentation", "tomogram_1", "microtubule", "dice"),
        0.7,
        ">=",
    ),
    ("ribosome picking F1, tomogram 1", ("picking", "tomogram_1", "f1"), 0.85, ">="),
    ("average vs true map, FSC 0.5 (Å)", ("average", "fsc_05_vs_truth_A"), 40.0, "<="),
]


def _get(results: dict, path):
    value = results
    for key in path:
        value = value[key]
    return float(value)


def write_demo_report(
    path,
    tomos,
    merged_all,
    legend,
    histories,
    results,
    classes,
    average,
    truth_map,
    aligned,
    truth_curve,
    network_all=None,
) -> None:
    """Write the demo's ``report.html`` (a report writer: one figure or table after
    another, so longer than 80 lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    report = Report("tomoscribe demo: from a simulated cell tomogram to a ribosome structure")
    s = results["settings"]
    report.text(
        "Two cell tomograms were simulated (membranes, microtubules, actin, 70S ribosomes, "
        "20S proteasomes, gold; ±60° tilt series with CTF, SNR "
        f"{s['snr']}, weighted back-projection). A simulated annotator painted "
        f"{s['n_positive']} positive tiles and chose {s['n_negative']} negative tiles per feature "
        "on tomogram 1 only; one chen2017 network per feature was trained, applied to both "
        f"tomograms and merged competitively (threshold {s['threshold']}); the "
        "vesicles were then closed across the missing wedge by sphere (else ellipsoid) fits. "
        "Ribosomes were "
        "picked from the merged annotation, extracted, cleaned by 2D classification and "
        "averaged de novo with gold-standard half sets."
    )
    report.heading("Targets")
    rows = []
    for what, where, target, direction in TARGETS:
        value = _get(results, where)
        ok = value >= target if direction == ">=" else value <= target
        rows.append([what, value, f"{direction} {target}", "met" if ok else "NOT met"])
    report.table(["measure", "value", "target", ""], rows)

    report.heading("Segmentation against the truth")
    rows = []
    for tomo, scores in results["segmentation"].items():
        for feature, sc in scores.items():
            rows.append(
                [
                    tomo + (" (annotated)" if tomo.endswith("1") else " (never annotated)"),
                    feature,
                    sc["dice"],
                    sc["precision"],
                    sc["recall"],
                ]
            )
            if feature == "membrane" and results.get("vesicles"):
                raw = results["segmentation_network_only"][tomo][feature]
                rows.append(
                    [
                        tomo,
                        "membrane, networks only (before closing vesicles)",
                        raw["dice"],
                        raw["precision"],
                        raw["recall"],
                    ]
                )
    report.table(["tomogram", "feature", "Dice", "precision", "recall"], rows)
    if results.get("vesicles"):
        counts = "; ".join(
            f"{t}: {v['n_closed']} of {v['n_fitted']}" for t, v in results["vesicles"].items()
        )
        report.text(
            "Membranes whose normals lie in the missing wedge (the tops and bottoms of "
            "vesicles) leave no signal, and the networks cannot find them. Each "
            "membrane component was fitted with spheres (else ellipsoids); where one explained "
            "its voxels, they faced its centre, its inside was not solid and they "
            "covered at least half of its visible surface, the whole "
            f"5 nm shell was painted (spheres closed: {counts}; the fits are "
            "in vesicles_N.csv). The simulated vesicles are exact spheres, so this "
            "step is at its best here; real vesicles are only close to spherical."
        )

    colours = ["#000000"] * (max(legend.entries) + 1)
    for label, entry in legend:
        colours[label] = entry.colour
    cmap = ListedColormap(colours)
    fig, axes = plt.subplots(len(tomos), 3, figsize=(12, 4 * len(tomos)), squeeze=False)
    for row, (tomo, merged) in enumerate(zip(tomos, merged_all)):
        z = tomo.pre.shape[0] // 2
        image = np.asarray(tomo.pre.data[z])
        axes[row, 0].imshow(image, cmap="gray")
        axes[row, 1].imshow(image, cmap="gray")
        axes[row, 1].imshow(
            np.ma.masked_equal(merged[z], 0),
            cmap=cmap,
            vmin=0,
            vmax=len(colours) - 1,
            alpha=0.55,
            interpolation="nearest",
        )
        truth = np.zeros_like(merged[z])
        for name, class_id in FEATURES.items():
            truth[tomo.labels[z] == class_id] = legend.id_of(name)
        axes[row, 2].imshow(
            np.ma.masked_equal(truth, 0),
            cmap=cmap,
            vmin=0,
            vmax=len(colours) - 1,
            interpolation="nearest",
        )
        axes[row, 0].set_ylabel(f"tomogram {row + 1}, z = {z}")
    for ax, title in zip(axes[0], ("preprocessed", "merged annotation", "truth")):
        ax.set_title(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    names = ", ".join(f"{e.name} {e.colour}" for label, e in legend if label != 0)
    report.heading("Slices")
    report.figure(fig, f"Central slices. Colours: {names}.")
    if network_all is not None and results.get("vesicles"):
        tomo, y = tomos[0], tomos[0].pre.shape[1] // 2
        truth = np.zeros_like(merged_all[0][:, y])
        for name, class_id in FEATURES.items():
            truth[tomo.labels[:, y] == class_id] = legend.id_of(name)
        fig, axes = plt.subplots(3, 1, figsize=(12, 7))
        for ax, cut, title in (
            (axes[0], network_all[0][:, y], "networks only"),
            (axes[1], merged_all[0][:, y], "vesicles closed"),
            (axes[2], truth, "truth"),
        ):
            ax.imshow(np.asarray(tomo.pre.data[:, y]), cmap="gray", aspect="equal")
            ax.imshow(
                np.ma.masked_equal(cut, 0),
                cmap=cmap,
                vmin=0,
                vmax=len(colours) - 1,
                alpha=0.55,
                interpolation="nearest",
            )
            ax.set_ylabel(title)
            ax.set_xticks([])
            ax.set_yticks([])
        report.figure(
            fig,
            f"Tomogram 1, xz section at y = {y}: the missing wedge hides the "
            "vesicles' tops and bottoms from the networks; the sphere fits close them.",
        )

    fig, ax = plt.subplots(figsize=(7, 4))
    for feature, history in histories.items():
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label=feature)
    ax.set_xlabel("epoch")
    ax.set_ylabel("log squared residual (training)")
    ax.legend()
    report.heading("Training")
    report.figure(fig, "Per-epoch training loss of each feature's network.")

    report.heading("Ribosome picking")
    report.text(
        f"A pick is correct within {results['picking_tolerance_A']:.0f} Å (half the "
        "particle radius) of a true centre; matching is one to one."
    )
    report.table(
        ["tomogram", "picked", "true", "precision", "recall", "F1", "median error (voxels)"],
        [
            [t, p["n_picked"], p["n_true"], p["precision"], p["recall"], p["f1"], p["median_error"]]
            for t, p in results["picking"].items()
        ],
    )

    clean = results["cleaning"]
    report.heading("2D classification of the picks (Z-projections)")
    k = len(classes.averages)
    fig, axes = plt.subplots(1, k, figsize=(2.2 * k, 2.6), squeeze=False)
    for i in range(k):
        ax = axes[0, i]
        ax.imshow(classes.averages[i], cmap="gray")
        mark = " removed" if (i + 1) in clean["removed_classes"] else ""
        ax.set_title(
            f"{i + 1}: n={clean['class_sizes'][i]}\n"
            f"{100 * clean['class_ribosome_fraction'][i]:.0f}% rib.{mark}",
            fontsize=8,
        )
        ax.axis("off")
    report.figure(
        fig,
        f"Class averages; {clean['n_before']} → {clean['n_after']} particles, "
        f"ribosome fraction {clean['ribosome_fraction_before']:.2f} → "
        f"{clean['ribosome_fraction_after']:.2f}.",
    )

    avg = results["average"]
    report.heading("Subtomogram average")
    report.text(
        f"{avg['n_particles']} particles. Half maps: FSC 0.143 "
        f"{avg.get('half_map_fsc_0143') or 'at %.1f Å' % avg['half_map_fsc_0143_A']}, "
        f"0.5 at {avg['half_map_fsc_05_A']:.1f} Å. "
        f"Against the true map (after aligning the average to it): FSC 0.5 at "
        f"{avg['fsc_05_vs_truth_A']:.1f} Å. "
        f"{100 * avg['orientations_within_15deg']:.0f}% of the true ribosomes among them "
        "got orientations within 15° of the truth (up to the average's arbitrary pose). "
        "The tomograms are not CTF-corrected, so "
        "correlation with the truth flips sign beyond the first CTF zero."
    )
    n = truth_map.shape[0]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    for row, (volume, name) in enumerate(((aligned, "average"), (truth_map, "truth"))):
        for col, (cut, label) in enumerate(
            ((volume[n // 2], "xy"), (volume[:, n // 2], "xz"), (volume[:, :, n // 2], "yz"))
        ):
            axes[row, col].imshow(cut, cmap="gray")
            axes[row, col].set_title(f"{name} {label}", fontsize=9)
            axes[row, col].axis("off")
    report.figure(fig, "Central sections of the average (aligned to the truth) and the true map.")
    from ..structure.results import fsc_figure

    report.figure(
        fsc_figure({"half maps": average["fsc"], "average vs truth": truth_curve}),
        "FSC between the half maps and of the full average against the true map.",
    )

    report.heading("Run times (s)")
    report.table(
        ["step", "seconds"],
        [[k, v] for k, v in results["timings_s"].items()]
        + [["total", sum(results["timings_s"].values())]],
    )
    report.write(path)
