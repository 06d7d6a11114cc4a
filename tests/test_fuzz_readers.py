"""Hypothesis fuzzing of every reader: a mutated valid file is read or refused with a
project error, never another exception or a hang.

Bounded for CI (``EXAMPLES`` per reader, derandomized, no shrinking, about a minute on
two cores); ``benchmarks/bench_fuzz.py`` runs the same generators for ≥ 100,000 cases.
The particle readers (``io/particles.py`` and the handlers of ``io/formats``) are held
to the same rule.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fuzz_targets as ft

EXAMPLES = 400

SEED_PARAMS = [pytest.param(t, id=t.name) for t in ft.TARGETS]
PARAMS = [pytest.param(t, id=t.name) for t in ft.TARGETS]


@pytest.fixture(scope="module")
def seeds_of(tmp_path_factory):
    cache = {}

    def get(target: ft.Target):
        if target.name not in cache:
            work = tmp_path_factory.mktemp(f"seeds-{target.name}")
            cache[target.name] = (work, target.make_seeds(work))
        return cache[target.name]

    return get


@pytest.mark.parametrize("target", SEED_PARAMS)
def test_unmutated_seeds_are_accepted(target, seeds_of):
    work, seeds = seeds_of(target)
    for seed in seeds:
        outcome = ft.run_case(target, seed.files, work / f"case{target.suffix}")
        refused_by_design = target.name == "tiff" and seed.name == "rgb.tif"
        assert outcome.kind == ("refused" if refused_by_design else "accepted"), (
            seed.name,
            outcome.detail,
        )


@pytest.mark.parametrize("target", PARAMS)
def test_mutated_files_are_read_or_refused(target, seeds_of):
    work, seeds = seeds_of(target)
    counts = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def check(data):
        draw = ft.HypothesisDraw(data)
        seed = draw.choice(seeds)
        outcome = ft.run_case(target, ft.mutate(seed, draw), work / f"case{target.suffix}")
        assert outcome.kind in counts, (
            f"{target.name} reader: {outcome.kind} on a mutation of {seed.name}:\n{outcome.detail}"
        )
        counts[outcome.kind] += 1

    check()
    # The mutations must exercise both paths, or the test proves little.
    assert counts["refused"] > 0.05 * EXAMPLES and counts["accepted"] > 0, counts
