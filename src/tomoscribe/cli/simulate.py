"""``tomoscribe simulate structure | cell | subtomograms | micrographs``."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..errors import ParameterError
from . import options
from .app import app
from .checks import VOLUME_NAMES, arguments_as, writes

simulate_app = typer.Typer(
    help="Simulate structures, cellular tomograms and subtomogram datasets with ground truth.",
    no_args_is_help=True,
)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("structure")
@writes(files=("output",), formats={"output": VOLUME_NAMES})
def structure(
    model: Path = typer.Argument(..., help="PDB or mmCIF file."),
    output: Path = typer.Option(..., "--output", "-o", help="Density map (.mrc)."),
    voxel_size: float = typer.Option(10.0, "--voxel-size", help="Voxel size in Å."),
    resolution: float = typer.Option(20.0, "--resolution", help="Resolution in Å."),
    assembly: str = typer.Option(None, "--assembly", help="Biological assembly to expand."),
    box: int = typer.Option(None, "--box", help="Box edge in voxels (default: fits)."),
) -> None:
    """Electron-scattering density of an atomic model, centred in a cubic box whose
    origin keeps the model's frame (the map overlays the model)."""
    from ..simulate.workflow import structure_density_file

    volume = structure_density_file(model, output, voxel_size, resolution, assembly, box)
    typer.echo(f"wrote {output} ({volume.shape[0]}³ at {voxel_size:g} Å)")


@simulate_app.command("cell")
@writes(folders=("out_dir",))
def cell(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Directory for all outputs."),
    size: str = typer.Option("512,512,128", "--size", help="x,y,z in voxels."),
    voxel_size: float = typer.Option(10.0, "--voxel-size", help="Voxel size in Å."),
    templates: str = typer.Option(
        "4v4r_30S=2,3j9i=2",
        "--templates",
        help="NAME=µM pairs: a bundled template's name or a map file (its class named by "
        "the file's stem, its voxel size from its header).",
    ),
    max_tilt: float = typer.Option(60.0, "--max-tilt", help="Tilt range ± degrees."),
    tilt_step: float = typer.Option(3.0, "--tilt-step", help="Degrees."),
    tilt_order: str = typer.Option(
        "dose-symmetric", "--tilt-order", help="sequential or dose-symmetric."
    ),
    defocus: float = typer.Option(3.0, "--defocus", help="µm, positive = underfocus."),
    snr: float = typer.Option(0.1, "--snr", help="var(signal)/var(noise) of the projections."),
    dose: float = typer.Option(
        0.0, "--dose-per-tilt", help="e⁻/Å² per image (0 = no dose weighting)."
    ),
    carbon: bool = typer.Option(False, "--carbon-edge", help="Add a carbon edge."),
    vesicles: int = typer.Option(None, "--vesicles", min=0, help="Default: 6 per 512×512 area."),
    organelles: int = typer.Option(
        None,
        "--organelles",
        help="Double-membrane organelles; default 1 per 512×512 area (none below half of it).",
    ),
    microtubules: int = typer.Option(None, "--microtubules", min=0, help="Default: 3 per 512×512."),
    actin: int = typer.Option(None, "--actin", min=0, help="Default: 6 per 512×512."),
    gold: int = typer.Option(None, "--gold", min=0, help="Default: 8 per 512×512."),
    tomo_name: str = typer.Option(
        None,
        "--tomo-name",
        help="The tomogram's name (rlnTomoName of its particles; default: the output "
        "folder's name).",
    ),
    quiet: bool = options.Quiet,
    seed: int = options.Seed,
) -> None:
    """A cellular tomogram with truth: density, tilt series, tomogram, labels, particles.

    Filaments bend no tighter than they break in cells (microtubules 400 nm, actin
    180 nm radius of curvature), each at its own depth in the ice, so that they cross
    above and below each other."""
    from ..simulate.cell import FILAMENT_MIN_BEND_RADIUS_NM, CellParams
    from ..simulate.imaging import ImagingParams
    from ..simulate.workflow import cell_counts, check_cell_memory, simulate_cell_files

    try:
        nx, ny, nz = (int(v) for v in size.split(","))
        concentrations = {
            k.strip(): float(v)
            for k, v in (item.rsplit("=", 1) for item in templates.split(",") if item.strip())
        }
    except ValueError:
        raise ParameterError(
            "--size is x,y,z and --templates is NAME=µM,NAME=µM (a bundled name or a map file)."
        ) from None
    concentrations, maps = _cell_template_maps(concentrations)
    if min(nx, ny, nz) < 16 or voxel_size <= 0:
        raise ParameterError(
            f"--size must be at least 16 voxels along each axis and "
            f"--voxel-size positive, got {size} and {voxel_size:g}."
        )
    bad = [name for name, c in concentrations.items() if not (math.isfinite(c) and c >= 0)]
    if bad:
        raise ParameterError(
            f"--templates gives {bad[0]} a concentration of {concentrations[bad[0]]:g} µM; "
            "give a finite number ≥ 0."
        )
    check_cell_memory((nz, ny, nx))
    imaging = ImagingParams(
        max_tilt_deg=max_tilt,
        tilt_step_deg=tilt_step,
        tilt_order=tilt_order,
        defocus_um=defocus,
        snr=snr,
        dose_per_tilt_e_A2=dose,
        seed=seed,
    )
    imaging.validate()
    counts = cell_counts(
        (nz, ny, nx),
        vesicles=vesicles,
        organelles=organelles,
        microtubules=microtubules,
        actin=actin,
        gold=gold,
    )
    params = CellParams(
        shape=(nz, ny, nx),
        voxel_size_A=voxel_size,
        **counts,
        templates_uM=concentrations,
        template_maps=maps,
        carbon_edge=carbon,
        min_bend_radius_nm=dict(FILAMENT_MIN_BEND_RADIUS_NM),
        filament_depths="lamella",
        seed=seed,
    )
    particles, class_ids, acquisition = simulate_cell_files(
        out_dir,
        params,
        imaging,
        say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)),
        tomo_name=tomo_name,
    )
    typer.echo(
        f"wrote {out_dir}: tomogram.mrc (named {acquisition.tomo_name}), "
        "tilt_series.mrc/.tlt, density.mrc, labels.mrc (+ .legend.json), instances.mrc, "
        f"particles.star ({len(particles)} particles)"
    )


