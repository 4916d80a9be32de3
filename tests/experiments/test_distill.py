"""Magic-state distillation: stim circuits against exact theory, the estimator's formulas, CLI.

The exact theory here is built in the tests from scratch: the 15 inputs' Z-error patterns
are all 2^15 enumerated against the X checks of the [[15, 1, 3]] code (bit k of the input's
index), and the non-Clifford circuits are run as state vectors with their real T gates.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import stim
from scipy.stats import chi2 as chi2_dist

from qmk.estimate.tfactory import default_units, unit_from_json
from qmk.experiments.distill import (
    distillation_circuit,
    model_rates,
    patch_fault_patterns,
    run_distillation,
)
from qmk.qec.distill import PROTOCOLS, enumerator, exact_rates, factory_figures, protocol
from qmk.qec.errors import QECError
from support.cli import qmk

#: The [15, 11] Hamming code's weight distribution (MacWilliams and Sloane, Ch. 1 Sec. 7).
HAMMING_15 = (1, 0, 0, 35, 105, 168, 280, 435, 435, 280, 168, 105, 35, 0, 0, 1)
N = 15
CHECKS = np.array([[((i + 1) >> k) & 1 for i in range(N)] for k in range(4)])


def _patterns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every Z-error pattern on the 15 inputs: its weight, whether caught, whether flipped."""
    bits = (np.arange(1 << N)[:, None] >> np.arange(N)) & 1
    caught = ((bits @ CHECKS.T) % 2).any(axis=1)
    return bits.sum(axis=1), caught, bits.sum(axis=1) % 2 == 1


def _theory(p: float) -> tuple[float, float]:
    """(acceptance, output error given acceptance) by summing over all 2^15 patterns."""
    weight, caught, flipped = _patterns()
    prob = p**weight * (1 - p) ** (N - weight)
    accepted = prob[~caught].sum()
    return float(accepted), float(prob[~caught & flipped].sum() / accepted)


def test_the_accepted_patterns_are_the_hamming_code_and_odd_ones_flip_the_output() -> None:
    weight, caught, flipped = _patterns()
    accepted = np.bincount(weight[~caught], minlength=N + 1)
    assert tuple(accepted) == HAMMING_15
    odd = tuple(np.bincount(weight[~caught & flipped], minlength=N + 1))
    assert odd == tuple(a if w % 2 else 0 for w, a in enumerate(HAMMING_15))
    for proto in PROTOCOLS.values():
        counts = enumerator(proto)
        assert counts.accepted == HAMMING_15 and counts.flipped == odd


@pytest.mark.parametrize("p", [0.0, 1e-4, 0.003, 0.05, 0.2, 0.5])
def test_exact_rates_equal_the_sum_over_all_error_patterns(p: float) -> None:
    acceptance, output = _theory(p)
    for name in PROTOCOLS:
        rates = exact_rates(name, p)
        assert rates.acceptance == pytest.approx(acceptance, rel=1e-12)
        assert rates.output_error == pytest.approx(output, rel=1e-12, abs=1e-300)


def test_exact_rates_have_the_textbook_leading_terms() -> None:
    p = 1e-5
    rates = exact_rates("15-to-1", p)
    assert rates.output_error == pytest.approx(35 * p**3, rel=1e-4)
    assert 1 - rates.acceptance == pytest.approx(15 * p, rel=1e-4)


def _state_with_errors(proto: str, errors: set[int]) -> np.ndarray:
    """The 5-qubit state of Litinski's protocol with real pi/8 rotations, Z after ``errors``."""
    p = protocol(proto)
    dim = 1 << 5
    z = np.arange(dim)
    state = np.full(dim, 1 / math.sqrt(dim), dtype=complex)  # |+>^5, qubit j is bit j
    for i in range(p.inputs):
        support = [j for j in range(4) if p.checks[j][i]] + ([4] if p.logical[i] else [])
        parity = np.zeros(dim, dtype=int)
        for j in support:
            parity ^= (z >> j) & 1
        eigen = 1 - 2 * parity
        state = state * np.exp(-1j * math.pi / 8 * eigen)  # exp(-i pi/8 P), P diagonal
        if i in errors:
            state = state * eigen
    return state


