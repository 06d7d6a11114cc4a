"""What `tomoscribe average` writes, checked against known truth and RELION's own files:
sub-voxel refined positions, refined.star as RELION's Refine3D writes its data file
(blocks and columns of the input kept, origins in Å, the given half sets), and honest
resolution and reliability statements."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from tomoscribe.cli.app import main
from tomoscribe.core.rotations import from_euler
from tomoscribe.io import read_volume, write_volume
from tomoscribe.io.particles import read_particles
from tomoscribe.structure.average import reliability_warnings
from tomoscribe.structure.fsc import describe_resolution, fsc_curve, resolution_at
from tomoscribe.volume import Volume

VOXEL = 10.0
BOX = 24
#: an asymmetric test body: Gaussian blobs (x, y, z voxels from its centre, sigma, weight)
BLOBS = [
    ((0.0, 0.0, 0.0), 2.2, 1.0),
    ((5.0, 0.0, 0.0), 1.6, 0.8),
    ((0.0, 3.5, 0.0), 1.6, 0.7),
    ((-2.0, -2.0, 4.0), 1.5, 0.9),
    ((1.5, -4.0, -3.0), 1.4, 0.6),
]


def _paint(shape_zyx, centre_xyz, rotation: Rotation) -> np.ndarray:
    """The body turned by ``rotation`` (reference → particle) with its centre at
    ``centre_xyz`` (voxels, sub-voxel exact: drawn analytically)."""
    z, y, x = np.meshgrid(*(np.arange(s, dtype=float) for s in shape_zyx), indexing="ij")
    out = np.zeros(shape_zyx)
    for offset, sigma, weight in BLOBS:
        cx, cy, cz = np.asarray(centre_xyz) + rotation.apply(offset)
        out += weight * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 32 × 52 × 128 tomogram (10 Å voxels) with 12 copies of the body at sub-voxel
    positions and known angles; picks off by up to ±1.5 voxels per axis with the true
    angles; the reference map; their subtomograms (extract, box 24)."""
    tmp = tmp_path_factory.mktemp("avg_truth")
    rng = np.random.default_rng(7)
    shape = (32, 52, 128)
    truth = np.array(
        [(14 + 20 * i, 14 + 24 * j, 16.0) for j in range(2) for i in range(6)]
    ) + rng.uniform(-0.5, 0.5, (12, 3))
    angles = np.column_stack(
        [
            rng.uniform(-180, 180, 12),
            np.degrees(np.arccos(rng.uniform(-1, 1, 12))),
            rng.uniform(-180, 180, 12),
        ]
    )
    tomo = sum(_paint(shape, c, r) for c, r in zip(truth, from_euler(angles)))
    tomo = tomo + rng.normal(0, 0.02, shape)
    write_volume(tmp / "tomo.mrc", Volume(tomo.astype(np.float32), VOXEL))
    reference = _paint((BOX,) * 3, (BOX // 2,) * 3, Rotation.identity())
    write_volume(tmp / "ref.mrc", Volume(reference.astype(np.float32), VOXEL))
    picks = truth + rng.uniform(-1.5, 1.5, truth.shape)
    table = {f"rlnCoordinate{a}": picks[:, i] for i, a in enumerate("XYZ")}
    table |= {
        name: angles[:, i] for i, name in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    }
    starfile.write(
        {"particles": pd.DataFrame(table | {"rlnDetectorPixelSize": VOXEL})}, tmp / "picks.star"
    )
    args = ["extract", str(tmp / "tomo.mrc"), str(tmp / "picks.star"), "--box", str(BOX)]
    assert main([*args, "-o", str(tmp / "parts")]) == 0
    return tmp, truth, angles


def _average(tmp, star, out, *extra):
    args = ["average", str(star), "-o", str(out), "--reference", str(tmp / "ref.mrc")]
    args += ["--tilt-range", "-90,90", "--max-shift", "30", "-q", *extra]
    return main(args)


def test_refined_positions_are_sub_voxel_and_near_the_truth(scene):
    """Picks up to 1.5 voxels off, boxes cut on the nearest voxel: the refined position
    (box centre + interpolated shift) lies within a fraction of a voxel of the truth.
    Before, it was the unrounded pick plus a whole-voxel shift (errors up to ~1 voxel)."""
    tmp, truth, _ = scene
    out = tmp / "avg_pos"
    assert (
        _average(tmp, tmp / "parts" / "particles.star", out, "--use-priors", "--iterations", "1")
        == 0
    )
    refined = read_particles(out / "refined.star")
    error = np.linalg.norm(refined[["x", "y", "z"]].to_numpy() - truth, axis=1)
    picked = np.linalg.norm(
        read_particles(tmp / "picks.star")[["x", "y", "z"]].to_numpy() - truth, axis=1
    )
    assert np.median(picked) > 1.0  # the picks were well off
    assert np.median(error) < 0.1 and error.max() < 0.25, error
    # RELION 5's centred Å columns, moved by the same origins, give the same positions
    raw = starfile.read(out / "refined.star", always_dict=True)["particles"]
    origin = raw[[f"rlnOrigin{a}Angst" for a in "XYZ"]].to_numpy()
    centred = raw[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy() - origin
    assert np.allclose(centred / VOXEL + np.array([128, 52, 32]) / 2, truth, atol=0.25)
    # the reference is among the map's recorded inputs (a trial found only the STAR)
    record = json.loads((out / "average.mrc.json").read_text())
    assert str((tmp / "ref.mrc").resolve()) in [i["path"] for i in record["inputs"]]


def test_refining_a_refined_star_again_keeps_the_positions(scene):
    """Review: a second `average` on the first one's refined.star took the box centre
    from coordinate − origin, not the coordinate extract cut the box about: positions
    0.9–2.5 voxels off the truth (0.03–0.12 after the first round)."""
    tmp, truth, _ = scene
    first, second = tmp / "avg_round1", tmp / "avg_round2"
    star = tmp / "parts" / "particles.star"
    assert _average(tmp, star, first, "--use-priors", "--iterations", "1") == 0
    assert _average(tmp, first / "refined.star", second, "--use-priors", "--iterations", "1") == 0
    refined = read_particles(second / "refined.star")
    error = np.linalg.norm(refined[["x", "y", "z"]].to_numpy() - truth, axis=1)
    assert np.median(error) < 0.1 and error.max() < 0.25, error
    assert "box_x" not in starfile.read(second / "refined.star")  # internal, not written


def test_a_refined_star_converted_keeps_its_boxes_or_drops_the_link(scene, tmp_path, capsys):
    """Review: `convert refined.star -o conv.star` wrote the refined positions as
    coordinates beside the subtomograms cut about the picks, and a second average was
    0.9–2.5 voxels off; now the STAR keeps the cut coordinate and the move as origins,
    and a CSV, which cannot, drops the subtomograms' names and says so."""
    tmp, truth, _ = scene
    first = tmp / "avg_conv1"
    star = tmp / "parts" / "particles.star"
    assert _average(tmp, star, first, "--use-priors", "--iterations", "1") == 0
    converted = tmp_path / "conv.star"
    assert main(["convert", str(first / "refined.star"), "-o", str(converted)]) == 0
    moved = read_particles(converted)[["x", "y", "z"]].to_numpy()
    assert np.linalg.norm(moved - truth, axis=1).max() < 0.25  # the refined positions
    second = tmp_path / "avg_conv2"
    assert _average(tmp, converted, second, "--use-priors", "--iterations", "1") == 0
    refined = read_particles(second / "refined.star")
    error = np.linalg.norm(refined[["x", "y", "z"]].to_numpy() - truth, axis=1)
    assert np.median(error) < 0.1 and error.max() < 0.25, error
    capsys.readouterr()
    assert main(["convert", str(first / "refined.star"), "-o", str(tmp_path / "c.csv")]) == 0
    assert "subtomograms' names" in capsys.readouterr().err
    assert "image_name" not in pd.read_csv(tmp_path / "c.csv")


def _relion5_input(tmp, shared, half, premultiplied=0):
    """extract's particles.star made into what RELION 5 writes: a data_optics block
    (RELION's Refine3D row, for 5 Å tilt-series pixels binned 2×), coordinates in
    tilt-series pixels, the pixel sizes only in the optics group, and a given
    gold-standard split; the subtomograms are densities, so the row's
    rlnCtfDataAreCtfPremultiplied (1 in RELION's file) is ``premultiplied``."""
    refine = shared / "formats" / "relion5_project" / "Refine3D" / "job_refine"
    optics = starfile.read(refine / "run_it050_data.star")["optics"].iloc[:1].copy()
    assert int(optics["rlnCtfDataAreCtfPremultiplied"].iloc[0]) == 1  # RELION's default
    optics["rlnCtfDataAreCtfPremultiplied"] = premultiplied
    optics["rlnTomoTiltSeriesPixelSize"] = 5.0
    optics["rlnTomoSubtomogramBinning"] = 2.0
    optics["rlnImagePixelSize"] = VOXEL
    optics["rlnImageSize"] = BOX
    particles = starfile.read(tmp / "parts" / "particles.star", always_dict=True)["particles"]
    particles = particles.drop(
        columns=["rlnMagnification", "rlnDetectorPixelSize", "rlnOpticsGroup"]
    )
    for a in "XYZ":
        particles[f"rlnCoordinate{a}"] *= 2  # 5 Å pixels
    particles["rlnOpticsGroup"] = 1
    particles["rlnClassNumber"] = 1
    particles["rlnRandomSubset"] = half
    star = tmp / "parts" / "relion5.star"
    starfile.write({"optics": optics, "particles": particles}, star, overwrite=True)
    return star, optics, particles


def test_refined_star_is_the_input_with_relion_refine3d_columns(scene, shared_data):
    """A RELION 5 input keeps its data_optics block, its columns (centred Å coordinates
    included), its half sets and its pixel convention; refined.star adds what RELION's
    own Refine3D data file holds (angles, rlnOrigin*Angst, rlnRandomSubset). Before, the
    optics block and centred columns were dropped, RELION 3.0 pixel sizes written and new
    halves drawn (12 of 25 differed in the trial)."""
    tmp, truth, _ = scene
    half = np.array([1, 2, 2, 1, 1, 2, 1, 2, 2, 2, 1, 1])
    star, optics, particles = _relion5_input(tmp, shared_data, half)
    out = tmp / "avg_relion5"
    assert _average(tmp, star, out, "--use-priors", "--iterations", "1") == 0
    written = starfile.read(out / "refined.star", always_dict=True)
    relion = starfile.read(
        shared_data
        / "formats"
        / "relion5_project"
        / "Refine3D"
        / "job_refine"
        / "run_it050_data.star",
        always_dict=True,
    )
    assert list(written) == list(relion) == ["optics", "particles"]
    pd.testing.assert_frame_equal(
        written["optics"], optics.reset_index(drop=True), check_dtype=False
    )
    refined = written["particles"]
    assert set(particles.columns) <= set(refined.columns)
    ours = {"rlnLCCmax", "rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"}
    assert set(refined.columns) - set(particles.columns) <= ours
    relion_columns = set(relion["particles"].columns)
    assert {c for c in ours if c.startswith("rlnOrigin")} <= relion_columns
    assert {"rlnMagnification", "rlnDetectorPixelSize", "rlnImagePixelSize"}.isdisjoint(
        refined.columns
    )
    assert refined["rlnRandomSubset"].tolist() == half.tolist()
    for a in "XYZ":  # the coordinates as the input wrote them; the move is in the origins
        assert np.allclose(refined[f"rlnCoordinate{a}"], particles[f"rlnCoordinate{a}"])
        assert np.allclose(
            refined[f"rlnCenteredCoordinate{a}Angst"], particles[f"rlnCenteredCoordinate{a}Angst"]
        )
    back = read_particles(out / "refined.star")
    assert np.allclose(back["voxel_size_A"], 5.0)
    assert np.abs(back[["x", "y", "z"]].to_numpy() / 2 - truth).max() < 0.25


def test_average_keeps_no_score_it_did_not_compute(scene):
    """--iterations 0 averages at the file's angles and positions: no search, so no
    score column (rlnAutopickFigureOfMerit 0 was written for every particle) and the
    positions as read (the boxes' rounding residuals are applied in the average)."""
    tmp, _, _ = scene
    out = tmp / "avg_noscore"
    assert (
        _average(tmp, tmp / "parts" / "particles.star", out, "--use-priors", "--iterations", "0")
        == 0
    )
    refined = starfile.read(out / "refined.star", always_dict=True)["particles"]
    assert {"rlnLCCmax", "rlnAutopickFigureOfMerit"}.isdisjoint(refined.columns)
    assert np.allclose(refined[[f"rlnOrigin{a}Angst" for a in "XYZ"]], 0.0, atol=1e-6)


@pytest.mark.parametrize("half", [[1] * 12, [1, 2, 3] * 4])
def test_average_refuses_a_split_it_cannot_use(scene, shared_data, half, capsys):
    tmp, _, _ = scene
    star, _, _ = _relion5_input(tmp, shared_data, np.array(half))
    out = tmp / "avg_badhalf"
    assert _average(tmp, star, out, "--use-priors", "--iterations", "0") == 2
    err = capsys.readouterr().err
    assert "rlnRandomSubset" in err and err.count("\n") == 1 and not out.exists()
    # a trial was told "kept the file's half sets" and then refused: checked first now
    from tomoscribe.errors import ParameterError
    from tomoscribe.structure.average import AverageParams
    from tomoscribe.structure.workflow import average_particle_file

    said = []
    with pytest.raises(ParameterError):
        average_particle_file(star, out, AverageParams(iterations=0), use_priors=True,
                              say=said.append)  # fmt: skip
    assert not any("half sets" in s for s in said), said


def test_average_refuses_ctf_premultiplied_pseudo_subtomograms(scene, shared_data, capsys):
    """RELION 4/5 extracts CTF-premultiplied pseudo-subtomograms by default
    (rlnCtfDataAreCtfPremultiplied 1, as in the shared RELION 5 project): image terms
    for relion_refine, not densities. Averaged as densities they gave a CTF²-weighted
    map without a word; now refused before any work."""
    tmp, _, _ = scene
    star, _, _ = _relion5_input(tmp, shared_data, np.array([1, 2] * 6), premultiplied=1)
    out = tmp / "avg_premultiplied"
    assert _average(tmp, star, out, "--use-priors", "--iterations", "0") == 2
    err = capsys.readouterr().err
    assert "CTF-premultiplied" in err and "tomoscribe extract" in err
    assert err.count("\n") == 1 and not out.exists()


def test_de_novo_average_says_its_halves_share_a_model(scene, capsys):
    """De novo, both halves start from one model of all particles: their FSC is not an
    independent measure, and `average` says so (the trial printed "FSC 0.143 at 40.0 Å"
    for a map that was wrong); how many orientations the last de novo round kept is
    recorded."""
    tmp, _, _ = scene
    out = tmp / "avg_denovo"
    args = ["average", str(tmp / "parts" / "particles.star"), "-o", str(out)]
    assert main([*args, "--iterations", "1", "--tilt-range", "-90,90", "-q"]) == 0
    captured = capsys.readouterr()
    assert "warning: both halves were refined from one de novo model" in captured.err
    record = json.loads((out / "average.mrc.json").read_text())
    assert record["initial_model"] == "de novo" and record["half_sets"] == "drawn"
    assert 0.0 <= record["denovo_stability"] <= 1.0
    assert record["warnings"]
    # The 0.5 figure in words: a trial's noise average recorded 456 Å (its box) with
    # nothing to say the FSC was below 0.5 from the first shell.
    curve = pd.read_csv(out / "fsc.csv")
    assert record["resolution_05"] == describe_resolution(curve, 0.5)
    assert record["resolution_0143"] == describe_resolution(curve, 0.143)
    assert record["fsc_05_reaches_nyquist"] == bool((curve["fsc"] >= 0.5).all())


def test_resolution_is_not_claimed_at_nyquist():
    """An FSC above the threshold up to Nyquist bounds the resolution, it does not
    measure it: "better than 40.0 Å (Nyquist)", not "at 40.0 Å"."""
    curve = fsc_curve(
        np.ones((8, 8, 8)) + np.arange(8.0), np.ones((8, 8, 8)) + np.arange(8.0), 10.0
    )
    assert describe_resolution(curve, 0.143) == "better than 20.0 Å (Nyquist)"
    falling = pd.DataFrame({"resolution_A": [80.0, 40.0, 26.7, 20.0], "fsc": [0.9, 0.5, 0.1, 0.0]})
    assert describe_resolution(falling, 0.143) == f"at {resolution_at(falling, 0.143):.1f} Å"
    assert describe_resolution(falling, 0.95) == "worse than 80.0 Å (the box)"
    assert reliability_warnings({"initial_model": "given", "denovo_stability": None}) == []
    unsettled = reliability_warnings({"initial_model": "de novo", "denovo_stability": 0.5})
    assert len(unsettled) == 2 and "50%" in unsettled[0]


def test_a_table_made_in_memory_is_written_at_its_refined_positions(scene, tmp_path):
    """The demo's path: extract in memory, average, write without a source STAR file;
    with no search, the positions are the picks (box centre + rounding residual)."""
    from tomoscribe.structure.average import AverageParams, refine_average
    from tomoscribe.structure.extract import extract_subtomograms
    from tomoscribe.structure.results import write_average_outputs

    tmp, _, angles = scene
    picks = read_particles(tmp / "picks.star")
    stack, kept = extract_subtomograms(read_volume(tmp / "tomo.mrc"), picks, BOX)
    residual = kept[["shift_z", "shift_y", "shift_x"]].to_numpy()
    params = AverageParams(iterations=0, tilt_range_deg=(-90.0, 90.0))
    result = refine_average(stack, VOXEL, params, priors=from_euler(angles), prior_shifts=residual)
    write_average_outputs(tmp_path, result, kept, VOXEL, [], {})
    back = read_particles(tmp_path / "refined.star")
    assert np.allclose(back[["x", "y", "z"]], picks[["x", "y", "z"]], atol=1e-4)
    assert back["score"].isna().all()  # nothing scored, nothing written


@pytest.mark.parametrize(
    "extra",
    [
        {"rlnOriginZAngst": [30.0]},
        {"rlnTomoSubtomogramRot": [40.0], "rlnTomoSubtomogramTilt": [60.0]},
    ],
)
def test_refined_star_of_a_file_missing_some_columns_reads_back_unchanged(tmp_path, extra):
    """Review: write_refined needed all of a triple where read() takes a missing column
    as 0 (as RELION does): a lone rlnOriginZAngst was dropped (z 17 → 20), two of three
    subtomogram angles were ignored and the particle angles written wrongly."""
    from tomoscribe.io.formats.relion import write_refined

    row = {"rlnCoordinateX": [100.0], "rlnCoordinateY": [50.0], "rlnCoordinateZ": [20.0],
           "rlnAngleRot": [10.0], "rlnAngleTilt": [20.0], "rlnAnglePsi": [30.0],
           "rlnImagePixelSize": [10.0], **extra}  # fmt: skip
    starfile.write({"particles": pd.DataFrame(row)}, tmp_path / "in.star")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing columns are said
        before = read_particles(tmp_path / "in.star")
        rotations = from_euler(before[["rot", "tilt", "psi"]].to_numpy())
        write_refined(tmp_path / "in.star", tmp_path / "out.star", np.zeros((1, 3)), rotations, [1])
        after = read_particles(tmp_path / "out.star")
    np.testing.assert_allclose(after[["x", "y", "z"]], before[["x", "y", "z"]], atol=1e-9)
    turn = from_euler(after[["rot", "tilt", "psi"]].to_numpy()).inv() * rotations
    assert np.degrees(turn.magnitude()).max() < 1e-6


def test_a_reference_with_nan_voxels_is_refused(scene, tmp_path, capsys):
    """A new user's trial: an all-NaN reference ran to exit 0 with the same FSC as any
    other (the reference was in effect ignored); now one sentence, nothing written."""
    import mrcfile

    tmp, _, _ = scene
    bad = np.full((BOX, BOX, BOX), np.nan, np.float32)
    with mrcfile.new(tmp_path / "nan_ref.mrc") as mrc:
        mrc.set_data(bad)
        mrc.voxel_size = VOXEL
    out = tmp_path / "avg_nan"
    args = ["average", str(tmp / "parts" / "particles.star"), "-o", str(out)]
    args += ["--reference", str(tmp_path / "nan_ref.mrc"), "--tilt-range", "-90,90", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite voxels" in err[0], err
    assert not out.exists()


def test_a_particle_listed_twice_is_refused(scene, tmp_path, capsys):
    # the trial: every row of a STAR listed twice put 15 of 23 particles in both half
    # sets and took the FSC from 30.8 Å to "better than Nyquist", exit 0
    tmp, _, _ = scene
    blocks = starfile.read(tmp / "parts" / "particles.star", always_dict=True)
    name = next(k for k, v in blocks.items() if "rlnImageName" in v)
    doubled = dict(blocks)
    doubled[name] = pd.concat([blocks[name], blocks[name].iloc[[3]]], ignore_index=True)
    starfile.write(doubled, tmp / "parts" / "doubled.star")
    assert _average(tmp, tmp / "parts" / "doubled.star", tmp_path / "avg") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "1 particle more than once" in err and "rows 4 and 13" in err
    assert "in both half sets" in err and not (tmp_path / "avg").exists()
    # another subtomogram of the same position of the same tomogram is that particle too
    from tomoscribe.errors import InputFileError
    from tomoscribe.structure.stackio import check_no_repeats

    again = blocks[name].iloc[[5]].assign(rlnImageName=blocks[name].rlnImageName.iloc[6])
    moved = dict(blocks)
    moved[name] = pd.concat([blocks[name].drop(index=6), again], ignore_index=True)
    if "rlnTomoName" not in moved[name]:
        moved[name] = moved[name].assign(rlnTomoName="tomo")
    starfile.write(moved, tmp / "parts" / "moved.star")
    table = read_particles(tmp / "parts" / "moved.star")
    with pytest.raises(InputFileError, match="the same position in rows 6 and 12: tomo"):
        check_no_repeats(tmp / "parts" / "moved.star", table, "in both half sets")
    # a symmetry-expanded set (each copy turned, every copy in its particle's half) is
    # made so on purpose and passes; copies split between the halves do not (review)
    halves = table.assign(half=[1 + k % 2 for k in range(len(table))])
    halves.loc[len(halves) - 1, "half"] = halves.loc[5, "half"]
    check_no_repeats(tmp / "parts" / "moved.star", halves, "in both half sets", halves_kept=True)
    halves.loc[len(halves) - 1, "half"] = 3 - halves.loc[5, "half"]
    with pytest.raises(InputFileError, match="rows 6 and 12"):
        check_no_repeats(tmp / "parts" / "moved.star", halves, "in both half sets", True)
    # rows without a position (another tomogram's, as a RELION 5 file may read) are no
    # repeats of each other (a first version raised a TypeError on them)
    unplaced = table.assign(
        x=np.nan, y=np.nan, z=np.nan, image_name=[f"i{k}" for k in range(len(table))]
    )
    check_no_repeats(tmp / "parts" / "moved.star", unplaced, "in both half sets")


def test_a_reference_of_opposite_contrast_is_used_inverted_and_said(scene, tmp_path, capsys):
    # the trial: a protein-bright map as the reference of protein-dark subtomograms was
    # fitted upside down (angles 164° off, FSC 62 Å), exit 0 without a word
    from tomoscribe.io import read_volume
    from tomoscribe.structure.average import contrast_agreement
    from tomoscribe.structure.stackio import read_particle_set

    tmp, _, angles = scene
    stack, _, _ = read_particle_set(tmp / "parts" / "particles.star")
    reference = np.asarray(read_volume(tmp / "ref.mrc").data)
    assert contrast_agreement(reference, stack) > 0.9
    assert contrast_agreement(-reference, stack) < -0.9
    assert contrast_agreement(reference, -stack) < -0.9
    write_volume(tmp_path / "negative.mrc", Volume(-reference, VOXEL))
    args = ["average", str(tmp / "parts" / "particles.star"), "-o", str(tmp_path / "avg")]
    args += ["--reference", str(tmp_path / "negative.mrc"), "--tilt-range", "-90,90", "-q"]
    assert main([*args, "--iterations", "2"]) == 0
    err = capsys.readouterr().err
    assert "negative.mrc shows protein with the opposite contrast" in err, err
    record = json.loads((tmp_path / "avg" / "average.mrc.json").read_text())
    assert record["parameters"]["reference_inverted"] is True
    average = np.asarray(read_volume(tmp_path / "avg" / "average.mrc").data).ravel()
    assert np.corrcoef(average, reference.ravel())[0, 1] > 0.8
    # the angles found are the truth's (the same rotation, up to the body's symmetry: none)
    refined = from_euler(
        read_particles(tmp_path / "avg" / "refined.star")[["rot", "tilt", "psi"]].to_numpy()
    )
    truth = from_euler(angles)
    error = np.degrees((refined * truth.inv()).magnitude())
    assert np.median(error) < 15, error


def test_a_reference_with_an_unset_1A_header_is_told_to_set_it(scene, tmp_path, capsys):
    # A trial: the right map, its header at MRC's unset 1 Å, was told "resample one of them".
    tmp, _, _ = scene
    write_volume(tmp_path / "ref1.mrc", Volume(read_volume(tmp / "ref.mrc").load(), 1.0))
    out = tmp_path / "avg_1A"
    args = ["average", str(tmp / "parts" / "particles.star"), "-o", str(out)]
    assert main([*args, "--reference", str(tmp_path / "ref1.mrc"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unset MRC header" in err[0] and f"{VOXEL:g} Å" in err[0], err
    assert not out.exists()


def test_a_tomogram_given_to_average_is_told_what_average_takes(scene, tmp_path, capsys):
    # A trial: `average tomogram.mrc` was told "unknown particle format; use .star, .mod …"
    tmp, _, _ = scene
    out = tmp_path / "avg_tomo"
    assert main(["average", str(tmp / "tomo.mrc"), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a particle list" in err[0] and "rlnImageName" in err[0]
    assert not out.exists()


def _paint_at(voxel_A: float, box: int) -> np.ndarray:
    """The body (its blobs in Å from :data:`BLOBS`' VOXEL units) drawn at ``voxel_A`` Å
    voxels in a ``box``³ grid, centred on voxel box // 2."""
    z, y, x = np.meshgrid(*(np.arange(box, dtype=float) - box // 2,) * 3, indexing="ij")
    out = np.zeros((box,) * 3)
    scale = VOXEL / voxel_A
    for offset, sigma, weight in BLOBS:
        cx, cy, cz = np.asarray(offset) * scale
        out += weight * np.exp(
            -((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * (sigma * scale) ** 2)
        )
    return out


def test_a_reference_of_another_voxel_size_and_box_is_resampled(scene, tmp_path, capsys):
    """A trial's EMDB map at another pixel size was refused: "resample one of them",
    with no command that does.  RELION's Refine3D resizes such a reference; so does
    average now: the body drawn at 4 Å in a 72³ box, used with 10 Å particles in 24³
    boxes, gives the reference drawn at 10 Å, and the same refined positions."""
    from tomoscribe.structure.average import resampled_map

    fine = _paint_at(4.0, 72)
    native = _paint((BOX,) * 3, (BOX // 2,) * 3, Rotation.identity())
    resampled = resampled_map(fine, 4.0, VOXEL, BOX)
    assert np.corrcoef(resampled.ravel(), native.ravel())[0, 1] > 0.995
    assert resampled.sum() * VOXEL**3 == pytest.approx(fine.sum() * 4.0**3, rel=0.02)
    tmp, truth, _ = scene
    write_volume(tmp_path / "fine.mrc", Volume(fine.astype(np.float32), 4.0))
    out = tmp_path / "avg"
    args = ["average", str(tmp / "parts" / "particles.star"), "-o", str(out)]
    args += ["--reference", str(tmp_path / "fine.mrc"), "--tilt-range", "-90,90"]
    assert main([*args, "--max-shift", "30", "-q", "--use-priors", "--iterations", "1"]) == 0
    assert (
        "(72³ voxels of 4 Å) is resampled to the particles' 24³ of 10 Å" in capsys.readouterr().err
    )
    refined = read_particles(out / "refined.star")
    error = np.linalg.norm(refined[["x", "y", "z"]].to_numpy() - truth, axis=1)
    assert np.median(error) < 0.1 and error.max() < 0.25, error


def test_a_mask_diameter_keeps_a_neighbour_out_of_the_alignment(scene, tmp_path, capsys):
    """A trial: `average` had no mask option (a sphere of 0.45 × the box), so a
    neighbour inside the box pulled every particle's alignment.  Twelve copies of the
    body, each with a strong blob 9 voxels off in the box frame (a neighbour that does
    not turn with it), priors 8° off: within the default mask the blob holds the angles
    ~10° off; a 110 Å mask (5.5 voxels) leaves it out and the angles converge."""
    from tomoscribe.structure.average import AverageParams, refine_average

    rng = np.random.default_rng(3)
    truth = Rotation.random(12, random_state=4)
    centre = np.full(3, BOX // 2, float)
    z, y, x = np.meshgrid(*(np.arange(BOX, dtype=float),) * 3, indexing="ij")
    blob = 3.0 * np.exp(-((x - centre[0] - 9) ** 2 + (y - 12) ** 2 + (z - 12) ** 2) / 4.5)
    particles = np.array(
        [_paint((BOX,) * 3, centre, r) + blob + rng.normal(0, 0.05, blob.shape) for r in truth],
        np.float32,
    )
    turns = Rotation.random(12, random_state=9).apply([1.0, 0.0, 0.0]) * np.radians(8)
    priors = Rotation.from_rotvec(turns) * truth
    reference = _paint((BOX,) * 3, centre, Rotation.identity()).astype(np.float32)
    errors = {}
    for diameter in (None, 110.0):
        params = AverageParams(
            iterations=4, tilt_range_deg=(-90, 90), max_shift_A=30, mask_diameter_A=diameter
        )
        found = refine_average(particles, VOXEL, params, reference, priors=priors)["rotations"]
        errors[diameter] = np.median(np.degrees((found * truth.inv()).magnitude()))
    assert errors[110.0] < 5.0 and errors[None] > 1.5 * errors[110.0], errors
    # a mask wider than the box, or narrower than a particle can be, is refused
    tmp = scene[0]
    for diameter, said in (("250", "wider than the particles' box"), ("40", "at least 60 Å")):
        out = tmp_path / f"avg_{diameter}"
        args = ("--use-priors", "--iterations", "1", "--mask-diameter", diameter)
        assert _average(tmp, tmp / "parts" / "particles.star", out, *args) == 2
        assert said in capsys.readouterr().err
        assert not out.exists()
