"""Image names in particle STAR files as RELION reads them: from the project folder.

RELION opens ``rlnImageName`` and ``rlnCtfImage`` from the folder it runs in, and its
own jobs name files from there (the RELION 5 project in ../shared/data/formats:
``Refine3D/job_refine/run_it050_data.star`` names
``Extract/job_extract/Subtomograms/TS_01/1_data.mrc``).  extract's particles.star
named its subtomograms from its own folder, so relion_refine run in the project folder
found none of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from tomoscribe.cli.app import main
from tomoscribe.io.particles import read_particles
from tomoscribe.structure.stackio import read_particle_set

REFINE = Path("formats/relion5_project/Refine3D/job_refine/run_it050_data.star")


def _make_project(folder: Path) -> Path:
    """A small tomogram (noise, 10 Å voxels) and two picks in ``folder``."""
    with mrcfile.new(folder / "tomo.mrc") as mrc:
        mrc.set_data(np.random.default_rng(1).normal(size=(30, 40, 40)).astype(np.float32))
        mrc.voxel_size = 10.0
    (folder / "picks.csv").write_text("x,y,z\n20,20,15\n14,22,14\n")
    return folder


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project folder with a small tomogram and picks, made the working folder."""
    monkeypatch.chdir(_make_project(tmp_path))
    return tmp_path


def _extract(out: str, tilt_range: str = "-60,60") -> int:
    args = ["extract", "tomo.mrc", "picks.csv", "--box", "16", "-o", out]
    return main([*args, "--voltage", "300", "--cs", "2.7", "--tilt-range", tilt_range])


def test_extract_names_its_files_from_the_project_folder_as_relion_reads_them(project, capsys):
    assert _extract("Extract/job001") == 0
    said = capsys.readouterr().out
    assert f"particles.star names them from {project}, as RELION reads" in said
    rows = starfile.read(project / "Extract/job001/particles.star", always_dict=True)
    rows = rows["particles"]
    assert list(rows["rlnImageName"]) == [
        "Extract/job001/subtomo_000001.mrc",
        "Extract/job001/subtomo_000002.mrc",
    ]
    assert set(rows["rlnCtfImage"]) == {"Extract/job001/wedge.mrc"}
    # what relion_refine does with them, run in the project folder: open each as named
    for name in [*rows["rlnImageName"], *rows["rlnCtfImage"]]:
        with mrcfile.open(name) as mrc:
            assert mrc.data.shape[0] == 16


def test_the_folder_reads_from_inside_it_and_after_a_move(project, monkeypatch):
    assert _extract("Extract/job001") == 0
    stack, _, _ = read_particle_set("Extract/job001/particles.star")
    # run from the folder itself: the names are found from the project folder above it
    monkeypatch.chdir(project / "Extract" / "job001")
    again, table, _ = read_particle_set("particles.star")
    assert np.array_equal(again, stack)
    assert Path(table["image_name"].iloc[0]) == project / "Extract/job001/subtomo_000001.mrc"
    # the folder moved and renamed: its own files, found beside particles.star (their
    # checksums vouch for them)
    monkeypatch.chdir(project)
    shutil.move("Extract/job001", "moved")
    moved, table, _ = read_particle_set("moved/particles.star")
    assert np.array_equal(moved, stack)
    assert Path(table["image_name"].iloc[1]) == project / "moved" / "subtomo_000002.mrc"


def test_a_copy_keeps_names_from_the_project_folder(project):
    assert _extract("Extract/job001") == 0
    assert main(["convert", "Extract/job001/particles.star", "-o", "Select/job002/p.star"]) == 0
    rows = starfile.read(project / "Select/job002/p.star", always_dict=True)["particles"]
    assert rows["rlnImageName"].iloc[0] == "Extract/job001/subtomo_000001.mrc"
    assert rows["rlnCtfImage"].iloc[0] == "Extract/job001/wedge.mrc"


def test_a_copy_says_which_named_files_it_could_not_find(project, capsys):
    """A STAR file whose subtomograms were deleted (or never copied) still converts, its
    names as given, as RELION's own selections would keep them, but the user is told:
    relion_refine would stop at the first missing file."""
    assert _extract("Extract/job001") == 0
    Path("Extract/job001/subtomo_000002.mrc").unlink()
    capsys.readouterr()
    assert main(["convert", "Extract/job001/particles.star", "-o", "Select/job002/p.star"]) == 0
    err = capsys.readouterr().err
    assert "1 of the 2 files that particles.star names in rlnImageName" in err
    assert "subtomo_000002.mrc" in err and "rlnCtfImage" not in err
    rows = starfile.read(project / "Select/job002/p.star", always_dict=True)["particles"]
    assert list(rows["rlnImageName"]) == [
        "Extract/job001/subtomo_000001.mrc",
        "Extract/job001/subtomo_000002.mrc",
    ]
    # a copy of the copy still names the deleted file, and says so again
    assert main(["convert", "Select/job002/p.star", "-o", "Select/job003/q.star"]) == 0
    assert "names in rlnImageName" in capsys.readouterr().err
    # with every file present nothing is said
    assert _extract("Extract/job004") == 0
    capsys.readouterr()
    assert main(["convert", "Extract/job004/particles.star", "-o", "Select/job005/p.star"]) == 0
    assert "found neither" not in capsys.readouterr().err


