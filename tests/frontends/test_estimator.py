"""qmk.qiskit.EstimatorV2: exact values against Qiskit's StatevectorEstimator and stim,
shot-based estimates within their stated precision, and coded refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp, random_clifford

from qmk.engines import EngineError
from qmk.frontends.errors import FrontendError
from qmk.qiskit import EstimatorV2

SEED = 20261123


def _observables(n: int, count: int, rng: np.random.Generator) -> list[SparsePauliOp]:
    labels = ["".join(rng.choice(list("IXYZ"), size=n)) for _ in range(count)]
    return [SparsePauliOp(label, coeffs=[rng.normal()]) for label in labels]


def test_exact_values_of_a_parameter_sweep_equal_qiskits_statevector_estimator():
    rng = np.random.default_rng(SEED)
    ansatz = efficient_su2(5, reps=2)
    values = rng.uniform(-np.pi, np.pi, size=(3, ansatz.num_parameters))
    observables = [[o] for o in _observables(5, 4, rng)]
    pub = (ansatz, observables, values)  # broadcast to shape (4, 3)
    ours = EstimatorV2().run([pub]).result()[0]
    theirs = StatevectorEstimator().run([pub]).result()[0]
    assert ours.data.evs.shape == (4, 3)
    np.testing.assert_allclose(ours.data.evs, theirs.data.evs, atol=1e-10)
    assert np.all(ours.data.stds == 0)
    assert ours.metadata["exact"] is True and ours.metadata["noise"] is False


def test_a_sum_of_paulis_with_a_y_term_is_exact_on_a_non_clifford_circuit():
    theta = Parameter("t")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.rx(theta, 1)
    qc.cx(0, 2)
    qc.t(2)
    qc.cy(1, 0)
    observable = SparsePauliOp(["YZI", "XIX", "ZZZ"], coeffs=[0.5, -1.25, 2.0])
    pub = (qc, observable, [[0.3], [1.1]])
    ours = EstimatorV2().run([pub]).result()[0].data.evs
    theirs = StatevectorEstimator().run([pub]).result()[0].data.evs
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_clifford_circuits_use_the_stabilizer_tableau_and_match_the_statevector():
    qc = random_clifford(6, seed=SEED).to_circuit()
    rng = np.random.default_rng(SEED)
    observables = _observables(6, 12, rng)
    ours = EstimatorV2().run([(qc, observables)]).result()[0]
    theirs = StatevectorEstimator().run([(qc, observables)]).result()[0]
    np.testing.assert_allclose(ours.data.evs, theirs.data.evs, atol=1e-12)
    assert ours.metadata["engines"] == ["stabilizer"]


def test_a_200_qubit_ghz_state_has_exact_correlators():
    n = 200
    qc = QuantumCircuit(n)
    qc.h(0)
    for k in range(n - 1):
        qc.cx(k, k + 1)
    z_ends = "Z" + "I" * (n - 2) + "Z"
    all_x = "X" * n
    one_z = "I" * (n - 1) + "Z"
    evs = EstimatorV2().run([(qc, [z_ends, all_x, one_z])]).result()[0].data.evs
    assert evs.tolist() == [1.0, 1.0, 0.0]


def test_shot_based_estimates_fall_within_their_precision_and_carry_the_noise_default():
    qc = QuantumCircuit(2)
    qc.ry(1.0, 0)
    qc.cx(0, 1)
    observables = ["ZZ", "XX", "ZI"]
    exact = StatevectorEstimator().run([(qc, observables)]).result()[0].data.evs
    result = EstimatorV2(seed=SEED).run([(qc, observables)], precision=0.02).result()[0]
    assert result.metadata["noise"] is True
    assert result.metadata["target_precision"] == 0.02
    np.testing.assert_array_less(np.abs(result.data.evs - exact), 5 * 0.02)
    np.testing.assert_array_less(result.data.stds, 0.03)


def test_a_run_mixes_exact_and_shot_based_pubs_in_order():
    qc = QuantumCircuit(1)
    qc.x(0)
    estimator = EstimatorV2(seed=SEED, noise=False, default_precision=0.05)
    results = estimator.run([(qc, "Z", None, 0.0), (qc, "Z")]).result()
    assert results[0].data.evs.tolist() == -1.0
    assert results[0].metadata["exact"] is True
    assert results[1].data.evs == pytest.approx(-1.0, abs=0.25)
    assert results[1].metadata["noise"] is False


def test_exact_values_with_noise_asked_for_are_refused_with_a_code():
    qc = QuantumCircuit(1)
    with pytest.raises(FrontendError) as caught:
        EstimatorV2(noise=True).run([(qc, "Z")])
    assert caught.value.code == "QL107"
    assert "noise=False" in str(caught.value)


def test_a_circuit_that_measures_has_no_exact_value():
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    with pytest.raises(EngineError) as caught:
        EstimatorV2().run([(qc, "Z")]).result()
    assert caught.value.code == "QE113"


def test_a_negative_default_precision_is_refused():
    with pytest.raises(FrontendError) as caught:
        EstimatorV2(default_precision=-0.1)
    assert caught.value.code == "QL107"


def test_a_hundred_observables_of_each_binding_equal_qiskits_statevector():
    from qiskit.quantum_info import Statevector

    rng = np.random.default_rng(SEED)
    ansatz = efficient_su2(6, reps=2)
    values = rng.uniform(-np.pi, np.pi, size=(2, ansatz.num_parameters))
    observables = _observables(6, 100, rng)
    pub = (ansatz, [[o] for o in observables], values)  # broadcast to shape (100, 2)
    evs = EstimatorV2().run([pub]).result()[0].data.evs
    for k in range(2):
        state = Statevector(ansatz.assign_parameters(values[k]))
        want = [state.expectation_value(o).real for o in observables]
        np.testing.assert_allclose(evs[:, k], want, atol=1e-10)
