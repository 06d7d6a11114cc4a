"""Atomic models → electron-scattering density, through gemmi.

A structure (PDB or mmCIF; the biological assembly on request) is centred on its
centre of mass in a cubic box and its density computed with gemmi's
``DensityCalculatorE`` (electron scattering factors, i.e. the Mott–Bethe transform of
the X-ray factors, as cryo-EM maps are).  Resolution is imposed through gemmi's
``blur``: an extra isotropic B-factor ``B = 4 ln2 · resolution_A²`` multiplies every
atom's scattering factor by ``exp(−B s²/4)``, which is ½ at spatial frequency
``s = 1/resolution_A`` — the same half-transmission definition as our low-pass filter
(``tomoscribe.preprocess``), computed analytically per atom so nothing aliases.

Results are cached on disk as MRC files keyed by (file SHA-256, voxel size,
resolution, assembly, padding), under ``$TOMOSCRIBE_CACHE`` or ``~/.cache/tomoscribe``.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError, missing_file
from ..volume import Volume

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class AtomTable:
    """Atom positions and masses of one model.

    Attributes
    ----------
    xyz_A : float array (n, 3)
        Positions (x, y, z) in Å.
    mass_Da : float array (n,)
        Atomic masses in dalton.
    """

    xyz_A: np.ndarray
    mass_Da: np.ndarray

    @property
    def centre_of_mass_A(self) -> np.ndarray:
        return (self.xyz_A * self.mass_Da[:, None]).sum(0) / self.mass_Da.sum()

    @property
    def radius_of_gyration_A(self) -> float:
        """Mass-weighted radius of gyration in Å."""
        d2 = ((self.xyz_A - self.centre_of_mass_A) ** 2).sum(1)
        return float(np.sqrt((self.mass_Da * d2).sum() / self.mass_Da.sum()))

    @property
    def max_radius_A(self) -> float:
        return float(np.sqrt(((self.xyz_A - self.centre_of_mass_A) ** 2).sum(1)).max())


def read_structure(path: str | os.PathLike, assembly: str | None = None):
    """Read a PDB/mmCIF file with gemmi, waters and hydrogens removed, first model only.

    Parameters
    ----------
    path : path
        ``.pdb``, ``.ent``, ``.cif`` or ``.mmcif`` (optionally gzipped).
    assembly : str, optional
        Name of a biological assembly to expand (e.g. ``"1"``); None keeps the
        deposited asymmetric unit.

    Returns
    -------
    gemmi.Structure
    """
    import gemmi

    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as err:
        raise InputFileError(f"{path} is not a readable PDB/mmCIF file ({err}).") from err
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise InputFileError(f"{path} contains no atoms.")
    structure.setup_entities()
    structure.remove_waters()
    structure.remove_hydrogens()
    while len(structure) > 1:
        del structure[len(structure) - 1]
    if assembly is not None:
        names = [a.name for a in structure.assemblies]
        if assembly not in names:
            raise InputFileError(f"{path} has no assembly {assembly!r}; it has {names or 'none'}.")
        structure.transform_to_assembly(assembly, gemmi.HowToNameCopiedChain.AddNumber)
    return structure


def atom_table(structure) -> AtomTable:
    """Positions and masses of the first model's atoms."""
    xyz, mass = [], []
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                xyz.append(atom.pos.tolist())
                mass.append(atom.element.weight * atom.occ)
    return AtomTable(np.asarray(xyz, float), np.asarray(mass, float))


