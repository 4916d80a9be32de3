"""The executor against exact distributions: every program of the corpus
(:data:`support.exact_corpus.CASES`) has a known answer. Every program runs on the engine
QMK chooses and, when it is Clifford, also on the statevector engine, so the stabilizer
engine (in stim-batch and in trajectories mode) and the statevector engine are held to
the same answers.

The check (:func:`support.exact.assert_distribution`), for ``SHOTS`` shots at a stated seed:

- an outcome of probability 0 never appears (asserted exactly);
- the counts of the possible outcomes pass a chi-square goodness-of-fit test with
  p-value > ``P_MIN`` (cells with expected count below 5 are pooled first, so the
  chi-square approximation holds). A correct executor fails this with probability
  1e-4 per check; the seeds are fixed, so a run is reproducible either way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import qmk
from qmk import defaults
from qmk.engines.registry import availability
from qmk.qvm.asm import assemble
from support.exact import P_MIN, assert_distribution
from support.exact_corpus import CASES, PI, Case, bern, sin2

SHOTS = 3000
SEED = 20_240_611

CASE_IDS = [c.id for c in CASES]
RUNS = [
    pytest.param(c, engine, id=f"{c.id}-{engine or 'auto'}")
    for c in CASES
    for engine in ((None, "statevector") if c.clifford else (None,))
]


# -- tests --------------------------------------------------------------------------


def test_the_corpus_has_unique_ids_and_at_least_thirty_programs() -> None:
    assert len(set(CASE_IDS)) == len(CASE_IDS)
    assert len(CASES) >= 30


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_every_expected_distribution_is_a_distribution_over_the_events(c: Case) -> None:
    width = len(c.graph.resources.events)
    assert all(len(k) == width and set(k) <= {"0", "1"} for k in c.expected)
    assert all(p >= 0 for p in c.expected.values())
    assert math.isclose(sum(c.expected.values()), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize(("c", "engine"), RUNS)
def test_program_gives_its_exact_distribution(c: Case, engine: str | None) -> None:
    result = qmk.run(c.graph, shots=SHOTS, seed=SEED, engine=engine, noise=False)
    expected_engine = engine or ("stabilizer" if c.clifford else "statevector")
    assert result.engine == expected_engine
    assert result.bits.shape == (SHOTS, len(c.graph.resources.events))
    assert_distribution(result.counts, c.expected, SHOTS)


@pytest.mark.parametrize("engine", [defaults.CUSTATEVEC, defaults.QSIM_GPU])
def test_every_program_gives_its_exact_distribution_on_each_gpu_engine(engine: str) -> None:
    """The whole corpus on a GPU engine (skips, with the reason, where it cannot run:
    no CUDA GPU, or its package missing); every failing program is named at once."""
    can = availability(engine)
    if not can.available:
        pytest.skip(f"{engine}: {can.reason}")
    failures = []
    for c in CASES:
        result = qmk.run(c.graph, shots=SHOTS, seed=SEED, engine=engine, noise=False)
        assert result.engine == engine
        try:
            assert_distribution(result.counts, c.expected, SHOTS)
        except AssertionError as e:
            failures.append(f"{c.id}: {e}")
    assert not failures, "\n".join(failures)


def test_the_corpus_exercises_both_engines_and_both_modes() -> None:
    seen = set()
    for c in CASES:
        for engine in (None, "statevector") if c.clifford else (None,):
            result = qmk.run(c.graph, shots=1, seed=SEED, engine=engine, noise=False)
            seen.add((result.engine, result.telemetry.mode))
    assert seen == {
        ("stabilizer", "stim-batch"),
        ("stabilizer", "trajectories"),
        ("statevector", "trajectories"),
    }


BRANCHES_THEN_A_COIN = assemble(
    """
.caps CAP_ALLOC
.events ma mb mc md
alloc: ALLOC_LQ vq:a, vq:b, vq:c, vq:d
APPLY_H vq:a
APPLY_H vq:b
APPLY_H vq:c
APPLY_H vq:d
MEASURE_Z vq:a, out:ma
MEASURE_Z vq:b, out:mb
MEASURE_Z vq:c, out:mc
APPLY_H vq:a when ev:ma == 1
MEASURE_Z vq:d, out:md
free: FREE_LQ vq:a, vq:b, vq:c, vq:d
"""
)


@pytest.mark.parametrize("engine", ["statevector", "stabilizer"])
def test_shots_in_different_branches_are_independent(engine: str) -> None:
    # Three fair mid-circuit outcomes split the shots into 8 branches; md is a fair coin
    # drawn in each branch. Shots are independent, so over seeds the number of md = 1 is
    # Binomial(N, 1/2): sum((X - N/2)^2 / (N/4)) over K seeds is chi-square with K degrees
    # of freedom. Branches that replay one random stream make it ~8 times too large.
    shots, seeds = 2000, 40
    ones = np.array(
        [
            qmk.run(BRANCHES_THEN_A_COIN, shots=shots, seed=seed, engine=engine, noise=False)
            .bits[:, 3]
            .sum()
            for seed in range(seeds)
        ],
        dtype=float,
    )
    statistic = float(((ones - shots / 2) ** 2 / (shots / 4)).sum())
    pvalue = stats.chi2.sf(statistic, seeds)
    assert pvalue > P_MIN, f"counts of md = 1 over-dispersed: chi2 {statistic:.0f} on {seeds} df"


def test_the_chi_square_check_rejects_a_wrong_distribution() -> None:
    # The check can fail: a fair coin's counts do not fit P(1) = sin^2(pi/8).
    with pytest.raises(AssertionError, match="chi-square"):
        assert_distribution({"0": 1500, "1": 1500}, bern(sin2(PI / 8)), 3000)
    with pytest.raises(AssertionError, match="probability 0"):
        assert_distribution({"00": 2999, "01": 1}, {"00": 0.5, "11": 0.5}, 3000)
