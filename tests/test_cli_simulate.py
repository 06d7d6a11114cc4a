import json
import warnings

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import entries
from tomoscribe.cli.app import main
from tomoscribe.io import read_volume
from tomoscribe.io.particles import read_particles
from tomoscribe.simulate.subtomograms import load_dataset


@pytest.mark.parametrize("command", ["structure", "cell", "subtomograms"])
def test_simulate_commands_have_help(command, capsys):
    assert main(["simulate", command, "--help"]) == 0


def test_simulate_cell_writes_a_consistent_set(tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                "cell",
                "-o",
                str(tmp_path),
                "--size",
                "96,96,48",
                "--templates",
                "1bxn=20",
                "--tilt-step",
                "5",
            ]
        )
        == 0
    )
    tomogram = read_volume(tmp_path / "tomogram.mrc")
    labels = read_volume(tmp_path / "labels.mrc")
    assert tomogram.shape == labels.shape == (48, 96, 96)
    assert tomogram.voxel_size_A == (10.0,) * 3
    angles = np.loadtxt(tmp_path / "tilt_series.tlt")
    assert read_volume(tmp_path / "tilt_series.mrc").shape[0] == len(angles) == 25
    with mrcfile.open(tmp_path / "tilt_series.mrc") as mrc:
        assert mrc.is_image_stack()  # space group 0, as IMOD marks a tilt series
    particles = starfile.read(tmp_path / "particles.star")
    assert len(particles) > 0
    z, y, x = (particles[f"rlnCoordinate{a}"].round().astype(int).to_numpy() for a in "ZYX")
    # most particle centres lie on voxels labelled as their class (hollow ones may not)
    hits = labels.load(np.uint8)[z, y, x] == particles["rlnClassNumber"].to_numpy()
    assert hits.mean() >= 0.8
    # RELION 5 reads only the centred Å (as the shared project's Picks file holds them):
    # Å from the tomogram's centre, pixel = centred / pixel size + size / 2
    for axis, size in zip("XYZ", (96, 96, 48)):
        centred = particles[f"rlnCenteredCoordinate{axis}Angst"] / 10.0 + size / 2
        assert np.allclose(centred, particles[f"rlnCoordinate{axis}"], atol=1e-4)
    # the particle file says what its coordinates are in and the tilt range, as read by
    # the particle readers (RELION 3's detector pixel size / magnification too)
    table = read_particles(tmp_path / "particles.star")
    assert table["voxel_size_A"].iloc[0] == pytest.approx(10.0)
    assert (table["tilt_min_deg"].iloc[0], table["tilt_max_deg"].iloc[0]) == (
        angles.min(),
        angles.max(),
    )
    assert (particles["rlnDetectorPixelSize"] * 1e4 / particles["rlnMagnification"] == 10.0).all()
    # The label map's legend names each class (a trial's `pick labels.mrc -f ribosome`
    # took every nonzero label, membranes too, for the ribosome: 106 picks for 3).
    legend = json.loads((tmp_path / "labels.mrc.legend.json").read_text())
    assert legend["10"]["name"] == "1bxn" and legend["1"]["name"] == "membrane"
    assert (
        main(["pick", str(tmp_path / "labels.mrc"), "-f", "1bxn", "-o", str(tmp_path / "p.csv")])
        == 0
    )
    picked = pd.read_csv(tmp_path / "p.csv")
    assert len(picked) == (particles["rlnClassNumber"] == 10).sum()
    # The truth maps record the tilt range, so commands on them need not be told it
    # (a trial's `pick labels.mrc --filament` said "no input records one").
    from tomoscribe.io.provenance import tilt_range_for

    for name in ("labels.mrc", "instances.mrc", "density.mrc"):
        tilt = tilt_range_for([tmp_path / name])
        assert tilt.source == "recorded" and tilt.deg == (angles.min(), angles.max())
    # extract of picks made on it takes the voltage and Cs it was imaged with (a trial:
    # "no input file gives them", though the tomogram's record held them)
    imaging = json.loads((tmp_path / "tomogram.mrc.json").read_text())["parameters"]["imaging"]
    extract = ["extract", str(tmp_path / "tomogram.mrc"), str(tmp_path / "p.csv")]
    assert main([*extract, "--box", "16", "-o", str(tmp_path / "ex")]) == 0
    assert "--voltage" not in capsys.readouterr().err
    optics = starfile.read(tmp_path / "ex" / "particles.star", always_dict=True)["optics"]
    assert optics["rlnVoltage"].tolist() == [imaging["voltage_kV"]]
    assert optics["rlnSphericalAberration"].tolist() == [imaging["cs_mm"]]
    assert optics["rlnAmplitudeContrast"].tolist() == [imaging["amplitude_contrast"]]


