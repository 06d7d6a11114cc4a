"""Simulation workflows on files: what ``tomoscribe simulate structure | cell |
subtomograms | particles2d | micrographs`` do, as calls (each writes its outputs with
their provenance record)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.acquisition import Acquisition
from ..core.legend import (
    BACKGROUND_COLOUR,
    BACKGROUND_NAME,
    PALETTE,
    Legend,
    LegendEntry,
    write_legend,
)
from ..errors import ParameterError
from ..io import write_volume
from ..outputs import atomic_path, check_outputs, output_folder, write_provenance
from ..volume import Volume
from .cell import (
    CELL_CLASS_IDS,
    TEMPLATE_CLASS_BASE,
    CellParams,
    check_filament_room,
    check_templates,
    make_cell,
)
from .imaging import ImagingParams, image_volume


def structure_density_file(
    model: Path,
    output: Path,
    voxel_size_A: float = 10.0,
    resolution_A: float = 20.0,
    assembly: str | None = None,
    box: int | None = None,
) -> Volume:
    """The electron-scattering density of an atomic model (PDB/mmCIF), centred in a cubic
    box (:func:`~tomoscribe.simulate.structures.structure_density`), written to
    ``output`` with its provenance record; returns it."""
    from .structures import structure_density

    volume = structure_density(model, voxel_size_A, resolution_A, assembly=assembly, box_voxels=box)
    write_volume(output, volume)
    write_provenance(
        output,
        "simulate structure",
        {
            "voxel_size_A": voxel_size_A,
            "resolution_A": resolution_A,
            "assembly": assembly,
            "box": box,
        },
        [model],
    )
    return volume


#: Features per 512 × 512 voxels of a simulated cell's area, unless told otherwise.
CELL_COUNTS_PER_512 = {"vesicles": 6, "organelles": 1, "microtubules": 3, "actin": 6, "gold": 8}


def cell_counts(shape_zyx: tuple[int, int, int], **given: int | None) -> dict[str, int]:
    """How many of each feature a cell of ``shape_zyx`` holds: ``given`` where not None,
    else :data:`CELL_COUNTS_PER_512` scaled to its area (``n_vesicles=…`` and so on, as
    :class:`~tomoscribe.simulate.cell.CellParams` takes them)."""
    area = shape_zyx[1] * shape_zyx[2] / 512**2
    return {
        f"n_{name}": given[name] if given.get(name) is not None else int(round(per_512 * area))
        for name, per_512 in CELL_COUNTS_PER_512.items()
    }


#: Float32 copies of the cell's volume that simulation holds at its peak (density,
#: labels, instances, the imaging's working arrays and the tomogram).  Measured: peak RSS
#: less the imports' 0.34 GB was 0.21 GB for 256×256×64 voxels (12.5 copies) and 1.45 GB
#: for 512×512×128 (10.8), 2 cores of an AMD EPYC, `/usr/bin/time -v`, 2026-12-02.
CELL_VOLUME_COPIES = 12


def check_cell_memory(shape_zyx) -> None:
    """Refuse a cell whose simulation needs more than half the machine's memory (a
    trial's --size 100000,100000,1000 asked numpy for 36 TiB and ended in its error)."""
    from ..volume import check_fits_in_memory

    need = CELL_VOLUME_COPIES * 4 * float(np.prod([int(n) for n in shape_zyx]))
    size = " × ".join(str(n) for n in shape_zyx[::-1])
    check_fits_in_memory(need, f"simulating a cell of {size} voxels", "simulate a smaller --size")


