"""Rebuild the bundled template library from ../shared/data/structures.

    python scripts/build_templates.py [--structures DIR] [--out DIR]

For every PDB/mmCIF file in the structures folder: expand biological assembly 1 where
an mmCIF file defines one, compute the electron-scattering density at 10 Å/voxel and
20 Å resolution (tomoscribe.simulate.structures.structure_density), and write it as a
float16 MRC plus a manifest entry (source file, SHA-256, assembly, mass, radius of
gyration, box).  Deterministic: rerunning gives the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from tomoscribe.io import write_volume
from tomoscribe.simulate.structures import atom_table, read_structure, structure_density
from tomoscribe.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
VOXEL_SIZE_A = 10.0
RESOLUTION_A = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--structures", type=Path, default=ROOT.parent / "shared" / "data" / "structures"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "src" / "tomoscribe" / "simulate" / "templates"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for path in sorted(args.structures.iterdir()):
        if path.suffix.lower() not in (".pdb", ".cif", ".ent", ".mmcif"):
            continue
        structure = read_structure(path)
        assembly = None
        if path.suffix.lower() in (".cif", ".mmcif") and any(
            a.name == "1" for a in structure.assemblies
        ):
            assembly = "1"
        name = path.stem + ("_a1" if assembly else "")
        atoms = atom_table(read_structure(path, assembly))
        volume = structure_density(path, VOXEL_SIZE_A, RESOLUTION_A, assembly=assembly, cache=False)
        out = args.out / f"{name}.mrc"
        write_volume(
            out, Volume(volume.data.astype(np.float16), volume.voxel_size_A, volume.origin_A)
        )
        manifest[name] = {
            "file": out.name,
            "source": path.name,
            "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "assembly": assembly,
            "voxel_size_A": VOXEL_SIZE_A,
            "resolution_A": RESOLUTION_A,
            "box_voxels": volume.shape[0],
            "mass_kDa": round(float(atoms.mass_Da.sum()) / 1e3, 1),
            "radius_of_gyration_A": round(atoms.radius_of_gyration_A, 2),
            "max_radius_A": round(atoms.max_radius_A, 2),
        }
        print(
            f"{name}: {volume.shape[0]}^3, {manifest[name]['mass_kDa']} kDa, "
            f"Rg {manifest[name]['radius_of_gyration_A']} Å"
        )
    (args.out / "manifest.json").write_text(
        json.dumps(
            {
                "voxel_size_A": VOXEL_SIZE_A,
                "resolution_A": RESOLUTION_A,
                "built_by": "scripts/build_templates.py",
                "templates": manifest,
            },
            indent=2,
        )
        + "\n"
    )
    total = sum(f.stat().st_size for f in args.out.glob("*.mrc"))
    print(f"{len(manifest)} templates, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
