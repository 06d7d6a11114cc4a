"""Subtomogram mining workflows on files: what ``tomoscribe classify …`` commands do, as
calls a script can make.

- :func:`load_subtomograms`, :func:`check_voxel_size`: a dataset's (a zarr store or a
  STAR file listing subtomograms) volumes, labels, class names and voxel size, checked
  against a model's;
- :func:`reference_maps`: known structures (bundled templates or map files) boxed like
  the subtomograms;
- :func:`cluster_files`: k-means over-partitioning of a feature store, its scores and
  a 2D map;
- :func:`mine_files`: autoencoder pattern mining (codes, k-means, decoded centres);
- :func:`discover_files`: reference-free classes inside chosen clusters of a feature
  store, their averages, FSC-0.5 distances to references, ``discover.json`` and a
  gallery.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..core.device import resolve_device
from ..errors import InvalidDataError, ParameterError, VoxelSizeMismatchError
from ..io import read_volume, write_volume
from ..outputs import atomic_path, check_outputs, output_folder, sidecar_path, write_provenance
from ..simulate.subtomograms import load_dataset, template_in_box
from ..simulate.template_library import list_templates, load_template
from ..volume import Volume
from .contrast import dataset_contrast, matched_contrast
from .discover import DiscoverParams, match_references, reference_free_classes
from .featurefile import load_features
from .wedge_axes import warn_of_other_wedge

#: Map file endings accepted as references (anything else is a template name).
MAP_SUFFIXES = (".mrc", ".map", ".rec", ".zarr", ".tif", ".tiff")


def load_subtomograms(path: Path):
    """Volumes (N, n, n, n) float32, labels (N,) int64 (−1: unknown), class names and voxel
    size (Å, None when unrecorded) of a dataset: a simulator's store (zarr) or a STAR
    file listing subtomograms (:mod:`tomoscribe.classify.particleset`)."""
    from .particleset import is_star_dataset, load_star_subtomograms

    if is_star_dataset(path):
        return load_star_subtomograms(path)
    data = load_dataset(path)
    volumes = np.asarray(data["volumes"][...], dtype=np.float32)
    labels = np.asarray(data["labels"][...], dtype=np.int64)
    voxel = float(data.get("params", {}).get("voxel_size_A", 0.0)) or None
    if len(volumes) == 0:
        raise InvalidDataError(f"{path} holds no subtomograms.")
    return volumes, labels, list(data["class_names"]), voxel


def check_box(dataset: Path, volumes: np.ndarray, model_box: int, what: str) -> None:
    """Refuse subtomograms whose box is not the model's, before anything is said of
    them (a trial: a contrast warning came before this refusal)."""
    if volumes.shape[1] != model_box:
        raise InvalidDataError(
            f"the {what} takes {model_box}³ subtomograms but {dataset} holds "
            f"{volumes.shape[1]}³; cut them again in {model_box}³ boxes (extract's --box "
            f"{model_box})."
        )


def check_voxel_size(dataset: Path, voxel: float | None, model_voxel: float, what: str) -> None:
    """Refuse a dataset whose voxel size differs from the model's by more than 5%."""
    if voxel and abs(voxel / model_voxel - 1) > 0.05:
        raise VoxelSizeMismatchError(
            f"{dataset} has {voxel:g} Å voxels but the {what} was "
            f"trained at {model_voxel:g} Å; rescale the "
            "subtomograms first."
        )


