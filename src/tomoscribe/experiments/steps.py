"""The steps the experiment harnesses share: simulate and preprocess a tomogram with its
truth, act as the human annotator, train a network and reload it as a user would.

Each returns a small typed result; the demo (:mod:`.demo`) and the CLEM pipeline
(:mod:`.clem`) are built from them, so both simulate, annotate and train alike.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.legend import write_legend
from ..errors import OutputError, ParameterError, TrainingError
from ..io import create_volume, read_volume, write_volume
from ..outputs import atomic_path, write_provenance
from ..outputs import make_folders as make_output_folders
from ..preprocess import PreprocessParams, preprocess_into
from ..segment.modelfile import load_model, save_model
from ..segment.network import ArchitectureSpec
from ..segment.train import TrainParams, train_feature
from ..segment.trainset import TrainingSet, build_training_set, painted_mask_source
from ..simulate.annotator import simulate_annotator
from ..simulate.cell import CellParams, make_cell, truth_legend
from ..simulate.imaging import ImagingParams, image_volume
from ..volume import Volume


def check_size(size: str, sizes: Iterable[str]) -> None:
    """Refuse a ``size`` that is not among the harness's ``sizes``."""
    sizes = list(sizes)
    if size not in sizes:
        raise ParameterError(
            f"`size` must be one of {', '.join(sizes)}, got {size!r}.", parameter="size"
        )


def make_folders(out: Path, names: Iterable[str]) -> None:
    """Create ``out`` and its sub-folders ``names``, after refusing an ``out`` that holds
    anything tomoscribe did not write: the harness fills the whole tree, so a user's file
    of one of its many names would stop it halfway (a trial's demo failed after 13 s,
    leaving 80 MB beside the user's preprocessed_2.mrc)."""
    from ..ownership import foreign_files

    if out.is_dir():
        foreign = foreign_files(out)
        if foreign:
            shown = ", ".join(str(p.relative_to(out)) for p in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise OutputError(
                f"{out} holds files tomoscribe did not write ({shown}{more}); give this "
                "run an empty folder or one of its own earlier runs."
            )
    for name in ("", *names):
        make_output_folders(out / name)


def write_json(path: Path, record, **dumps) -> None:
    """Write ``record`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, **dumps) + "\n")


@dataclass
class SimulatedTomogram:
    """One simulated cell tomogram as written: raw and, once preprocessed, preprocessed
    (lazy volumes), and its truth (class and instance ids per voxel, the particles)."""

    raw: Volume
    labels: np.ndarray
    instances: np.ndarray
    particles: pd.DataFrame
    pre: Volume | None = None

    def truth_of(self, class_id: int) -> np.ndarray:
        """Boolean mask of the voxels of class ``class_id``."""
        return self.labels == class_id


def simulate_tomogram(
    out: Path, index: int, cell: CellParams, snr: float, imaging_seed: int
) -> SimulatedTomogram:
    """Simulate cell ``cell`` and image it (±60° tilt series, CTF, noise ``snr``, WBP).

    Writes ``tomogram_{index}.mrc`` and ``truth/labels_{index}.mrc`` (with its
    ``.legend.json``: which id is which structure) under ``out``; the tomogram is
    returned reopened from its file.
    """
    density, labels, instances, particles = make_cell(cell)
    imaged = image_volume(
        density.data, cell.voxel_size_A, ImagingParams(snr=snr, seed=imaging_seed)
    )
    raw_path = out / f"tomogram_{index}.mrc"
    write_volume(raw_path, Volume(imaged["tomogram"], cell.voxel_size_A))
    write_volume(out / "truth" / f"labels_{index}.mrc", labels)
    write_legend(out / "truth" / f"labels_{index}.mrc", truth_legend(cell))
    return SimulatedTomogram(
        raw=read_volume(raw_path),
        labels=np.asarray(labels.data),
        instances=np.asarray(instances.data),
        particles=particles,
    )


def preprocess_tomogram(
    out: Path, index: int, tomo: SimulatedTomogram, params: PreprocessParams
) -> SimulatedTomogram:
    """Preprocess ``tomo`` into ``out/preprocessed_{index}.mrc``; sets and returns it with
    ``pre``, the file reopened."""
    path = out / f"preprocessed_{index}.mrc"
    with create_volume(
        path, tomo.raw.shape, np.float32, tomo.raw.voxel_size_A, tomo.raw.origin_A
    ) as target:
        stats = preprocess_into(tomo.raw, target, params)
    raw = out / f"tomogram_{index}.mrc"
    write_provenance(  # as `preprocess` records it: a training set cut from it records
        path,  # its preprocessing, and segment compares it (a README trial's set from
        "preprocess",  # `clem simulate` recorded none)
        {**params.as_dict(), "voxel_size_A": list(tomo.raw.voxel_size_A)},
        [raw] if raw.is_file() else [],
        extra={
            "binning": "centred",
            "source_shape_zyx": list(tomo.raw.shape),
            "statistics_before_normalisation": stats,
        },
    )
    tomo.pre = read_volume(path)
    return tomo


@dataclass
class Annotation:
    """The simulated annotator's boxes (z, y, x voxels), painted masks and training set."""

    positives: np.ndarray
    negatives: np.ndarray
    painted: Volume
    trainset: TrainingSet


def annotate(
    tomo: SimulatedTomogram,
    class_id: int,
    feature: str,
    rng: np.random.Generator,
    n_positive: int,
    n_negative: int,
    seed: int,
    preprocessing: dict,
    tile_size: int = 64,
    negative_copies: int = 1,
) -> Annotation:
    """Act as a careful human on ``tomo``: ``n_positive`` painted tiles of class
    ``class_id`` and ``n_negative`` negative tiles, as a training set for ``feature``."""
    pos, neg, painted = simulate_annotator(
        tomo.labels, class_id, rng, n_positive, n_negative, tile_size, negatives_in_core=True
    )
    painted_volume = Volume(painted, tomo.pre.voxel_size_A)
    trainset = build_training_set(
        tomo.pre,
        pos,
        neg,
        painted_mask_source(painted_volume),
        feature,
        "simulated annotator",
        tile_size=tile_size,
        seed=seed,
        negative_copies=negative_copies,
        preprocessing=preprocessing,
    )
    return Annotation(pos, neg, painted_volume, trainset)


@dataclass
class TrainedNetwork:
    """A trained model reloaded from its file, its loss history and failed attempts."""

    model: object
    history: list
    retries: int


def train_and_reload(
    trainset: TrainingSet,
    path: Path,
    params: TrainParams,
    device: str,
    show_progress: bool,
    attempts: int = 1,
    say: Callable[[str], None] = lambda message: None,
) -> TrainedNetwork:
    """Train a chen2017 network, save it to ``path`` and load it back as a user would.

    A network that collapses (train_feature raises TrainingError: the paper's plain SGD
    kills all ReLUs for some initialisations) is trained again from the seed
    ``params.seed + 1000 * attempt``, up to ``attempts`` times in all.
    """
    for attempt in range(attempts):
        try:
            model = train_feature(
                trainset,
                ArchitectureSpec(),
                dataclasses.replace(params, seed=params.seed + 1000 * attempt),
                device=device,
                show_progress=show_progress,
            )
            break
        except TrainingError as err:
            if attempt == attempts - 1:
                raise
            say(f"{err} Retrying with another initialisation.")
    save_model(path, model)
    return TrainedNetwork(load_model(path), model.metadata["training"]["history"], attempt)