def test_simulate_cell_refuses_a_users_file_before_writing_anything(tmp_path, capsys):
    """A user's tomogram.mrc in the folder stopped the run only after density.mrc,
    labels.mrc and instances.mrc had been replaced with another seed's."""
    out = tmp_path / "cell"
    out.mkdir()
    (out / "tomogram.mrc").write_bytes(b"the user's own")
    args = ["simulate", "cell", "-o", str(out), "--size", "64,64,32", "--templates", "1bxn=5"]
    assert main(args) == 2
    assert "tomogram.mrc" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["tomogram.mrc"]


def test_simulate_subtomograms_and_structure(tmp_path, shared_data):
    assert (
        main(
            [
                "simulate",
                "subtomograms",
                "-o",
                str(tmp_path / "d.zarr"),
                "--n",
                "2",
                "--structures",
                "1bxn,1s3x",
                "--box",
                "32",
            ]
        )
        == 0
    )
    data = load_dataset(tmp_path / "d.zarr")
    assert data["volumes"].shape == (6, 32, 32, 32)
    assert (
        main(
            [
                "simulate",
                "structure",
                str(shared_data / "structures" / "1s3x.pdb"),
                "-o",
                str(tmp_path / "s.mrc"),
                "--voxel-size",
                "5",
                "--resolution",
                "10",
            ]
        )
        == 0
    )
    assert read_volume(tmp_path / "s.mrc").voxel_size_A == (5.0,) * 3
    # a map file is a structure too, named by its stem, as simulate micrographs takes it
    # (a trial found one command taking map files and the other refusing them)
    args = ["simulate", "subtomograms", "-o", str(tmp_path / "m.zarr"), "--n", "2"]
    assert main([*args, "--structures", f"1bxn,{tmp_path / 's.mrc'}", "--box", "32"]) == 0
    data = load_dataset(tmp_path / "m.zarr")
    assert list(data["class_names"])[:2] == ["1bxn", "s"] and data["volumes"].shape[0] == 6
    record = json.loads((tmp_path / "m.zarr.json").read_text())
    assert str((tmp_path / "s.mrc").resolve()) in [i["path"] for i in record["inputs"]]


