"""One feature's annotation as a viewer holds it: box centres and a painted volume.

The napari plugin keeps the boxes as points (z, y, x in voxels of the tomogram) and the
painting as a label array; this module checks them, writes them as the same files that
``tomoscribe trainset --boxes … --painted …`` reads (a boxes CSV with a positive/negative
label column and a painted MRC on the tomogram's grid), and cuts the training set from
them with the library functions that command calls, so the viewer and the command line
share files and give the same tiles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import AnnotationError, ParameterError
from ..io import write_volume
from ..io.points import write_points_csv
from ..io.provenance import carried_acquisition, tilt_range_for
from ..outputs import check_writable, file_fingerprint, make_folders, read_provenance
from ..segment.painted_size import painted_component_sizes
from ..volume import Volume
from .session import check_boxes, check_feature_name  # noqa: F401 (also imported from here)

if TYPE_CHECKING:  # segment.trainset imports torch: only where a set is cut, so that
    from ..segment.trainset import TrainingSet  # the viewer's checks stay quick


def tile_window(centre_zyx, tile: int, shape_zyx) -> tuple[int, slice, slice]:
    """The slice index and the (y, x) slices of a box's tile, clipped to the volume."""
    z, y, x = (int(v) for v in np.round(centre_zyx))
    half = tile // 2
    ny, nx = shape_zyx[1:]
    return z, slice(max(0, y - half), min(ny, y + half)), slice(max(0, x - half), min(nx, x + half))


def painted_in_boxes(painted, positives_zyx: np.ndarray, tile: int) -> np.ndarray:
    """The painting limited to the positive boxes' tiles (uint8, 1 = feature).

    What lies outside every positive tile is never cut into the training set, so it is
    dropped here too: the file written matches what trains.  Only the tiles are read
    from ``painted`` (any array-like of the tomogram's shape, e.g. a memory map).
    """
    limited = np.zeros(np.shape(painted), np.uint8)
    for centre in np.asarray(positives_zyx, float).reshape(-1, 3):
        z, ys, xs = tile_window(centre, tile, limited.shape)
        limited[z, ys, xs] |= np.asarray(painted[z, ys, xs]) != 0
    return limited


def tile_groups(positives_zyx: np.ndarray, tile: int, shape_zyx) -> list[tuple[slice, ...]]:
    """Regions (z, y, x slices) that together hold every positive box's tile, each
    separated from the others by at least one voxel in some axis, so that a painted
    component (26-connected) lies within one of them."""
    windows = [tile_window(c, tile, shape_zyx) for c in np.reshape(positives_zyx, (-1, 3))]
    boxes = [[z, z + 1, ys.start, ys.stop, xs.start, xs.stop] for z, ys, xs in windows]
    merged = True
    while merged:  # join boxes that touch (26-connectivity) until none do
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if all(a[2 * k] <= b[2 * k + 1] and b[2 * k] <= a[2 * k + 1] for k in range(3)):
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]),
                                max(a[3], b[3]), min(a[4], b[4]), max(a[5], b[5])]  # fmt: skip
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(slice(b[0], b[1]), slice(b[2], b[3]), slice(b[4], b[5])) for b in boxes]


