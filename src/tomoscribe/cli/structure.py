"""``tomoscribe pick``, ``vesicles``, ``extract``, ``clean``, ``select`` and ``average``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from ..errors import ParameterError
from ..outputs import check_output_folder, check_writable
from . import options
from .app import app
from .checks import STREAMED_VOLUME_NAMES, VOLUME_NAMES, arguments_as, writes

VALUE_HELP = (
    "The feature's value in a map from another tool without a .legend.json "
    "(membrain-seg, pyseg, Ais; default: every nonzero voxel)."
)


#: Where pick's threshold came from, as it reports it.
THRESHOLD_FROM = {
    "given": "given",
    "model": "the model's, as the map records it",
    "default": "the default: the map records no model threshold",
}


@app.command()
@writes(
    files=("outputs", "instances", "filament_table"),
    formats={"instances": VOLUME_NAMES, "filament_table": (".csv",)},
)
def pick(
    annotation: Path = typer.Argument(
        ...,
        help="A merged label map (with its .legend.json), "
        "one feature's map from `tomoscribe segment`, or a "
        "label/binary map from another tool (--value).",
    ),
    feature: str = typer.Option(..., "--feature", "-f", help="Feature to pick, e.g. ribosome."),
    outputs: list[Path] = typer.Option(
        ...,
        "--output",
        "-o",
        help="Picks file(s): .star "
        "(RELION 3 + 5 columns), .mod, .csv or .json (copick), "
        "or a copick project's picks, copick:CONFIG.json#RUN/"
        "OBJECT:USER/SESSION; repeat for several.",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Map value that counts as the feature (per-feature maps only; voxels below "
        "it are not the feature); default: the model's measured threshold recorded "
        "with the map, else 1.0.",
    ),
    value: float = typer.Option(None, "--value", help=VALUE_HELP),
    min_size: int = typer.Option(
        None,
        "--min-size",
        min=1,
        help="Smallest particle in voxels "
        "(default: ½ × the 5th percentile of the sizes painted for "
        "the model, as the legend or map records them; else 20).",
    ),
    max_size: int = typer.Option(
        None,
        "--max-size",
        min=1,
        help="Largest particle in voxels "
        "(default: 2 × the 95th percentile of the painted sizes; "
        "else none).",
    ),
    min_distance: float = typer.Option(
        None,
        "--min-distance",
        min=0.0,
        help="Closest two particles may be, in voxels (default: "
        "the radius of the median painted particle; else 8).",
    ),
    edge: int = typer.Option(4, "--edge", min=0, help="Drop picks this close to a face (voxels)."),
    filament: bool = typer.Option(
        False,
        "--filament",
        help="Trace filaments (one centreline "
        "per tube) and place seeds along them with their direction.",
    ),
    spacing: float = typer.Option(10.0, "--spacing", help="Seed spacing along filaments (voxels)."),
    radius_nm: float = typer.Option(
        None,
        "--radius-nm",
        help="Filament outer radius in nm "
        "(default: microtubule 12.5, hollow; actin 3.5, solid; "
        "required for other features).",
    ),
    hollow: bool = typer.Option(
        None,
        "--hollow/--solid",
        help="The filament is a hollow tube or a solid rod (default: microtubule "
        "hollow, actin solid, other features solid).",
    ),
    filament_table: Path = typer.Option(
        None,
        "--filament-table",
        help="CSV of the traced "
        "filaments (length nm, curvature 1/µm, ends, fraction of depth measured); default "
        "the first OUTPUT's stem + _filaments.csv.",
    ),
    instances: Path = typer.Option(
        None,
        "--instances",
        help="Also write the feature's voxels labelled by filament (filament id + 1, "
        "0 = none; MRC and TIFF: uint16 (MRC mode 6), float32 beyond 65,535 filaments; "
        "OME-Zarr: int32).",
    ),
    tomo_name: str = typer.Option(
        None,
        "--tomo-name",
        help="rlnTomoName / copick run name "
        "(default: the tomogram the map was segmented from, as its "
        "provenance records; else the map's file stem).",
    ),
    tilt_range: str = typer.Option(
        None,
        "--tilt-range",
        help="MIN,MAX tilt of the series (degrees; tilt axis y): where the missing "
        "wedge hides a filament's walls (--filament); default: as the map records "
        "it, else -60,60.",
    ),
    voxel_size: float = options.GivenVoxelSize,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Pick particles (components' maxima) or filament seeds from an annotation."""
    from ..io.copick_project import check_picks_target, is_copick_location
    from ..io.particles import FORMATS
    from ..structure.workflow import default_filament_table, pick_from_map

    if not filament:  # a filament's options on a particle pick were ignored unsaid
        given = [
            flag
            for flag, value in (
                ("--instances", instances),
                ("--filament-table", filament_table),
                ("--radius-nm", radius_nm),
                ("--hollow/--solid", hollow),
            )
            if value is not None
        ]
        if given:
            raise ParameterError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
                "filaments; add --filament to trace them, or leave "
                f"{'it' if len(given) == 1 else 'them'} out to pick particles."
            )
    for out in outputs:
        if is_copick_location(out):
            check_picks_target(out)  # (twice, another run or object: pick_from_map)
            continue
        if out.suffix.lower() not in FORMATS:
            raise ParameterError(f"{out}: picks files must end in {', '.join(FORMATS)}.")
        check_writable(out, overwrite)
    if filament:
        _check_filament_feature(annotation, feature, radius_nm, hollow)
        if not (math.isfinite(spacing) and spacing >= 1.0):
            raise ParameterError(f"--spacing must be at least one voxel, got {spacing:g}.")
        if filament_table is None:  # derived: checked against the other outputs here
            filament_table = default_filament_table(outputs[0])
            _check_table_is_its_own(filament_table, outputs, instances)
        check_writable(filament_table, overwrite)
    picked = pick_from_map(
        annotation,
        feature,
        outputs,
        threshold=threshold,
        value=value,
        min_size=min_size,
        max_size=max_size,
        min_distance=min_distance,
        edge=edge,
        filament=filament,
        spacing=spacing,
        radius_nm=radius_nm,
        hollow=hollow,
        filament_table=filament_table,
        instances=instances,
        tomo_name=tomo_name,
        tilt_range_deg=_tilt_range(tilt_range),
        voxel_size_A=voxel_size,
        show_progress=not quiet and sys.stderr.isatty(),  # a bar only where it is drawn
    )
    table, params = picked.table, picked.params
    if picked.threshold_from != "unused":
        typer.echo(f"threshold {params.threshold:g} ({THRESHOLD_FROM[picked.threshold_from]})")
    if filament:
        filaments = picked.filaments
        typer.echo(picked.tilt.describe())
        typer.echo(
            f"traced {len(filaments)} filaments ({filaments.length_nm.sum():.0f} nm in "
            f"all); wrote {filament_table}"
        )
    for out in outputs:
        typer.echo(f"wrote {len(table)} picks to {out}")
    for path in picked.removed:
        typer.echo(f"removed {path}, written by an earlier filament run into the same picks")
    if not filament:
        _say_sizes(
            picked, None in (min_size, max_size, min_distance), max_size is None, min_size is None
        )


