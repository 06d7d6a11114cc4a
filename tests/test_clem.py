"""CLEM: holes, lattice, registration, watershed, label transfer, CLI, bad input."""

from __future__ import annotations

import json
import math

import mrcfile
import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.clem.holes import detect_holes
from tomoscribe.clem.lattice import fit_lattice
from tomoscribe.clem.register import (
    anchor_by_cell,
    anchor_by_landmarks,
    register_lattices,
    symmetries,
)
from tomoscribe.clem.transfer import TransferParams, fluorescence_in_tomogram, transfer_labels
from tomoscribe.clem.watershed import (
    WatershedParams,
    merge_shallow_basins,
    unmix,
    watershed_segment,
)
from tomoscribe.cli.app import main
from tomoscribe.core.transforms2d import apply, decompose, placement_matrix, similarity
from tomoscribe.errors import AnnotationError, InvalidDataError, ParameterError
from tomoscribe.experiments.clem import tomogram_tre_nm
from tomoscribe.simulate.correlative import CorrelativeParams, make_correlative_pair
from tomoscribe.volume import Volume


def _lattice_image(
    n=400, spacing=40.0, radius=13.0, angle=0.3, origin=(17.0, 23.0), noise=0.05, seed=0
):
    rng = np.random.default_rng(seed)
    a1 = spacing * np.array([math.cos(angle), math.sin(angle)])
    a2 = spacing * np.array([-math.sin(angle), math.cos(angle)])
    centres = np.array(
        [np.array(origin) + i * a1 + j * a2 for i in range(-15, 16) for j in range(-15, 16)]
    )
    centres = centres[np.all((centres > radius + 2) & (centres < n - radius - 2), axis=1)]
    yy, xx = np.mgrid[:n, :n]
    image = np.full((n, n), 0.4)
    for cx, cy in centres:
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = 1.0
    image = scipy.ndimage.gaussian_filter(image, 1.0) + rng.normal(0, noise, image.shape)
    return image.astype(np.float32), centres


def test_similarity_and_placement_round_trip():
    matrix = similarity(2.5, 30.0, (10.0, -4.0), mirror=True)
    parts = decompose(matrix)
    assert parts["scale"] == pytest.approx(2.5)
    assert parts["mirror"] and parts["anisotropy"] == pytest.approx(1.0)
    placement = {
        "tomogram_shape": [8, 100, 200],
        "tomogram_voxel_nm": 2.0,
        "overview_pixel_nm": 40.0,
        "tomogram_centre_overview_px": [300.0, 200.0],
        "tomogram_rotation_deg": 90.0,
    }
    to_ov = placement_matrix(placement)
    centre = apply(to_ov, [[99.5, 49.5]])[0]
    assert centre == pytest.approx([300.0, 200.0])
    # +x of the tomogram (20 px = 40 nm = 1 overview px) turns to +y in the overview.
    assert apply(to_ov, [[119.5, 49.5]])[0] == pytest.approx([300.0, 201.0])
    with pytest.raises(ParameterError):
        placement_matrix({"tomogram_shape": [8, 100, 200]})


def test_holes_and_lattice_recover_centres_and_reject_outliers():
    image, centres = _lattice_image()
    image[200:206, 5:11] = 1.0  # a bright speck: not a hole
    holes = detect_holes(image, 50.0, 1.3)  # radius 13 px at 50 nm/px
    assert holes.attrs["polarity"] == "bright"
    lattice = fit_lattice(holes[["x", "y"]].to_numpy(), 40.0)
    assert lattice.spacing_px == pytest.approx(40.0, rel=0.01)
    found = lattice.points[lattice.inlier]
    distance = np.min(np.linalg.norm(found[:, None] - centres[None], axis=2), axis=1)
    assert np.all(distance < 0.3)
    assert lattice.inlier.sum() >= 0.9 * len(centres)
    # A dark-hole image (reflection) gives the same centres with polarity "dark".
    dark = detect_holes(-image, 50.0, 1.3)
    assert dark.attrs["polarity"] == "dark" and len(dark) == len(holes)


