"""PennyLane in: tapes and QNodes lowered exactly, and the `qmk.statevector` device
against PennyLane's own `default.qubit` (exact values to 1e-10, samples by chi-square)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pennylane")

import pennylane as qml
from scipy.stats import chisquare

from qmk.execution.executor import run
from qmk.frontends import decompose
from qmk.frontends.errors import FrontendError
from qmk.frontends.pennylane import NAMED, from_pennylane

SEED = 20261123


def _layers(weights: np.ndarray, wires: int) -> None:
    qml.StronglyEntanglingLayers(weights, wires=range(wires))
    qml.Toffoli([0, 1, 2])
    qml.IsingZZ(0.4, [1, 3])
    qml.CRY(0.9, [3, 0])


def _weights(layers: int, wires: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return rng.uniform(0, 2 * np.pi, size=(layers, wires, 3))


@pytest.mark.parametrize("name", sorted(NAMED))
def test_each_named_gate_lowers_to_pennylanes_matrix_phase_included(name):
    cls = getattr(qml, name)
    params = [0.37 * (k + 1) for k in range(cls.num_params)]
    op = cls(*params, wires=list(range(cls.num_wires)))
    low = decompose.lower_gate(NAMED[name], params)
    np.testing.assert_allclose(
        decompose.matrix_of(low), decompose.little_endian(qml.matrix(op)), atol=1e-12
    )


def test_the_device_is_registered_with_pennylane():
    dev = qml.device("qmk.statevector", wires=3)
    assert dev.name == "qmk.statevector"


def test_analytic_results_equal_default_qubit():
    weights = _weights(2, 4)

    def circuit():
        _layers(weights, 4)
        return (
            qml.expval(qml.Z(0) @ qml.X(1)),
            qml.var(qml.Y(2)),
            qml.probs(wires=[0, 3]),
            qml.expval(qml.Hamiltonian([0.5, -1.5], [qml.Z(0), qml.X(2) @ qml.Y(3)])),
            qml.state(),
        )

    ours = qml.QNode(circuit, qml.device("qmk.statevector", wires=4))()
    theirs = qml.QNode(circuit, qml.device("default.qubit", wires=4))()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)


def test_mid_circuit_measurements_and_conditions_match_default_qubit():
    def circuit(x):
        qml.RY(x, 0)
        m = qml.measure(0)
        qml.cond(m, qml.RX)(0.7, wires=1)
        qml.CNOT([1, 2])
        return qml.probs(wires=[1, 2]), qml.expval(qml.Z(0))

    ours = qml.QNode(circuit, qml.device("qmk.statevector", wires=4))(1.2)
    theirs = qml.QNode(circuit, qml.device("default.qubit", wires=4))(1.2)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)


def test_sampled_counts_follow_the_exact_distribution():
    weights = _weights(1, 3)
    shots = 20_000

    def counted():
        qml.StronglyEntanglingLayers(weights, wires=range(3))
        return qml.counts(wires=[0, 1, 2])

    def exact():
        qml.StronglyEntanglingLayers(weights, wires=range(3))
        return qml.probs(wires=[0, 1, 2])

    dev = qml.device("qmk.statevector", wires=3, seed=SEED, noise=False)
    counts = qml.set_shots(qml.QNode(counted, dev), shots=shots)()
    probs = qml.QNode(exact, qml.device("default.qubit", wires=3))()
    observed = np.array([counts.get(format(k, "03b"), 0) for k in range(8)])
    keep = probs > 1e-9
    assert observed[~keep].sum() == 0
    assert chisquare(observed[keep], probs[keep] * shots).pvalue > 1e-3


def test_sampled_expectations_and_shot_vectors():
    def circuit():
        qml.RY(1.0, 0)
        qml.CNOT([0, 1])
        return qml.expval(qml.Z(0) @ qml.Z(1)), qml.expval(qml.X(0))

    dev = qml.device("qmk.statevector", wires=2, seed=SEED)
    results = qml.set_shots(qml.QNode(circuit, dev), shots=[4000, (2000, 2)])()
    assert len(results) == 3
    for zz, x in results:
        # cos(1/2)|00> + sin(1/2)|11>: Z0 Z1 is +1 in every shot (the default profile's
        # logical errors, about 1e-7 per operation, flip none at this seed), <X0> is 0
        assert float(zz) == pytest.approx(1.0, abs=1e-9)
        assert float(x) == pytest.approx(0.0, abs=0.08)


def test_noise_asked_for_on_an_analytic_tape_is_refused():
    dev = qml.device("qmk.statevector", wires=1, noise=True)
    with pytest.raises(FrontendError) as caught:
        qml.QNode(lambda: qml.expval(qml.Z(0)), dev)()
    assert caught.value.code == "QL107"


def test_a_qnode_lowered_with_its_arguments_runs_with_pennylane_keys():
    @qml.qnode(qml.device("default.qubit", wires=2))
    def flip(theta):
        qml.RX(theta, 0)
        qml.CNOT([0, 1])
        return qml.counts(wires=[0, 1])

    graph = from_pennylane(flip, np.pi)
    result = run(graph, shots=100, seed=SEED, noise=False)
    assert result.counts == {"11": 100}


def test_observables_that_do_not_commute_on_a_wire_are_refused_by_the_frontend():
    tape = qml.tape.QuantumScript([qml.Hadamard(0)], [qml.expval(qml.Z(0)), qml.expval(qml.X(0))])
    with pytest.raises(FrontendError) as caught:
        from_pennylane(tape)
    assert caught.value.code == "QL104"


def test_arguments_with_a_tape_are_refused():
    tape = qml.tape.QuantumScript([qml.Hadamard(0)], [qml.counts()])
    with pytest.raises(FrontendError) as caught:
        from_pennylane(tape, 1.0)
    assert caught.value.code == "QL107"
