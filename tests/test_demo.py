"""The main job, `tomoscribe demo`, end to end on its small size (reduced training).

The default (medium) demo's figures are in docs/performance.md; this test checks that
every stage runs, writes its files, and scores well above chance against the truth.
"""

import json
import re

import pytest

from tomoscribe.cli.app import main
from tomoscribe.demo import DemoSettings, run_demo


def test_demo_rejects_unknown_size(tmp_path, capsys):
    assert main(["demo", "--size", "huge", "--out", str(tmp_path / "d"), "-q"]) == 2
    assert "--size must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_small_demo_runs_every_stage_and_scores_against_truth(tmp_path):
    out = tmp_path / "demo"
    results = run_demo(DemoSettings(out_dir=out, size="small", epochs=10, n_negative=60,
                                    membrane_negative_copies=1, average_iterations=2))
    for name in ("tomogram_1.mrc", "tomogram_2.mrc", "labels_1.mrc", "labels_2.mrc",
                 "models/ribosome.tsm", "picks/ribosomes_1.star", "subtomograms/particles.star",
                 "average/average.mrc", "average/half1.mrc", "average/fsc.csv",
                 "average/refined.star", "truth/ribosome_map.mrc", "scores.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "scores.json").read_text())
    assert saved["picking"]["tomogram_1"]["f1"] == pytest.approx(results["picking"]["tomogram_1"]["f1"])
    # Well above chance on both tomograms (the second was never annotated).
    for tomo in ("tomogram_1", "tomogram_2"):
        assert results["picking"][tomo]["f1"] > 0.6
        assert results["segmentation"][tomo]["membrane"]["dice"] > 0.3
        assert results["segmentation"][tomo]["ribosome"]["dice"] > 0.4
    assert results["average"]["fsc_05_vs_truth_A"] < 60.0
    page = (out / "report.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 6
    assert "src=\"http" not in page  # self-contained
