import numpy as np
import pytest

from tomoscribe.core.legend import Legend
from tomoscribe.errors import InvalidDataError, ParameterError
from tomoscribe.segment.merge import merge_into
from tomoscribe.volume import Volume


def _maps(*values):
    return [Volume(np.asarray(v, np.float32).reshape(1, 1, -1), (10.0,) * 3) for v in values]


def test_strongest_feature_above_threshold_wins():
    maps = _maps([1.5, 0.2, 0.9, 2.0], [1.2, 1.1, 0.5, 3.0])
    out = np.zeros((1, 1, 4), np.uint8)
    legend = merge_into(maps, ["membrane", "ribosome"], out, threshold=1.0)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 0, 2])
    assert legend.id_of("membrane") == 1 and legend.id_of("ribosome") == 2


def test_threshold_is_inclusive_and_adjustable():
    maps = _maps([1.0, 0.85, 0.7])
    out = np.zeros((1, 1, 3), np.uint8)
    merge_into(maps, ["a"], out, threshold=1.0)
    np.testing.assert_array_equal(out[0, 0], [1, 0, 0])
    merge_into(maps, ["a"], out, threshold=0.8)
    np.testing.assert_array_equal(out[0, 0], [1, 1, 0])


def test_eraser_wins_but_writes_background_and_weights_apply():
    maps = _maps([1.5, 1.5, 1.2], [2.0, 1.0, 1.0])
    out = np.zeros((1, 1, 3), np.uint8)
    legend = merge_into(maps, ["membrane", "gold"], out, erasers=["gold"], weights=[1.0, 1.3])
    # voxel 0: gold 2.6 wins -> background; voxel 1: gold 1.3 < 1.5 -> membrane;
    # voxel 2: gold 1.3 > 1.2 -> background.
    np.testing.assert_array_equal(out[0, 0], [0, 1, 0])
    assert "gold" not in legend and legend.names == ["membrane"]


def test_mismatched_maps_are_refused():
    a = Volume(np.zeros((2, 3, 4), np.float32), (10.0,) * 3)
    b = Volume(np.zeros((2, 3, 5), np.float32), (10.0,) * 3)
    with pytest.raises(InvalidDataError, match="shape"):
        merge_into([a, b], ["a", "b"], np.zeros((2, 3, 4), np.uint8))


def test_nan_in_map_is_refused():
    maps = _maps([np.nan, 1.0])
    with pytest.raises(InvalidDataError):
        merge_into(maps, ["a"], np.zeros((1, 1, 2), np.uint8))


def test_legend_rejects_unknown_eraser_and_duplicates():
    with pytest.raises(ParameterError):
        Legend.from_features(["a"], erasers=["b"])
    with pytest.raises(ParameterError):
        Legend.from_features(["a", "a"])
    # a trial's `merge --names ,x` wrote a legend entry with an empty name
    for names in (["", "x"], ["../x", "y"], ["a/b"]):
        with pytest.raises(ParameterError, match="feature"):
            Legend.from_features(names)


def test_maps_of_different_tomograms_are_not_merged(tmp_path):
    # the trial: `merge` took a map of another cell (or of the same file preprocessed
    # again) beside this one's and wrote a label map of both, exit 0
    from tomoscribe.io import write_volume
    from tomoscribe.outputs import write_provenance
    from tomoscribe.segment.workflow import merge_from_files

    rng = np.random.default_rng(0)
    for name in ("a", "b", "model"):
        (tmp_path / f"{name}.mrc").write_bytes(rng.bytes(4000))

    def segmented(map_name, tomogram, feature):
        path = tmp_path / f"{map_name}.mrc"
        write_volume(path, Volume(rng.random((4, 8, 8)).astype(np.float32) * 2, 10.0))
        write_provenance(
            path, "segment", {"feature": feature}, [tomogram, tmp_path / "model.mrc"],
            extra={"feature": feature},
        )  # fmt: skip
        return path

    one = [
        segmented("a_m", tmp_path / "a.mrc", "membrane"),
        segmented("a_r", tmp_path / "a.mrc", "ribosome"),
    ]
    merge_from_files(one, tmp_path / "ok.mrc")
    # a threshold no voxel reaches: an all-background map, said (it was silent)
    with pytest.warns(UserWarning, match="is all background"):
        merge_from_files(one, tmp_path / "empty.mrc", threshold=1e30)
    other = segmented("b_r", tmp_path / "b.mrc", "ribosome")
    with pytest.raises(ParameterError, match="different tomograms"):
        merge_from_files([one[0], other], tmp_path / "no.mrc")
    (tmp_path / "a.mrc").write_bytes(rng.bytes(4000))  # preprocessed again, same name
    again = segmented("a_r2", tmp_path / "a.mrc", "ribosome")
    with pytest.raises(ParameterError, match="two different times"):
        merge_from_files([one[0], again], tmp_path / "no.mrc")
    assert not (tmp_path / "no.mrc").exists()