def _check_filament_feature(annotation, feature: str, radius_nm, hollow) -> None:
    """A map recording another feature is refused first (its radius question would be
    the wrong one: a trial was asked for --radius-nm, then told the map's feature);
    then a feature of no known radius without --radius-nm (:func:`tube_model`)."""
    from ..segment.labelmaps import check_recorded_feature
    from ..structure.filaments import tube_model

    check_recorded_feature(annotation, feature)
    tube_model(feature, radius_nm, hollow)


def _say_sizes(picked, defaults_used: bool, max_learned: bool, min_learned: bool) -> None:
    """pick's report of the particle sizes it used, and of regions too large to pick."""
    from ..structure.picking import none_picked_sentence, too_large_sentence, too_small_sentence

    params = picked.params
    if picked.sizes_learned and defaults_used:
        typer.echo(
            f"sizes from the annotation: {params.min_size}–{params.max_size} voxels, "
            f"picks at least {params.min_distance:.1f} voxels apart"
        )
    larger = too_large_sentence(picked.left_out, params.max_size, max_learned)
    smaller = (  # only against a size learned from the painting: else specks abound
        too_small_sentence(picked.left_out, params.min_size, len(picked.table), True)
        if picked.sizes_learned and min_learned
        else None
    )
    none = (
        None
        if smaller
        else none_picked_sentence(picked.left_out, params.min_size, len(picked.table))
    )
    for sentence in (larger, smaller, none):
        if sentence:
            typer.echo(f"warning: {sentence}", err=True)


