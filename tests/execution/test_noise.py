"""Logical noise: injected where the profile says, at the rate it predicts, never with noise off."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import qmk
from qmk.execution.plan import build_plan, decoder_load
from qmk.qec import logical_model
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify

NOISY = "logical:surface_code(d=1)"
QUBIT = "qubit_gate_us_e3"


def _h_chain(pairs: int, *, t_gate: bool = False, fence: bool = False) -> str:
    body = "\n".join(f"h{i}a: APPLY_H vq:q\nh{i}b: APPLY_H vq:q" for i in range(pairs))
    t = "t: APPLY_T vq:q\ntd: APPLY_TDG vq:q\n" if t_gate else ""
    pause = "e: FENCE_EPOCH\n" if fence else ""
    return f"""
.caps CAP_ALLOC
a: ALLOC_LQ vq:q, profile="{NOISY}"
{t}{body}
{pause}m: MEASURE_Z vq:q, out:m
f: FREE_LQ vq:q
"""


#: Each way a noisy run samples its shots, and the H chain that takes it: a Clifford
#: chain is stim's; a T makes it the density matrix's (one qubit, every shot alike), and
#: a fence before the measurement, a pause point, keeps it on trajectories.
PATHS = {
    "stim-batch": {"t_gate": False},
    "density-matrix": {"t_gate": True},
    "trajectories": {"t_gate": True, "fence": True},
}


def _plan(text: str, *, noise: bool = True):
    return build_plan(verify(assemble(text)), noise=noise, qubit=QUBIT, default_profile=NOISY)


def test_every_op_gets_the_profiles_logical_pauli_rate() -> None:
    plan = _plan(_h_chain(3))
    model = logical_model(NOISY, QUBIT)
    h_rate = model.pauli_error(model.op_cycles("APPLY_H"))
    ops = [loc for loc in plan.noise if loc.cause == "op"]
    assert len(ops) >= 6
    for loc in ops:
        assert (loc.px, loc.py, loc.pz) == pytest.approx((h_rate.px, h_rate.py, h_rate.pz))
    assert model.logical_error_per_cycle > 1e-4  # the test below needs visible errors


def test_no_noise_plans_no_error_and_runs_inject_none() -> None:
    text = _h_chain(20)
    assert _plan(text, noise=False).noise == ()
    result = qmk.run(assemble(text), shots=20_000, seed=3, noise=False, qubit=QUBIT)
    assert result.telemetry.injected_logical_errors == 0
    assert result.counts == {"0": 20_000}


@pytest.mark.parametrize("path", ["stim-batch", "trajectories"])
def test_injected_error_count_matches_the_predicted_rate(path: str) -> None:
    text = _h_chain(25, **PATHS[path])
    shots = 40_000
    plan = _plan(text)
    rates = np.array([loc.total for loc in plan.noise])
    mean = shots * rates.sum()
    sd = math.sqrt(shots * (rates * (1 - rates)).sum())
    result = qmk.run(assemble(text), shots=shots, seed=11, qubit=QUBIT, profile=NOISY)
    assert result.telemetry.mode == path
    assert abs(result.telemetry.injected_logical_errors - mean) < 5 * sd


def test_a_density_matrix_run_injects_no_error_it_applies_every_channel_exactly() -> None:
    result = qmk.run(
        assemble(_h_chain(25, t_gate=True)), shots=1000, seed=11, qubit=QUBIT, profile=NOISY
    )
    assert (result.telemetry.mode, result.telemetry.noise_sampling) == ("density-matrix", "exact")
    assert result.telemetry.injected_logical_errors == 0
    assert result.telemetry.simulations == 1


@pytest.mark.parametrize("path", list(PATHS))
def test_logical_errors_flip_outcomes_at_the_predicted_rate(path: str) -> None:
    # After an even number of H gates the ideal outcome is 0. A logical error
    # (X, Y or Z, equally likely) flips it with probability 2/3 whichever basis it
    # ends up in, so P(1) = (1 - prod(1 - 4 p_i / 3)) / 2 over the locations.
    text = _h_chain(25, **PATHS[path])
    shots = 40_000
    plan = _plan(text)
    flips = np.array([2 * loc.total / 3 for loc in plan.noise])
    p1 = (1 - np.prod(1 - 2 * flips)) / 2
    result = qmk.run(assemble(text), shots=shots, seed=12, qubit=QUBIT, profile=NOISY)
    assert result.telemetry.mode == path
    ones = result.counts.get("1", 0)
    assert stats.binomtest(ones, shots, p1).pvalue > 1e-4


def test_the_decoder_load_is_that_of_the_qubits_live_at_the_peak() -> None:
    """Two d=3 qubits, one freed, then three d=5 ones: the peak is the last four, by
    bits per second (each qubit's own model, summed by hand)."""
    small, large = "logical:surface_code(d=3)", "logical:surface_code(d=5)"
    text = f"""
.caps CAP_ALLOC
a: ALLOC_LQ vq:p, vq:q, profile="{small}"
h: APPLY_H vq:p
f: FREE_LQ vq:p
b: ALLOC_LQ vq:r, vq:s, vq:t, profile="{large}"
c: APPLY_CNOT vq:q, vq:r
g: FREE_LQ vq:q, vq:r, vq:s, vq:t
"""
    plan = _plan(text, noise=False)
    assert [plan.steps.nodes[k].id for k in plan.lifetimes] == ["a", "f", "b", "g"]
    one, three = logical_model(small, QUBIT), logical_model(large, QUBIT)
    rounds = one.syndrome_bits_per_round + 3 * three.syndrome_bits_per_round
    per_second = one.decoder_bits_per_second + 3 * three.decoder_bits_per_second
    assert per_second > 2 * one.decoder_bits_per_second  # the peak is at b, not at a
    assert decoder_load(plan, QUBIT, NOISY) == pytest.approx((rounds, per_second))
