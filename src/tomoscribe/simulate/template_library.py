"""The bundled template library: small density maps of real complexes.

Maps are float16 MRC files at 10 Å/voxel and 20 Å resolution, computed by
``scripts/build_templates.py`` from the atomic models in ``../shared/data/structures``
with :func:`tomoscribe.simulate.structures.structure_density`, so the simulator works
where that folder is absent.  ``manifest.json`` records, for each template, its source
file and SHA-256, the assembly expanded, mass, radius of gyration and box.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import ParameterError
from ..volume import Volume

_PACKAGE = "tomoscribe.simulate.templates"


@lru_cache(maxsize=1)
def template_manifest() -> dict:
    """The manifest of bundled templates: name → record."""
    text = resources.files(_PACKAGE).joinpath("manifest.json").read_text()
    return json.loads(text)["templates"]


def list_templates() -> list[str]:
    """Names of the bundled templates (PDB ids, with ``_a1`` for assembly 1)."""
    return sorted(template_manifest())


def load_template(name: str) -> Volume:
    """A bundled template as a float32 :class:`Volume` (centre of mass at voxel n // 2)."""
    manifest = template_manifest()
    if name not in manifest:
        raise ParameterError(f"no template {name!r}; choose one of {', '.join(sorted(manifest))}.")
    import mrcfile

    with resources.as_file(resources.files(_PACKAGE).joinpath(manifest[name]["file"])) as path:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
            voxel = float(mrc.voxel_size.x)
            origin = tuple(float(v) for v in mrc.header.origin.tolist())
    return Volume(data, (voxel,) * 3, origin, metadata={"template": name})
