"""Particle size learned from the annotation; output names; tomogram names from provenance."""

import json

import numpy as np
import pandas as pd

from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.io.particles import read_particles
from tomoscribe.outputs import write_provenance
from tomoscribe.segment.trainset import load_training_set
from tomoscribe.structure.picking import PickParams, match_picks, pick_particles, too_small_sentence
from tomoscribe.volume import Volume


def _balls(shape, centres, radii):
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, bool)
    for c, r in zip(centres, radii):
        mask |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r**2
    return mask


def _grid_centres(rng, n, shape, spacing=22):
    sites = [
        (z, y, x)
        for z in range(16, shape[0] - 15, spacing)
        for y in range(16, shape[1] - 15, spacing)
        for x in range(16, shape[2] - 15, spacing)
    ]
    pick = rng.choice(len(sites), n, replace=False)
    return np.array(sites, float)[pick] + rng.uniform(-1.5, 1.5, (n, 3))


def test_sizes_painted_for_the_model_set_picks_defaults(tmp_path, capsys):
    rng = np.random.default_rng(3)
    shape = (64, 160, 160)
    centres = _grid_centres(rng, 60, shape)
    # 30 ribosome-sized components (r 7.5–8.5 voxels, ~1,800–2,600 voxels) and 30 small
    # complexes (r 3–5.5 voxels, ~110–700 voxels): --min-size 300 or 500 keeps many.
    ribo, small = centres[:30], centres[30:]
    labels = np.zeros(shape, np.uint8)
    labels[_balls(shape, ribo, rng.uniform(7.5, 8.5, 30))] = 1
    labels[_balls(shape, small, rng.uniform(3.0, 5.5, 30))] = 1

    # 1. The annotator paints other ribosomes on a training tomogram: the training set
    #    records the painted sizes.
    painted_centres = _grid_centres(np.random.default_rng(4), 12, shape)
    painted = _balls(shape, painted_centres, np.random.default_rng(5).uniform(7.5, 8.5, 12))
    write_volume(
        tmp_path / "train.mrc",
        Volume(np.random.default_rng(6).normal(size=shape).astype(np.float32), 10.0),
    )
    write_volume(tmp_path / "paint.mrc", Volume(painted.astype(np.uint8), 10.0))
    boxes = pd.DataFrame(
        {
            "x": painted_centres[:, 2],
            "y": painted_centres[:, 1],
            "z": painted_centres[:, 0].round(),
            "label": "positive",
        }
    )
    neg = pd.DataFrame(
        {"x": [20.0, 140.0], "y": [140.0, 20.0], "z": [5.0, 60.0], "label": "negative"}
    )
    pd.concat([boxes, neg]).to_csv(tmp_path / "boxes.csv", index=False)
    assert (
        main(
            [
                "trainset",
                str(tmp_path / "train.mrc"),
                "-f",
                "ribosome",
                "--boxes",
                str(tmp_path / "boxes.csv"),
                "--painted",
                str(tmp_path / "paint.mrc"),
                "-o",
                str(tmp_path / "ribo.trainset"),
            ]
        )
        == 0
    )
    record = load_training_set(tmp_path / "ribo.trainset").metadata["painted_size"]
    assert record["n_components"] == 12
    assert 1700 < record["median_voxels"] < 2700

    # 2. The model carries it into segment's provenance; merge puts it in the legend.
    write_volume(tmp_path / "tomo1_ribosome.mrc", Volume(labels.astype(np.float32) * 2, 10.0))
    write_volume(tmp_path / "tomo1.mrc", Volume(np.zeros(shape, np.float32), 10.0))
    write_provenance(
        tmp_path / "tomo1_ribosome.mrc",
        "segment",
        {"feature": "ribosome"},
        [tmp_path / "tomo1.mrc"],
        extra={"feature": "ribosome", "painted_size": record},
    )
    assert (
        main(
            [
                "merge",
                str(tmp_path / "tomo1_ribosome.mrc"),
                "-o",
                str(tmp_path / "tomo1_t0.8.mrc"),
                "--threshold",
                "0.8",
                "-q",
            ]
        )
        == 0
    )
    legend = json.loads((tmp_path / "tomo1_t0.8.mrc.legend.json").read_text())
    assert legend["1"]["painted_size"]["n_components"] == 12

    # 3. pick with no size flags keeps the ribosomes and drops the small complexes.
    out = tmp_path / "ribo.star"
    assert (
        main(
            [
                "pick",
                str(tmp_path / "tomo1_t0.8.mrc"),
                "-f",
                "ribosome",
                "-o",
                str(out),
                "-o",
                str(tmp_path / "ribo.csv"),
                "--edge",
                "0",
            ]
        )
        == 0
    )
    said = capsys.readouterr()
    assert "sizes from the annotation" in said.out
    assert "smaller than the least" not in said.err  # fewer small complexes than picks
    table = read_particles(out, 10.0, shape)
    scores = match_picks(table[["z", "y", "x"]].to_numpy(), ribo, 4.0)
    assert scores["precision"] >= 0.95 and scores["recall"] >= 0.95
    csv = pd.read_csv(tmp_path / "ribo.csv")
    assert csv.size_voxels.min() > 1500  # reported per pick
    assert "size_voxels" in table  # and read back from the STAR file
    # The README's --min-size 300 lets small complexes through: the learned size matters.
    assert (
        main(
            [
                "pick",
                str(tmp_path / "tomo1_t0.8.mrc"),
                "-f",
                "ribosome",
                "-o",
                str(tmp_path / "loose.csv"),
                "--edge",
                "0",
                "--min-size",
                "300",
                "--max-size",
                "100000",
            ]
        )
        == 0
    )
    loose = pd.read_csv(tmp_path / "loose.csv")
    assert match_picks(loose[["z", "y", "x"]].to_numpy(), ribo, 4.0)["precision"] < 0.9
    # Regions over the maximum are said, not dropped in silence (a napari trial's balls).
    capsys.readouterr()
    argv = ["pick", str(tmp_path / "tomo1_t0.8.mrc"), "-f", "ribosome", "-o",
            str(tmp_path / "tight.csv"), "--edge", "0", "--max-size", "1000"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: 30 regions of " in err
    assert "larger than the most a particle may be, 1000 voxels, and were not picked" in err
    # A map of particles a little smaller than the painting (r 5 voxels, ~520 voxels
    # against the learned 902): none picked, and said why (a napari trial: "0 picks").
    few = np.zeros(shape, np.uint8)
    few[_balls(shape, centres[:20], np.full(20, 5.0))] = 1
    write_volume(tmp_path / "tomo2_ribosome.mrc", Volume(few.astype(np.float32) * 2, 10.0))
    write_provenance(
        tmp_path / "tomo2_ribosome.mrc",
        "segment",
        {"feature": "ribosome"},
        [tmp_path / "tomo1.mrc"],
        extra={"feature": "ribosome", "painted_size": record},
    )
    argv = ["merge", str(tmp_path / "tomo2_ribosome.mrc"), "-o", str(tmp_path / "tomo2.mrc"),
            "--threshold", "0.8", "-q"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    argv = ["pick", str(tmp_path / "tomo2.mrc"), "-f", "ribosome", "-o",
            str(tmp_path / "none.csv"), "--edge", "0"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: 20 regions of " in err
    assert "smaller than the least a particle may be, 902 voxels (learned from the" in err
    # 4. rlnTomoName is the tomogram's (merge → segment → tomo1.mrc), not the label file's.
    import starfile

    assert set(starfile.read(out).rlnTomoName) == {"tomo1"}


def test_vesicle_table_keeps_the_full_stem(tmp_path):
    shape = (40, 96, 96)
    zz, yy, xx = np.indices(shape)
    d = np.sqrt((zz - 20) ** 2 + (yy - 48) ** 2 + (xx - 48) ** 2)
    labels = ((np.abs(d - 15) <= 2) & (np.abs(zz - 20) < 10)).astype(np.uint8)
    for name in ("tomo1_t0.8.mrc", "tomo1_t0.9.mrc"):
        write_volume(tmp_path / name, Volume(labels, 10.0))
        (tmp_path / (name + ".legend.json")).write_text(
            json.dumps({"0": {"name": "background"}, "1": {"name": "membrane"}})
        )
        stem = name[:-4]
        assert (
            main(
                ["vesicles", str(tmp_path / name), "-o", str(tmp_path / f"{stem}_closed.mrc"), "-q"]
            )
            == 0
        )
    assert (tmp_path / "tomo1_t0.8_closed_vesicles.csv").is_file()
    assert (tmp_path / "tomo1_t0.9_closed_vesicles.csv").is_file()


def test_particles_painted_on_one_slice_each_count_as_the_balls_they_cut():
    """An annotator paints each particle on its box's slice (the simulated annotator
    and the napari widget do): the outline's area stands for the ball it sections, so
    the picked balls' volumes lie inside the defaults (found by the napari work: the
    sections were taken as volumes and pick kept 5 of 25 blobs)."""
    from tomoscribe.segment.painted_size import painted_component_sizes, size_defaults

    rng = np.random.default_rng(2)
    shape = (64, 96, 96)
    centres = _grid_centres(rng, 10, shape)
    radii = rng.uniform(5.0, 7.0, 10)
    balls = _balls(shape, centres, radii)
    sections = np.zeros(shape, bool)
    for c in centres:
        z = int(round(c[0]))
        sections[z] |= balls[z] & _balls(shape, [c], [8.0])[z]  # this ball's section only
    volumes = [int(_balls(shape, [c], [r]).sum()) for c, r in zip(centres, radii)]
    record = painted_component_sizes(sections, 10.0)
    assert record["n_components"] == 10 and record["n_from_sections"] == 10
    assert 0.75 < record["median_voxels"] / np.median(volumes) < 1.25
    defaults = size_defaults(record, 10.0)
    assert defaults["min_size"] < min(volumes) and max(volumes) < defaults["max_size"]
    # Painted whole in 3D, the same balls give their voxel counts.
    whole = painted_component_sizes(balls, 10.0)
    assert whole["n_from_sections"] == 0
    assert whole["median_voxels"] == np.median(volumes)


def test_a_particle_boxed_on_several_of_its_slices_counts_as_one_ball():
    """napari trial: each ball boxed and painted on slices z - 3, z - 1, z, z + 1, z + 3;
    the three adjacent sections were counted as a volume (median 258 voxels for balls
    of ~523), the maximum (2 x p95) fell below the balls, and pick dropped half of them
    in silence.  Sections of one particle are one particle, sized from its widest."""
    from tomoscribe.segment.painted_size import painted_component_sizes, size_defaults

    rng = np.random.default_rng(4)
    shape = (64, 96, 96)
    centres = _grid_centres(rng, 8, shape)
    radii = np.full(8, 5.0)
    balls = _balls(shape, centres, radii)
    sections = np.zeros(shape, bool)
    for c in centres:
        own = _balls(shape, [c], [5.0])
        for dz in (-3, -1, 0, 1, 3):
            z = int(round(c[0])) + dz
            sections[z] |= own[z]
    volumes = [int(_balls(shape, [c], [5.0]).sum()) for c in centres]
    record = painted_component_sizes(sections, 10.0)
    assert record["n_components"] == 8 and record["n_from_sections"] == 8
    assert 0.8 < record["median_voxels"] / np.median(volumes) < 1.25
    defaults = size_defaults(record, 10.0)
    assert defaults["min_size"] < min(volumes) and max(volumes) < defaults["max_size"]
    assert painted_component_sizes(balls, 10.0)["n_from_sections"] == 0  # painted whole
    # Flat or lying particles painted whole count voxel by voxel (a review: sized as
    # balls from their widest section, 3.5-5 times their volume, all dropped by pick).
    flat = np.zeros(shape, bool)
    flat[30:33, 20:30, 20:30] = True  # 3 x 10 x 10
    flat[30:34, 60:64, 10:70] = True  # a rod along x
    record = painted_component_sizes(flat, 10.0)
    assert sorted(record["sizes_voxels"]) == [300, 960] and record["n_from_sections"] == 0


def _barrels(shape, centres, radius=6.0, wall=2.0, half_length=8):
    """Hollow cylinders along z (a 20S proteasome's barrel, voxels)."""
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, bool)
    for c in centres:
        r = np.hypot(yy - c[1], xx - c[2])
        mask |= (np.abs(zz - c[0]) <= half_length) & (r <= radius) & (r > radius - wall)
    return mask


def test_a_hollow_particle_of_the_painted_size_is_picked_whole_at_its_centre():
    """Note of an earlier trial: hollow particles (20S barrels) were cut by the watershed
    of the distance transform, whose maxima lie in their walls, into pieces (here all
    below the minimum size: nothing picked).  A component no larger than one painted
    particle is now taken whole, at its centre; two touching ones are split at the
    maxima of the filled, blurred mask, one pick each."""
    from tomoscribe.segment.painted_size import painted_component_sizes, size_defaults
    from tomoscribe.structure.picking import PickParams, pick_particles

    shape = (48, 96, 96)
    painted = painted_component_sizes(_barrels(shape, [(24, 24, 24), (24, 70, 70)]), 10.0)
    learned = size_defaults(painted, 10.0)
    alone = [(24.0, 20.3, 22.6), (24.0, 72.4, 30.1)]
    touching = [(24.0, 60.0, 63.0), (24.0, 60.0, 74.5)]  # walls meet
    mask = _barrels(shape, alone + touching)
    params = PickParams(
        min_size=learned["min_size"],
        min_distance=learned["min_distance"],
        edge=0,
        max_size=learned["max_size"],
        split_above=learned["split_above"],
    )
    picks = pick_particles(mask, None, params)[["z", "y", "x"]].to_numpy(float)
    assert len(picks) == 4, picks
    for centre in alone:
        assert np.linalg.norm(picks - centre, axis=1).min() < 0.5
    for centre in touching:
        assert np.linalg.norm(picks - centre, axis=1).min() < 1.0


def test_painted_sizes_of_a_whole_mask_hold_its_labels_and_little_else():
    """The components are counted slice by slice: a bincount of the whole label array
    casts it to int64, 8 bytes a voxel beside the labels' 4 (trainset --painted on a
    1024 x 1024 x 300 mask held 8.5 GB in a user's trial)."""
    import tracemalloc

    from tomoscribe.segment.painted_size import painted_component_sizes

    mask = np.zeros((40, 300, 300), bool)
    for k in range(20):  # 20 balls of radius 5: 515 voxels each
        z, y, x = 10 + k % 3 * 10, 20 + 13 * k, 30 + 11 * k
        zz, yy, xx = np.ogrid[-5:6, -5:6, -5:6]
        mask[z - 5 : z + 6, y - 5 : y + 6, x - 5 : x + 6] |= zz**2 + yy**2 + xx**2 <= 25
    tracemalloc.start()
    try:
        record = painted_component_sizes(mask, 10.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record["n_components"] == 20 and record["median_voxels"] == 515
    assert peak / mask.size < 6, f"{peak / mask.size:.1f} bytes a voxel"


def test_regions_too_small_to_be_particles_are_said():
    """A napari trial: six spheres of 124–152 voxels, under the 274 learned from the painting,
    gave "0 blob picks" and no reason (regions too large were said)."""
    mask = np.zeros((24, 96, 96), bool)
    zz, yy, xx = np.indices(mask.shape)
    for k in range(6):  # balls of radius 3.2 voxels: 123–147 voxels
        centre = (12, 20 + 28 * (k // 3), 20 + 28 * (k % 3))
        mask |= (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 10
    noise = np.zeros_like(mask)
    noise[2, 2, 2] = noise[2, 90, 90] = True  # specks: never named
    table = pick_particles(mask | noise, None, PickParams(min_size=274, max_size=5000))
    assert len(table) == 0
    sentence = too_small_sentence(table.attrs["left_out"], 274, len(table), True)
    sizes = sorted(int(v) for v in table.attrs["left_out"]["nearly_sizes"])
    assert len(sizes) == 6 and sentence.startswith(f"6 regions of {sizes[0]}–{sizes[-1]} voxels")
    assert "smaller than the least a particle may be, 274 voxels (learned from the painting)" in (
        sentence
    )
    # plentiful picks with a few near-size regions beside them: nothing to say
    found = pick_particles(mask, None, PickParams(min_size=100, max_size=5000))
    assert len(found) == 6
    fewer = {"nearly_sizes": [60, 70]}  # two regions under 100 voxels, six picks
    assert too_small_sentence(fewer, 100, len(found), True) is None
    # a size not learned from a painting (the default 20): specks abound, nothing said
    assert too_small_sentence(table.attrs["left_out"], 274, 0, False) is None