def _plus_minus(bits: list[int]) -> np.ndarray:
    out = np.array([1.0 + 0j])
    for b in bits:
        out = np.kron(np.array([1, -1 if b else 1]) / math.sqrt(2), out)
    return out


@pytest.mark.parametrize("error", [None, 0, 6, 14])
def test_space_efficient_rotations_with_real_t_gates_give_t_or_its_flip(error: int | None) -> None:
    """With its real T rotations the protocol outputs T^dagger|+> and checks +1; a Z error on
    input i flips exactly the checks of column i and the output (what the stim circuit models)."""
    proto = protocol("15-to-1-space-efficient")
    state = _state_with_errors(proto.name, set() if error is None else {error})
    syndrome = [0] * 4 if error is None else [proto.checks[k][error] for k in range(4)]
    flip = error is not None
    out = np.array([1, np.exp(-1j * math.pi / 4) * (-1 if flip else 1)]) / math.sqrt(2)
    # qubit 4 is the top bit: state = out (x) checks
    expected = np.kron(out, _plus_minus(syndrome))
    assert abs(np.vdot(expected, state)) == pytest.approx(1.0, abs=1e-12)


def _x_expectation(state: np.ndarray, support: np.ndarray) -> float:
    mask = int(sum(1 << int(j) for j in np.flatnonzero(support)))
    index = np.arange(state.size)
    return float(np.real(np.vdot(state, state[index ^ mask])))


def test_rm_encoder_prepares_the_code_state_that_transversal_t_keeps_in_the_code() -> None:
    circuit = stim.Circuit()
    for inst in distillation_circuit("15-to-1", 0.0):
        if inst.name in ("Z_ERROR", "MX", "DETECTOR", "OBSERVABLE_INCLUDE"):
            break
        circuit.append(inst)
    sim = stim.TableauSimulator()
    sim.do(circuit)
    plus = sim.state_vector(endian="little").astype(complex)
    index = np.arange(1 << N)
    weight, caught, _ = _patterns()
    after_t = plus * np.exp(1j * math.pi / 4 * weight)  # T on each of the 15 qubits
    for state in (plus, after_t):
        for row in CHECKS:
            assert _x_expectation(state, row) == pytest.approx(1.0, abs=1e-6)
        # Z stabilizers: the weight-4 patterns no check catches (even Hamming codewords)
        probability = np.abs(state) ** 2
        for z in np.flatnonzero((weight == 4) & ~caught):
            sign = 1 - 2 * (np.bitwise_count(index & int(z)) % 2)
            assert float(probability @ sign) == pytest.approx(1.0, abs=1e-6)
    ones = np.ones(N, dtype=int)
    assert _x_expectation(plus, ones) == pytest.approx(1.0, abs=1e-6)
    # T^(x)15 acts as a logical T^dagger: <X_L> = cos(pi/4); the states differ only in phase
    assert _x_expectation(after_t, ones) == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    parity = 1 - 2 * (weight % 2)
    y_l = np.real(np.vdot(after_t, 1j * (after_t * parity)[index ^ ((1 << N) - 1)]))
    assert abs(y_l) == pytest.approx(1 / math.sqrt(2), abs=1e-6)


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_simulated_rates_match_the_exact_polynomial_by_chi_square(name: str) -> None:
    """Seed 29, 200000 shots per p: accepted counts ~ Binomial(shots, A), flipped outputs ~
    Binomial(accepted, E); the z-scores' chi-square over 8 counts is below its 99.9% point."""
    z_scores = []
    for i, p in enumerate((0.01, 0.05, 0.1, 0.2)):
        r = run_distillation(name, input_error=p, shots=200_000, seed=29 + i)
        acceptance, output = _theory(p)
        for k, n, q in ((r.accepted, r.shots, acceptance), (r.errors, r.accepted, output)):
            z = (k - n * q) / math.sqrt(n * q * (1 - q))
            assert abs(z) < 4, (p, k, n, q)
            z_scores.append(z)
        low, high = r.output_error_interval
        assert r.output_error_rate == r.errors / r.accepted and low <= r.output_error_rate <= high
    assert sum(z * z for z in z_scores) < chi2_dist.ppf(0.999, len(z_scores))


