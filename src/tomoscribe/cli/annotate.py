"""``tomoscribe trainset``, ``train``, ``segment`` and ``merge``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from ..errors import ParameterError
from ..locks import output_lock
from ..nets.catalogue import listed
from ..outputs import check_free_space, read_provenance, write_provenance
from . import options
from .app import app
from .checks import writes

# The per-feature architectures, from the catalogue's list so that --help needs no torch
# (tests/test_cli_startup.py checks it against the registry).
ARCHITECTURE_NAMES = listed("feature")


@app.command()
@writes(files=("output",))
def trainset(
    tomogram: Path = typer.Argument(..., help="The preprocessed tomogram."),
    output: Path = typer.Option(..., "--output", "-o", help="Training-set file to write."),
    feature: str = typer.Option(..., "--feature", "-f", help="Feature name, e.g. membrane."),
    painted: Path = typer.Option(
        None,
        "--painted",
        help="Label volume painted in any tool (nonzero = feature), same grid as the tomogram.",
    ),
    painted_value: int = typer.Option(
        None, "--painted-value", help="Only this label value of --painted is the feature."
    ),
    contours: Path = typer.Option(
        None,
        "--contours",
        help="IMOD model with closed contours drawn on slices around the feature.",
    ),
    objects: list[int] = typer.Option(
        None, "--object", help="IMOD object number(s) (from 0) to use from --contours; default all."
    ),
    boxes: Path = typer.Option(
        None,
        "--boxes",
        help="CSV/STAR/copick/Dynamo with x, y, z and a positive/negative label per box.",
    ),
    tomo_name: str = typer.Option(
        None,
        "--tomo-name",
        help="Tomogram name selecting the rows "
        "of a points file listing several (default: the tomogram's "
        "file stem).",
    ),
    positives: Path = typer.Option(None, "--positives", help="Points file of positive boxes."),
    negatives: Path = typer.Option(None, "--negatives", help="Points file of negative boxes."),
    tile: int = typer.Option(64, "--tile", help="Tile edge in pixels."),
    context: int = typer.Option(
        0,
        "--context",
        min=0,
        max=8,
        help="Store ±this many neighbouring slices (for 2.5D networks).",
    ),
    annotator: str = typer.Option("", "--annotator", help="Who annotated (recorded)."),
    balance: bool = typer.Option(
        True, "--balance/--no-balance", help="Replicate positives (augmented) to match negatives."
    ),
    negative_copies: int = typer.Option(
        1,
        "--negative-copies",
        min=1,
        help="Augmented copies of each negative (EMAN2's ncopy); "
        "more copies mean more training steps per epoch.",
    ),
    augment: str = typer.Option(
        "rotate",
        "--augment",
        help="How tiles are copied: flip (mirrors, 180° turns and "
        "shifts: the missing wedge stays where it is), rotate-wedge "
        "(any turn, the wedge re-imposed), mixed (each copy one of "
        "the two) or rotate (the paper's arbitrary rotations).",
    ),
    tilt_range: str = typer.Option(
        None,
        "--tilt-range",
        help="MIN,MAX tilt of the series (°), recorded; used by "
        "--augment rotate-wedge and mixed (default: as the "
        "tomogram records it, else -60,60).",
    ),
    from_mask: str = typer.Option(
        None,
        "--from-mask",
        help="POS,NEG: also choose this many boxes from --painted when it is a whole "
        "mask (another tool's segmentation): positives on the feature, negatives where "
        "a tile holds none of it (e.g. 30,100).",
    ),
    seed: int = options.Seed,
    voxel_size: float = options.VoxelSize,
) -> None:
    """Cut tiles and masks for one feature from boxes plus a painted volume or IMOD contours."""
    from ..segment.workflow import training_set_from_files
    from .structure import _tilt_range

    result, used, tilt = training_set_from_files(
        tomogram,
        output,
        feature,
        painted=painted,
        painted_value=painted_value,
        contours=contours,
        objects=objects,
        boxes=boxes,
        positives=positives,
        negatives=negatives,
        tomo_name=tomo_name,
        tile=tile,
        context=context,
        annotator=annotator,
        balance=balance,
        negative_copies=negative_copies,
        seed=seed,
        voxel_size_A=voxel_size,
        augmentation=augment,
        tilt_range_deg=_tilt_range(tilt_range),
        from_mask=_counts(from_mask),
    )
    write_provenance(
        output,
        "trainset",
        {
            "feature": feature,
            "tile": tile,
            "context": context,
            "seed": seed,
            "balance": balance,
            "negative_copies": negative_copies,
            "augment": augment,
            "tilt_range_deg": list(tilt.deg),
            "from_mask": _counts(from_mask),
        },
        [p for p in (tomogram, painted, contours, boxes, positives, negatives) if p],
    )
    unpainted = result.metadata["n_positive_boxes_unpainted"]
    contradicted = result.metadata["n_negative_boxes_painted"]
    if contradicted:
        typer.echo(
            f"warning: {contradicted} negative tile(s) contain painted {feature!r}; "
            "negatives should hold none of the feature, or the network learns to "
            "miss it.",
            err=True,
        )
    typer.echo(
        f"wrote {output}: {result.n_positive} positive and {result.n_negative} negative "
        f"tiles from {len(used.positive)} positive and {len(used.negative)} negative "
        "boxes" + (f" ({unpainted} positive boxes had nothing painted)" if unpainted else "")
    )


def _counts(text: str | None) -> tuple[int, int] | None:
    """``--from-mask POS,NEG`` as two integers."""
    if text is None:
        return None
    try:
        n_positive, n_negative = (int(part) for part in text.split(","))
    except ValueError:
        raise ParameterError(
            f"--from-mask takes two counts, POS,NEG (e.g. 30,100), not {text!r}.",
            parameter="from_mask",
        ) from None
    return n_positive, n_negative


@app.command()
@writes(files=("output",))
def train(
    training_sets: list[Path] = typer.Argument(
        ...,
        help="File(s) written by `tomoscribe trainset` or `clem transfer`; several (e.g. "
        "one per tomogram, same feature, voxel size and preprocessing) train one "
        "network together.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write."),
    arch: str = typer.Option(
        "chen2017", "--arch", help="Architecture: " + ", ".join(ARCHITECTURE_NAMES)
    ),
    context: int = typer.Option(
        0, "--context", min=0, max=8, help="±slices the network sees (chen2017-2.5d, unet)."
    ),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch: int = typer.Option(20, "--batch", min=1),
    learning_rate: float = typer.Option(
        None, "--learning-rate", help="Default 0.01 for sgd (the paper), 3e-4 for adam."
    ),
    lr_decay: float = typer.Option(0.9, "--lr-decay", help="Factor applied after each epoch."),
    l1: float = typer.Option(1e-5, "--l1", help="L1 weight decay."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd or adam."),
    validation: float = typer.Option(0.1, "--validation", help="Fraction of boxes held out."),
    seed: int = options.Seed,
    device: str = options.Device,
    quiet: bool = options.Quiet,
) -> None:
    """Train one network for the feature of one or more training sets."""
    from ..segment.checkpoint import checkpoint_path
    from ..segment.modelfile import save_model
    from ..segment.network import ArchitectureSpec
    from ..segment.train import TrainParams, train_feature
    from ..segment.trainset import combine_training_sets, load_training_set

    data = combine_training_sets(
        [load_training_set(path) for path in training_sets], [str(path) for path in training_sets]
    )
    spec = ArchitectureSpec(arch, context)
    if learning_rate is None:
        learning_rate = 0.01 if optimizer == "sgd" else 3e-4
    params = TrainParams(
        epochs=epochs,
        batch_size=batch,
        learning_rate=learning_rate,
        lr_decay_per_epoch=lr_decay,
        l1_weight_decay=l1,
        optimizer=optimizer,
        validation_fraction=validation,
        seed=seed,
    )
    with output_lock(output):  # one training per model file; its checkpoint is beside it
        model = train_feature(
            data,
            spec,
            params,
            device=device,
            show_progress=not quiet,
            checkpoint=checkpoint_path(output),
        )
        save_model(output, model)
    history = model.metadata["training"]["history"]
    write_provenance(
        output,
        "train",
        {"architecture": spec.as_dict(), **params.__dict__},
        list(training_sets),
        extra={"amplitude": model.amplitude, "final": history[-1]},
    )
    last = history[-1]
    val = (
        f", validation loss {last['validation_loss']:.3f}"
        if last["validation_loss"] is not None
        else ""
    )
    pooled = (
        f" from {len(training_sets)} training sets ({len(data)} tiles)"
        if len(training_sets) > 1
        else ""
    )
    typer.echo(
        f"wrote {output}: {model.feature!r}{pooled}, train loss {last['train_loss']:.3f}"
        f"{val}, amplitude {model.amplitude:.3f}"
    )


@app.command()
def segment(
    tomograms: list[Path] = typer.Argument(
        ...,
        help="Preprocessed tomogram(s) (.mrc, .tif, .zarr); all are segmented with every model.",
    ),
    models: list[Path] = typer.Option(..., "--model", "-m", help="Model file(s); repeat."),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Directory for the maps."),
    fmt: str = typer.Option("mrc", "--format", help="mrc or zarr (OME-Zarr)."),
    rescale: bool = typer.Option(
        False,
        "--rescale",
        help="Resample when the voxel size differs from the model's by more than 5%.",
    ),
    device: str = options.Device,
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="CUDA arithmetic: fp32, tf32 or bf16 (see docs/performance.md for speed and error).",
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (the fast exact engine for "
        "chen2017 where it applies), direct (reference), or fast.",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="Spread slabs over a local dask.distributed cluster of this many worker processes.",
    ),
    scheduler: str = typer.Option(
        None,
        "--scheduler",
        help="Spread slabs over the workers "
        "of this dask.distributed scheduler (e.g. tcp://host:8786); "
        "they must see the same paths.",
    ),
    slab_slices: int = typer.Option(
        None,
        "--slab-slices",
        min=1,
        help="Slices per unit of work (default: ~64 MB of input, at most 16).",
    ),
    resume: bool = typer.Option(
        True,
        "--resume/--restart",
        help="Finish the unfinished "
        "outputs of an identical interrupted run (default), or "
        "start over.",
    ),
    voxel_size: float = options.VoxelSize,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Apply feature models to whole slices; write one normalised float32 map per feature.

    Work goes slab by slab into hidden unfinished files that are renamed when complete;
    an interrupted run picks up where it stopped when started again.
    """
    from ..io.particles import tomogram_stem
    from ..io.provenance import carried_acquisition
    from ..segment.modelfile import load_model
    from ..segment.runner import dask_client, plan_segmentation, segment_files

    if fmt not in ("mrc", "zarr"):
        raise ParameterError(f"--format must be mrc or zarr, got {fmt!r}.")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"{out_dir} is a file, not a folder; give a folder for the maps.")
    if workers is not None and scheduler is not None:
        raise ParameterError("give --workers (a local cluster) or --scheduler, not both.")
    loaded = [load_model(m) for m in models]
    names = [m.feature for m in loaded]
    if len(set(names)) != len(names):
        raise ParameterError(
            f"two models are for the same feature ({names}); segment them "
            "in separate calls or out-dirs."
        )
    stems = [tomogram_stem(t) for t in tomograms]
    if len(set(stems)) != len(stems):
        raise ParameterError(
            f"two tomograms share the name stem ({stems}); their outputs "
            "would collide, so rename one or use separate calls."
        )
    paths = [[out_dir / f"{stem}_{m.feature}.{fmt}" for m in loaded] for stem in stems]
    distributed = workers is not None or scheduler is not None
    with (
        dask_client(scheduler, workers) if distributed else contextlib.nullcontext((None, None))
    ) as (client, threads):
        jobs = plan_segmentation(
            tomograms,
            models,
            paths,
            device=device,
            precision=precision,
            engine=engine,
            rescale=rescale,
            voxel_size_A=voxel_size,
            slab_slices=slab_slices,
            threads=threads,
        )
        segment_files(jobs, client, resume=resume, overwrite=overwrite, show_progress=not quiet)
    for tomogram, row in zip(tomograms, paths):
        for path, model, model_path in zip(row, loaded, models):
            write_provenance(
                path,
                "segment",
                {
                    "feature": model.feature,
                    "rescale": rescale,
                    "amplitude": model.amplitude,
                    "precision": precision,
                    "engine": engine,
                    "architecture": model.spec.as_dict(),
                },
                [tomogram, model_path],
                extra={
                    "feature": model.feature,
                    "painted_size": model.metadata.get("painted_size"),
                    **carried_acquisition([tomogram]),
                },
            )
            typer.echo(f"wrote {path}")


