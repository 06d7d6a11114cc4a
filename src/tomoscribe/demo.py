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
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .core.legend import Legend, write_legend
from .errors import ParameterError
from .io import create_volume, read_volume, write_volume
from .io.particles import write_particles
from .io.points import write_points_csv
from .metrics import overlap_scores
from .outputs import atomic_path
from .preprocess import PreprocessParams, preprocess_into
from .progress import printer, step_timer
from .segment.engine import segment_into
from .segment.merge import merge_into
from .segment.modelfile import load_model, save_model
from .segment.network import ArchitectureSpec
from .core.device import resolve_device
from .segment.train import TrainParams, train_feature
from .segment.trainset import build_training_set, painted_mask_source, save_training_set
from .segment.vesicles import VesicleParams, close_vesicles
from .simulate.annotator import simulate_annotator
from .simulate.cell import CELL_CLASS_IDS, TEMPLATE_CLASS_BASE, CellParams, make_cell
from .simulate.imaging import ImagingParams, image_volume
from .simulate.subtomograms import template_in_box
from .simulate.template_library import load_template, template_manifest
from .structure.average import AverageParams, align_map_to, refine_average
from .structure.classify2d import classify_projections
from .structure.extract import extract_subtomograms
from .structure.fsc import fsc_curve, resolution_at
from .structure.picking import PickParams, match_picks, pick_particles
from .structure.stackio import write_particle_folder
from .volume import Volume

RIBOSOME, OTHER_COMPLEX = "4v5d", "3j9i"
SIZES = {"small": (96, 256, 256), "medium": (96, 320, 320), "large": (128, 512, 512)}
#: Ribosome concentration (µM) per size: as crowded as the simulator's placement allows.
RIBOSOME_UM = {"small": 7.0, "medium": 10.0, "large": 10.0}
FEATURES = {"membrane": CELL_CLASS_IDS["membrane"],
            "microtubule": CELL_CLASS_IDS["microtubule"],
            "ribosome": TEMPLATE_CLASS_BASE}  # first template of the cell
VOXEL_A = 10.0
BOX = 40


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


def cell_params(size: str, seed: int, ribosome_uM: float, other_uM: float) -> CellParams:
    """The simulated cell of each demo size (10 Å voxels)."""
    shape = SIZES[size]
    scale = shape[1] / 320
    return CellParams(shape=shape, voxel_size_A=VOXEL_A,
                      n_vesicles=max(2, round(3 * scale**2)), n_organelles=1,
                      n_microtubules=max(2, round(3 * scale)), n_actin=max(2, round(4 * scale)),
                      templates_uM={RIBOSOME: ribosome_uM, OTHER_COMPLEX: other_uM},
                      n_gold=max(2, round(4 * scale**2)),
                      ice_thickness_nm=(0.85 * shape[0] * VOXEL_A / 10,
                                        1.0 * shape[0] * VOXEL_A / 10),
                      filled_microtubule_labels=True, strict_concentrations=False, seed=seed)


def particle_radius_A(name: str) -> float:
    """Radius of the sphere with the template's radius of gyration: √(5/3)·Rg."""
    return math.sqrt(5.0 / 3.0) * float(template_manifest()[name]["radius_of_gyration_A"])