def simulate_cell_files(
    out_dir: Path,
    params: CellParams,
    imaging: ImagingParams,
    say: Callable[[str], None] = lambda message: None,
    tomo_name: str | None = None,
) -> tuple[pd.DataFrame, dict[str, str], Acquisition]:
    """Simulate a cellular tomogram with its truth and write it to ``out_dir``.

    The tomogram is named ``tomo_name`` (``rlnTomoName`` of its particles, recorded in
    its acquisition record and passed on to every map made from it), by default the
    output folder's name: two simulations' picks merged into one file stay apart (a
    trial: every simulation was ``tomogram``, so ``extract`` cut one cell's picks from
    another cell's tomogram without a word).

    Writes ``density.mrc``, ``labels.mrc`` with its legend ``labels.mrc.legend.json``
    (class ids → names, as ``merge`` writes one, so ``pick -f 3j9i`` finds a feature
    by name and no other class is taken for it), ``instances.mrc``, ``tomogram.mrc``,
    ``tilt_series.mrc`` with ``tilt_series.tlt`` (angles, degrees) and
    ``particles.star`` (RELION coordinates in voxels, angles template → particle),
    moved in as one commit once everything is computed (``outputs.output_folder``:
    a run killed while moving them in is finished by the next, and its files are not
    read before), and the provenance records: the
    tomogram's (the parameters, class ids, acquisition, what was placed) and the truth
    maps' (their acquisition, so commands on them know the tilt range).  Every name is
    checked before the work: a user's file among them stops the run before any write.
    Returns the particles' table, the class ids (label value → class name) and the
    acquisition record (tilt range, voxel size, tomogram name).
    """
    names = (*CELL_OUTPUTS, *(f"{name}.json" for name in CELL_RECORDED))
    check_outputs([out_dir / name for name in names])
    check_filament_room(params)
    check_templates(params)
    name = simulated_tomo_name(out_dir, tomo_name)
    say("building the phantom")
    density, labels, instances, particles = make_cell(params)
    placed = _spheres_placed(params, density.metadata.get("placed", {}))
    say("imaging: projecting, CTF, noise, back-projecting")
    imaged = image_volume(density.data, params.voxel_size_A, imaging)
    class_ids = {str(v): k for k, v in CELL_CLASS_IDS.items()}
    class_ids.update({str(TEMPLATE_CLASS_BASE + i): n for i, n in enumerate(params.templates_uM)})
    angles = imaged["angles_deg"]
    acquisition = Acquisition((min(angles), max(angles)), params.voxel_size_A, name)
    record = {
        "cell": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.__dict__.items()},
        "imaging": imaging.as_dict(),
        "placed": placed,  # what found room: the truth's counts, not those asked for
        "class_ids": class_ids,
        "euler_convention": "RELION (rot, tilt, psi), degrees: template → particle "
        "= inverse of scipy intrinsic ZYZ",
    }
    microscope = _imaged_with(imaging)  # extract's optics block (a trial: "not given")
    # Everything is computed; written into a staging folder and moved in as one commit
    # (a trial's rerun, killed while writing file by file, left two seeds' files mixed)
    with output_folder(out_dir, step="simulate cell") as staging:
        _write_cell_volumes(staging, params, (density, labels, instances), imaged)
        write_truth_particles(
            staging / "particles.star",
            particles,
            params.voxel_size_A,
            name,
            acquisition.tilt_range_deg,
            imaged["tomogram"].shape,
        )
        for recorded in CELL_RECORDED:  # the truth maps too: `pick` on labels.mrc reads
            write_provenance(  # its tilt range
                staging / recorded,
                "simulate cell",
                record if recorded == "tomogram.mrc" else {"truth_of": "tomogram.mrc"},
                extra={"acquisition": {**acquisition.as_dict(), "microscope": microscope}},
            )
    return particles, class_ids, acquisition


def _write_cell_volumes(out_dir: Path, params: CellParams, truth: tuple, imaged: dict) -> None:
    """The phantom's maps (density, labels with their legend, instances), the tomogram
    and the tilt series with its angles, each file atomically."""
    density, labels, instances = truth
    vs = (params.voxel_size_A,) * 3
    write_volume(out_dir / "density.mrc", density)
    write_volume(out_dir / "labels.mrc", labels)
    write_legend(out_dir / "labels.mrc", _cell_legend(params))
    ids = instances.data
    write_volume(
        out_dir / "instances.mrc",
        Volume(ids.astype(np.int16) if ids.max() < 32767 else ids.astype(np.float32), vs),
    )
    write_volume(out_dir / "tomogram.mrc", Volume(imaged["tomogram"], vs))
    write_volume(  # a stack of images (space group 0), as IMOD writes a tilt series
        out_dir / "tilt_series.mrc",
        Volume(imaged["tilt_series"], vs, metadata={"image_stack": True}),
    )
    with atomic_path(out_dir / "tilt_series.tlt") as tmp:
        tmp.write_text("".join(f"{a:.2f}\n" for a in imaged["angles_deg"]))


