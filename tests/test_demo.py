"""The main job, `tomoscribe demo`, end to end on its small size (about 5 minutes).

The default (medium) demo's figures are in docs/performance.md.  On the small size
(seed 0, membranes with one negative copy, 2 averaging iterations) the 2-core dev
machine measured: picking F1 1.00 / 0.98, Dice membrane 0.53 / 0.52 from the networks
(0.63 / 0.67 with vesicles closed), microtubule 0.65 / 0.51, ribosome 0.60 / 0.64
(tomogram 1 / 2), average FSC 0.5 against the true map 34.7 Å from 54 particles.  The bounds
below leave room for thread-order noise but fail if a stage breaks.
"""

import json
import re

import pytest

from tomoscribe.cli.app import main
from tomoscribe.experiments.demo import DemoSettings, run_demo


def test_demo_rejects_unknown_size(tmp_path, capsys):
    assert main(["demo", "--size", "huge", "--out", str(tmp_path / "d"), "-q"]) == 2
    assert "--size must be one of" in capsys.readouterr().err


def test_demo_refuses_a_folder_of_the_users_and_a_bad_threshold_before_any_work(tmp_path, capsys):
    # a trial: a user's preprocessed_2.mrc stopped the demo after 13 s and 80 MB of
    # outputs; --threshold 0 was refused only at the merge, minutes in
    out = tmp_path / "d"
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "mine.mrc").write_bytes(b"the user's")
    assert main(["demo", "--size", "small", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "maps/mine.mrc" in err
    assert sorted(p.name for p in out.rglob("*")) == ["maps", "mine.mrc"]
    fresh = tmp_path / "e"
    assert main(["demo", "--size", "small", "--out", str(fresh), "--threshold", "0", "-q"]) == 2
    assert "threshold" in capsys.readouterr().err and not fresh.exists()


@pytest.mark.slow
def test_small_demo_runs_every_stage_and_scores_against_truth(tmp_path):
    from tomoscribe.outputs import guarding_inputs

    out = tmp_path / "demo"
    with guarding_inputs():  # as on the command line: no file read may be overwritten
        results = run_demo(
            DemoSettings(
                out_dir=out, size="small", membrane_negative_copies=1, average_iterations=2
            )
        )
    for name in (
        "tomogram_1.mrc",
        "tomogram_2.mrc",
        "labels_1.mrc",
        "labels_2.mrc",
        "labels_1_network.mrc",
        "vesicles_1.csv",
        "labels_1.mrc.legend.json",
        "models/ribosome.tsm",
        "picks/ribosomes_1.star",
        "subtomograms/particles.star",
        "average/average.mrc",
        "average/half1.mrc",
        "average/fsc.csv",
        "average/refined.star",
        "truth/ribosome_map.mrc",
        "scores.json",
    ):
        assert (out / name).is_file(), name
    saved = json.loads((out / "scores.json").read_text())
    assert saved["picking"]["tomogram_1"]["f1"] == pytest.approx(
        results["picking"]["tomogram_1"]["f1"]
    )
    # Both tomograms (the second was never annotated).
    for tomo in ("tomogram_1", "tomogram_2"):
        assert results["picking"][tomo]["f1"] > 0.85
        assert results["segmentation"][tomo]["membrane"]["dice"] > 0.4
        assert results["segmentation"][tomo]["microtubule"]["dice"] > 0.4
        assert results["segmentation"][tomo]["ribosome"]["dice"] > 0.45
        # Closing vesicles closes some and raises membrane Dice; other features keep theirs.
        assert results["vesicles"][tomo]["n_closed"] >= 1
        network = results["segmentation_network_only"][tomo]
        assert (
            results["segmentation"][tomo]["membrane"]["dice"] > network["membrane"]["dice"] + 0.03
        )
        assert results["segmentation"][tomo]["ribosome"] == network["ribosome"]
    assert results["average"]["fsc_05_vs_truth_A"] < 45.0
    page = (out / "report.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 5
    assert 'src="http' not in page  # self-contained


def test_training_that_collapses_in_a_short_demo_asks_for_more_epochs(monkeypatch, tmp_path):
    """A trial's `demo --epochs 2` ended with "lower the learning rate", an option the
    demo does not have; the few epochs were the cause, and the demo now says so."""
    from dataclasses import replace

    from tomoscribe.errors import TrainingError
    from tomoscribe.experiments import demo

    def collapses(*args, **kwargs):
        raise TrainingError(
            "the 'membrane' network collapsed twice; lower the learning rate, train longer "
            "or paint more tiles.",
            parameter="learning_rate",
        )

    monkeypatch.setattr(demo, "train_and_reload", collapses)
    short = replace(DemoSettings(), epochs=2)
    with pytest.raises(TrainingError, match="collapsed twice after 2 epochs; run the demo") as err:
        demo._trained(None, tmp_path / "m.tsm", None, "cpu", short)
    assert err.value.parameter == "epochs" and "learning rate" not in str(err.value)
    with pytest.raises(TrainingError, match="lower the learning rate"):  # 20 epochs: as said
        demo._trained(None, tmp_path / "m.tsm", None, "cpu", DemoSettings())

    def learned_nothing(*args, **kwargs):  # the other failure: advice after a colon
        raise TrainingError(
            "the trained network answers 0.07 on the annotated pixels of 'membrane', so it "
            "learned nothing: train longer (`epochs`), cut the training set again.",
            parameter=("epochs",),
        )

    monkeypatch.setattr(demo, "train_and_reload", learned_nothing)
    with pytest.raises(TrainingError) as err:
        demo._trained(None, tmp_path / "m.tsm", None, "cpu", short)
    assert str(err.value) == (
        "the trained network answers 0.07 on the annotated pixels of 'membrane', so it "
        "learned nothing after 2 epochs; run the demo with more `epochs` (default 20)."
    )
