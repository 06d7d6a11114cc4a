"""Training sets for the two-network picker: patches around good, background and bad boxes.

Three sets of boxes (about 10–15 each, over several micrographs at different defocus,
as in EMAN2 2.2's "CNN Particle Picking v2"): good (isolated particles), background
(empty ice) and bad (contamination, aggregates, anything else not a particle).  Each
box becomes a square patch of the shrunk, normalised micrograph
(:mod:`tomoscribe.spa.micrographs`) cut at whole pixels around the pixel nearest the
box centre (so its pixels, and its noise, are the micrograph's own: interpolating
smooths noise, and a network trained on smoother patches than it is applied to
misses particles, docs/performance.md), with the box centre's sub-pixel offset from
the patch's centre pixel (``patch // 2``) kept for good boxes, large enough that
training can shift it by half a box before cropping the network's input (``input``,
twice the shrunk box).  The file is safetensors (the three patch stacks, the good
boxes' offsets, the boxes' positions, and the shrunk micrographs that hold them with
their density levels, which self-training picks on: about 7.5 + 3.7 MB per 4k
micrograph at shrink 3) with a JSON record, which keeps the good boxes' levels
(:mod:`tomoscribe.spa.density`: the picker leaves out picks far denser or thinner than
those); it holds no code.  Sets saved before the micrographs were kept train without
self-training; sets saved before the levels were kept pick without the density check.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage

from ..errors import AnnotationError, InputFileError, ModelFileError, ParameterError, missing_file
from ..outputs import atomic_path, note_input
from .density import block_mean, dense_sign, level_map, levels_at, record_problem
from .micrographs import normalise_shrunk, shrink_factor, to_shrunk

SETS = ("good", "background", "bad")
MIN_BOXES = 3
_KEY = "tomoscribe_spa_trainset"
#: 3: micrographs scaled by the ice's spread (``micrographs.ice_spread``, 2026-12-06);
#: 2: by every pixel's, refused (their patches on carbon micrographs have other
#: contrast than picking now gives).
VERSION = 3


def patch_geometry(box_px: int, shrink: int) -> dict:
    """Sizes in shrunk pixels: ``box``, network ``input`` (a multiple of 4, twice the
    box) and the stored ``patch`` (room for any turn plus a shift of half a box)."""
    box = box_px / shrink
    net_input = 4 * math.ceil(2 * box / 4)
    stored = 2 * math.ceil((net_input * math.sqrt(2) + box) / 2)
    return {"box": box, "input": net_input, "patch": stored}


def cut_patches(image_small: np.ndarray, xy_small: np.ndarray, size: int) -> np.ndarray:
    """Patches (n, size, size) centred on shrunk coordinates ``xy_small`` (cubic
    interpolation, mirrored beyond the edges): the centre lies at pixel (size − 1) / 2."""
    offsets = np.arange(size) - (size - 1) / 2
    out = np.empty((len(xy_small), size, size), np.float32)
    for k, (x, y) in enumerate(np.asarray(xy_small, float).reshape(-1, 2)):
        yy, xx = np.meshgrid(y + offsets, x + offsets, indexing="ij")
        out[k] = scipy.ndimage.map_coordinates(image_small, [yy, xx], order=3, mode="mirror")
    return out


def cut_exact_patches(
    image_small: np.ndarray, xy_small: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Patches (n, size, size) of the image's own pixels around the pixel nearest each
    of ``xy_small`` (mirrored beyond the edges), which lies at patch pixel
    (size // 2, size // 2), and each point's offset (x, y) from it: (n, 2)."""
    xy = np.asarray(xy_small, float).reshape(-1, 2)
    nearest = np.rint(xy).astype(int)
    padded = np.pad(image_small, size, mode="symmetric")
    out = np.empty((len(xy), size, size), np.float32)
    for k, (i, j) in enumerate(nearest):
        top, left = j - size // 2 + size, i - size // 2 + size
        out[k] = padded[top : top + size, left : left + size]
    return out, (xy - nearest).astype(np.float32)