def simulated_tomo_name(out_dir: Path, tomo_name: str | None = None) -> str:
    """The name of a simulated tomogram: ``tomo_name`` when given, else the name of its
    output folder (the working folder's own name for ``.``; blanks in it become ``_``,
    as a STAR value holds none)."""
    import re

    if tomo_name is not None:
        name = str(tomo_name).strip()
        if not name or re.search(r"\s", name):
            raise ParameterError(
                f"--tomo-name {tomo_name!r} is not a tomogram name: give one word without "
                "blanks (it is written as rlnTomoName)."
            )
        return name
    return re.sub(r"\s+", "_", Path(out_dir).resolve().name) or "tomogram"


def _imaged_with(imaging: ImagingParams) -> dict:
    """The voltage (kV), Cs (mm) and amplitude contrast the tomogram was imaged with, as
    the acquisition record's ``microscope`` (``io.microscope.recorded_microscope``)."""
    return {
        "voltage_kV": float(imaging.voltage_kV),
        "cs_mm": float(imaging.cs_mm),
        "amplitude_contrast": float(imaging.amplitude_contrast),
    }


def _spheres_placed(params, placed: dict) -> dict:
    """``placed`` (vesicles and organelles that found room), said when fewer than asked
    (a trial asked for 5 vesicles in 128 × 128 × 48 and got 2, its record saying 5);
    a template whose concentration puts no particle in the volume is said too (a
    trial's 0.06 µM wrote "0 particles" quietly)."""
    import warnings

    from .cell import particles_for_concentration

    for name, concentration in params.templates_uM.items():
        if particles_for_concentration(concentration, params.shape, params.voxel_size_A) == 0:
            one = 1.0 / max(particles_for_concentration(1e6, params.shape, params.voxel_size_A), 1)
            warnings.warn(
                f"{concentration:g} µM of {name} puts no particle in this volume (one "
                f"particle is {one * 1e6:.2g} µM here); raise the concentration or enlarge "
                "the volume.",
                stacklevel=3,
            )

    for kind, asked in (("vesicles", params.n_vesicles), ("organelles", params.n_organelles)):
        got = placed.get(kind, asked)
        if got < asked:
            warnings.warn(
                f"only {got} of the {asked} {kind} asked for found room in the "
                f"{' × '.join(map(str, params.shape[::-1]))}-voxel cell beside its other "
                "contents; the record and truth maps hold those placed.",
                stacklevel=3,
            )
    return placed


#: The volumes :func:`simulate_cell_files` writes a provenance record for (the
#: tomogram's holds the parameters; each records the acquisition).
CELL_RECORDED = ("tomogram.mrc", "labels.mrc", "instances.mrc", "density.mrc")
#: What :func:`simulate_cell_files` writes (besides the provenance records).
CELL_OUTPUTS = (
    "density.mrc",
    "labels.mrc",
    "labels.mrc.legend.json",
    "instances.mrc",
    "tomogram.mrc",
    "tilt_series.mrc",
    "tilt_series.tlt",
    "particles.star",
)


def _cell_legend(params: CellParams) -> Legend:
    """The label map's legend: the cell's classes, then the templates (ids from 10)."""
    names = {v: k for k, v in CELL_CLASS_IDS.items() if v > 0}
    names.update({TEMPLATE_CLASS_BASE + i: n for i, n in enumerate(params.templates_uM)})
    entries = {0: LegendEntry(BACKGROUND_NAME, BACKGROUND_COLOUR)}
    for k, (label, name) in enumerate(sorted(names.items())):
        entries[label] = LegendEntry(name, PALETTE[k % len(PALETTE)])
    return Legend(entries)


