"""``tomoscribe demo``: from a simulated cell tomogram to a scored ribosome structure.

With no input files and no network access:

1. simulate two cell tomograms (``simulate.cell`` + ``simulate.imaging``: membranes,
   microtubules, actin, 70S ribosomes (PDB 4v5d), 20S proteasomes (PDB 3j9i) and gold,
   imaged as a ±60° tilt series with CTF and noise and reconstructed by WBP), and
   keep their truth;
2. act as a human annotator on the first (10 positive tiles per feature with masks
   painted from the truth, slightly perturbed, and 100 negative tiles), train one
   chen2017 network per feature (membrane, microtubule, ribosome), segment both
   tomograms, merge the features competitively, and close the spherical vesicles
   across the missing wedge (``segment.vesicles``; the network-only scores are kept
   beside the closed ones);
3. pick ribosomes from the merged annotation, extract subtomograms, classify their
   Z-projections in 2D and drop the classes an expert would drop (here: classes
   whose members are mostly not ribosomes, judged from the truth as the annotator
   is), and average them with gold-standard half sets;
4. score everything against the truth: Dice, precision and recall per feature on
   both tomograms (the second was never annotated: the paper's claim that one
   training serves a project), picking precision/recall/F1 (a pick counts within half
   the particle radius of a true centre), and the FSC of the average against the
   true map.

Every intermediate file is written in the normal formats, so each step can be rerun
by hand with the CLI; ``report.html`` (self-contained) and ``scores.json`` sum up.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.device import resolve_device
from ..core.legend import Legend, write_legend
from ..core.wedge import wedge_mask
from ..errors import ParameterError, TrainingError
from ..io import create_volume, read_volume, write_volume
from ..io.particles import write_particles
from ..io.points import write_points_csv
from ..metrics import overlap_scores
from ..outputs import atomic_path
from ..outputs import make_folders as make_output_folders
from ..preprocess import PreprocessParams
from ..progress import printer, step_timer
from ..segment.engine import segment_into
from ..segment.merge import merge_into
from ..segment.train import TrainParams
from ..segment.trainset import save_training_set
from ..segment.vesicles import VesicleParams, close_vesicles
from ..simulate.imaging import ImagingParams
from ..simulate.subtomograms import template_in_box
from ..simulate.template_library import load_template
from ..structure.average import AverageParams, align_map_to, refine_average
from ..structure.classes2d import Classes2D, classify_images
from ..structure.extract import extract_subtomograms
from ..structure.fsc import describe_resolution, fsc_curve, resolution_at
from ..structure.picking import PickParams, match_picks, pick_particles
from ..structure.stackio import write_particle_folder
from ..volume import Volume
from .demo_setup import (
    BOX,
    FEATURES,
    RIBOSOME,
    RIBOSOME_UM,
    SIZES,
    VOXEL_A,
    cell_params,
    particle_radius_A,
)
from .steps import (
    SimulatedTomogram,
    annotate,
    check_size,
    make_folders,
    preprocess_tomogram,
    simulate_tomogram,
    train_and_reload,
    write_json,
)

#: The microscope ``simulate_tomogram`` images with, for the subtomograms' optics block.
_MICROSCOPE = {
    "voltage_kV": ImagingParams().voltage_kV,
    "cs_mm": ImagingParams().cs_mm,
    "amplitude_contrast": ImagingParams().amplitude_contrast,
}


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs (see ``tomoscribe demo --help``)."""

    out_dir: Path = Path("demo-out")
    size: str = "medium"
    seed: int = 0
    device: str = "auto"
    n_positive: int = 10
    n_negative: int = 100
    tile_size: int = 64
    negative_copies: int = 1
    membrane_negative_copies: int = 2  # membranes gain most from more rotated negatives
    epochs: int = 20
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    validation_fraction: float = 0.0
    threshold: float = 1.0
    lowpass_A: float = 60.0
    ribosome_uM: float | None = None  # default: RIBOSOME_UM[size]
    other_uM: float = 4.0
    snr: float = 0.1
    average_iterations: int = 3
    close_vesicles: bool = True
    show_progress: bool = False