def recorded_tilt_ranges(dataset: Path) -> list[tuple[float, float]]:
    """The distinct tilt ranges (degrees) a dataset records: the one of a zarr store, or
    those of a STAR file's rows (several when it lists subtomograms of tilt series of
    different ranges); empty when it records none."""
    import pandas as pd

    from ..io.particles import read_particles
    from ..io.provenance import TILT_COLUMNS, recorded_acquisition

    try:
        tilt = recorded_acquisition(dataset).tilt_range_deg
        return [] if tilt is None else [tuple(tilt)]
    except InvalidDataError:  # a particle file of several tilt ranges
        table = read_particles(dataset)
        rows = table[list(TILT_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        rows = rows[np.isfinite(rows).all(axis=1)]
        return [tuple(r) for r in np.unique(rows, axis=0).tolist()]


def trained_acquisition(dataset: Path, voxel: float | None) -> dict:
    """``{"acquisition": record}`` of a dataset a model is trained on, to keep in the
    model's metadata and provenance: its voxel size (Å) and tilt range, the latter only
    where every subtomogram records the same one (a set pooled from tilt series of
    different ranges trains a model no range is checked against); ``{}`` when nothing
    is recorded."""
    from ..core.acquisition import Acquisition

    ranges = recorded_tilt_ranges(dataset)
    tilt = ranges[0] if len(ranges) == 1 else None
    record = Acquisition(tilt, voxel)
    return {"acquisition": record.as_dict()} if record.known else {}


def check_tilt_range(dataset: Path, model_metadata: dict, what: str) -> None:
    """Refuse a dataset any of whose recorded tilt ranges differs from the one the
    model's training data recorded by more than
    :data:`~tomoscribe.core.acquisition.MODEL_TILT_TOLERANCE_DEG` at either end: those
    subtomograms miss another wedge of Fourier space than the ones the model learned
    from, and its answers on them would be silently worse.  Nothing is
    checked when either side records no tilt range (models and datasets made before
    the record, models trained on several ranges).

    Parameters
    ----------
    dataset : path of the dataset (zarr store or STAR file)
    model_metadata : the model's metadata (its ``acquisition`` record, if any)
    what : the model's kind, for the message ("classifier", "autoencoder", ...)

    Raises
    ------
    InvalidDataError
        A recorded tilt range differs.
    """
    from ..core.acquisition import MODEL_TILT_TOLERANCE_DEG, Acquisition, same_tilt_range

    trained = Acquisition.from_dict((model_metadata or {}).get("acquisition")).tilt_range_deg
    if trained is None:
        return
    for tilt in recorded_tilt_ranges(dataset):
        if not same_tilt_range(trained, tilt, MODEL_TILT_TOLERANCE_DEG):
            raise InvalidDataError(
                f"{dataset} records the tilt range {tilt[0]:g}…{tilt[1]:g}° but the {what} "
                f"was trained on subtomograms of {trained[0]:g}…{trained[1]:g}°; their "
                "missing wedges differ, so train one on data of this tilt range."
            )


def dataset_fingerprint(volumes: np.ndarray) -> str:
    """SHA-256 (hex) of a dataset's subtomograms as float32: what a feature store
    records of the dataset it was made from (labels left out: relabelling a dataset
    keeps its clusters valid)."""
    import hashlib

    digest = hashlib.sha256(str(np.shape(volumes)).encode())
    for volume in volumes:  # one subtomogram at a time: no copy of the whole dataset
        digest.update(memoryview(np.ascontiguousarray(volume, dtype=np.float32)).cast("B"))
    return digest.hexdigest()


#: Bytes of each subtomogram's SHA-256 kept by :func:`subtomogram_digests` (8: a chance
#: match between two of a million subtomograms about 1 in 3·10⁷).
DIGEST_BYTES = 8


def subtomogram_digests(volumes: np.ndarray) -> str:
    """The first :data:`DIGEST_BYTES` of each subtomogram's SHA-256 (as float32),
    concatenated and base64-encoded: what a classifier records of the subtomograms it
    trained on, so that ``evaluate`` finds them in any order, subset or mixture (a
    trial's shuffled training set scored 0.863 as "not training data": the whole
    dataset's fingerprint had changed)."""
    import base64

    return base64.b64encode(b"".join(digest_of(v) for v in volumes)).decode("ascii")


def digest_of(volume: np.ndarray) -> bytes:
    """The first :data:`DIGEST_BYTES` of one subtomogram's SHA-256 (as float32)."""
    import hashlib

    data = memoryview(np.ascontiguousarray(volume, dtype=np.float32)).cast("B")
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def digests_of(recorded: str) -> set[bytes]:
    """The set of digests :func:`subtomogram_digests` encoded (empty where damaged)."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(recorded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        return set()
    return {raw[i : i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES)}


def check_same_dataset(dataset: Path, volumes: np.ndarray, store: Path, record: dict) -> None:
    """Refuse a dataset that is not the one a feature store was made from: its
    fingerprint (:func:`dataset_fingerprint`) differs from the recorded one, or, for a
    store that records none, its path differs from the recorded path.

    Raises
    ------
    InvalidDataError
        The dataset is another one.
    """
    source = record.get("dataset")
    recorded = record.get("dataset_sha256")
    if recorded is not None and recorded != dataset_fingerprint(volumes):
        raise InvalidDataError(
            f"{store} was clustered from {source or 'another dataset'}, not {dataset} "
            "(their subtomograms differ); give the dataset it was made from."
        )
    if recorded is None and source is not None and Path(source) != dataset.resolve():
        raise InvalidDataError(
            f"{store} records that it was clustered from {source}, not {dataset}, and no "
            "fingerprint to compare their subtomograms; give that dataset, or run "
            "`classify features` and `cluster` again on this one."
        )


def labels_or_none(labels: np.ndarray) -> np.ndarray | None:
    """Labels of a dataset, or None for an unlabelled one (all −1)."""
    return None if (labels < 0).all() else labels


def reference_maps(names: list[str], voxel_A: float, box: int) -> dict[str, np.ndarray]:
    """Reference maps boxed like the subtomograms (``box``³ at ``voxel_A`` Å): bundled
    template names or map files (keyed by file stem).

    Raises
    ------
    ParameterError
        A name that is neither a map file nor a template, two references of one name
        (``a/x.mrc`` and ``b/x.mrc``: one would replace the other), or a structure larger
        than the subtomograms' box.
    InvalidDataError
        A map file without a voxel size.
    """
    out = {}
    for name in names:
        path = Path(name)
        if path.suffix.lower() in MAP_SUFFIXES:
            key, volume = path.stem, read_volume(path)
            if not volume.voxel_size_A or not volume.voxel_size_A[0] > 0:
                raise InvalidDataError(f"{path} has no voxel size; set it in the header.")
        elif name in list_templates():
            key, volume = name, load_template(name)
        else:
            raise ParameterError(
                f"reference {name!r} is neither a map file nor a bundled "
                f"template ({', '.join(list_templates())})."
            )
        if key in out:
            raise ParameterError(
                f"two references are called {key}; give each structure once, under its "
                "own file name."
            )
        try:
            out[key] = template_in_box(volume, voxel_A, box)
        except ParameterError:
            raise ParameterError(
                f"reference {name} is larger than the subtomograms' {box}³ box at "
                f"{voxel_A:g} Å, so it cannot be compared with their averages; give a "
                "smaller structure or cut larger subtomograms."
            ) from None
    return out


def discover_files(
    dataset: Path,
    clustered: Path,
    output: Path,
    params: DiscoverParams,
    clusters: list[int] | None = None,
    references: list[str] | None = None,
    device: str = "auto",
    say: Callable[[str], None] = lambda message: None,
    tilt_range_deg: tuple[float, float] | None = None,
) -> dict:
    """Class averages inside clusters, without a reference, into folder ``output``.

    Each chosen cluster of the feature store ``clustered`` (default: the largest) is
    classified and averaged with missing-wedge-aware alignment (``dataset`` must be
    the one the store was made from: :func:`check_same_dataset`); writes
    ``cluster{c:03d}_class{k}.mrc``, ``discover.json`` (members, sizes, FSC-0.5
    distances (nm) to every reference, true classes where known and how many members
    are unlabelled), ``gallery.png`` and the folder's provenance record.  ``params``'s
    tilt range is replaced by
    ``tilt_range_deg``, else the one the dataset records, else ±60° (``say`` is told
    which).  Returns the ``discover.json`` record.
    """
    from dataclasses import replace

    from ..io.provenance import tilt_range_for

    check_outputs([sidecar_path(output)], inputs=[dataset, clustered])  # before the work
    tilt = tilt_range_for([dataset], tilt_range_deg)
    params = replace(params, tilt_range_deg=tilt.deg)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    if voxel is None:
        raise InvalidDataError(f"{dataset} records no voxel size.")
    table, record = load_features(clustered)
    if "clusters" not in table:
        raise InvalidDataError(f"{clustered} has no clusters; run `classify cluster` first.")
    check_same_dataset(dataset, volumes, clustered, record)
    dark, contrast_said = _protein_dark(dataset, volumes, params.protein_dark)
    params = replace(params, protein_dark=dark)
    if len(table["clusters"]) != len(volumes):
        raise InvalidDataError(
            f"{clustered} clusters {len(table['clusters'])} subtomograms "
            f"but {dataset} holds {len(volumes)}; use the same dataset."
        )
    # each cluster once, in the order given (`--cluster 3 --cluster 3` is one cluster)
    chosen = list(dict.fromkeys(int(c) for c in clusters or [])) or [
        int(np.bincount(table["clusters"]).argmax())
    ]
    missing = [c for c in chosen if not (table["clusters"] == c).any()]
    if missing:
        raise ParameterError(f"cluster(s) {missing} are empty or do not exist.")
    refs = reference_maps(list(references or []), voxel, volumes.shape[1])
    params.validate()
    say(tilt.describe())  # once the inputs are known to fit (a trial: said, then refused)
    say(contrast_said)
    device, truth = resolve_device(device).type, labels_or_none(labels)
    result = {"dataset": str(dataset.resolve()), "params": params.__dict__, "clusters": []}
    gallery = []
    with output_folder(output, step="classify discover") as tmp:
        for c in chosen:
            members = np.flatnonzero(table["clusters"] == c)
            entry, averages = _classes_of_cluster(
                volumes, members, c, truth, names, refs, voxel, params, device, tmp, say
            )
            result["clusters"].append(entry)
            gallery.append(([f"cluster {c} class {k}" for k in range(len(averages))], averages))
        (tmp / "discover.json").write_text(json.dumps(result, indent=2) + "\n")
        if refs:
            gallery.append((list(refs), np.stack(list(refs.values()))))
        from .figures import plot_gallery

        plot_gallery(gallery, tmp / "gallery.png")
    write_provenance(
        output,
        "classify discover",
        {**params.__dict__, "clusters": chosen},
        [],
        extra={"dataset": str(dataset.resolve()), "features": str(clustered.resolve())},
    )
    return result


def _protein_dark(dataset: Path, volumes: np.ndarray, given: bool | None) -> tuple[bool, str]:
    """Whether ``dataset``'s subtomograms show protein dark, and a sentence saying so and
    how it is known: as ``given``, else as extracted or measured
    (:func:`~tomoscribe.classify.contrast.contrast_and_source`), else dark, as the
    microscope records it; a given contrast the subtomograms contradict is said."""
    from .contrast import contrast_and_source

    found, source = contrast_and_source(dataset, volumes)
    if given is None:
        dark = found != "bright"
        how = source if found else "unknown, so taken as recorded by a microscope"
        return dark, f"protein {'dark' if dark else 'bright'} in the subtomograms ({how})"
    if found is not None and (found == "dark") != given:
        warnings.warn(
            f"{dataset}'s subtomograms show protein {found} ({source}), against the "
            f"--protein-{'dark' if given else 'bright'} given, which is used: the averages "
            "will show protein dark, unlike the references.",
            stacklevel=3,
        )
    return given, f"protein {'dark' if given else 'bright'} in the subtomograms (as given)"


def _classes_of_cluster(
    volumes, members, c, truth, names, refs, voxel, params, device, folder: Path, say
) -> tuple[dict, np.ndarray]:
    """Reference-free classes of cluster ``c`` (subtomograms ``members``): averages
    written to ``folder``, the cluster's ``discover.json`` entry."""
    found = reference_free_classes(
        volumes[members], voxel, params, device, say=lambda m: say(f"cluster {c}: {m}")
    )
    matches = match_references(found["averages"], refs, voxel)
    entry = {"cluster": c, "members": members.tolist(), "classes": []}
    for k, average in enumerate(found["averages"]):
        write_volume(folder / f"cluster{c:03d}_class{k}.mrc", Volume(average, voxel))
        in_class = members[found["assignment"] == k]
        item = {
            "class": k,
            "size": int(found["sizes"][k]),
            "half_set_fsc05_nm": float(found["half_set_fsc05_nm"][k]),
            "members": in_class.tolist(),
            **matches[k],
        }
        halves = item["half_set_fsc05_nm"]
        if not np.isfinite(halves):  # a class of one: no halves (JSON has no NaN)
            item["half_set_fsc05_nm"] = None
        elif item.get("fsc05_nm") is not None:  # does the reference differ where they agree?
            item["within_class_detail"] = bool(item["fsc05_nm"] <= halves)
        if truth is not None:
            known = truth[in_class][truth[in_class] >= 0]
            item["true_classes"] = {
                names[i]: int(v)
                for i, v in enumerate(np.bincount(known, minlength=len(names)))
                if v
            }
            item["unlabelled"] = int(len(in_class) - len(known))
        entry["classes"].append(item)
        truth_phrase = (  # a trial: mixed classes named as one, their labels unshown
            "; labelled " + ", ".join(f"{n} {v}" for n, v in item["true_classes"].items())
            if item.get("true_classes")
            else ""
        )
        say(
            f"cluster {c} class {k}: {item['size']} subtomograms"
            + _match_phrase(item)
            + truth_phrase
        )
    return entry, found["averages"]


def _match_phrase(item: dict) -> str:
    """How a class average compares with the references, for the report."""
    match = item.get("match")
    likeness = (
        f", coarser than the {item['half_set_fsc05_nm']:.1f} nm to which the class's two "
        "halves agree: a likeness of size and shape, not the same structure"
        if match in ("unique", "tie") and not item.get("within_class_detail", True)
        else ""
    )
    if match == "unique":
        others = {n: v for n, v in item.get("all", {}).items() if n != item["best"]}
        runner = min(others, key=others.get) if others else None
        nearby = f", next {runner} at {others[runner]:.1f} nm" if runner else ""
        return f", closest {item['best']} at {item['fsc05_nm']:.1f} nm" + nearby + likeness
    if match == "tie":
        return (
            f", {' and '.join(item['tied'])} equally close at {item['fsc05_nm']:.1f} nm "
            "(no closest reference)" + likeness
        )
    if match == "none":
        return ", matches no reference (no FSC crosses 0.5 finer than chance)"
    return ""


def scores_path(output: str | os.PathLike) -> Path:
    """Where ``classify cluster`` writes the scores of clusters stored at ``output``:
    ``OUTPUT.scores.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".scores.json")


def check_distinct(paths) -> None:
    """Refuse one file named for two of a command's outputs (the later write would
    replace the earlier).

    Raises
    ------
    OutputError
        Two of ``paths`` are one file.
    """
    from ..errors import OutputError

    seen = {}
    for path in paths:
        key = Path(path).resolve()  # no expanduser: a name may begin with ~ (~draft.mrc)
        if key in seen:
            raise OutputError(f"{seen[key]} and {path} are one file; give them different names.")
        seen[key] = path


def cluster_files(
    feature_store: Path,
    output: Path,
    k: int,
    seed: int = 0,
    plot: Path | None = None,
    embedding: str = "auto",
    colour: str = "truth",
) -> tuple[np.ndarray, dict | None]:
    """k-means over-partitioning of a feature store into ``k`` clusters, written with the
    features to ``output`` (and the scores against the true classes, where known, to
    ``OUTPUT.scores.json``); with ``plot``, a t-SNE/UMAP map (PNG) coloured by the
    ``truth``, the ``predicted`` classes or the ``cluster``; each with its provenance
    record (``OUTPUT.json``, ``PLOT.json``).  Returns the clusters and
    the scores (None without true classes).

    Every file it writes is checked before any work: none may be an input or an
    input's record, nor a file tomoscribe did not write (``check_outputs``).

    Raises
    ------
    OutputError
        An output that must not be written (above), or two outputs that are one file.
    """
    from ..outputs import check_outputs, sidecar_path
    from .cluster import cluster_scores, embed_2d, over_partition
    from .featurefile import save_features

    output = Path(output)
    written = [output, sidecar_path(output), scores_path(output)]
    if plot is not None:
        written += [Path(plot), sidecar_path(plot)]
    check_distinct(written)
    check_outputs(written, inputs=[feature_store])
    table, record = load_features(feature_store)
    if colour not in ("truth", "predicted", "cluster"):
        raise ParameterError(
            f"`colour` must be truth, predicted or cluster, got {colour!r}.", parameter="colour"
        )
    clusters, _ = over_partition(table["features"], k, seed)
    table["clusters"] = clusters
    names = record.get("class_names", [])
    truth = labels_or_none(table["labels"]) if "labels" in table else None
    scores = cluster_scores(truth, clusters, names) if truth is not None else None
    if plot is not None:
        from .figures import plot_embedding

        if colour == "truth" and truth is None:
            raise InvalidDataError(
                f"{feature_store} has no true classes; use `colour` predicted or cluster.",
                parameter="colour",
            )
        if colour == "predicted" and "predicted" not in table:
            raise InvalidDataError(
                f"{feature_store} has no predictions (RIF features); use "
                "`colour` truth or cluster.",
                parameter="colour",
            )
        xy, method = embed_2d(table["features"], embedding, seed)
        if colour == "cluster":
            index, legend = clusters, [f"cluster {c}" for c in range(k)]
        else:
            index = truth if colour == "truth" else table["predicted"]
            legend = names if colour == "truth" else record.get("model_classes", names)
        source = Path(record.get("source", "")).name
        plot_embedding(
            xy, index, legend, f"{method} of {source} features, coloured by {colour}", plot
        )
    record = {**record, "clusters": {"k": k, "seed": seed, "scores": scores}}
    save_features(output, table, record)
    settings = {"k": k, "seed": seed, "embedding": embedding, "colour": colour}
    source = {"features": str(Path(feature_store).resolve()), "dataset": record.get("dataset")}
    write_provenance(output, "classify cluster", settings, [], extra={**source, "scores": scores})
    if plot is not None:
        write_provenance(plot, "classify cluster", settings, [], extra=source)
    if scores is not None:
        with atomic_path(scores_path(output)) as tmp:
            tmp.write_text(json.dumps(scores, indent=2) + "\n")
    return clusters, scores


def _shown_protein_bright(found: dict, learned: str | None) -> str:
    """Turn ``found``'s decoded centres and cluster averages protein-bright (in place)
    where the subtomograms the autoencoder was fed (``learned``: their contrast, or
    None) show protein dark; returns how they show it ("protein bright", or "as the
    subtomograms" where that is unknown)."""
    if learned == "dark":
        found["decoded_centres"] = -found["decoded_centres"]
        found["cluster_averages"] = -found["cluster_averages"]
    return "protein bright" if learned in ("dark", "bright") else "as the subtomograms"


def _warn_of_codes_holding_nothing(model, dataset, autoencoder, volumes, codes, device) -> None:
    """Say when the autoencoder decodes the mined subtomograms no better than their set's
    mean box (:func:`tomoscribe.classify.model_workflow.mean_box_loss`): its codes hold
    nothing of them, and their clusters are no patterns.  A trial mined with an
    autoencoder that `train` had said learned nothing (loss 0.987 against 0.974): exit 0,
    its four decoded centres one image (correlations 0.96–0.999), purity 0.53."""
    from .autoencoder import reconstruction_error
    from .model_workflow import mean_box_loss

    loss = float(reconstruction_error(autoencoder, volumes, device, codes).mean())
    baseline = mean_box_loss(volumes)
    if loss >= baseline:
        warnings.warn(
            f"{Path(model).name} decodes {Path(dataset).name}'s subtomograms no better than "
            f"as their mean box (loss {loss:.4f} against {baseline:.4f}): its codes hold "
            "nothing of them, so its clusters are not patterns; train it longer "
            "(--epochs) or on subtomograms like these.",
            stacklevel=3,
        )


def mine_files(
    model: Path, dataset: Path, output: Path, clusters: int, seed: int = 0, device: str = "auto"
) -> tuple[dict, dict | None]:
    """k-means on an autoencoder's codes of a dataset, into folder ``output``: the codes
    (``codes.zarr``, a feature store with the clusters), decoded cluster centres and
    cluster averages (MRC), ``gallery.png`` and ``mining.json``, and the folder's
    provenance record ``OUTPUT.json``.  Decoded centres and averages are written
    protein-bright, as ``discover`` writes its averages and maps show it, where the
    contrast the autoencoder learned is known (:mod:`tomoscribe.classify.contrast`);
    ``mining.json``'s ``averages`` says which.  Returns what
    :func:`tomoscribe.classify.autoencoder.mine_patterns` found and the scores against
    the true classes (None without them)."""
    from .autoencoder import load_autoencoder, mine_patterns
    from .cluster import cluster_scores
    from .featurefile import save_features
    from .figures import plot_gallery

    check_outputs([sidecar_path(output)], inputs=[model, dataset])  # the folder's record
    autoencoder = load_autoencoder(model)
    volumes, labels, names, voxel = load_subtomograms(dataset)
    check_voxel_size(dataset, voxel, autoencoder.voxel_size_A, "autoencoder")
    check_box(dataset, volumes, autoencoder.network.box, "autoencoder")
    check_tilt_range(dataset, autoencoder.metadata, "autoencoder")
    warn_of_other_wedge(dataset, volumes, autoencoder.metadata, "autoencoder")
    used = matched_contrast(dataset, volumes, autoencoder.metadata, "autoencoder")
    found = mine_patterns(autoencoder, used, clusters, seed, device)
    _warn_of_codes_holding_nothing(model, dataset, autoencoder, used, found["codes"], device)
    fed = autoencoder.metadata.get("contrast") or dataset_contrast(dataset, volumes)
    shown = _shown_protein_bright(found, fed)  # the contrast of what it was fed
    truth = labels_or_none(labels)
    scores = cluster_scores(truth, found["clusters"], names) if truth is not None else None
    voxel = voxel or autoencoder.voxel_size_A
    with output_folder(output, step="classify autoencoder mine") as tmp:
        save_features(
            tmp / "codes.zarr",
            {"features": found["codes"], "labels": labels, "clusters": found["clusters"]},
            {
                "source": str(model.resolve()),
                "layer": "code",
                "dataset": str(dataset.resolve()),
                "dataset_sha256": dataset_fingerprint(volumes),
                "class_names": names,
                "voxel_size_A": voxel,
                "clusters": {"k": clusters, "seed": seed, "scores": scores},
            },
        )
        for k in range(clusters):
            write_volume(
                tmp / f"decoded_centre{k:02d}.mrc", Volume(found["decoded_centres"][k], voxel)
            )
            write_volume(
                tmp / f"cluster_average{k:02d}.mrc",
                Volume(found["cluster_averages"][k].astype(np.float32), voxel),
            )
        plot_gallery(
            [
                ([f"decoded centre {k}" for k in range(clusters)], found["decoded_centres"]),
                ([f"cluster {k} average" for k in range(clusters)], found["cluster_averages"]),
            ],
            tmp / "gallery.png",
        )
        (tmp / "mining.json").write_text(
            json.dumps(
                {"sizes": found["sizes"].tolist(), "scores": scores, "averages": shown}, indent=2
            )
            + "\n"
        )
    write_provenance(
        output,
        "classify autoencoder mine",
        {"clusters": clusters, "seed": seed},
        [model],
        extra={"dataset": str(dataset.resolve()), "scores": scores},
    )
    return found, scores