#: Float32 box³ copies that simulating a subtomogram dataset holds at its peak: per
#: subtomogram, and besides them (templates, the imaging's working arrays).  Measured:
#: peak RSS less the imports' 0.25 GB was 0.77 GB for 4 subtomograms of 192³ and 1.78
#: GB for 16 (27 and 63 copies), 2 cores of an AMD EPYC, `/usr/bin/time -v`, 2026-12-02.
SUBTOMOGRAM_COPIES, SUBTOMOGRAM_WORKING_COPIES = 3, 16


def check_subtomogram_memory(count: int, box: int) -> None:
    """Refuse a dataset whose simulation needs more than half the machine's memory (a
    trial's --box 2000 ended in numpy's MemoryError, exit 1)."""
    from ..volume import check_fits_in_memory

    need = 4.0 * box**3 * (SUBTOMOGRAM_COPIES * count + SUBTOMOGRAM_WORKING_COPIES)
    what = f"simulating {count} subtomograms of {box}³ voxels"
    check_fits_in_memory(need, what, "ask for a smaller --box or fewer (--n)")


def subtomogram_dataset_file(output: Path, structures: list[str], n_per_class: int, params):
    """A labelled subtomogram dataset
    (:func:`~tomoscribe.simulate.subtomograms.simulate_subtomograms`, ``params`` its
    SubtomogramParams) written to ``output`` (one zarr store, its record in the store's
    attributes) with its provenance record ``OUTPUT.json``; returns the dataset.
    ``structures``: bundled template names or map files (a class named by the file's
    stem; its voxel size from its header), as ``simulate micrographs --templates``."""
    from ..io import read_structure_map
    from .subtomograms import save_dataset, simulate_subtomograms

    params.validate()
    classes = len(structures) + (1 if params.include_empty else 0)
    check_subtomogram_memory(classes * n_per_class, params.box)
    maps = [Path(s) for s in structures if Path(s).suffix]
    templates = {}
    for path in maps:
        templates[path.stem] = read_structure_map(path, "a structure")
    names = [Path(s).stem if Path(s).suffix else s for s in structures]
    data = simulate_subtomograms(names, n_per_class, params, templates=templates or None)
    save_dataset(output, data)
    write_provenance(
        output,
        "simulate subtomograms",
        {"structures": list(structures), "n_per_class": n_per_class, **params.__dict__},
        maps,
        extra={"class_names": list(data["class_names"]), "n": len(data["labels"])},
    )
    return data


def particle_stack_files(
    out_dir: Path,
    n: int,
    box: int,
    pixel_size_A: float,
    templates: tuple[str, ...],
    views: int,
    junk: float,
    defoci_um: tuple[float, ...],
    snr: float,
    seed: int = 0,
) -> dict:
    """A particle stack with truth for 2D classification
    (:func:`~tomoscribe.simulate.particles2d.simulate_particle_stack`) written into the
    output folder ``out_dir`` (:func:`~tomoscribe.simulate.particles2d.write_particle_stack`)
    with the provenance record of ``particles.star``; returns the simulation."""
    from .particles2d import simulate_particle_stack, write_particle_stack

    sim = simulate_particle_stack(
        n, box, pixel_size_A, templates, views, junk, defoci_um, snr, seed=seed
    )
    with output_folder(out_dir, step="simulate particles2d") as staging:
        write_particle_stack(staging, sim, pixel_size_A, final_folder=out_dir)
        write_provenance(
            staging / "particles.star",
            "simulate particles2d",
            {
                "n": n,
                "box": box,
                "pixel_size_A": pixel_size_A,
                "templates": templates,
                "views": views,
                "junk": junk,
                "defocus_um": defoci_um,
                "snr": snr,
                "seed": seed,
            },
        )
    return sim


