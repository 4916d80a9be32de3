"""PennyLane in: tapes and QNodes lowered exactly, and the `qmk.statevector` device
against PennyLane's own `default.qubit` (exact values to 1e-10, samples by chi-square)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pennylane")

import pennylane as qml
from scipy.stats import chisquare

from qmk import errors as qmk_errors
from qmk.execution.runs import run
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


def _both(circuit, wires):
    ours = qml.QNode(circuit, qml.device("qmk.statevector", wires=wires))()
    theirs = qml.QNode(circuit, qml.device("default.qubit", wires=wires))()
    return np.asarray(ours), np.asarray(theirs)


_RANDOM_STATE = np.array([1, 1j]) @ np.random.default_rng(SEED).normal(size=(2, 8))
_RANDOM_STATE /= np.linalg.norm(_RANDOM_STATE)
_TWO_WIRE_STATE = _RANDOM_STATE[:4] / np.linalg.norm(_RANDOM_STATE[:4])


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(lambda: qml.StatePrep(_RANDOM_STATE, wires=[0, 1, 2]), id="StatePrep"),
        pytest.param(lambda: qml.StatePrep(_TWO_WIRE_STATE, wires=[2, 0]), id="StatePrep-subset"),
        pytest.param(lambda: qml.BasisState(np.array([1, 0, 1]), wires=[0, 1, 2]), id="BasisState"),
        pytest.param(
            lambda: qml.AmplitudeEmbedding(np.arange(1.0, 9.0), wires=range(3), normalize=True),
            id="AmplitudeEmbedding",
        ),
        pytest.param(lambda: qml.BasisEmbedding(5, wires=range(3)), id="BasisEmbedding"),
        pytest.param(lambda: qml.CosineWindow(wires=range(3)), id="CosineWindow"),
    ],
)
def test_an_initial_state_preparation_is_decomposed_and_equals_default_qubit(prepare):
    def circuit():
        prepare()
        qml.RX(0.3, 1)
        return qml.state()

    ours, theirs = _both(circuit, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_an_operation_with_a_matrix_and_no_decomposition_runs_through_its_matrix():
    def circuit():
        qml.Hadamard(0)
        qml.BlockEncode(np.array([[0.3, 0.1], [0.2, -0.4]]), wires=[0, 1])
        return qml.state()

    ours, theirs = _both(circuit, 2)
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


class _Opaque(qml.operation.Operation):
    """An operation with neither a matrix nor a decomposition."""

    num_wires = 2
    num_params = 0


def test_an_operation_pennylane_cannot_decompose_is_refused_naming_it():
    # the frontend: QL104; the device: PennyLane's DeviceError from its preprocessing,
    # before any run (what PennyLane's device suite expects of a device)
    tape = qml.tape.QuantumScript([_Opaque(wires=[0, 1])], [qml.expval(qml.Z(0))])
    with pytest.raises(FrontendError) as caught:
        from_pennylane(tape)
    assert caught.value.code == "QL104"
    assert "_Opaque" in str(caught.value)
    dev = qml.device("qmk.statevector", wires=2)
    with pytest.raises(qml.exceptions.DeviceError, match="_Opaque"):
        qml.QNode(lambda: (_Opaque(wires=[0, 1]), qml.expval(qml.Z(0)))[1], dev)()


def test_the_tracker_records_batches_executions_and_shots():
    dev = qml.device("qmk.statevector", wires=2, seed=SEED, noise=False)

    @qml.qnode(dev)
    def circuit():
        qml.Hadamard(0)
        return qml.expval(qml.X(0)), qml.expval(qml.Z(1))

    reference = qml.device("default.qubit", wires=2)
    theirs = qml.QNode(circuit.func, reference)
    for device, qnode in ((dev, circuit), (reference, theirs)):
        with device.tracker:
            qnode()
            qml.set_shots(qnode, shots=100)()
    ours, expected = dev.tracker, reference.tracker
    for key in ("batches", "executions", "simulations", "shots"):
        assert ours.history[key] == expected.history[key], key
    assert ours.history["shots"] == [100]
    assert ours.totals["batches"] == 2
    assert ours.history["resources"][0].num_gates == 1


_HERMITIAN = np.array([[1, 2j, 0, 1], [-2j, 0, 1, 0], [0, 1, 2, -1j], [1, 0, 1j, -1]])


@pytest.mark.parametrize(
    "observable",
    [
        pytest.param(lambda: qml.Hermitian(_HERMITIAN, wires=[0, 1]), id="Hermitian"),
        pytest.param(lambda: qml.Projector([1, 0], wires=[0, 1]), id="Projector-basis"),
        pytest.param(
            lambda: qml.Projector(np.array([1, 1j, 0, 1]) / np.sqrt(3), wires=[1, 0]),
            id="Projector-state",
        ),
    ],
)
def test_two_wire_hermitian_and_projector_with_shots_follow_the_exact_distribution(observable):
    shots = 20_000

    def circuit():
        qml.RY(0.9, 0)
        qml.CRX(1.3, [0, 1])
        qml.RZ(0.4, 1)
        return qml.counts(observable())

    dev = qml.device("qmk.statevector", wires=2, seed=SEED, noise=False)
    counts = qml.set_shots(qml.QNode(circuit, dev), shots=shots)()

    def exact():
        qml.RY(0.9, 0)
        qml.CRX(1.3, [0, 1])
        qml.RZ(0.4, 1)
        return qml.state()

    state = qml.QNode(exact, qml.device("default.qubit", wires=2))()
    values, vectors = np.linalg.eigh(qml.matrix(observable(), wire_order=[0, 1]))
    weights = np.abs(vectors.conj().T @ state) ** 2
    probs: dict[float, float] = {}
    for value, weight in zip(np.round(values, 9), weights, strict=True):
        probs[float(value)] = probs.get(float(value), 0.0) + float(weight)
    observed = {round(float(v), 9): n for v, n in counts.items()}
    assert set(observed) <= set(probs)
    keys = [v for v in probs if probs[v] > 1e-12]
    got = np.array([observed.get(v, 0) for v in keys])
    assert got.sum() == shots
    assert chisquare(got, np.array([probs[v] for v in keys]) * shots).pvalue > 1e-3


def test_two_hermitians_on_the_same_wires_are_refused_by_the_frontend():
    other = _HERMITIAN.conj().T + np.diag([0, 1, 0, 0])
    tape = qml.tape.QuantumScript(
        [qml.Hadamard(0)],
        [qml.expval(qml.Hermitian(_HERMITIAN, [0, 1])), qml.expval(qml.Hermitian(other, [0, 1]))],
    )
    with pytest.raises(FrontendError) as caught:
        from_pennylane(tape)
    assert caught.value.code == "QL104"
    assert "read wire 0 in different bases" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "noise"), [("False", False), ("false", False), ("TRUE", True), (False, False)]
)
def test_noise_given_as_command_line_text_is_read_strictly(text, noise):
    assert qml.device("qmk.statevector", wires=1, noise=text).noise is noise


@pytest.mark.parametrize(
    ("value", "noise"), [(0, False), ("0", False), (np.int64(0), False), (1, True), (" 1", True)]
)
def test_noise_written_as_zero_or_one_means_off_or_on(value, noise):
    # users write noise=0 for "no noise"; --device-kwargs noise=0 passes the text "0"
    assert qml.device("qmk.statevector", wires=1, noise=value).noise is noise


@pytest.mark.parametrize(
    ("keywords", "code"),
    [
        ({"noise": "no"}, "QL107"),
        ({"noise": 2}, "QL107"),
        ({"noise": "0.0"}, "QL107"),
        ({"seed": "seven"}, "QL107"),
        ({"seed": -1}, "QL107"),
        ({"seed": True}, "QL107"),
        ({"engine": "statevektor"}, "QE101"),
        ({"profile": 9}, "QL107"),
    ],
)
def test_a_device_keyword_that_does_not_read_is_refused_with_a_code(keywords, code):
    with pytest.raises(qmk_errors.QMKError) as caught:
        qml.device("qmk.statevector", wires=1, **keywords)
    assert caught.value.code == code


# --------------------------------------------------------------------------- gradients


def _ansatz(n: int, seed: int):
    """A random circuit of every operation the device differentiates, a Rot and a U3 that
    PennyLane decomposes first, and fixed gates between: (function of the weights,
    their count)."""
    rng = np.random.default_rng(seed)
    kinds = ["RX", "RY", "RZ", "PhaseShift", "U1", "CRX", "CRY", "CRZ", "ControlledPhaseShift"]
    kinds += ["IsingXX", "IsingYY", "IsingZZ", "Rot", "U3"]
    plan = []
    for k in range(3 * len(kinds)):
        name = kinds[k % len(kinds)]
        cls = getattr(qml, name)
        wires = [int(w) for w in rng.choice(n, size=cls.num_wires, replace=False)]
        plan.append((cls, wires, cls.num_params))
    count = sum(p for _, _, p in plan)

    def circuit(weights):
        qml.Hadamard(0)
        at = 0
        for k, (cls, wires, p) in enumerate(plan):
            cls(*weights[at : at + p], wires=wires)
            at += p
            if k % 5 == 4:
                qml.CNOT([wires[0], (wires[0] + 1) % n])
                qml.T(wires[0])
                qml.Toffoli([0, 1, 2])
        return (
            qml.expval(qml.Z(0) @ qml.X(n - 1)),
            qml.expval(qml.Hamiltonian([0.5, -1.25], [qml.Y(1), qml.Z(2) @ qml.Z(3)])),
            qml.expval(qml.Hermitian(_HERMITIAN, [3, 1])),
        )

    return circuit, count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_adjoint_gradients_equal_default_qubits_adjoint_and_parameter_shift(seed):
    from pennylane import numpy as pnp

    circuit, count = _ansatz(4, SEED + seed)
    weights = pnp.array(np.random.default_rng(seed).uniform(-np.pi, np.pi, count))

    def jacobian(device: str, method: str):
        qnode = qml.QNode(circuit, qml.device(device, wires=4), diff_method=method)
        return np.array(qml.jacobian(lambda w: qml.math.stack(qnode(w)))(weights))

    got = jacobian("qmk.statevector", "adjoint")
    assert got.shape == (3, count)
    np.testing.assert_allclose(got, jacobian("default.qubit", "adjoint"), atol=1e-8)
    np.testing.assert_allclose(got, jacobian("default.qubit", "parameter-shift"), atol=1e-8)


def test_best_means_the_devices_adjoint_gradient():
    dev = qml.device("qmk.statevector", wires=2)

    @qml.qnode(dev)
    def circuit(t):
        qml.RX(t, 0)
        qml.CRY(t, [0, 1])
        return qml.expval(qml.Z(1))

    assert qml.workflow.get_best_diff_method(circuit)(0.3) == "adjoint"
    config = qml.devices.ExecutionConfig(gradient_method="adjoint")
    assert dev.supports_derivatives(config)
    best = qml.devices.ExecutionConfig(gradient_method="best")
    assert dev.setup_execution_config(best).gradient_method == "adjoint"
    sampled = qml.tape.QuantumScript([qml.RX(0.1, 0)], [qml.expval(qml.Z(0))], shots=10)
    assert not dev.supports_derivatives(config, sampled)
    with dev.tracker:
        qml.grad(circuit)(qml.numpy.array(0.3))
    assert dev.tracker.totals["execute_and_derivative_batches"] == 1


def test_adjoint_gradients_of_a_sampled_tape_or_a_probability_are_refused():
    dev = qml.device("qmk.statevector", wires=1)

    def circuit(t):
        qml.RX(t, 0)
        return qml.probs(wires=0)

    qnode = qml.QNode(circuit, dev, diff_method="adjoint")
    with pytest.raises(qml.exceptions.QuantumFunctionError, match="adjoint"):
        qml.jacobian(qnode)(qml.numpy.array(0.3))

    def expectation(t):
        qml.RX(t, 0)
        return qml.expval(qml.Z(0))

    sampled = qml.set_shots(qml.QNode(expectation, dev, diff_method="adjoint"), 100)
    with pytest.raises(qml.exceptions.QuantumFunctionError, match="does not support adjoint"):
        qml.grad(sampled)(qml.numpy.array(0.3))


def test_many_observables_that_do_not_commute_are_read_off_one_state():
    n = 6
    rng = np.random.default_rng(SEED)
    weights = _weights(2, n)
    words = []
    for _ in range(100):
        wires = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
        words.append({int(w): "XYZ"[int(rng.integers(3))] for w in wires})

    def circuit():
        qml.StronglyEntanglingLayers(weights, wires=range(n))
        return [qml.expval(qml.pauli.PauliWord(w).operation()) for w in words]

    dev = qml.device("qmk.statevector", wires=n)
    with dev.tracker:
        ours = np.array(qml.QNode(circuit, dev)())
    assert dev.tracker.totals["simulations"] == 1

    def prepared():
        qml.StronglyEntanglingLayers(weights, wires=range(n))
        return qml.state()

    state = qml.QNode(prepared, qml.device("default.qubit", wires=n))()
    for word, value in zip(words, ours, strict=True):
        matrix = qml.matrix(qml.pauli.PauliWord(word).operation(), wire_order=range(n))
        assert value == pytest.approx(np.vdot(state, matrix @ state).real, abs=1e-10)


def test_adjoint_gradients_on_labelled_wires_equal_default_qubits():
    from pennylane import numpy as pnp

    def circuit(t):
        qml.RY(t[0], "b")
        qml.IsingXX(t[1], ["b", "a"])
        qml.CRZ(t[2], ["a", "c"])
        qml.Hadamard("c")
        return qml.expval(qml.Z("b") @ qml.X("c")), qml.expval(qml.Y("a"))

    weights = pnp.array([0.3, -1.1, 2.0])
    got, want = (
        np.array(
            qml.jacobian(
                lambda w, d=device: qml.math.stack(
                    qml.QNode(circuit, qml.device(d, wires=["a", "b", "c"]), diff_method="adjoint")(
                        w
                    )
                )
            )(weights)
        )
        for device in ("qmk.statevector", "default.qubit")
    )
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_adjoint_gradients_with_noise_asked_for_are_refused_with_a_code():
    dev = qml.device("qmk.statevector", wires=1, noise=True)

    @qml.qnode(dev, diff_method="adjoint")
    def circuit(t):
        qml.RX(t, 0)
        return qml.expval(qml.Z(0))

    with pytest.raises(FrontendError) as caught:
        qml.grad(circuit)(qml.numpy.array(0.2))
    assert caught.value.code == "QL107"


def test_a_trainable_global_phase_has_a_zero_derivative():
    from pennylane import numpy as pnp

    def circuit(t):
        qml.RX(t[0], 0)
        qml.GlobalPhase(t[1])
        return qml.expval(qml.Z(0))

    dev = qml.device("qmk.statevector", wires=1)
    qnode = qml.QNode(circuit, dev, diff_method="adjoint")
    got = qml.jacobian(qnode)(pnp.array([0.4, 1.3]))
    np.testing.assert_allclose(got, [-np.sin(0.4), 0.0], atol=1e-12)
    # and on a tape PennyLane did not preprocess
    tape = qml.tape.QuantumScript(
        [qml.RX(0.4, 0), qml.GlobalPhase(1.3)], [qml.expval(qml.Z(0))], trainable_params=[0, 1]
    )
    np.testing.assert_allclose(dev.compute_derivatives(tape), [-np.sin(0.4), 0.0], atol=1e-12)


def test_derivatives_of_a_tape_that_measures_a_probability_are_a_device_error():
    dev = qml.device("qmk.statevector", wires=1)
    tape = qml.tape.QuantumScript([qml.RX(0.4, 0)], [qml.probs(wires=0)], trainable_params=[0])
    with pytest.raises(qml.exceptions.DeviceError, match="expectation values only"):
        dev.compute_derivatives(tape)