def check_boxes(sets: dict[str, pd.DataFrame], shapes: dict[str, tuple], box_px: int) -> None:
    """Refuse sets of fewer than ``MIN_BOXES``, a box larger than a micrograph, and box
    centres outside their micrograph."""
    for name in SETS:
        table = sets.get(name)
        count = 0 if table is None else len(table)
        if count < MIN_BOXES:
            raise AnnotationError(
                f"the {name} set has {count} box(es); draw at least {MIN_BOXES} (10–15 work well).",
                parameter=name,
            )
    if box_px < 8:
        raise ParameterError(f"`box` must be at least 8 pixels, got {box_px}.", parameter="box")
    for micrograph, (ny, nx) in shapes.items():
        if box_px > min(ny, nx):
            raise ParameterError(
                f"the {box_px}-pixel box is larger than micrograph "
                f"{micrograph} ({nx}×{ny}); give a smaller `box`.",
                parameter="box",
            )
    for name, table in sets.items():
        for row in table.itertuples(index=False):
            ny, nx = shapes[row.micrograph]
            # pixel centres at whole numbers: pixel i spans i − ½ … i + ½
            if not (-0.5 <= row.x < nx - 0.5 and -0.5 <= row.y < ny - 0.5):
                raise AnnotationError(
                    f"a {name} box centred at ({row.x:g}, {row.y:g}){_as_written(row)} lies "
                    f"outside micrograph {row.micrograph} ({nx}×{ny}); check its coordinates."
                )


def _as_written(row) -> str:
    """Where a box's file is, and the corner a ``.box`` file gave (its centre is what
    is checked), for a refusal: a trial saw only the centre, not the corner it typed."""
    source = getattr(row, "source", None)
    corner = getattr(row, "corner_x", None)
    said = ""
    if isinstance(corner, float) and np.isfinite(corner):
        said = f", its corner written as ({corner:g}, {row.corner_y:g}),"
    if isinstance(source, str) and source:
        said += f" in {Path(source).name}"
    return said


def build_trainset(
    micrographs: dict[str, np.ndarray],
    pixel_size_A: float,
    sets: dict[str, pd.DataFrame],
    box_px: int,
) -> dict:
    """Patches of the three sets.

    Parameters
    ----------
    micrographs : dict
        Name → full-resolution image (ny, nx).
    pixel_size_A : float
        Their common pixel size (Å).
    sets : dict
        ``good``, ``background``, ``bad`` → box tables (``micrograph``, ``x``, ``y`` in
        full-resolution pixels; micrographs already matched to the names).
    box_px : int
        Box edge in full-resolution pixels (about 1.5 particle diameters).

    Returns
    -------
    dict with the three patch stacks (n, patch, patch) float32, ``good_offsets``,
    ``record``, the shrunk normalised micrographs that hold boxes
    (``micrographs_small``: name → (h, w) float32, for self-training,
    :mod:`tomoscribe.spa.selftraining`), their density levels (``levels_small``, the
    same shape: :func:`tomoscribe.spa.density.level_map`) and each set's box
    ``positions`` ((n, 3): index into ``record["micrographs"]``, x, y in shrunk
    pixels).  The record's ``good_levels`` are the good boxes' levels, in the order
    of the good patches (by micrograph), and ``dense_sign`` the sign of level that is denser.
    """
    check_boxes(sets, {k: v.shape for k, v in micrographs.items()}, box_px)
    shrink = shrink_factor(box_px)
    geometry = patch_geometry(box_px, shrink)
    used = sorted({m for t in sets.values() for m in t["micrograph"]})
    raw = {m: block_mean(micrographs[m], shrink) for m in used}
    small = {m: normalise_shrunk(raw[m]) for m in used}
    levels = {m: level_map(raw[m], box_px / shrink) for m in used}
    out = {"micrographs_small": small, "levels_small": levels, "positions": {}}
    good_levels = []
    for name in SETS:
        stacks, offsets, positions = [], [], []
        for micrograph, rows in sets[name].groupby("micrograph", sort=True):
            xy = to_shrunk(rows[["x", "y"]].to_numpy(float), shrink)
            patches, offset = cut_exact_patches(small[micrograph], xy, geometry["patch"])
            stacks.append(patches)
            offsets.append(offset)
            index = np.full((len(xy), 1), used.index(micrograph), np.float32)
            positions.append(np.hstack([index, xy.astype(np.float32)]))
            if name == "good":
                here = levels_at(levels[micrograph], xy)
                good_levels.extend(here.astype(float).round(3).tolist())
        out[name] = np.concatenate(stacks)
        out["positions"][name] = np.concatenate(positions)
        if name == "good":
            out["good_offsets"] = np.concatenate(offsets)
    out["record"] = {
        "version": VERSION,
        "box_px": int(box_px),
        "shrink": shrink,
        "pixel_size_A": float(pixel_size_A),
        "geometry": geometry,
        "counts": {n: int(len(out[n])) for n in SETS},
        "micrographs": used,
        "good_levels": good_levels,
        "dense_sign": dense_sign(out["good"], geometry["box"]),
    }
    return out