def write_truth_particles(
    path: Path,
    particles: pd.DataFrame,
    voxel_size_A: float,
    tomo_name: str,
    tilt_range_deg: tuple[float, float],
    tomogram_shape_zyx: tuple[int, int, int],
) -> None:
    """The simulator's particle table as a RELION STAR file (coordinates in voxels of
    ``voxel_size_A``, and RELION 5's centred Å in the tomogram of ``tomogram_shape_zyx``
    voxels, recorded as ``pick`` records them), with its class names, instance ids and
    the tilt range (degrees) of the tilt series.  (RELION 5 reads the centred Å only: a
    trial's RELION 5 reading found no positions in the pixel columns alone.)"""
    import starfile

    from ..io.formats.relion import centred_coordinates_A

    xyz = particles[["x_A", "y_A", "z_A"]].to_numpy(float) / voxel_size_A
    centred = centred_coordinates_A(xyz, tomogram_shape_zyx, voxel_size_A)
    table = pd.DataFrame(
        {
            "rlnTomoName": tomo_name,
            "rlnCoordinateX": xyz[:, 0],
            "rlnCoordinateY": xyz[:, 1],
            "rlnCoordinateZ": xyz[:, 2],
            "rlnCenteredCoordinateXAngst": centred[:, 0],
            "rlnCenteredCoordinateYAngst": centred[:, 1],
            "rlnCenteredCoordinateZAngst": centred[:, 2],
            "rlnAngleRot": particles["rot"],
            "rlnAngleTilt": particles["tilt"],
            "rlnAnglePsi": particles["psi"],
            "rlnClassNumber": particles["class_id"],
            "tsClassName": particles["class"],
            "tsInstance": particles["instance"],
            "tomoscribeTiltMinDeg": float(tilt_range_deg[0]),
            "tomoscribeTiltMaxDeg": float(tilt_range_deg[1]),
            "rlnMagnification": 10000.0,
            "rlnDetectorPixelSize": float(voxel_size_A),
            "rlnImagePixelSize": float(voxel_size_A),
        }
    )
    with atomic_path(path) as tmp:
        starfile.write({"particles": table}, tmp)


