"""The annotation loop's steps on files, as the napari plugin runs them.

Each step calls the library functions the matching command calls (``train``,
``segment``, ``merge``, ``vesicles``, ``pick``) and writes the same files with the same
provenance, so a session started in the viewer can be continued on the command line and
the other way round.  Long steps report through :func:`tomoscribe.progress.observe`
(and ``on_epoch`` for training) and stop when those callbacks raise
:class:`tomoscribe.progress.Cancelled`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..core.device import resolve_device
from ..core.legend import Legend, legend_path, write_legend
from ..errors import AnnotationError, ParameterError
from ..io import create_volume, read_volume
from ..io.particles import FORMATS, tomogram_stem, write_particles
from ..io.provenance import carried_acquisition, with_tilt_columns
from ..locks import output_lock
from ..outputs import check_writable, write_provenance
from ..segment.checkpoint import checkpoint_path
from ..segment.engine import prepare_models, segment_slab
from ..segment.merge import merge_into
from ..segment.modelfile import FeatureModel, save_model
from ..segment.network import ArchitectureSpec
from ..segment.painted_size import legend_with_sizes, size_defaults
from ..segment.runner import plan_segmentation, segment_files
from ..segment.train import TrainParams, train_feature
from ..segment.trainset import TrainingSet
from ..segment.vesicles import VesicleParams
from ..segment.workflow import close_vesicles_to_files
from ..structure.picking import PickParams, pick_particles
from ..volume import Volume


# TODO(issue 22): when `tomoscribe train` calls one library workflow (its body in
# cli/annotate.py is being made thin on the calibration/ensembles branch), call that
# function here instead of repeating the model saving and provenance below.
def train_model(
    trainset: TrainingSet,
    output: str | os.PathLike,
    epochs: int = 20,
    learning_rate: float = 0.01,
    validation: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[dict], None] | None = None,
    inputs: Sequence[Path] = (),
) -> FeatureModel:
    """Train chen2017 on ``trainset`` as ``tomoscribe train`` does and save the model.

    Parameters
    ----------
    output : path of the model file (``.tsm``); its checkpoint lies beside it, so a
        cancelled training continues where it stopped when run again.
    on_epoch : called with each epoch's losses; may raise ``Cancelled``.
    inputs : the training-set files, for the provenance record.
    """
    check_writable(output)
    spec = ArchitectureSpec("chen2017", 0)
    params = TrainParams(
        epochs=epochs, learning_rate=learning_rate, validation_fraction=validation, seed=seed
    )
    with output_lock(output):
        model = train_feature(
            trainset,
            spec,
            params,
            device=device,
            checkpoint=checkpoint_path(output),
            on_epoch=on_epoch,
        )
        save_model(output, model)
    history = model.metadata["training"]["history"]
    write_provenance(
        output,
        "train",
        {"architecture": spec.as_dict(), **params.__dict__},
        list(inputs),
        extra={"amplitude": model.amplitude, "final": history[-1]},
    )
    return model


def preview_slices(
    model: FeatureModel, volume: Volume, z: int, neighbours: int = 0, device: str = "cpu"
) -> np.ndarray:
    """The model's normalised map on slices ``z − neighbours … z + neighbours``.

    The same slab computation as ``segment`` (checks the voxel size; refuses a model of
    another voxel size).  Returns float32 (2·neighbours + 1, ny, nx), clipped at the ends
    of the volume.
    """
    nz = volume.shape[0]
    if not 0 <= z < nz:
        raise ParameterError(f"slice {z} is outside the tomogram (0…{nz - 1}).")
    dev = resolve_device(device)
    scales = prepare_models(volume, [model], dev, rescale=False, engine="auto", precision="fp32")
    z0, z1 = max(0, z - neighbours), min(nz, z + neighbours + 1)
    return segment_slab(volume, [model], scales, z0, z1, dev)[0]


# TODO(issue 22): when `tomoscribe segment` calls one library workflow (cli/annotate.py,
# calibration/ensembles branch), call it here instead of repeating the output names and
# the provenance records below.
def apply_models(
    tomogram: str | os.PathLike,
    models: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    voxel_size_A: float | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Segment a tomogram file with model files into ``out_dir`` as ``segment`` does.

    Resumable: a cancelled run keeps its unfinished maps (hidden) and the same call
    finishes them.  Returns one map per model, ``STEM_FEATURE.mrc``.
    """
    from ..segment.modelfile import load_model

    loaded = [load_model(m) for m in models]
    names = [m.feature for m in loaded]
    if len(set(names)) != len(names):
        raise ParameterError(f"two models are for the same feature ({names}).")
    stem = tomogram_stem(tomogram)
    paths = [Path(out_dir) / f"{stem}_{m.feature}.mrc" for m in loaded]
    jobs = plan_segmentation(
        [Path(tomogram)],
        [Path(m) for m in models],
        [paths],
        device=device,
        voxel_size_A=voxel_size_A,
    )
    segment_files(jobs)
    for path, model, model_path in zip(paths, loaded, models):
        write_provenance(
            path,
            "segment",
            {
                "feature": model.feature,
                "rescale": False,
                "amplitude": model.amplitude,
                "precision": "fp32",
                "engine": "auto",
                "architecture": model.spec.as_dict(),
            },
            [Path(tomogram), Path(model_path)],
            extra={
                "feature": model.feature,
                "painted_size": model.metadata.get("painted_size"),
                **carried_acquisition([tomogram]),
            },
        )
    return paths