def test_relions_project_names_are_found_from_outside_the_project(
    tmp_path, shared_data, monkeypatch
):
    """RELION 5's Refine3D file read from another folder: its names are found under the
    project folder above the job folder, and a copy written in the project names them
    exactly as RELION did."""
    source = shared_data / "formats" / "relion5_project"
    if not source.is_dir():
        pytest.skip("the RELION 5 project is not in ../shared/data")
    project = tmp_path / "project"
    shutil.copytree(source, project)
    star = project / REFINE.relative_to("formats/relion5_project")
    tomograms = project / "Tomograms" / "job_tomo" / "tomograms.star"
    given = starfile.read(star, always_dict=True)["particles"]["rlnImageName"]
    first = project / given.iloc[0]
    first.parent.mkdir(parents=True)
    first.write_bytes(b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    names = read_particles(star, tomograms=tomograms)["image_name"]
    assert names.iloc[0] == str(first)  # found above the job folder
    assert names.iloc[1] == given.iloc[1]  # found nowhere: kept as written
    monkeypatch.chdir(project)
    out = project / "Select" / "job_select" / "copy.star"
    args = ["convert", str(star), "-o", str(out), "--tomograms", str(tomograms)]
    assert main(args) == 0
    written = starfile.read(out, always_dict=True)["particles"]["rlnImageName"]
    assert list(written) == list(given)


def test_a_folder_named_with_an_at_sign_is_a_path_not_a_stack_number(tmp_path, monkeypatch):
    """An absolute name `/…/u@lab/…/subtomo_000001.mrc` was split at its `@` as
    `N@STACK` (a review): average looked for `/…/u@/…/u@lab/…`."""
    home = tmp_path / "u@lab"
    home.mkdir()
    monkeypatch.chdir(_make_project(home))
    assert _extract(str(home / "Extract")) == 0  # -o absolute; names from the working folder
    rows = starfile.read(home / "Extract/particles.star", always_dict=True)["particles"]
    assert rows["rlnImageName"].iloc[0] == "Extract/subtomo_000001.mrc"
    monkeypatch.chdir(tmp_path)  # now the names are found from the folder above
    stack, table, _ = read_particle_set(home / "Extract" / "particles.star")
    assert len(stack) == 2 and Path(table["image_name"].iloc[0]).parent == home / "Extract"


def test_absolute_names_of_a_moved_folder_and_an_old_folder_beside_a_new_one(
    project, tmp_path_factory, capsys
):
    """A folder written outside the working folder names its files absolutely; moved,
    they are found beside its STAR file by their checksums.  Renamed, and extracted
    again under its old name, the old STAR file keeps its own particles (a review:
    copies of it named the new ones, whose checksums differ)."""
    outside = tmp_path_factory.mktemp("scratch") / "sub"
    assert _extract(str(outside)) == 0
    assert "names them by absolute paths" in capsys.readouterr().out
    rows = starfile.read(outside / "particles.star", always_dict=True)["particles"]
    assert Path(rows["rlnImageName"].iloc[0]).is_absolute()
    stack, _, _ = read_particle_set(outside / "particles.star")
    moved = outside.with_name("moved")
    shutil.move(outside, moved)
    again, table, _ = read_particle_set(moved / "particles.star")
    assert np.array_equal(again, stack) and Path(table["ctf_image"].iloc[0]).parent == moved
    # the old folder renamed, other picks extracted under its name
    assert _extract("Extract/job001") == 0
    old, _, _ = read_particle_set("Extract/job001/particles.star")
    shutil.move("Extract/job001", "Extract/job001_old")
    (project / "picks.csv").write_text("x,y,z\n25,18,16\n15,15,15\n")
    assert _extract("Extract/job001", "-45,50") == 0  # another wedge too
    kept, _, _ = read_particle_set("Extract/job001_old/particles.star")
    assert np.array_equal(kept, old)
    args = ["convert", "Extract/job001_old/particles.star", "-o", "copy.star"]
    assert main(args) == 0
    rows = starfile.read(project / "copy.star", always_dict=True)["particles"]
    assert rows["rlnImageName"].iloc[0] == "Extract/job001_old/subtomo_000001.mrc"
    # and its own wedge (a re-check: the rows named the new folder's ±45-50° one)
    assert set(rows["rlnCtfImage"]) == {"Extract/job001_old/wedge.mrc"}
