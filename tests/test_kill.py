"""kill -9 at random moments of preprocess, merge, segment, trainset and train: the same
command run again gives an output identical to an uninterrupted run's (trained weights
and losses for `train`), with no temporary, journal, checkpoint or lock left behind.
Two kills per writer here; benchmarks/bench_kill.py runs 20 (issue 20)."""

import random

import pytest

import kill_harness as kh


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return kh.make_inputs(tmp_path_factory.mktemp("kill-inputs"))["root"]


@pytest.mark.parametrize("writer", kh.WRITERS, ids=[w.name for w in kh.WRITERS])
def test_killed_then_rerun_equals_an_uninterrupted_run(writer, inputs, tmp_path):
    records = kh.kill_and_rerun(writer, inputs, tmp_path, kills=2, rng=random.Random(7))
    for record in records:
        assert record["identical"], record
        assert record["leftovers"] == [], record