def test_noiseless_distillation_accepts_every_run_and_never_flips() -> None:
    for name in PROTOCOLS:
        r = run_distillation(name, input_error=0.0, shots=1000, seed=1)
        assert (r.accepted, r.errors) == (1000, 0)
        assert distillation_circuit(name, 0.0).detector_error_model().num_errors == 0


def test_same_seed_same_counts_and_the_two_circuits_differ_in_size() -> None:
    a = run_distillation("15-to-1", input_error=0.05, shots=5000, seed=8)
    b = run_distillation("15-to-1", input_error=0.05, shots=5000, seed=8)
    assert (a.accepted, a.errors) == (b.accepted, b.errors)
    assert distillation_circuit("15-to-1", 0.1).num_qubits == 15
    assert distillation_circuit("15-to-1-space-efficient", 0.1).num_qubits == 5


def test_the_estimators_output_error_formula_lies_in_the_simulations_interval() -> None:
    """At p = 0.01 (seed 4, 4000000 shots) the estimator's 35 p^3 is inside the 95% Wilson
    interval of both circuits' output error; it is the exact polynomial's leading term."""
    p = 0.01
    for proto in PROTOCOLS.values():
        unit = unit_from_json({"name": proto.estimator_unit})
        r = run_distillation(proto, input_error=p, shots=4_000_000, seed=4)
        low, high = r.output_error_interval
        assert low <= unit.output_error_rate(p, 0.0, 0.0) <= high
        assert low <= exact_rates(proto, p).output_error <= high
        small = 1e-4
        assert unit.output_error_rate(small, 0.0, 0.0) == pytest.approx(
            exact_rates(proto, small).output_error, rel=1e-3
        )


def test_the_estimators_failure_probability_is_conservative_against_the_simulation() -> None:
    """15 p overestimates rejection (1 - A = 15 p - 105 p^2 + ...): at p = 0.01 the simulated
    acceptance's interval (seed 5, 1000000 shots) lies above 1 - 15 p and holds the exact A."""
    p = 0.01
    for proto in PROTOCOLS.values():
        unit = unit_from_json({"name": proto.estimator_unit})
        r = run_distillation(proto, input_error=p, shots=1_000_000, seed=5)
        low, high = r.acceptance_interval
        assert 1 - unit.failure_probability(p, 0.0, 0.0) < low
        assert low <= exact_rates(proto, p).acceptance <= high


def test_each_protocol_names_an_estimator_unit_with_its_size_and_duration() -> None:
    units = {u.name: u for u in default_units()}
    for proto in PROTOCOLS.values():
        unit = units[proto.estimator_unit]
        assert unit.logical is not None
        assert proto.logical_qubits == unit.logical.num_unit_qubits
        assert proto.logical_cycles == unit.logical.duration_in_qubit_cycle_time
        assert (proto.inputs, proto.outputs) == (unit.num_input_ts, unit.num_output_ts)


def test_factory_figures_give_a_scheduler_rates_and_cycles_per_state() -> None:
    f = factory_figures("space-efficient", 0.01)
    acceptance, output = _theory(0.01)
    assert f.protocol == "15-to-1-space-efficient" and f.source == "exact"
    assert f.output_error_rate == pytest.approx(output) and f.acceptance_rate == pytest.approx(
        acceptance
    )
    assert f.cycles_per_state == pytest.approx(13 / acceptance)
    measured = run_distillation("space-efficient", input_error=0.01, shots=1000, seed=2).figures()
    assert measured.source == "simulated" and measured.logical_cycles == 13


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"proto": "20-to-4", "input_error": 0.1, "shots": 10}, "QC111 unknown-protocol"),
        ({"proto": "15-to-1", "input_error": 0.6, "shots": 10}, "QC103 bad-parameter"),
        ({"proto": "15-to-1", "input_error": -0.1, "shots": 10}, "QC103 bad-parameter"),
        ({"proto": "15-to-1", "input_error": 0.1, "shots": 0}, "QC103 bad-parameter"),
    ],
)
def test_bad_distillation_arguments_are_coded_errors(kwargs: dict, code: str) -> None:
    proto = kwargs.pop("proto")
    with pytest.raises(QECError) as caught:
        run_distillation(proto, **kwargs)
    assert str(caught.value).startswith(code)