def run_demo(settings: DemoSettings = DemoSettings()) -> dict:
    """Run the demo; returns the scores and timings, also written to ``scores.json``."""
    if settings.size not in SIZES:
        raise ParameterError(f"`size` must be one of {', '.join(SIZES)}, got {settings.size!r}.",
                             parameter="size")
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("truth", "annotations", "models", "maps", "picks"):
        (out / sub).mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    say = printer("demo", settings.show_progress)
    device = str(resolve_device(settings.device))

    timed = step_timer(timings)

    # 1. Two simulated tomograms with truth.
    tomos = []
    for t in (1, 2):
        with timed("simulate"):
            say(f"simulating cell tomogram {t} of 2 {SIZES[settings.size][::-1]} (x, y, z) "
                f"at {VOXEL_A} Å: tilt series ±60°, CTF, SNR {settings.snr}, WBP")
            density, labels, _, particles = make_cell(cell_params(
                settings.size, settings.seed + t - 1,
                settings.ribosome_uM or RIBOSOME_UM[settings.size], settings.other_uM))
            imaged = image_volume(density.data, VOXEL_A, ImagingParams(
                snr=settings.snr, seed=settings.seed + 100 * t))
            tomogram = Volume(imaged["tomogram"], VOXEL_A)
            write_volume(out / f"tomogram_{t}.mrc", tomogram)
            write_volume(out / "truth" / f"labels_{t}.mrc", labels)
            truth_picks = _truth_particles(particles, RIBOSOME)
            write_particles(out / "truth" / f"ribosomes_{t}.star", truth_picks, VOXEL_A,
                            tomogram.shape, "ribosome", f"tomogram_{t}")
        with timed("preprocess"):
            params = PreprocessParams(lowpass_A=settings.lowpass_A)
            with create_volume(out / f"preprocessed_{t}.mrc", tomogram.shape, np.float32,
                               tomogram.voxel_size_A, tomogram.origin_A) as target:
                preprocess_into(tomogram, target, params)
        tomos.append({"raw": read_volume(out / f"tomogram_{t}.mrc"),
                      "pre": read_volume(out / f"preprocessed_{t}.mrc"),
                      "truth": labels.data, "particles": particles, "truth_picks": truth_picks})

    # 2. Annotate the first tomogram, train one network per feature.
    rng = np.random.default_rng(settings.seed)
    models, histories = [], {}
    first = tomos[0]
    for feature, class_id in FEATURES.items():
        with timed("annotate"):
            pos, neg, painted = simulate_annotator(
                first["truth"], class_id, rng, settings.n_positive, settings.n_negative,
                settings.tile_size, negatives_in_core=True)
            painted_vol = Volume(painted, VOXEL_A)
            write_volume(out / "annotations" / f"{feature}_painted.mrc", painted_vol)
            boxes = pd.DataFrame(np.vstack([pos, neg])[:, ::-1], columns=["x", "y", "z"])
            boxes["label"] = ["positive"] * len(pos) + ["negative"] * len(neg)
            write_points_csv(out / "annotations" / f"{feature}_boxes.csv", boxes)
            trainset = build_training_set(first["pre"], pos, neg, painted_mask_source(painted_vol),
                                          feature, "simulated annotator",
                                          tile_size=settings.tile_size, seed=settings.seed,
                                          negative_copies=settings.membrane_negative_copies
                                          if feature == "membrane" else settings.negative_copies,
                                          preprocessing=params.as_dict())
            save_training_set(out / "annotations" / f"{feature}.trainset", trainset)
        with timed("train"):
            say(f"training {feature}: {trainset.n_positive} positive and "
                f"{trainset.n_negative} negative tiles")
            model = train_feature(trainset, ArchitectureSpec(), TrainParams(
                epochs=settings.epochs, optimizer=settings.optimizer,
                learning_rate=settings.learning_rate, seed=settings.seed,
                validation_fraction=settings.validation_fraction),
                device=device, show_progress=settings.show_progress)
            save_model(out / "models" / f"{feature}.tsm", model)
            models.append(load_model(out / "models" / f"{feature}.tsm"))
            histories[feature] = model.metadata["training"]["history"]

    # 3. Segment and merge both tomograms, close vesicles; score against the truth.
    names = list(FEATURES)
    seg_scores, network_scores, vesicle_counts = [], [], []
    merged_all, network_all, legend = [], [], None
    for t, tomo in enumerate(tomos, start=1):
        with timed("segment"):
            say(f"segmenting tomogram {t} with the {len(models)} networks")
            paths = [out / "maps" / f"tomogram_{t}_{f}.mrc" for f in names]
            with contextlib.ExitStack() as stack:
                targets = [stack.enter_context(create_volume(p, tomo["pre"].shape, np.float32,
                                                             VOXEL_A)) for p in paths]
                segment_into(tomo["pre"], models, targets, device=device,
                             show_progress=settings.show_progress)
        with timed("merge"):
            maps = [read_volume(p) for p in paths]
            network_path = out / f"labels_{t}_network.mrc"
            with create_volume(network_path, tomo["pre"].shape, np.uint8, VOXEL_A) as target:
                legend = merge_into(maps, names, target, settings.threshold)
            network = read_volume(network_path).load(np.uint8)
        with timed("close vesicles"):
            if settings.close_vesicles:
                merged, vesicles = close_vesicles(network, legend.id_of("membrane"),
                                                  VOXEL_A, VesicleParams(),
                                                  show_progress=settings.show_progress)
                say(f"tomogram {t}: {int(vesicles['accepted'].sum())} of {len(vesicles)} "
                    "sphere fits to membrane components accepted and closed as vesicles")
                write_points_csv(out / f"vesicles_{t}.csv", vesicles)
                vesicle_counts.append({"n_fitted": len(vesicles),
                                       "n_closed": int(vesicles["accepted"].sum())})
            else:
                merged = network
            write_volume(out / f"labels_{t}.mrc", Volume(merged, VOXEL_A))
            for name in (f"labels_{t}.mrc", f"labels_{t}_network.mrc"):
                write_legend(out / name, legend)
        seg_scores.append(_overlaps(merged, legend, tomo["truth"]))
        network_scores.append(_overlaps(network, legend, tomo["truth"]))
        merged_all.append(merged)
        network_all.append(network)
        tomo["ribosome_map"] = maps[names.index("ribosome")]

    # 4. Pick ribosomes, extract, clean, average.
    radius_A = particle_radius_A(RIBOSOME)
    tolerance = radius_A / 2 / VOXEL_A
    pick_params = PickParams(threshold=settings.threshold,
                             min_size=int(0.1 * 4 / 3 * math.pi * (radius_A / VOXEL_A) ** 3),
                             min_distance=radius_A / VOXEL_A, edge=2)
    pick_scores, stacks, tables = [], [], []
    for t, tomo in enumerate(tomos, start=1):
        with timed("pick"):
            rib_id = legend.id_of("ribosome")
            picks = pick_particles(merged_all[t - 1] == rib_id,
                                   np.asarray(tomo["ribosome_map"].data), pick_params)
            picks["tomo_name"] = f"tomogram_{t}"
            write_particles(out / "picks" / f"ribosomes_{t}.star", picks, VOXEL_A,
                            tomo["pre"].shape, "ribosome", f"tomogram_{t}")
            truth_zyx = tomo["truth_picks"][["z", "y", "x"]].to_numpy(float)
            picks["truth_index"] = _nearest_truth(picks, truth_zyx, tolerance)
            picks["is_ribosome"] = picks["truth_index"] >= 0
            pick_scores.append(match_picks(picks[["z", "y", "x"]].to_numpy(float), truth_zyx,
                                           tolerance))
        with timed("extract"):
            stack, kept = extract_subtomograms(tomo["raw"], picks, BOX, "skip", invert=True)
            stacks.append(stack)
            tables.append(kept)
    stack = np.concatenate(stacks)
    table = pd.concat(tables, ignore_index=True)
    write_particle_folder(out / "subtomograms", stack,
                          table.drop(columns=["is_ribosome", "truth_index"]), VOXEL_A)
    with timed("clean"):
        say(f"2D classification of {len(table)} picked particles")
        n_classes = max(2, min(6, len(table) // 15))
        classes = classify_projections(stack.sum(axis=1), n_classes, settings.seed)
        table["class"] = classes["labels"]
        purity = table.groupby("class")["is_ribosome"].mean().reindex(
            range(1, n_classes + 1), fill_value=0.0)
        removed = [int(c) for c, p in purity.items() if p < 0.5]
        keep = ~table["class"].isin(removed).to_numpy()
        if keep.sum() < 4:
            keep[:] = True
            removed = []
        write_particles(out / "subtomograms" / "classified.star",
                        table.drop(columns=["is_ribosome", "truth_index"]).assign(
                            image_name=[str((out / "subtomograms" / f"subtomo_{i + 1:06d}.mrc")
                                            .resolve()) for i in range(len(table))]), VOXEL_A)
    kept_table = table[keep].reset_index(drop=True)
    true_rotations = np.concatenate([
        tomos[int(name.split("_")[1]) - 1]["truth_picks"].iloc[[int(i)]][["rot", "tilt", "psi"]]
        .to_numpy(float) if i >= 0 else np.full((1, 3), np.nan)
        for name, i in zip(kept_table["tomo_name"], kept_table["truth_index"])])
    with timed("average"):
        say(f"averaging {int(keep.sum())} subtomograms (de novo, gold-standard halves)")
        result = refine_average(stack[keep], VOXEL_A,
                                AverageParams(iterations=settings.average_iterations,
                                              seed=settings.seed),
                                device=device, say=say)
    from .structure.results import write_average_outputs

    (out / "average").mkdir(exist_ok=True)
    write_average_outputs(out / "average", result,
                          kept_table.drop(columns=["is_ribosome", "truth_index"]),
                          VOXEL_A, [], {"demo": True})
    from .core.rotations import from_euler

    known = np.isfinite(true_rotations[:, 0])
    consensus = orientation_consensus(result["rotations"][np.flatnonzero(known)],
                                      from_euler(true_rotations[known])) if known.any() else 0.0
    with timed("score average"):
        truth_map = template_in_box(load_template(RIBOSOME), VOXEL_A, BOX)
        write_volume(out / "truth" / "ribosome_map.mrc", Volume(truth_map, VOXEL_A))
        aligned, _, _, corr = align_map_to(result["map"], truth_map, VOXEL_A)
        write_volume(out / "average" / "average_aligned_to_truth.mrc", Volume(aligned, VOXEL_A))
        truth_curve = fsc_curve(aligned, truth_map, VOXEL_A)

    results = {
        "settings": {k: str(v) for k, v in asdict(settings).items()},
        "segmentation": {f"tomogram_{t}": s for t, s in enumerate(seg_scores, start=1)},
        "segmentation_network_only": {f"tomogram_{t}": s
                                      for t, s in enumerate(network_scores, start=1)},
        "vesicles": {f"tomogram_{t}": v for t, v in enumerate(vesicle_counts, start=1)},
        "picking": {f"tomogram_{t}": s for t, s in enumerate(pick_scores, start=1)},
        "picking_tolerance_A": radius_A / 2,
        "cleaning": {"n_classes": n_classes, "removed_classes": removed,
                     "class_sizes": classes["counts"].tolist(),
                     "class_ribosome_fraction": [float(v) for v in purity.to_numpy()],
                     "n_before": int(len(table)), "n_after": int(keep.sum()),
                     "ribosome_fraction_before": float(table["is_ribosome"].mean()),
                     "ribosome_fraction_after": float(table["is_ribosome"][keep].mean())},
        "average": {"n_particles": int(keep.sum()),
                    "half_map_fsc_0143_A": result["resolution_0143_A"],
                    "half_map_fsc_05_A": result["resolution_05_A"],
                    "fsc_05_vs_truth_A": resolution_at(truth_curve, 0.5),
                    "fsc_0143_vs_truth_A": resolution_at(truth_curve, 0.143),
                    "correlation_vs_truth": corr,
                    "orientations_within_15deg": consensus, "history": result["history"]},
        "timings_s": timings,
        "voxels_per_tomogram": int(np.prod(tomos[0]["pre"].shape)),
    }
    with atomic_path(out / "average" / "fsc_vs_truth.csv") as tmp:
        truth_curve.to_csv(tmp, index=False)
    with atomic_path(out / "scores.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    from .demo_report import write_demo_report

    write_demo_report(out / "report.html", tomos, merged_all, legend, histories, results,
                      classes, result, truth_map, aligned, truth_curve, network_all)
    return results


def _overlaps(merged: np.ndarray, legend: Legend, truth: np.ndarray) -> dict:
    """Dice, precision and recall of each demo feature in a merged map against the truth."""
    return {feature: overlap_scores(merged == legend.id_of(feature), truth == class_id)
            for feature, class_id in FEATURES.items()}


def _truth_particles(particles: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = particles[particles["class"] == name]
    return pd.DataFrame({"x": rows["x_A"] / VOXEL_A, "y": rows["y_A"] / VOXEL_A,
                         "z": rows["z_A"] / VOXEL_A, "rot": rows["rot"], "tilt": rows["tilt"],
                         "psi": rows["psi"], "score": 1.0}).reset_index(drop=True)


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
    from .core.rotations import angular_distance_deg

    if len(true) == 0:
        return float("nan")
    relative = true.inv() * estimated
    return max(float(np.mean(angular_distance_deg(relative, relative[i]) < within_deg))
               for i in range(len(relative)))