def test_too_few_or_collinear_holes_are_refused():
    with pytest.raises(InvalidDataError, match="only 3 holes"):
        fit_lattice(np.array([[0, 0], [40, 0], [80, 0]]), 40.0)
    with pytest.raises(InvalidDataError, match="one line"):
        fit_lattice(np.array([[40.0 * k, 0.0] for k in range(10)]), 40.0)
    blank = np.random.default_rng(0).normal(0, 1, (200, 200))
    holes = detect_holes(blank, 50.0, 1.3, min_score=0.5)
    with pytest.raises(InvalidDataError):
        fit_lattice(holes[["x", "y"]].to_numpy(), 40.0)


def test_symmetries_of_the_square_lattice():
    assert len(symmetries()) == 8
    assert all(round(np.linalg.det(m)) == 1 for m in symmetries(False))
    assert all(round(np.linalg.det(m)) == -1 for m in symmetries(True))


def _pair(mirror=False, seed=1):
    labels = np.zeros((16, 96, 96), np.uint8)
    labels[6:10, 40:46, :] = 2  # one microtubule along x
    instances = (labels > 0).astype(np.int32)
    params = CorrelativeParams(
        overview_size=512,
        fm_size=224,
        n_cell_filaments=10,
        cell_diameter_um=14.0,
        fm_mirror=mirror,
        seed=seed,
    )
    return make_correlative_pair(labels, instances, 20.0, params), params


def _lattices(pair, params):
    ov = detect_holes(pair["overview"], 40.0, 2.0)
    fm = detect_holes(pair["fluorescence"]["reflection"], 100.0, 2.0)
    return (
        fit_lattice(fm[["x", "y"]].to_numpy(), 30.0),
        fit_lattice(ov[["x", "y"]].to_numpy(), 75.0),
    )


@pytest.mark.parametrize("mirror", [False, True])
def test_registration_through_holes_meets_50_nm_at_the_tomogram(mirror):
    pair, params = _pair(mirror)
    lattice_fm, lattice_ov = _lattices(pair, params)
    symmetry, shift, anchor = anchor_by_cell(
        lattice_fm, lattice_ov, pair["fluorescence"]["cell"].max(0), pair["overview"], 2.5, 25.0
    )
    registration = register_lattices(lattice_fm, lattice_ov, symmetry, shift, 40.0, anchor=anchor)
    error = tomogram_tre_nm(registration.matrix, pair["fm_to_overview"], pair["placement"], 100.0)
    assert error["max"] <= 50.0
    summary = registration.summary()
    assert summary["mirror"] == mirror
    assert summary["n_inliers"] >= 15 and summary["fre_nm"] < 100
    assert summary["loo_tre_nm"]["median"] < 60
    # Told the truth about mirroring, the anchor keeps it (a trial: `--mirror no` gave a
    # mirrored map and `--mirror yes` an unmirrored one, when the lattices' bases had
    # opposite hands); told the opposite, it cannot give the true map.
    for told in (mirror, not mirror):
        try:
            symmetry, shift, anchor = anchor_by_cell(
                lattice_fm, lattice_ov, pair["fluorescence"]["cell"].max(0), pair["overview"],
                2.5, 25.0, mirror=told,
            )  # fmt: skip
        except (InvalidDataError, ParameterError):
            assert told != mirror
            continue
        given = register_lattices(lattice_fm, lattice_ov, symmetry, shift, 40.0, anchor=anchor)
        assert given.summary()["mirror"] == told


def test_landmarks_resolve_the_ambiguity_and_too_few_are_refused():
    pair, params = _pair(seed=2)
    lattice_fm, lattice_ov = _lattices(pair, params)
    truth = pair["fm_to_overview"]
    fm_points = np.array([[60.0, 50.0], [150.0, 70.0], [100.0, 170.0]])
    ov_points = apply(truth, fm_points) + np.array([[8.0, -5.0], [-6.0, 4.0], [3.0, 7.0]])
    symmetry, shift, _ = anchor_by_landmarks(lattice_fm, lattice_ov, fm_points, ov_points, 2.5)
    registration = register_lattices(lattice_fm, lattice_ov, symmetry, shift, 40.0)
    assert tomogram_tre_nm(registration.matrix, truth, pair["placement"], 100.0)["max"] <= 50
    with pytest.raises(ParameterError, match="at least 3"):
        anchor_by_landmarks(lattice_fm, lattice_ov, fm_points[:1], ov_points[:1], 2.5)


