"""Which axis the beam ran along, from the missing wedge: on real tomograms (as they
are, and turned as a volume not rotated after reconstruction is), on maps without a
wedge, and the warning users get from the commands that take a tomogram."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoscribe.cli.app import main
from tomoscribe.core.beam_axis import SHORTEST_AXIS, beam_axis

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
REAL = DATA / "real"


def _real(name: str) -> np.ndarray:
    """A real crop as it is (filament_patch keeps its 26 slices of zero padding)."""
    tifffile = pytest.importorskip("tifffile")
    path = REAL / f"{name}.tif"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return tifffile.imread(path).astype(np.float32)


def _slab(data: np.ndarray) -> np.ndarray:
    """A cubic patch's middle two thirds of its slices: a lamella's shape, thinner in z
    than across (a volume's thinnest axis is where a turned one's beam is looked for)."""
    keep = (2 * len(data)) // 3
    start = (len(data) - keep) // 2
    return data[start : start + keep] if data.shape[0] >= min(data.shape[1:]) else data


def _turned_about_x(data: np.ndarray) -> np.ndarray:
    """As IMOD's `tilt` writes a tomogram (x–z slices stacked along y)."""
    return np.ascontiguousarray(np.swapaxes(data, 0, 1)[:, ::-1])


@pytest.mark.parametrize(
    "name", ["microtubule_14pf_crop", "filament_patch", "filament_patch3", "filament_patch4"]
)
def test_real_tomograms_are_seen_along_z_and_turned_ones_along_y_or_x(name):
    data = _slab(_real(name))
    assert beam_axis(data).axis == "z"
    turned = beam_axis(_turned_about_x(data))
    assert turned.axis == "y" and turned.other_than_z
    assert turned.ratios["y"] < 0.6 * turned.ratios["z"]
    assert beam_axis(np.swapaxes(data, 0, 2)).axis == "x"


def test_padding_low_passes_and_maps_are_not_taken_for_a_turned_volume():
    """A review: 16 zero slices under the real crop turned its verdict to y, and so did
    a low-pass at 100 Å and the map 6qzp; padding is left out now, and y or x is
    claimed only where that axis is the volume's thinnest."""
    from tomoscribe.preprocess import PreprocessParams, preprocess_array
    from tomoscribe.volume import Volume

    crop = _real("microtubule_14pf_crop")
    padded = np.concatenate([np.zeros((16, *crop.shape[1:]), np.float32), crop])
    assert beam_axis(padded).axis == "z"
    assert beam_axis(_turned_about_x(padded)).axis == "y"
    blurred = preprocess_array(Volume(crop, 10.52), PreprocessParams(lowpass_A=100.0)).data
    assert beam_axis(np.asarray(blurred)).axis in ("z", None)
    for name in ("6qzp", "1bxn", "3d2f"):
        path = DATA / "maps_10A" / f"{name}.mrc"
        if path.is_file():
            assert beam_axis(mrcfile.read(path)).axis in ("z", None), name


def test_no_wedge_no_axis():
    """White noise and an EMDB map (no tilt series behind them) name no axis; nor does a
    slab thinner than SHORTEST_AXIS."""
    noise = np.random.default_rng(3).normal(size=(64, 96, 96))
    evidence = beam_axis(noise)
    assert evidence.axis is None and all(0.8 < r < 1.25 for r in evidence.ratios.values())
    emdb = DATA / "formats" / "emdb" / "emd_1832.map"
    if emdb.is_file():
        assert beam_axis(mrcfile.read(emdb)).axis is None
    thin = beam_axis(noise[: SHORTEST_AXIS - 1])
    assert thin.axis is None and thin.ratios == {}
    assert beam_axis(np.zeros((32, 32, 32))).axis is None


def _write(path: Path, data: np.ndarray) -> Path:
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(np.float32))
        mrc.voxel_size = 10.52
    return path


