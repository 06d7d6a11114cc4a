"""Filament picking as the viewer runs it (interactive/filaments.py) against
``tomoscribe pick --filament`` on the same label map, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tomoscribe.cli.app import main
from tomoscribe.core.legend import read_legend
from tomoscribe.errors import AnnotationError, ParameterError
from tomoscribe.interactive.filaments import pick_filaments, write_filament_table
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.particles import read_particles
from tomoscribe.outputs import read_provenance
from tomoscribe.simulate.shapes import CLASS_IDS, ShapesPhantomParams, make_shapes_phantom


@pytest.fixture(scope="module")
def label_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filaments")
    _, truth, _ = make_shapes_phantom(
        ShapesPhantomParams(shape=(40, 128, 128), n_vesicles=1, n_filaments=3, n_blobs=5, seed=3)
    )
    path = folder / "labels.mrc"
    write_volume(path, truth.with_data(np.asarray(truth.data, np.uint8)))
    path.with_name(path.name + ".legend.json").write_text(
        json.dumps({str(i): {"name": n, "colour": "#808080"} for n, i in CLASS_IDS.items()})
    )
    return path


def test_the_viewers_filament_seeds_are_the_commands(label_map, tmp_path):
    labels, legend = read_volume(label_map), read_legend(label_map)
    picks = pick_filaments(labels, legend, "filament", spacing=8.0, radius_nm=2.5)
    assert len(picks.filaments) >= 2 and len(picks.seeds) > len(picks.filaments)
    # seeds lie on the filament voxels they were traced from
    z, y, x = (np.round(picks.seeds[c]).astype(int) for c in ("z", "y", "x"))
    on = np.asarray(labels.data)[z, y, x] == CLASS_IDS["filament"]
    assert on.mean() > 0.9
    written = write_filament_table(picks, tmp_path / "ours_filaments.csv", "filament", [label_map])
    args = ["pick", str(label_map), "-f", "filament", "--filament", "--spacing", "8"]
    args += ["--radius-nm", "2.5", "-o", str(tmp_path / "cli.star")]
    assert main(args) == 0
    theirs = read_particles(tmp_path / "cli.star")
    np.testing.assert_allclose(
        picks.seeds[["x", "y", "z"]].to_numpy(), theirs[["x", "y", "z"]].to_numpy(), atol=1e-3
    )
    ours_table = pd.read_csv(written)
    cli_table = pd.read_csv(tmp_path / "cli_filaments.csv")
    np.testing.assert_allclose(ours_table["length_nm"], cli_table["length_nm"])
    ours_record = read_provenance(written)["parameters"]
    assert ours_record["radius_nm"] == 2.5 and ours_record["spacing"] == 8.0


def test_refusals(label_map):
    labels, legend = read_volume(label_map), read_legend(label_map)
    with pytest.raises(ParameterError, match="radius"):
        pick_filaments(labels, legend, "filament")  # no radius known for this name
    with pytest.raises(ParameterError, match="spacing"):
        pick_filaments(labels, legend, "filament", spacing=1e4, radius_nm=2.5)
    with pytest.raises(AnnotationError):
        pick_filaments(labels, legend, "ribosome", radius_nm=2.5)  # not in the legend