def test_cli_distill_json_has_rates_intervals_and_is_reproducible() -> None:
    argv = ("qec", "distill", "--protocol", "15-to-1", "--input-error", "0.05",
            "--shots", "20000", "--seed", "6", "--json")  # fmt: skip
    status, out, err = qmk(*argv)
    assert status == 0, err
    data = json.loads(out)
    assert (data["protocol"], data["shots"], data["seed"]) == ("15-to-1", 20000, 6)
    assert data["confidence"] == 0.95 and data["interval"] == "wilson"
    for key in ("acceptance", "output_error"):
        low, high = data[f"{key}_interval"]
        assert low <= data[f"{key}_rate"] <= high
    assert data["exact"]["acceptance_rate"] == pytest.approx(_theory(0.05)[0])
    assert data["estimator"]["output_error_rate"] == pytest.approx(35 * 0.05**3)
    assert json.loads(qmk(*argv)[1]) == data


def test_cli_distill_table_prints_both_rates_and_the_seed() -> None:
    status, out, err = qmk("qec", "distill", "--protocol", "space-efficient",
                           "--input-error", "0.02", "--shots", "5000", "--seed", "3")  # fmt: skip
    assert status == 0, err
    assert "seed 3" in out and "95% Wilson" in out
    assert any(line.startswith("acceptance_rate") for line in out.splitlines())
    assert any(line.startswith("output_error_rate") for line in out.splitlines())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--protocol", "20-to-4", "--input-error", "0.1"), "QC111 unknown-protocol"),
        (("--input-error", "0.6"), "QC103 bad-parameter: --input-error must lie in [0, 0.5]"),
        (("--input-error", "-0.01"), "QC103 bad-parameter: --input-error must lie in [0, 0.5]"),
        (("--input-error", "nan"), "QC103 bad-parameter: --input-error must lie in [0, 0.5]"),
        (("--input-error", "x"), "QC103 bad-parameter: --input-error: not a number"),
        (("--input-error", "0.1", "--shots", "0"), "QC103 bad-parameter: --shots must be at"),
        (("--input-error", "0.1", "--shots", "-5"), "QC103 bad-parameter: --shots must be at"),
        (("--input-error", "0.1", "--seed", "x"), "QC103 bad-parameter: --seed"),
        ((), "QW011"),
    ],
)
def test_cli_distill_bad_arguments_are_one_line_errors(
    argv: tuple[str, ...], expected: str
) -> None:
    status, out, err = qmk("qec", "distill", *argv)
    assert status == 2
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and out == ""


# -- Clifford faults (15-to-1-space-efficient) --------------------------------------------------

PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def _apply(state: np.ndarray, qubit: int, matrix: np.ndarray) -> np.ndarray:
    tensor = state.reshape([2] * 5)  # axis 4 - q is qubit q (qubit q is bit q of the index)
    axis = 4 - qubit
    return np.moveaxis(np.tensordot(matrix, tensor, axes=([1], [axis])), 0, axis).reshape(-1)


def _single_fault_outcomes(step: int, qubit: int, pauli: str) -> np.ndarray:
    """Probability of (checks' X outcomes, output flipped) with one fault and real rotations.

    Index: bits 0-3 the checks' -1 outcomes, bit 4 'output wrong' (1 - fidelity with the
    ideal T^dagger|+> given those outcomes)."""
    proto = protocol("15-to-1-space-efficient")
    z = np.arange(32)
    state = np.full(32, 1 / math.sqrt(32), dtype=complex)
    for i in range(proto.inputs):
        support = [j for j in range(4) if proto.checks[j][i]] + [4]
        parity = np.zeros(32, dtype=int)
        for j in support:
            parity ^= (z >> j) & 1
        state = state * np.exp(-1j * math.pi / 8 * (1 - 2 * parity))
        if i == step:
            state = _apply(state, qubit, PAULI[pauli])
    ideal_out = np.array([1, np.exp(-1j * math.pi / 4)]) / math.sqrt(2)
    out = np.zeros(32)
    for syndrome in range(16):
        checks = _plus_minus([(syndrome >> j) & 1 for j in range(4)])
        projected = np.kron(np.eye(2), checks.conj()[None, :]) @ state  # output amplitudes
        weight = float(np.vdot(projected, projected).real)
        if weight < 1e-15:
            continue
        fidelity = abs(np.vdot(ideal_out, projected)) ** 2 / weight
        out[syndrome] += weight * fidelity
        out[syndrome | 16] += weight * (1 - fidelity)
    return out