def _blob(shape, centre, sigma, height):
    zz, yy, xx = np.indices(shape)
    d2 = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
    return height * np.exp(-0.5 * d2 / sigma**2)


def test_watershed_separates_and_merges_by_saddle_depth():
    rng = np.random.default_rng(0)
    shape = (5, 64, 96)
    apart = _blob(shape, (2, 32, 25), 3, 100) + _blob(shape, (2, 32, 70), 3, 100)
    regions, table, _ = watershed_segment(apart + rng.normal(0, 1, shape))
    assert len(table) == 2
    # Two peaks on one ridge: a shallow saddle merges them; with no merging, two basins.
    ridge = _blob(shape, (2, 32, 40), 4, 100) + _blob(shape, (2, 32, 50), 4, 100)
    noisy = ridge + rng.normal(0, 1, shape)
    merged, table, _ = watershed_segment(noisy)
    assert len(table) == 1
    split, table, _ = watershed_segment(
        noisy, WatershedParams(merge_depth_sigma=0.0, merge_depth_fraction=0.0)
    )
    assert len(table) >= 2


def test_merge_shallow_basins_uses_the_pass_height():
    signal = np.array([[0, 10, 7, 9, 0]], float)[None]
    basins = np.array([[1, 1, 1, 2, 2]])[None]
    assert merge_shallow_basins(basins, signal, depth=3).max() == 1  # 9 − 7 < 3
    assert set(np.unique(merge_shallow_basins(basins, signal, depth=1.5))) == {1, 2}


def test_unmix_removes_bleed_through():
    rng = np.random.default_rng(1)
    true = rng.random((2, 2, 8, 8)).astype(np.float32)
    mixing = np.array([[1.0, 0.2], [0.05, 1.0]])
    observed = np.tensordot(mixing, true, axes=1)
    assert np.allclose(unmix(observed, mixing), true, atol=1e-5)


def _transfer_case(offset_px=0.0):
    """A dark filament in a noisy tomogram, fluorescence of it on a 10× coarser grid."""
    rng = np.random.default_rng(3)
    nz, ny, nx = 20, 200, 200
    tomo = rng.normal(0, 1, (nz, ny, nx)).astype(np.float32)
    truth = np.zeros((nz, ny, nx), bool)
    truth[8:12, 95:105, :] = True
    tomo[truth] -= 3.0
    fm = np.zeros((3, 60, 60), np.float32)
    fm[1, 29:31, 20:40] = 1.0  # the filament at fm y = 29.5..30, x 20..40
    fm = scipy.ndimage.gaussian_filter(fm, (0.5, 1.5, 1.5)) * 1000
    fm += rng.normal(0, 1, fm.shape)
    regions, _, signal = watershed_segment(fm)
    # Tomogram pixel (x, y) → overview = fluorescence: 10 tomogram px per fm pixel.
    placement = {
        "tomogram_shape": [nz, ny, nx],
        "tomogram_voxel_nm": 10.0,
        "overview_pixel_nm": 100.0,
        "tomogram_centre_overview_px": [29.95, 29.95 + offset_px],
        "tomogram_rotation_deg": 0.0,
        "fluorescence_z_slice": 1.0,
    }
    return tomo, truth, regions, signal, placement


def test_transfer_refines_the_fluorescence_band_with_density():
    tomo, truth, regions, signal, placement = _transfer_case()
    sampled = fluorescence_in_tomogram(regions, signal, (100.0, 100.0, 250.0), np.eye(3), placement)
    assert sampled["band"][100].any() and not sampled["band"][10].any()
    params = TransferParams(
        n_positive=5, n_negative=20, density_sigma=1.5, smooth_nm=0.0, tile_size=32
    )  # a solid bar: nothing to fill
    trainset, refined, record = transfer_labels(Volume(tomo, 100.0), sampled, params, 20.0)
    inside = refined & truth
    assert inside.sum() / refined.sum() > 0.9  # precise
    assert inside.sum() / truth.sum() > 0.5  # and covering most of the filament
    assert trainset.metadata["label_transfer"]["registration_tre_nm"] == 20.0
    assert trainset.n_negative >= 20 and trainset.masks[~trainset.positive].sum() == 0


