"""Single-particle picking: the micrograph simulator's truth, box files as RELION and
EMAN2 write them, the two-network picker and the NCC baseline scored on held-out
simulated micrographs, and the command line's refusals."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import mrcfile
import numpy as np
import pandas as pd
import pytest
import skimage.feature
import starfile
import torch

from conftest import SHARED_DATA, entries
from spa_picking_data import picking_set, short_of_bars
from tomoscribe.cli.app import main
from tomoscribe.errors import AnnotationError, InputFileError
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.boxfiles import (
    apply_origins,
    match_micrographs,
    read_boxes,
    write_box_files,
    write_csv,
    write_info_files,
    write_star,
)
from tomoscribe.io.weights import save_weights
from tomoscribe.outputs import read_provenance
from tomoscribe.simulate.micrographs import (
    MicrographParams,
    annotator_boxes,
    bundled_template,
    simulate_micrograph,
    simulate_micrograph_set,
)
from tomoscribe.spa.micrographs import shrink_and_normalise, to_full, to_shrunk
from tomoscribe.spa.network import (
    TURNS_DEG,
    augment,
    held_out_threshold,
    split_boxes,
    train_pair,
    turned_copies,
)
from tomoscribe.spa.picking import (
    SPOT_SPREAD_LIMIT,
    crowded,
    load_picker,
    pick_micrograph,
    refine_peaks,
    spot_spread,
)
from tomoscribe.spa.reference import ncc_pick_micrograph, references_from_patches
from tomoscribe.spa.scoring import score_simulated
from tomoscribe.spa.trainset import build_trainset, cut_exact_patches, read_box_sets
from tomoscribe.volume import Volume


def test_simulated_truth_keeps_its_promises():
    template = bundled_template("1bxn")
    params = MicrographParams(
        shape=(512, 640), n_isolated=60, n_aggregates=8, n_contamination=6, carbon=True, seed=3
    )
    result = simulate_micrograph([template], params)
    table, d = result["particles"], result["diameter_px"]
    assert d == pytest.approx(2 * 70.69 / 4.0, rel=1e-3)
    xy = table[["x", "y"]].to_numpy()
    distance = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    np.fill_diagonal(distance, np.inf)
    good = (table["class"] == "good").to_numpy()
    assert good.sum() > 10 and (~good).sum() >= 6
    assert distance[good].min() >= params.isolation * d - 1e-6  # isolated means isolated
    for _, members in table[~good].groupby("aggregate").groups.items():
        sub = distance[np.ix_(members, members)]
        assert len(members) >= 2 and (sub.min(1) <= 0.85 * d + 1e-6).all()  # touching
    blobs = result["contamination"]
    assert blobs.max() >= 1
    j, i = np.rint(xy[:, 1]).astype(int), np.rint(xy[:, 0]).astype(int)
    assert (blobs[j, i] == 0).all() and not result["carbon"][j, i].any()
    again = simulate_micrograph([template], params)
    np.testing.assert_array_equal(again["image"], result["image"])


def test_contamination_blobs_are_cut_in_windows_and_kept_a_diameter_apart():
    """Each blob is computed over a window of the image (over the whole image, ten 4k
    micrographs at 1 Å took over half an hour): the window holds all of it, near an
    edge too; the growth that keeps blobs apart is scipy's ``binary_dilation`` with a
    diameter's iterations, in one distance transform; and no two blobs come within a
    diameter of each other (taxicab, as that growth measures)."""
    from scipy.ndimage import binary_dilation, distance_transform_cdt

    from tomoscribe.simulate.micrographs import _blob_mask, _contamination, _grown

    for centre, pad in (
        ((30.0, 40.0), 0),
        ((300.0, 350.0), 0),
        ((590.0, 20.0), 0),
        ((300.0, 350.0), 9),
    ):
        mask, window = _blob_mask((600, 700), centre, 50.0, np.random.default_rng(2), pad)
        draws = np.random.default_rng(2)
        harmonics = [
            (draws.normal(0, 0.12 / m * 2), draws.uniform(0, 2 * np.pi)) for m in range(2, 6)
        ]
        jj, ii = np.mgrid[:600, :700]
        angle = np.arctan2(jj - centre[0], ii - centre[1])
        wobble = np.zeros((600, 700))
        for m, (amplitude, phase) in zip(range(2, 6), harmonics):
            wobble += amplitude * np.cos(m * angle + phase)
        placed = np.zeros((600, 700), bool)
        placed[window] = mask
        full = np.hypot(jj - centre[0], ii - centre[1]) <= 50.0 * (1 + wobble)
        assert mask.shape[0] < 600 and mask.any()
        np.testing.assert_array_equal(placed, full)  # the window holds the whole blob
        if pad:  # ... and room for its growth
            placed[window] = _grown(mask, pad)
            np.testing.assert_array_equal(placed, binary_dilation(full, iterations=pad))
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((40, 50)) > 0.99
        steps = int(rng.integers(1, 25))
        np.testing.assert_array_equal(_grown(mask, steps), binary_dilation(mask, iterations=steps))
    labels = _contamination((600, 700), 12, 20.0, np.random.default_rng(1))
    assert labels.max() >= 6
    # more blobs asked than fit: those placed are numbered 1…n without gaps
    crowded = _contamination((300, 300), 40, 20.0, np.random.default_rng(1))
    assert 1 <= crowded.max() < 40
    assert set(np.unique(crowded)) == set(range(crowded.max() + 1))
    for blob in range(1, labels.max() + 1):
        reach = distance_transform_cdt(labels != blob, metric="taxicab")
        assert reach[(labels > 0) & (labels != blob)].min() > 20


def test_simulated_snr_is_the_stated_one():
    """Near particles, var(signal) / var(noise) = snr: the noisy image correlates with the
    noiseless one (same seed, snr 10⁶) as sqrt(snr / (1 + snr))."""
    from dataclasses import replace

    from tomoscribe.simulate.micrographs import _near_centres

    params = MicrographParams(shape=(512, 512), n_contamination=0, snr=0.1, seed=4)
    noisy = simulate_micrograph([bundled_template("1bxn")], params)
    clean = simulate_micrograph([bundled_template("1bxn")], replace(params, snr=1e6))
    near = _near_centres((512, 512), noisy["particles"], noisy["diameter_px"] / 2)
    r = np.corrcoef(noisy["image"][near], clean["image"][near])[0, 1]
    assert r == pytest.approx(np.sqrt(0.1 / 1.1), abs=0.03)


def test_the_simulated_annotator_boxes_carbon_as_bad():
    """The slides' bad set is "anything else that is not a particle": on a micrograph with
    a carbon edge a third of the bad boxes lie on the carbon; without
    carbon the bad boxes are blobs and aggregates in turn."""
    import scipy.ndimage

    params = MicrographParams(
        shape=(512, 512), n_isolated=60, n_aggregates=12, n_contamination=8, seed=2
    )
    truths = simulate_micrograph_set([bundled_template("1bxn")], 2, [1.0], 0.5, params)
    assert [t["carbon"].any() for t in truths.values()] == [False, True]
    boxes = annotator_boxes(truths, 9, np.random.default_rng(0))
    bad = boxes[boxes["set"] == "bad"]
    truth = truths["mic_001"]
    depth = scipy.ndimage.distance_transform_edt(truth["carbon"]) / truth["diameter_px"]
    j, i = np.rint(bad["y"]).astype(int), np.rint(bad["x"]).astype(int)
    on_carbon = (bad["micrograph"] == "mic_001").to_numpy() & truth["carbon"][j, i]
    assert on_carbon.sum() == 3
    assert (depth[j, i][on_carbon] >= 0.25).all()
    for kind in ("good", "background"):
        rows = boxes[(boxes["set"] == kind) & (boxes["micrograph"] == "mic_001")]
        assert not truth["carbon"][
            np.rint(rows["y"]).astype(int), np.rint(rows["x"]).astype(int)
        ].any()
    plain = annotator_boxes({"mic_000": truths["mic_000"]}, 4, np.random.default_rng(0))
    blobs = truths["mic_000"]["contamination"]
    bad = plain[plain["set"] == "bad"]
    on_blob = blobs[np.rint(bad["y"]).astype(int), np.rint(bad["x"]).astype(int)] > 0
    assert list(on_blob) == [True, False, True, False]  # blob, aggregate, blob, aggregate
    # a blob id without pixels (no room found in 50 tries: seen on 4k micrographs at 1 Å)
    # gives no box (its centre was the mean of nothing: NaN, and a RuntimeWarning)
    gap = dict(truths["mic_000"])
    ids = gap["contamination"]
    gap["contamination"] = np.where(ids == 1, 0, ids).astype(ids.dtype)  # id 1 gone
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        boxes = annotator_boxes({"mic_000": gap}, 4, np.random.default_rng(0))
    assert np.isfinite(boxes[["x", "y"]].to_numpy(float)).all()


def _relion_particles(path, names, x, y, origins_A=None):
    """A RELION 3.1+ particles file (optics + particles blocks) as RELION writes it."""
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [8.0], "rlnImageSize": [64]})
    particles = pd.DataFrame(
        {"rlnMicrographName": names, "rlnCoordinateX": x, "rlnCoordinateY": y, "rlnOpticsGroup": 1}
    )
    if origins_A is not None:
        particles["rlnOriginXAngst"], particles["rlnOriginYAngst"] = origins_A
    starfile.write({"optics": optics, "particles": particles}, path)
    return path


def test_boxes_name_their_micrographs_exactly_and_particles_keep_their_origins(tmp_path):
    # the new-user trial: `mic_000_2.mrc` was taken for `mic_000` (prefix), and boxes of
    # `a/mic_000.mrc` and `b/mic_000.mrc` all landed on one micrograph
    star = _relion_particles(tmp_path / "p.star", ["Movies/mic_000_2.mrc"], [10.0], [20.0])
    with pytest.raises(InputFileError, match="mic_000_2"):
        match_micrographs(read_boxes(star), ["mic_000"])
    two = _relion_particles(
        tmp_path / "two.star", ["a/mic_000.mrc", "b/mic_000.mrc"], [10.0, 30.0], [20.0, 40.0]
    )
    with pytest.raises(InputFileError, match="two micrographs called mic_000"):
        match_micrographs(read_boxes(two), ["mic_000"])
    # across the three sets too; a relative and an absolute name of one file agree
    good = _relion_particles(tmp_path / "g.star", ["a/mic_000.mrc"], [10.0], [20.0])
    bad = _relion_particles(tmp_path / "b.star", ["b/mic_000.mrc"], [10.0], [20.0])
    with pytest.raises(InputFileError, match="two micrographs called mic_000"):
        read_box_sets({"good": [good], "bad": [bad]}, ["mic_000"], 16)
    same = _relion_particles(
        tmp_path / "same.star",
        ["a/mic_000.mrc", os.path.abspath("a/mic_000.mrc")],
        [1.0, 2.0],
        [1.0, 2.0],
    )
    assert len(match_micrographs(read_boxes(same), ["mic_000"])) == 2
    bare = _relion_particles(tmp_path / "bare.star", ["mic_000.mrc"], [40.0], [20.0])
    sets, _ = read_box_sets({"good": [good], "bad": [bare]}, ["mic_000"], 16)
    assert len(sets["good"]) == len(sets["bad"]) == 1
    # a file without names belongs to the micrograph its name begins with (RELION's
    # per-micrograph autopick files)
    starfile.write(
        pd.DataFrame({"rlnCoordinateX": [5.0], "rlnCoordinateY": [6.0]}),
        tmp_path / "mic_000_autopick.star",
    )
    assert list(
        match_micrographs(read_boxes(tmp_path / "mic_000_autopick.star"), ["mic_000"])["micrograph"]
    ) == ["mic_000"]
    # RELION re-centres a particle at x − rlnOriginXAngst / pixel size: rows 10 px off
    # with a 40 Å origin at 4 Å per pixel are the same boxes as rows without
    shifted = _relion_particles(
        tmp_path / "s.star",
        ["mic_000.mrc"] * 2,
        [110.0, 50.0],
        [80.0, 64.0],
        ([40.0, -8.0], [-20.0, 0.0]),
    )
    boxes = apply_origins(match_micrographs(read_boxes(shifted), ["mic_000"]), 4.0)
    assert np.allclose(boxes[["x", "y"]].to_numpy(), [[100.0, 85.0], [52.0, 64.0]])
    old = tmp_path / "old.star"
    starfile.write(
        pd.DataFrame(
            {
                "rlnCoordinateX": [1.0],
                "rlnCoordinateY": [1.0],
                "rlnOriginX": [2.0],
                "rlnOriginY": [0.0],
            }
        ),
        old,
    )
    with pytest.raises(InputFileError, match="rlnOriginX"):
        read_boxes(old)
    # a tomogram's particle list (a trial's spa score named its micrograph 'r', the stem)
    starfile.write(
        pd.DataFrame(
            {
                "rlnTomoName": ["TS_1"],
                "rlnCoordinateX": [1.0],
                "rlnCoordinateY": [2.0],
                "rlnCoordinateZ": [3.0],
            }
        ),  # fmt: skip
        tmp_path / "r.star",
    )
    with pytest.raises(InputFileError, match="lists particles of tomograms .* not boxes"):
        read_boxes(tmp_path / "r.star")
    # review: Warp's picks name .tomostar files (micrograph names), at z up to 1858
    warp = SHARED_DATA / "formats" / "star" / "warp_particles_a.star"
    if warp.is_file():
        with pytest.raises(InputFileError, match="lists particles of tomograms"):
            read_boxes(warp)


def test_relion4_coordinate_index_and_a_one_particle_star(tmp_path, monkeypatch):
    # RELION 4's AutoPick/jobNNN/autopick.star lists one coordinate file per micrograph,
    # with paths from the project folder
    job = tmp_path / "AutoPick" / "job006"
    (job / "Movies").mkdir(parents=True)
    for name, x in (("mic_a", [10.0, 20.0]), ("mic_b", [30.0])):
        coordinates = pd.DataFrame({"rlnCoordinateX": x, "rlnCoordinateY": [5.0] * len(x)})
        starfile.write(coordinates, job / "Movies" / f"{name}_autopick.star")
    index = pd.DataFrame(
        {
            "rlnMicrographName": [
                "MotionCorr/job002/Movies/mic_a.mrc",
                "MotionCorr/job002/Movies/mic_b.mrc",
            ],
            "rlnMicrographCoordinates": [
                "AutoPick/job006/Movies/mic_a_autopick.star",
                "AutoPick/job006/Movies/mic_b_autopick.star",
            ],
        }
    )
    starfile.write({"coordinate_files": index}, job / "autopick.star")
    for where in (tmp_path, job):  # from the project folder, or from anywhere
        monkeypatch.chdir(where)
        boxes = match_micrographs(read_boxes(job / "autopick.star"), ["mic_a", "mic_b"])
        assert list(boxes["micrograph"]) == ["mic_a", "mic_a", "mic_b"]
        assert list(boxes["x"]) == [10.0, 20.0, 30.0]
    (job / "Movies" / "mic_b_autopick.star").unlink()
    with pytest.raises(InputFileError, match="mic_b_autopick.star"):
        read_boxes(job / "autopick.star")
    # one particle written as key-value pairs rather than a loop
    (tmp_path / "one.star").write_text(
        "data_particles\n\n_rlnMicrographName mic_a.mrc\n_rlnCoordinateX 12.5\n"
        "_rlnCoordinateY 7.0\n"
    )
    one = read_boxes(tmp_path / "one.star")
    assert list(one["micrograph"]) == ["mic_a"] and one["x"].tolist() == [12.5]


def test_box_files_as_relion_and_eman2_write_them(tmp_path):
    picks = pd.DataFrame(
        {
            "micrograph": ["mic_a", "mic_a", "mic_b"],
            "x": [100.0, 30.5, 7.0],
            "y": [50.0, 60.0, 8.0],
            "score": [0.9, 0.5, 0.7],
        }
    )
    write_star(tmp_path / "p.star", picks, {"mic_a": "mic_a.mrc"})
    star = starfile.read(tmp_path / "p.star")
    assert list(star.columns) == [
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAutopickFigureOfMerit",
    ]
    assert star["rlnMicrographName"].tolist() == ["mic_a.mrc", "mic_a.mrc", "mic_b.mrc"]
    back = read_boxes(tmp_path / "p.star")
    np.testing.assert_allclose(back[["x", "y", "score"]], picks[["x", "y", "score"]])
    write_box_files(tmp_path, picks, 40)
    # EMAN2: x y w h of the box's corner, tab-separated
    assert (tmp_path / "mic_a.box").read_text().splitlines()[0] == "80\t30\t40\t40"
    box = read_boxes(tmp_path / "mic_a.box")
    assert box["micrograph"].tolist() == ["mic_a"] * 2 and box["x"][0] == 100
    # an odd box: EMAN2's e2boxer writes int(centre - box/2) with an integer half box,
    # so a box of 25 about pixel 100 has its corner at 88 (it was read back as 100.5)
    (tmp_path / "odd").mkdir()
    write_box_files(tmp_path / "odd", picks, 25)
    assert (tmp_path / "odd" / "mic_a.box").read_text().splitlines()[0] == "88\t38\t25\t25"
    assert read_boxes(tmp_path / "odd" / "mic_a.box")["x"][0] == 100
    # crYOLO writes corners as centre − w/2, unrounded: read with the same half
    (tmp_path / "odd" / "mic_c.box").write_text("87.5\t37.5\t25\t25\n")
    assert read_boxes(tmp_path / "odd" / "mic_c.box")[["x", "y"]].iloc[0].tolist() == [100, 50]
    # a CSV of picks keeps its scores (they were cut to 2 decimals: 0.8734 → 0.87)
    fine = picks.assign(score=[0.87341, 0.99871, 0.5], x=[4095.37, 30.5, 7.0])
    write_csv(tmp_path / "p.csv", fine)
    back = read_boxes(tmp_path / "p.csv")
    np.testing.assert_allclose(back[["x", "y", "score"]], fine[["x", "y", "score"]], atol=1e-5)
    write_info_files(tmp_path, picks, "auto_cnn")
    info = json.loads((tmp_path / "info" / "mic_b_info.json").read_text())
    assert info == {"boxes": [[7.0, 8.0, "auto_cnn"]]}
    assert read_boxes(tmp_path / "info" / "mic_b_info.json")["micrograph"][0] == "mic_b"
    # RELION's per-micrograph autopick file names its micrograph by its stem
    starfile.write(
        pd.DataFrame({"rlnCoordinateX": [1.0], "rlnCoordinateY": [2.0]}),
        tmp_path / "mic_b_autopick.star",
    )
    auto = match_micrographs(read_boxes(tmp_path / "mic_b_autopick.star"), ["mic_a", "mic_b"])
    assert auto["micrograph"].tolist() == ["mic_b"]
    with pytest.raises(InputFileError, match="mic_b"):
        match_micrographs(back, ["mic_a"])
    (tmp_path / "bad.box").write_text("1 2\n")
    with pytest.raises(InputFileError):
        read_boxes(tmp_path / "bad.box")
    # a word for a coordinate (a trial: numpy's ValueError, a traceback, in CSV and STAR)
    (tmp_path / "word.csv").write_text("micrograph,x,y\nmic_a,abc,100\n")
    starfile.write(
        pd.DataFrame({"rlnCoordinateX": ["abc"], "rlnCoordinateY": [2.0]}), tmp_path / "w.star"
    )
    for name in ("word.csv", "w.star"):
        with pytest.raises(InputFileError, match="box 1: 'abc'"):
            read_boxes(tmp_path / name)


@pytest.fixture(scope="module")
def picking_data():
    """Six 768² micrographs at three defocus values: three annotated, three held out."""
    return picking_set()


def test_cnn_picker_on_held_out_micrographs(picking_data):
    truths, held_out, trainset = picking_data
    pair, record = train_pair(trainset, steps=1200, seed=0)
    calibration = record["calibration"]
    threshold = calibration["threshold"]
    assert calibration["held_out_boxes"] == {"good": 3, "background": 3, "bad": 3}
    assert 0.05 < threshold < 0.95
    result = score_simulated(
        truths,
        held_out,
        lambda n, im: pick_micrograph(pair, im, n, trainset["record"], threshold=threshold),
    )
    assert not short_of_bars(result), result
    # picks sit within 3 pixels (a twelfth of a diameter) of the particles they find:
    # the networks' grid is 12 pixels, so picks on its nodes were a median 4.2 off here
    errors = []
    for name in held_out:
        truth = truths[name]
        good = truth["particles"][truth["particles"]["class"] == "good"]
        picks = pick_micrograph(pair, truth["image"], name, trainset["record"], threshold)
        gaps = np.hypot(
            picks["x"].to_numpy()[:, None] - good["x"].to_numpy()[None],
            picks["y"].to_numpy()[:, None] - good["y"].to_numpy()[None],
        ).min(1)
        errors += list(gaps[gaps < truth["diameter_px"] / 4])
    assert len(errors) > 20 and np.median(errors) <= 3.0, np.median(errors)
    # a micrograph of white protein (inverted already) gives almost no pick, and is said to
    # be one from its negative's picks (a trial: 0 picks and a generic sentence)
    from tomoscribe.spa.workflow import WHITE_PROTEIN_PICKS, _warn_of_white_protein

    def pick(image, name):
        return pick_micrograph(pair, image, name, trainset["record"], threshold)

    name = held_out[0]
    white = {name: -truths[name]["image"]}
    tables = [pick(white[name], name)]
    assert len(tables[0]) < WHITE_PROTEIN_PICKS  # 0–2 picks, by machine
    with pytest.warns(
        UserWarning, match="the other contrast than in the micrographs.*with --invert"
    ):
        _warn_of_white_protein(white, tables, pick, inverted=False)
    # the NCC baseline with the good boxes as references picks contamination
    references = references_from_patches(trainset["good"], trainset["record"]["geometry"]["box"])
    baseline = score_simulated(
        truths,
        held_out,
        lambda n, im: ncc_pick_micrograph(
            im, n, references, trainset["record"]["shrink"], 54, threshold=0.2
        ),
    )
    assert baseline["blobs_unpicked"] < result["blobs_unpicked"], baseline


@pytest.mark.parametrize("centre", [(20.3, 33.9), (41.5, 18.2), (29.0, 26.6)])
def test_refined_picks_sit_on_the_top_of_the_networks_spot(centre):
    # a Gaussian spot (σ 3 shrunk pixels, as the networks are trained towards) sampled
    # on the networks' grid (node j at 4j + 1.5); the peak finder's pick is the nearest
    # node, up to 2 pixels off in each axis; refined, it lands on the centre
    nodes = np.arange(16) * 4 + 1.5
    x0, y0 = centre
    coarse = 0.9 * np.exp(-((nodes[None, :] - x0) ** 2 + (nodes[:, None] - y0) ** 2) / 18)
    j, i = np.unravel_index(np.argmax(coarse), coarse.shape)
    node = np.array([[nodes[i], nodes[j]]])
    refined = refine_peaks(coarse, node)
    assert np.abs(refined - centre).max() < 0.01, (refined, node)
    # on the grid's border a pick stays on its node along that axis; flat: no move
    edge = np.exp(-((nodes[None, :] - 2.5) ** 2 + (nodes[:, None] - y0) ** 2) / 18)
    border = refine_peaks(edge, np.array([[nodes[0], nodes[j]]]))
    assert border[0, 0] == nodes[0] and abs(border[0, 1] - y0) < 0.01
    flat = refine_peaks(np.full((16, 16), 0.5), node)
    assert np.array_equal(flat, node)


def test_a_pick_with_a_particle_like_neighbour_is_crowded():
    # network 1's spots on its grid (shrink 3: node j at full-resolution (4j + 2)·3 − ½,
    # 12 px apart); box 54, so ¾ box = 40.5 px and a quarter box 13.5 px
    shrink, box = 3, 54
    coarse = np.zeros((40, 40), np.float32)

    def spot(col, row):
        coarse[row, col] = 0.9
        return np.array([(4 * col + 2) * shrink - 0.5, (4 * row + 2) * shrink - 0.5])

    near = spot(5, 5)
    spot(5, 8)  # 36 px from `near`
    far = spot(20, 20)
    spot(24, 20)  # 48 px from `far`
    alone = spot(30, 30) + [2.0, -3.0]  # its own spot, 3.6 px off, never counts
    picks = np.array([near, far, alone])
    assert crowded(coarse, picks, shrink, box, 0.75 * box).tolist() == [True, False, False]
    assert crowded(coarse, picks, shrink, box, 60).tolist() == [True, True, False]
    assert not crowded(coarse, picks, shrink, box, 0).any()  # 0: every pick kept
    coarse[coarse > 0] = 0.4  # below one half: not particle-like
    assert not crowded(coarse, picks, shrink, box, 60).any()
    # box 56 at shrink 4 (grid 16 px > a quarter box, 14 px): the pick's own spot a
    # node away is still its own; a neighbour two nodes (32 px) away is not
    coarse = np.zeros((40, 40), np.float32)
    shrink, box = 4, 56
    coarse[10, 10] = coarse[10, 13] = 0.9
    pick = np.array([[(4 * 11 + 2) * shrink - 0.5, (4 * 10 + 2) * shrink - 0.5]])
    assert not crowded(coarse[:, :12], pick, shrink, box, 0.75 * box).any()
    assert crowded(coarse, pick, shrink, box, 40).all()


def test_a_pick_on_merged_spots_is_crowded():
    """Particles touching in an aggregate (0.6–0.85 diameter apart: under two grid
    steps) give network 1 one spot, which the neighbour test cannot split, but a long
    one; one particle's spot (σ = 0.75 step, the networks' target) is round and kept."""
    shrink, box = 3, 54
    rows, cols = np.mgrid[0:40, 0:40].astype(float)

    def blob(*centres):
        spots = sum(
            np.exp(-((cols - c) ** 2 + (rows - r) ** 2) / (2 * 0.75**2)) for c, r in centres
        )
        return (0.9 * spots / spots.max()).astype(np.float32)

    def at_peak(coarse):
        peaks = skimage.feature.peak_local_max(coarse, min_distance=1, threshold_abs=0.5)
        assert len(peaks) == 1  # one spot: no neighbour to find
        row, col = peaks[0]
        return to_full(np.array([[4 * col + 1.5, 4 * row + 1.5]]), shrink)

    single = blob((10, 10))
    assert spot_spread(single, np.array([[41.5, 41.5]]))[0] < 0.5
    assert not crowded(single, at_peak(single), shrink, box, 0.75 * box).any()
    row = blob((10, 10), (11.5, 10), (12.9, 10))  # three in a row, 17–18 px apart
    corner = blob((10, 10), (11.75, 10), (10, 11.75))  # three in an L, 21 px apart
    isolated = [(x, y) for x in (25, 32) for y in (5, 15, 25, 32)]
    for merged in (row, corner):
        pick = at_peak(merged)
        assert spot_spread(merged, to_shrunk(pick, shrink))[0] > SPOT_SPREAD_LIMIT
        # among a micrograph's isolated particles (whose spots set the median)
        coarse = np.maximum(merged, blob(*isolated[:1]))
        for spot in isolated[1:]:
            coarse = np.maximum(coarse, blob(spot))
        picks = np.concatenate([pick, to_full(np.array(isolated) * 4 + 1.5, shrink)])
        assert crowded(coarse, picks, shrink, box, 0.75 * box).tolist() == [True] + [False] * 8
        assert not crowded(coarse, picks, shrink, box, 0).any()  # 0: every pick kept
        # alone, or where every spot is as wide, it is not told from the others
        assert not crowded(merged, pick, shrink, box, 0.75 * box).any()


def test_held_out_threshold_separates_and_splits_sets():
    # halfway between the good median (0.8) and the negatives' 90th percentile (0.46)
    threshold, f1 = held_out_threshold(np.array([0.7, 0.8, 0.9]), np.array([0.1, 0.3, 0.5]))
    assert f1 == 1.0 and threshold == pytest.approx(0.63)
    # (0.7 + 0.55) / 2: two good boxes above, one below, no negative: F1 = 4/5; a single
    # low good score (0.05) does not drag the threshold to it
    threshold, f1 = held_out_threshold(np.array([0.5, 0.7, 0.9]), np.array([0.1, 0.6]))
    assert f1 == pytest.approx(4 / 5) and threshold == pytest.approx(0.625)
    threshold, _ = held_out_threshold(np.array([0.05, 0.85, 0.9, 0.95]), np.array([0.0, 0.02]))
    assert 0.4 < threshold < 0.5
    sets = {k: np.zeros((15 if k != "bad" else 3, 4, 4)) for k in ("good", "background", "bad")}
    train, held = split_boxes(sets, 0.2, 0)
    assert [len(held[k]) for k in ("good", "background", "bad")] == [3, 3, 0]
    assert [len(train[k]) for k in ("good", "background", "bad")] == [12, 12, 3]


def test_ice_beside_carbon_and_blobs_keeps_its_level():
    """The local mean is the ice's: next to a darker carbon half-plane and a dense blob
    the ice comes out at the level it has far from them (a plain local mean, pulled
    down by their pixels, left it 0.26 σ and 1.7 σ brighter, and the picker missed the
    particles there)."""
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (768, 768)).astype(np.float32)
    image[:, 512:] -= 0.6  # carbon
    jj, ii = np.ogrid[:768, :768]
    image[(jj - 200) ** 2 + (ii - 200) ** 2 < 60**2] -= 3.0  # contamination
    small = shrink_and_normalise(image, 3)
    far = small[100:, 20:60].mean()
    beside_carbon = small[:, 150:160].mean()  # ice 32–62 pixels from the edge
    yy, xx = np.ogrid[: small.shape[0], : small.shape[1]]
    r = np.hypot(yy - 66.5, xx - 66.5)
    around_blob = small[(r > 22) & (r < 32)].mean()  # ice within 30 pixels of the blob
    assert abs(beside_carbon - far) < 0.1 and abs(around_blob - far) < 0.1
    assert small[:, 172:180].mean() < far - 0.3  # the carbon by the edge stays darker


@pytest.mark.parametrize("carbon_share", [0.0, 0.3])
def test_the_ice_sets_the_scale_beside_textured_carbon(carbon_share):
    """The ice comes out at unit spread beside textured carbon over up to a third of
    the micrograph: a carbon stripe over 30% of it, its texture smooth and three times
    the ice's noise after shrinking, widened the whole micrograph's median absolute
    deviation by 30% and left the ice at 0.77 σ (beyond half the micrograph the
    carbon is the median neighbourhood: ``ice_spread``'s docstring)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    image = rng.normal(0, 1, (1536, 1536)).astype(np.float32)  # white ice: 1/3 σ at 3×
    stripe = int(round(carbon_share * image.shape[1]))
    if stripe:
        texture = gaussian_filter(rng.normal(0, 1, (1536, stripe)), 6)
        image[:, -stripe:] += (texture / texture.std()).astype(np.float32)
    small = shrink_and_normalise(image, 3)
    ice = small[:, : small.shape[1] - stripe // 3 - 40]
    assert ice.std() == pytest.approx(1.0, abs=0.04)
    assert abs(ice.mean()) < 0.02


def test_training_crops_are_the_micrographs_own_pixels():
    """Patches are cut at whole pixels (no interpolation smooths their noise) and the
    augmentation's quarter turns, mirrors and shifts move the box centre with them."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(60, 80)).astype(np.float32)
    patches, offsets = cut_exact_patches(image, np.array([[30.4, 20.6], [2.0, 3.0]]), 16)
    assert np.array_equal(patches[0], image[21 - 8 : 21 + 8, 30 - 8 : 30 + 8])
    assert np.allclose(offsets, [[0.4, -0.4], [0.0, 0.0]], atol=1e-6)
    assert patches[1].std() == pytest.approx(image.std(), rel=0.3)  # mirrored, not zeros
    spots = torch.zeros(64, 40, 40)
    centres = torch.tensor([[23.0, 17.0]]).repeat(64, 1)
    spots[:, 17, 23] = 1.0  # a marked pixel at (x, y) = (23, 17)
    crops, moved = augment(spots, centres, 24, 4, torch.Generator().manual_seed(0))
    for crop, (x, y) in zip(crops[:, 0], moved):
        j, i = np.unravel_index(int(crop.argmax()), crop.shape)
        assert (i, j) == (int(x), int(y)) and crop.sum() == 1.0


def test_a_batch_drawn_from_the_precomputed_views_is_each_patch_augmented():
    """Training batches gather crops from all eight views made once (DihedralCrops):
    patches drawn in any order, some twice, come out as augment gives them, a marked
    pixel where the returned point says."""
    from tomoscribe.spa.network import DihedralCrops

    spots = torch.zeros(5, 40, 40)
    centres = torch.tensor([[23.0, 17.0], [10.0, 30.0], [20.0, 20.0], [31.0, 8.0], [5.0, 5.0]])
    for patch, (x, y) in zip(spots, centres.long()):
        patch[y, x] = 1.0
    drawn = torch.tensor([3, 0, 3, 1, 2, 0, 0, 1])
    crops, moved = DihedralCrops(spots, centres).draw(
        drawn, 28, 4, torch.Generator().manual_seed(2)
    )
    alone, where = augment(spots[drawn], centres[drawn], 28, 4, torch.Generator().manual_seed(2))
    assert torch.equal(crops, alone) and torch.equal(moved, where)
    for crop, (x, y) in zip(crops[:, 0], moved):
        if 0 <= x < 28 and 0 <= y < 28:
            assert crop[int(y), int(x)] == 1.0 and crop.sum() == 1.0


@pytest.mark.parametrize("size", [40, 41])
def test_turned_copies_move_the_box_centre_and_keep_the_noise(size):
    """Every stored patch is turned exactly by each of TURNS_DEG before training: a
    smooth spot lands where the returned centre says (even and odd patch sizes), and
    white noise keeps its σ (bilinear turns lowered it by up to a factor 2)."""
    c = size // 2
    yy, xx = np.mgrid[:size, :size]
    spot = np.exp(-((xx - c - 7.3) ** 2 + (yy - c + 3.4) ** 2) / (2 * 2.0**2)).astype(np.float32)
    turned, moved = turned_copies(np.stack([spot, spot]), np.array([[c + 7.3, c - 3.4]] * 2))
    assert turned.shape == (2 * len(TURNS_DEG), size, size) and len(TURNS_DEG) == 8
    for k, (image, (x, y)) in enumerate(zip(turned, moved)):
        a = np.deg2rad(TURNS_DEG[k // 2])
        assert x - c == pytest.approx(7.3 * np.cos(a) + 3.4 * np.sin(a), abs=1e-4)
        assert y - c == pytest.approx(7.3 * np.sin(a) - 3.4 * np.cos(a), abs=1e-4)
        weight = np.clip(image, 0, None) ** 2
        assert (weight * xx).sum() / weight.sum() == pytest.approx(x, abs=0.05)
        assert (weight * yy).sum() / weight.sum() == pytest.approx(y, abs=0.05)
    noise = np.random.default_rng(2).normal(size=(32, size, size)).astype(np.float32)
    turned, _ = turned_copies(noise, np.full((32, 2), float(c)), chunk=5)
    inner = turned[:, 10:30, 10:30].reshape(len(TURNS_DEG), -1)
    assert inner.std(axis=1) == pytest.approx(noise[:, 10:30, 10:30].std(), rel=0.02)
    assert turned.std() == pytest.approx(noise.std(), rel=0.01)


def test_fewer_than_three_boxes_refused(picking_data):
    truths, _, _ = picking_data
    name = next(iter(truths))
    few = pd.DataFrame({"micrograph": [name] * 2, "x": [100.0, 200], "y": [100.0, 200]})
    enough = pd.DataFrame(
        {"micrograph": [name] * 3, "x": [100.0, 200, 300], "y": [100.0, 200, 300]}
    )
    with pytest.raises(AnnotationError, match="bad set has 2"):
        build_trainset(
            {name: truths[name]["image"]},
            4.0,
            {"good": enough, "background": enough, "bad": few},
            54,
        )


@pytest.fixture
def tiny(tmp_path):
    """Three small micrographs (one at another pixel size) and box files as users have."""
    rng = np.random.default_rng(0)
    for name, size in (("m1", 2.0), ("m2", 2.0), ("m3", 3.0)):
        write_volume(
            tmp_path / f"{name}.mrc",
            Volume(rng.normal(size=(1, 96, 96)).astype(np.float32), (size,) * 3),
        )
    table = pd.DataFrame(
        {"micrograph": ["m1"] * 2 + ["m2"] * 2, "x": [30.0, 60, 40, 50], "y": [30.0, 60, 50, 40]}
    )
    table.to_csv(tmp_path / "good.csv", index=False)
    table.assign(x=table["x"] + 15).to_csv(tmp_path / "bg.csv", index=False)  # a box is
    table.assign(y=table["y"] + 15).to_csv(tmp_path / "bad.csv", index=False)  # in one set
    table.iloc[:2].to_csv(tmp_path / "two.csv", index=False)
    table.assign(micrograph="elsewhere").to_csv(tmp_path / "unknown.csv", index=False)
    return tmp_path


def test_spa_ncc_on_a_micrograph_smaller_than_its_box_is_one_sentence(tiny, capsys):
    # the trial: a 40-pixel micrograph gave skimage's traceback, status 1
    ref = tiny / "ref.mrc"
    blob = np.zeros((16, 16, 16), np.float32)
    blob[5:11, 5:11, 5:11] = 1
    write_volume(ref, Volume(blob, (2.0,) * 3))
    before = {p.name: p.read_bytes() for p in entries(tiny)}
    out = tiny / "picks"
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), "--reference-map", str(ref), "--box", "120"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "smaller than the box" in err[0], err
    assert {p.name: p.read_bytes() for p in entries(tiny)} == before and not out.exists()


def test_spa_ncc_warns_of_a_box_narrower_than_the_reference_particle(tiny, capsys):
    """A trial's 32 px box on an 89 px particle picked at precision 0.09 without a word.
    A ball of diameter 24 Å in a 64 Å map, 2 Å pixels: 12 px across."""
    zz, yy, xx = np.indices((32, 32, 32)) - 16
    ball = (zz**2 + yy**2 + xx**2 <= 36).astype(np.float32)
    write_volume(tiny / "ball.mrc", Volume(ball, (2.0,) * 3))
    from tomoscribe.spa.workflow import particle_diameter_A

    assert 24.0 <= particle_diameter_A(ball, 2.0) <= 32.0  # 13 voxels; the blur widens it
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), "--reference-map", str(tiny / "ball.mrc")]
    assert main([*argv, "--box", "8", "-o", str(tiny / "narrow")]) == 0
    err = capsys.readouterr().err
    assert "a box of 8 px is narrower than the particle of ball.mrc" in err and "--box" in err
    assert main([*argv, "--box", "20", "-o", str(tiny / "wide")]) == 0
    assert "narrower" not in capsys.readouterr().err


def test_spa_ncc_with_too_few_reference_boxes_names_its_own_option(tiny, capsys):
    """The trial: "the good set has 2 box(es) ... (tomoscribe spa ncc has no --good
    option)", the picker's set named for the baseline's references."""
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), "--references", str(tiny / "two.csv")]
    assert main([*argv, "--box", "16", "-o", str(tiny / "picks")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference boxes are 2" in err[0] and "--good" not in err[0], err
    assert not (tiny / "picks").exists()


def test_a_reference_map_at_an_unset_1_angstrom_is_named(tiny, capsys):
    """The trial: a map whose header says 1 Å (unset) was projected 5.7x too small
    without a word, by spa ncc and by simulate micrographs --templates alike."""
    zz, yy, xx = np.indices((32, 32, 32)) - 16
    write_volume(tiny / "vs1.mrc", Volume((zz**2 + yy**2 + xx**2 <= 36).astype(np.float32), 1.0))
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), "--reference-map", str(tiny / "vs1.mrc")]
    assert main([*argv, "--box", "20", "-o", str(tiny / "picks")]) == 0
    assert "vs1.mrc records 1 Å voxels" in capsys.readouterr().err
    from tomoscribe.simulate.micrographs import load_templates

    with pytest.warns(UserWarning, match="records 1 Å voxels"):
        load_templates([str(tiny / "vs1.mrc")])