def save_trainset(path: str | os.PathLike, trainset: dict) -> Path:
    """Write a training set (safetensors + JSON record), atomically."""
    from safetensors.numpy import save_file

    tensors = {n: np.ascontiguousarray(trainset[n], np.float32) for n in SETS}
    tensors["good_offsets"] = np.ascontiguousarray(good_offsets(trainset), np.float32)
    for k, name in enumerate(trainset["record"]["micrographs"]):
        image = trainset.get("micrographs_small", {}).get(name)
        if image is not None:
            tensors[f"micrograph/{k}"] = np.ascontiguousarray(image, np.float32)
        levels = trainset.get("levels_small", {}).get(name)
        if levels is not None:  # z-scores: half precision is plenty, at half the size
            clipped = np.clip(levels, -6e4, 6e4)  # float16 ends at 65504
            tensors[f"levels/{k}"] = np.ascontiguousarray(clipped, np.float16)
    for name, positions in trainset.get("positions", {}).items():
        tensors[f"positions/{name}"] = np.ascontiguousarray(positions, np.float32)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(trainset["record"])})
    return Path(path)


def good_offsets(trainset: dict) -> np.ndarray:
    """Each good box's centre relative to its patch's centre pixel, (x, y) shrunk pixels
    (version-1 sets centred theirs at (patch − 1) / 2 by interpolation: −½)."""
    offsets = trainset.get("good_offsets")
    if offsets is None:
        return np.full((len(trainset["good"]), 2), -0.5, np.float32)
    return np.asarray(offsets, np.float32)