@dataclass
class Segmented:
    """One tomogram segmented by the demo's networks: the merged labels (after closing
    vesicles), the networks' merge alone, the legend, the ribosome map and scores."""

    merged: np.ndarray
    network: np.ndarray
    legend: Legend
    ribosome_map: Volume
    scores: dict
    network_scores: dict
    vesicles: dict | None


@dataclass
class Particles:
    """Ribosome picks of both tomograms, their subtomograms and picking scores."""

    stack: np.ndarray
    table: pd.DataFrame
    scores: list


@dataclass
class Cleaning:
    """2D classification of the picks and which classes an expert would drop."""

    classes: Classes2D
    n_classes: int
    purity: pd.Series
    removed: list
    keep: np.ndarray


@dataclass
class ScoredAverage:
    """The average of the kept particles, aligned to and compared with the true map."""

    result: dict
    truth_map: np.ndarray
    aligned: np.ndarray
    correlation: float
    truth_curve: pd.DataFrame
    consensus: float


def run_demo(settings: DemoSettings = DemoSettings()) -> dict:
    """Run the demo; returns the scores and timings, also written to ``scores.json``."""
    check_size(settings.size, SIZES)
    if not (math.isfinite(settings.threshold) and settings.threshold > 0):
        raise ParameterError(  # before the work (it was checked at the merge, minutes in)
            f"the merge threshold must be a positive number, got {settings.threshold:g}.",
            parameter="threshold",
        )
    out = Path(settings.out_dir)
    make_folders(out, ("truth", "annotations", "models", "maps", "picks"))
    timings: dict[str, float] = {}
    say = printer("demo", settings.show_progress)
    device = str(resolve_device(settings.device))
    timed = step_timer(timings)

    # 1. Two simulated tomograms with truth.
    pre_params = PreprocessParams(lowpass_A=settings.lowpass_A)
    tomos, truth_picks = [], []
    for t in (1, 2):
        tomo, picks = _simulate(out, t, settings, pre_params, timed, say)
        tomos.append(tomo)
        truth_picks.append(picks)
    # 2. Annotate the first tomogram, train one network per feature.
    models, histories = _annotate_and_train(out, tomos[0], settings, pre_params, device, timed, say)
    # 3. Segment and merge both tomograms, close vesicles; score against the truth.
    segmented = [
        _segment_and_merge(out, t, tomo, models, settings, device, timed, say)
        for t, tomo in enumerate(tomos, start=1)
    ]
    # 4. Pick ribosomes, extract, clean, average.
    particles = _pick_and_extract(out, tomos, truth_picks, segmented, settings, timed)
    cleaning = _clean(out, particles.table, particles.stack, settings, timed, say)
    average = _average(
        out,
        particles.stack,
        particles.table,
        cleaning.keep,
        truth_picks,
        settings,
        device,
        timed,
        say,
    )
    results = _results(settings, segmented, particles, cleaning, average, timings, tomos)
    with atomic_path(out / "average" / "fsc_vs_truth.csv") as tmp:
        average.truth_curve.to_csv(tmp, index=False)
    write_json(out / "scores.json", results)
    from .demo_report import write_demo_report

    write_demo_report(
        out / "report.html",
        tomos,
        [s.merged for s in segmented],
        segmented[-1].legend,
        histories,
        results,
        cleaning.classes,
        average.result,
        average.truth_map,
        average.aligned,
        average.truth_curve,
        [s.network for s in segmented],
    )
    return results