@pytest.mark.parametrize("case", ["2D", "non-cubic", "NaN voxel"])
def test_spa_ncc_refuses_a_reference_map_that_is_not_a_cubic_finite_volume(tiny, capsys, case):
    """A new user's trial: a 2D image, a 24×24×12 map and a map with a NaN voxel were
    all taken as reference maps (one gave a garbage pick); now one sentence, exit 2."""
    blob = np.zeros((16, 16, 16), np.float32)
    blob[5:11, 5:11, 5:11] = 1
    if case == "2D":
        blob = blob[8]
    elif case == "non-cubic":
        blob = blob[:8]
    else:
        blob[3, 3, 3] = np.nan
    ref = tiny / "odd_ref.mrc"
    with mrcfile.new(ref) as mrc:  # (a 2D image is not a Volume)
        mrc.set_data(blob)
        mrc.voxel_size = 2.0
    before = {p.name: p.read_bytes() for p in entries(tiny)}
    out = tiny / "picks"
    argv = ["spa", "ncc", str(tiny / "m1.mrc"), "--reference-map", str(ref), "--box", "20"]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = "NaN or infinite" if case == "NaN voxel" else "not a cubic 3D map"
    assert len(err) == 1 and said in err[0], err
    assert {p.name: p.read_bytes() for p in entries(tiny)} == before and not out.exists()


