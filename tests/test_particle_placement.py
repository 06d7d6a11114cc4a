"""Where a particle file's points lie in Å (io/placement.py), checked on outside files:
IMOD models by IMOD's own rule, RELION 5 centred picks by RELION's, STAR pixel sizes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tomoscribe.errors import InputFileError, MissingVoxelSizeError
from tomoscribe.io.placement import Grid, place_particles

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "formats"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")
RELION5 = DATA / "relion5_project"


def _world(placed) -> np.ndarray:
    """(n, 3) z, y, x in Å, as napari draws a points layer: translate + data × scale."""
    zyx = placed.table[["z", "y", "x"]].to_numpy(float)
    return np.asarray(placed.translate_zyx) + zyx * np.asarray(placed.scale_zyx)


@needs_data
def test_imod_model_lands_where_imod_puts_it_on_the_image_it_records():
    import imodmodel
    from imodmodel import ImodModel

    path = DATA / "imod" / "point_sizes_example.mod"
    raw = imodmodel.read(path)
    minx = ImodModel.from_file(path).minx
    [placed] = place_particles(path)
    # IMOD: pixel i's centre at x = i + 0.5 (y likewise), slice k at z = k; the image
    # origin is −ctrans (3dmod's internal sign), its spacing cscale (12.399 Å here).
    x, y, z = (raw[a].to_numpy(float) for a in "xyz")
    cs, ct = np.asarray(minx.cscale, float), np.asarray(minx.ctrans, float)
    expected = np.column_stack(
        [-ct[2] + z * cs[2], -ct[1] + (y - 0.5) * cs[1], -ct[0] + (x - 0.5) * cs[0]]
    )
    np.testing.assert_allclose(_world(placed), expected, atol=1e-3)
    # first point (438.5, 898.5, 46): x = 281.044 + 438 × 12.399 Å
    assert _world(placed)[0, 2] == pytest.approx(281.044 + 438 * 12.399, abs=0.01)


@needs_data
def test_imod_model_on_a_tomogram_of_half_its_pixel_spacing_follows_the_corner_rule():
    import imodmodel

    path = DATA / "imod" / "point_sizes_example.mod"
    raw = imodmodel.read(path)
    grid = Grid((6.1995, 6.1995, 6.1995), (100.0, 200.0, 300.0), (200, 2600, 2628))
    [placed] = place_particles(path, grid=grid)
    r = 12.399 / 6.1995  # IMOD bins by blocks from the corner: corner coordinates × r
    np.testing.assert_allclose(placed.table["x"], raw["x"] * r - 0.5, atol=2e-3)
    np.testing.assert_allclose(placed.table["z"], (raw["z"] + 0.5) * r - 0.5, atol=2e-3)
    assert placed.scale_zyx == (6.1995,) * 3
    assert placed.translate_zyx == (300.0, 200.0, 100.0)


def _tomograms():
    import starfile

    table = starfile.read(RELION5 / "Tomograms" / "job_tomo" / "tomograms.star")
    return table.set_index("rlnTomoName")


@needs_data
def test_relion5_centred_picks_become_voxels_by_the_tomograms_star_of_their_set():
    import starfile

    picks = starfile.read(RELION5 / "Picks" / "job_picks" / "particles.star")
    tomos = _tomograms()
    placed = place_particles(RELION5 / "Picks" / "job_picks" / "particles.star")
    assert [p.tomo_name for p in placed] == ["TS_01", "TS_02"]
    for item in placed:
        rows = picks[picks["rlnTomoName"] == item.tomo_name]
        entry = tomos.loc[item.tomo_name]
        pixel = float(entry["rlnTomoTiltSeriesPixelSize"])
        for axis in "XYZ":  # RELION 5: centred Å = (x − n/2) · pixel
            n = float(entry[f"rlnTomoSize{axis}"])
            expected = rows[f"rlnCenteredCoordinate{axis}Angst"].to_numpy(float) / pixel + n / 2
            np.testing.assert_allclose(item.table[axis.lower()], expected, atol=1e-6)
        assert item.scale_zyx == (pixel,) * 3
    # TS_01's first pick: x = −176.94 / 10.52 + 84/2
    assert placed[0].table["x"].iloc[0] == pytest.approx(-176.94 / 10.52 + 42, abs=1e-4)


@needs_data
def test_relion5_centred_file_without_its_set_is_refused_or_centred_on_the_tomogram():
    path = RELION5 / "Refine3D" / "job_refine" / "run_it050_data.star"
    with pytest.raises(InputFileError, match="tomograms.star"):
        place_particles(path)
    import starfile

    rows = starfile.read(path)
    rows = rows["particles"] if isinstance(rows, dict) else rows
    crop = Grid((10.52,) * 3, (0.0, 0.0, 0.0), (44, 136, 84))  # the cylindra crops
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [placed] = place_particles(path, grid=crop)
    shifts = np.zeros(len(rows))
    if "rlnOriginXAngst" in rows:
        shifts = rows["rlnOriginXAngst"].to_numpy(float)
    expected = (rows["rlnCenteredCoordinateXAngst"].to_numpy(float) - shifts) / 10.52 + 42
    if "rlnTomoSubtomogramRot" not in rows:
        np.testing.assert_allclose(placed.table["x"], expected, atol=1e-4)
    assert placed.translate_zyx == (0.0, 0.0, 0.0)


@needs_data
def test_star_without_a_pixel_size_is_refused_not_drawn_at_one_angstrom():
    with pytest.raises(MissingVoxelSizeError, match="no pixel size"):
        place_particles(DATA / "star" / "chlamy_atpase.star")
    [placed] = place_particles(DATA / "star" / "chlamy_atpase.star", voxel_size_A=7.84)
    assert placed.scale_zyx == (7.84,) * 3


@needs_data
def test_warp_star_of_three_tomograms_is_placed_per_tomogram_at_its_pixel_size():
    placed = place_particles(DATA / "star" / "warp_particles_a.star")
    assert [len(p.table) for p in placed] == [256, 556, 169]
    assert all(p.scale_zyx == (1.96,) * 3 for p in placed)
    assert placed[0].table["x"].iloc[0] == pytest.approx(487.847)
    grid = Grid((7.84,) * 3, (50.0, 60.0, 70.0))  # a bin-4 copy of that tomogram
    placed = place_particles(
        DATA / "star" / "warp_particles_a.star",
        grid_of=lambda name: grid if name.startswith("01122021_BrnoKrios_arctis_lam2") else None,
    )
    assert placed[0].table["x"].iloc[0] == pytest.approx(487.847 * 1.96 / 7.84)
    assert placed[0].translate_zyx == (70.0, 60.0, 50.0)
    assert placed[1].translate_zyx == (0.0, 0.0, 0.0)