def _simulate(
    out: Path, t: int, settings: DemoSettings, pre_params: PreprocessParams, timed, say
) -> tuple[SimulatedTomogram, pd.DataFrame]:
    """Simulated tomogram ``t`` (seed + t − 1), preprocessed, and its true ribosomes."""
    with timed("simulate"):
        say(
            f"simulating cell tomogram {t} of 2 {SIZES[settings.size][::-1]} (x, y, z) "
            f"at {VOXEL_A} Å: tilt series ±60°, CTF, SNR {settings.snr}, WBP"
        )
        tomo = simulate_tomogram(
            out,
            t,
            cell_params(
                settings.size,
                settings.seed + t - 1,
                settings.ribosome_uM or RIBOSOME_UM[settings.size],
                settings.other_uM,
            ),
            settings.snr,
            settings.seed + 100 * t,
        )
        truth_picks = _truth_particles(tomo.particles, RIBOSOME)
        write_particles(
            out / "truth" / f"ribosomes_{t}.star",
            truth_picks,
            VOXEL_A,
            tomo.raw.shape,
            "ribosome",
            f"tomogram_{t}",
        )
    with timed("preprocess"):
        preprocess_tomogram(out, t, tomo, pre_params)
    return tomo, truth_picks


def _annotate_and_train(
    out: Path,
    first: SimulatedTomogram,
    settings: DemoSettings,
    pre_params: PreprocessParams,
    device: str,
    timed,
    say,
):
    """One simulated annotation and one reloaded network per feature (tomogram 1 only)."""
    rng = np.random.default_rng(settings.seed)
    models, histories = [], {}
    for feature, class_id in FEATURES.items():
        with timed("annotate"):
            copies = (
                settings.membrane_negative_copies
                if feature == "membrane"
                else settings.negative_copies
            )
            annotation = annotate(
                first,
                class_id,
                feature,
                rng,
                settings.n_positive,
                settings.n_negative,
                settings.seed,
                pre_params.as_dict(),
                settings.tile_size,
                copies,
            )
            write_volume(out / "annotations" / f"{feature}_painted.mrc", annotation.painted)
            boxes = pd.DataFrame(
                np.vstack([annotation.positives, annotation.negatives])[:, ::-1],
                columns=["x", "y", "z"],
            )
            boxes["label"] = ["positive"] * len(annotation.positives) + ["negative"] * len(
                annotation.negatives
            )
            write_points_csv(out / "annotations" / f"{feature}_boxes.csv", boxes)
            trainset = annotation.trainset
            save_training_set(out / "annotations" / f"{feature}.trainset", trainset)
        with timed("train"):
            say(
                f"training {feature}: {trainset.n_positive} positive and "
                f"{trainset.n_negative} negative tiles"
            )
            params = TrainParams(
                epochs=settings.epochs,
                optimizer=settings.optimizer,
                learning_rate=settings.learning_rate,
                seed=settings.seed,
                validation_fraction=settings.validation_fraction,
            )
            trained = _trained(
                trainset, out / "models" / f"{feature}.tsm", params, device, settings
            )
            models.append(trained.model)
            histories[feature] = trained.history
    return models, histories


def _trained(trainset, path: Path, params, device, settings):
    """:func:`train_and_reload`, its failure said in the demo's terms: a trial's
    ``demo --epochs 2`` ended with "lower the learning rate", an option the demo lacks,
    where the few epochs were the cause."""
    try:
        return train_and_reload(trainset, path, params, device, settings.show_progress)
    except TrainingError as err:
        if settings.epochs >= DemoSettings.epochs:
            raise
        # the cause without the advice that follows it ("…; lower the learning rate",
        # "…: train longer"), which names options the demo lacks
        cause = str(err).split(";")[0].split(":")[0].rstrip(".")
        raise TrainingError(
            f"{cause} after {settings.epochs} epochs; run the demo with more `epochs` "
            f"(default {DemoSettings.epochs}).",
            parameter="epochs",
        ) from err