@pytest.mark.parametrize(
    "case",
    [
        "pixel sizes",
        "unknown micrograph",
        "two boxes",
        "box larger",
        "mixed stack",
        "one file in two sets",
        "mixed .box sizes",
        "empty .box",
        "micrograph twice",
        "two files one name",
    ],
)
def test_spa_bad_input_exit_2_nothing_written(tiny, case, capsys, tmp_path_factory, monkeypatch):
    out = tiny / "set.tss"
    mics = [str(tiny / "m1.mrc"), str(tiny / "m2.mrc")]
    sets = {"good": "good.csv", "background": "bg.csv", "bad": "bad.csv"}
    box = "16"
    if case == "pixel sizes":
        mics.append(str(tiny / "m3.mrc"))
        sets["good"] = "good.csv"
        pd.read_csv(tiny / "good.csv").assign(micrograph="m3").to_csv(tiny / "bad.csv", index=False)
    elif case == "unknown micrograph":
        sets["bad"] = "unknown.csv"
    elif case == "two boxes":
        sets["bad"] = "two.csv"
    elif case == "box larger":
        box = "200"
    elif case == "mixed stack":
        write_volume(tiny / "m1.mrc", Volume(np.zeros((2, 96, 96), np.float32), (2.0,) * 3))
    elif case == "one file in two sets":
        sets["bad"] = "good.csv"
    elif case == "micrograph twice":  # e.g. a glob and a name that overlap
        monkeypatch.chdir(tiny)
        mics.append("m1.mrc")
    elif case == "two files one name":  # boxes and picks name a micrograph by its file
        other = tmp_path_factory.mktemp("elsewhere")
        shutil.copy(tiny / "m2.mrc", other / "m1.mrc")
        mics.append(str(other / "m1.mrc"))
    elif case in ("mixed .box sizes", "empty .box"):
        (tiny / "m1.box").write_text("10\t10\t16\t16\n30\t30\t16\t16\n40\t12\t16\t16\n")
        sizes = "24" if case == "mixed .box sizes" else ""
        text = f"50\t50\t{sizes}\t{sizes}\n20\t60\t{sizes}\t{sizes}\n" if sizes else "# none\n"
        (tiny / "m2.box").write_text(text)
        sets = {"good": "m1.box", "background": "m2.box", "bad": "m1.box"}
        sets["bad"] = "bad.csv"
        box = None
    before = {p.name: p.read_bytes() for p in entries(tiny)}
    argv = ["spa", "boxes", *mics, *(["--box", box] if box else []), "-o", str(out)]
    for flag, name in sets.items():
        argv += [f"--{flag}", str(tiny / name)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert "Traceback" not in err[0]
    said = {
        "one file in two sets": "given twice",
        "mixed .box sizes": "boxes of 16 to 24 pixels",
        "empty .box": "holds no boxes",
        "micrograph twice": f"m1.mrc is the same file as {tiny / 'm1.mrc'}",
        "two files one name": "two micrographs are named m1 (boxes and picks name a",
    }
    assert said.get(case, "") in err[0], err
    assert {p.name: p.read_bytes() for p in entries(tiny)} == before


def test_spa_command_line_writes_relion_star(tiny, capsys):
    mics = [str(tiny / "m1.mrc"), str(tiny / "m2.mrc")]
    assert (
        main(
            [
                "spa",
                "boxes",
                *mics,
                "--good",
                str(tiny / "good.csv"),
                "--background",
                str(tiny / "bg.csv"),
                "--bad",
                str(tiny / "bad.csv"),
                "--box",
                "16",
                "-o",
                str(tiny / "set.tss"),
            ]
        )
        == 0
    )
    assert (
        main(["spa", "train", str(tiny / "set.tss"), "-o", str(tiny / "p.tsp"), "--steps", "2"])
        == 0
    )
    assert (
        main(
            [
                "spa",
                "pick",
                str(tiny / "p.tsp"),
                *mics,
                "-o",
                str(tiny / "picks"),
                "--threshold",
                "0",
            ]
        )
        == 0
    )
    # the picker keeps its good boxes' density range, and the picks' record says which
    # range they were checked against; --any-density checks none
    kept_range = load_picker(tiny / "p.tsp")[1]["density_range"]
    any_density = ["spa", "pick", str(tiny / "p.tsp"), *mics, "--threshold", "0"]
    assert main([*any_density, "--any-density", "-o", str(tiny / "any")]) == 0
    assert "earlier" not in capsys.readouterr().out  # new folders: nothing replaced
    checked = read_provenance(tiny / "picks" / "picks.star")["parameters"]["density_range"]
    unchecked = read_provenance(tiny / "any" / "picks.star")["parameters"]["density_range"]
    assert checked == kept_range and kept_range[0] < kept_range[1] and unchecked is None
    bad_distance = ["spa", "pick", str(tiny / "p.tsp"), *mics, "--min-distance", "-5"]
    assert main([*bad_distance, "-o", str(tiny / "never")]) == 2
    assert "min-distance" in capsys.readouterr().err and not (tiny / "never").exists()
    star = starfile.read(tiny / "picks" / "picks.star")
    assert {
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAutopickFigureOfMerit",
    } <= set(star.columns)
    # the micrographs' paths as given (RELION keeps them relative to its project folder)
    assert set(star["rlnMicrographName"]) <= set(mics), (star["rlnMicrographName"], mics)
    assert (tiny / "picks" / "picks.csv").is_file()
    # a second run into the same folder says it replaces the first, which goes whole
    assert {p.name for p in (tiny / "picks").glob("*.box")} == {"m1.box", "m2.box"}
    again = ["spa", "pick", str(tiny / "p.tsp"), mics[0], "--threshold", "0"]
    assert main([*again, "-o", str(tiny / "picks")]) == 0
    assert "the earlier run's picks there are replaced" in capsys.readouterr().out
    assert {p.name for p in (tiny / "picks").glob("*.box")} == {"m1.box"}
    assert (
        main(
            [
                "spa",
                "ncc",
                *mics,
                "--references",
                str(tiny / "good.csv"),
                "--box",
                "16",
                "-o",
                str(tiny / "ncc"),
            ]
        )
        == 0
    )
    assert (tiny / "ncc" / "picks.star").is_file()
    # each picks file's record names the command that wrote it
    assert read_provenance(tiny / "ncc" / "picks.star")["step"] == "spa ncc"
    assert read_provenance(tiny / "picks" / "picks.star")["step"] == "spa pick"
    # a picker trained at 2 Å refuses 3 Å micrographs
    assert (
        main(["spa", "pick", str(tiny / "p.tsp"), str(tiny / "m3.mrc"), "-o", str(tiny / "p3")])
        == 2
    )
    assert not (tiny / "p3").exists()
    # a picker saved before the micrographs' normalisation changed (version 1) is refused
    pair, record = load_picker(tiny / "p.tsp")
    save_weights(tiny / "old.tsp", pair, "tomoscribe_spa_picker", {**record, "version": 1})
    code = main(["spa", "pick", str(tiny / "old.tsp"), mics[0], "-o", str(tiny / "p_old")])
    assert code == 2 and "train it again" in capsys.readouterr().err
    assert not (tiny / "p_old").exists()
    # one trained on micrographs scaled by every pixel's spread (no `micrograph_scale`:
    # before 2026-12-06) picks, and says to train it again
    unscaled = {k: v for k, v in record.items() if k != "micrograph_scale"}
    assert record["micrograph_scale"] == "ice"
    save_weights(tiny / "unscaled.tsp", pair, "tomoscribe_spa_picker", unscaled)
    code = main(["spa", "pick", str(tiny / "unscaled.tsp"), mics[0], "-o", str(tiny / "p_us")])
    err = capsys.readouterr().err
    assert code == 0 and "scaled by the spread of all their pixels" in err
    assert main(["spa", "pick", str(tiny / "p.tsp"), mics[0], "-o", str(tiny / "p_new")]) == 0
    assert "scaled by the spread" not in capsys.readouterr().err  # a picker of now: no word
    # and a training set of that time (version 2) is refused, nothing written
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(tiny / "set.tss"), framework="numpy") as handle:
        metadata = handle.metadata()
    old_set = json.loads(metadata["tomoscribe_spa_trainset"])
    assert old_set["version"] == 3
    metadata["tomoscribe_spa_trainset"] = json.dumps({**old_set, "version": 2})
    save_file(load_file(str(tiny / "set.tss")), str(tiny / "old.tss"), metadata=metadata)
    code = main(["spa", "train", str(tiny / "old.tss"), "-o", str(tiny / "old_set.tsp")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "normalised the old way" in err[0]
    assert not (tiny / "old_set.tsp").exists()
    # one trained before the good boxes' levels were kept picks, and says it checks nothing
    save_weights(
        tiny / "levelless.tsp", pair, "tomoscribe_spa_picker", {**record, "density_range": None}
    )
    code = main(["spa", "pick", str(tiny / "levelless.tsp"), mics[0], "-o", str(tiny / "p_nl")])
    assert code == 0 and "without the good boxes' density levels" in capsys.readouterr().err
    # a damaged density range (hand-edited record) is one sentence, nothing written
    damaged = {**record, "density_range": [3.0, "x"]}
    save_weights(tiny / "damaged.tsp", pair, "tomoscribe_spa_picker", damaged)
    code = main(["spa", "pick", str(tiny / "damaged.tsp"), mics[0], "-o", str(tiny / "p_dm")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "density_range" in err[0]
    assert not (tiny / "p_dm").exists()


def test_simulate_micrographs_command(tmp_path, capsys):
    out = tmp_path / "sim"
    assert (
        main(
            [
                "simulate",
                "micrographs",
                "-o",
                str(out),
                "--n",
                "2",
                "--size",
                "320,256",
                "--isolated",
                "48",
                "--aggregates",
                "24",
                "--contamination",
                "24",
                "--annotate",
                "2",
                "--boxes-per-set",
                "3",
                "--defocus",
                "1,2",
            ]
        )
        == 0
    )
    truth = starfile.read(out / "truth.star")
    assert {
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnAngleRot",
        "tsClass",
    } <= set(truth.columns)
    # named as micrographs_ctf.star names them (from the working folder, as RELION reads
    # names; absolute here, the test's folder lying outside it)
    named = set(starfile.read(out / "micrographs_ctf.star", always_dict=True)["micrographs"]
                ["rlnMicrographName"])  # fmt: skip
    assert set(truth["rlnMicrographName"]) == named
    assert {os.path.basename(n) for n in named} == {"mic_000.mrc", "mic_001.mrc"}
    assert sorted(truth.groupby("rlnMicrographName")["tsDefocusMicrometre"].first()) == [1, 2]
    record = json.loads((out / "truth.json").read_text())  # no single defocus that was not used
    assert "defocus_um" not in record["params"] and "carbon" not in record["params"]
    assert sorted(m["defocus_um"] for m in record["micrographs"].values()) == [1, 2]
    from tomoscribe.io import read_volume

    assert read_volume(out / "micrographs" / "mic_001.mrc").shape == (1, 256, 320)
    with mrcfile.open(out / "micrographs" / "mic_001.mrc") as mrc:  # an image, as RELION's
        assert mrc.data.shape == (256, 320) and mrc.header.ispg == 0
    assert read_volume(out / "masks" / "mic_000.mrc").voxel_size_A == (4.0,) * 3
    for kind in ("good", "background", "bad"):
        assert len(read_boxes(out / f"boxes_{kind}.star")) == 3
    assert (
        main(["simulate", "micrographs", "-o", str(tmp_path / "no"), "--n", "2", "--annotate", "3"])
        == 2
    )
    assert not (tmp_path / "no").exists()
    # picks name their micrograph's path; picks made on another folder's mic_000 are
    # not scored against this truth (the trial scored them: precision 0.76, no word)
    other = tmp_path / "other"
    other.mkdir()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "mic_000.mrc").write_bytes((out / "micrographs" / "mic_000.mrc").read_bytes())
    (other / "mic_000.mrc").write_bytes((out / "micrographs" / "mic_001.mrc").read_bytes())
    for where, status in ((out / "micrographs", 0), (copy, 0), (other, 2)):
        picks = pd.DataFrame({"micrograph": ["mic_000"], "x": [100.0], "y": [90.0]})
        write_star(tmp_path / "picks.star", picks, {"mic_000": str(where / "mic_000.mrc")})
        capsys.readouterr()
        assert main(["spa", "score", str(tmp_path / "picks.star"), "--truth", str(out)]) == status
        assert ("is not" in capsys.readouterr().err) == (status == 2)
    # picks of a micrograph the simulation has not: said so, not "give that micrograph
    # or fix the box file" (spa score takes neither; a trial was told to)
    picks = pd.DataFrame({"micrograph": ["wide"], "x": [100.0], "y": [90.0]})
    write_star(tmp_path / "wide.star", picks, {"wide": str(other / "wide.mrc")})
    assert main(["spa", "score", str(tmp_path / "wide.star"), "--truth", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"not among the micrographs of {out.name}" in err and "box file" not in err
    # a micrograph picked without any pick still counts its particles as missed, when
    # the picks' provenance (as `spa pick` writes it) lists it
    from tomoscribe.outputs import write_provenance
    from tomoscribe.spa.scoring import score_against_folder

    truth = starfile.read(out / "truth.star")
    first = truth[
        (truth["rlnMicrographName"].map(os.path.basename) == "mic_000.mrc")
        & (truth["tsClass"] == "good")
    ]
    picks = pd.DataFrame(
        {"micrograph": "mic_000", "x": first["rlnCoordinateX"], "y": first["rlnCoordinateY"]}
    )
    write_star(tmp_path / "p.star", picks, {"mic_000": str(out / "micrographs" / "mic_000.mrc")})
    alone = score_against_folder(tmp_path / "p.star", out)
    assert alone["recall"] == 1.0 and alone["micrographs_from"] == "picks"
    write_provenance(
        tmp_path / "p.star", "spa pick", {}, sorted((out / "micrographs").glob("*.mrc"))
    )
    both = score_against_folder(tmp_path / "p.star", out)
    assert both["micrographs"] == 2 and both["micrographs_from"] == "provenance"
    n_second = (
        (truth["rlnMicrographName"].map(os.path.basename) == "mic_001.mrc")
        & (truth["tsClass"] == "good")
    ).sum()
    assert both["recall"] == pytest.approx(len(first) / (len(first) + n_second))
    # a trial: a relative micrograph name that does not resolve from here skipped the
    # check (seed-1 picks scored against seed-2 truth); the record's absolute path is
    # used then; and picks in pixels of another size were scored (precision 0.011)
    from tomoscribe.errors import InputFileError

    write_star(tmp_path / "r.star", picks, {"mic_000": "elsewhere/mic_000.mrc"})
    write_provenance(tmp_path / "r.star", "spa pick", {}, [other / "mic_000.mrc"])
    with pytest.raises(InputFileError, match="is not"):
        score_against_folder(tmp_path / "r.star", out)
    starfile.write(
        starfile.read(tmp_path / "p.star").assign(rlnMicrographPixelSize=8.0), tmp_path / "b.star"
    )
    with pytest.raises(InputFileError, match="in 8 Å pixels .* but the micrographs have 4 Å"):
        score_against_folder(tmp_path / "b.star", out)
    with pytest.raises(InputFileError, match="holds no truth.json, so it is not a folder"):
        score_against_folder(tmp_path / "p.star", tmp_path / "nothere")  # was errno text
    # a loose .box file (no path, no record) of other micrographs cannot be checked: a
    # trial's scored 0.000 unsaid; when almost no pick lies on a particle, it is said
    away = picks.assign(x=(picks["x"] + 37) % 300, y=(picks["y"] + 41) % 250)
    away = pd.concat([away] * max(1, -(-10 // len(away))), ignore_index=True)
    corners = np.column_stack([away["x"] - 8, away["y"] - 8, np.full((len(away), 2), 16)])
    np.savetxt(tmp_path / "mic_000.box", corners, fmt="%d", delimiter="\t")
    with pytest.warns(UserWarning, match="were they picked on these micrographs"):
        assert score_against_folder(tmp_path / "mic_000.box", out)["precision"] < 0.05
    # the same poor picks naming their micrograph are checked against it: just poor
    write_star(tmp_path / "poor.star", away, {"mic_000": str(out / "micrographs" / "mic_000.mrc")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert score_against_folder(tmp_path / "poor.star", out)["precision"] < 0.05


class _SpotPair:
    """A stand-in for the picker's networks: both probabilities are Gaussian spots at
    given shrunk-pixel places (on the networks' ¼ grid, node j at pixel 4j + 1.5)."""

    def __init__(self, places_xy, peak=0.95):
        self.places, self.peak = np.asarray(places_xy, float), peak

    def probabilities(self, images):
        h, w = images.shape[-2] // 4, images.shape[-1] // 4
        jj, ii = np.mgrid[:h, :w] * 4 + 1.5
        spots = np.zeros((h, w))
        for x, y in self.places:
            spots = np.maximum(spots, np.exp(-((ii - x) ** 2 + (jj - y) ** 2) / (2 * 3.0**2)))
        image = torch.as_tensor(self.peak * spots, dtype=torch.float32)[None, None]
        return image, image.clone()


@pytest.mark.parametrize("size, shape", [("160", (1, 160, 160)), ("1,2,3", None), ("4k", None)])
def test_simulate_micrographs_takes_one_number_as_a_square(tmp_path, capsys, size, shape):
    """A new user typed `--size 768` and was told "--size is x,y"."""
    out = tmp_path / "sim"
    argv = ["simulate", "micrographs", "-o", str(out), "--n", "1", "--size", size]
    code = main(
        [*argv, "--isolated", "40", "--aggregates", "0", "--contamination", "0", "--annotate", "0"]
    )
    if shape is None:
        assert code == 2 and not out.exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "one number for a square" in err[0]
    else:
        assert code == 0
        assert read_volume(out / "micrographs" / "mic_000.mrc").shape == shape


def test_too_few_places_to_annotate_names_the_flags_that_fix_it(tmp_path, capsys):
    """A new user was told to change `annotate` and `boxes_per_set`, names no flag has."""
    out = tmp_path / "sim"
    argv = ["simulate", "micrographs", "-o", str(out), "--n", "1", "--size", "160"]
    assert main([*argv, "--annotate", "1", "--boxes-per-set", "15"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # after "simulating 1 micrograph"
    assert err[-1].startswith("error:") and "places for 15 boxes;" in err[-1], err
    assert "(--annotate)" in err[-1] and "(--boxes-per-set)" in err[-1] and "`" not in err[-1]
    assert not out.exists()


def test_self_training_adds_confident_picks_away_from_the_drawn_boxes(picking_data, tmp_path):
    """The first round's confident picks become good patches cut where they are; picks
    within a box of a drawn box (any set) are not added; the set keeps its micrographs
    through a save and load; the added patches are never held out for the threshold."""
    from tomoscribe.spa.selftraining import confident_patches
    from tomoscribe.spa.trainset import load_trainset, save_trainset

    _, _, trainset = picking_data
    save_trainset(tmp_path / "set.tss", trainset)
    loaded = load_trainset(tmp_path / "set.tss")
    names = trainset["record"]["micrographs"]
    assert sorted(loaded["micrographs_small"]) == sorted(names)
    for name in names:
        np.testing.assert_array_equal(
            loaded["micrographs_small"][name], trainset["micrographs_small"][name]
        )
    np.testing.assert_array_equal(loaded["positions"]["bad"], trainset["positions"]["bad"])
    record, first = loaded["record"], names[0]
    box = record["geometry"]["box"]
    drawn = np.concatenate(list(loaded["positions"].values()))
    drawn_xy = drawn[drawn[:, 0] == 0, 1:]
    good = loaded["positions"]["good"]
    assert (good[:, 0] == 0).any()
    grid = np.stack(np.meshgrid(np.arange(20.0, 240, 6), np.arange(20.0, 240, 6)), -1)
    grid = grid.reshape(-1, 2)  # shrunk pixels of the 256² shrunk micrograph
    gaps = np.hypot(*(grid[:, None] - drawn_xy[None]).transpose(2, 0, 1)).min(1)
    free = []
    for place in grid[gaps > 1.3 * box]:  # places 1.3 boxes from every box, 2 apart
        if all(np.hypot(*(place - other)) > 2 * box for other in free):
            free.append(place)
    free = np.array(free[:3])
    assert len(free) >= 2
    near = good[good[:, 0] == 0, 1:][0] + [box / 3, 0.0]  # a third of a box from a good box
    pair = _SpotPair(np.vstack([free, near]))
    only_first = {**loaded, "micrographs_small": {first: loaded["micrographs_small"][first]}}
    patches, offsets, counts = confident_patches(pair, only_first, threshold=0.5)
    assert counts[first] == len(free) == len(patches)
    expected, _ = cut_exact_patches(
        loaded["micrographs_small"][first], free, record["geometry"]["patch"]
    )
    for patch in patches:  # every added patch is one of the free places' own pixels
        assert min(np.abs(patch - e).max() for e in expected) < 1e-6
    assert np.abs(offsets).max() <= 2.5  # refined picks lie near the spots' nodes
    # a picker that finds nothing confident adds nothing
    none, _, counts = confident_patches(_SpotPair(free, peak=0.6), only_first, threshold=0.5)
    assert len(none) == 0 and counts[first] == 0
    # extra good patches train, but the threshold is chosen on the drawn boxes alone
    _, trained = train_pair(loaded, steps=2, seed=0, extra_good=(patches, offsets))
    assert trained["calibration"]["held_out_boxes"] == {"good": 3, "background": 3, "bad": 3}


def test_self_training_adds_no_confident_pick_on_the_carbon(picking_data, tmp_path):
    """Spots of a stand-in pair on the annotated micrograph with carbon, away from every
    drawn box: those in the ice become good patches, those on the carbon do not (the
    good boxes' density range, kept with the set through a save and load); a set saved
    without the levels adds both."""
    from scipy.ndimage import distance_transform_edt

    from tomoscribe.spa.selftraining import confident_patches
    from tomoscribe.spa.trainset import load_trainset, save_trainset

    truths, _, trainset = picking_data
    save_trainset(tmp_path / "set.tss", trainset)
    loaded = load_trainset(tmp_path / "set.tss")
    names = loaded["record"]["micrographs"]
    name = next(n for n in names if truths[n]["carbon"].any())
    np.testing.assert_allclose(
        loaded["levels_small"][name], trainset["levels_small"][name], atol=0.02, rtol=1e-3
    )
    record, shrink = loaded["record"], loaded["record"]["shrink"]
    box = record["geometry"]["box"]
    drawn = np.concatenate(list(loaded["positions"].values()))
    drawn_xy = drawn[drawn[:, 0] == names.index(name), 1:]
    depth = distance_transform_edt(truths[name]["carbon"])[::shrink, ::shrink]
    dense = truths[name]["carbon"] | (truths[name]["contamination"] > 0)
    ice = distance_transform_edt(~dense)[::shrink, ::shrink]
    grid = np.stack(np.meshgrid(np.arange(20.0, 172, 5), np.arange(20.0, 172, 5)), -1)
    grid = grid.reshape(-1, 2)
    gaps = np.hypot(*(grid[:, None] - drawn_xy[None]).transpose(2, 0, 1)).min(1)
    places = {"carbon": [], "ice": []}
    for kind, where in (("carbon", depth > 20), ("ice", ice > 60)):  # full pixels
        for x, y in grid[gaps > 1.3 * box]:
            others = places["carbon"] + places["ice"]
            if where[int(y), int(x)] and all(np.hypot(x - a, y - b) > 2 * box for a, b in others):
                places[kind].append((x, y))
    assert len(places["carbon"]) >= 1 and len(places["ice"]) >= 1, places
    pair = _SpotPair(np.array(places["carbon"] + places["ice"]))
    only = {**loaded, "micrographs_small": {name: loaded["micrographs_small"][name]}}
    _, _, counts = confident_patches(pair, only, threshold=0.5)
    assert counts[name] == len(places["ice"])
    without = {**only, "levels_small": {}}
    _, _, counts = confident_patches(pair, without, threshold=0.5)
    assert counts[name] == len(places["ice"]) + len(places["carbon"])


def test_train_picker_self_trains_network_1_only_and_says_when_it_cannot(picking_data):
    """Two rounds record what they added; network 2 trains on the drawn good boxes alone
    (its good set is the drawn one, network 1's holds the added patches too); a set
    without its micrographs (written before they were kept) trains once and says why."""
    from tomoscribe.spa.network import _turned_sets, _with_extra_good
    from tomoscribe.spa.selftraining import train_picker

    _, _, trainset = picking_data
    train, _ = split_boxes(trainset, 0.2, 0)
    extra = (np.ones((5, *train["good"].shape[1:]), np.float32), np.zeros((5, 2), np.float32))
    sets, centres = _turned_sets(_with_extra_good(train, extra), len(train["good"]))
    turns = len(TURNS_DEG)
    assert len(sets["good"]) == turns * (len(train["good"]) + 5)
    assert len(sets["drawn good"]) == turns * len(train["good"])
    flat = {k: (sets[k] - 1).abs().amax(dim=(1, 2)) < 1e-3 for k in ("good", "drawn good")}
    assert not flat["drawn good"].any()  # no added (constant) patch in network 2's set
    assert int(flat["good"].sum()) == turns * 5
    assert len(centres["drawn good"]) == len(sets["drawn good"])
    _, record = train_picker(trainset, steps=3, seed=0)
    added = record["self_training"]
    assert added["first_round_steps"] == 1 and set(added["per_micrograph"]) == set(
        trainset["record"]["micrographs"]
    )
    assert added["added"] == sum(added["per_micrograph"].values()) <= 400
    old = {k: v for k, v in trainset.items() if k not in ("micrographs_small", "positions")}
    _, record = train_picker(old, steps=2, seed=0)
    assert record["self_training"]["added"] == 0
    assert "spa boxes" in record["self_training"]["why"]
    _, record = train_picker(trainset, steps=2, seed=0, self_training=False)
    assert record["self_training"]["why"] == "turned off"


def test_spa_ncc_invert_matches_a_maps_projections_to_white_protein(tmp_path, capsys):
    """A map's projections are taken to show protein dark, as raw micrographs do: on a
    micrograph inverted already (protein white), `spa ncc --reference-map` found almost
    nothing, said only "lower --threshold", and had no --invert (spa pick had)."""
    rng = np.random.default_rng(1)
    yy, xx = np.indices((256, 256))
    centres = [(40 + 58 * i, 40 + 58 * j) for i in range(4) for j in range(4)]
    image = rng.normal(0.0, 0.2, (256, 256))
    for y, x in centres:
        image -= np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 5.0**2))  # dark particles
    write_volume(tmp_path / "raw.mrc", Volume(image[None].astype(np.float32), (2.0,) * 3))
    write_volume(tmp_path / "white.mrc", Volume(-image[None].astype(np.float32), (2.0,) * 3))
    zz, y3, x3 = np.indices((32, 32, 32)) - 16
    ball = np.exp(-(zz**2 + y3**2 + x3**2) / (2 * 5.0**2)).astype(np.float32)
    write_volume(tmp_path / "ball.mrc", Volume(ball, (2.0,) * 3))
    found = {}
    for name, flags in (("raw", []), ("white", []), ("white", ["--invert"])):
        out = tmp_path / f"{name}{len(flags)}"
        argv = ["spa", "ncc", str(tmp_path / f"{name}.mrc"), "--reference-map"]
        argv += [str(tmp_path / "ball.mrc"), "--box", "32", "-o", str(out), *flags]
        assert main([*argv, "-q"]) == 0
        found[(name, len(flags))] = (len(pd.read_csv(out / "picks.csv")), capsys.readouterr().err)
    assert found[("raw", 0)][0] >= 14, found
    assert found[("white", 0)][0] < 5 and "pick them with --invert" in found[("white", 0)][1], found
    assert found[("white", 1)][0] == found[("raw", 0)][0]