def merge_weights(thresholds: dict[str, float]) -> dict[str, float]:
    """Per-feature thresholds as ``merge --threshold 1 --weight NAME=1/t``.

    A voxel is a feature's when its map reaches that feature's threshold and, weighted,
    beats the others: value/t ≥ 1.
    """
    for name, t in thresholds.items():
        if not (np.isfinite(t) and t > 0):
            raise ParameterError(f"the threshold of {name!r} must be a positive number, got {t}.")
    return {name: 1.0 / float(t) for name, t in thresholds.items()}


# TODO(issue 22): when `tomoscribe merge` calls one library workflow (cli/annotate.py,
# calibration/ensembles branch), call it here with threshold 1 and these weights instead
# of repeating the legend and provenance writing below.
def merge_maps(
    maps: Sequence[str | os.PathLike],
    features: Sequence[str],
    output: str | os.PathLike,
    thresholds: dict[str, float],
    erasers: Sequence[str] = (),
) -> tuple[Path, Legend]:
    """Merge per-feature maps into a uint8 label map + legend, as ``merge`` does with
    ``--threshold 1`` and ``--weight`` from :func:`merge_weights`."""
    output = Path(output)
    for path in (output, legend_path(output)):
        check_writable(path)
    volumes = [read_volume(p) for p in maps]
    weight_of = merge_weights({f: thresholds.get(f, 1.0) for f in features})
    acquisition = carried_acquisition(maps)  # refuses maps of different tilt series
    with create_volume(
        output,
        volumes[0].shape,
        np.uint8,
        volumes[0].voxel_size_A,
        volumes[0].origin_A,
        legend=Legend.from_features(features, erasers),
    ) as out:
        legend = merge_into(
            volumes, list(features), out, 1.0, [weight_of[f] for f in features], erasers
        )
        legend = legend_with_sizes(legend, features, maps)
        write_legend(output, legend)
    write_provenance(
        output,
        "merge",
        {
            "features": list(features),
            "threshold": 1.0,
            "weights": weight_of,
            "erasers": list(erasers),
        },
        [Path(p) for p in maps],
        extra={"legend": legend.as_dict(), **acquisition},
    )
    return output, legend


def close_vesicles_in(
    labels: Volume,
    legend: Legend,
    output: str | os.PathLike,
    feature: str = "membrane",
    params: VesicleParams | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Close the vesicles of a merged map and write it (+ legend, table of fits,
    provenance) as ``vesicles`` does
    (:func:`tomoscribe.segment.workflow.close_vesicles_to_files`).  The tilt range is
    ``params``'s, else the one the map's source file records, else ±60°.  Returns the
    closed labels and the table of fits (spheres, ellipsoids)."""
    source = labels.metadata.get("source")
    result = close_vesicles_to_files(
        labels,
        legend,
        output,
        feature,
        inputs=[source] if source else [],
        params=params,
        tilt_range_deg=None if params is None else params.tilt_range_deg,
    )
    return result.labels, result.fits


def pick_feature(
    labels: Volume, legend: Legend, feature: str, painted_size: dict | None = None, edge: int = 4
) -> tuple[pd.DataFrame, PickParams]:
    """Particles of ``feature`` in a merged label map, with ``pick``'s size defaults
    (learned from the painting when ``painted_size`` is given, else 20 voxels and 8)."""
    mask = np.asarray(labels.data) == legend.id_of(feature)
    if not mask.any():
        raise AnnotationError(f"the label map has no voxel of {feature!r}; nothing to pick.")
    learned = size_defaults(painted_size, labels.pixel_size_A)
    params = PickParams(
        1.0,
        learned.get("min_size", 20),
        learned.get("min_distance", 8.0),
        edge,
        max_size=learned.get("max_size"),
    )
    return pick_particles(mask, None, params), params


def export_picks(
    table: pd.DataFrame,
    outputs: Sequence[str | os.PathLike],
    labels: Volume,
    feature: str,
    tomo_name: str,
) -> list[Path]:
    """Write picks as STAR, IMOD, CSV or copick JSON (by suffix), as ``pick -o`` does:
    with the tilt range the label map's file records as columns of every pick and its
    acquisition record in the provenance.

    Every target is checked before the first is written.
    """
    for out in outputs:
        if Path(out).suffix.lower() not in FORMATS:
            raise ParameterError(f"{out}: picks files must end in {', '.join(FORMATS)}.")
        check_writable(out)
    source = [labels.metadata["source"]] if labels.metadata.get("source") else []
    acquisition = carried_acquisition(source, labels.pixel_size_A, tomo_name=tomo_name)
    table = with_tilt_columns(table, acquisition)
    written = []
    for out in outputs:
        written.append(
            write_particles(out, table, labels.pixel_size_A, labels.shape, feature, tomo_name)
        )
        write_provenance(
            out,
            "pick",
            {"feature": feature},
            source,
            extra={"n_picked": len(table), "tomo_name": tomo_name, **acquisition},
        )
    return written


def uncertain_tiles(
    answer: np.ndarray,
    threshold: float,
    tile: int = 64,
    count: int = 5,
    band: float = 0.25,
    avoid_yx: np.ndarray | None = None,
) -> np.ndarray:
    """Centres (y, x) of the tiles of one previewed slice where the network is least sure:
    :func:`~tomoscribe.interactive.suggest.suggest_tiles` on the pixels within ``band``
    of the threshold (:func:`~tomoscribe.interactive.suggest.near_threshold`)."""
    from .suggest import near_threshold, suggest_tiles

    answer = np.asarray(answer, np.float32)
    if answer.ndim != 2:
        raise ParameterError("give one slice (a 2D map) to suggest tiles on.")
    return suggest_tiles(near_threshold(answer, threshold, band), tile, count, avoid_yx)
