import pickle

import pytest
import torch

from tomoscribe.errors import InputFileError, ModelFileError
from tomoscribe.segment.modelfile import FeatureModel, load_model, save_model
from tomoscribe.segment.network import ArchitectureSpec, build_network


def _model(spec=ArchitectureSpec()):
    network = build_network(spec)
    network.initialise(torch.Generator().manual_seed(0), 0.05)
    return FeatureModel(network, spec, "membrane", 10.0, 0.8, {"annotator": "a"})


@pytest.mark.parametrize(
    "spec", [ArchitectureSpec(), ArchitectureSpec("chen2017-2.5d", 1), ArchitectureSpec("unet")]
)
def test_round_trip(tmp_path, spec):
    model = _model(spec)
    save_model(tmp_path / "m.tsm", model)
    back = load_model(tmp_path / "m.tsm")
    assert back.feature == "membrane" and back.amplitude == 0.8 and back.voxel_size_A == 10.0
    assert back.spec == spec and back.metadata["annotator"] == "a"
    x = torch.randn(1, spec.in_channels, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.network.eval()(x), back.network(x))


def test_truncated_model_is_refused(tmp_path):
    save_model(tmp_path / "m.tsm", _model())
    raw = (tmp_path / "m.tsm").read_bytes()
    (tmp_path / "cut.tsm").write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(ModelFileError, match="not a readable model"):
        load_model(tmp_path / "cut.tsm")


def test_pickle_is_never_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    (tmp_path / "evil.tsm").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "evil.tsm")


def test_weights_of_another_architecture_are_refused(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    save_model(tmp_path / "m.tsm", _model())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.tsm"), "pt") as handle:
        meta = handle.metadata()
    tensors = load_file(tmp_path / "m.tsm")
    tensors["conv1.weight"] = tensors["conv1.weight"][:, :, :5, :5].contiguous()
    save_file(tensors, str(tmp_path / "bad.tsm"), metadata=meta)
    with pytest.raises(ModelFileError, match="does not fit"):
        load_model(tmp_path / "bad.tsm")
    record = json.loads(meta["tomoscribe_model"])
    record["format_version"] = 99
    save_file(
        load_file(tmp_path / "m.tsm"),
        str(tmp_path / "new.tsm"),
        metadata={"tomoscribe_model": json.dumps(record)},
    )
    with pytest.raises(ModelFileError, match="newer tomoscribe"):
        load_model(tmp_path / "new.tsm")


def test_a_folder_given_as_the_model_is_named_as_one(tmp_path):
    """A dataset folder passed where the model goes (arguments swapped) exists: saying it
    does not would send the user looking for the wrong mistake."""
    (tmp_path / "sub.zarr").mkdir()
    with pytest.raises(InputFileError, match="is a folder, not a model file"):
        load_model(tmp_path / "sub.zarr")


def test_another_kind_of_file_given_as_the_model_is_not_called_damaged(tmp_path):
    """A JSON record or a STAR file given where the model goes was 'truncated or
    damaged, so retrain'; a truncated model still is."""
    (tmp_path / "m.tsm.json").write_text('{"software": "tomoscribe"}\n')
    with pytest.raises(ModelFileError, match="is not a model file .* some other kind"):
        load_model(tmp_path / "m.tsm.json")
    save_model(tmp_path / "m.tsm", _model())
    raw = (tmp_path / "m.tsm").read_bytes()
    (tmp_path / "cut.tsm").write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        load_model(tmp_path / "cut.tsm")