def simulate_micrographs_files(
    out_dir: Path,
    params,
    templates: list[str],
    n: int = 20,
    defocus_um: list[float] = (0.8, 1.9, 3.0),
    carbon_fraction: float = 0.25,
    annotate: int = 3,
    boxes_per_set: int = 15,
    say: Callable[[str], None] = lambda message: None,
) -> pd.DataFrame:
    """Simulate ``n`` single-particle micrographs with their truth into the folder
    ``out_dir``.

    Writes ``micrographs/NAME.mrc``, ``masks/NAME.mrc`` (int16: contamination blob id,
    −1 carbon, 0 ice), ``truth.star`` (every particle with its orientation, defocus,
    class, aggregate and template), ``truth.json`` (the parameters, particle diameter
    and box in pixels), ``micrographs_ctf.star`` (each micrograph's true defocus, as a
    CtfFind job writes its estimates) and, for the first ``annotate`` micrographs, an
    annotator's ``boxes_good.star``, ``boxes_background.star`` and ``boxes_bad.star``.

    Parameters
    ----------
    params : :class:`tomoscribe.simulate.micrographs.MicrographParams` (shape, pixel
        size in Å, SNR, particles, aggregates and contamination per 1024², seed)
    templates : bundled template names or map files
    defocus_um : underfocus values (µm), cycled over the micrographs
    carbon_fraction : fraction of micrographs with a carbon edge

    Returns the truth table (one row per particle).
    """
    from ..io.boxfiles import write_star
    from .micrographs import annotator_boxes, load_templates, simulate_micrograph_set

    params.validate()
    if annotate > n:
        raise ParameterError(
            f"`annotate` {annotate} is more than the {n} micrographs.", parameter="annotate"
        )
    found = load_templates(templates)
    ny, nx = params.shape
    say(f"simulating {n} micrograph{'s' * (n != 1)} of {nx}×{ny}")
    truths = simulate_micrograph_set(found, n, list(defocus_um), carbon_fraction, params)
    boxes = None
    if annotate:
        try:
            boxes = annotator_boxes(
                dict(list(truths.items())[:annotate]),
                boxes_per_set,
                np.random.default_rng(params.seed),
            )
        except ParameterError as err:  # advice in this function's arguments
            raise ParameterError(
                str(err).removesuffix(" (`n_per_set`).")
                + "; annotate more micrographs (`annotate`), ask for fewer boxes per set "
                "(`boxes_per_set`) or simulate larger micrographs.",
                parameter=["annotate", "boxes_per_set"],
            ) from None
    vs = (params.pixel_size_A,) * 3
    with output_folder(out_dir, True, [], step="simulate micrographs") as staging:
        rows = []
        for name, truth in truths.items():
            write_volume(staging / "micrographs" / f"{name}.mrc", Volume(truth["image"][None], vs))
            masks = truth["contamination"].astype(np.int16)
            masks[truth["carbon"]] = -1
            write_volume(staging / "masks" / f"{name}.mrc", Volume(masks[None], vs))
            rows.append(truth["particles"].assign(micrograph=name))
        table = pd.concat(rows, ignore_index=True)
        files = _relion_names(out_dir, list(truths))  # one name per micrograph, every file
        write_star(staging / "truth.star", table, files, extra=TRUTH_COLUMNS)
        if boxes is not None:
            for kind, rows_ in boxes.groupby("set"):
                write_star(staging / f"boxes_{kind}.star", rows_, files)
        _write_ctf_estimates(staging, files, list(defocus_um), params)
        record = _truth_record(params, truths, defocus_um, templates, carbon_fraction)
        with atomic_path(staging / "truth.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    return table


def _relion_names(out_dir, names: list[str]) -> dict[str, str]:
    """Each micrograph's ``rlnMicrographName``: its file named from the working folder,
    as RELION reads names (from its project folder), the same in every STAR file the
    set writes (a trial: truth.star and the boxes said ``mic_000.mrc`` where
    micrographs_ctf.star said ``OUT/micrographs/mic_000.mrc``, so nothing matched)."""
    import os

    from ..io.image_names import relion_image_name

    final = Path(out_dir)
    return {
        n: relion_image_name(os.path.abspath(final / "micrographs" / f"{n}.mrc"), final)
        for n in names
    }


def _write_ctf_estimates(staging: Path, files: dict[str, str], defocus_um, params) -> None:
    """``micrographs_ctf.star`` as a CtfFind job writes it (the true defocus, cycled as
    :func:`~tomoscribe.simulate.micrographs.simulate_micrograph_set` cycles it), each
    micrograph named by ``files`` (:func:`_relion_names`): what ``spa extract --ctf``
    and RELION's Extract take."""
    from ..io.micrograph_ctf import write_micrograph_ctf

    names = list(files)
    defoci = {n: float(defocus_um[k % len(defocus_um)]) for k, n in enumerate(names)}
    microscope = {
        "voltage_kV": params.voltage_kV,
        "cs_mm": params.cs_mm,
        "amplitude_contrast": params.amplitude_contrast,
    }
    write_micrograph_ctf(
        staging / "micrographs_ctf.star", files, defoci, params.pixel_size_A, microscope
    )


def _truth_record(params, truths: dict, defocus_um, templates, carbon_fraction) -> dict:
    """``truth.json`` of ``simulate micrographs``: the shared parameters, what each
    micrograph was made with (the set varies defocus and carbon), particle and box size."""
    shared = {k: v for k, v in params.as_dict().items() if k not in ("defocus_um", "carbon")}
    per_micrograph = {
        name: {
            "defocus_um": float(truth["particles"]["defocus_um"].iloc[0])
            if len(truth["particles"])
            else None,
            "carbon": bool(truth["carbon"].any()),
        }
        for name, truth in truths.items()
    }
    diameter = next(iter(truths.values()))["diameter_px"]
    return {
        "params": shared,
        "micrographs": per_micrograph,
        "defocus_um": list(defocus_um),
        "templates": ",".join(templates),
        "carbon_fraction": carbon_fraction,
        "particle_diameter_px": diameter,
        "box_px": int(2 * round(0.75 * diameter)),
        "masks": "int16: blob id > 0 contamination, -1 carbon, 0 ice",
    }


#: The truth table's columns beyond the coordinates, as written to ``truth.star``.
TRUTH_COLUMNS = {
    "rot": "rlnAngleRot",
    "tilt": "rlnAngleTilt",
    "psi": "rlnAnglePsi",
    "defocus_um": "tsDefocusMicrometre",
    "class": "tsClass",
    "aggregate": "tsAggregate",
    "template": "tsTemplate",
}
