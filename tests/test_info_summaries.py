"""``tomoscribe info`` on particle lists and subtomogram datasets (a trial was told to
name a RELION STAR file and an IMOD model .mrc)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from tomoscribe.cli.app import main


def _info(path, capsys) -> tuple[int, str, str]:
    code = main(["info", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_describes_a_star_file_as_relion_wrote_it(tmp_path, capsys):
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [2.5], "rlnImageSize": [32]}
    )
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_1", "TS_1", "TS_2"],
            "rlnCoordinateX": [10.0, 30.0, 50.0],
            "rlnCoordinateY": [20.0, 40.0, 60.0],
            "rlnCoordinateZ": [5.0, 6.0, 7.0],
            "rlnAngleRot": [1.0, 2.0, 3.0],
            "rlnAngleTilt": [4.0, 5.0, 6.0],
            "rlnAnglePsi": [7.0, 8.0, 9.0],
            "rlnClassNumber": [1, 2, 2],
            "rlnRandomSubset": [1, 2, 1],
            "rlnOpticsGroup": [1, 1, 1],
        }
    )
    starfile.write({"optics": optics, "particles": particles}, tmp_path / "p.star")
    code, out, err = _info(tmp_path / "p.star", capsys)
    assert code == 0, err
    assert "particles: 3 in 2 tomogram(s): TS_1 (2), TS_2 (1)" in out
    assert "coordinates: pixels of 2.5 Å" in out
    assert "x, y, z from 10.0, 20.0, 5.0 to 50.0, 60.0, 7.0 pixels" in out
    assert "orientations: rot, tilt, psi" in out
    assert "classes: 1 (1), 2 (2)" in out and "half sets: 1 (2), 2 (1)" in out
    (tmp_path / "c.csv").write_text("x,y,z\n1,2,3\n")
    code, out, _ = _info(tmp_path / "c.csv", capsys)
    assert code == 0 and "particles: 1 (no tomogram names)" in out
    assert "their size is not recorded" in out and "orientations: none" in out


def test_info_on_relion5_centred_picks_and_other_star_files(shared_data, capsys):
    project = shared_data / "formats" / "relion5_project"
    code, out, _ = _info(project / "Refine3D" / "job_refine" / "run_it050_data.star", capsys)
    block = starfile.read(
        project / "Refine3D" / "job_refine" / "run_it050_data.star", always_dict=True
    )["particles"]
    counts = block["rlnTomoName"].value_counts().sort_index()
    listed = ", ".join(f"{name} ({n})" for name, n in counts.items())
    assert code == 0 and f"particles: {len(block)} in {len(counts)} tomogram(s): {listed}" in out
    assert "Å from each tomogram's centre (RELION 5)" in out
    code, out, err = _info(shared_data / "formats" / "star" / "postprocess.star", capsys)
    assert code == 2 and not out and "no loop with particle coordinates" in err
    assert len(err.strip().splitlines()) == 1


def test_info_on_relion5_classes_half_sets_and_tomograms_star(shared_data, capsys):
    """A trial: info left out a Class3D file's classes and half sets (shown for the same
    rows converted to CSV) and refused tomograms.star (exit 2)."""
    project = shared_data / "formats" / "relion5_project"
    classes = project / "Class3D" / "job_class3d" / "run_it025_data.star"
    block = starfile.read(classes, always_dict=True)["particles"]
    code, out, _ = _info(classes, capsys)
    counts = block["rlnClassNumber"].value_counts().sort_index()
    assert code == 0 and "classes: " + ", ".join(f"{k} ({n})" for k, n in counts.items()) in out
    halves = block["rlnRandomSubset"].value_counts().sort_index()
    assert "half sets: " + ", ".join(f"{k} ({n})" for k, n in halves.items()) in out
    assert "pre-oriented by rlnTomoSubtomogramRot/Tilt/Psi" in out
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    code, out, err = _info(tomograms, capsys)
    assert code == 0, err
    rows = starfile.read(tomograms, always_dict=True)["global"]
    assert f"tomograms: {len(rows)}" in out
    for row in rows.itertuples():
        series = starfile.read(project / row.rlnTomoTiltSeriesStarFile, always_dict=True)
        tilts = next(iter(series.values()))["rlnTomoNominalStageTiltAngle"]
        size = f"{row.rlnTomoSizeX:g} × {row.rlnTomoSizeY:g} × {row.rlnTomoSizeZ:g}"
        assert (
            f"{row.rlnTomoName}: {size} pixels of {row.rlnTomoTiltSeriesPixelSize:g} Å "
            f"(tilt series), binning {row.rlnTomoTomogramBinning:g}; tilts "
            f"{tilts.min():g}…{tilts.max():g}°, {row.rlnVoltage:g} kV, "
            f"Cs {row.rlnSphericalAberration:g} mm"
        ) in out


def test_info_describes_a_subtomogram_dataset(tmp_path, capsys):
    from tomoscribe.simulate.subtomograms import save_dataset

    labels = np.array([0, 0, 1, 2, 2, 2])
    dataset = {
        "volumes": np.zeros((6, 8, 8, 8), np.float32),
        "labels": labels,
        "class_names": ["a", "b", "empty"],
        "params": {"voxel_size_A": 9.2, "max_tilt_deg": 45.0},
    }
    save_dataset(tmp_path / "d.zarr", dataset)
    code, out, err = _info(tmp_path / "d.zarr", capsys)
    assert code == 0, err
    assert "subtomograms: 6 of 8 × 8 × 8 voxels" in out and "voxel size: 9.2 Å" in out
    assert "classes: a (2), b (1), empty (3)" in out and "tilt range: -45 to 45°" in out


@pytest.mark.parametrize("suffix", [".star", ".mod", ".tbl"])
def test_info_on_a_missing_particle_file_is_one_sentence(tmp_path, capsys, suffix):
    code, out, err = _info(tmp_path / f"none{suffix}", capsys)
    assert code == 2 and not out and "does not exist" in err


def test_info_on_copick_picks_takes_the_voxel_size_and_names_a_record(tmp_path, capsys):
    """Review: copick's own files record no voxel_spacing and info passed no
    --voxel-size on; a tomoscribe provenance record (NAME.json) was read as picks."""
    import json

    document = {  # as copick writes it: locations in Å, no voxel spacing
        "pickable_object_name": "ribosome",
        "user_id": "alice",
        "session_id": "1",
        "run_name": "TS_1",
        "points": [{"location": {"x": 100.0, "y": 50.0, "z": 30.0}}],
    }
    (tmp_path / "p.json").write_text(json.dumps(document))
    code = main(["info", str(tmp_path / "p.json"), "--voxel-size", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "x, y, z from 10.0, 5.0, 3.0 to 10.0, 5.0, 3.0 pixels" in out
    (tmp_path / "c.csv").write_text("x,y,z\n1,2,3\n")
    assert (
        main(
            [
                "convert",
                str(tmp_path / "c.csv"),
                "-o",
                str(tmp_path / "c.star"),
                "--voxel-size",
                "10",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out, err = _info(tmp_path / "c.star.json", capsys)
    assert code == 2 and not out and "record of how c.star was made (step 'convert')" in err


def test_the_suffixes_info_takes_for_particle_lists_are_the_formats():
    from tomoscribe.io.formats import formats
    from tomoscribe.io.summaries import PARTICLE_SUFFIXES

    assert sorted(PARTICLE_SUFFIXES) == sorted(s for f in formats() for s in f.suffixes)


def test_info_describes_copick_picks_without_a_voxel_spacing(tmp_path, capsys):
    """Trial: info refused a copick picks file whose voxel_spacing is null (copick
    writes them so), which extract reads with the tomogram's voxel size."""
    import json

    from tomoscribe.cli.app import main

    picks = {"pickable_object_name": "ribosome", "user_id": "u", "session_id": "1",
             "run_name": "TS_01", "voxel_spacing": None, "unit": "angstrom",
             "points": [{"location": {"x": 280.0, "y": 700.0, "z": 200.0}}]}  # fmt: skip
    path = tmp_path / "ribosome.json"
    path.write_text(json.dumps(picks))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "particles: 1" in out and "positions: Å (copick)" in out