def test_commands_say_a_tomogram_not_turned_after_reconstruction(tmp_path, capsys):
    """preprocess, and info's line, on the real crop as IMOD's `tilt` or AreTomo without
    -FlipVol writes it: said (was silent), and not said for the crop as it is."""
    data = _real("microtubule_14pf_crop")
    good = _write(tmp_path / "crop.mrc", data)
    turned = _write(tmp_path / "crop_xzy.mrc", _turned_about_x(data))
    assert main(["preprocess", str(good), "-o", str(tmp_path / "good_pre.mrc"), "-q"]) == 0
    assert "beam ran along" not in capsys.readouterr().err
    assert main(["preprocess", str(turned), "-o", str(tmp_path / "turned_pre.mrc"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: crop_xzy.mrc's missing wedge says the beam ran along its y axis" in err
    assert "clip rotx" in err
    assert main(["info", str(turned)]) == 0
    assert "beam (from the missing wedge): along y" in capsys.readouterr().out
    assert main(["info", str(good)]) == 0
    assert "beam (from the missing wedge): along z" in capsys.readouterr().out


def test_extract_says_a_tomogram_not_turned_after_reconstruction(tmp_path, capsys):
    """Subtomograms cut from side views are averaged with the wedge on the wrong axis:
    extract says so (was silent)."""
    starfile = pytest.importorskip("starfile")
    import pandas as pd

    turned = _write(tmp_path / "crop_xzy.mrc", _turned_about_x(_real("microtubule_14pf_crop")))
    picks = tmp_path / "picks.star"
    rows = {"rlnCoordinateX": [40.0, 44.0], "rlnCoordinateY": [22.0, 22.0]}
    starfile.write(pd.DataFrame({**rows, "rlnCoordinateZ": [60.0, 80.0]}), picks)
    out = tmp_path / "sub"
    assert main(["extract", str(turned), str(picks), "-o", str(out), "--box", "16"]) == 0
    assert "crop_xzy.mrc's missing wedge says the beam ran along its y axis" in (
        capsys.readouterr().err
    )


def _wedged_noise(count: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """Noise boxes through a ±60° single-axis wedge made here with numpy: the beam along
    z, the tilt axis along y, so that frequencies steeper than 60° from k_x in the
    (k_x, k_z) plane are missing."""
    k = np.meshgrid(*[np.fft.fftfreq(n)] * 3, indexing="ij")  # kz, ky, kx
    measured = np.degrees(np.arctan2(np.abs(k[0]), np.abs(k[2]))) <= 60.0
    rng = np.random.default_rng(seed)
    boxes = [
        np.fft.ifftn(np.fft.fftn(rng.normal(size=(n,) * 3)) * measured).real for _ in range(count)
    ]
    return np.stack(boxes).astype(np.float32)


def test_a_set_of_subtomograms_shows_its_beam_and_tilt_axis():
    """A trial's classifier met subtomograms with the tilt axis along x (0.60) and the
    beam along x (0.39) without a word; the averaged spectrum of a set names both axes."""
    from tomoscribe.core.beam_axis import subtomogram_wedge

    boxes = _wedged_noise(12)
    assert subtomogram_wedge(boxes).pair == ("z", "y")
    assert subtomogram_wedge(np.swapaxes(boxes, 2, 3)).pair == ("z", "x")  # tilt axis x
    assert subtomogram_wedge(np.swapaxes(boxes, 1, 3)).pair == ("x", "y")  # beam along x
    noise = np.random.default_rng(1).normal(size=(12, 32, 32, 32))
    assert subtomogram_wedge(noise).pair is None
    assert (
        subtomogram_wedge(boxes[:2]).pair is None
        and subtomogram_wedge(boxes[:, :20, :20, :20]).pair is None
    )


def test_a_model_meeting_another_wedge_says_so():
    import warnings

    from tomoscribe.classify.wedge_axes import learned_wedge, warn_of_other_wedge

    boxes = _wedged_noise(12)
    turned = np.swapaxes(boxes, 2, 3)  # the tilt axis along x
    assert learned_wedge("usual.star", boxes) == {"wedge_axes": ["z", "y"]}
    with pytest.warns(
        UserWarning,
        match=r"turned\.star's subtomograms lies as for the beam along z and the tilt axis "
        r"along x, but the classifier learned it with the beam along z and the tilt axis along y",
    ):
        warn_of_other_wedge(
            "turned.star", turned, {}, "classifier"
        )  # a model made before the record
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_of_other_wedge("usual.star", boxes, {"wedge_axes": ["z", "y"]}, "classifier")
        warn_of_other_wedge("turned.star", turned, {"wedge_axes": ["z", "x"]}, "classifier")
    with pytest.warns(UserWarning, match=r"not z and y as tomoscribe makes and augments them"):
        assert learned_wedge("turned.star", turned) == {"wedge_axes": ["z", "x"]}


def test_a_crop_narrow_in_y_and_low_passed_is_not_taken_for_a_turned_one():
    """A trial: the real crop cut to 40 voxels in y and low-passed at 100 Å was told to
    turn (its microtubules run along y: 0.02 about y, 0.13 about z); z showing a wedge of
    its own now keeps y from being claimed.  A cubic patch turned about x is not claimed
    (y is not its thinnest axis) but is named as seen."""
    from tomoscribe.preprocess import PreprocessParams, preprocess_array
    from tomoscribe.volume import Volume

    narrow = _real("microtubule_14pf_crop")[:, 48:88, :]
    assert beam_axis(narrow).axis == "z"
    blurred = preprocess_array(Volume(narrow, 10.52), PreprocessParams(lowpass_A=100.0)).data
    assert beam_axis(np.asarray(blurred)).axis in ("z", None)
    cube = beam_axis(_turned_about_x(_real("filament_patch3")))
    assert cube.axis is None and cube.seen_about == "y"


def test_a_tomogram_tilted_about_x_is_said(tmp_path, capsys):
    """Every step takes the tilt axis along y (the wedge of filament tracing, vesicle
    closing, averaging): the real crop turned by 90° about z, its wedge now about x,
    was preprocessed and cut without a word.  Said now; the crop as it is and the
    TARDIS patches (a wedge about neither axis clearly) are not."""
    data = _real("microtubule_14pf_crop")
    good = _write(tmp_path / "crop.mrc", data)
    turned = _write(tmp_path / "crop_z90.mrc", np.ascontiguousarray(np.rot90(data, axes=(1, 2))))
    assert main(["preprocess", str(turned), "-o", str(tmp_path / "turned_pre.mrc"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "crop_z90.mrc's missing wedge says it was tilted about its x axis" in err, err
    assert "rotatevol -a 90,0,0" in err
    assert main(["preprocess", str(good), "-o", str(tmp_path / "good_pre.mrc"), "-q"]) == 0
    assert "tilted about" not in capsys.readouterr().err
    assert main(["info", str(turned)]) == 0
    assert "along z, but tilted about x, where tomoscribe takes y" in capsys.readouterr().out
    assert main(["info", str(good)]) == 0
    assert "along z and tilted about y, as tomoscribe takes them" in capsys.readouterr().out
    for name in ("filament_patch", "filament_patch3", "filament_patch4"):
        patch = _real(name)
        for volume in (patch, np.rot90(patch, axes=(1, 2))):
            assert beam_axis(np.ascontiguousarray(volume)).tilt_axis is None, name


def test_average_says_subtomograms_whose_wedge_lies_about_x(tmp_path, capsys):
    """average weights every subtomogram by a wedge about y; a set cut from a tomogram
    turned in-plane (its wedge about x) was averaged without a word."""
    starfile = pytest.importorskip("starfile")
    import pandas as pd

    boxes = _wedged_noise(12)
    ball = (np.sum((np.indices((32,) * 3) - 16.0) ** 2, axis=0) <= 36).astype(np.float32)
    _write(tmp_path / "ref.mrc", ball)
    for kind, stack in (("usual", boxes), ("turned", np.swapaxes(boxes, 2, 3))):
        names = []
        for i, box in enumerate(stack):
            names.append(str(_write(tmp_path / f"{kind}_{i:02d}.mrc", box + 0.5 * ball)))
        rows = {"rlnImageName": names, "rlnImagePixelSize": [10.52] * len(names)}
        rows |= {f"rlnCoordinate{a}": [16.0] * len(names) for a in "XYZ"}
        starfile.write(pd.DataFrame(rows), tmp_path / f"{kind}.star")
        argv = ["average", str(tmp_path / f"{kind}.star"), "-o", str(tmp_path / f"avg_{kind}")]
        assert (
            main([*argv, "--reference", str(tmp_path / "ref.mrc"), "--iterations", "1", "-q"]) == 0
        )
        said = "subtomograms lies about x (the beam along z)" in capsys.readouterr().err
        assert said == (kind == "turned"), kind
