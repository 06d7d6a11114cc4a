"""Single-particle image stacks (MRC) and their RELION particle STAR files.

A :class:`ParticleSource` lists particle images without loading them: MRC stacks are
opened with ``mrcfile.mmap`` and read a chunk at a time, so stacks larger than memory
stream. Without a STAR file every image of every stack is a particle, in order. With
one, the particles are its rows: ``rlnImageName`` is ``N@STACK`` (N counts from 1; STACK
found as :mod:`tomoscribe.io.image_names` finds it: beside the STAR file, from the
working folder as RELION reads it from its project folder, or above the STAR's folder;
else the name of one of the stacks given), and the CTF of each
particle is read from RELION's columns ``rlnDefocusU``/``V`` (Å), ``rlnDefocusAngle``
(°), ``rlnVoltage`` (kV), ``rlnSphericalAberration`` (mm), ``rlnAmplitudeContrast``,
``rlnPhaseShift`` (°, a phase plate's), ``rlnCtfBfactor`` (Å²) and ``rlnCtfScalefactor``
(RELION's CTF::getCTF: −sin(γ) · exp(−B k²/4) · scale), on the particle rows or in the
``optics`` block (joined on ``rlnOpticsGroup``, so that each particle has its own
group's, as RELION's ``ObservationModel`` reads them), with
``rlnCtfDataAreCtfPremultiplied`` (images already multiplied by their CTF, which is then
not applied again) and ``rlnCtfDataArePhaseFlipped`` (images already phase-flipped); the
pixel size is ``rlnImagePixelSize`` there, else RELION 3.0's ``rlnDetectorPixelSize``
(µm) × 10⁴ / ``rlnMagnification``, else the stacks' header (0 or 1 Å there is unset).
Each particle keeps its own group's pixel size for its CTF and its origin in Å, but 2D
classes need one sampling: groups whose pixel sizes differ by over 1% are refused, and
so is a STAR's size that a stack's header contradicts by over 1%, unless
``pixel_size_A`` is given (then every particle is taken at that size). The images are
taken as RELION has them (protein white), with RELION's CTF sign (``core.ctf``).
Assignments are written back as RELION writes a 2D classification's
``run_itNNN_data.star``: the input columns plus ``rlnClassNumber``, ``rlnAnglePsi`` and
``rlnOriginXAngst``/``rlnOriginYAngst``, with ``rlnImageName`` naming each stack from
the working folder (absolute where the STAR file or the stack lies outside it), and an
optics block as RELION 3.1+ reads it (see
:func:`write_assignments`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, InvalidDataError, ParameterError, missing_file
from ..outputs import note_input
from ..said import said_when_done
from .formats.relion import checked_optics_groups
from .image_names import found_image_file, relion_image_name
from .microscope import MICROSCOPE_LABELS, checked_microscope, overruled
from .mrc import zyx_ordered

CTF_DEFAULTS = {"voltage_kV": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.1}
_CTF_COLUMNS = {
    "rlnVoltage": "voltage_kV",
    "rlnSphericalAberration": "cs_mm",
    "rlnAmplitudeContrast": "amplitude_contrast",
}
#: RELION's other CTF columns (CTF::getCTF's K5, K4 and scale), and their values when
#: a file has none: phase shift (degrees, a phase plate's), B-factor (Å²), scale
_CTF_EXTRA_COLUMNS = (
    ("rlnPhaseShift", "phase_shift_deg", 0.0),
    ("rlnCtfBfactor", "bfactor_A2", 0.0),
    ("rlnCtfScalefactor", "scale", 1.0),
)


@dataclass
class ParticleSource:
    """Particles of one or more MRC stacks, read lazily.

    Attributes
    ----------
    stacks : the MRC files.
    stack_of, index_in_stack : (p,) which stack holds each particle, and where (from 0).
    box : image edge in pixels (all images square, one size).
    pixel_size_A : Å per pixel of the stack as a whole (the class averages'): the
        median of ``pixel_sizes_A``, which agree within 1%.
    ctf : per-particle CTF table (``defocus_u_um``, ``defocus_v_um``,
        ``astigmatism_deg``, ``voltage_kV``, ``cs_mm``, ``amplitude_contrast``,
        ``pixel_size_A``: each particle's optics group's; ``phase_shift_deg``,
        ``bfactor_A2``, ``scale`` (RELION's rlnPhaseShift, rlnCtfBfactor,
        rlnCtfScalefactor; 0, 0, 1 when absent); ``premultiplied``: the image
        is already multiplied by its CTF, RELION's ``rlnCtfDataAreCtfPremultiplied``;
        ``phase_flipped``: it is already phase-flipped, ``rlnCtfDataArePhaseFlipped``)
        or None.
    table, optics : the STAR file's particle rows and optics block, when read from one.
    ctf_convention : the sign of the CTF (``core.ctf``): ``relion``, as RELION has its
        particles (protein white), for every stack a STAR file describes.
    pixel_sizes_A : (p,) Å per pixel of each particle (its optics group's), or None
        when all are ``pixel_size_A``.
    microscope : ``voltage_kV``, ``cs_mm``, ``amplitude_contrast`` given by the user
        for particles whose files give none (written into a new optics block).
    """

    stacks: list[Path]
    stack_of: np.ndarray
    index_in_stack: np.ndarray
    box: int
    pixel_size_A: float
    ctf: pd.DataFrame | None = None
    table: pd.DataFrame | None = None
    optics: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    ctf_convention: str = "relion"
    pixel_sizes_A: np.ndarray | None = None
    microscope: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stack_of)

    @property
    def particle_pixel_sizes_A(self) -> np.ndarray:
        """(p,) Å per pixel of each particle."""
        if self.pixel_sizes_A is None:
            return np.full(len(self), float(self.pixel_size_A))
        return np.asarray(self.pixel_sizes_A, float)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Images of particles ``indices`` as float32 (len, box, box)."""
        import mrcfile

        indices = np.asarray(indices)
        out = np.empty((len(indices), self.box, self.box), np.float32)
        for s in np.unique(self.stack_of[indices]):
            rows = np.flatnonzero(self.stack_of[indices] == s)
            with mrcfile.mmap(self.stacks[s], mode="r", permissive=True) as mrc:
                data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
                data = zyx_ordered(data, mrc.header, self.stacks[s])  # the header's axes
                out[rows] = data[self.index_in_stack[indices[rows]]]
        return out

    def chunks(self, size: int):
        """Yield ``(start, images)`` for consecutive chunks of ``size`` particles."""
        for start in range(0, len(self), size):
            yield start, self.read(np.arange(start, min(start + size, len(self))))


def _stack_shape(path: Path, named: bool = False) -> tuple[int, int, int, float]:
    """(count, ny, nx, voxel size in Å or 0) of an MRC stack, refused when unusable;
    ``named``: a STAR file names it as a stack (no check of its header's kind)."""
    import mrcfile

    note_input(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        # mrcfile's permissive complaints are kept until the file is known to be read: a
        # trial's PNG printed four of them before the refusal
        with said_when_done() as caught:
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                if mrc.data is None:
                    raise ValueError(str(caught[0].message) if caught else "no data")
                data = mrc.data if mrc.data.ndim == 3 else mrc.data[None]
                shape = zyx_ordered(data, mrc.header, path).shape
                voxel = float(mrc.voxel_size.x)
                header = mrc.header.copy()
    except (ValueError, OSError) as err:
        raise InputFileError(
            f"{path} is not a readable MRC stack ({str(err).splitlines()[0][:120]}); "
            "check that it is complete and really an MRC file."
        ) from None
    if not named:
        _check_not_volume(path, header)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise InputFileError(f"{path} holds {len(shape)}-dimensional data, not images.")
    return shape[0], shape[1], shape[2], voxel


def _replaced_pixel_size(merged: pd.DataFrame, pixel_size_A: float | None, star: Path):
    """A note when a given ``pixel_size_A`` replaces another that the STAR records for
    some particles (a trial gave 4 Å over a file saying 5, without a word; spa pick said
    so already); none otherwise."""
    if not pixel_size_A or "rlnImagePixelSize" not in merged:
        return []
    stated = pd.to_numeric(merged["rlnImagePixelSize"], errors="coerce").dropna()
    other = stated[(stated - pixel_size_A).abs() > 0.01 * pixel_size_A]
    if not len(other):
        return []
    return [
        f"the given pixel size {pixel_size_A:g} Å replaces the {other.iloc[0]:g} Å "
        f"{star.name} records for {len(other)} of its particles"
    ]


def _check_not_volume(path: Path, header) -> None:
    """An MRC file given as a stack whose header says, twice, that it is a volume (a
    space group of 1–230, where 0 marks images and image stacks, and as many sampled
    sections as slices, where a stack samples one), unless its name says stack
    (``.mrcs``, ``.st``): refused when its sections are not square (no particle box is),
    else read with a warning (cisTEM writes its square .mrc stacks so).  A trial's
    tomogram given to ``classify2d`` was classified as 96 "particles" without a word."""
    import warnings

    ispg, mz, nz = int(header.ispg), int(header.mz), int(header.nz)
    if not (1 <= ispg <= 230 and mz == nz > 1) or path.suffix.lower() in (".mrcs", ".st"):
        return
    nx, ny = int(header.nx), int(header.ny)
    if nx != ny:
        raise InvalidDataError(
            f"{path.name} is a volume of {nx} × {ny} × {nz} voxels (its header gives space "
            f"group {ispg}), not a stack of square particle images; give the particles' "
            ".mrcs stack or the STAR file that names them."
        )
    warnings.warn(
        f"{path.name}'s header calls it a volume (space group {ispg}, {nz} sections); it "
        f"is read as a stack of {nz} particle images of {nx} × {ny}: if it is a tomogram "
        "or a map, give the particles instead.",
        stacklevel=4,
    )


def _check_boxes(shapes: dict[Path, tuple]) -> int:
    sizes = {(ny, nx) for _, ny, nx, _ in shapes.values()}
    for path, (count, ny, nx, _) in shapes.items():
        if ny != nx:
            micrograph = count == 1 and min(nx, ny) >= 256
            raise InputFileError(
                f"{path} holds {'one ' if count == 1 else ''}{nx}×{ny} "
                f"image{'s' if count > 1 else ''}; particles must be square"
                + (
                    " (a micrograph? cut its particles out first: `tomoscribe spa extract`)."
                    if micrograph
                    else "."
                )
            )
    if len(sizes) > 1:
        names = [p.name for p in shapes]  # a trial: "particles.mrcs 64², particles.mrcs 48²"
        shown = names if len(set(names)) == len(names) else [str(p) for p in shapes]
        described = ", ".join(f"{n} {ny}²" for n, (_, ny, _, _) in zip(shown, shapes.values()))
        raise ParameterError(
            f"the particle stacks have mixed box sizes ({described}); "
            "classify stacks of one box size together."
        )
    return sizes.pop()[0]


def open_particles(
    stacks: list[Path],
    star: Path | None = None,
    pixel_size_A: float | None = None,
    microscope: dict | None = None,
) -> ParticleSource:
    """The particles of ``stacks`` (all their images), or of ``star``'s rows.

    Parameters
    ----------
    stacks : MRC stacks; with ``star`` they may be empty (the STAR names its stacks)
        or name the files its ``rlnImageName`` entries refer to.
    star : a RELION particle STAR file, or None.
    pixel_size_A : Å per pixel, overriding the files.
    microscope : ``voltage_kV`` (kV), ``cs_mm`` (mm), ``amplitude_contrast``
        (fraction) for particles whose files give none (None values: not given): the
        CTF of a STAR without them, and the optics block written (:func:`new_optics`);
        never over a file's own values.
    """
    stacks = [Path(p) for p in stacks]
    if pixel_size_A is not None and not pixel_size_A > 0:
        raise ParameterError(
            f"`pixel_size_A` must be positive (Å), not {pixel_size_A}.", parameter="pixel_size_A"
        )
    microscope = checked_microscope(microscope)
    if star is None:
        if not stacks:
            raise ParameterError("give at least one particle stack (MRC) or a STAR file.")
        shapes = {p: _stack_shape(p) for p in stacks}
        box = _check_boxes(shapes)
        counts = [shapes[p][0] for p in stacks]
        stack_of = np.repeat(np.arange(len(stacks)), counts)
        index = np.concatenate([np.arange(c) for c in counts])
        size = pixel_size_A or _stacks_pixel_size(shapes)
        notes = ["no STAR file gives the CTF: the images are averaged without CTF correction"]
        missing = [MICROSCOPE_LABELS[k] for k in ("voltage_kV", "cs_mm") if k not in microscope]
        if missing:
            notes.append(
                f"particles.star's optics block gets no {' or '.join(missing)} (no file "
                "gives them, and none is made up), so RELION's CTF-aware jobs refuse it "
                "until they are added (classify2d --voltage, --cs, --amplitude-contrast)"
            )
        return ParticleSource(
            stacks, stack_of, index, box, float(size), notes=notes, microscope=microscope
        )
    table, optics = read_particle_star(star)
    files, stack_of, index = _image_names(table, star, stacks)
    _check_all_given_used(star, stacks, files)
    shapes = {p: _stack_shape(p, named=True) for p in files}
    box = _check_boxes(shapes)
    for s, path in enumerate(files):
        beyond = index[stack_of == s] >= shapes[path][0]
        if beyond.any():
            raise InputFileError(
                f"{star} names image {index[stack_of == s][beyond][0] + 1} of {path}, "
                f"which holds {shapes[path][0]}."
            )
    merged = with_optics(table, optics, star)
    _check_numbers(star, merged, ("rlnImageSize",) if pixel_size_A else _SAMPLING_COLUMNS)
    _check_image_size(star, merged, box)
    if pixel_size_A:
        sizes = np.full(len(table), float(pixel_size_A))
    else:
        sizes = _star_or_header_pixel_size(star, merged, files, shapes, stack_of)
    source = ParticleSource(
        files, stack_of, index, box, float(np.median(sizes)), None, table, optics
    )
    source.pixel_sizes_A = sizes
    source.microscope = microscope
    source.notes += _replaced_pixel_size(merged, pixel_size_A, star)
    ours = merged.rename(columns={v: k for k, v in MICROSCOPE_LABELS.items()})
    source.notes += [  # the file's own values are used; the user hears it
        f"{star} gives its own {phrase}: the file's values are used"
        for phrase in overruled(ours, microscope)
    ]
    source.ctf = _ctf_table(merged, star, source.notes, microscope)
    if source.ctf is not None:
        source.ctf["pixel_size_A"] = sizes
    return source


def _recorded(header_A: float) -> bool:
    """Whether an MRC header's pixel size (Å) is set: not 0, and not 1 (an unset
    header's, as the tomogram readers take it)."""
    return header_A > 0 and abs(header_A - 1.0) > 1e-6


def _stacks_pixel_size(shapes: dict) -> float:
    """The one pixel size (Å) the stacks' headers give; refused when they give none (0
    or an unset 1 Å) or disagree (by more than 1%), since origins in Å and the CTF
    depend on it."""
    sizes = {p: shape[3] for p, shape in shapes.items()}
    known = [v for v in sizes.values() if _recorded(v)]
    if len(known) < len(sizes):
        missing = next(p for p, v in sizes.items() if not _recorded(v))
        raise ParameterError(
            f"{missing} records no pixel size ({sizes[missing]:g} Å in its header, which "
            "is unset); pass `pixel_size_A`.",
            parameter="pixel_size_A",
        )
    if max(known) > 1.01 * min(known):
        raise ParameterError(
            f"the stacks' pixel sizes differ ({min(known):g}–{max(known):g} Å); pass "
            "`pixel_size_A` if they are the same particles at one size.",
            parameter="pixel_size_A",
        )
    return known[0]


def read_particle_star(star: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The particle rows and optics block (or None) of a RELION STAR file."""
    import starfile

    star = Path(star)
    note_input(star)
    if not star.is_file():
        raise missing_file(star)
    try:
        blocks = starfile.read(star, always_dict=True)
    except Exception as err:  # starfile raises many kinds on damaged files
        raise InputFileError(
            f"{star} is not a readable STAR file ({str(err).splitlines()[0][:120]})."
        ) from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    particles = tables.get("particles")
    if particles is None:
        particles = next((t for k, t in tables.items() if "rlnImageName" in t), None)
    if particles is None or "rlnImageName" not in particles or len(particles) == 0:
        columns = set().union(*(t.columns for t in tables.values())) if tables else set()
        picks = {"rlnMicrographName", "rlnCoordinateX"} <= columns
        raise InputFileError(
            f"{star} has no particle rows with rlnImageName"
            + (
                " (it holds picks on micrographs: cut the particles out first, "
                "`tomoscribe spa extract`)."
                if picks
                else "."
            )
        )
    return particles.reset_index(drop=True), tables.get("optics")


def _image_names(table: pd.DataFrame, star: Path, stacks: list[Path]):
    """Stacks, stack per row and index in the stack from ``N@STACK`` entries."""
    files: dict[Path, int] = {}
    found: dict[str, Path] = {}  # each stack's name is looked for once
    stack_of = np.empty(len(table), int)
    index = np.empty(len(table), int)
    for row, entry in enumerate(table["rlnImageName"].astype(str)):
        number, at, name = entry.partition("@")
        if not at or not number.strip().isdigit() or int(number) < 1:
            raise InputFileError(
                f"{star}: rlnImageName {entry!r} (row {row + 1}) is not N@STACK with N ≥ 1."
            )
        if name not in found:
            found[name] = _stack_path(name, star, stacks)
        stack_of[row] = files.setdefault(found[name], len(files))
        index[row] = int(number) - 1
    return list(files), stack_of, index


def unreadable_stacks(star: Path, image_names: pd.Series) -> tuple[list[str], int]:
    """What ``tomoscribe info`` checks of a particle STAR's images without reading them:
    the stacks (``N@STACK`` names) found nowhere or not readable as MRC stacks
    (:func:`_stack_path`, :func:`_stack_shape`, headers only), and how many rows of the
    others give an index beyond their stack's images (or one that is not N ≥ 1)."""
    numbers: dict[str, list[int]] = {}
    for entry in image_names.astype(str):
        number, at, name = entry.partition("@")
        if not at:  # a whole file (one image, or a volume), as RELION reads such a name
            number, name = "1", entry
        numbers.setdefault(name, []).append(int(number) if number.strip().isdigit() else 0)
    missing, beyond = [], 0
    for name, indices in numbers.items():
        try:
            count = _stack_shape(_stack_path(name, Path(star), []), named=True)[0]
        except InputFileError:
            missing.append(name)
            continue
        beyond += sum(not 1 <= n <= count for n in indices)
    return missing, beyond


def _check_all_given_used(star: Path, stacks: list[Path], files: list[Path]) -> None:
    """Refuse a stack given beside a STAR file that names none of its images (the STAR's
    own stacks, found elsewhere, were read and the stack given was ignored silently)."""
    used = {Path(f).resolve() for f in files}
    for stack in stacks:
        if Path(stack).resolve() not in used:
            read = ", ".join(sorted({Path(f).name for f in files})[:3])
            raise InputFileError(
                f"{stack} was given but {star} names none of its images (it names {read}); "
                "give the STAR file written with that stack, or leave the stack out."
            )


def _stack_path(name: str, star: Path, stacks: list[Path]) -> Path:
    """The file a STAR's stack ``name`` is: where :func:`found_image_file` finds it
    (absolute, beside the STAR file, from the working (project) folder), else the stack
    given that it means (:func:`_given_stack`), else from a folder above the STAR's
    (its RELION project, run from elsewhere), else the file of its file name beside
    the STAR (:func:`_moved_beside`): a stack given outranks a guess."""
    path = (
        found_image_file(name, star, above=False)
        or _given_stack(Path(name), stacks, star)
        or found_image_file(name, star)
        or _moved_beside(name, star)
    )
    if path is None:
        raise InputFileError(
            f"{star} names the stack {name}, which is neither beside it, nor under "
            "the working (project) folder or a folder above the STAR file's, nor among "
            "the stacks given; pass it as an argument."
        )
    return _one_of_two_readings(name, star, path, stacks)


def _moved_beside(name: str, star: Path) -> Path | None:
    """The file of ``name``'s file name beside the STAR file, where ``name`` (a path
    from the project folder: ``p2d/particles.mrcs``) is found nowhere: a folder moved
    or renamed whole with its STAR file (``mv p2d run1``).  Said in a warning."""
    import os
    import warnings

    beside = Path(os.path.abspath(star)).parent / Path(name).name
    if Path(name).name == name or not beside.is_file():
        return None
    warnings.warn(
        f"{star} names the stack {name}, which is nowhere; {beside}, of its file name "
        "and beside the STAR file, is read (the folder was moved or renamed?).",
        stacklevel=3,
    )
    return beside


def _one_of_two_readings(name: str, star: Path, path: Path, stacks: list[Path]) -> Path:
    """``path`` (a relative stack ``name`` found beside the STAR file) unless the name
    is also another file from the working folder, where RELION, run there, opens it:
    then the stack given as an argument that is one of the two, else ``path`` with a
    warning (only the user knows which is meant)."""
    import os
    import warnings

    from_project = Path(os.getcwd()) / name
    if Path(name).is_absolute() or not from_project.is_file():
        return path
    if os.path.samefile(from_project, path):
        return path
    for stack in stacks:
        for candidate in (path, from_project):
            if Path(stack).is_file() and os.path.samefile(stack, candidate):
                return Path(os.path.abspath(candidate))
    warnings.warn(
        f"{star} names the stack {name}, which is {path} beside it and another file "
        f"from the working folder, {from_project}, which RELION run here would read; "
        f"{path} is read: give the stack meant as an argument to choose.",
        stacklevel=2,
    )
    return path


def _given_stack(name: Path, stacks: list[Path], star: Path) -> Path | None:
    """The stack given as an argument that a STAR's stack ``name`` means: the one whose
    path ends with the most of ``name``'s trailing parts (``Grid1/mic001.mrcs`` before
    any other ``mic001.mrcs``); two given stacks that match equally well are refused."""

    def matched(stack: Path) -> int:
        count = 0
        for ours, theirs in zip(reversed(stack.parts), reversed(name.parts)):
            if ours != theirs:
                break
            count += 1
        return count

    scores: dict[Path, int] = {}  # one file given under two spellings is one stack
    for stack in stacks:
        real = Path(os.path.realpath(stack))
        scores[real] = max(scores.get(real, 0), matched(stack), matched(real))
    best = max(scores.values(), default=0)
    if best == 0:
        return None
    chosen = [stack for stack, score in scores.items() if score == best]
    if len(chosen) > 1:
        raise InputFileError(
            f"{star} names the stack {name}, which could be any of "
            f"{', '.join(map(str, chosen))}; run from the project folder the STAR's names "
            "are relative to, or give only the stack it means."
        )
    return chosen[0]


def _check_image_size(star: Path, table: pd.DataFrame, box: int) -> None:
    """Refuse a STAR whose ``rlnImageSize`` (its optics group's, or the row's) is not the
    stacks' box: it describes other images (a re-extraction at another box), and the
    optics block written back would carry the wrong size into RELION."""
    sizes = _positive(table, "rlnImageSize")
    if sizes is None or np.all(sizes == box):
        return
    other = int(sizes[sizes != box][0])
    raise InputFileError(
        f"{star} says its particles are {other}-pixel images (rlnImageSize) but the "
        f"stacks hold {box}² ones; give the STAR file written with these stacks."
    )


def with_optics(table: pd.DataFrame, optics: pd.DataFrame | None, star: Path) -> pd.DataFrame:
    """The particle rows with their optics group's columns joined on (the rows alone
    where either has no ``rlnOpticsGroup``).

    Raises
    ------
    InputFileError
        A row names a group the block lacks, or the block lists a group twice.
    """
    if optics is None or "rlnOpticsGroup" not in optics or "rlnOpticsGroup" not in table:
        return table
    table, optics = checked_optics_groups(table, optics, star)
    extra = [c for c in optics.columns if c not in table.columns or c == "rlnOpticsGroup"]
    merged = table.merge(optics[extra], on="rlnOpticsGroup", how="left")
    if len(merged) != len(table):
        raise InputFileError(f"{star}: the optics block lists an optics group twice.")
    return merged


#: The columns that give a particle STAR's sampling (:func:`_star_pixel_size`) and box.
_SAMPLING_COLUMNS = (
    "rlnImagePixelSize",
    "rlnPixelSize",
    "rlnDetectorPixelSize",
    "rlnMagnification",
    "rlnImageSize",
)


def _check_numbers(star: Path, table: pd.DataFrame, columns) -> None:
    """Refuse a word where one of ``columns`` needs a number (``rlnImagePixelSize abc``
    was taken as no pixel size, and the header's used, without a word); blank values
    stay what they were, absent."""
    for column in columns:
        if column not in table:
            continue
        raw = table[column]
        words = pd.to_numeric(raw, errors="coerce").isna() & raw.notna()
        words &= raw.astype(str).str.strip().ne("")
        if words.any():
            row = int(np.flatnonzero(words.to_numpy())[0])
            raise InputFileError(
                f"{star}: {column} of particle row {row + 1} is {raw.iloc[row]!r}, "
                "which is not a number."
            )


def _positive(table: pd.DataFrame, column: str) -> np.ndarray | None:
    """A column's values when all are finite and positive, else None."""
    if column not in table:
        return None
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
    return values if np.isfinite(values).all() and (values > 0).all() else None


def _star_pixel_size(table: pd.DataFrame) -> tuple[np.ndarray, str] | None:
    """The pixel size (Å) a particle STAR gives each row, and where from:
    ``rlnImagePixelSize`` (RELION 3.1+ optics, joined to the rows), ``rlnPixelSize``,
    else RELION 3.0's ``rlnDetectorPixelSize`` (µm) × 10⁴ / ``rlnMagnification`` (as
    RELION 3.0 and io.formats.relion read it)."""
    for column in ("rlnImagePixelSize", "rlnPixelSize"):
        values = _positive(table, column)
        if values is not None:
            return values, column
    detector = _positive(table, "rlnDetectorPixelSize")
    magnification = _positive(table, "rlnMagnification")
    if detector is not None and magnification is not None:
        return detector * 1e4 / magnification, "rlnDetectorPixelSize × 10⁴ / rlnMagnification"
    return None


def _one_sampling(star: Path, table: pd.DataFrame, sizes: np.ndarray) -> None:
    """Refuse particles whose pixel sizes (Å) differ by more than 1%: 2D classes
    average them pixel by pixel, so they must share one sampling."""
    if sizes.max() <= 1.01 * sizes.min():
        return
    if "rlnOpticsGroup" in table:
        first = pd.Series(sizes).groupby(table["rlnOpticsGroup"].to_numpy()).first()
        described = ", ".join(f"group {g}: {v:g} Å" for g, v in first.items())
        where, part = f"optics groups of different pixel sizes ({described})", "group"
    else:
        where = f"particles of different pixel sizes ({sizes.min():g}–{sizes.max():g} Å)"
        part = "pixel size"
    raise ParameterError(
        f"{star} has {where}, and 2D classes need one sampling; classify each {part} on "
        "its own, or pass `pixel_size_A` if they are the same particles at one size.",
        parameter="pixel_size_A",
    )


def _star_or_header_pixel_size(
    star: Path, table: pd.DataFrame, files, shapes, stack_of: np.ndarray
) -> np.ndarray:
    """Each particle's pixel size (Å): the STAR's (:func:`_star_pixel_size`; refused
    when they differ by more than 1%, :func:`_one_sampling`, or when a stack's header
    records another than its particles', by more than 1%; 0 and an unset 1 Å are no
    record), else the stacks' headers' (:func:`_stacks_pixel_size`)."""
    given = _star_pixel_size(table)
    if given is None:
        if not any(_recorded(shapes[p][3]) for p in files):
            raise ParameterError(
                f"neither {star} nor the stacks give a pixel size (an MRC header's 1 Å "
                "is unset); pass `pixel_size_A`.",
                parameter="pixel_size_A",
            )
        return np.full(len(table), _stacks_pixel_size({p: shapes[p] for p in files}))
    sizes, column = given
    _one_sampling(star, table, sizes)
    for s, path in enumerate(files):
        header, size = shapes[path][3], float(np.median(sizes[stack_of == s]))
        if _recorded(header) and abs(header - size) > 0.01 * size:
            raise ParameterError(
                f"{star} gives {size:g} Å pixels ({column}) but the header of {path.name} "
                f"records {header:g} Å; pass `pixel_size_A` with the true size.",
                parameter="pixel_size_A",
            )
    return sizes


def _ctf_table(
    table: pd.DataFrame, star: Path, notes: list[str], microscope: dict
) -> pd.DataFrame | None:
    """Per-particle CTF parameters, or None (with a note) when the file has no defocus;
    voltage, Cs and amplitude contrast that the file lacks from ``microscope``, else
    :data:`CTF_DEFAULTS` (with a note)."""
    if "rlnDefocusU" not in table:
        notes.append(f"{star} has no rlnDefocusU: the images are averaged without CTF correction")
        return None

    def column(name: str, default=None) -> np.ndarray:
        if name not in table:
            return np.full(len(table), default, float)
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(float)
        if not np.isfinite(values).all():
            raise InputFileError(f"{star} has missing or non-numeric {name} values.")
        return values

    u = column("rlnDefocusU") / 1e4
    ctf = pd.DataFrame(
        {
            "defocus_u_um": u,
            "defocus_v_um": column("rlnDefocusV") / 1e4 if "rlnDefocusV" in table else u,
            "astigmatism_deg": column("rlnDefocusAngle", 0.0),
        }
    )
    for relion, ours in _CTF_COLUMNS.items():
        if relion not in table and ours not in microscope:
            notes.append(f"{star} has no {relion}: using {CTF_DEFAULTS[ours]:g}")
        ctf[ours] = column(relion, microscope.get(ours, CTF_DEFAULTS[ours]))

    def optional(name: str, absent: float) -> np.ndarray:  # a blank cell: as if absent
        if name not in table:
            return np.full(len(table), absent, float)
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(float)
        return np.where(np.isfinite(values), values, absent)

    for relion, ours, absent in _CTF_EXTRA_COLUMNS:
        ctf[ours] = optional(relion, absent)
    ctf["premultiplied"] = optional("rlnCtfDataAreCtfPremultiplied", 0.0) == 1
    flipped = optional("rlnCtfDataArePhaseFlipped", 0.0) == 1
    ctf["phase_flipped"] = flipped & ~ctf["premultiplied"].to_numpy(bool)
    if ctf["premultiplied"].any():
        notes.append(
            f"{int(ctf['premultiplied'].sum())} particles of {star} are CTF-premultiplied "
            "(rlnCtfDataAreCtfPremultiplied 1): their CTF is not applied again, only "
            "divided out (Wiener)"
        )
    if ctf["phase_flipped"].any():
        notes.append(
            f"{int(ctf['phase_flipped'].sum())} particles of {star} are phase-flipped "
            "already (rlnCtfDataArePhaseFlipped 1): they are not flipped again"
        )
    if (ctf["defocus_u_um"] <= 0).any():
        warnings.warn(f"{star} has particles with zero or negative defocus.", stacklevel=2)
    return ctf


def write_assignments(
    path: str | os.PathLike,
    source: ParticleSource,
    classes: np.ndarray,
    psi_deg: np.ndarray,
    origin_xy_A: np.ndarray,
) -> None:
    """A RELION particle STAR with each particle's class, in-plane angle and origin.

    Parameters
    ----------
    path : the file to write (callers pass an atomic temporary).
    source : the particles (their STAR rows are kept, or ``rlnImageName`` made up; a
        STAR's optics block is kept, each group's ``rlnImagePixelSize`` that of its
        particles, else one is made: :func:`new_optics`; ``source.microscope``'s
        voltage, Cs and amplitude contrast fill in columns the block lacks; RELION
        3.0's ``rlnOriginX``/``Y`` in pixels are dropped).
    classes : (p,) class numbers from 1.
    psi_deg : (p,) ``rlnAnglePsi`` in RELION's convention: the class average turned by
        RELION's Euler matrix A(0, 0, psi) (clockwise by psi with x along columns and y
        along rows) lies as the particle does.
    origin_xy_A : (p, 2) ``rlnOriginXAngst``/``YAngst`` (Å, each particle's shift
        in pixels times its own pixel size): as RELION, the particle's centre lies at
        the box centre minus the origin.
    """
    import starfile

    # a trial's `classify2d … -o ../cls2`, run in the stacks' folder, named them from
    # there, and the STAR, read from anywhere else, found none: absolute outside
    names = [relion_image_name(os.path.abspath(p), Path(path).parent) for p in source.stacks]
    image_names = [
        f"{i + 1:06d}@{names[s]}" for s, i in zip(source.stack_of, source.index_in_stack)
    ]
    table = (
        source.table.copy()
        if source.table is not None
        else pd.DataFrame(index=range(len(image_names)))
    )
    table["rlnImageName"] = image_names  # where the stacks are, from wherever the STAR goes
    table["rlnClassNumber"] = np.asarray(classes, int)
    table["rlnAnglePsi"] = np.round(np.asarray(psi_deg, float), 3)
    # RELION 3.0's origins in pixels would contradict the new ones in Å
    table = table.drop(columns=["rlnOriginX", "rlnOriginY"], errors="ignore")
    table["rlnOriginXAngst"] = np.round(np.asarray(origin_xy_A)[:, 0], 3)
    table["rlnOriginYAngst"] = np.round(np.asarray(origin_xy_A)[:, 1], 3)
    optics = source.optics
    sizes = source.particle_pixel_sizes_A
    if optics is None:
        optics, table = new_optics(table, sizes, source.box)
    elif "rlnOpticsGroup" in optics and "rlnOpticsGroup" in table:
        # each group at the size its particles were taken at: its own, or --pixel-size,
        # or the header's where the STAR gave none (RELION turns origins in Å into
        # pixels with it)
        optics = optics.copy()
        taken = pd.Series(sizes).groupby(table["rlnOpticsGroup"].to_numpy()).first()
        unused = optics.get("rlnImagePixelSize", float(source.pixel_size_A))
        optics["rlnImagePixelSize"] = optics["rlnOpticsGroup"].map(taken).fillna(unused)
    else:
        optics = optics.assign(rlnImagePixelSize=float(source.pixel_size_A))
    for ours, value in source.microscope.items():  # only where no file gave one
        if MICROSCOPE_LABELS[ours] not in optics:
            optics[MICROSCOPE_LABELS[ours]] = value
    starfile.write({"optics": optics, "particles": table}, path, overwrite=True)


def new_optics(
    table: pd.DataFrame, pixel_sizes_A: np.ndarray, box: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An optics block for particles that had none (RELION 3.0 STAR, bare stacks), as
    RELION 3.1+ reads it, and the rows joined to it.

    ``rlnVoltage``, ``rlnSphericalAberration`` and ``rlnAmplitudeContrast`` move from
    the rows into the block when the rows give them (RELION 3.1+ refuses an optics
    block without voltage and Cs), and ``rlnImagePixelSize`` is each row's
    ``pixel_sizes_A`` (Å), one optics group per distinct combination, so RELION 3.0's
    ``rlnDetectorPixelSize``/``rlnMagnification`` leave the rows; ``rlnImageSize`` is
    ``box`` (pixels).
    """
    columns = [c for c in _CTF_COLUMNS if c in table]
    table = table.drop(
        columns=["rlnDetectorPixelSize", "rlnMagnification", "rlnOpticsGroup"], errors="ignore"
    )
    values = table[columns].apply(pd.to_numeric, errors="coerce")
    values["rlnImagePixelSize"] = np.asarray(pixel_sizes_A, float)
    keys = [*columns, "rlnImagePixelSize"]
    groups = values.groupby(keys, sort=False, dropna=False).ngroup().to_numpy() + 1
    optics = values.assign(rlnOpticsGroup=groups).drop_duplicates("rlnOpticsGroup")
    table = table.drop(columns=columns)
    optics = optics.reset_index(drop=True)
    names = [f"opticsGroup{g}" for g in optics["rlnOpticsGroup"]]
    optics = optics[["rlnOpticsGroup", *keys]].assign(
        rlnOpticsGroupName=names,
        rlnImageSize=box,
        rlnImageDimensionality=2,
    )
    table["rlnOpticsGroup"] = groups
    return optics, table
