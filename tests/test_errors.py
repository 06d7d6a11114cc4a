"""The error hierarchy: our errors are also the matching builtins, name the parameter they
are about (the library its argument, the command line its flag), survive pickling, and no
warning is silenced wholesale."""

import pickle
import warnings

import mrcfile
import numpy as np
import pytest
import torch

from tomoscribe.cli.app import main
from tomoscribe.errors import (
    InputFileError,
    MissingVoxelSizeError,
    OutputError,
    ParameterError,
    TomoscribeError,
    TrainingError,
)
from tomoscribe.io import read_volume, write_volume
from tomoscribe.preprocess import PreprocessParams
from tomoscribe.segment.engine import segment_array
from tomoscribe.segment.modelfile import FeatureModel
from tomoscribe.segment.network import ArchitectureSpec, build_network
from tomoscribe.volume import Volume


def _mrc_without_voxel_size(path):
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((2, 8, 8), np.float32))
        mrc.voxel_size = 0.0
    return path


def test_a_library_caller_catches_the_builtin_errors(tmp_path):
    with pytest.raises(ValueError) as caught:
        PreprocessParams(bin_factor=0).validate(10.0)
    assert isinstance(caught.value, ParameterError)
    with pytest.raises(OSError) as caught:
        read_volume(tmp_path / "missing.mrc")
    assert isinstance(caught.value, InputFileError)
    with pytest.raises(OSError) as caught:
        read_volume(_mrc_without_voxel_size(tmp_path / "zero.mrc"))
    assert isinstance(caught.value, MissingVoxelSizeError)


def test_oserror_subclasses_keep_the_one_sentence():
    err = InputFileError("a.mrc is truncated; check that it is complete.")
    assert str(err) == "a.mrc is truncated; check that it is complete."
    assert err.errno is None and err.args == ("a.mrc is truncated; check that it is complete.",)
    assert isinstance(OutputError("x"), OSError) and isinstance(TrainingError("x"), RuntimeError)


def test_library_message_names_the_argument(tmp_path):
    with pytest.raises(ParameterError) as caught:
        PreprocessParams(bin_factor=0).validate(10.0)
    assert caught.value.parameters == ("bin_factor",)
    assert str(caught.value).startswith("`bin_factor` must be a positive integer")
    with pytest.raises(MissingVoxelSizeError) as caught:
        read_volume(_mrc_without_voxel_size(tmp_path / "zero.mrc"))
    assert caught.value.parameter == "voxel_size_A"
    assert "`voxel_size_A`" in str(caught.value) and "--" not in str(caught.value)


def test_the_parameter_survives_pickling():  # errors cross dask workers pickled
    for err in (
        ParameterError("`workers` must be at least 1.", parameter="workers"),
        MissingVoxelSizeError("x.tif has none; pass `voxel_size_A`.", parameter="voxel_size_A"),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
        assert copy.parameters == err.parameters


def test_command_line_message_names_the_flag(tmp_path, capsys):
    src = _mrc_without_voxel_size(tmp_path / "zero.mrc")
    assert main(["preprocess", str(src), "-o", str(tmp_path / "p.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "pass --voxel-size." in err and "voxel_size_A" not in err and "`" not in err
    assert main(["info", str(src)]) == 0  # info shows what is there: "not recorded"
    assert "voxel size (x, y, z): not recorded" in capsys.readouterr().out
    assert main(["info", str(src), "--voxel-size", "4"]) == 0


def test_command_line_names_a_boolean_flag(tmp_path, capsys):
    src = tmp_path / "t.mrc"
    noise = np.random.default_rng(0).normal(size=(2, 8, 8)).astype(np.float32)
    write_volume(src, Volume(noise, (10.0,) * 3))  # (a constant one has no contrast)
    out = tmp_path / "p.mrc"
    assert main(["preprocess", str(src), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["preprocess", str(src), "-o", str(out), "-q", "--no-overwrite"]) == 2
    err = capsys.readouterr().err
    assert "already exists; remove it or pass --overwrite." in err and "`" not in err


def test_errors_without_a_parameter_print_unchanged(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.mrc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'missing.mrc'}") and "Errno" not in err


class _Warning(torch.nn.Module):
    """A network that warns each time it runs (a stand-in for a library's warning)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        for name in ("output_stride", "input_multiple", "receptive_radius"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def forward(self, x):
        warnings.warn("probe warning from the network", RuntimeWarning, stacklevel=1)
        return self.inner(x)


def test_segmentation_shows_warnings_and_filters_only_the_read_only_map(tmp_path):
    spec = ArchitectureSpec("unet")
    data = np.random.default_rng(0).normal(size=(3, 40, 40)).astype(np.float32)
    write_volume(tmp_path / "t.mrc", Volume(data, (10.0,) * 3))
    volume = read_volume(tmp_path / "t.mrc")  # a read-only memory map
    quiet = FeatureModel(build_network(spec).eval(), spec, "f", 10.0, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        segment_array(volume, [quiet], engine="direct")
    loud = FeatureModel(_Warning(build_network(spec)).eval(), spec, "f", 10.0, 0.5)
    with pytest.warns(RuntimeWarning, match="probe warning from the network"):
        segment_array(volume, [loud], engine="direct")


def test_every_error_is_a_tomoscribe_error_and_a_builtin():
    import tomoscribe.errors as errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, TomoscribeError) and c is not TomoscribeError
    ]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, (ValueError, OSError, RuntimeError)), cls


def test_a_command_renames_a_library_argument_it_calls_otherwise():
    from tomoscribe.cli.checks import arguments_as

    with pytest.raises(ParameterError) as caught:
        with arguments_as(method="embedding"):
            raise ParameterError("UMAP is missing; use `method=tsne`.", parameter="method")
    assert str(caught.value) == "UMAP is missing; use `embedding=tsne`."
    assert caught.value.parameters == ("embedding",)
    with pytest.raises(ParameterError, match="`seed`"):  # other errors pass unchanged
        with arguments_as(method="embedding"):
            raise ParameterError("`seed` must be whole.", parameter="seed")


def test_our_oserrors_inside_an_atomic_output_are_not_reworded(tmp_path):
    """atomic_path words an OS error met while writing; an InputFileError raised by the
    work inside it (also an OSError now) keeps its own sentence, and nothing is left."""
    from tomoscribe.outputs import atomic_path

    with pytest.raises(InputFileError) as caught:
        with atomic_path(tmp_path / "out.mrc") as tmp:
            tmp.write_bytes(b"partial")
            raise InputFileError("in.mrc is truncated; check that it is complete.")
    assert str(caught.value) == "in.mrc is truncated; check that it is complete."
    assert not isinstance(caught.value, OutputError)
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    with pytest.raises(OutputError, match="could not write"):  # a real OS error is worded
        with atomic_path(tmp_path / "out2.mrc"):
            raise PermissionError(13, "Permission denied")