def _check_table_is_its_own(table: Path, outputs: list[Path], instances: Path | None) -> None:
    """Refuse a default filament table (OUTPUT stem + _filaments.csv) that is one of the
    other outputs or their records (``-o a.csv -o a_filaments.csv``)."""
    from ..io.locations import is_copick_location
    from ..outputs import sidecar_path
    from .checks import check_distinct_outputs

    named = []
    for path, flag in [(o, "--output") for o in outputs] + [(instances, "--instances")]:
        if path is not None and not is_copick_location(path):
            named += [(path, f"{flag} {path}"), (sidecar_path(path), f"the record of {path}")]
    check_distinct_outputs(named + [(table, f"the filament table {table}")])


def _label_map_companions(path: Path) -> list[Path]:
    """The legend written beside a label map (not beside the table of fits)."""
    from ..core.legend import legend_path

    return [] if path.suffix.lower() == ".csv" else [legend_path(path)]


@app.command()
@writes(
    files=("output", "table_path"),
    companions=_label_map_companions,
    formats={"output": STREAMED_VOLUME_NAMES, "table_path": (".csv",)},
)
def vesicles(
    annotation: Path = typer.Argument(
        ...,
        help="A merged label map with its .legend.json "
        "(from `tomoscribe merge`), or a membrane map from "
        "another tool (--value).",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Label map with the vesicles closed (.mrc or .zarr; the legend is copied; "
        "another tool's map keeps its values and other labels when --value names the "
        "membrane's).",
    ),
    table_path: Path = typer.Option(
        None,
        "--table",
        help="CSV of every fit (centre x, y, z in voxels, radius in nm, fit scores, "
        "accepted, reason, model: sphere or ellipsoid, semi-axes in nm, orientation); "
        "default OUTPUT stem + _vesicles.csv.",
    ),
    feature: str = typer.Option("membrane", "--feature", "-f", help="The membrane feature."),
    value: float = typer.Option(None, "--value", help=VALUE_HELP),
    thickness: float = typer.Option(5.0, "--thickness", help="Painted bilayer thickness (nm)."),
    min_radius: float = typer.Option(10.0, "--min-radius", help="Smallest vesicle radius (nm)."),
    max_radius: float = typer.Option(250.0, "--max-radius", help="Largest vesicle radius (nm)."),
    min_coverage: float = typer.Option(
        0.5,
        "--min-coverage",
        help="Fraction of the sphere's (ellipsoid's) visible surface the membrane must cover.",
    ),
    max_rms: float = typer.Option(
        2.0, "--max-rms", help="Largest RMS distance of the membrane voxels from the sphere (nm)."
    ),
    spheres_only: bool = typer.Option(
        False,
        "--spheres-only",
        help="Close spheres only; by default a membrane the sphere does not fit gets an "
        "ellipsoid, accepted under the same rules.",
    ),
    max_axis_ratio: float = typer.Option(
        3.0,
        "--max-axis-ratio",
        help="Longest over shortest semi-axis of an ellipsoid closed as a vesicle; "
        "flatter and longer membranes (sheets, tubes) are left open.",
    ),
    tilt_range: str = typer.Option(
        None,
        "--tilt-range",
        help="MIN,MAX tilt of the series "
        "(degrees; tilt axis y; default: as the map records it, "
        "else -60,60).",
    ),
    voxel_size: float = options.GivenVoxelSize,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Close vesicles across the missing wedge: fit a sphere (else an ellipsoid) to each
    membrane component and, where it fits and covers the visible part, paint the whole
    shell."""
    from ..segment.vesicles import VesicleParams
    from ..segment.workflow import close_vesicles_in_file

    result = close_vesicles_in_file(
        annotation,
        output,
        table_path=table_path,
        feature=feature,
        value=value,
        params=VesicleParams(
            thickness_nm=thickness,
            min_radius_nm=min_radius,
            max_radius_nm=max_radius,
            min_visible_coverage=min_coverage,
            max_rms_nm=max_rms,
            ellipsoids=not spheres_only,
            max_axis_ratio=max_axis_ratio,
        ),
        tilt_range_deg=_tilt_range(tilt_range),
        overwrite=overwrite,
        show_progress=not quiet,
        voxel_size_A=voxel_size,
    )
    typer.echo(result.tilt.describe())
    typer.echo(
        f"{result.n_closed} of {len(result.fits)} fits to membrane components accepted "
        f"and closed as vesicles ({result.n_ellipsoids} as ellipsoids); wrote {output} "
        f"and {result.table_path}"
    )


def _tilt_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(f"--tilt-range {text!r} is not MIN,MAX in degrees.") from None
    if 0 < hi - lo < 10 and max(abs(lo), abs(hi)) <= math.pi / 2 + 0.01:
        raise ParameterError(  # a trial gave -1.05,1.05 (±60° in radians), used as ±1°
            f"--tilt-range {text} spans {hi - lo:g}°, which no tilt series does; give it "
            f"in degrees ({math.degrees(lo):.0f},{math.degrees(hi):.0f} if it was radians)."
        )
    return lo, hi


@app.command()
@writes(folders=("out_dir",))
def extract(
    tomogram: Path = typer.Argument(..., help="Tomogram to cut subtomograms from."),
    particles: Path = typer.Argument(..., help="Picks (.star, .mod, .csv, .json)."),
    out_dir: Path = typer.Option(
        ...,
        "--out-dir",
        "-o",
        help="Folder to create: one MRC per particle, projections.mrcs, particles.star.",
    ),
    box: int = typer.Option(..., "--box", help="Box edge in voxels of the tomogram."),
    edge: str = typer.Option(
        "skip",
        "--edge",
        help="Particles whose box crosses a face: skip, or pad (with the mean of the inside).",
    ),
    invert: bool = typer.Option(False, "--invert", help="Multiply by −1 (protein white)."),
    picked_voxel_size: float = typer.Option(
        None,
        "--picked-voxel-size",
        help="Voxel size (Å) the picks were made at (e.g. on a binned copy); overrides "
        "what the file records.",
    ),
    tomo_name: str = typer.Option(
        None,
        "--tomo-name",
        help="Tomogram name selecting the rows "
        "of a file listing several (default: the tomogram's file "
        "stem, or its name in --tomograms).",
    ),
    tomograms_star: Path = typer.Option(
        None,
        "--tomograms",
        help="RELION 5 tomograms.star: names and centres for centred-Å coordinates, and "
        "each tomogram's voltage, Cs and amplitude contrast.",
    ),
    voxel_size: float = options.GivenVoxelSize,
    voltage: float = options.Voltage,
    cs: float = options.SphericalAberration,
    amplitude_contrast: float = options.AmplitudeContrast,
    tilt_range: str = typer.Option(
        None,
        "--tilt-range",
        help="MIN,MAX tilt of the series (degrees; tilt axis y): the missing wedge "
        "RELION gets as wedge.mrc (rlnCtfImage; default: as the tomogram or picks "
        "record it, else none).",
    ),
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Cut subtomograms (and their Z-projections) around picked positions."""
    from ..structure.workflow import extract_from_files

    check_output_folder(
        out_dir,
        [tomogram, particles] + ([tomograms_star] if tomograms_star is not None else []),
        ["particles.star", "particles.star.json", "projections.mrcs", "wedge.mrc"],
        overwrite,
    )
    with arguments_as(voltage_kV="voltage", cs_mm="cs"):
        table, kept, acquisition = extract_from_files(
            tomogram,
            particles,
            out_dir,
            box,
            edge,
            invert,
            picked_voxel_size,
            tomo_name,
            tomograms_star,
            voxel_size,
            overwrite,
            {"voltage_kV": voltage, "cs_mm": cs, "amplitude_contrast": amplitude_contrast},
            _tilt_range(tilt_range),
            show_progress=not quiet,
        )
    from ..io.image_names import names_run_from

    skipped = len(table) - len(kept)
    base = names_run_from(out_dir)
    typer.echo(
        f"wrote {len(kept)} subtomogram{'s' if len(kept) != 1 else ''} to {out_dir}"
        + (f" ({skipped} skipped at the faces)" if skipped else "")
        + (
            f"; particles.star names them from {base}, as RELION reads names from the "
            "folder it runs in"
            if base is not None
            else "; particles.star names them by absolute paths (the folder lies outside "
            "the working folder)"
        )
    )


@app.command()
@writes(files=("output",))
def clean(
    particles: Path = typer.Argument(..., help="particles.star of an extraction folder."),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Classified STAR to write (rlnClassNumber); class averages go beside it.",
    ),
    classes: int = typer.Option(4, "--classes", "-k", min=1, help="Number of 2D classes."),
    seed: int = options.Seed,
    overwrite: bool = options.Overwrite,
) -> None:
    """2D-classify the particles' Z-projections (rotation-invariant); show class averages."""
    from ..structure.workflow import clean_particle_file

    with arguments_as(n_classes="classes"):
        result = clean_particle_file(particles, output, classes, seed, overwrite)
    averages_path, gallery_path = result.averages_path, result.gallery_path
    counts = result.classes.counts
    typer.echo(
        f"wrote {output}, {averages_path.name} and {gallery_path.name}; class sizes "
        + ", ".join(f"{i + 1}: {c}" for i, c in enumerate(counts))
    )


@app.command()
@writes(files=("output",))
def select(
    particles: Path = typer.Argument(..., help="Classified STAR from `tomoscribe clean`."),
    output: Path = typer.Option(..., "--output", "-o", help="STAR of the particles kept."),
    remove: str = typer.Option(..., "--remove", help="Comma-separated classes to remove."),
    overwrite: bool = options.Overwrite,
) -> None:
    """Remove chosen 2D classes from a particle set."""
    from ..structure.workflow import select_classes_of_file

    try:
        drop = {int(v) for v in remove.split(",") if v.strip()}
    except ValueError:
        raise ParameterError(f"--remove {remove!r} is not a list of class numbers.") from None
    selected = select_classes_of_file(particles, output, drop, overwrite)
    typer.echo(f"kept {selected.n_kept} of {selected.n_total} particles in {output}")


@app.command()
@writes(folders=("out_dir",))
def average(
    particles: Path = typer.Argument(..., help="STAR listing subtomograms (rlnImageName)."),
    out_dir: Path = typer.Option(
        ...,
        "--out-dir",
        "-o",
        help="Folder to create for the map, half maps, FSC (CSV and PNG) and refined.star.",
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        help="Starting map (low-passed to --initial-lowpass); default: de novo.",
    ),
    iterations: int = typer.Option(
        4,
        "--iterations",
        min=0,
        help="Local refinement rounds (0 "
        "with --use-priors: average at the file's orientations, no "
        "search).",
    ),
    global_step: float = typer.Option(20.0, "--global-step", help="Global search step (°)."),
    use_priors: bool = typer.Option(
        False,
        "--use-priors",
        help="Start from the file's rlnAngleRot/Tilt/Psi and search locally only.",
    ),
    symmetry: str = typer.Option("C1", "--symmetry", help="Point group: C<n> or D<n>."),
    tilt_range: str = typer.Option(
        None,
        "--tilt-range",
        help="Tilt range min,max (°) of "
        "the tilt series: defines the missing wedge (default: as "
        "the particles record it, else -60,60).",
    ),
    max_shift: float = typer.Option(40.0, "--max-shift", help="Largest translation (Å)."),
    initial_lowpass: float = typer.Option(60.0, "--initial-lowpass", help="Å."),
    mask_diameter: float = typer.Option(
        None,
        "--mask-diameter",
        help="Diameter (Å) of the soft spherical mask particles are aligned within, as "
        "RELION's; keep neighbours out of it (default: 0.9 × the box).",
    ),
    seed: int = options.Seed,
    device: str = options.Device,
    overwrite: bool = options.Overwrite,
    quiet: bool = options.Quiet,
) -> None:
    """Align and average subtomograms (missing-wedge aware, gold-standard FSC)."""
    from ..structure.average import AverageParams
    from ..structure.fsc import describe_resolution
    from ..structure.results import AVERAGE_OUTPUTS
    from ..structure.workflow import average_particle_file

    check_output_folder(
        out_dir, [particles] + ([reference] if reference else []), AVERAGE_OUTPUTS, overwrite
    )
    params = AverageParams(
        iterations=iterations,
        global_step_deg=global_step,
        initial_lowpass_A=initial_lowpass,
        max_shift_A=max_shift,
        symmetry=symmetry,
        mask_diameter_A=mask_diameter,
        seed=seed,
    )
    tilt_range_deg = _tilt_range(tilt_range)
    if tilt_range_deg is not None:  # before the file is read and described (a trial)
        from ..core.wedge import check_tilt_range

        check_tilt_range(tilt_range_deg)
    say = (lambda m: None) if quiet else (lambda m: typer.echo(f"[average] {m}", err=True))
    result = average_particle_file(
        particles,
        out_dir,
        params,
        reference,
        use_priors,
        device,
        overwrite,
        say,
        tilt_range_deg=tilt_range_deg,
    )
    typer.echo(result["tilt"].describe())
    typer.echo(
        f"wrote {out_dir}/average.mrc: FSC 0.143 {describe_resolution(result['fsc'], 0.143)}, "
        f"0.5 {describe_resolution(result['fsc'], 0.5)} ({result['n_particles']} particles)"
    )
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