def test_transfer_outside_the_fluorescence_field_is_refused():
    tomo, truth, regions, signal, placement = _transfer_case(offset_px=200.0)
    with pytest.raises(ParameterError, match="outside the fluorescence field"):
        fluorescence_in_tomogram(regions, signal, (100.0, 100.0, 250.0), np.eye(3), placement)


def test_transfer_without_label_in_the_tomogram_is_refused():
    tomo, truth, regions, signal, placement = _transfer_case()
    with pytest.raises(AnnotationError, match="nothing to transfer"):
        fluorescence_in_tomogram(
            np.zeros_like(regions), signal, (100.0, 100.0, 250.0), np.eye(3), placement
        )


@pytest.fixture(scope="module")
def clem_dataset(tmp_path_factory):
    from tomoscribe.experiments.clem import simulate_clem_dataset

    out = tmp_path_factory.mktemp("clem")
    pair = simulate_clem_dataset(out, "small", seed=4)
    return out, pair


def test_cli_chain_register_watershed_transfer(clem_dataset, tmp_path, capsys):
    out, pair = clem_dataset
    clem = out / "clem"
    transform = tmp_path / "transform.json"
    assert (
        main(
            [
                "clem",
                "register",
                str(clem / "overview.mrc"),
                str(clem / "fluorescence_reflection.mrc"),
                "--cell",
                str(clem / "fluorescence_cell.mrc"),
                "--out",
                str(transform),
            ]
        )
        == 0
    )
    record = json.loads(transform.read_text())
    assert np.loadtxt(transform.with_suffix(".txt")).shape == (3, 3)
    error = tomogram_tre_nm(
        np.array(record["matrix"]), pair["fm_to_overview"], pair["placement"], 100.0
    )
    assert error["max"] <= 50.0
    # One orchestration: the library call on the simulated arrays (as the pipeline makes
    # it) gives the command's transform.
    from tomoscribe.clem.workflow import register_images

    registered = register_images(
        pair["overview"][0],
        pair["fluorescence"]["reflection"],
        40.0,
        100.0,
        cell=pair["fluorescence"]["cell"].max(0),
    )
    np.testing.assert_allclose(
        registered.registration.matrix, record["matrix"], rtol=1e-4, atol=1e-3
    )
    assert registered.holes_overview == record["holes_overview"]
    regions = tmp_path / "regions.mrc"
    assert (
        main(
            [
                "clem",
                "watershed",
                str(clem / "fluorescence_microtubule.mrc"),
                "--bleed-from",
                str(clem / "fluorescence_cell.mrc"),
                "--bleed-fraction",
                "0.1",
                "-o",
                str(regions),
            ]
        )
        == 0
    )
    # the trial: every clem command said of the simulator's own 100 × 100 × 250 nm
    # stacks that tomoscribe takes voxels as cubes (CLEM uses each axis's size)
    with mrcfile.open(clem / "fluorescence_microtubule.mrc", permissive=True) as mrc:
        assert mrc.voxel_size.z > 1.5 * mrc.voxel_size.x
    assert "not cubes" not in capsys.readouterr().err
    trainset = tmp_path / "mt.trainset"
    argv = [
        "clem",
        "transfer",
        str(out / "preprocessed_1.mrc"),
        "--fluorescence",
        str(clem / "fluorescence_microtubule.mrc"),
        "--regions",
        str(regions),
        "--transform",
        str(transform),
        "--placement",
        str(clem / "placement.json"),
        "--feature",
        "microtubule",
        "--bleed-from",
        str(clem / "fluorescence_cell.mrc"),
        "--bleed-fraction",
        "0.1",
    ]
    assert main([*argv, "-o", str(trainset)]) == 0
    from tomoscribe.segment.trainset import load_training_set

    loaded = load_training_set(trainset)
    assert loaded.metadata["annotator"] == "CLEM label transfer"
    assert "does not look preprocessed" not in capsys.readouterr().err
    # the trial: a raw tomogram (a reconstruction's own values) was taken without a word,
    # as trainset and the viewer say of it
    pre = mrcfile.read(out / "preprocessed_1.mrc")
    with mrcfile.open(out / "preprocessed_1.mrc", permissive=True) as mrc:
        voxel = float(mrc.voxel_size.x)
    with mrcfile.new(tmp_path / "raw.mrc") as mrc:
        mrc.set_data((pre * 40 + 128).astype(np.float32))
        mrc.voxel_size = voxel
    raw_argv = ["clem", "transfer", str(tmp_path / "raw.mrc")] + argv[3:]
    assert main([*raw_argv, "-o", str(tmp_path / "raw.trainset")]) == 0
    assert "the tomogram does not look preprocessed" in capsys.readouterr().err
    # Every input is in the provenance record, the unmixing channel included.
    from tomoscribe.outputs import read_provenance

    recorded = json.dumps(read_provenance(trainset)["inputs"])
    assert "fluorescence_cell.mrc" in recorded and "placement.json" in recorded
    truth = mrcfile.read(out / "truth" / "labels_1.mrc") == 2
    masks_hit = loaded.masks[loaded.positive].sum()
    assert masks_hit > 0 and truth.any()


