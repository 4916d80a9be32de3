"""Adjoint differentiation against the exact parameter-shift rule, every expectation
value computed here from a dense unitary (:func:`qmk.engines.gates.unitary`) or the
statevector engine: ``d<O>/dt = (<O>(t + pi/2) - <O>(t - pi/2)) / 2`` holds exactly for
every gate ``exp(-i t P / 2)``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qmk.engines import EngineError, rows
from qmk.engines.adjoint import jacobian
from qmk.engines.gates import GATES, unitary
from qmk.engines.observables import Hermitian, PauliSum, expectation_values
from qmk.engines.statevector import StatevectorEngine
from qmk.gates import BUILT_IN, Gate, fixed, register, unregister

SEED = 20261126


def _circuit(n: int, size: int, seed: int) -> list[tuple[str, tuple[int, ...], tuple[float, ...]]]:
    """Random gates of every built-in record (qubit k is bit k of the state)."""
    rng = np.random.default_rng(seed)
    names = sorted(name for name in BUILT_IN if GATES[name].qubits <= n)
    gates = []
    for k in range(size):
        name = names[k % len(names)] if k < len(names) else names[int(rng.integers(len(names)))]
        record = GATES[name]
        qubits = tuple(int(q) for q in rng.choice(n, size=record.qubits, replace=False))
        gates.append(
            (name, qubits, tuple(float(a) for a in rng.uniform(-3, 3, len(record.params))))
        )
    return gates


def _dense_state(gates, n: int) -> np.ndarray:
    # unitary() puts qubit 0 most significant: state qubit q is its qubit n-1-q
    flipped = [(name, tuple(n - 1 - q for q in qubits), p) for name, qubits, p in gates]
    return unitary(flipped, n)[:, 0]


def _observables(n: int) -> list:
    rng = np.random.default_rng(SEED)
    h = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    return [
        PauliSum.of([(0.7, {0: "Z", n - 1: "X"}), (-0.4, {1: "Y"}), (0.25, {})]),
        PauliSum.of([(1.0, {q: "XYZ"[q % 3] for q in range(n)})]),
        Hermitian(h + h.conj().T, (n - 1, 0)),
    ]


def _shifted(gates, j: int, by: float):
    name, qubits, (angle,) = gates[j]
    out = list(gates)
    out[j] = (name, qubits, (angle + by,))
    return out


@pytest.mark.parametrize(("n", "seed"), [(1, 1), (3, 2), (5, 3), (5, 4)])
def test_the_jacobian_equals_the_parameter_shift_rule_on_random_circuits(n, seed):
    gates = _circuit(n, 40, SEED + seed)
    observables = _observables(n) if n >= 2 else [PauliSum.of([(1.0, {0: "Y"})])]
    out = jacobian(_dense_state(gates, n), gates, observables)
    assert out.gates == tuple(j for j, g in enumerate(gates) if GATES[g[0]].params)
    exact = expectation_values(_dense_state(gates, n), observables)
    np.testing.assert_allclose(out.values, exact, atol=1e-12)
    for column, j in enumerate(out.gates):
        plus = expectation_values(_dense_state(_shifted(gates, j, math.pi / 2), n), observables)
        minus = expectation_values(_dense_state(_shifted(gates, j, -math.pi / 2), n), observables)
        np.testing.assert_allclose(out.jacobian[:, column], (plus - minus) / 2, atol=1e-10)


def _engine_state(gates, n: int) -> np.ndarray:
    engine = StatevectorEngine(seed=0)
    qubits = [engine.allocate() for _ in range(n)]
    for name, qs, params in gates:
        engine.apply(name, [qubits[q] for q in qs], params)
    return engine.state_vector(list(reversed(qubits)))  # first qubit most significant


def test_a_large_state_goes_through_the_compiled_kernels_with_the_same_jacobian():
    n = 17  # 2**17 amplitudes: past KERNEL_AMPLITUDES
    assert 1 << n >= rows.KERNEL_AMPLITUDES
    gates = [g for g in _circuit(n, 30, SEED) if g[0] not in ("ccx", "ccz")][:24]
    observables = [PauliSum.of([(1.0, {0: "Z", 7: "X"})]), PauliSum.of([(0.5, {16: "Y"})])]
    out = jacobian(_engine_state(gates, n), gates, observables)
    for column, j in enumerate(out.gates):
        plus = expectation_values(_engine_state(_shifted(gates, j, math.pi / 2), n), observables)
        minus = expectation_values(_engine_state(_shifted(gates, j, -math.pi / 2), n), observables)
        np.testing.assert_allclose(out.jacobian[:, column], (plus - minus) / 2, atol=1e-10)


def test_a_gate_with_an_angle_and_no_generator_is_refused_with_a_code():
    def build(params):
        return np.diag([1, np.exp(1j * params[0])])

    register(Gate(name="phase_example", qubits=1, params=("theta",), build=build))
    try:
        with pytest.raises(EngineError) as caught:
            jacobian(np.array([1, 0], dtype=complex), [("phase_example", (0,), (0.1,))], [])
        assert caught.value.code == "QE103"
        assert "no generator" in str(caught.value)
    finally:
        unregister("phase_example")


@pytest.mark.parametrize(
    "gates",
    [[("cx", (0, 0), ())], [("h", (2,), ())], [("nope", (0,), ())]],
)
def test_a_gate_on_qubits_the_state_lacks_is_refused_with_a_code(gates):
    with pytest.raises(EngineError) as caught:
        jacobian(np.array([1, 0, 0, 0], dtype=complex), gates, [])
    assert caught.value.code in ("QE103", "QE105")


def test_a_fixed_gate_has_no_column():
    register(Gate(name="fixed_example", qubits=1, build=fixed(GATES["h"].matrix())))
    try:
        out = jacobian(np.array([1, 0], dtype=complex), [("fixed_example", (0,), ())], [])
        assert out.gates == () and out.jacobian.shape == (0, 0)
    finally:
        unregister("fixed_example")
