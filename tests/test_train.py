import numpy as np
import pytest
import torch

from tomoscribe.cli.app import main
from tomoscribe.errors import ParameterError, TrainingError
from tomoscribe.segment.modelfile import load_model
from tomoscribe.segment.network import ArchitectureSpec
from tomoscribe.segment.train import TrainParams, split_by_source, train_feature
from tomoscribe.segment.trainset import (
    build_training_set,
    combine_training_sets,
    painted_mask_source,
    save_training_set,
)
from tomoscribe.volume import Volume


def _disc_set(seed: int, voxel_A: float = 10.0, feature: str = "disc"):
    """Bright discs (the feature) on several slices of one volume, negatives elsewhere."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(12, 96, 96)).astype(np.float32) * 0.5
    labels = np.zeros(data.shape, np.uint8)
    yy, xx = np.mgrid[:96, :96]
    positives = []
    for z in range(1, 11):
        cy, cx = rng.integers(20, 40, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 6**2
        data[z][disc] += 2.0
        labels[z][disc] = 1
        positives.append((z, cy, cx))
    negatives = [(z, 75, 75) for z in range(12)]
    volume = Volume(data, (voxel_A,) * 3)
    return build_training_set(
        volume,
        positives,
        negatives,
        painted_mask_source(Volume(labels, (voxel_A,) * 3)),
        feature,
        tile_size=32,
        seed=seed,
    )


@pytest.fixture(scope="module")
def discs():
    return _disc_set(0)


def test_training_is_reproducible_and_recorded(discs):
    params = TrainParams(epochs=3, seed=5, optimizer="adam", learning_rate=3e-4)
    a = train_feature(discs, ArchitectureSpec(), params, device="cpu")
    b = train_feature(discs, ArchitectureSpec(), params, device="cpu")
    for (name, wa), wb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(wa, wb), name
    history = a.metadata["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0]["learning_rate"] == pytest.approx(3e-4)
    assert history[1]["learning_rate"] == pytest.approx(3e-4 * 0.9)
    assert all(h["validation_loss"] is not None for h in history)
    assert a.amplitude > 0 and a.voxel_size_A == 10.0 and a.feature == "disc"


def test_network_learns_the_feature(discs):
    model = train_feature(
        discs,
        ArchitectureSpec(),
        TrainParams(epochs=12, seed=0, validation_fraction=0),
        device="cpu",
    )
    history = model.metadata["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.5
    assert model.metadata["training"]["mean_output_on_negatives"] < 0.25 * model.amplitude


def test_collapsed_training_is_refused(discs):
    with pytest.raises(TrainingError):
        train_feature(
            discs,
            ArchitectureSpec(),
            TrainParams(epochs=2, learning_rate=5.0, seed=0),
            device="cpu",
        )


def test_validation_split_keeps_copies_together(discs):
    train, val = split_by_source(discs, 0.2, seed=0)
    assert val.any() and train.any()
    assert not set(discs.source[train]) & set(discs.source[val])
    assert discs.positive[val].any() and (~discs.positive[val]).any()


def test_context_beyond_training_set_is_refused(discs):
    with pytest.raises(ParameterError, match="`context_slices=1`"):
        train_feature(
            discs, ArchitectureSpec("chen2017-2.5d", 1), TrainParams(epochs=1), device="cpu"
        )


def test_training_sets_of_several_tomograms_train_one_network(discs, tmp_path, capsys):
    other = _disc_set(1)
    combined = combine_training_sets([discs, other], ["a", "b"])
    assert len(combined) == len(discs) + len(other)
    assert combined.n_positive == discs.n_positive + other.n_positive
    np.testing.assert_array_equal(combined.tiles[len(discs) :], other.tiles)
    # Every box keeps its own index, so the validation split still holds out whole boxes.
    first, second = combined.source[: len(discs)], combined.source[len(discs) :]
    assert second.min() > first.max()
    assert len(set(combined.source)) == len(set(discs.source)) + len(set(other.source))
    train, val = split_by_source(combined, 0.2, seed=0)
    assert not set(combined.source[train]) & set(combined.source[val])
    assert combined.metadata["n_positive_boxes"] == 20
    assert [c["name"] for c in combined.metadata["combined_from"]] == ["a", "b"]

    paths = [
        save_training_set(tmp_path / f"{n}.trainset", s) for n, s in (("a", discs), ("b", other))
    ]
    model_path = tmp_path / "disc.tsm"
    assert (
        main(
            [
                "train",
                *map(str, paths),
                "-o",
                str(model_path),
                "--epochs",
                "12",
                "--validation",
                "0",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    assert "from 2 training sets" in capsys.readouterr().out
    record = load_model(model_path).metadata["training"]
    assert record["n_train_tiles"] == len(combined)
    assert record["trainset"]["n_positive_boxes"] == 20


def test_unlike_training_sets_are_not_combined(discs, tmp_path, capsys):
    with pytest.raises(ParameterError, match="voxel sizes"):
        combine_training_sets([discs, _disc_set(1, voxel_A=12.0)])
    with pytest.raises(ParameterError, match="features"):
        combine_training_sets([discs, _disc_set(1, feature="vesicle")])
    relabelled = _disc_set(1)
    relabelled.metadata["preprocessing"] = {"lowpass_A": 20.0}
    discs_pre = _disc_set(0)
    discs_pre.metadata["preprocessing"] = {"lowpass_A": 60.0}
    with pytest.raises(ParameterError, match="preprocessing"):
        combine_training_sets([discs_pre, relabelled])
    a = save_training_set(tmp_path / "a.trainset", discs)
    b = save_training_set(tmp_path / "b.trainset", _disc_set(1, voxel_A=12.0))
    out = tmp_path / "m.tsm"
    assert main(["train", str(a), str(b), "-o", str(out), "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err
    assert "voxel sizes (10 and 12 Å)" in err and "b.trainset" in err
    assert not out.exists() and not list(tmp_path.glob("m.tsm*"))


@pytest.mark.parametrize("optimizer,momentum", [("adam", 0.0), ("sgd", 0.9)])
def test_a_killed_training_resumes_to_the_same_weights(
    discs, tmp_path, monkeypatch, optimizer, momentum
):
    """Interrupted after epoch 2 of 4 (its checkpoint saved), then run again: the same
    weights, bit for bit, and the same losses as an uninterrupted training."""
    from tomoscribe.segment import checkpoint as ckpt
    from tomoscribe.segment import train as train_module

    params = TrainParams(
        epochs=4,
        seed=3,
        optimizer=optimizer,
        momentum=momentum,
        learning_rate=3e-4 if optimizer == "adam" else 0.01,
    )
    whole = train_feature(discs, ArchitectureSpec(), params, device="cpu")
    path = tmp_path / ".m.tsm.checkpoint"
    real_save = ckpt.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        if args[2] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_feature(discs, ArchitectureSpec(), params, device="cpu", checkpoint=path)
    assert path.is_file()
    torch.manual_seed(12345)  # whatever the process did in between
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = train_feature(discs, ArchitectureSpec(), params, device="cpu", checkpoint=path)
    for (name, a), b in zip(
        whole.network.state_dict().items(), resumed.network.state_dict().values()
    ):
        assert torch.equal(a, b), name
    losses = [
        [(h["train_loss"], h["validation_loss"]) for h in m.metadata["training"]["history"]]
        for m in (whole, resumed)
    ]
    assert losses[0] == losses[1]
    assert not path.exists()  # removed when training ends
    # the trial: a resumed training did not say so
    from tomoscribe.segment.workflow import resumed_training

    assert resumed.metadata["training"]["resumed_after_epoch"] == 2
    assert resumed_training(whole) is None
    assert "after epoch 2 of 4" in resumed_training(resumed)


def test_a_checkpoint_of_other_settings_is_not_used(discs, tmp_path):
    from tomoscribe.segment.checkpoint import load_checkpoint, training_key

    path = tmp_path / ".m.tsm.checkpoint"
    path.write_bytes(b"damaged")
    assert load_checkpoint(path, "any") is None  # damaged: start over
    key_a = training_key(discs.tiles, discs.masks, {"epochs": 4})
    key_b = training_key(discs.tiles, discs.masks, {"epochs": 5})
    assert key_a != key_b


@pytest.mark.parametrize(
    "changes",
    [{"lr_decay_per_epoch": 0.0}, {"lr_decay_per_epoch": -1.0}, {"lr_decay_per_epoch": 1.5},
     {"l1_weight_decay": -1.0}, {"l1_weight_decay": float("nan")}],
)  # fmt: skip
def test_training_parameters_that_cannot_train_are_refused_first(changes):
    # a trial: --lr-decay 0 and --l1 -1 trained to the end, then blamed the paintings
    TrainParams().validate()
    with pytest.raises(ParameterError):
        TrainParams(**changes).validate()


def test_a_full_disk_while_checkpointing_is_one_sentence_and_a_stale_checkpoint_goes(
    discs, tmp_path, monkeypatch
):
    """Trial: on a full disk `train` ended in safetensors' traceback (exit 1), and the
    checkpoint of an earlier run with other settings kept the disk full, so every rerun
    failed alike."""
    import safetensors.torch

    from tomoscribe.errors import OutputError
    from tomoscribe.segment import checkpoint as ckpt

    params = TrainParams(epochs=3, batch_size=8, seed=0)
    path = tmp_path / ".m.tsm.checkpoint"
    stale = {"w": torch.zeros(4)}
    safetensors.torch.save_file(stale, path, metadata={ckpt._FORMAT: '{"key": "other"}'})
    mine = tmp_path / "mine.checkpoint"  # not a checkpoint: never removed
    mine.write_bytes(b"the user's")
    ckpt.remove_stale(mine, "any")
    assert mine.read_bytes() == b"the user's"

    def full(*args, **kwargs):
        from safetensors import SafetensorError

        raise SafetensorError('IoError(Os { code: 28, message: "No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OutputError, match="No space left on device.*free space"):
        train_feature(discs, ArchitectureSpec(), params, device="cpu", checkpoint=path)
    assert not path.exists()  # the other training's checkpoint was removed first
    assert [p.name for p in tmp_path.iterdir()] == ["mine.checkpoint"]  # no temporaries


def test_an_ensemble_stopped_in_its_second_member_resumes_the_first(discs, tmp_path):
    """Trial: a killed `train --ensemble 3` trained its finished members again on the
    rerun (each member's checkpoint went when its training ended), and left
    `.NAME.checkpoint-N` of members a later run did not have."""
    from tomoscribe.progress import Cancelled
    from tomoscribe.segment.workflow import train_from_files

    trainset = save_training_set(tmp_path / "d.trainset", discs)
    output = tmp_path / "d.tsm"
    (tmp_path / ".d.tsm.checkpoint-4").write_bytes(b"a user's, not a checkpoint")
    params = TrainParams(epochs=2, seed=3, optimizer="adam", learning_rate=3e-4)
    epochs_run = []

    def stop_in_member_two(record):
        epochs_run.append(record)
        if len(epochs_run) == 3:  # member 2's first epoch, its checkpoint saved
            raise Cancelled

    with pytest.raises(Cancelled):
        train_from_files([trainset], output, ArchitectureSpec(), params, members=2,
                         device="cpu", on_epoch=stop_in_member_two)  # fmt: skip
    assert not output.exists()
    epochs_run.clear()
    model = train_from_files([trainset], output, ArchitectureSpec(), params, members=2,
                             device="cpu", on_epoch=epochs_run.append)  # fmt: skip
    assert len(epochs_run) == 1  # member 2's second epoch only; member 1 was not retrained
    assert model.metadata["ensemble"]["members_kept"] == 2
    left = sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name)
    assert left == [".d.tsm.checkpoint-4"]  # not a checkpoint: not ours to remove


def test_a_training_refused_as_collapsed_leaves_no_checkpoint(discs, tmp_path, monkeypatch):
    """A trial: `train` ending in "the 'tube' network collapsed twice" (exit 2) left
    `.NAME.checkpoint` (1.5 MB) beside the model it did not write, at every rerun; a
    collapsed network is nothing to resume."""
    from tomoscribe.errors import TrainingError
    from tomoscribe.segment import ensemble, workflow

    trainset = save_training_set(tmp_path / "d.trainset", discs)

    def trains_then_collapses(sets, spec, params, members, per_set, train, say, names):
        train(sets[0], params, 0)  # a member trains to its end, its checkpoint kept
        assert any(p.name.startswith(".d.tsm.checkpoint") for p in tmp_path.iterdir())
        raise TrainingError("the 'disc' network collapsed twice.")

    monkeypatch.setattr(ensemble, "train_ensemble", trains_then_collapses)
    with pytest.raises(TrainingError):
        workflow.train_from_files([trainset], tmp_path / "d.tsm", ArchitectureSpec(),
                                  TrainParams(epochs=1, seed=0), device="cpu")  # fmt: skip
    assert not [p.name for p in tmp_path.iterdir() if "checkpoint" in p.name or "d.tsm" in p.name]


def test_one_training_set_given_twice_is_refused(discs, tmp_path, capsys):
    """A trial: `train a.trainset a.trainset` trained on every box twice, unsaid (its
    held-out boxes' copies among the training ones)."""
    trainset = save_training_set(tmp_path / "d.trainset", discs)
    argv = [
        "train",
        str(trainset),
        str(tmp_path / "." / "d.trainset"),
        "-o",
        str(tmp_path / "m.tsm"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is given twice" in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.tsm").exists()
