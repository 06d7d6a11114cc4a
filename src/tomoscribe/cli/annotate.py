"""``tomoscribe trainset``, ``train``, ``segment`` and ``merge``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ParameterError
from ..nets.catalogue import listed
from . import options
from .app import app
from .checks import STREAMED_VOLUME_NAMES, command_line_text, writes

# The per-feature architectures, from the catalogue's list so that --help needs no torch
# (tests/test_cli_startup.py checks it against the registry).
ARCHITECTURE_NAMES = listed("feature")
#: Networks per feature that ``train`` makes unless told.  One: an ensemble of three
#: (consensus, spread, three held-out folds) takes 2.4x the time, and its calibrated
#: threshold scored worse on orientations nobody painted and on a tomogram without the
#: feature (bench_generalisation, docs/performance.md), so ensembles are opt-in.
ENSEMBLE_DEFAULT = 1


@app.command()
@writes(files=("output",), formats={"output": (".trainset",)})
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
    other_tomogram: Path = typer.Option(
        None,
        "--other-tomogram",
        help="Another tomogram, preprocessed alike, to take negative tiles from.",
    ),
    other_negatives: Path = typer.Option(
        None,
        "--other-negatives",
        help="Points file of boxes in --other-tomogram holding none of the feature.",
    ),
    seed: int = options.Seed,
    voxel_size: float = options.GivenVoxelSize,
) -> None:
    """Cut tiles and masks for one feature from boxes plus a painted volume or IMOD contours."""
    from ..segment.trainset import annotation_warnings
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
        other_tomogram=other_tomogram,
        other_negatives=other_negatives,
    )
    for warning in annotation_warnings(result.metadata, feature):
        typer.echo(f"warning: {command_line_text(warning)}", err=True)
    typer.echo(
        f"wrote {output}: {result.n_positive} positive and {result.n_negative} negative "
        f"tiles from {result.metadata['n_positive_boxes']} positive and "
        f"{len(used.negative)} negative "
        "boxes"
        + (
            f" (+{result.metadata['other_negatives'][-1]['n_boxes']} negative boxes in "
            f"{other_tomogram.name})"
            if other_tomogram
            else ""
        )
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
@writes(files=("output",), formats={"output": (".tsm",)})
def train(
    training_sets: list[Path] = typer.Argument(
        ...,
        help="File(s) written by `tomoscribe trainset` or `clem transfer`; several (e.g. "
        "one per tomogram, same feature, voxel size and preprocessing) train one "
        "network together, or one member each with --per-set.",
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
    validation: float = typer.Option(
        0.1,
        "--validation",
        help="Fraction of the painted boxes each network holds out; the threshold is "
        "measured on them.",
    ),
    ensemble: int = typer.Option(
        ENSEMBLE_DEFAULT,
        "--ensemble",
        min=1,
        help="Networks from different initialisations, holding out different boxes; "
        "segment writes their mean (and spread with --uncertainty).",
    ),
    per_set: bool = typer.Option(
        False,
        "--per-set",
        help="One network per training set (e.g. per annotator) in one ensemble, "
        "instead of one pooled network per seed.",
    ),
    seed: int = options.Seed,
    device: str = options.Device,
    quiet: bool = options.Quiet,
) -> None:
    """Train one network (or an ensemble) for the feature of one or more training sets,
    and measure its threshold on painted boxes it did not train on."""
    from ..segment.network import ArchitectureSpec
    from ..segment.train import TrainParams
    from ..segment.workflow import train_from_files

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
    model = train_from_files(
        list(training_sets),
        output,
        spec,
        params,
        members=ensemble,
        per_set=per_set,
        device=device,
        show_progress=not quiet,
        say=lambda message: typer.echo(f"warning: {command_line_text(message)}", err=True),
    )
    from ..segment.workflow import resumed_training

    note = resumed_training(model)
    if note:
        typer.echo(f"{output.name}: {note}", err=True)
    _report_training(output, model, training_sets)


def _report_training(output, model, training_sets) -> None:
    """The one-line report of ``train``."""
    history = model.metadata["training"]["history"]
    calibration = model.metadata["calibration"]
    members = model.metadata["ensemble"]
    last = history[-1]
    held = (
        f"threshold {model.threshold:g} (Dice {calibration['dice_at_threshold']:.2f}, "
        f"{calibration['dice_at_default']:.2f} at 1.0, on the tiles of "
        f"{calibration.get('n_positive_boxes', '?')} positive and "
        f"{calibration.get('n_negative_boxes', '?')} negative held-out boxes, on the "
        "network's output grid)"
        if calibration["calibrated"]
        else f"threshold {model.threshold:g} (not measured)"
    )
    kind = (
        f"ensemble of {members['members_kept']}"
        + (
            f" of {members['members_asked']}"
            if members["members_kept"] < members["members_asked"]
            else ""
        )
        + ", "
        if model.is_ensemble
        else ""
    )
    pooled = f" from {len(training_sets)} training sets" if len(training_sets) > 1 else ""
    typer.echo(
        f"wrote {output}: {model.feature!r}{pooled}, {kind}train loss {last['train_loss']:.3f}, "
        f"amplitude {members['mean_amplitude']:.3f}, {held}"
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
    uncertainty: bool = typer.Option(
        False,
        "--uncertainty",
        help="Also write each ensemble's spread (standard deviation of its networks) "
        "as STEM_FEATURE_spread beside the mean map: where to annotate next.",
    ),
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
    voxel_size: float = options.GivenVoxelSize,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Apply feature models to whole slices; write one normalised float32 map per feature,
    and say how much of each tomogram it marks at the model's threshold.

    Work goes slab by slab into hidden unfinished files that are renamed when complete;
    an interrupted run picks up where it stopped when started again.
    """
    from ..segment.workflow import segment_from_files

    written = segment_from_files(
        list(tomograms),
        list(models),
        out_dir,
        fmt=fmt,
        uncertainty=uncertainty,
        workers=workers,
        scheduler=scheduler,
        resume=resume,
        overwrite=overwrite,
        show_progress=not quiet,
        device=device,
        precision=precision,
        engine=engine,
        rescale=rescale,
        voxel_size_A=voxel_size,
        slab_slices=slab_slices,
    )
    for item in written:
        _report_map(item)


