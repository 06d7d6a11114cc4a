"""Picks scored against simulated truth (``tomoscribe simulate micrographs``).

* A pick is a **true positive** when it lies within ``radius`` (default a quarter of
  the particle diameter) of an isolated ("good") particle not yet claimed by a better
  pick (picks are taken best score first).  **Precision** = true positives / picks;
  **recall** = true positives / isolated particles.
* An **aggregate** counts as picked when any pick lies within half a diameter of one
  of its particles; a **contamination blob** when any pick lies on it (the mask grown
  by a quarter diameter).  The figures are the fractions left unpicked.
* Picks on the carbon (mask −1) are counted too.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import scipy.ndimage
from scipy.spatial import cKDTree


def score_micrograph(
    picks: pd.DataFrame,
    truth: pd.DataFrame,
    masks: np.ndarray,
    diameter_px: float,
    radius_px: float | None = None,
) -> dict:
    """Counts for one micrograph: picks, true positives, isolated particles, aggregates
    (picked / all), blobs (picked / all), picks on carbon.

    ``truth`` has ``x``, ``y``, ``class`` (good or aggregated), ``aggregate``; ``masks``
    is the int16 mask image (blob id > 0, carbon −1).
    """
    radius = diameter_px / 4 if radius_px is None else radius_px
    picks = picks.sort_values("score", ascending=False) if "score" in picks else picks
    xy = picks[["x", "y"]].to_numpy(float).reshape(-1, 2)
    good = truth[truth["class"] == "good"][["x", "y"]].to_numpy(float).reshape(-1, 2)
    claimed = np.zeros(len(good), bool)
    tree = cKDTree(good) if len(good) else None
    tp = 0
    for p in xy:
        if tree is None:
            break
        for k in sorted(tree.query_ball_point(p, radius), key=lambda k: np.hypot(*(good[k] - p))):
            if not claimed[k]:
                claimed[k] = True
                tp += 1
                break
    aggregated = truth[truth["class"] == "aggregated"]
    picked_aggregates = set()
    if len(xy) and len(aggregated):
        pick_tree = cKDTree(xy)
        for row in aggregated.itertuples(index=False):
            if pick_tree.query_ball_point((row.x, row.y), diameter_px / 2):
                picked_aggregates.add(row.aggregate)
    blobs = np.clip(masks, 0, None)
    grown = scipy.ndimage.grey_dilation(blobs, size=2 * int(round(radius)) + 1)
    j = np.clip(np.rint(xy[:, 1]).astype(int), 0, masks.shape[0] - 1)
    i = np.clip(np.rint(xy[:, 0]).astype(int), 0, masks.shape[1] - 1)
    hit_blobs = set(grown[j, i][grown[j, i] > 0].tolist())
    return {
        "picks": len(xy),
        "true_positives": tp,
        "isolated": len(good),
        "aggregates": int(aggregated["aggregate"].nunique()),
        "aggregates_picked": len(picked_aggregates),
        "blobs": int(blobs.max()) if blobs.size else 0,
        "blobs_picked": len(hit_blobs),
        "picks_on_carbon": int((masks[j, i] == -1).sum()),
    }


def summarise(counts: list[dict]) -> dict:
    """Precision, recall, F1 and fractions left unpicked over many micrographs."""
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    if not total:
        return {}
    precision = total["true_positives"] / max(1, total["picks"])
    recall = total["true_positives"] / max(1, total["isolated"])
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    return {
        **total,
        "micrographs": len(counts),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "aggregates_unpicked": 1 - total["aggregates_picked"] / max(1, total["aggregates"]),
        "blobs_unpicked": 1 - total["blobs_picked"] / max(1, total["blobs"]),
    }


def score_simulated(truths: dict, names: list[str], pick) -> dict:
    """Scores (:func:`summarise`) of ``pick(name, image)``, a picks table (``x``, ``y``
    in pixels, ``score``), over the micrographs ``names`` of ``truths``: simulated
    micrographs in memory as :func:`tomoscribe.simulate.micrographs.simulate_micrograph_set`
    gives them (``image``, ``particles``, ``contamination``, ``carbon``,
    ``diameter_px``)."""
    counts = []
    for name in names:
        truth = truths[name]
        masks = truth["contamination"].astype(np.int16)
        masks[truth["carbon"]] = -1
        counts.append(
            score_micrograph(
                pick(name, truth["image"]), truth["particles"], masks, truth["diameter_px"]
            )
        )
    return summarise(counts)


def read_truth(folder) -> tuple[pd.DataFrame, dict]:
    """The truth of a ``simulate micrographs`` folder: particle table (``micrograph``,
    ``x``, ``y``, ``class``, ``aggregate``) and its record (``truth.json``)."""
    import json
    from pathlib import Path

    import starfile

    from ..errors import InputFileError
    from ..io.boxfiles import micrograph_name

    folder = Path(folder)
    if not (folder / "truth.json").is_file():  # said plainly, not as an errno
        raise InputFileError(
            f"{folder} holds no truth.json, so it is not a folder written by `simulate "
            "micrographs`; give the folder that command wrote."
        )
    try:
        record = json.loads((folder / "truth.json").read_text())
        star = starfile.read(folder / "truth.star")
        table = pd.DataFrame(
            {
                "micrograph": star["rlnMicrographName"].map(micrograph_name),
                "x": star["rlnCoordinateX"],
                "y": star["rlnCoordinateY"],
                "class": star["tsClass"],
                "aggregate": star["tsAggregate"],
            }
        )
    except (OSError, ValueError, KeyError) as err:
        raise InputFileError(
            f"{folder} is not a folder written by `simulate micrographs` ({err})."
        ) from err
    return table, record


def score_against_folder(picks_path, folder, output=None) -> dict:
    """Scores (:func:`summarise`) of a picks file against a simulated folder's truth,
    over the micrographs that were picked: those its provenance record (``NAME.json``,
    written by ``spa pick``/``ncc``) lists as inputs, so that a micrograph without any
    pick counts its particles as missed, and those the picks name; written to
    ``output`` (JSON) when given.  Without a record only the micrographs the picks name
    are known (``result["micrographs_from"]`` says which)."""
    import json
    from pathlib import Path

    from ..io import read_volume
    from ..io.boxfiles import check_pixel_size, match_micrographs, micrograph_name, read_boxes
    from ..outputs import atomic_path, read_provenance

    truth, record = read_truth(folder)
    names = sorted(truth["micrograph"].unique())
    picks = match_micrographs(
        read_boxes(picks_path),
        names,
        f"the micrographs of {Path(folder).name}",
        "score picks made on that simulation's micrographs",
    )
    pixel_size_A = float(record.get("params", {}).get("pixel_size_A") or 0)
    if pixel_size_A > 0:  # every truth.json gives it; an older one might not
        picks = check_pixel_size(picks, pixel_size_A)
    record_of_picks = read_provenance(picks_path) or {}
    _check_same_micrographs(picks, Path(folder), picks_path, record_of_picks)
    listed = {micrograph_name(i.get("path", "")) for i in record_of_picks.get("inputs", [])}
    picked = sorted(set(picks["micrograph"]) | (listed & set(names)))
    counts = []
    for name in picked:
        masks = read_volume(Path(folder) / "masks" / f"{name}.mrc").load(np.float32)[0]
        counts.append(
            score_micrograph(
                picks[picks["micrograph"] == name],
                truth[truth["micrograph"] == name],
                np.rint(masks).astype(np.int16),
                record["particle_diameter_px"],
            )
        )
    result = summarise(counts)
    result["micrographs"] = len(picked)
    result["micrographs_from"] = "provenance" if listed & set(names) else "picks"
    paths = picks["named"].astype(str).map(os.path.dirname) if "named" in picks else []
    if not record_of_picks and not any(paths):  # nothing ties them to the images
        _warn_if_unrelated(result, picks_path, folder)
    if output is not None:
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
    return result


#: Picks this many or more of which almost none (:data:`UNRELATED_PRECISION`) lies on a
#: particle of the truth are said to be of other micrographs, perhaps.
UNRELATED_PICKS = 10
UNRELATED_PRECISION = 0.05


def _warn_if_unrelated(result: dict, picks_path, folder) -> None:
    """Say when almost no pick lies on a true particle, of a file that names no
    micrograph and has no record (a loose ``.box``, checked against the folder's images
    by nothing: a trial's, from another simulation, scored 0.000 unsaid; picks that are
    checked may just be poor)."""
    import warnings
    from pathlib import Path

    if result.get("picks", 0) >= UNRELATED_PICKS and result["precision"] < UNRELATED_PRECISION:
        warnings.warn(
            f"{result['precision']:.0%} of the {result['picks']} picks of "
            f"{Path(picks_path).name} lie on a particle of {Path(folder).name}'s truth: "
            "were they picked on these micrographs, at this pixel size?",
            stacklevel=3,
        )


def _check_same_micrographs(picks, folder, picks_path, record_of_picks: dict) -> None:
    """Refuse picks made on another folder's micrograph of the same name: a picks file
    names each micrograph's path (``rlnMicrographName``, from the folder ``spa pick``
    ran in); where that path exists here, or else the path its provenance record gives
    the micrograph (absolute: a relative name does not resolve from another folder,
    which let a trial score seed-1 picks against seed-2 truth), and holds another image
    than the truth folder's ``micrographs/NAME.mrc`` (a copy is the same image), scores
    would compare two images.  A micrograph found neither way is not checked.
    """
    from pathlib import Path

    from ..errors import InputFileError
    from ..io.boxfiles import micrograph_name, same_image

    if "named" not in picks:
        return
    recorded = {
        micrograph_name(i["path"]): Path(i["path"])
        for i in record_of_picks.get("inputs", [])
        if isinstance(i, dict) and i.get("path")
    }
    for name, given in picks[["micrograph", "named"]].drop_duplicates().itertuples(index=False):
        ours = folder / "micrographs" / f"{name}.mrc"
        picked = Path(str(given))
        if not picked.is_file() and name in recorded:
            picked = recorded[name]
        if picked.is_file() and ours.is_file() and not same_image(picked, ours):
            raise InputFileError(
                f"{picks_path} holds picks on {given}, which is not {ours}; score picks "
                "against the truth folder of the micrographs they were made on."
            )
