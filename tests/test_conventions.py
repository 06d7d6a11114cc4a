"""Orientation conventions at every file boundary, checked against outside code.

The reference is the teamtomo ``eulerangles`` package (its 'relion', 'warp' and
'dynamo' conventions) and real files written by RELION 3/5, Warp and pytom users,
never tomoscribe's own writer alone.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from tomoscribe.core.rotations import angular_distance_deg, from_euler, to_euler
from tomoscribe.io.formats.relion import helical_priors
from tomoscribe.io.particles import read_particles, write_particles

eulerangles = pytest.importorskip("eulerangles")
from eulerangles import convert_eulers, euler2matrix, matrix2euler  # noqa: E402

RELION = dict(axes="zyz", intrinsic=True, right_handed_rotation=True)


def relion_reference_to_particle(angles) -> np.ndarray:
    """eulerangles' RELION matrix is passive: the reference → particle rotation is its
    inverse (transpose)."""
    m = euler2matrix(np.asarray(angles, float), **RELION).reshape(-1, 3, 3)
    return np.transpose(m, (0, 2, 1))


@pytest.fixture
def rotations():
    return Rotation.random(200, random_state=1)


def test_eulerangles_marks_relion_passive():
    from eulerangles.constants import euler_angle_metadata as meta

    assert meta["relion"].active is False and meta["relion"].axes == "zyz"
    assert meta["relion"].intrinsic and meta["relion"].right_handed_rotation


def test_from_euler_is_relions_reference_to_particle_rotation(rotations):
    angles = to_euler(rotations)
    assert np.allclose(
        from_euler(angles).as_matrix(), relion_reference_to_particle(angles), atol=1e-10
    )
    # and eulerangles' own inverse gives back the same angles' rotation
    back = matrix2euler(np.transpose(rotations.as_matrix(), (0, 2, 1)), **RELION)
    assert np.max(angular_distance_deg(from_euler(back), rotations)) < 1e-6


def test_warp_and_m_read_like_relion(rotations):
    angles = to_euler(rotations)
    for other in ("warp", "m"):
        converted = convert_eulers(angles, "relion", other)
        assert np.max(angular_distance_deg(from_euler(converted), rotations)) < 1e-6


def test_dynamo_table_against_eulerangles(tmp_path, rotations):
    table = pd.DataFrame({"x": np.linspace(1, 50, 200), "y": 3.0, "z": 4.0})
    table[["rot", "tilt", "psi"]] = to_euler(rotations)
    write_particles(tmp_path / "p.tbl", table, 10.0)
    import dynamotable

    raw = dynamotable.read(str(tmp_path / "p.tbl"))
    expected = convert_eulers(table[["rot", "tilt", "psi"]].to_numpy(), "relion", "dynamo")
    written = raw[["tdrot", "tilt", "narot"]].to_numpy(float)
    # same rotation (Euler triples are not unique): compare as eulerangles' matrices
    m_written = euler2matrix(written, axes="zxz", intrinsic=False, right_handed_rotation=True)
    m_expected = euler2matrix(expected, axes="zxz", intrinsic=False, right_handed_rotation=True)
    assert np.allclose(m_written, m_expected, atol=1e-5)
    back = read_particles(tmp_path / "p.tbl")
    err = angular_distance_deg(from_euler(back[["rot", "tilt", "psi"]].to_numpy()), rotations)
    assert np.max(err) < 0.01
    assert np.allclose(back[["x", "y", "z"]], table[["x", "y", "z"]], atol=0.01)


def test_dynamo_shifts_are_added(tmp_path):
    import dynamotable

    frame = pd.DataFrame(
        {
            "x": [10.0],
            "y": [20.0],
            "z": [30.0],
            "dx": [1.5],
            "dy": [-2.0],
            "dz": [0.25],
            "tdrot": [30.0],
            "tilt": [40.0],
            "narot": [50.0],
        }
    )
    dynamotable.write(frame, str(tmp_path / "d.tbl"))
    back = read_particles(tmp_path / "d.tbl")  # Dynamo counts voxels from 1
    assert np.allclose(back[["x", "y", "z"]].to_numpy()[0], [10.5, 17.0, 29.25])
    expected = convert_eulers(np.array([30.0, 40.0, 50.0]), "dynamo", "relion")
    err = angular_distance_deg(
        from_euler(back[["rot", "tilt", "psi"]].to_numpy()), from_euler(expected[None])
    )
    assert err[0] < 1e-6


def test_copick_matrix_is_reference_to_particle(tmp_path, rotations):
    import json

    table = pd.DataFrame({"x": np.arange(200.0), "y": 1.0, "z": 2.0})
    table[["rot", "tilt", "psi"]] = to_euler(rotations)
    write_particles(tmp_path / "p.json", table, 8.0, tomo_name="TS_1")
    doc = json.loads((tmp_path / "p.json").read_text())
    mats = np.array([p["transformation_"] for p in doc["points"]])[:, :3, :3]
    assert np.allclose(
        mats, relion_reference_to_particle(table[["rot", "tilt", "psi"]]), atol=1e-10
    )
    back = read_particles(tmp_path / "p.json")
    err = angular_distance_deg(from_euler(back[["rot", "tilt", "psi"]].to_numpy()), rotations)
    assert np.max(err) < 0.01


@pytest.mark.copick
def test_copick_library_reads_our_star_like_we_do(tmp_path, rotations):
    relion = pytest.importorskip("copick.util.relion")
    import starfile

    table = pd.DataFrame({"x": np.arange(200.0), "y": 1.0, "z": 2.0})
    table[["rot", "tilt", "psi"]] = to_euler(rotations)
    write_particles(tmp_path / "p.star", table, 8.0)
    mats, _ = relion.relion_rows_to_poses(starfile.read(tmp_path / "p.star"))
    assert np.allclose(mats, rotations.as_matrix(), atol=1e-6)


def test_helical_priors_turn_reference_z_onto_the_filament():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(100, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    tilt, psi = helical_priors(d)
    for rot in (0.0, 77.0):
        angles = np.stack([np.full(100, rot), tilt, psi], 1)
        z = relion_reference_to_particle(angles) @ np.array([0.0, 0.0, 1.0])
        assert np.allclose(z, d, atol=1e-9)


def test_filament_priors_written_to_star(tmp_path):
    import starfile

    d = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.6, 0.0, 0.8]])
    table = pd.DataFrame(
        {
            "x": [1.0, 2, 3],
            "y": 4.0,
            "z": 5.0,
            "filament_id": [0, 0, 1],
            "dir_x": d[:, 0],
            "dir_y": d[:, 1],
            "dir_z": d[:, 2],
        }
    )
    write_particles(tmp_path / "f.star", table, 10.0)
    block = starfile.read(tmp_path / "f.star")
    angles = np.stack([np.zeros(3), block["rlnAngleTiltPrior"], block["rlnAnglePsiPrior"]], 1)
    z = relion_reference_to_particle(angles) @ np.array([0.0, 0.0, 1.0])
    assert np.allclose(z, d, atol=1e-9)
    assert list(block["rlnHelicalTubeID"]) == [1, 1, 2]


@pytest.mark.parametrize(
    "name",
    ["chlamy_rubisco.star", "warp_particles_a.star", "warp_particles_b.star", "chlamy_ps2.star"],
)
def test_real_star_angles_read_as_eulerangles_says(shared_data, name):
    import starfile

    path = shared_data / "formats" / "star" / name
    raw = next(b for b in starfile.read(path, always_dict=True).values() if "rlnAngleRot" in b)
    table = read_particles(path)
    assert len(table) == len(raw)
    ours = from_euler(table[["rot", "tilt", "psi"]].to_numpy())
    theirs = Rotation.from_matrix(
        relion_reference_to_particle(
            raw[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float)
        )
    )
    assert np.median(angular_distance_deg(ours, theirs)) < 1e-6
    assert np.max(angular_distance_deg(ours, theirs)) < 1e-6


def test_real_particles_survive_every_format(tmp_path, shared_data):
    """The same real particles written as RELION, copick and Dynamo agree to 0.01°."""
    table = read_particles(shared_data / "formats" / "star" / "warp_particles_b.star")
    truth = from_euler(table[["rot", "tilt", "psi"]].to_numpy())
    for suffix in (".star", ".json", ".tbl", ".csv"):
        path = tmp_path / f"p{suffix}"
        write_particles(path, table, 1.96, (2000, 4096, 4096), tomo_name="t")
        back = read_particles(path, 1.96, (2000, 4096, 4096))
        err = angular_distance_deg(from_euler(back[["rot", "tilt", "psi"]].to_numpy()), truth)
        assert np.max(err) < 0.01, suffix
        moved = back[["x", "y", "z"]].to_numpy() - table[["x", "y", "z"]].to_numpy()
        assert np.max(np.abs(moved)) < 0.01


def test_average_at_star_priors_reproduces_the_reference(tmp_path):
    """End to end: particles turned by known rotations, angles written by eulerangles'
    RELION convention into a STAR file, read back and averaged at those angles without
    search, give back the reference."""
    from tomoscribe.simulate.subtomograms import rotate_and_shift, template_in_box
    from tomoscribe.simulate.template_library import load_template
    from tomoscribe.structure.align import finish_average, wedge_weighted_sum

    box = 40
    import scipy.ndimage

    # smooth enough that two trilinear resamplings (there and back) do not blur it
    reference = scipy.ndimage.gaussian_filter(
        template_in_box(load_template("4v5d"), 10.0, box), 1.0
    )
    truth = Rotation.random(12, random_state=5)
    particles = np.stack([rotate_and_shift(reference, r, (0, 0, 0)) for r in truth])
    passive = np.transpose(truth.as_matrix(), (0, 2, 1))  # RELION's (eulerangles') matrix
    angles = matrix2euler(passive, **RELION)
    import starfile

    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": np.arange(12.0),
                    "rlnCoordinateY": 0.0,
                    "rlnCoordinateZ": 0.0,
                    "rlnAngleRot": angles[:, 0],
                    "rlnAngleTilt": angles[:, 1],
                    "rlnAnglePsi": angles[:, 2],
                }
            )
        },
        tmp_path / "p.star",
    )
    table = read_particles(tmp_path / "p.star")
    priors = from_euler(table[["rot", "tilt", "psi"]].to_numpy())
    s, c = wedge_weighted_sum(torch.as_tensor(particles), priors, np.zeros((12, 3)), (-90.0, 90.0))
    average = finish_average(s, c).numpy()
    inner = np.s_[4:-4, 4:-4, 4:-4]
    cc = np.corrcoef(average[inner].ravel(), reference[inner].ravel())[0, 1]
    assert cc >= 0.99, cc
    # the old reading (scipy's intrinsic ZYZ taken as reference → particle) fails
    wrong = Rotation.from_euler("ZYZ", table[["rot", "tilt", "psi"]].to_numpy(), degrees=True)
    s, c = wedge_weighted_sum(torch.as_tensor(particles), wrong, np.zeros((12, 3)), (-90.0, 90.0))
    bad = np.corrcoef(finish_average(s, c).numpy()[inner].ravel(), reference[inner].ravel())[0, 1]
    assert bad < 0.9, bad


def test_average_command_at_star_priors_reproduces_the_reference(tmp_path):
    """The same through the command line: subtomograms turned by known rotations, their
    angles written by eulerangles into a STAR file with rlnImageName, then
    `tomoscribe average --use-priors --iterations 0` (no search) gives the reference."""
    import mrcfile
    import scipy.ndimage
    import starfile

    from tomoscribe.cli.app import main
    from tomoscribe.simulate.subtomograms import rotate_and_shift, template_in_box
    from tomoscribe.simulate.template_library import load_template

    reference = scipy.ndimage.gaussian_filter(template_in_box(load_template("4v5d"), 10.0, 40), 1.0)
    truth = Rotation.random(12, random_state=6)
    names = []
    for i, rotation in enumerate(truth):
        names.append(f"sub_{i}.mrc")
        with mrcfile.new(tmp_path / names[-1]) as mrc:
            mrc.set_data(rotate_and_shift(reference, rotation, (0, 0, 0)).astype(np.float32))
            mrc.voxel_size = 10.0
    angles = matrix2euler(np.transpose(truth.as_matrix(), (0, 2, 1)), **RELION)
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnCoordinateX": 50.0 + np.arange(12.0),
                    "rlnCoordinateY": 50.0,
                    "rlnCoordinateZ": 20.0,
                    "rlnImageName": names,
                    "rlnAngleRot": angles[:, 0],
                    "rlnAngleTilt": angles[:, 1],
                    "rlnAnglePsi": angles[:, 2],
                }
            )
        },
        tmp_path / "p.star",
    )
    assert (
        main(
            [
                "average",
                str(tmp_path / "p.star"),
                "-o",
                str(tmp_path / "avg"),
                "--use-priors",
                "--iterations",
                "0",
                "--tilt-range",
                "-90,90",
                "-q",
            ]
        )
        == 0
    )
    with mrcfile.open(tmp_path / "avg" / "average.mrc") as mrc:
        average = np.asarray(mrc.data)
    inner = np.s_[4:-4, 4:-4, 4:-4]
    cc = np.corrcoef(average[inner].ravel(), reference[inner].ravel())[0, 1]
    assert cc >= 0.99, cc
    refined = read_particles(tmp_path / "avg" / "refined.star")
    back = from_euler(refined[["rot", "tilt", "psi"]].to_numpy())
    assert np.degrees((back.inv() * truth).magnitude()).max() < 0.01  # written back as read


def test_a_dynamo_table_places_boxes_as_dynamo_does(tmp_path):
    """Dynamo counts voxels from 1 and places a template T of N³ at a table's (x, y, z)
    as V[x−N/2 : x+N/2−1, …] = T (MATLAB, inclusive; the Dynamo wiki's "Volume
    center"; RELION's Dynamo importer subtracts the same 1).  tomoscribe read x + dx as
    a 0-based index: every box from a Dynamo table was cut one voxel off in x, y and z.
    A table written with dynamotable (not by tomoscribe) places asymmetric templates by
    that rule; `extract` must cut each template back exactly, and `convert` to a STAR
    must give the 0-based voxels RELION reads."""
    import dynamotable
    import mrcfile
    import starfile

    from tomoscribe.cli.app import main
    from tomoscribe.structure.stackio import read_particle_set

    n, rng = 8, np.random.default_rng(5)
    volume = np.zeros((40, 48, 56), np.float32)
    places = np.array([[12, 15, 10], [30, 20, 25], [41, 33, 20]])  # x, y, z (1-based)
    templates = rng.normal(size=(len(places), n, n, n)).astype(np.float32)
    for (x, y, z), template in zip(places, templates, strict=True):
        # MATLAB's V[x-N/2 : x+N/2-1] in Python's 0-based, end-exclusive slices
        volume[z - n // 2 - 1 : z + n // 2 - 1, y - n // 2 - 1 : y + n // 2 - 1,
               x - n // 2 - 1 : x + n // 2 - 1] = template  # fmt: skip
    with mrcfile.new(tmp_path / "tomo.mrc") as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 10.0
    shifts = np.array([[0.0, 0, 0], [1, -1, 0], [0, 0, 2]])  # dx, dy, dz: x − dx is listed
    frame = pd.DataFrame(places - shifts, columns=["x", "y", "z"])
    frame[["dx", "dy", "dz"]] = shifts
    frame[["tdrot", "tilt", "narot"]] = 0.0
    dynamotable.write(frame, str(tmp_path / "p.tbl"))
    args = ["extract", str(tmp_path / "tomo.mrc"), str(tmp_path / "p.tbl"), "--box", str(n)]
    assert main([*args, "-o", str(tmp_path / "parts")]) == 0
    stack = np.asarray(read_particle_set(tmp_path / "parts" / "particles.star")[0], float)
    for cut, template in zip(stack, templates, strict=True):  # (extract normalises)
        assert np.corrcoef(cut.ravel(), template.ravel())[0, 1] > 0.999
    out = tmp_path / "p.star"
    assert main(["convert", str(tmp_path / "p.tbl"), "-o", str(out), "--voxel-size", "10"]) == 0
    written = starfile.read(out)
    assert np.allclose(written["rlnCoordinateX"], places[:, 0] - 1)
    assert np.allclose(written["rlnCoordinateZ"], places[:, 2] - 1)
    assert main(["convert", str(out), "-o", str(tmp_path / "q.tbl")]) == 0
    again = dynamotable.read(str(tmp_path / "q.tbl"))
    assert np.allclose(again[["x", "y", "z"]] + again[["dx", "dy", "dz"]].to_numpy(), places)


def test_a_dynamo_table_tomoscribe_0_1_wrote_is_said_to_be_a_voxel_off(tmp_path):
    """tomoscribe 0.1 wrote Dynamo tables 0-based; read by the 1-based rule such a
    table is one voxel off.  Its provenance record names the version, so it is said;
    tables written now say nothing."""
    import json
    import warnings

    from tomoscribe.cli.app import main
    from tomoscribe.outputs import sidecar_path

    pd.DataFrame({"x": [5.0], "y": [6.0], "z": [7.0]}).to_csv(tmp_path / "p.csv", index=False)
    table = tmp_path / "p.tbl"
    assert main(["convert", str(tmp_path / "p.csv"), "-o", str(table), "--voxel-size", "10"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_particles(table)[["x", "y", "z"]].to_numpy().tolist() == [[5.0, 6.0, 7.0]]
    record = json.loads(sidecar_path(table).read_text())
    sidecar_path(table).write_text(json.dumps(record | {"version": "0.1.0"}))
    with pytest.warns(UserWarning, match="tomoscribe 0.1.0, which wrote Dynamo positions"):
        read_particles(table)


def test_helical_priors_of_a_relion_file_are_read_as_the_filaments_directions(tmp_path, capsys):
    """A trial: `pick --filament` wrote rlnAngleTiltPrior/PsiPrior, and extract and
    convert (to CSV, Dynamo) dropped them without a word; they were never read.  The
    priors here are RELION's of directions eulerangles turns the reference's z onto."""
    from tomoscribe.cli.app import main
    from tomoscribe.io import write_volume
    from tomoscribe.volume import Volume

    rng = np.random.default_rng(5)
    tilt, psi = rng.uniform(5, 175, 6), rng.uniform(-180, 180, 6)
    expected = relion_reference_to_particle(np.stack([np.zeros(6), tilt, psi], 1))[:, :, 2]
    lines = [f"T {10 + 3 * k} 20 20 {k // 3 + 1} {tilt[k]:.6f} {psi[k]:.6f}" for k in range(6)]
    star = tmp_path / "f.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnHelicalTubeID\n_rlnAngleTiltPrior\n_rlnAnglePsiPrior\n"
        + "\n".join(lines)
        + "\n"
    )
    table = read_particles(star, 10.0)
    assert np.allclose(table[["dir_x", "dir_y", "dir_z"]].to_numpy(), expected, atol=1e-6)
    assert list(table["filament_id"]) == [0, 0, 0, 1, 1, 1]
    # written again (extract, convert to CSV and back) they are the same priors
    assert main(["convert", str(star), "-o", str(tmp_path / "f.csv"), "--voxel-size", "10"]) == 0
    assert main(["convert", str(tmp_path / "f.csv"), "-o", str(tmp_path / "g.star")]) == 0
    block = pd.read_csv(tmp_path / "f.csv")
    assert np.allclose(block[["dir_x", "dir_y", "dir_z"]].to_numpy(), expected, atol=1e-6)
    write_volume(tmp_path / "t.mrc", Volume(rng.normal(size=(40, 40, 40)).astype("f4"), 10.0))
    extract = ["extract", str(tmp_path / "t.mrc"), str(star), "--box", "8", "--tomo-name", "T"]
    assert main([*extract, "-o", str(tmp_path / "ex")]) == 0
    for written in (tmp_path / "g.star", tmp_path / "ex" / "particles.star"):
        import starfile

        rows = starfile.read(written, always_dict=True)["particles"]
        assert np.allclose(rows["rlnAngleTiltPrior"], tilt, atol=1e-4), written
        assert np.allclose((rows["rlnAnglePsiPrior"] - psi + 180) % 360 - 180, 0, atol=1e-4)
    # a format that cannot hold them says so
    capsys.readouterr()
    assert main(["convert", str(star), "-o", str(tmp_path / "f.tbl"), "--voxel-size", "10"]) == 0
    assert "dropped filament ids, filament directions" in capsys.readouterr().out


def test_helical_priors_of_pre_oriented_subtomograms_are_turned_into_the_tomogram(
    tmp_path, shared_data
):
    """RELION 5 keeps a pre-oriented subtomogram's angles and priors in its own frame
    (rlnTomoSubtomogramRot/Tilt/Psi): the direction in the tomogram is A_subtomogram
    times the priors' one.  Priors without tube ids (RELION 5's 90°, 0° on every
    pre-oriented subtomogram of a Class3D run) are not filament directions."""
    rng = np.random.default_rng(8)
    sub = rng.uniform(-180, 180, (4, 3))
    sub[:, 1] = rng.uniform(5, 175, 4)
    tilt, psi = rng.uniform(5, 175, 4), rng.uniform(-180, 180, 4)
    local = relion_reference_to_particle(np.stack([np.zeros(4), tilt, psi], 1))[:, :, 2]
    expected = np.einsum("nij,nj->ni", relion_reference_to_particle(sub), local)
    rows = [
        f"T {10 + k} 20 20 1 {sub[k, 0]:.6f} {sub[k, 1]:.6f} {sub[k, 2]:.6f} "
        f"{tilt[k]:.6f} {psi[k]:.6f}"
        for k in range(4)
    ]
    star = tmp_path / "s.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnHelicalTubeID\n_rlnTomoSubtomogramRot\n_rlnTomoSubtomogramTilt\n"
        "_rlnTomoSubtomogramPsi\n_rlnAngleTiltPrior\n_rlnAnglePsiPrior\n" + "\n".join(rows) + "\n"
    )
    table = read_particles(star, 10.0)
    assert np.allclose(table[["dir_x", "dir_y", "dir_z"]].to_numpy(), expected, atol=1e-6)
    project = shared_data / "formats" / "relion5_project"
    classes = read_particles(
        project / "Class3D/job_class3d/run_it025_data.star",
        tomograms=project / "Tomograms/job_tomo/tomograms.star",
    )
    assert len(classes) == 10 and "dir_x" not in classes


def test_a_row_without_helical_priors_leaves_the_file_readable(tmp_path):
    """Review: a blank (nan) prior beside rlnHelicalTubeID made the whole file unreadable
    (priors are extras: that row's direction is unknown)."""
    star = tmp_path / "p.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnHelicalTubeID\n_rlnAngleTiltPrior\n_rlnAnglePsiPrior\n"
        "T 10 20 20 1 90 0\nT 12 20 20 1 nan nan\n"
    )
    table = read_particles(star, 10.0)
    assert np.allclose(table.loc[0, ["dir_x", "dir_y", "dir_z"]].to_numpy(float), [-1, 0, 0])
    assert table.loc[1, ["dir_x", "dir_y", "dir_z"]].isna().all()


def test_directions_without_filament_ids_are_said_to_be_dropped_in_star(tmp_path, capsys):
    """Review: a CSV's directions without filament ids went into a STAR file's priors,
    which are read back as directions only beside tube ids: lost on the way back."""
    from tomoscribe.cli.app import main

    (tmp_path / "d.csv").write_text("x,y,z,dir_x,dir_y,dir_z,tomo_name\n1,2,3,0,0,1,T\n")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "d.csv"),
                "-o",
                str(tmp_path / "d.star"),
                "--voxel-size",
                "10",
            ]
        )
        == 0
    )
    assert "dropped filament directions" in capsys.readouterr().out
    import starfile

    assert (
        "rlnAngleTiltPrior" not in starfile.read(tmp_path / "d.star", always_dict=True)["particles"]
    )