def _report_map(item) -> None:
    """The report lines of one map (and its spread)."""
    model = item.model
    if item.spread_path is not None:
        typer.echo(f"wrote {item.spread_path}")
    if item.resumed:
        typer.echo(f"{item.path.name}: {command_line_text(item.resumed)}", err=True)
    if item.warning:
        typer.echo(f"warning: {item.warning}", err=True)
    typer.echo(
        f"wrote {item.path}: {100 * item.marked_fraction:.2f}% marked at threshold "
        f"{model.threshold:g}"
    )


@app.command()
@writes(files=("output",), formats={"output": STREAMED_VOLUME_NAMES})
def merge(
    maps: list[Path] = typer.Argument(..., help="Per-feature maps from `tomoscribe segment`."),
    output: Path = typer.Option(..., "--output", "-o", help="Label map (.mrc or .zarr)."),
    names: str = typer.Option(
        None,
        "--names",
        help="Comma-separated feature names, one per map (default: recorded by segment).",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Minimum normalised value for every feature (default: each map's model's "
        "threshold, measured on held-out boxes and recorded by segment; 1.0, the "
        "paper's, where none is recorded).",
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
    """Per voxel the strongest feature above its threshold wins; writes uint8 labels + legend."""
    from ..core.legend import legend_path
    from ..segment.workflow import merge_from_files

    weight_of = {}
    for item in weights or []:
        name, _, value = item.partition("=")
        try:
            weight_of[name.strip()] = float(value)
        except ValueError:
            raise ParameterError(f"--weight {item!r} is not NAME=NUMBER.") from None
    merged = merge_from_files(
        list(maps),
        output,
        names=[n.strip() for n in names.split(",")] if names else None,
        threshold=threshold,
        weights=weight_of,
        erasers=tuple(erasers or ()),
        overwrite=overwrite,
        show_progress=not quiet,
    )
    used = ", ".join(
        f"{f} {t:g}" + (" (default)" if source == "default" else "")
        for f, t, source in zip(merged.features, merged.thresholds, merged.threshold_from)
    )
    weighed = ", ".join(f"{f} ×{w:g}" for f, w in weight_of.items() if w != 1)
    typer.echo(
        f"wrote {output} and {legend_path(output).name}: {merged.legend.summary()}; "
        f"thresholds {used}" + (f"; weights {weighed}" if weighed else "")
    )