def test_maps_of_one_zarr_tomogram_merge_and_of_two_do_not(tmp_path):
    # review: a Zarr store has no fingerprint among the inputs, so the model was taken for
    # the tomogram and maps of one store were refused; segment now names the tomogram
    from tomoscribe.io import write_volume
    from tomoscribe.outputs import write_provenance
    from tomoscribe.segment.workflow import merge_from_files

    rng = np.random.default_rng(1)
    for name in ("m1.tsm", "m2.tsm"):
        (tmp_path / name).write_bytes(rng.bytes(100))

    def segmented(map_name, store, feature, model):
        path = tmp_path / f"{map_name}.mrc"
        write_volume(path, Volume(rng.random((4, 8, 8)).astype(np.float32) * 2, 10.0))
        write_provenance(
            path, "segment", {"feature": feature}, [store, tmp_path / model],
            extra={"feature": feature, "tomogram": {"path": str(store)}},
        )  # fmt: skip
        return path

    store = tmp_path / "t.zarr"
    a = segmented("a", store, "membrane", "m1.tsm")
    b = segmented("b", store, "ribosome", "m2.tsm")
    merge_from_files([a, b], tmp_path / "ok.mrc")
    c = segmented("c", tmp_path / "other.zarr", "ribosome", "m2.tsm")
    with pytest.raises(ParameterError, match="different tomograms"):
        merge_from_files([a, c], tmp_path / "no.mrc")


def test_what_is_not_a_set_of_feature_maps_is_refused(tmp_path, capsys):
    # the trial: merge took a preprocessed tomogram as a feature (13% of voxels marked),
    # one file twice, maps at other origins, and a feature named "background" (every
    # voxel written 0, the legend saying 1=background), all exit 0
    from tomoscribe.cli.app import main
    from tomoscribe.io import write_volume
    from tomoscribe.outputs import write_provenance

    rng = np.random.default_rng(1)
    paths = {}
    for name, origin in (("a", (0, 0, 0)), ("b", (0, 0, 0)), ("shifted", (100, 200, 300))):
        paths[name] = tmp_path / f"{name}.mrc"
        data = (rng.random((4, 8, 8)) * 2).astype(np.float32)
        write_volume(paths[name], Volume(data, 12.0, origin))
    paths["pre"] = tmp_path / "pre.mrc"
    write_volume(paths["pre"], Volume(rng.normal(size=(4, 8, 8)).astype(np.float32), 12.0))
    write_provenance(paths["pre"], "preprocess", {"lowpass_A": 30.0}, [paths["a"]])
    cases = [
        (["a", "pre"], "x,y", "pre.mrc was written by `tomoscribe preprocess`, not by `segment`"),
        (["a", "a"], "x,y", "is given twice"),
        (["a", "shifted"], "x,y", "starts at (100.0, 200.0, 300.0) Å but a.mrc at (0.0, 0.0, 0.0)"),
        (["a", "b"], "x,background", "'background' names label 0"),
    ]
    for files, names, words in cases:
        args = ["merge", *(str(paths[f]) for f in files), "--names", names, "-o"]
        assert main([*args, str(tmp_path / "out.mrc")]) == 2, files
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
        assert not (tmp_path / "out.mrc").exists()
    assert main(["merge", str(paths["a"]), str(paths["b"]), "--names", "x,y", "-o",
                 str(tmp_path / "out.mrc"), "--weight", "y=2"]) == 0  # fmt: skip
    assert "; weights y ×2" in capsys.readouterr().out  # the summary said nothing of them


def test_an_interrupted_merge_leaves_labels_and_legend_of_one_run(tmp_path, monkeypatch):
    """Trial: merge interrupted while it checked the new labels (every slab read) left
    the first run's labels under the second run's legend (1 = memB where the voxels
    were memA's), and said nothing unfinished was left."""
    from tomoscribe.core.legend import read_legend
    from tomoscribe.io import write_volume
    from tomoscribe.outputs import write_provenance
    from tomoscribe.segment import workflow
    from tomoscribe.segment.workflow import merge_from_files

    rng = np.random.default_rng(0)
    (tmp_path / "t.mrc").write_bytes(rng.bytes(4000))
    maps = []
    for feature in ("mem", "rib"):
        path = tmp_path / f"t_{feature}.mrc"
        write_volume(path, Volume(rng.random((4, 8, 8)).astype(np.float32) * 2, 10.0))
        write_provenance(path, "segment", {"feature": feature}, [tmp_path / "t.mrc"],
                         extra={"feature": feature})  # fmt: skip
        maps.append(path)
    out = tmp_path / "labels.mrc"
    merge_from_files(maps, out)
    labels, legend = out.read_bytes(), read_legend(out).as_dict()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "iter_slabs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge_from_files(maps[::-1], out, overwrite=True)  # other order: other numbers
    assert out.read_bytes() == labels and read_legend(out).as_dict() == legend