def _segment_and_merge(
    out: Path,
    t: int,
    tomo: SimulatedTomogram,
    models: list,
    settings: DemoSettings,
    device: str,
    timed,
    say,
) -> Segmented:
    """Segment tomogram ``t`` with every network, merge, close vesicles, score."""
    names = list(FEATURES)
    with timed("segment"):
        say(f"segmenting tomogram {t} with the {len(models)} networks")
        paths = [out / "maps" / f"tomogram_{t}_{f}.mrc" for f in names]
        with contextlib.ExitStack() as stack:
            targets = [
                stack.enter_context(create_volume(p, tomo.pre.shape, np.float32, VOXEL_A))
                for p in paths
            ]
            segment_into(
                tomo.pre, models, targets, device=device, show_progress=settings.show_progress
            )
    with timed("merge"):
        maps = [read_volume(p) for p in paths]
        network_path = out / f"labels_{t}_network.mrc"
        with create_volume(network_path, tomo.pre.shape, np.uint8, VOXEL_A) as target:
            legend = merge_into(maps, names, target, settings.threshold)
        # The legend before the map is read back: on the command line a file read is an
        # input, and an input's legend is never written.
        write_legend(network_path, legend)
        network = read_volume(network_path).load(np.uint8)
    with timed("close vesicles"):
        vesicle_count = None
        if settings.close_vesicles:
            merged, vesicles = close_vesicles(
                network,
                legend.id_of("membrane"),
                VOXEL_A,
                VesicleParams(),
                show_progress=settings.show_progress,
            )
            say(
                f"tomogram {t}: {int(vesicles['accepted'].sum())} of {len(vesicles)} "
                "fits (spheres, else ellipsoids) to membrane components accepted and closed "
                "as vesicles"
            )
            write_points_csv(out / f"vesicles_{t}.csv", vesicles)
            vesicle_count = {"n_fitted": len(vesicles), "n_closed": int(vesicles["accepted"].sum())}
        else:
            merged = network
        write_volume(out / f"labels_{t}.mrc", Volume(merged, VOXEL_A))
        write_legend(out / f"labels_{t}.mrc", legend)
    return Segmented(
        merged,
        network,
        legend,
        maps[names.index("ribosome")],
        _overlaps(merged, legend, tomo.labels),
        _overlaps(network, legend, tomo.labels),
        vesicle_count,
    )


def _pick_params(settings: DemoSettings) -> PickParams:
    radius_A = particle_radius_A(RIBOSOME)
    return PickParams(
        threshold=settings.threshold,
        min_size=int(0.1 * 4 / 3 * math.pi * (radius_A / VOXEL_A) ** 3),
        min_distance=radius_A / VOXEL_A,
        edge=2,
    )


def _pick_and_extract(
    out: Path, tomos: list, truth_picks: list, segmented: list, settings: DemoSettings, timed
) -> Particles:
    """Ribosomes picked from the merged labels, scored, and their subtomograms."""
    tolerance = particle_radius_A(RIBOSOME) / 2 / VOXEL_A
    pick_params = _pick_params(settings)
    scores, stacks, tables = [], [], []
    for t, (tomo, seg) in enumerate(zip(tomos, segmented), start=1):
        with timed("pick"):
            picks = pick_particles(
                seg.merged == seg.legend.id_of("ribosome"),
                np.asarray(seg.ribosome_map.data),
                pick_params,
            )
            picks["tomo_name"] = f"tomogram_{t}"
            write_particles(
                out / "picks" / f"ribosomes_{t}.star",
                picks,
                VOXEL_A,
                tomo.pre.shape,
                "ribosome",
                f"tomogram_{t}",
            )
            truth_zyx = truth_picks[t - 1][["z", "y", "x"]].to_numpy(float)
            picks["truth_index"] = _nearest_truth(picks, truth_zyx, tolerance)
            picks["is_ribosome"] = picks["truth_index"] >= 0
            scores.append(match_picks(picks[["z", "y", "x"]].to_numpy(float), truth_zyx, tolerance))
        with timed("extract"):
            stack, kept = extract_subtomograms(tomo.raw, picks, BOX, "skip", invert=True)
            stacks.append(stack)
            tables.append(kept)
    stack = np.concatenate(stacks)
    table = pd.concat(tables, ignore_index=True)
    written = table.drop(columns=["is_ribosome", "truth_index"]).assign(**_MICROSCOPE)
    tilt = ImagingParams().max_tilt_deg  # the demo's tilt series: its missing wedge
    wedge = wedge_mask(BOX, (-tilt, tilt)).numpy()  # for RELION (rlnCtfImage)
    write_particle_folder(out / "subtomograms", stack, written, VOXEL_A, wedge=wedge)
    return Particles(stack, table, scores)