def _cell_template_maps(concentrations: dict) -> tuple[dict, dict]:
    """``--templates``' entries that are map files (a suffix, not a bundled name)
    renamed to their class name, the file's stem: (name → µM, name → map file).  Two
    entries of one class name are refused."""
    from ..io.particles import tomogram_stem
    from ..simulate.template_library import template_manifest

    named, maps = {}, {}
    for key, concentration in concentrations.items():
        name = key
        if key not in template_manifest() and Path(key).suffix:
            name = tomogram_stem(key)  # suffix-aware: 'emd_1.2.mrc' is 'emd_1.2'
            maps[name] = key
        if name in named:
            raise ParameterError(
                f"--templates names the class {name} twice; give each template once "
                "(map files are named by their file's stem)."
            )
        named[name] = concentration
    return named, maps


@simulate_app.command("subtomograms")
@writes(files=("output",), formats={"output": (".zarr",)})
def subtomograms(
    output: Path = typer.Option(..., "--output", "-o", help="Dataset (.zarr)."),
    structures: str = typer.Option(
        "1bxn,3j9i,4v4r_30S",
        "--structures",
        help="Comma-separated bundled template names or map files (a class per file, "
        "named by its stem).",
    ),
    n_per_class: int = typer.Option(100, "--n", min=1, help="Subtomograms per class."),
    box: int = typer.Option(40, "--box"),
    voxel_size: float = typer.Option(9.2, "--voxel-size", help="Å."),
    snr: float = typer.Option(0.1, "--snr", help="Measured on the subtomograms."),
    max_tilt: float = typer.Option(60.0, "--max-tilt", help="± degrees."),
    defocus: float = typer.Option(5.0, "--defocus", help="µm, positive = underfocus."),
    empty: bool = typer.Option(True, "--empty/--no-empty", help="Add a noise-only class."),
    crowded: int = typer.Option(
        0,
        "--crowded",
        min=0,
        help="Neighbours around each particle; > 0 also stores centre-particle masks.",
    ),
    seed: int = options.Seed,
) -> None:
    """A labelled subtomogram dataset after Xu et al. 2017 (one zarr store)."""
    from ..simulate.subtomograms import SubtomogramParams
    from ..simulate.workflow import subtomogram_dataset_file

    params = SubtomogramParams(
        box=box,
        voxel_size_A=voxel_size,
        snr=snr,
        max_tilt_deg=max_tilt,
        defocus_um=defocus,
        include_empty=empty,
        crowded_neighbours=crowded,
        seed=seed,
    )
    names = [s.strip() for s in structures.split(",") if s.strip()]
    data = subtomogram_dataset_file(output, names, n_per_class, params)
    typer.echo(
        f"wrote {output}: {len(data['labels'])} subtomograms of {box}³, classes "
        + ", ".join(data["class_names"])
    )
    if box % 4 or box < 16:
        typer.echo(
            f"note: `tomoscribe classify` trains on boxes that are a multiple of 4 and at "
            f"least 16 voxels, so it will refuse these {box}³ ones (averaging takes any box)",
            err=True,
        )