def load_trainset(path: str | os.PathLike) -> dict:
    """Read a training set written by :func:`save_trainset`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    note_input(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            raw = (handle.metadata() or {}).get(_KEY)
            out = {k: handle.get_tensor(k) for k in handle.keys()}
        record = json.loads(raw) if raw is not None else None
    except OSError as err:
        raise ModelFileError(
            f"{path} could not be read ({err.strerror or err}); check the file."
        ) from err
    except (SafetensorError, ValueError, TypeError) as err:
        # the library's words ("Error while deserializing header: header too large")
        # said nothing to a trial that gave a box file here
        raise ModelFileError(
            f"{path} is not a picking training set (a file `spa boxes` writes, .tss); "
            "make one from the box files with `spa boxes`."
        ) from err
    if not isinstance(record, dict) or set(SETS) - set(out):
        raise ModelFileError(
            f"{path} is not a tomoscribe picking training set; make one with `spa boxes`."
        )
    if record.get("version", 0) > VERSION:
        raise ModelFileError(f"{path} was written by a newer tomoscribe; update it.")
    problem = record_problem(record)
    if problem:
        raise ModelFileError(f"{path} is damaged: {problem}; make it again with `spa boxes`.")
    if record.get("version", 0) < VERSION:
        raise ModelFileError(
            f"{path} holds patches normalised the old way (version "
            f"{record.get('version', 0)}); make it again with `spa boxes`."
        )
    for name in SETS:
        if not np.isfinite(out[name]).all():
            raise ModelFileError(f"{path} has NaN or infinite pixels in its {name} set.")
    names = record.get("micrographs", [])
    out["micrographs_small"] = {
        name: out.pop(f"micrograph/{k}") for k, name in enumerate(names) if f"micrograph/{k}" in out
    }
    out["levels_small"] = {
        name: out.pop(f"levels/{k}").astype(np.float32)
        for k, name in enumerate(names)
        if f"levels/{k}" in out
    }
    out["positions"] = {
        name: out.pop(f"positions/{name}") for name in SETS if f"positions/{name}" in out
    }
    for name, image in [*out["micrographs_small"].items(), *out["levels_small"].items()]:
        if not np.isfinite(image).all():
            raise ModelFileError(
                f"{path} has NaN or infinite pixels in micrograph {name} or its density levels."
            )
    out["record"] = record
    return out


def read_box_sets(
    files: dict[str, list], micrographs: list, box_px: int | None, others: str = "refuse"
) -> tuple[dict[str, pd.DataFrame], int]:
    """The three box sets from their files (``io.boxfiles``), matched to the
    micrographs' names (``micrographs``: their paths), and the box size: ``box_px`` or,
    failing that, the boxes' own (``.box``).  ``files`` maps ``good``, ``background``
    and ``bad`` (any missing: empty) and any other set (``spa extract``'s picks) to
    their files; every set is returned.  ``others``: boxes on micrographs not among
    ``micrographs`` are refused (``"refuse"``) or kept with ``micrograph`` None
    (``"leave out"``: :func:`~tomoscribe.io.boxfiles.match_micrographs`).

    Raises
    ------
    InputFileError
        A box file names a micrograph not among ``micrographs``, or names one by a path
        that holds another image than the micrograph of that name given
        (:func:`~tomoscribe.io.boxfiles.check_named_micrographs`).
    ParameterError
        No box size given and none in the files.
    """
    from ..io.boxfiles import (
        check_named_micrographs,
        check_one_folder_per_name,
        match_micrographs,
        micrograph_name,
        read_boxes,
    )

    names = [micrograph_name(p) for p in micrographs]
    # (a name given twice is refused when the micrographs are read)
    given = {n: p for n, p in zip(names, micrographs) if names.count(n) == 1}
    seen: dict[str, str] = {}
    names_of_sets = [*SETS, *(k for k in files if k not in SETS)]  # `spa extract`: picks
    for name in names_of_sets:  # a file given twice would count its boxes twice
        for path in files.get(name, []):
            key = os.path.realpath(path)
            if key in seen:
                raise InputFileError(
                    f"{path} is given twice (as {seen[key]} and as {name} boxes); give each "
                    "box file once, in the set it belongs to."
                    if seen[key] != name
                    else f"{path} is given twice; give each box file once."
                )
            seen[key] = name
    sets, sizes = {}, []
    for name in names_of_sets:
        tables = [
            match_micrographs(read_boxes(path), names, leave_out=others == "leave out")
            for path in files.get(name, [])
        ]
        table = (
            pd.concat(tables, ignore_index=True)
            if tables
            else pd.DataFrame(columns=["micrograph", "x", "y"])
        )
        if "box" in table:
            sizes += table["box"].dropna().tolist()
        sets[name] = table
    everything = pd.concat(list(sets.values()), ignore_index=True)
    check_one_folder_per_name(everything)
    check_named_micrographs(everything, given)
    if box_px is None:
        if not sizes:
            raise ParameterError(
                "the box files give no box size; pass `box` (pixels, about "
                "1.5 particle diameters).",
                parameter="box",
            )
        if max(sizes) - min(sizes) > 1:
            raise ParameterError(
                f"the .box files give boxes of {min(sizes):g} to {max(sizes):g} pixels; pass "
                "`box` (pixels) to use one size for all.",
                parameter="box",
            )
        box_px = int(round(float(np.median(sizes))))
    _check_box_fits(micrographs, int(box_px))
    return distinct_boxes(sets, int(box_px)), int(box_px)


def _check_box_fits(micrographs: list, box_px: int) -> None:
    """Refuse a box larger than a micrograph, from the micrographs' headers, before the
    sets are compared (a trial's --box 4096 was told its boxes lay in two sets: boxes a
    tenth of that apart count as one)."""
    from ..errors import TomoscribeError
    from ..io import read_volume

    for path in micrographs:
        try:
            shape = read_volume(path).shape
        except (TomoscribeError, OSError, ValueError):
            continue  # refused in its own sentence when the micrographs are read
        ny, nx = shape[-2:]
        if box_px > min(ny, nx):
            raise ParameterError(
                f"the {box_px}-pixel box is larger than micrograph {Path(path).name} "
                f"({nx}×{ny}); give a smaller `box`.",
                parameter="box",
            )


#: Boxes of one micrograph closer than this share of the box (at least 2 pixels) are
#: one box drawn twice.
SAME_BOX_SHARE = 0.1


def _same_boxes(first: pd.DataFrame, second: pd.DataFrame, reach: float) -> list[tuple]:
    """Pairs (i, j) of rows of ``first`` and ``second`` on one micrograph within
    ``reach`` pixels (``first is second``: pairs i < j)."""
    from scipy.spatial import cKDTree

    found = []
    for micrograph, rows in first.groupby("micrograph", dropna=False).indices.items():
        others = np.flatnonzero((second["micrograph"] == micrograph).to_numpy())
        if len(others) == 0:
            continue
        tree = cKDTree(second[["x", "y"]].to_numpy(float)[others])
        for i, near in zip(
            rows, tree.query_ball_point(first[["x", "y"]].to_numpy(float)[rows], reach)
        ):
            found += [(i, int(others[j])) for j in near if first is not second or others[j] > i]
    return found


def distinct_boxes(sets: dict[str, pd.DataFrame], box_px: int) -> dict[str, pd.DataFrame]:
    """The sets with each box drawn twice in one set counted once, said; a box in two
    of the three sets is refused (a trial: the good boxes given again as the bad set,
    and a set of 5 copies of 3 boxes counted as 15, went unsaid; the box held out to set
    the threshold could be a copy of a training box)."""
    import warnings

    reach = max(2.0, SAME_BOX_SHARE * box_px)
    for k, first in enumerate(SETS):  # refused before anything is said of the sets
        for second in SETS[k + 1 :]:
            a, b = sets.get(first), sets.get(second)
            if a is None or b is None or not len(a) or not len(b):
                continue
            both = _same_boxes(a, b, reach)
            if both:
                row = a.iloc[both[0][0]]
                raise AnnotationError(
                    f"the box at ({row.x:g}, {row.y:g}) on micrograph {row.micrograph} is "
                    f"both a {first} and a {second} box ({len(both)} such); a box belongs "
                    "to one set: check which files went to --good, --background and --bad."
                )
    out = dict(sets)
    for name in SETS:
        table = sets.get(name)
        if table is None or len(table) < 2:
            continue
        repeats = sorted({j for _, j in _same_boxes(table, table, reach)})
        if repeats:
            warnings.warn(
                f"{len(repeats)} of the {len(table)} {name} boxes repeat another within "
                f"{reach:g} pixels (one box drawn twice); each is counted once.",
                stacklevel=3,
            )
            out[name] = table.drop(index=table.index[repeats]).reset_index(drop=True)
    return out


def trainset_summary(path: str | os.PathLike) -> list[str]:
    """What ``tomoscribe info`` says of a picking training set (read and checked as
    ``spa train`` reads it): its boxes per set and micrographs, box and pixel size."""
    record = load_trainset(path)["record"]
    counts = record.get("counts") or {}
    names = record.get("micrographs") or []
    shown = ", ".join(names[:5]) + (f", … {len(names) - 5} more" if len(names) > 5 else "")
    return [
        f"{path}: a picking training set (`spa boxes`)",
        "  boxes: "
        + ", ".join(f"{counts.get(name, 0)} {name}" for name in SETS)
        + f" on {len(names)} micrograph{'s' * (len(names) != 1)} ({shown})",
        f"  box: {record['box_px']} px at {float(record['pixel_size_A']):.4g} Å, "
        f"micrographs shrunk {record['shrink']}×",
    ]
