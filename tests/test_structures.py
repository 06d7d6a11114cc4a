"""Atomic models → density, validated against the models and independent 10 Å maps."""

import math

import mrcfile
import numpy as np
import pytest
import scipy.ndimage

from tomoscribe.errors import InputFileError, ParameterError
from tomoscribe.simulate.structures import atom_table, read_structure, structure_density
from tomoscribe.simulate.template_library import list_templates, load_template, template_manifest


def _centre_and_rg(density: np.ndarray, voxel: float):
    grid = np.indices(density.shape).reshape(3, -1) * voxel
    weights = density.ravel()
    centre = (grid * weights).sum(1) / weights.sum()
    rg = math.sqrt((((grid - centre[:, None]) ** 2).sum(0) * weights).sum() / weights.sum())
    return centre, rg


def _lowpass(volume: np.ndarray, voxel: float, wavelength: float) -> np.ndarray:
    freqs = np.meshgrid(*[np.fft.fftfreq(n, voxel) for n in volume.shape], indexing="ij")
    transfer = np.exp(-math.log(2) * sum(f**2 for f in freqs) * wavelength**2)
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * transfer))


@pytest.mark.parametrize("name", ["1bxn.pdb", "3j9i.pdb", "4v1w.cif"])
def test_density_has_the_models_centre_and_radius_of_gyration(
    shared_data, name, tmp_path, monkeypatch
):
    monkeypatch.setenv("TOMOSCRIBE_CACHE", str(tmp_path))
    path = shared_data / "structures" / name
    assembly = "1" if name.endswith(".cif") else None
    atoms = atom_table(read_structure(path, assembly))
    volume = structure_density(path, 4.0, 8.0, assembly=assembly)
    centre, rg = _centre_and_rg(volume.data.astype(float), 4.0)
    n = volume.shape[0]
    # The centre of mass sits at voxel n // 2 (within 5% of the radius of gyration).
    assert np.abs(centre - (n // 2) * 4.0).max() < 0.05 * atoms.radius_of_gyration_A
    assert rg == pytest.approx(atoms.radius_of_gyration_A, rel=0.05)
    # The cache returns the same map.
    again = structure_density(path, 4.0, 8.0, assembly=assembly)
    np.testing.assert_array_equal(again.data, volume.data)


def test_written_map_overlays_its_model(shared_data, tmp_path, monkeypatch):
    """The header's origin puts the density on the model's own atoms (a new user's
    trial: the map was centred on 0 Å, so it did not overlay the model it came from)."""
    from tomoscribe.io import write_volume

    monkeypatch.setenv("TOMOSCRIBE_CACHE", str(tmp_path))
    path = shared_data / "structures" / "1qvr.pdb"
    write_volume(tmp_path / "map.mrc", structure_density(path, 6.0, 15.0))
    with mrcfile.open(tmp_path / "map.mrc") as mrc:
        data = mrc.data.astype(float)
        origin = np.array([float(mrc.header.origin[a]) for a in "xyz"])
        voxel = float(mrc.voxel_size.x)
    atoms = atom_table(read_structure(path)).xyz_A  # gemmi's coordinates, Å
    ijk = (atoms - origin) / voxel  # (x, y, z) voxel indices
    at_atoms = scipy.ndimage.map_coordinates(data, ijk[:, ::-1].T, order=1)
    assert at_atoms.mean() > 0.5 * data.max()


@pytest.mark.parametrize("name", ["1bxn", "2cg9", "3j9i"])
def test_density_correlates_with_independent_10A_maps(shared_data, name, tmp_path, monkeypatch):
    monkeypatch.setenv("TOMOSCRIBE_CACHE", str(tmp_path))
    with mrcfile.open(shared_data / "maps_10A" / f"{name}.mrc", permissive=True) as mrc:
        reference = mrc.data.astype(float)
    n = reference.shape[0]
    ours = structure_density(
        shared_data / "structures" / f"{name}.pdb", 10.0, 20.0, box_voxels=n
    ).data.astype(float)
    ref_centre, _ = _centre_and_rg(reference, 1.0)
    reference = scipy.ndimage.shift(reference, np.full(3, n // 2) - ref_centre, order=3)
    a, b = _lowpass(ours, 10.0, 30.0), _lowpass(reference, 10.0, 30.0)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.9


def test_unreadable_structure_is_refused(tmp_path):
    (tmp_path / "bad.pdb").write_text("this is not a structure\n")
    with pytest.raises(InputFileError):
        structure_density(tmp_path / "bad.pdb", 10.0, 20.0, cache=False)


def test_structure_larger_than_the_box_is_refused(shared_data):
    with pytest.raises(ParameterError, match="larger box"):
        structure_density(
            shared_data / "structures" / "3j9i.pdb", 10.0, 20.0, box_voxels=8, cache=False
        )


def test_missing_assembly_is_refused(shared_data):
    with pytest.raises(InputFileError, match="no assembly"):
        read_structure(shared_data / "structures" / "4v5d.cif", assembly="1")


def test_bundled_templates_match_their_models():
    manifest = template_manifest()
    assert len(list_templates()) >= 10
    for name in list_templates():
        volume = load_template(name)
        record = manifest[name]
        assert volume.shape == (record["box_voxels"],) * 3 and volume.voxel_size_A[0] == 10.0
        _, rg = _centre_and_rg(volume.data.astype(float), 10.0)
        # 20 Å resolution blurs each atom by σ² = B/(8π²) per axis, B = 4 ln2 · 20².
        blur_var = 4 * math.log(2) * 20.0**2 / (8 * math.pi**2)
        corrected = math.sqrt(max(rg**2 - 3 * blur_var, 0.0))
        assert corrected == pytest.approx(record["radius_of_gyration_A"], rel=0.06), name


def test_bundled_templates_are_rebuilt_identically(shared_data, tmp_path):
    """The shipped maps are what scripts/build_templates.py makes from shared data."""
    record = template_manifest()["1bxn"]
    fresh = structure_density(
        shared_data / "structures" / record["source"], 10.0, 20.0, cache=False
    )
    np.testing.assert_allclose(
        fresh.data.astype(np.float16).astype(np.float32), load_template("1bxn").data, rtol=0, atol=0
    )