def test_info_counts_the_filaments_of_helical_segments(tmp_path, capsys):
    """info said nothing of filaments: a STAR file of helical segments (rlnHelicalTubeID
    with tilt and psi priors) showed as particles only.  It now counts the filaments,
    their segments and how many have a direction."""
    star = tmp_path / "segments.star"
    star.write_text(
        "data_particles\n\nloop_\n_rlnTomoName\n_rlnCoordinateX\n_rlnCoordinateY\n"
        "_rlnCoordinateZ\n_rlnHelicalTubeID\n_rlnAngleTiltPrior\n_rlnAnglePsiPrior\n"
        "T 10 20 20 1 90 0\nT 14 20 20 1 90 0\nT 18 20 20 1 nan nan\n"
        "T 30 40 20 2 90 90\nT 30 44 20 2 90 90\nU 5 5 5 1 90 0\n"
    )
    assert main(["info", str(star), "--voxel-size", "10"]) == 0
    # RELION counts tube ids in each tomogram: U's tube 1 is a third filament (a review)
    assert "filaments: 3 (1 to 3 segments each; directions for 5 of 6)" in capsys.readouterr().out


def test_info_describes_pick_s_filament_table_and_classify_s_feature_stores(tmp_path, capsys):
    """A trial: info refused `pick --filament`'s filament table ("needs columns x, y, z")
    and `classify features`/`cluster` stores ("a zarr group without OME-NGFF
    'multiscales' metadata").  Both are described now, with figures from the files."""
    from tomoscribe.classify.featurefile import save_features
    from tomoscribe.io import write_volume
    from tomoscribe.simulate.tubes import straight, tube_phantom
    from tomoscribe.volume import Volume

    _, mask, _ = tube_phantom(
        (32, 96, 96), [straight((16, 48, 48), 20, 0, 70)], 3.5, False, 60, 1.5
    )
    write_volume(tmp_path / "actin.mrc", Volume(mask.astype(np.uint8), 10.0))
    pick = ["pick", str(tmp_path / "actin.mrc"), "-f", "actin", "--filament"]
    assert main([*pick, "--value", "1", "-o", str(tmp_path / "a.csv")]) == 0
    table = pd.read_csv(tmp_path / "a_filaments.csv")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "a_filaments.csv")]) == 0
    said = capsys.readouterr().out
    assert f"filaments: {len(table)}" in said
    assert f"median {np.median(table['length_nm']):.1f} nm" in said
    rng = np.random.default_rng(0)
    record = {"source": "rif", "dataset": "d.zarr", "class_names": ["a", "b"],
              "clusters": {"k": 3, "scores": {"purity": 0.875, "adjusted_rand": 0.5}}}  # fmt: skip
    arrays = {"features": rng.normal(size=(8, 5)), "labels": np.array([0] * 5 + [1] * 3),
              "clusters": np.array([0, 0, 1, 1, 1, 2, 2, 2])}  # fmt: skip
    save_features(tmp_path / "c.zarr", arrays, record)
    assert main(["info", str(tmp_path / "c.zarr")]) == 0
    said = capsys.readouterr().out
    assert "8, 5 features each, from rotation-invariant features" in said
    assert "true classes: 5 a, 3 b" in said and "clusters: 3 (sizes 2 to 3" in said
    assert "purity 0.875" in said