@simulate_app.command("micrographs")
@writes(folders=("out_dir",))
def micrographs(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Directory for all outputs."),
    n: int = typer.Option(20, "--n", min=1, help="Number of micrographs."),
    size: str = typer.Option(
        "1024,1024", "--size", help="x,y in pixels, or one number for a square (4096 for 4k)."
    ),
    pixel_size: float = typer.Option(4.0, "--pixel-size", help="Pixel size in Å."),
    templates: str = typer.Option(
        "1bxn", "--templates", help="Comma-separated bundled template names or map files."
    ),
    defocus: str = typer.Option(
        "0.8,1.9,3.0", "--defocus", help="µm (underfocus), cycled over the micrographs."
    ),
    snr: float = typer.Option(0.1, "--snr", help="var(signal)/var(noise) near particles."),
    isolated: int = typer.Option(
        40, "--isolated", min=0, help="Isolated particles per 1024² pixels."
    ),
    aggregates: int = typer.Option(
        3, "--aggregates", min=0, help="Aggregates (3–6 touching particles) per 1024²."
    ),
    contamination: int = typer.Option(
        2, "--contamination", min=0, help="Contamination blobs per 1024²."
    ),
    carbon_fraction: float = typer.Option(
        0.25, "--carbon-fraction", help="Fraction of micrographs with a carbon edge."
    ),
    annotate: int = typer.Option(
        3,
        "--annotate",
        min=0,
        help="Draw good/background/bad boxes as an annotator would on the first N "
        "micrographs (bad: blobs, aggregates and the carbon where one of them has it).",
    ),
    boxes_per_set: int = typer.Option(15, "--boxes-per-set", min=3, help="Boxes per set."),
    quiet: bool = options.Quiet,
    seed: int = options.Seed,
) -> None:
    """Single-particle micrographs with truth: particles, aggregates, contamination."""
    from ..simulate.micrographs import MicrographParams
    from ..simulate.workflow import simulate_micrographs_files

    try:
        sides = [int(v) for v in size.split(",")]
        if len(sides) not in (1, 2):
            raise ValueError(size)
        nx, ny = sides * (3 - len(sides))  # one number: a square
        defoci = [float(v) for v in defocus.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(
            "--size is x,y (or one number for a square) and --defocus a comma-separated list of µm."
        ) from None
    params = MicrographParams(
        shape=(ny, nx),
        pixel_size_A=pixel_size,
        snr=snr,
        n_isolated=isolated,
        n_aggregates=aggregates,
        n_contamination=contamination,
        seed=seed,
    )
    table = simulate_micrographs_files(
        out_dir,
        params,
        [t.strip() for t in templates.split(",") if t.strip()],
        n,
        defoci,
        carbon_fraction,
        annotate,
        boxes_per_set,
        say=(lambda m: None) if quiet else (lambda m: typer.echo(m, err=True)),
    )
    typer.echo(
        f"wrote {out_dir}: micrographs/ ({n}), masks/, truth.star ({len(table)} "
        f"particles), truth.json, micrographs_ctf.star"
        + (", boxes_good/background/bad.star" if annotate else "")
    )


@simulate_app.command("particles2d")
@writes(folders=("out_dir",))
def particles2d(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Directory for all outputs."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of particles."),
    box: int = typer.Option(128, "--box", min=16, help="Box edge in pixels."),
    pixel_size: float = typer.Option(2.5, "--pixel-size", min=0.0, help="Pixel size in Å."),
    templates: str = typer.Option(
        "1bxn,3j9i,1qvr", "--templates", help="Comma-separated bundled template names."
    ),
    views: int = typer.Option(20, "--views", min=1, help="Views per structure."),
    junk: float = typer.Option(0.1, "--junk", help="Fraction of junk images."),
    defocus: str = typer.Option(
        "1.0,1.8,2.6", "--defocus", help="µm (underfocus), drawn at random."
    ),
    snr: float = typer.Option(0.1, "--snr", help="var(signal)/var(noise) within the particles."),
    seed: int = options.Seed,
) -> None:
    """A particle stack with truth for 2D classification: particles.mrcs + particles.star
    (RELION, CTF in an optics block), truth.csv, projections.mrcs (the clean views)."""
    from ..simulate.workflow import particle_stack_files

    try:
        defoci = tuple(float(v) for v in defocus.split(",") if v.strip())
    except ValueError:
        raise ParameterError("--defocus is a comma-separated list of µm.") from None
    names = tuple(t.strip() for t in templates.split(",") if t.strip())
    with arguments_as(defoci_um="defocus"):
        particle_stack_files(out_dir, n, box, pixel_size, names, views, junk, defoci, snr, seed)
    typer.echo(
        f"wrote {out_dir}: particles.mrcs ({n} × {box}²), particles.star, truth.csv, "
        f"projections.mrcs ({len(names)} × {views} views)"
    )