def structure_density(
    path: str | os.PathLike,
    voxel_size_A: float,
    resolution_A: float,
    assembly: str | None = None,
    pad_A: float | None = None,
    box_voxels: int | None = None,
    cache: bool = True,
) -> Volume:
    """Electron-scattering density of a structure, centred in a cubic box.

    Parameters
    ----------
    path : path
        PDB/mmCIF file.
    voxel_size_A : float
        Voxel size in Å.
    resolution_A : float
        Resolution in Å (scattering factors are halved at 1/resolution).
    assembly : str, optional
        Biological assembly to expand.
    pad_A : float, optional
        Empty margin around the largest atom radius; default ``2·resolution_A``.
    box_voxels : int, optional
        Box edge in voxels; refused if the structure does not fit.
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    Volume
        float32 density (arbitrary but consistent units: gemmi's electron-scattering
        density, in e/Å³-like units), with the centre of mass at voxel ``n // 2`` and
        ``origin_A`` placing that voxel at the model's centre of mass (Å, the model's
        own frame), so the map overlays the model as ChimeraX's ``molmap`` or gemmi's
        maps do.
    """
    if not voxel_size_A > 0 or not resolution_A > 0:
        raise ParameterError("voxel size and resolution must be positive (Å).")
    if resolution_A < 2 * voxel_size_A:
        raise ParameterError(
            f"resolution {resolution_A} Å is finer than Nyquist "
            f"({2 * voxel_size_A} Å) at voxel size {voxel_size_A} Å."
        )
    path = Path(path)
    pad_A = 2.0 * resolution_A if pad_A is None else pad_A
    key = _cache_key(path, voxel_size_A, resolution_A, assembly, pad_A, box_voxels)
    cached = _cache_dir() / f"{key}.mrc"
    if cache and cached.is_file():
        from ..io import read_volume

        volume = read_volume(cached)
        return volume.with_data(volume.load(), metadata={"source": str(path)})

    structure = read_structure(path, assembly)
    atoms = atom_table(structure)
    needed = int(math.ceil((2 * atoms.max_radius_A + 2 * pad_A) / voxel_size_A))
    n = box_voxels if box_voxels is not None else needed + needed % 2
    if n < int(math.ceil(2 * atoms.max_radius_A / voxel_size_A)) + 2:
        raise ParameterError(
            f"{path.name} spans {2 * atoms.max_radius_A:.0f} Å but the box is only "
            f"{n * voxel_size_A:.0f} Å ({n} voxels); use a larger box."
        )
    data = _gemmi_density(structure, atoms.centre_of_mass_A, n, voxel_size_A, resolution_A)
    origin = tuple(float(c) - (n // 2) * voxel_size_A for c in atoms.centre_of_mass_A)
    volume = Volume(data, (voxel_size_A,) * 3, origin, metadata={"source": str(path)})
    if cache:
        from ..io import write_volume

        cached.parent.mkdir(parents=True, exist_ok=True)
        write_volume(cached, volume)
    return volume


def _gemmi_density(
    structure, centre_A: np.ndarray, n: int, voxel_size_A: float, resolution_A: float
) -> np.ndarray:
    import gemmi

    edge = n * voxel_size_A
    shift = gemmi.Position(*((n // 2) * voxel_size_A - centre_A))
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = atom.pos + shift
    structure.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    structure.spacegroup_hm = "P 1"
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = 0.0  # keep the grid size set below
    calculator.grid.set_unit_cell(structure.cell)
    calculator.grid.set_size(n, n, n)
    calculator.blur = 4.0 * _LN2 * resolution_A**2
    calculator.put_model_density_on_grid(structure[0])
    # gemmi's grid is indexed (x, y, z); ours is (z, y, x).  The cell is periodic, so
    # density within the blur's reach of the box edge would wrap: the padding keeps it
    # negligible.
    grid = np.array(calculator.grid.array, copy=True)
    return np.ascontiguousarray(grid.transpose(2, 1, 0), dtype=np.float32)


def _cache_key(path: Path, voxel_size_A, resolution_A, assembly, pad_A, box) -> str:
    if not path.is_file():
        raise missing_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    # "-f1": the origin is the model's frame (maps cached before had the centre at 0 Å).
    spec = f"{digest}-v{voxel_size_A:g}-r{resolution_A:g}-a{assembly}-p{pad_A:g}-b{box}-f1"
    return hashlib.sha256(spec.encode()).hexdigest()[:24]


def _cache_dir() -> Path:
    root = os.environ.get("TOMOSCRIBE_CACHE")
    return Path(root) / "density" if root else Path.home() / ".cache" / "tomoscribe" / "density"