def test_simulate_bad_inputs_exit_2(tmp_path, capsys):
    assert main(["simulate", "cell", "-o", str(tmp_path), "--max-tilt", "95"]) == 2
    assert main(["simulate", "cell", "-o", str(tmp_path), "--snr", "-1"]) == 2
    assert (
        main(
            [
                "simulate",
                "subtomograms",
                "-o",
                str(tmp_path / "x.zarr"),
                "--structures",
                "nonexistent",
            ]
        )
        == 2
    )
    # a structure larger than the box is named (the trial's was one of two)
    capsys.readouterr()
    args = ["simulate", "subtomograms", "-o", str(tmp_path / "y.zarr"), "--box", "16"]
    assert main([*args, "--structures", "1bxn,3j9i"]) == 2
    assert "the structure 3j9i spans" in capsys.readouterr().err
    (tmp_path / "bad.pdb").write_text("garbage\n")
    assert (
        main(["simulate", "structure", str(tmp_path / "bad.pdb"), "-o", str(tmp_path / "b.mrc")])
        == 2
    )
    assert sorted(p.name for p in entries(tmp_path)) == ["bad.pdb"]


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--defocus", "nan"], "--defocus must be positive"),  # wrote NaN particles, exit 0
        (["--defocus", "1,-1"], "--defocus must be positive"),  # accepted
        (["--pixel-size", "0"], "--pixel-size must be a positive"),  # ZeroDivisionError
        (["--box", "100000"], "GiB of memory"),  # numpy's MemoryError after minutes
        (["--junk", "2"], "--junk must be at least 0"),  # named `junk_fraction`
    ],
)
def test_simulate_particles2d_refuses_bad_values_in_one_sentence(tmp_path, capsys, option, said):
    """A new user's trial: these were written as NaN stacks, accepted, or ended in a
    traceback; each is one sentence naming the flag, exit 2, nothing written."""
    out = tmp_path / "p2"
    assert (
        main(["simulate", "particles2d", "-o", str(out), "--n", "20", "--box", "32", *option]) == 2
    )
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--size", "100000,100000,1000"], "GiB of memory"),
        (["--templates", "1bxn=nan"], "finite number"),
        (["--gold", "-5"], "--gold"),
        (["--seed", "-1"], "--seed"),
        (["--size", "96,96,48", "--templates", "1bxn=1e9"], "fit beside"),  # ran for ever
        (["--size", "64,64,32", "--microtubules", "1000"], "ask for at most 2"),  # minutes
    ],
)
def test_simulate_cell_refuses_impossible_values_in_one_sentence(tmp_path, capsys, option, words):
    # a trial: 36 TiB asked of numpy, NaN µM and a seed of −1 ended in tracebacks
    assert main(["simulate", "cell", "-o", str(tmp_path / "c"), *option]) == 2
    said = capsys.readouterr().err.strip().splitlines()  # progress lines may come first
    assert said[-1].startswith("error: ") and words in said[-1]
    assert not any("Traceback" in line for line in said)
    assert not (tmp_path / "c").exists()


def test_simulate_cell_bends_filaments_no_tighter_than_they_break(tmp_path, monkeypatch):
    """`simulate cell` bent microtubules to radii of tens of nm (the phantom's default
    curves), 10–20 times tighter than microtubules survive in cells, and kept them about
    the mid-plane, where they seldom crossed: a tracer measured on them was measured on
    filaments that do not exist.  Now they bend as in cells and lie at depths spread
    over the ice (thicker than these 64 slices), so that they can cross."""
    from test_cell import assert_bends_within_limits
    from tomoscribe.simulate import workflow
    from tomoscribe.simulate.cell import make_cell

    given = []

    def keep_params(out_dir, params, imaging, say, tomo_name=None):
        given.append(params)
        raise SystemExit(0)  # the cell's description is what is tested, not its imaging

    monkeypatch.setattr(workflow, "simulate_cell_files", keep_params)
    args = ["simulate", "cell", "-o", str(tmp_path / "c"), "--size", "320,320,64"]
    with pytest.raises(SystemExit):
        main([*args, "--microtubules", "3", "--actin", "4", "--seed", "2"])
    *_, axes = make_cell(given[0], filament_axes=True)
    assert {r["class"] for r in axes.values()} == {"microtubule", "actin"}
    assert_bends_within_limits(axes)
    for record in axes.values():  # 10 Å voxels: nm = voxels
        radius = {"microtubule": 12.5, "actin": 3.5}[record["class"]]
        depth = record["axis_zyx"][:, 0]
        assert depth.min() >= radius - 0.01 and depth.max() <= 64 - radius + 0.01
    depths = [np.median(r["axis_zyx"][:, 0]) for r in axes.values()]
    assert np.ptp(depths) > 0.4 * 64  # about the mid-plane they lay within 0.3–0.7


def test_simulate_cell_says_and_records_how_many_vesicles_found_room(tmp_path, capsys):
    """A trial asked for 5 vesicles in a 128 × 128 × 48 cell and got 2 (instances.mrc:
    the plasma membrane and 2 shells), the record saying 5.  Said now, and the record
    holds what was placed, as the instance map does."""
    args = ["simulate", "cell", "-o", str(tmp_path), "--size", "128,128,48", "--vesicles", "5"]
    assert main([*args, "--seed", "4"]) == 0
    placed = json.loads((tmp_path / "tomogram.mrc.json").read_text())["parameters"]["placed"]
    assert placed["vesicles"] < 5
    assert f"only {placed['vesicles']} of the 5 vesicles" in capsys.readouterr().err
    labels = read_volume(tmp_path / "labels.mrc").load(np.uint8)
    instances = read_volume(tmp_path / "instances.mrc").load(np.int32)
    shells = set(np.unique(instances[labels == 1]).tolist()) - {0}
    assert len(shells) == placed["vesicles"] + 1  # and the plasma membrane