@pytest.mark.parametrize("step", [0, 5, 13, 14])
def test_a_patch_fault_leaves_the_patterns_real_rotations_give(step: int) -> None:
    """For every qubit, the modelled fault event equals (1 - c) no fault plus c/3 of each of
    X, Y, Z inserted into a state-vector run with the real pi/8 rotations (written here with
    dense single-qubit matrices and Kronecker projections)."""
    proto = protocol("15-to-1-space-efficient")
    rate = 0.03
    for qubit in range(5):
        modelled = np.zeros(32)
        for mask, probability in patch_fault_patterns(proto, step, qubit, rate).items():
            modelled[mask] += probability
        modelled[0] += 1 - modelled.sum()
        exact = np.zeros(32)
        exact[0] = 1 - rate
        for pauli in "XYZ":
            exact += rate / 3 * _single_fault_outcomes(step, qubit, pauli)
        np.testing.assert_allclose(modelled, exact, atol=1e-12)


@pytest.mark.parametrize(("p", "c", "seed"), [(0.0, 2e-3, 51), (0.01, 1e-3, 52), (0.05, 5e-3, 53)])
def test_clifford_faults_sample_as_the_exact_model_says(p: float, c: float, seed: int) -> None:
    r = run_distillation("15-to-1-space-efficient", input_error=p, clifford_error=c,
                         shots=400_000, seed=seed)  # fmt: skip
    m = model_rates("15-to-1-space-efficient", p, c)
    for k, n, q in ((r.accepted, r.shots, m.acceptance), (r.errors, r.accepted, m.output_error)):
        assert abs(k - n * q) < 4 * math.sqrt(n * q * (1 - q)), (k, n, q)


def test_model_rates_without_clifford_faults_are_the_exact_polynomial() -> None:
    for p in (0.0, 0.01, 0.2):
        m, e = model_rates("15-to-1-space-efficient", p), exact_rates("15-to-1", p)
        assert m.acceptance == pytest.approx(e.acceptance, abs=1e-12)
        assert m.joint_error == pytest.approx(e.joint_error, abs=1e-12)


def test_first_order_clifford_coefficients_beside_the_estimators() -> None:
    """Per unit c, to first order: rejection 1327/24 (55.3) and output error 103/12 (8.58) in
    this 75-location model; the estimator's unit formulas say 356 and 7.1 (another layout)."""
    c = 1e-9
    m = model_rates("15-to-1-space-efficient", 0.0, c)
    assert (1 - m.acceptance) / c == pytest.approx(1327 / 24, rel=1e-5)
    assert m.output_error / c == pytest.approx(103 / 12, rel=1e-5)
    unit = unit_from_json({"name": "15-to-1 space efficient"})
    assert unit.failure_probability(0.0, c, 0.0) / c == pytest.approx(356)
    assert unit.output_error_rate(0.0, c, 0.0) / c == pytest.approx(7.1)


def test_the_rm_prep_circuit_refuses_clifford_faults() -> None:
    with pytest.raises(QECError) as caught:
        run_distillation("15-to-1", input_error=0.01, clifford_error=1e-3, shots=10)
    assert caught.value.code == "QC103" and "15-to-1-space-efficient" in str(caught.value)
    status, out, err = qmk("qec", "distill", "--input-error", "0.01", "--clifford-error", "0.001")
    assert status == 2 and err.startswith("QC103 bad-parameter: --clifford-error") and out == ""
