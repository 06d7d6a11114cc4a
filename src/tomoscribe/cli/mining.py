"""``tomoscribe classify features | cluster | discover | autoencoder | voxelseg``:
structural mining of subtomograms (Xu et al. 2017; Zeng et al. 2017, 2018)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ParameterError
from ..outputs import check_output_folder
from . import options
from .checks import arguments_as, writes
from .classify import classify_app

autoencoder_app = typer.Typer(
    help="Autoencoder pattern mining (Zeng et al. 2018).", no_args_is_help=True
)
voxelseg_app = typer.Typer(
    help="Voxelwise segmentation of the centre particle of crowded subtomograms.",
    no_args_is_help=True,
)
classify_app.add_typer(autoencoder_app, name="autoencoder")
classify_app.add_typer(voxelseg_app, name="voxelseg")


@classify_app.command("features")
@writes(files=("output",), formats={"output": (".zarr",)})
def features(
    dataset: Path = typer.Argument(
        ..., help="Subtomograms: a dataset (.zarr) or a STAR file listing them."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Feature store (.zarr)."),
    model: Path = typer.Option(
        None, "--model", help="Classifier file: its layer outputs are the features."
    ),
    layer: str = typer.Option(
        "output",
        "--layer",
        help="output (the last linear layer, as in Xu et al.) or hidden (its input).",
    ),
    rif: bool = typer.Option(
        False,
        "--rif",
        help="Rotation-invariant spherical-harmonic features instead of a network's.",
    ),
    device: str = options.Device,
) -> None:
    """Structural features of every subtomogram of a dataset."""
    from ..classify.model_workflow import features_file

    if (model is None) == (not rif):
        raise ParameterError("give either --model FILE or --rif.")
    found = features_file(dataset, output, model, layer, device)
    typer.echo(f"wrote {output}: {found.shape[1]} features for {len(found)} subtomograms")


@classify_app.command("cluster")
@writes(files=("output", "plot"), formats={"output": (".zarr",), "plot": (".png",)})
def cluster(
    feature_store: Path = typer.Argument(..., help="Feature store from `classify features`."),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Feature store with clusters (.zarr); scores go beside it as .scores.json.",
    ),
    k: int = typer.Option(100, "--k", min=1, help="Clusters (over-partitioning)."),
    plot: Path = typer.Option(None, "--plot", help="2D map of the features (.png)."),
    embedding: str = typer.Option(
        "auto", "--embedding", help="tsne, umap or auto (UMAP when installed)."
    ),
    colour: str = typer.Option("truth", "--colour", help="truth, predicted or cluster."),
    seed: int = options.Seed,
) -> None:
    """k-means over-partitioning of a feature space, with a t-SNE/UMAP map."""
    import numpy as np

    from ..classify.workflow import cluster_files

    with arguments_as(method="embedding"):
        clusters, scores = cluster_files(feature_store, output, k, seed, plot, embedding, colour)
    sizes = np.bincount(clusters, minlength=k)
    typer.echo(
        f"wrote {output}: {k} clusters (largest {sizes.max()}, smallest {sizes.min()})"
        + (
            f"; purity {scores['purity']:.3f}, ARI {scores['adjusted_rand']:.3f}"
            + _over_labelled(scores)
            if scores
            else ""
        )
    )


def _over_labelled(scores: dict) -> str:
    """ " over N labelled subtomograms (M unlabelled left out)" when some are unlabelled."""
    if not scores.get("n_unlabelled"):
        return ""
    return (
        f" over {scores['n_labelled']} labelled subtomograms "
        f"({scores['n_unlabelled']} unlabelled left out)"
    )


@classify_app.command("discover")
@writes(folders=("output",))
def discover(
    dataset: Path = typer.Argument(
        ..., help="Subtomograms: a dataset (.zarr) or a STAR file listing them."
    ),
    clustered: Path = typer.Argument(
        ..., help="Feature store with clusters (`classify cluster`) of the same dataset."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Directory for class averages (MRC), discover.json and gallery.png.",
    ),
    clusters: list[int] = typer.Option(
        None, "--cluster", help="Cluster to examine (repeat for several; default: the largest)."
    ),
    classes: int = typer.Option(3, "--classes", min=1, help="Classes per cluster."),
    references: list[str] = typer.Option(
        None,
        "--reference",
        help="Known structure to compare with: template name or map file (repeat).",
    ),
    tilt: float = typer.Option(
        None,
        "--max-tilt",
        help="± degrees of the tilt range (default: as the dataset records it, else 60).",
    ),
    lowpass_A: float = typer.Option(60.0, "--lowpass", help="Å, alignment resolution limit."),
    protein_bright: bool = typer.Option(
        None,
        "--protein-bright/--protein-dark",
        help="How the subtomograms show protein: bright (cut with `extract --invert`) or "
        "dark (as a microscope records it and `simulate subtomograms` makes it); "
        "default: measured from them, else as extracted, else dark.",
    ),
    seed: int = options.Seed,
    device: str = options.Device,
) -> None:
    """Class averages inside clusters, without a reference; FSC-0.5 distance to known maps.

    Each chosen cluster (default: the largest) is classified and averaged with
    missing-wedge-aware alignment; the averages are written as MRC files, with their
    discrepancy (nm) to every reference in discover.json and a gallery.
    """
    from ..classify.discover import DiscoverParams
    from ..classify.workflow import discover_files

    check_output_folder(output, [dataset, clustered], ["discover.json", "gallery.png"])
    params = DiscoverParams(
        classes=classes,
        lowpass_A=lowpass_A,
        protein_dark=None if protein_bright is None else not protein_bright,
        seed=seed,
    )
    discover_files(
        dataset,
        clustered,
        output,
        params,
        clusters,
        references,
        device,
        say=typer.echo,
        tilt_range_deg=None if tilt is None else (-tilt, tilt),
    )
    typer.echo(f"wrote {output}")


@autoencoder_app.command("train")
@writes(files=("output",), formats={"output": (".tsa",)})
def autoencoder_train(
    dataset: Path = typer.Argument(
        ..., help="Subtomograms (.zarr, or a STAR file listing them); labels unused."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Autoencoder file to write."),
    code_size: int = typer.Option(32, "--code-size", min=1),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch: int = typer.Option(16, "--batch", min=1),
    learning_rate: float = typer.Option(1e-3, "--learning-rate"),
    seed: int = options.Seed,
    device: str = options.Device,
    quiet: bool = options.Quiet,
) -> None:
    """Train a 3D convolutional autoencoder on subtomograms (no labels needed)."""
    from ..classify.model_workflow import train_autoencoder_file

    model = train_autoencoder_file(
        dataset,
        output,
        code_size,
        epochs,
        batch,
        learning_rate,
        seed=seed,
        device=device,
        show_progress=not quiet,
    )
    typer.echo(
        f"wrote {output}: reconstruction loss "
        f"{model.metadata['training']['history'][-1]['loss']:.4f}"
    )


@autoencoder_app.command("mine")
@writes(folders=("output",))
def autoencoder_mine(
    model: Path = typer.Argument(..., help="Autoencoder file."),
    dataset: Path = typer.Argument(
        ..., help="Subtomograms: a dataset (.zarr) or a STAR file listing them."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Directory: codes (.zarr), decoded centres and cluster averages (MRC), gallery.png.",
    ),
    clusters: int = typer.Option(10, "--clusters", min=1),
    seed: int = options.Seed,
    device: str = options.Device,
) -> None:
    """k-means on autoencoder codes; decoded cluster centres and cluster averages."""
    from ..classify.workflow import mine_files

    check_output_folder(output, [model, dataset], ["mining.json", "gallery.png"])
    found, scores = mine_files(model, dataset, output, clusters, seed, device)
    typer.echo(
        f"wrote {output}: {clusters} clusters of sizes "
        + ", ".join(map(str, found["sizes"].tolist()))
        + (f"; purity {scores['purity']:.3f}" + _over_labelled(scores) if scores else "")
    )


@voxelseg_app.command("train")
@writes(files=("output",), formats={"output": (".tsv",)})
def voxelseg_train(
    dataset: Path = typer.Argument(..., help="Crowded subtomogram dataset with centre masks."),
    output: Path = typer.Option(..., "--output", "-o", help="Segmenter file to write."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch: int = typer.Option(8, "--batch", min=1),
    learning_rate: float = typer.Option(1e-3, "--learning-rate"),
    test_fraction: float = typer.Option(
        0.5, "--test-fraction", help="Held out per class; 0 trains on everything."
    ),
    seed: int = options.Seed,
    device: str = options.Device,
    quiet: bool = options.Quiet,
) -> None:
    """Train the centre-particle U-Net; report Dice on the held-out part."""
    from ..classify.model_workflow import train_voxelseg_file

    dice = train_voxelseg_file(
        dataset,
        output,
        epochs,
        batch,
        learning_rate,
        test_fraction,
        seed=seed,
        device=device,
        show_progress=not quiet,
    )
    typer.echo(f"wrote {output}" + (f"; held-out {_dice_phrase(dice)}" if dice else ""))


def _dice_phrase(dice: dict) -> str:
    """What a :func:`~tomoscribe.classify.model_workflow.dice_summary` measured, and over
    which subtomograms."""
    if dice["mean"] is None:
        phrase = f"no Dice (none of the {dice['n_total']} subtomograms has a particle)"
    else:
        phrase = (
            f"mean Dice {dice['mean']:.3f} (median {dice['median']:.3f}) over the "
            f"{dice['n']} of {dice['n_total']} subtomograms with a particle"
        )
    if dice["n_empty"]:
        phrase += (
            f"; {dice['n_empty']} empty ones: {dice['empty_marked_mean']:.0f} voxels "
            "marked on average"
        )
    return phrase


@voxelseg_app.command("apply")
@writes(files=("output",), formats={"output": (".zarr",)})
def voxelseg_apply(
    model: Path = typer.Argument(..., help="Segmenter file."),
    dataset: Path = typer.Argument(
        ..., help="Subtomograms: a dataset (.zarr) or a STAR file listing them."
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Masks (.zarr: `masks` uint8 and `probability` float32, one per subtomogram).",
    ),
    threshold: float = typer.Option(
        0.5,
        "--threshold",
        help="Probability above which a voxel is the centre particle's (between 0 and 1).",
    ),
    device: str = options.Device,
) -> None:
    """Label the centre particle's voxels in every subtomogram; Dice when masks are known."""
    from ..classify.model_workflow import apply_voxelseg_file

    masks, dice = apply_voxelseg_file(model, dataset, output, threshold, device)
    typer.echo(
        f"wrote {output}: {len(masks)} masks"
        + (f"; against the true masks: {_dice_phrase(dice)}" if dice is not None else "")
    )
