"""The annotation loop's steps on files, as the napari plugin runs them.

Each step calls the library function the matching command calls (``train``,
``segment``, ``merge``, ``vesicles``: the workflows of
:mod:`tomoscribe.segment.workflow`; ``pick``: the picking functions) and writes the same
files with the same provenance, so a session started in the viewer can be continued on
the command line and the other way round.  Long steps report through
:func:`tomoscribe.progress.observe` (and ``on_epoch`` for training) and stop when those
callbacks raise :class:`tomoscribe.progress.Cancelled`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..core.device import resolve_device
from ..core.legend import Legend
from ..errors import AnnotationError, ParameterError
from ..io.lineage import centred_extent
from ..io.particles import FORMATS, write_particles
from ..io.provenance import carried_acquisition, with_tilt_columns
from ..outputs import check_writable, write_provenance
from ..segment.engine import member_mean, member_spread, prepare_models, segment_slab_members
from ..segment.modelfile import FeatureModel
from ..segment.network import ArchitectureSpec
from ..segment.painted_size import size_defaults
from ..segment.train import TrainParams
from ..segment.vesicles import VesicleParams
from ..segment.workflow import (
    SegmentedMap,
    close_vesicles_to_files,
    merge_from_files,
    segment_from_files,
    train_from_files,
)
from ..structure.picking import PickParams, pick_particles
from ..volume import Volume


def train_model(
    trainset_path: str | os.PathLike,
    output: str | os.PathLike,
    epochs: int = 20,
    learning_rate: float = 0.01,
    validation: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    members: int = 1,
    on_epoch: Callable[[dict], None] | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> FeatureModel:
    """Train chen2017 on a training-set file as ``tomoscribe train`` does
    (:func:`tomoscribe.segment.workflow.train_from_files`): the model file with its
    threshold measured on the held-out boxes (``validation`` of them; with too few, the
    paper's 1.0, recorded) and its provenance record.

    Parameters
    ----------
    output : path of the model file (``.tsm``); its checkpoint lies beside it, so a
        cancelled training continues where it stopped when run again.
    members : networks in the model (an ensemble when more than 1)
    on_epoch : called with each epoch's losses; may raise ``Cancelled``.
    say : receives the training's warnings, one sentence each.
    """
    params = TrainParams(
        epochs=epochs, learning_rate=learning_rate, validation_fraction=validation, seed=seed
    )
    return train_from_files(
        [Path(trainset_path)],
        Path(output),
        ArchitectureSpec("chen2017", 0),
        params,
        members=members,
        device=device,
        say=say,
        on_epoch=on_epoch,
    )


def preview_slices(
    model: FeatureModel, volume: Volume, z: int, neighbours: int = 0, device: str = "cpu"
) -> np.ndarray:
    """The model's normalised map on slices ``z − neighbours … z + neighbours``.

    The same slab computation as ``segment`` (checks the voxel size; refuses a model of
    another voxel size).  Returns float32 (2·neighbours + 1, ny, nx), clipped at the ends
    of the volume (an ensemble's: the mean of its members).
    """
    return preview_with_spread(model, volume, z, neighbours, device)[0]


def preview_with_spread(
    model: FeatureModel, volume: Volume, z: int, neighbours: int = 0, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`preview_slices` and, for an ensemble, its members' spread on the same
    slices (``segment --uncertainty``'s map; None for a model of one network)."""
    nz = volume.shape[0]
    if not 0 <= z < nz:
        raise ParameterError(f"slice {z} is outside the tomogram (0…{nz - 1}).")
    dev = resolve_device(device)
    scales = prepare_models(volume, [model], dev, rescale=False, engine="auto", precision="fp32")
    z0, z1 = max(0, z - neighbours), min(nz, z + neighbours + 1)
    members = segment_slab_members(volume, [model], scales, z0, z1, dev)[0]
    spread = member_spread(members) if model.is_ensemble else None
    return member_mean(members), spread


def apply_models(
    tomogram: str | os.PathLike,
    models: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    voxel_size_A: float | None = None,
    device: str = "cpu",
) -> list[SegmentedMap]:
    """Segment a tomogram file with model files into ``out_dir`` as ``segment`` does
    (:func:`tomoscribe.segment.workflow.segment_from_files`): one map per model,
    ``STEM_FEATURE.mrc``, with its provenance; the session's earlier maps are replaced.

    Resumable: a cancelled run keeps its unfinished maps (hidden) and the same call
    finishes them.  Returns what was written, one :class:`SegmentedMap` per model.
    """
    return segment_from_files(
        [Path(tomogram)],
        [Path(m) for m in models],
        Path(out_dir),
        overwrite=True,
        device=device,
        voxel_size_A=voxel_size_A,
    )


def merge_maps(
    maps: Sequence[str | os.PathLike],
    features: Sequence[str],
    output: str | os.PathLike,
    thresholds: dict[str, float] | None = None,
    erasers: Sequence[str] = (),
) -> tuple[Path, Legend]:
    """Merge per-feature maps into a uint8 label map + legend as ``merge`` does
    (:func:`tomoscribe.segment.workflow.merge_from_files`): each feature's threshold is
    the one in ``thresholds``, else its model's measured threshold as its map records
    it, else 1.0."""
    output = Path(output)
    merged = merge_from_files(
        [Path(p) for p in maps],
        output,
        names=list(features),
        thresholds=thresholds,
        erasers=tuple(erasers),
        overwrite=True,
    )
    return output, merged.legend


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
        split_above=learned.get("split_above"),
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
    extent = centred_extent(source[0], labels.shape) if source else labels.shape
    for out in outputs:
        written.append(write_particles(out, table, labels.pixel_size_A, extent, feature, tomo_name))
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
    spread: np.ndarray | None = None,
) -> np.ndarray:
    """Centres (y, x) of the tiles of one previewed slice where the network is least sure:
    where an ensemble's members disagree most (``spread``, the slice of
    :func:`preview_with_spread`), else, for one network, where most pixels lie within
    ``band`` of the threshold (:func:`~tomoscribe.interactive.suggest.near_threshold`);
    ranked by :func:`~tomoscribe.segment.ensemble.tiles_to_annotate_next`."""
    from ..segment.ensemble import tiles_to_annotate_next
    from .suggest import near_threshold

    answer = np.asarray(answer, np.float32)
    if answer.ndim != 2:
        raise ParameterError("give one slice (a 2D map) to suggest tiles on.")
    uncertainty = near_threshold(answer, threshold, band) if spread is None else spread
    return tiles_to_annotate_next(uncertainty, tile, count, avoid_yx)[0]