def check_annotation(
    volume: Volume, positives_zyx, negatives_zyx, painted: np.ndarray, tile: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked positive and negative centres and the painting limited to the positives.

    Raises
    ------
    AnnotationError
        Boxes outside the volume, no positive box, or nothing painted in any positive box.
    ParameterError
        A painted array of another shape than the tomogram.
    """
    if tuple(np.shape(painted)) != tuple(volume.shape):
        raise ParameterError(
            f"the painted labels have shape {np.shape(painted)} but the "
            f"tomogram {volume.shape}; paint on a layer of the tomogram's "
            "grid."
        )
    ny, nx = volume.shape[1:]
    if tile > min(ny, nx):
        raise ParameterError(
            f"the box size ({tile} px) is larger than the tomogram's {nx}×{ny} px slices; "
            f"choose at most {min(ny, nx) // 4 * 4} px.",
            parameter="tile",
        )
    pos = check_boxes(positives_zyx, volume.shape, "positive")
    neg = check_boxes(negatives_zyx, volume.shape, "negative")
    if len(pos) == 0:
        raise AnnotationError("there is no positive box; place boxes on the feature first.")
    limited = painted_in_boxes(painted, pos, tile)
    if not limited.any():
        raise AnnotationError(
            "nothing is painted inside the positive boxes; paint the "
            "feature in them before training."
        )
    return pos, neg, limited


def boxes_table(positives_zyx: np.ndarray, negatives_zyx: np.ndarray) -> pd.DataFrame:
    """The boxes as ``trainset --boxes`` reads them: x, y, z (voxels) and label."""
    both = np.vstack([np.reshape(positives_zyx, (-1, 3)), np.reshape(negatives_zyx, (-1, 3))])
    table = pd.DataFrame(both[:, ::-1], columns=["x", "y", "z"])
    table["label"] = ["positive"] * len(np.reshape(positives_zyx, (-1, 3))) + ["negative"] * len(
        np.reshape(negatives_zyx, (-1, 3))
    )
    return table


def save_annotation(
    folder: str | os.PathLike,
    feature: str,
    volume: Volume,
    positives_zyx,
    negatives_zyx,
    painted: np.ndarray,
    tile: int = 64,
) -> tuple[Path, Path]:
    """Write ``FEATURE_boxes.csv`` and ``FEATURE_painted.mrc`` into ``folder``.

    Both are checked before either is written (each written atomically), so a refused
    annotation leaves nothing.  Returns the two paths.
    """
    feature = check_feature_name(feature)
    pos, neg, limited = check_annotation(volume, positives_zyx, negatives_zyx, painted, tile)
    folder = Path(folder)
    boxes_path, painted_path = folder / f"{feature}_boxes.csv", folder / f"{feature}_painted.mrc"
    for path in (boxes_path, painted_path):
        check_writable(path)
    make_folders(folder)
    write_points_csv(boxes_path, boxes_table(pos, neg))
    write_volume(painted_path, volume.with_data(limited))
    return boxes_path, painted_path


def annotation_training_set(
    volume: Volume,
    feature: str,
    positives_zyx,
    negatives_zyx,
    painted: np.ndarray,
    tile: int = 64,
    negative_copies: int = 1,
    seed: int = 0,
    annotator: str = "",
    augmentation: str | None = None,
    tilt_range_deg: tuple[float, float] | None = None,
) -> TrainingSet:
    """The training set ``tomoscribe trainset`` cuts from the same boxes and painting.

    Recorded as that command records it: the painted sizes (for pick's size defaults),
    the augmentation with the tilt range it used (``tilt_range_deg``, else as the
    tomogram file records it, else ±60°), the tomogram's acquisition record,
    preprocessing and fingerprint (``volume.metadata["source"]``, the file it was read
    from).
    """
    pos, neg, limited = check_annotation(volume, positives_zyx, negatives_zyx, painted, tile)
    source = volume.metadata.get("source")
    tomogram = Path(source) if source else None
    tilt = tilt_range_for([tomogram] if tomogram else [], tilt_range_deg)
    record = (read_provenance(tomogram) or {}) if tomogram else {}
    from ..segment.trainset import DEFAULT_AUGMENTATION, build_training_set, painted_mask_source

    result = build_training_set(
        volume,
        pos,
        neg,
        painted_mask_source(volume.with_data(limited), None),
        feature,
        annotator,
        tile_size=tile,
        seed=seed,
        negative_copies=negative_copies,
        augmentation=augmentation or DEFAULT_AUGMENTATION,
        tilt_range_deg=tilt.deg,
        preprocessing=record.get("parameters", {}) if record.get("step") == "preprocess" else {},
        tomogram=file_fingerprint(tomogram) if tomogram and tomogram.is_file() else None,
    )
    result.metadata["painted_size"] = painted_component_sizes(
        limited, volume.pixel_size_A, tile_groups(pos, tile, volume.shape)
    )
    if tomogram:
        result.metadata.update(carried_acquisition([tomogram], volume.pixel_size_A, tilt.to_record))
    return result


def record_annotation(output: Path, trainset: TrainingSet, inputs) -> None:
    """The provenance sidecar ``trainset`` writes, for a training set saved from a viewer
    (:func:`tomoscribe.segment.workflow.record_training_set`)."""
    from ..segment.workflow import record_training_set

    record_training_set(output, trainset, inputs)


def painted_outside(painted, positives_zyx, tile: int) -> int:
    """How many painted voxels lie outside every positive box's tile (and so are not
    used: :func:`painted_in_boxes`)."""
    inside = painted_in_boxes(painted, positives_zyx, tile)
    return int(np.count_nonzero(painted)) - int(np.count_nonzero(inside))


def save_annotation_and_training_set(
    folder: str | os.PathLike,
    feature: str,
    volume: Volume,
    positives_zyx,
    negatives_zyx,
    painted: np.ndarray,
    tile: int = 64,
    negative_copies: int = 2,
    tomogram: str | os.PathLike | None = None,
) -> tuple[Path, TrainingSet]:
    """What *Save annotation + training set* writes: ``FEATURE_boxes.csv``,
    ``FEATURE_painted.mrc`` and ``FEATURE.trainset`` (with its provenance, naming
    ``tomogram``, the boxes and the painting) in ``folder``.

    The training set is cut (every check made) before the first file is written, so a
    refused annotation leaves nothing.  Only the boxes' tiles are read from the
    tomogram and the painting.  Returns the training set's path and the set.
    """
    from ..segment.trainset import save_training_set

    feature = check_feature_name(feature)
    output = Path(folder) / f"{feature}.trainset"
    check_writable(output)
    trainset = annotation_training_set(
        volume, feature, positives_zyx, negatives_zyx, painted, tile, negative_copies
    )
    boxes_path, painted_path = save_annotation(
        folder, feature, volume, positives_zyx, negatives_zyx, painted, tile
    )
    save_training_set(output, trainset)
    inputs = [p for p in (tomogram, boxes_path, painted_path) if p is not None]
    record_annotation(output, trainset, inputs)
    return output, trainset