def test_clem_simulate_truth_labels_have_a_legend(clem_dataset):
    from tomoscribe.core.legend import read_legend

    out, _ = clem_dataset
    legend = read_legend(out / "truth" / "labels_1.mrc")
    assert legend is not None and legend.id_of("microtubule") == 2
    present = set(np.unique(mrcfile.read(out / "truth" / "labels_1.mrc")).tolist())
    assert present <= set(legend.entries)


def test_cli_bad_input_exits_2_without_output(clem_dataset, tmp_path, capsys):
    out, _ = clem_dataset
    clem = out / "clem"
    # A fluorescence stack without voxel size.
    bare = tmp_path / "bare.mrc"
    with mrcfile.new(bare) as handle:
        handle.set_data(np.zeros((1, 64, 64), np.float32))
    target = tmp_path / "t.json"
    assert (
        main(
            [
                "clem",
                "register",
                str(clem / "overview.mrc"),
                str(bare),
                "--cell",
                str(clem / "fluorescence_cell.mrc"),
                "--out",
                str(target),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--fluorescence-pixel-size" in err and not target.exists()
    # An image with no holes.
    blank = tmp_path / "blank.mrc"
    with mrcfile.new(blank) as handle:
        handle.set_data(np.random.default_rng(0).normal(0, 1, (1, 200, 200)).astype(np.float32))
        handle.voxel_size = 1000.0
    assert (
        main(
            [
                "clem",
                "register",
                str(clem / "overview.mrc"),
                str(blank),
                "--cell",
                str(blank),
                "--out",
                str(target),
            ]
        )
        == 2
    )
    assert "holes" in capsys.readouterr().err and not target.exists()
    # A placement that puts the tomogram outside the fluorescence field.
    assert (
        main(
            [
                "clem",
                "register",
                str(clem / "overview.mrc"),
                str(clem / "fluorescence_reflection.mrc"),
                "--cell",
                str(clem / "fluorescence_cell.mrc"),
                "--out",
                str(target),
            ]
        )
        == 0
    )
    regions = tmp_path / "regions.mrc"
    assert (
        main(["clem", "watershed", str(clem / "fluorescence_microtubule.mrc"), "-o", str(regions)])
        == 0
    )
    placement = json.loads((clem / "placement.json").read_text())
    placement["tomogram_centre_overview_px"] = [5000.0, 5000.0]
    far = tmp_path / "far.json"
    far.write_text(json.dumps(placement))
    trainset = tmp_path / "x.trainset"
    assert (
        main(
            [
                "clem",
                "transfer",
                str(out / "preprocessed_1.mrc"),
                "--fluorescence",
                str(clem / "fluorescence_microtubule.mrc"),
                "--regions",
                str(regions),
                "--transform",
                str(target),
                "--placement",
                str(far),
                "--feature",
                "microtubule",
                "-o",
                str(trainset),
            ]
        )
        == 2
    )
    assert "outside the fluorescence field" in capsys.readouterr().err
    assert not trainset.exists()
    # Too few landmarks.
    assert (
        main(
            [
                "clem",
                "register",
                str(clem / "overview.mrc"),
                str(clem / "fluorescence_reflection.mrc"),
                "--landmark",
                "1,2,3,4",
                "--out",
                str(tmp_path / "l.json"),
            ]
        )
        == 2
    )


def test_pipeline_refuses_a_bad_number_of_labelled_tomograms(tmp_path):
    from tomoscribe.experiments.clem import ClemSettings, run_clem_pipeline

    for bad in (0, 9):
        with pytest.raises(ParameterError, match="`training_tomograms`"):
            run_clem_pipeline(ClemSettings(out_dir=tmp_path / "out", training_tomograms=bad))
    assert not (tmp_path / "out").exists()


def test_pipeline_small_end_to_end(tmp_path):
    """Simulated CLEM → registration → watershed → transfer → self-training → scores."""
    from tomoscribe.experiments.clem import BASELINE_FAILED_DICE, ClemSettings, run_clem_pipeline
    from tomoscribe.segment.modelfile import load_model

    result = run_clem_pipeline(
        ClemSettings(out_dir=tmp_path, size="small", epochs=8, training_tomograms=2)
    )
    assert result["registration"]["true_error_at_tomogram_nm"]["max"] <= 50.0
    # Two tomograms with fluorescence (1 and 3) train the CLEM network; 2 has none.
    labelled = result["training_tomograms"]
    assert set(labelled) == {"tomogram_1", "tomogram_3"}
    for record in labelled.values():
        assert record["true_error_at_tomogram_nm"]["max"] <= 50.0
        assert record["label_vs_truth"]["precision"] > 0.2
    clem_model = load_model(tmp_path / "models" / "microtubule_clem.tsm")
    assert len(clem_model.metadata["training"]["trainset"]["tomogram"]) == 2
    assert clem_model.metadata["training"]["n_train_tiles"] + clem_model.metadata["training"][
        "n_validation_tiles"
    ] == sum(r["clem_tiles"] for r in labelled.values())
    human_model = load_model(tmp_path / "models" / "microtubule_human.tsm")
    assert isinstance(human_model.metadata["training"]["trainset"]["tomogram"], dict)
    assert (tmp_path / "clem" / "tomogram_3" / "microtubule_clem_round1.trainset").exists()
    assert (tmp_path / "truth" / "fm_to_overview_3.json").exists()
    scores = result["scores"]
    assert set(scores) == {
        f"{name}_tomogram_{t}" for name in ("clem", "human", "clem_round0") for t in (1, 2)
    }
    # Far above an empty or random map (microtubules are ~1% of the voxels).
    assert scores["clem_tomogram_2"]["dice"] > 0.2
    assert scores["human_tomogram_2"]["dice"] > 0.2
    labels = result["transfer"]["labels_vs_truth_by_round"]
    assert labels["density"]["precision"] > 0.2 and labels["round 1"]["precision"] > 0.2
    page = (tmp_path / "report.html").read_text()
    assert "Registration through the holes" in page and "data:image/png;base64" in page
    assert "trained on 2 tomograms with fluorescence" in page
    written = json.loads((tmp_path / "scores.json").read_text())
    assert written["dice_ratio"]["tomogram_2"] == pytest.approx(
        scores["clem_tomogram_2"]["dice"] / scores["human_tomogram_2"]["dice"]
    )
    # A failed human baseline is flagged, so its ratio is not read as a verdict.
    for t in (1, 2):
        assert written["human_network_failed"][f"tomogram_{t}"] == (
            scores[f"human_tomogram_{t}"]["dice"] < BASELINE_FAILED_DICE
        )
    for name in (
        "overview.mrc",
        "fluorescence_microtubule.mrc",
        "transform.json",
        "transform.txt",
        "regions_microtubule.mrc",
        "microtubule_clem.trainset",
    ):
        assert (tmp_path / "clem" / name).exists(), name
