"""The fault table: ordinary mistakes through the command line, each answered with one
sentence and exit status 2, no traceback, nothing written and every file in the working
folder unchanged byte for byte (issue 20).

One workspace is built per module with files as users have them: a tomogram and painted
volume written by mrcfile (not by tomoscribe), a boxes CSV, and outputs of earlier
tomoscribe runs (a model, a label map with its legend, picks, an extraction folder).
Each case runs in that workspace and must leave it exactly as it found it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from tomoscribe.cli.app import main
from tomoscribe.segment.modelfile import FeatureModel, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network

SHAPE = (12, 64, 64)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _user_mrc(path: Path, data, voxel=10.0) -> Path:
    """A file as another program writes it: mrcfile directly, no tomoscribe record."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data))
        mrc.voxel_size = voxel
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    rng = np.random.default_rng(0)
    tomo = rng.normal(size=SHAPE).astype(np.float32)
    _user_mrc(root / "t.mrc", tomo)
    paint = np.zeros(SHAPE, np.uint8)
    paint[4:8, 20:40, 20:40] = 1
    _user_mrc(root / "paint.mrc", paint)
    _user_mrc(root / "user.mrc", np.ones((2, 8, 8), np.float32))
    nan = tomo.copy()
    nan[6, 30, 30] = np.nan
    _user_mrc(root / "nan.mrc", nan)
    raw = (root / "t.mrc").read_bytes()
    (root / "truncated.mrc").write_bytes(raw[:3000])
    (root / "garbage.mrc").write_bytes(b"not an mrc file " * 200)
    (root / "empty.mrc").write_bytes(b"")
    (root / "boxes.csv").write_text(
        "x,y,z,label\n30,30,6,positive\n50,50,6,negative\n12,50,6,negative\n"
    )
    (root / "outside.csv").write_text("x,y,z,label\n300,30,6,positive\n50,50,6,negative\n")
    (root / "empty.csv").write_text("")
    (root / "header_only.csv").write_text("x,y,z,label\n")
    (root / "no_columns.csv").write_text("a,b\n1,2\n")
    (root / "words.csv").write_text("x,y,z,label\nten,30,6,positive\n")
    (root / "picks.csv").write_text("x,y,z\n32,32,6\n20,40,6\n")
    (root / "dup.star").write_text(
        "data_particles\n\nloop_\n_rlnCoordinateX #1\n"
        "_rlnCoordinateX #2\n_rlnCoordinateY #3\n"
        "_rlnCoordinateZ #4\n10 11 12 6\n"
    )
    (root / "copick_bad.json").write_text(
        json.dumps(
            {
                "pickable_object_name": "ribosome",
                "user_id": "u",
                "session_id": "0",
                "unit": "angstrom",
                "points": [{"location": {"x": 1, "y": 2, "z": 3}, "transformation_": 7}],
            }
        )
    )
    (root / "model_garbage.tsm").write_bytes(b"\x00" * 64)
    # A real IMOD model cut short (imodmodel alone loops forever on it), when present.
    real_model = SHARED / "formats" / "imod" / "two_contour_example.mod"
    model_bytes = real_model.read_bytes() if real_model.is_file() else b"IMODV1.2" + b"\0" * 300
    (root / "truncated.mod").write_bytes(model_bytes[: len(model_bytes) - 7])
    # An MRC whose data are float32 while its header says int16: twice as long as stated.
    _user_mrc(root / "oversize.mrc", tomo[:2].astype(np.int16))
    with open(root / "oversize.mrc", "ab") as fh:
        fh.write(tomo[:2].astype(np.int16).tobytes())
    # An MRC header with a negative size.
    raw = bytearray((root / "t.mrc").read_bytes())
    raw[0:4] = np.int32(-64).tobytes()
    (root / "negative.mrc").write_bytes(bytes(raw))
    import tifffile

    tifffile.imwrite(
        root / "rgb.tif", rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8), photometric="rgb"
    )
    (root / "broken.zarr").mkdir()
    (root / "broken.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    (root / "broken.zarr" / ".zattrs").write_text('{"multiscales": 7}')
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("my notes\n")
    # Outputs of earlier tomoscribe runs.
    spec = ArchitectureSpec()
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    save_model(root / "m.tsm", FeatureModel(network.eval(), spec, "membrane", 10.0, 0.5))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert (
            main(
                [
                    "trainset",
                    "t.mrc",
                    "-o",
                    "m.trainset",
                    "-f",
                    "membrane",
                    "--painted",
                    "paint.mrc",
                    "--boxes",
                    "boxes.csv",
                    "--tile",
                    "32",
                ]
            )
            == 0
        )
        _user_mrc(root / "a.mrc", rng.uniform(0, 2, SHAPE).astype(np.float32))
        assert (
            main(
                [
                    "merge",
                    "a.mrc",
                    "--names",
                    "ribosome",
                    "-o",
                    "labels.mrc",
                    "-q",
                    "--threshold",
                    "1",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "pick",
                    "labels.mrc",
                    "-f",
                    "ribosome",
                    "-o",
                    "picks.star",
                    "--min-size",
                    "1",
                    "--edge",
                    "0",
                ]
            )
            == 0
        )
        assert main(["extract", "t.mrc", "picks.csv", "-o", "parts", "--box", "8"]) == 0
    finally:
        os.chdir(cwd)
    return root


def _snapshot(root: Path) -> dict:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# (id, argv, words the sentence must contain)
CASES = [
    # Outputs that would destroy the user's files.
    ("extract into the working folder", "extract t.mrc picks.csv -o . --box 8", "working folder"),
    ("extract into the parent", "extract t.mrc picks.csv -o .. --box 8", "working folder"),
    (
        "extract into the folder of its input",
        "extract t.mrc picks.csv -o {ws} --box 8",
        "working folder",
    ),
    (
        "extract into a folder holding the picks",
        "extract {ws}/t.mrc notes/../picks.csv -o notes/.. --box 8",
        "working folder",
    ),
    (
        "average into its own input folder",
        "average parts/particles.star -o parts",
        "holds the input",
    ),
    (
        "trainset over its tomogram",
        "trainset t.mrc -o t.mrc -f m --painted paint.mrc --boxes boxes.csv",
        "also an input",
    ),
    (
        "trainset over its painted volume",
        "trainset t.mrc -o paint.mrc -f m --painted paint.mrc --boxes boxes.csv",
        "also an input",
    ),
    ("train over its training set", "train m.trainset -o m.trainset", "also an input"),
    ("merge over its input map", "merge a.mrc --names x -o a.mrc", "also an input"),
    (
        "vesicles over its label map",
        "vesicles labels.mrc -o labels.mrc -f ribosome",
        "also an input",
    ),
    (
        "pick over its map's provenance",
        "pick labels.mrc -f ribosome -o labels.mrc.json",
        "also an input",
    ),
    (
        "pick over its map's legend",
        "pick labels.mrc -f ribosome -o labels.mrc.legend.json",
        "also an input",
    ),
    ("preprocess over its input", "preprocess t.mrc -o t.mrc", "also an input"),
    ("preprocess over a user's file", "preprocess t.mrc -o user.mrc", "not written by tomoscribe"),
    (
        "pick over a user's CSV",
        "pick labels.mrc -f ribosome -o boxes.csv",
        "not written by tomoscribe",
    ),
    ("convert over its input", "convert picks.star -o picks.star", "also an input"),
    (
        "no-overwrite of an earlier output",
        "merge a.mrc --names x -o labels.mrc --no-overwrite",
        "already exists",
    ),
    ("extract over a file", "extract t.mrc picks.csv -o user.mrc --box 8", "file"),
    (
        "simulate a cell into the working folder",
        "simulate cell -o . --size 64,64,16",
        "working folder",
    ),
    ("the demo into the working folder", "demo --out .", "working folder"),
    ("clem simulate into the working folder", "clem simulate --out .", "working folder"),
    (
        "output inside an input folder",
        "classify autoencoder mine m.tsm parts -o parts/x",
        "inside the input",
    ),
    # Numbers that are not numbers.
    ("merge threshold nan", "merge a.mrc --names x -o new.mrc --threshold nan", "finite"),
    ("merge threshold inf", "merge a.mrc --names x -o new.mrc --threshold inf", "finite"),
    ("merge weight nan", "merge a.mrc --names x -o new.mrc --weight x=nan", "finite"),
    (
        "pick min-distance nan",
        "pick labels.mrc -f ribosome -o new.star --min-distance nan",
        "--min-distance",
    ),
    (
        "pick spacing nan",
        "pick labels.mrc -f ribosome -o new.star --filament --spacing nan",
        "finite",
    ),
    (
        "pick min-distance negative",
        "pick labels.mrc -f ribosome -o new.star --min-distance -1",
        "--min-distance",
    ),
    ("unknown option", "pick labels.mrc -f ribosome -o new.star --colour red", "--colour"),
    ("missing argument", "extract t.mrc -o newparts --box 8", "particles"),
    ("preprocess lowpass nan", "preprocess t.mrc -o new.mrc --lowpass nan", "finite"),
    ("voxel size inf", "preprocess t.mrc -o new.mrc --voxel-size inf", "finite"),
    # Damaged or wrong input files.
    ("truncated MRC", "preprocess truncated.mrc -o new.mrc", "truncated.mrc"),
    ("not an MRC", "preprocess garbage.mrc -o new.mrc", "garbage.mrc"),
    ("empty MRC", "preprocess empty.mrc -o new.mrc", "empty.mrc"),
    ("missing file", "preprocess nothing.mrc -o new.mrc", "does not exist"),
    ("a folder as a tomogram", "preprocess notes -o new.mrc", "notes"),
    ("unknown volume format", "preprocess boxes.csv -o new.mrc", "format"),
    ("NaN voxels", "preprocess nan.mrc -o new.mrc -q", "NaN"),
    ("NaN voxels in a subtomogram", "extract nan.mrc picks.csv -o newparts --box 8", "NaN"),
    (
        "NaN voxels in a training tile",
        "trainset nan.mrc -o new.trainset -f m --painted paint.mrc --boxes boxes.csv --tile 32",
        "z=6",
    ),
    (
        "empty CSV",
        "trainset t.mrc -o new.trainset -f m --painted paint.mrc --boxes empty.csv",
        "empty.csv",
    ),
    (
        "CSV header only",
        "trainset t.mrc -o new.trainset -f m --painted paint.mrc --boxes header_only.csv",
        "header_only.csv",
    ),
    (
        "CSV without coordinates",
        "trainset t.mrc -o new.trainset -f m --painted paint.mrc --boxes no_columns.csv",
        "no_columns.csv",
    ),
    (
        "CSV with words for numbers",
        "trainset t.mrc -o new.trainset -f m --painted paint.mrc --boxes words.csv",
        "words.csv",
    ),
    (
        "boxes outside the tomogram",
        "trainset t.mrc -o new.trainset -f m --painted paint.mrc --boxes outside.csv",
        "outside",
    ),
    (
        "painted volume of another shape",
        "trainset t.mrc -o new.trainset -f m --painted user.mrc --boxes boxes.csv",
        "shape",
    ),
    ("STAR with a duplicated column", "extract t.mrc dup.star -o newparts --box 8", "dup.star"),
    (
        "copick JSON with a number for a matrix",
        "extract t.mrc copick_bad.json -o newparts --box 8 --picked-voxel-size 10",
        "copick_bad.json",
    ),
    ("damaged model", "segment t.mrc -m model_garbage.tsm -o maps", "model_garbage.tsm"),
    ("a training set as a model", "segment t.mrc -m m.trainset -o maps", "m.trainset"),
    ("a model as a training set", "train m.tsm -o new.tsm", "m.tsm"),
    ("label map without the feature", "pick labels.mrc -f actin -o new.star", "actin"),
    ("picks outside the tomogram", "extract user.mrc picks.csv -o newparts --box 4", "outside"),
    ("STAR without subtomograms", "average picks.star -o newavg", "picks.star"),
    (
        "segment with a rescale to an absurd size",
        "segment t.mrc -m m.tsm -o maps --voxel-size 0.001 --rescale",
        "voxel",
    ),
    (
        "simulate a structure at a negative voxel size",
        "simulate structure nothing.pdb -o new.mrc --voxel-size -10",
        "voxel",
    ),
    ("a negative simulated cell size", "simulate cell -o newsim --size -64,64,16", "size"),
    (
        "tilt range that is not numbers",
        "vesicles labels.mrc -o new.mrc -f ribosome --tilt-range a,b",
        "tilt-range",
    ),
    ("unknown merge feature weight", "merge a.mrc --names x -o new.mrc --weight y=2", "y"),
    (
        "truncated IMOD model",
        "trainset t.mrc -o new.trainset -f m --contours truncated.mod",
        "truncated.mod",
    ),
    ("MRC longer than its header says", "preprocess oversize.mrc -o new.mrc -q", "oversize.mrc"),
    ("MRC with a negative size", "preprocess negative.mrc -o new.mrc -q", "negative.mrc"),
    (
        "colour TIFF without a channel",
        "preprocess rgb.tif -o new.mrc -q --voxel-size 10",
        "--channel",
    ),
    ("OME-Zarr with malformed multiscales", "preprocess broken.zarr -o new.mrc -q", "multiscales"),
    ("a folder that is a file", "preprocess t.mrc -o user.mrc/p.mrc -q", "user.mrc"),
]


@pytest.fixture
def in_ws(ws):
    cwd = os.getcwd()
    os.chdir(ws)
    yield ws
    os.chdir(cwd)


def _alarm(signum, frame):
    raise TimeoutError("the command hung")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_one_sentence_and_touches_nothing(case, in_ws, capsys):
    name, argv, words = case
    before = _snapshot(in_ws)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        code = main(argv.format(ws=in_ws).split())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: ") and len(lines) == 1, err
    assert words.lower() in err.lower(), err
    assert _snapshot(in_ws) == before, "the command changed the workspace"
