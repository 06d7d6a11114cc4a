import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomoscribe.errors import InputFileError, ParameterError
from tomoscribe.simulate.subtomograms import (
    EMPTY,
    SubtomogramParams,
    load_dataset,
    rotate_and_shift,
    save_dataset,
    simulate_subtomograms,
    template_in_box,
)
from tomoscribe.simulate.template_library import load_template


@pytest.mark.parametrize("snr", [0.5, 0.1])
def test_measured_snr_matches_the_request(snr):
    """Frank & Al-Ali: two noise realisations of the same particles, SNR = c / (1 − c)."""
    base = dict(snr=snr, seed=4, include_empty=False, box=32)
    a = simulate_subtomograms(["1bxn", "3j9i"], 6, SubtomogramParams(**base, noise_seed=1))
    b = simulate_subtomograms(["1bxn", "3j9i"], 6, SubtomogramParams(**base, noise_seed=2))
    np.testing.assert_array_equal(a["rotations"], b["rotations"])
    measured = []
    for va, vb in zip(a["volumes"], b["volumes"]):
        c = np.corrcoef(va.ravel(), vb.ravel())[0, 1]
        measured.append(c / (1 - c))
    assert np.median(measured) == pytest.approx(snr, rel=0.25)


@pytest.mark.zarr
def test_dataset_layout_and_round_trip(tmp_path):
    data = simulate_subtomograms(["1bxn", "1s3x"], 3, SubtomogramParams(box=32, snr=0.1))
    assert data["volumes"].shape == (9, 32, 32, 32)
    assert data["class_names"] == ["1bxn", "1s3x", EMPTY]
    np.testing.assert_array_equal(data["labels"], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    back = Rotation.from_euler("ZYZ", data["euler_zyz_deg"], degrees=True).as_matrix()
    np.testing.assert_allclose(back, data["rotations"], atol=1e-6)
    # RELION's rot, tilt, psi (eulerangles: zyz intrinsic, passive) of the same rotations
    from eulerangles import euler2matrix

    relion = euler2matrix(
        data["angles_relion_deg"], axes="zyz", intrinsic=True, right_handed_rotation=True
    )
    np.testing.assert_allclose(np.transpose(relion, (0, 2, 1)), data["rotations"], atol=1e-6)
    save_dataset(tmp_path / "d.zarr", data)
    loaded = load_dataset(tmp_path / "d.zarr")
    np.testing.assert_array_equal(loaded["volumes"][...], data["volumes"])
    assert loaded["class_names"] == data["class_names"]
    np.testing.assert_array_equal(loaded["angles_relion_deg"][...], data["angles_relion_deg"])
    assert loaded["params"]["voxel_size_A"] == 9.2
    # the store read with zarr alone says which convention each angle array follows
    import zarr

    store = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")
    assert "rlnAngleRot" in store["angles_relion_deg"].attrs["description"]
    assert "not RELION's" in store["euler_zyz_deg"].attrs["description"]
    assert all("description" in store[key].attrs for key in store.array_keys())


def test_rotation_moves_density_as_stated():
    # A single bright voxel at +x from the centre goes to +y under a 90° turn about z.
    volume = np.zeros((16, 16, 16), np.float32)
    volume[8, 8, 12] = 1.0
    turned = rotate_and_shift(volume, Rotation.from_euler("z", 90, degrees=True), (0, 0, 0))
    assert np.unravel_index(np.argmax(turned), turned.shape) == (8, 12, 8)
    moved = rotate_and_shift(volume, Rotation.identity(), (1, 0, -2))
    assert np.unravel_index(np.argmax(moved), moved.shape) == (9, 8, 10)


def test_structure_larger_than_the_box_is_refused():
    with pytest.raises(ParameterError, match="larger box"):
        template_in_box(load_template("4v5d"), 9.2, 16)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ParameterError):
        simulate_subtomograms(["1bxn"], 2, SubtomogramParams(snr=-1))
    with pytest.raises(ParameterError):
        simulate_subtomograms(["no-such-structure"], 2)
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(InputFileError):
        load_dataset(tmp_path / "junk.zarr")


@pytest.mark.parametrize(
    "flags,said",
    [
        (["--voxel-size", "0"], "voxel size must be positive"),
        (["--voxel-size", "-9.2"], "voxel size must be positive"),
        (["--structures", "1bxn,3j9i,1bxn"], "1bxn is named twice"),
        (["--structures", "1bxn,empty"], "empty is named twice"),
        (["--max-tilt", "0"], "more than 0° and at most 90°"),
    ],
)
def test_cli_refuses_settings_that_make_no_sense_in_a_sentence(tmp_path, capsys, flags, said):
    """A zero voxel size crashed (ZeroDivisionError); a structure named twice made two
    classes of one name (which `evaluate` matches by name, so one would be scored as the
    other); ±0° was said to lie outside ±90°."""
    from tomoscribe.cli.app import main

    out = tmp_path / "d.zarr"
    assert main(["simulate", "subtomograms", "-o", str(out), "--n", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.zarr
def test_cli_says_when_classify_will_refuse_its_box(tmp_path, capsys):
    """A 26³ dataset was written without a word, and every network of `classify`
    then refused it; the dataset is still made (averaging takes any box), with a note."""
    from tomoscribe.cli.app import main

    for box, noted in ((26, True), (28, False)):
        out = tmp_path / f"d{box}.zarr"
        args = ["simulate", "subtomograms", "-o", str(out), "--n", "1", "--box", str(box)]
        assert main([*args, "--structures", "1s3x", "--no-empty"]) == 0
        err = capsys.readouterr().err
        assert out.exists() and ("multiple of 4" in err) == noted


@pytest.mark.zarr
def test_crowded_subtomograms_carry_a_centre_mask(tmp_path):
    params = SubtomogramParams(box=40, snr=None, include_empty=False, crowded_neighbours=4)
    data = simulate_subtomograms(["1s3x", "3gl1"], 3, params)
    lonely = simulate_subtomograms(
        ["1s3x", "3gl1"], 3, SubtomogramParams(box=40, snr=None, include_empty=False)
    )
    masks = data["centre_masks"].astype(bool)
    assert masks.shape == data["volumes"].shape and masks.any(axis=(1, 2, 3)).all()
    # The first particle has the same pose in both sets (neighbours are drawn after it):
    # the neighbours add density outside its mask, and the mask covers its own density.
    np.testing.assert_array_equal(data["rotations"][0], lonely["rotations"][0])
    extra = np.abs(data["volumes"][0] - lonely["volumes"][0])
    assert extra[~masks[0]].sum() > 0.1 * np.abs(lonely["volumes"][0]).sum()
    assert extra[masks[0]].mean() < extra[~masks[0]].max()
    save_dataset(tmp_path / "c.zarr", data)
    np.testing.assert_array_equal(
        load_dataset(tmp_path / "c.zarr")["centre_masks"][...], data["centre_masks"]
    )
