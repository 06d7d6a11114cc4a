"""The zarr stores tomoscribe writes, under whichever zarr is installed (2.18 or 3)."""

import numpy as np
import pytest

from tomoscribe.classify.featurefile import load_features, save_features
from tomoscribe.io.zarrstore import open_group, zarr_major

pytestmark = pytest.mark.zarr


def test_feature_store_round_trip_is_zarr_v2(tmp_path):
    import zarr

    table = {
        "features": np.arange(12, dtype=np.float32).reshape(4, 3),
        "labels": np.array([0, 1, 1, 2]),
    }
    save_features(tmp_path / "f.zarr", table, {"layer": "output"})
    back, record = load_features(tmp_path / "f.zarr")
    np.testing.assert_array_equal(back["features"], table["features"])
    np.testing.assert_array_equal(back["labels"], table["labels"])
    assert record["layer"] == "output"
    # zarr v2 layout on disk, which zarr 2.18 (copick's) and zarr 3 both open
    assert (tmp_path / "f.zarr" / ".zgroup").is_file()
    assert (tmp_path / "f.zarr" / "features" / ".zarray").is_file()
    assert zarr_major() == int(zarr.__version__.split(".")[0])
    assert isinstance(open_group(tmp_path / "f.zarr")["labels"], zarr.Array)