@app.command()
@writes(files=("output",))
def merge(
    maps: list[Path] = typer.Argument(..., help="Per-feature maps from `tomoscribe segment`."),
    output: Path = typer.Option(..., "--output", "-o", help="Label map (.mrc or .zarr)."),
    names: str = typer.Option(
        None,
        "--names",
        help="Comma-separated feature names, one per map (default: recorded by segment).",
    ),
    threshold: float = typer.Option(
        1.0, "--threshold", help="Minimum normalised value (1.0 as in the paper; EMAN2 uses 0.8)."
    ),
    weights: list[str] = typer.Option(
        None, "--weight", help="NAME=W multiplies a feature's map before the competition; repeat."
    ),
    erasers: list[str] = typer.Option(
        None,
        "--eraser",
        help="Feature that wins its voxels but is written as background (gold, carbon); repeat.",
    ),
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Per voxel the strongest feature above the threshold wins; writes uint8 labels + legend."""
    import numpy as np

    from ..core.legend import Legend, legend_path, write_legend
    from ..io import create_volume, read_volume
    from ..io.provenance import carried_acquisition
    from ..segment.merge import merge_into
    from ..segment.painted_size import legend_with_sizes

    volumes = [read_volume(p) for p in maps]
    acquisition = carried_acquisition(maps)  # refuses maps of different tilt series
    if names:
        features = [n.strip() for n in names.split(",")]
        if len(features) != len(maps):
            raise ParameterError(f"--names lists {len(features)} names for {len(maps)} maps.")
    else:
        features = [_feature_of(p) for p in maps]
    weight_of = {}
    for item in weights or []:
        name, _, value = item.partition("=")
        try:
            weight_of[name.strip()] = float(value)
        except ValueError:
            raise ParameterError(f"--weight {item!r} is not NAME=NUMBER.") from None
    unknown = set(weight_of) - set(features)
    if unknown:
        raise ParameterError(f"--weight names {sorted(unknown)} are not among {features}.")
    check_free_space(output, int(np.prod(volumes[0].shape)))  # uint8 labels
    with create_volume(
        output,
        volumes[0].shape,
        np.uint8,
        volumes[0].voxel_size_A,
        volumes[0].origin_A,
        overwrite=overwrite,
        legend=Legend.from_features(features, erasers or ()),
    ) as out:
        legend = merge_into(
            volumes,
            features,
            out,
            threshold,
            [weight_of.get(f, 1.0) for f in features],
            erasers or (),
            show_progress=not quiet,
        )
        legend = legend_with_sizes(legend, features, maps)
        write_legend(output, legend)
    write_provenance(
        output,
        "merge",
        {
            "features": features,
            "threshold": threshold,
            "weights": weight_of,
            "erasers": erasers or [],
        },
        maps,
        extra={"legend": legend.as_dict(), **acquisition},
    )
    typer.echo(f"wrote {output} and {legend_path(output).name}: {legend.summary()}")


def _feature_of(path: Path) -> str:
    record = read_provenance(path) or {}
    if record.get("feature"):
        return str(record["feature"])
    raise ParameterError(f"{path} does not record its feature; give --names.")