def test_simulate_cell_says_when_a_concentration_puts_no_particle_in_the_volume(tmp_path, capsys):
    """A trial: 0.06 µM in 160 × 160 × 64 at 10 Å wrote "0 particles" without a word
    (one particle is about 1 µM there)."""
    args = ["simulate", "cell", "--size", "96,96,48"]
    assert main([*args, "-o", str(tmp_path / "a"), "--templates", "3j9i=0.06"]) == 0
    err = capsys.readouterr().err
    assert "0.06 µM of 3j9i puts no particle in this volume (one particle is 3.8 µM" in err
    assert main([*args, "-o", str(tmp_path / "b"), "--templates", "3j9i=8"]) == 0
    assert "puts no particle" not in capsys.readouterr().err


def test_two_simulated_cells_keep_their_picks_apart(tmp_path, capsys):
    """A trial: every simulated tomogram was named 'tomogram', so the picks of two
    simulations merged into one file were all cut from the first cell's tomogram,
    unsaid.  Each is named after its folder (or --tomo-name), and the merged file's
    other cell is left out by name."""
    small = ["--size", "64,64,32", "--templates", "1bxn=40", "--tilt-step", "10", "-q"]
    for name in ("cellA", "cellB"):
        assert main(["simulate", "cell", "-o", str(tmp_path / name), *small]) == 0
    assert "named cellB" in capsys.readouterr().out
    tables = [starfile.read(tmp_path / n / "particles.star") for n in ("cellA", "cellB")]
    assert [t["rlnTomoName"].unique().tolist() for t in tables] == [["cellA"], ["cellB"]]
    assert min(len(t) for t in tables) > 0
    starfile.write(pd.concat(tables, ignore_index=True), tmp_path / "merged.star")
    out = tmp_path / "ex"
    args = ["extract", str(tmp_path / "cellA" / "tomogram.mrc"), str(tmp_path / "merged.star")]
    assert main([*args, "--box", "16", "--edge", "pad", "-o", str(out)]) == 0
    assert "particles of other tomograms (cellB), left out" in capsys.readouterr().err
    written = starfile.read(out / "particles.star", always_dict=True)["particles"]
    assert len(written) == len(tables[0])
    # picks made on a map of the cell carry its name on
    labels = tmp_path / "cellB" / "labels.mrc"
    assert main(["pick", str(labels), "-f", "1bxn", "-o", str(tmp_path / "p.star")]) == 0
    assert starfile.read(tmp_path / "p.star")["rlnTomoName"].unique().tolist() == ["cellB"]
    # a name STAR cannot hold is refused before anything is written
    bad = ["simulate", "cell", "-o", str(tmp_path / "c"), *small, "--tomo-name", "my cell"]
    assert main(bad) == 2
    assert "one word without blanks" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_structure_map_without_a_voxel_size_is_told_to_set_it_in_its_header(tmp_path, capsys):
    """A trial: `simulate subtomograms --structures x,novs.mrc --voxel-size 10` was told
    to pass --voxel-size, which it had: that is the dataset's, not the map's."""
    with mrcfile.new(tmp_path / "novs.mrc") as mrc:
        mrc.set_data(np.zeros((16, 16, 16), np.float32))
        mrc.header.cella = (0.0, 0.0, 0.0)
    args = ["simulate", "subtomograms", "-o", str(tmp_path / "s.zarr"), "--n", "2"]
    assert main([*args, "--structures", f"1bxn,{tmp_path / 'novs.mrc'}", "--box", "24"]) == 2
    said = capsys.readouterr().err
    assert "novs.mrc records no voxel size in its header" in said and "pass --voxel" not in said
    assert not (tmp_path / "s.zarr").exists()


