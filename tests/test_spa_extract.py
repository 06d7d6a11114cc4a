"""`tomoscribe spa extract`: particles cut from micrographs as RELION's Extract job cuts
them, checked against RELION's rules written out here (src/preprocessing.cpp and
src/image.cpp of RELION 3/4), and read back by classify2d."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io import write_volume
from tomoscribe.io.micrograph_ctf import read_micrograph_ctf
from tomoscribe.spa.extract import cut_boxes, default_bg_radius, extract_particles
from tomoscribe.volume import Volume


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize("box", [8, 9, 16])  # (odd boxes: RELION's rule, though refused)
def test_the_pick_truncated_to_whole_pixels_is_the_box_centre(box):
    # RELION: xpos = (long int) x; the box runs from xpos + FIRST_XMIPP_INDEX(box)
    # = xpos - box/2, so the pick's pixel is box pixel box/2 (rounding would put
    # x 37.6 at pixel 38)
    image = np.zeros((64, 80), np.float32)
    image[21, 37] = 1.0
    picks = np.array([[37.6, 21.3], [37.0, 21.99], [37.99, 21.0]])
    boxes = cut_boxes(image, picks, box)
    for one in boxes:
        assert one[box // 2, box // 2] == 1.0 and one.sum() == 1.0


def test_pixels_beyond_the_edge_repeat_the_nearest_pixel_inside():
    # RELION fills a box's pixels beyond the micrograph with the nearest row or column
    # inside (A(i, j) = A(i, -xpos) for j + xpos < 0; likewise y), not with zeros
    rows, columns = np.mgrid[0:50, 0:60]
    image = (1000.0 * rows + columns + 1).astype(np.float32)
    box = cut_boxes(image, np.array([[2.4, 45.0]]), 16)[0]  # 6 columns left, 3 rows below
    x0, y0 = 2 - 8, 45 - 8
    for i in range(16):
        for j in range(16):
            y, x = min(max(y0 + i, 0), 49), min(max(x0 + j, 0), 59)
            assert box[i, j] == image[y, x]
    assert (box[:, :6] == box[:, 6:7]).all() and (box[-4:] == box[-4]).all()


def _relion_normalised(box: np.ndarray, bg_radius: int) -> np.ndarray:
    """RELION's normalise(…, do_ramp=true) written out: Xmipp coordinates (origin at
    pixel size/2), background where i² + j² > r², a least-squares plane over it
    subtracted, then the background's mean, then divided by its σ (over n)."""
    size = box.shape[0]
    points, values = [], []
    for i in range(size):
        for j in range(size):
            yi, xj = i - size // 2, j - size // 2
            if yi * yi + xj * xj > bg_radius * bg_radius:
                points.append((xj, yi, 1.0))
                values.append(float(box[i, j]))
    a = np.array(points)
    plane = np.linalg.solve(a.T @ a, a.T @ np.array(values))
    out = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            out[i, j] = box[i, j] - (plane[0] * (j - size // 2) + plane[1] * (i - size // 2))
            out[i, j] -= plane[2]
    ring = [
        out[i, j]
        for i in range(size)
        for j in range(size)
        if (i - size // 2) ** 2 + (j - size // 2) ** 2 > bg_radius**2
    ]
    return (out - np.mean(ring)) / np.std(ring)


def test_boxes_are_normalised_and_inverted_as_relion_does():
    rng = np.random.default_rng(3)
    rows, columns = np.mgrid[0:96, 0:96]
    ramp = 0.05 * columns - 0.03 * rows + 7.0  # a thickness gradient across the ice
    image = (ramp + rng.normal(0, 2.0, (96, 96))).astype(np.float32)
    image[40:50, 40:50] -= 6.0  # a dark particle
    picks = np.array([[45.0, 45.0], [20.7, 70.2]])
    kept = extract_particles(image, picks, 36, invert=False)
    # RELION's Extract job: bg_radius = (int)(0.75 · box / 2), truncated (13.5 → 13)
    assert [default_bg_radius(b) for b in (32, 36, 90, 100)] == [12, 13, 33, 37]
    for one, pick in zip(kept, picks):
        raw = cut_boxes(image, pick[None], 36)[0]
        assert np.allclose(one, _relion_normalised(raw, 13), atol=1e-4)
    inverted = extract_particles(image, picks, 36)
    assert np.array_equal(inverted, -kept)
    assert inverted[0, 16:20, 16:20].mean() > 2.0  # protein white after inversion


def test_simulated_micrographs_extract_into_a_stack_classify2d_reads(tmp_path, monkeypatch):
    # simulate micrographs → spa extract at the true centres with the CtfFind-style
    # estimates simulate writes → particles.star that classify2d (as RELION) reads
    monkeypatch.chdir(tmp_path)
    simulate = ["simulate", "micrographs", "-o", "sim", "--n", "2", "--size", "384"]
    assert main([*simulate, "--defocus", "1.0,2.5", "--annotate", "0"]) == 0
    truth = starfile.read("sim/truth.star")
    micrographs = ["sim/micrographs/mic_000.mrc", "sim/micrographs/mic_001.mrc"]
    argv = ["spa", "extract", *micrographs, "--picks", "sim/truth.star", "--box", "48"]
    assert main([*argv, "--ctf", "sim/micrographs_ctf.star", "-o", "Extract/job1"]) == 0
    blocks = starfile.read("Extract/job1/particles.star", always_dict=True)
    optics, particles = blocks["optics"], blocks["particles"]
    assert len(particles) == len(truth)
    assert optics["rlnImageSize"].tolist() == [48] and optics["rlnImagePixelSize"][0] == 4.0
    assert optics["rlnVoltage"][0] == 300.0 and optics["rlnSphericalAberration"][0] == 2.7
    defocus = dict(zip(["mic_000.mrc", "mic_001.mrc"], [1.0e4, 2.5e4]))
    for micrograph, rows in particles.groupby("rlnMicrographName"):
        assert micrograph.startswith("sim/micrographs/")  # from the project folder
        assert np.allclose(rows["rlnDefocusU"], defocus[micrograph.split("/")[-1]])
    number, stack = particles["rlnImageName"].iloc[0].split("@")
    assert number == "000001" and stack == "Extract/job1/Particles/mic_000.mrcs"
    with mrcfile.open(stack) as mrc:
        images = mrc.data.copy()
        assert mrc.voxel_size.x == pytest.approx(4.0)
    assert images.shape[1:] == (48, 48)
    centre = images[:, 20:28, 20:28].mean(axis=(1, 2))
    assert np.median(centre) > 0.3  # white protein on a normalised background
    assert main(["classify2d", "Extract/job1/particles.star", "-k", "2", "-o", "cls"]) == 0
    assert len(starfile.read("cls/particles.star", always_dict=True)["particles"]) == len(truth)


def test_ctf_estimates_of_simulate_and_of_a_relion_3_0_file_are_read(tmp_path):
    # the file simulate writes and a RELION 3.0 one (one block, microscope on each row)
    assert main(["simulate", "micrographs", "-o", str(tmp_path / "s"), "--n", "3"]) == 0
    table, optics = read_micrograph_ctf(tmp_path / "s" / "micrographs_ctf.star")
    assert table.index.tolist() == ["mic_000", "mic_001", "mic_002"]
    assert np.allclose(table["rlnDefocusU"], [8000, 19000, 30000])
    assert (table["rlnVoltage"] == 300).all() and (table["rlnAmplitudeContrast"] == 0.07).all()
    (tmp_path / "old.star").write_text(
        "data_\n\nloop_\n_rlnMicrographName #1\n_rlnDefocusU #2\n_rlnDefocusV #3\n"
        "_rlnDefocusAngle #4\n_rlnVoltage #5\n_rlnSphericalAberration #6\n"
        "Micrographs/a.mrc 15000.0 14000.0 30.0 200.0 2.0\n"
    )
    old, no_optics = read_micrograph_ctf(tmp_path / "old.star")
    assert no_optics is None
    assert old.loc["a"].drop("rlnMicrographName").to_dict() == {
        "rlnDefocusU": 15000.0,
        "rlnDefocusV": 14000.0,
        "rlnDefocusAngle": 30.0,
        "rlnVoltage": 200.0,
        "rlnSphericalAberration": 2.0,
    }


@pytest.fixture
def micrograph(tmp_path):
    rng = np.random.default_rng(0)
    write_volume(
        tmp_path / "m1.mrc", Volume(rng.normal(size=(1, 96, 96)).astype(np.float32), (2.0,) * 3)
    )
    return tmp_path


@pytest.mark.parametrize(
    "picks, extra, words",
    [
        ([[300.0, 20.0]], [], "lie wholly outside"),
        ([[30.0, 20.0]], ["--box", "128"], "box is larger than micrograph m1.mrc"),
        ([[30.0, 20.0]], ["--bg-radius", "20"], "leaves no background"),
        ([[30.0, 20.0]], ["--box", "33"], "RELION extracts even boxes only"),
        ([[30.0, 20.0]], ["--ctf", "ctf.star"], "no CTF estimate of micrograph m1"),
    ],
)
def test_bad_extractions_are_refused_and_write_nothing(micrograph, capsys, picks, extra, words):
    pd.DataFrame(
        {"micrograph": "m1", "x": [p[0] for p in picks], "y": [p[1] for p in picks]}
    ).to_csv(micrograph / "picks.csv", index=False)
    starfile.write(
        pd.DataFrame({"rlnMicrographName": ["other.mrc"], "rlnDefocusU": [1e4]}),
        micrograph / "ctf.star",
    )
    before = {p: p.read_bytes() for p in entries(micrograph)}
    argv = ["spa", "extract", str(micrograph / "m1.mrc"), "--picks", str(micrograph / "picks.csv")]
    extra = [str(micrograph / e) if e.endswith(".star") else e for e in extra]
    assert main([*argv, "--box", "32", *extra, "-o", str(micrograph / "out")]) == 2
    assert words in _one_sentence(capsys)
    assert {p: p.read_bytes() for p in entries(micrograph)} == before


def test_a_micrograph_given_to_classify2d_is_named_as_one(micrograph, capsys):
    # a trial was told "cannot make 64 classes from 1 particles"; two micrographs with
    # -k 2 made "2 particles in 2 classes"; a K3-shaped one "particles must be square"
    for name, shape in (("a", (600, 600)), ("b", (600, 600)), ("k3", (410, 576))):
        write_volume(
            micrograph / f"{name}.mrc", Volume(np.zeros((1, *shape), np.float32), (2.0,) * 3)
        )
    for given, words in (
        (["a.mrc"], "a micrograph rather than a stack of particles"),
        (["a.mrc", "b.mrc", "-k", "2"], "a micrograph rather than a stack of particles"),
        (["k3.mrc", "-k", "1"], "a micrograph?"),
    ):
        argv = [str(micrograph / g) if g.endswith(".mrc") else g for g in given]
        assert main(["classify2d", *argv, "-o", str(micrograph / "c")]) == 2
        line = _one_sentence(capsys)
        assert words in line and "spa extract" in line


def _ctf_star(path, names, pixel_size=2.0):
    """A CtfFind job's micrographs_ctf.star as RELION 3.1+ writes it: two optics groups
    (beam tilt differs), astigmatic estimates."""
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"],
            "rlnOpticsGroup": [1, 2],
            "rlnMicrographOriginalPixelSize": [pixel_size / 2] * 2,
            "rlnVoltage": [300.0, 300.0],
            "rlnSphericalAberration": [2.7, 2.7],
            "rlnAmplitudeContrast": [0.1, 0.1],
            "rlnBeamTiltX": [0.1, -0.2],
            "rlnBeamTiltY": [0.0, 0.3],
            "rlnMicrographPixelSize": [pixel_size] * 2,
        }
    )
    micrographs = pd.DataFrame(
        {
            "rlnMicrographName": names,
            "rlnOpticsGroup": [1 + k % 2 for k in range(len(names))],
            "rlnCtfImage": [n.replace(".mrc", ".ctf:mrc") for n in names],
            "rlnDefocusU": [15000.0 + 1000 * k for k in range(len(names))],
            "rlnDefocusV": [14000.0 + 1000 * k for k in range(len(names))],
            "rlnCtfAstigmatism": [1000.0] * len(names),
            "rlnDefocusAngle": [30.0 + 10 * k for k in range(len(names))],
            "rlnCtfFigureOfMerit": [0.2] * len(names),
            "rlnCtfMaxResolution": [3.5 + k for k in range(len(names))],
        }
    )
    starfile.write({"optics": optics, "micrographs": micrographs}, path)


@pytest.fixture
def two(tmp_path, monkeypatch):
    """Two micrographs in MotionCorr/job002/ of a project folder, and CSV picks."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(4)
    folder = tmp_path / "MotionCorr" / "job002"
    folder.mkdir(parents=True)
    for name in ("m1", "m2"):
        image = rng.normal(size=(1, 128, 128)).astype(np.float32)
        write_volume(folder / f"{name}.mrc", Volume(image, (2.0,) * 3))
    picks = pd.DataFrame(
        {"micrograph": ["m1", "m1", "m2"], "x": [40.0, 80.5, 64.0], "y": [50.0, 70.2, 64.0]}
    )
    picks.to_csv("picks.csv", index=False)
    return ["MotionCorr/job002/m1.mrc", "MotionCorr/job002/m2.mrc"]


def test_each_particle_takes_its_micrographs_estimate_and_optics_group(two):
    # RELION's Extract copies the micrograph's CTF (astigmatism too) onto its particles
    # and keeps the micrographs' optics groups (beam tilt, original pixel size)
    _ctf_star("ctf.star", two)
    argv = ["spa", "extract", *two, "--picks", "picks.csv", "--box", "32", "--ctf", "ctf.star"]
    assert main([*argv, "-o", "Extract/job3"]) == 0
    blocks = starfile.read("Extract/job3/particles.star", always_dict=True)
    optics, rows = blocks["optics"], blocks["particles"]
    assert optics["rlnOpticsGroup"].tolist() == [1, 2]
    assert optics["rlnBeamTiltX"].tolist() == [0.1, -0.2]
    assert optics["rlnMicrographOriginalPixelSize"].tolist() == [1.0, 1.0]
    assert (optics["rlnImageSize"] == 32).all() and (optics["rlnImagePixelSize"] == 2.0).all()
    assert rows["rlnMicrographName"].tolist() == [two[0], two[0], two[1]]
    assert rows["rlnOpticsGroup"].tolist() == [1, 1, 2]
    assert rows["rlnDefocusU"].tolist() == [15000.0, 15000.0, 16000.0]
    assert rows["rlnDefocusV"].tolist() == [14000.0, 14000.0, 15000.0]
    assert rows["rlnDefocusAngle"].tolist() == [30.0, 30.0, 40.0]
    assert rows["rlnCtfMaxResolution"].tolist() == [3.5, 3.5, 4.5]
    assert "rlnVoltage" not in rows  # in the optics block, where RELION 3.1+ reads it
    assert rows["rlnImageName"].tolist() == [
        "000001@Extract/job3/Particles/m1.mrcs",
        "000002@Extract/job3/Particles/m1.mrcs",
        "000001@Extract/job3/Particles/m2.mrcs",
    ]
    with mrcfile.open("Extract/job3/Particles/m1.mrcs") as mrc:
        normal = mrc.data.copy()
    assert main([*argv, "--no-invert", "-o", "Extract/job4"]) == 0
    with mrcfile.open("Extract/job4/Particles/m1.mrcs") as mrc:
        assert np.array_equal(mrc.data, -normal)


def test_picks_on_micrographs_not_given_are_left_out_with_a_warning(two, capsys):
    # RELION extracts the micrographs it is given (a CTF-selected subset, say); a rerun
    # into the same folder replaces the earlier run's stacks (it was refused: "Particles
    # is a folder")
    argv = ["spa", "extract", *two, "--picks", "picks.csv", "--box", "32", "-o", "ex"]
    assert main(argv) == 0 and Path("ex/Particles/m1.mrcs").is_file()
    capsys.readouterr()
    argv = ["spa", "extract", two[1], "--picks", "picks.csv", "--box", "32", "-o", "ex"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "the earlier extraction there is replaced" in out.out  # said, as spa pick does
    assert "2 picks on 1 micrograph not given (m1) are left out" in out.err
    assert len(starfile.read("ex/particles.star", always_dict=True)["particles"]) == 1
    assert not (Path("ex/Particles/m1.mrcs")).exists()
    # a micrograph given without picks is named (a trial's misnamed one was hidden
    # behind the '…' of the names not given, and came out with no particles, unsaid)
    picks = pd.read_csv("picks.csv")
    picks.loc[picks["micrograph"] == "m1", "micrograph"] = "m9"
    picks.to_csv("renamed.csv", index=False)
    argv = ["spa", "extract", *two, "--picks", "renamed.csv", "--box", "32", "-o", "ex2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "not given (m9)" in err and "1 micrograph given (m1) has no pick" in err, err


@pytest.mark.parametrize(
    "case, words",
    [
        ("twice", "hold the same picks"),
        ("within a pixel", "hold the same picks"),
        ("relion 3.0 pixel size", "gives the micrographs 4 Å pixels"),
        ("other image", "holds another image than"),
        ("pixel size", "gives the micrographs 4 Å pixels"),
    ],
)
def test_mistaken_picks_and_estimates_are_refused(two, capsys, case, words):
    # the picks of a picks folder given twice (picks.star and picks.csv) were cut twice:
    # duplicate particles inflate a gold-standard FSC; a CTF file naming another image
    # of the same name, or micrographs of another pixel size, gave wrong defoci silently
    extra = []
    if case == "twice":
        pd.read_csv("picks.csv").to_csv("again.csv", index=False)
        extra = ["--picks", "again.csv"]
    elif case == "within a pixel":  # a picks folder's NAME.box: whole-pixel corners
        picks = pd.read_csv("picks.csv")
        picks.assign(x=picks["x"].round() + 0.4).to_csv("again.csv", index=False)
        extra = ["--picks", "again.csv"]
    elif case == "relion 3.0 pixel size":  # one block: detector pixel (µm) / magnification
        Path("ctf30.star").write_text(
            "data_\n\nloop_\n_rlnMicrographName\n_rlnDefocusU\n_rlnDetectorPixelSize\n"
            "_rlnMagnification\n" + "".join(f"{m} 15000 5.0 12500\n" for m in two)
        )
        extra = ["--ctf", "ctf30.star"]
    elif case == "other image":
        Path("other").mkdir()
        write_volume("other/m1.mrc", Volume(np.ones((1, 128, 128), np.float32), (2.0,) * 3))
        _ctf_star("ctf.star", ["other/m1.mrc", two[1]])
        extra = ["--ctf", "ctf.star"]
    else:
        _ctf_star("ctf.star", two, pixel_size=4.0)
        extra = ["--ctf", "ctf.star"]
    before = {p: p.read_bytes() for p in sorted(Path(".").rglob("*")) if p.is_file()}
    argv = ["spa", "extract", *two, "--picks", "picks.csv", "--box", "32", *extra, "-o", "ex"]
    assert main(argv) == 2
    assert words in _one_sentence(capsys)
    assert {p: p.read_bytes() for p in sorted(Path(".").rglob("*")) if p.is_file()} == before


def test_a_picks_folder_given_as_picks_is_told_its_picks_star(two, capsys):
    Path("picks").mkdir()
    pd.read_csv("picks.csv").to_csv("picks/picks.star", index=False)
    argv = ["spa", "extract", *two, "--picks", "picks", "--box", "32", "-o", "ex"]
    assert main(argv) == 2
    assert "give its picks/picks.star" in _one_sentence(capsys)


def test_with_some_micrographs_given_a_nameless_file_is_not_taken_for_another(two, capsys):
    # RELION's per-micrograph coordinate files name no micrograph: m_2_autopick.star
    # belongs to m_2, and with m_2 not given its picks were cut from m
    for name, xy in (("m1", [[40.0, 50.0]]), ("m1_2", [[64.0, 64.0], [30.0, 30.0]])):
        table = pd.DataFrame(xy, columns=["rlnCoordinateX", "rlnCoordinateY"])
        starfile.write({"": table}, f"{name}_autopick.star")
    argv = ["spa", "extract", two[0], "--picks", "m1_autopick.star"]
    argv += ["--picks", "m1_2_autopick.star", "--box", "32", "-o", "ex"]
    assert main(argv) == 0
    assert "2 picks on 1 micrograph not given (m1_2_autopick)" in capsys.readouterr().err
    rows = starfile.read("ex/particles.star", always_dict=True)["particles"]
    assert rows["rlnCoordinateX"].tolist() == [40.0]


def test_estimates_without_groups_on_their_rows_keep_their_microscope(two, capsys):
    # a micrographs block without rlnOpticsGroup under a one-group optics block: the
    # block's voltage and Cs were dropped, so RELION 3.1+ could not read particles.star
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnVoltage": [200.0], "rlnSphericalAberration": [1.4]}
    )
    rows = pd.DataFrame({"rlnMicrographName": two, "rlnDefocusU": [12000.0, 13000.0]})
    starfile.write({"optics": optics, "micrographs": rows}, "ctf.star")
    argv = ["spa", "extract", *two, "--picks", "picks.csv", "--box", "32", "--ctf", "ctf.star"]
    assert main([*argv, "-o", "ex"]) == 0
    blocks = starfile.read("ex/particles.star", always_dict=True)
    assert blocks["optics"]["rlnVoltage"].tolist() == [200.0]
    assert blocks["particles"]["rlnOpticsGroup"].tolist() == [1, 1, 1]
    assert "warning" not in capsys.readouterr().err
    # estimates without a microscope: said, as RELION 3.1+ needs voltage and Cs
    starfile.write({"micrographs": rows}, "bare.star")
    argv[-1] = "bare.star"
    assert main([*argv, "-o", "ex2"]) == 0
    err = capsys.readouterr().err
    assert "no rlnVoltage and no rlnSphericalAberration" in err and "--voltage" in err


def test_picks_given_to_classify2d_are_told_to_be_extracted(two, capsys):
    starfile.write(
        pd.DataFrame(
            {"rlnMicrographName": [two[0]], "rlnCoordinateX": [40.0], "rlnCoordinateY": [50.0]}
        ),
        "picks.star",
    )
    assert main(["classify2d", "picks.star", "-k", "1", "-o", "c"]) == 2
    assert "holds picks on micrographs" in _one_sentence(capsys)


def test_a_long_extraction_says_how_far_it_is(tmp_path, monkeypatch, capsys):
    # 2,000 micrographs ran minutes without a word; a short run's error stays one line
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    names = [f"m{k:02d}" for k in range(12)]
    for name in names:
        write_volume(
            f"{name}.mrc", Volume(rng.normal(size=(1, 64, 64)).astype(np.float32), (2.0,) * 3)
        )
    pd.DataFrame({"micrograph": names, "x": 32.0, "y": 30.0}).to_csv("p.csv", index=False)
    argv = ["spa", "extract", *[f"{n}.mrc" for n in names], "--picks", "p.csv", "--box", "32"]
    assert main([*argv, "-o", "ex"]) == 0
    err = capsys.readouterr().err
    assert "extracted 1 of 12 micrographs" in err and "extracted 12 of 12 micrographs" in err


def test_ctf_estimates_of_micrographs_not_found_here_are_said_matched_by_name(two, capsys):
    """A trial: another project's micrographs_ctf.star (its paths not found here) gave
    mic_000's particles another mic_000's defocus, without a word."""
    _ctf_star("ctf.star", [f"OtherProject/MotionCorr/job002/{Path(m).name}" for m in two])
    argv = ["spa", "extract", *two, "--picks", "picks.csv", "--box", "32", "--ctf", "ctf.star"]
    assert main([*argv, "-o", "Extract/job4"]) == 0
    said = capsys.readouterr().err
    assert "names 2 of these micrographs by paths not found here" in said
    assert "OtherProject/MotionCorr/job002/m1.mrc" in said
    # the project's own file, from its project folder, is not
    Path("CtfFind/job003").mkdir(parents=True)
    _ctf_star("CtfFind/job003/micrographs_ctf.star", two)
    argv[-1] = "CtfFind/job003/micrographs_ctf.star"
    assert main([*argv, "-o", "Extract/job5"]) == 0
    assert "not found here" not in capsys.readouterr().err


def test_relions_no_score_of_manual_picks_goes_back_as_minus_999(two):
    """A review: -999 (RELION's figure of merit of a hand-picked box) was read as no
    score and written back as <NA>, which RELION cannot read."""
    picks = pd.read_csv("picks.csv")
    starfile.write(
        pd.DataFrame(
            {
                "rlnMicrographName": [two[0] if m == "m1" else two[1] for m in picks["micrograph"]],
                "rlnCoordinateX": picks["x"],
                "rlnCoordinateY": picks["y"],
                "rlnAutopickFigureOfMerit": [0.8, -999.0, 0.5],
            }
        ),
        "manualpick.star",
    )
    argv = ["spa", "extract", *two, "--picks", "manualpick.star", "--box", "32", "-o", "ex"]
    assert main(argv) == 0
    text = Path("ex/particles.star").read_text()
    assert "<NA>" not in text and "nan" not in text.lower()
    rows = starfile.read("ex/particles.star", always_dict=True)["particles"]
    assert rows["rlnAutopickFigureOfMerit"].tolist() == [0.8, -999.0, 0.5]