def _clean(
    out: Path, table: pd.DataFrame, stack: np.ndarray, settings: DemoSettings, timed, say
) -> Cleaning:
    """2D classes of the picks; drop those mostly not ribosomes (judged from the truth, as
    the annotator is); ``table`` gains a ``class`` column."""
    with timed("clean"):
        say(f"2D classification of {len(table)} picked particles")
        n_classes = max(2, min(6, len(table) // 15))
        classes = classify_images(stack.sum(axis=1), n_classes, VOXEL_A, settings.seed)
        table["class"] = classes.labels
        purity = (
            table.groupby("class")["is_ribosome"]
            .mean()
            .reindex(range(1, n_classes + 1), fill_value=0.0)
        )
        removed = [int(c) for c, p in purity.items() if p < 0.5]
        keep = ~table["class"].isin(removed).to_numpy()
        if keep.sum() < 4:
            keep[:] = True
            removed = []
        write_particles(
            out / "subtomograms" / "classified.star",
            table.drop(columns=["is_ribosome", "truth_index"]).assign(
                image_name=[
                    str((out / "subtomograms" / f"subtomo_{i + 1:06d}.mrc").resolve())
                    for i in range(len(table))
                ],
                image_size_px=BOX,
                **_MICROSCOPE,
            ),
            VOXEL_A,
        )
    return Cleaning(classes, n_classes, purity, removed, keep)


def _average(
    out: Path,
    stack: np.ndarray,
    table: pd.DataFrame,
    keep: np.ndarray,
    truth_picks: list,
    settings: DemoSettings,
    device: str,
    timed,
    say,
) -> ScoredAverage:
    """De novo average of the kept particles, scored against the true map and poses."""
    from ..core.rotations import from_euler
    from ..structure.results import write_average_outputs

    kept_table = table[keep].reset_index(drop=True)
    true_rotations = np.concatenate(
        [
            truth_picks[int(name.split("_")[1]) - 1]
            .iloc[[int(i)]][["rot", "tilt", "psi"]]
            .to_numpy(float)
            if i >= 0
            else np.full((1, 3), np.nan)
            for name, i in zip(kept_table["tomo_name"], kept_table["truth_index"])
        ]
    )
    with timed("average"):
        say(f"averaging {int(keep.sum())} subtomograms (de novo, gold-standard halves)")
        result = refine_average(
            stack[keep],
            VOXEL_A,
            AverageParams(iterations=settings.average_iterations, seed=settings.seed),
            device=device,
            say=say,
        )
    make_output_folders(out / "average")
    write_average_outputs(
        out / "average",
        result,
        kept_table.drop(columns=["is_ribosome", "truth_index"]),
        VOXEL_A,
        [],
        {"demo": True},
    )
    known = np.isfinite(true_rotations[:, 0])
    consensus = (
        orientation_consensus(
            result["rotations"][np.flatnonzero(known)], from_euler(true_rotations[known])
        )
        if known.any()
        else 0.0
    )
    with timed("score average"):
        truth_map = template_in_box(load_template(RIBOSOME), VOXEL_A, BOX)
        write_volume(out / "truth" / "ribosome_map.mrc", Volume(truth_map, VOXEL_A))
        aligned, _, _, corr = align_map_to(result["map"], truth_map, VOXEL_A)
        write_volume(out / "average" / "average_aligned_to_truth.mrc", Volume(aligned, VOXEL_A))
        truth_curve = fsc_curve(aligned, truth_map, VOXEL_A)
    return ScoredAverage(result, truth_map, aligned, corr, truth_curve, consensus)


def _results(
    settings: DemoSettings,
    segmented: list,
    particles: Particles,
    cleaning: Cleaning,
    average: ScoredAverage,
    timings: dict,
    tomos: list,
) -> dict:
    """The scores and timings as written to ``scores.json`` (a report writer: one field a
    line, so longer than most functions)."""
    table, keep, result = particles.table, cleaning.keep, average.result
    numbered = dict(enumerate(segmented, start=1))
    return {
        "settings": {k: str(v) for k, v in asdict(settings).items()},
        "segmentation": {f"tomogram_{t}": s.scores for t, s in numbered.items()},
        "segmentation_network_only": {
            f"tomogram_{t}": s.network_scores for t, s in numbered.items()
        },
        "vesicles": {
            f"tomogram_{t}": s.vesicles for t, s in numbered.items() if s.vesicles is not None
        },
        "picking": {f"tomogram_{t}": s for t, s in enumerate(particles.scores, start=1)},
        "picking_tolerance_A": particle_radius_A(RIBOSOME) / 2,
        "cleaning": {
            "n_classes": cleaning.n_classes,
            "removed_classes": cleaning.removed,
            "class_sizes": cleaning.classes.counts.tolist(),
            "class_ribosome_fraction": [float(v) for v in cleaning.purity.to_numpy()],
            "n_before": int(len(table)),
            "n_after": int(keep.sum()),
            "ribosome_fraction_before": float(table["is_ribosome"].mean()),
            "ribosome_fraction_after": float(table["is_ribosome"][keep].mean()),
        },
        "average": {
            "n_particles": int(keep.sum()),
            "half_map_fsc_0143_A": result["resolution_0143_A"],
            "half_map_fsc_0143": describe_resolution(result["fsc"], 0.143),  # words
            "half_map_fsc_05_A": result["resolution_05_A"],
            "fsc_05_vs_truth_A": resolution_at(average.truth_curve, 0.5),
            "fsc_0143_vs_truth_A": resolution_at(average.truth_curve, 0.143),
            "correlation_vs_truth": average.correlation,
            "orientations_within_15deg": average.consensus,
            "history": result["history"],
        },
        "timings_s": timings,
        "voxels_per_tomogram": int(np.prod(tomos[0].pre.shape)),
    }


def _overlaps(merged: np.ndarray, legend: Legend, truth: np.ndarray) -> dict:
    """Dice, precision and recall of each demo feature in a merged map against the truth."""
    return {
        feature: overlap_scores(merged == legend.id_of(feature), truth == class_id)
        for feature, class_id in FEATURES.items()
    }


def _truth_particles(particles: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = particles[particles["class"] == name]
    return pd.DataFrame(
        {
            "x": rows["x_A"] / VOXEL_A,
            "y": rows["y_A"] / VOXEL_A,
            "z": rows["z_A"] / VOXEL_A,
            "rot": rows["rot"],
            "tilt": rows["tilt"],
            "psi": rows["psi"],
            "score": 1.0,
        }
    ).reset_index(drop=True)


def _nearest_truth(picks: pd.DataFrame, truth_zyx: np.ndarray, tolerance: float) -> np.ndarray:
    """Index of the true centre within ``tolerance`` voxels of each pick, else −1."""
    from scipy.spatial import cKDTree

    if len(picks) == 0 or len(truth_zyx) == 0:
        return np.full(len(picks), -1)
    distance, index = cKDTree(truth_zyx).query(picks[["z", "y", "x"]].to_numpy(float))
    return np.where(distance <= tolerance, index, -1)


def orientation_consensus(estimated, true, within_deg: float = 15.0) -> float:
    """Fraction of particles whose estimated orientation agrees with the truth up to one
    common rotation (the average's arbitrary pose), within ``within_deg``."""
    from ..core.rotations import angular_distance_deg

    if len(true) == 0:
        return float("nan")
    relative = true.inv() * estimated
    return max(
        float(np.mean(angular_distance_deg(relative, relative[i]) < within_deg))
        for i in range(len(relative))
    )