def test_a_structure_maps_background_is_taken_off(tmp_path, capsys, shared_data):
    """A trial: EMD-3197 (edges 0.97, peak 5.6) was placed whole, its box a sharp-edged
    cube every classifier told apart (accuracy 1.00 after 2 epochs).  A map's background
    (the median of its edge voxels) is taken off, said; a map about 0 is left as it is."""
    from tomoscribe.io import read_structure_map

    emdb = shared_data / "formats" / "emdb" / "EMD-3197.map"
    with pytest.warns(UserWarning, match="EMD-3197.map has a background of"):
        taken = read_structure_map(emdb, "a structure").load(np.float32)
    edges = np.concatenate([taken[[0, -1]].ravel(), taken[:, [0, -1]].ravel()])
    assert abs(np.median(edges)) < 0.05 and taken.max() > 3.0  # was 1.09
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a map about 0: nothing said, nothing changed
        plain = read_structure_map(shared_data / "maps_10A" / "1bxn.mrc", "a structure")
        assert np.array_equal(
            plain.load(np.float32),
            read_volume(shared_data / "maps_10A" / "1bxn.mrc").load(np.float32),
        )
    args = ["simulate", "subtomograms", "-o", str(tmp_path / "s.zarr"), "--n", "2", "--box", "28"]
    assert main([*args, "--structures", f"1bxn,{emdb}", "--voxel-size", "10", "--no-empty"]) == 0
    assert "has a background of" in capsys.readouterr().err


def test_simulate_cell_places_a_users_map_file_as_a_template(tmp_path, capsys):
    """A trial: simulate cell refused a map file as 'no template', after building the
    membranes, where simulate micrographs and subtomograms take one.  A map drawn here
    (an off-centre pair of balls at 8 Å) is placed, named by its file's stem."""
    zz, yy, xx = np.mgrid[:24, :24, :24] - 12.0
    pair = ((zz**2 + yy**2 + (xx - 3) ** 2) < 16) | ((zz**2 + yy**2 + (xx + 4) ** 2) < 9)
    with mrcfile.new(tmp_path / "my.pair.v2.mrc") as mrc:
        mrc.set_data(pair.astype(np.float32))
        mrc.voxel_size = 8.0
    out = tmp_path / "cell"
    args = ["simulate", "cell", "--size", "96,96,48", "--tilt-step", "10", "-q"]
    given = f"{tmp_path / 'my.pair.v2.mrc'}=40,3j9i=4"
    assert main([*args, "-o", str(out), "--templates", given]) == 0
    particles = starfile.read(out / "particles.star")
    legend = json.loads((out / "labels.mrc.legend.json").read_text())
    assert legend["10"]["name"] == "my.pair.v2" and legend["11"]["name"] == "3j9i"
    mine = particles[particles["tsClassName"] == "my.pair.v2"]
    assert len(mine) >= 5 and (mine["rlnClassNumber"] == 10).all()
    labels = read_volume(out / "labels.mrc").load(np.uint8)
    z, y, x = (mine[f"rlnCoordinate{a}"].round().astype(int).to_numpy() for a in "ZYX")
    # the box centre of the balls is the particle's (between them, about a voxel off)
    near = [labels[a - 1 : a + 2, b - 1 : b + 2, c - 1 : c + 2] for a, b, c in zip(z, y, x)]
    assert np.mean([(box == 10).any() for box in near]) >= 0.8
    assert main(["info", str(out / "particles.star")]) == 0
    assert "10 my.pair.v2 (" in capsys.readouterr().out
    # a missing map, or two classes of one name, refused before anything is written
    for templates, said in (
        (f"{tmp_path / 'gone.mrc'}=10", "gone.mrc does not exist"),
        (f"{tmp_path / 'my.pair.v2.mrc'}=10,{tmp_path / 'x' / 'my.pair.v2.mrc'}=5", "twice"),
    ):
        capsys.readouterr()
        assert main([*args, "-o", str(tmp_path / "no"), "--templates", templates]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
        assert not (tmp_path / "no").exists()
