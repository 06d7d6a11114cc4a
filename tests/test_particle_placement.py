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
def test_imod_model_lands_on_the_voxels_of_the_image_it_records(tmp_path):
    import imodmodel
    import mrcfile
    from imodmodel import ImodModel

    from tomoscribe.io import read_volume

    path = DATA / "imod" / "point_sizes_example.mod"
    raw = imodmodel.read(path)
    model = ImodModel.from_file(path)
    minx = model.minx
    assert model.header.flags.otrans_has_image_origin_values
    cs, ct = np.asarray(minx.cscale, float), np.asarray(minx.ctrans, float)
    np.testing.assert_allclose(minx.otrans, ct)  # no subset loaded
    # 3dmod copies the MRC header origin into ctrans (IMOD's imodSetRefImage): the image
    # the model was saved on is an MRC with that header origin and spacing.  Read by
    # tomoscribe, its voxel (i, j, k) lies at origin + index × spacing; the model's
    # point (x, y, z) is on voxel (x − ½, y − ½, z) (IMOD's pixel centres).
    image = tmp_path / "image.mrc"
    with mrcfile.new(image) as mrc:  # written by mrcfile, header fields as IMOD reads them
        mrc.set_data(np.zeros((4, 4, 4), np.float32))
        mrc.voxel_size = tuple(cs)
        mrc.header.origin = tuple(ct)
    volume = read_volume(image)
    np.testing.assert_allclose(volume.origin_A, ct, atol=1e-3)
    [placed] = place_particles(path)
    x, y, z = (raw[a].to_numpy(float) for a in "xyz")
    origin, spacing = np.asarray(volume.origin_A), np.asarray(volume.voxel_size_A)
    expected = np.column_stack(
        [
            origin[2] + z * spacing[2],
            origin[1] + (y - 0.5) * spacing[1],
            origin[0] + (x - 0.5) * spacing[0],
        ]
    )
    np.testing.assert_allclose(_world(placed), expected, atol=1e-3)
    # first point (438.5, 898.5, 46): x = −281.044 + 438 × 12.399 Å
    assert _world(placed)[0, 2] == pytest.approx(-281.044 + 438 * 12.399, abs=0.01)


@needs_data
def test_imod_model_saved_on_a_subset_lands_on_the_whole_image_voxels(tmp_path):
    """3dmod keeps a model's points in the indices of the image as loaded and records
    ctrans = otrans − cscale × the loaded subset's first voxel (IMOD's ivwGetImageRef):
    the same particles saved from a subset starting at voxel (10, 20, 5) must land where
    the whole-image model puts them, opened alone and on the whole image's grid."""
    import struct

    from tomoscribe.io.points import read_imod_points

    whole = DATA / "imod" / "point_sizes_example.mod"
    raw = bytearray(whole.read_bytes())
    at = raw.index(b"MINX") + 8  # chunk id, size, then 18 big-endian floats
    floats = list(struct.unpack(">18f", raw[at : at + 72]))
    cscale, ctrans = np.array(floats[9:12]), np.array(floats[12:15])
    start = np.array([10, 20, 5])
    floats[12:15] = ctrans - cscale * start  # ctrans as 3dmod writes it for the subset
    raw[at : at + 72] = struct.pack(">18f", *floats)
    subset = tmp_path / "subset.mod"  # the same point numbers, now subset indices
    subset.write_bytes(bytes(raw))
    whole_xyz = read_imod_points(whole)[["x", "y", "z"]].to_numpy()
    subset_xyz = read_imod_points(subset)[["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(subset_xyz - whole_xyz, np.tile(start, (len(whole_xyz), 1)))
    [alone] = place_particles(whole)
    [alone_subset] = place_particles(subset)
    moved_A = np.tile(start[::-1] * cscale[::-1], (len(whole_xyz), 1))  # z, y, x
    np.testing.assert_allclose(_world(alone_subset) - _world(alone), moved_A, atol=1e-2)
    full = Grid(tuple(cscale), tuple(np.asarray(floats[3:6])), (200, 1400, 1400), "image")
    [on_grid] = place_particles(subset, grid=full)
    np.testing.assert_allclose(_world(on_grid), _world(alone_subset), atol=1e-2)


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
    crops = {  # the cylindra crops, as open in a viewer
        name: Grid((10.52,) * 3, (0.0, 0.0, 0.0), (44, 136, 84), name)
        for name in ("TS_01", "TS_02")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [placed] = place_particles(path, grid=crops["TS_01"])  # TS_01's rows only
        per_tomogram = place_particles(path, grid_of=crops.get)
    mine = (rows["rlnTomoName"] == "TS_01").to_numpy()
    shifts = np.zeros(len(rows))
    if "rlnOriginXAngst" in rows:
        shifts = rows["rlnOriginXAngst"].to_numpy(float)
    expected = (rows["rlnCenteredCoordinateXAngst"].to_numpy(float) - shifts) / 10.52 + 42
    np.testing.assert_allclose(placed.table["x"], expected[mine], atol=1e-4)
    assert placed.translate_zyx == (0.0, 0.0, 0.0)
    assert [p.tomo_name for p in per_tomogram] == ["TS_01", "TS_02"]
    np.testing.assert_allclose(per_tomogram[1].table["x"], expected[~mine], atol=1e-4)
    with pytest.raises(InputFileError, match="TS_02 open"):
        place_particles(path, grid_of={"TS_01": crops["TS_01"]}.get)
    with pytest.raises(InputFileError, match="none of them"):
        place_particles(path, grid=Grid((10.52,) * 3, shape_zyx=(44, 136, 84), name="TS_09"))


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
