"""QuTiP-qip circuits in: final states against QuTiP's own unitary, measured and
classically controlled circuits against QuTiP's exact outcome statistics."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qutip_qip")

import qutip
from qutip_qip.circuit import QubitCircuit
from scipy.stats import chisquare

from qmk.execution.runs import run
from qmk.frontends import decompose
from qmk.frontends.errors import FrontendError
from qmk.frontends.qutip import NAMED, from_qutip

SEED = 20261123


def _final_state(qc: QubitCircuit) -> np.ndarray:
    """QMK's final state in QuTiP's order (qubit 0 most significant)."""
    state = run(from_qutip(qc), shots=1, seed=0, noise=False, final_state="amplitudes").final_state
    n = qc.N
    return state.amplitudes.reshape([2] * n).transpose(range(n - 1, -1, -1)).reshape(-1)


def _qutip_state(qc: QubitCircuit) -> np.ndarray:
    return (qc.compute_unitary() * qutip.basis([2] * qc.N, [0] * qc.N)).full().ravel()


def _same_state(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the global phase (a program cannot see it; QVM does not keep it)."""
    k = int(np.argmax(np.abs(b)))
    np.testing.assert_allclose(a * (b[k] / a[k]), b, atol=1e-10)


def test_a_circuit_of_every_kind_of_gate_has_qutips_final_state():
    rng = np.random.default_rng(SEED)
    qc = QubitCircuit(4)
    qc.add_gate("SNOT", targets=[0])
    qc.add_gate("RX", targets=[1], arg_value=rng.uniform(0, 6))
    qc.add_gate("RY", targets=[2], arg_value=rng.uniform(0, 6))
    qc.add_gate("CNOT", controls=[0], targets=[3])
    qc.add_gate("CRY", controls=[1], targets=[0], arg_value=rng.uniform(0, 6))
    qc.add_gate("TOFFOLI", controls=[0, 1], targets=[2])
    qc.add_gate("CPHASE", controls=[2], targets=[1], arg_value=rng.uniform(0, 6))
    qc.add_gate("CS", controls=[3], targets=[0])
    qc.add_gate("CT", controls=[0], targets=[2])
    qc.add_gate("ISWAP", targets=[0, 3])
    qc.add_gate("FREDKIN", controls=[2], targets=[1, 3])
    qc.add_gate("QASMU", targets=[1], arg_value=list(rng.uniform(0, 6, size=3)))
    qc.add_gate("SQRTNOT", targets=[3])
    qc.add_gate("CZ", controls=[1], targets=[3])
    qc.add_gate("SWAP", targets=[1, 2])
    qc.add_gate("PHASEGATE", targets=[0], arg_value=rng.uniform(0, 6))
    _same_state(_final_state(qc), _qutip_state(qc))


@pytest.mark.parametrize("name", sorted(NAMED))
def test_each_named_gate_lowers_to_qutips_matrix(name):
    from qmk.frontends.qutip import _matrix

    qc = QubitCircuit(3)
    arg = 0.61 if name == "CPHASE" else None
    two = name in ("SWAP", "ISWAP")
    three = name in ("TOFFOLI", "FREDKIN")
    controls = [] if two else ([0, 1] if name == "TOFFOLI" else [0])
    targets = [0, 1] if two else ([1, 2] if name == "FREDKIN" else [len(controls)])
    qc.add_gate(name, controls=controls or None, targets=targets, arg_value=arg)
    gate = qc.gates[0]
    low = decompose.lower_gate(NAMED[name], () if arg is None else (arg,))
    assert low.num_qubits == (3 if three else 2)
    np.testing.assert_allclose(decompose.matrix_of(low), _matrix(gate), atol=1e-12)


def test_a_controlled_gate_on_control_value_0_is_the_target_block_under_0():
    from qutip_qip.operations.gateclass import RX, RZ, ControlledGate

    def under_0(target_gate: type, angle: float) -> ControlledGate:
        return ControlledGate(
            controls=[0], targets=[1], control_value=0, target_gate=target_gate, arg_value=angle
        )

    qc = QubitCircuit(2)
    qc.add_gate("RY", targets=[0], arg_value=0.8)
    qc.add_gate(under_0(RX, 1.3))
    qc.add_gate("SNOT", targets=[0])
    qc.add_gate(under_0(RZ, 0.4))
    _same_state(_final_state(qc), _qutip_state(qc))


def test_measurements_and_classical_controls_follow_qutips_exact_statistics():
    # teleport RY(0.9)|0> from qubit 0 to qubit 2 with two classical corrections
    qc = QubitCircuit(3, num_cbits=3)
    qc.add_gate("RY", targets=[0], arg_value=0.9)
    qc.add_gate("SNOT", targets=[1])
    qc.add_gate("CNOT", controls=[1], targets=[2])
    qc.add_gate("CNOT", controls=[0], targets=[1])
    qc.add_gate("SNOT", targets=[0])
    qc.add_measurement("M0", targets=[0], classical_store=0)
    qc.add_measurement("M1", targets=[1], classical_store=1)
    qc.add_gate("X", targets=[2], classical_controls=[1], classical_control_value=1)
    qc.add_gate("Z", targets=[2], classical_controls=[0], classical_control_value=1)
    qc.add_measurement("M2", targets=[2], classical_store=2)
    shots = 20_000
    counts = run(from_qutip(qc), shots=shots, seed=SEED, noise=False).counts
    stats = qc.run_statistics(qutip.basis([2, 2, 2], [0, 0, 0]))
    exact: dict[str, float] = {}
    for cbits, p in zip(stats.cbits, stats.probabilities, strict=True):
        key = "".join(str(int(b)) for b in cbits)
        exact[key] = exact.get(key, 0.0) + p
    keys = sorted(k for k, p in exact.items() if p > 1e-12)
    assert set(counts) <= set(keys)
    observed = [counts.get(k, 0) for k in keys]
    assert chisquare(observed, [exact[k] * shots for k in keys]).pvalue > 1e-3
    # the teleported qubit reads 1 with probability sin^2(0.45), whatever was measured
    ones = sum(c for k, c in counts.items() if k[2] == "1")
    assert ones / shots == pytest.approx(np.sin(0.45) ** 2, abs=0.015)


def test_a_condition_on_two_bits_reads_the_value_most_significant_first():
    qc = QubitCircuit(3, num_cbits=2)
    qc.add_gate("X", targets=[0])
    qc.add_measurement("M0", targets=[0], classical_store=0)  # c0 = 1
    qc.add_measurement("M1", targets=[1], classical_store=1)  # c1 = 0
    qc.add_gate("X", targets=[2], classical_controls=[0, 1], classical_control_value=2)
    final = run(from_qutip(qc), shots=1, seed=SEED, noise=False, final_state=False)
    assert final.counts == {"10": 1}
    qc.add_measurement("M2", targets=[2], classical_store=1)
    assert run(from_qutip(qc), shots=50, seed=SEED, noise=False).counts == {"11": 50}


def test_a_gate_on_two_targets_outside_the_table_is_refused_by_name():
    qc = QubitCircuit(2)
    qc.add_gate("SQRTSWAP", targets=[0, 1])
    with pytest.raises(FrontendError) as caught:
        from_qutip(qc)
    assert caught.value.code == "QL104"
    assert "SQRTSWAP" in str(caught.value)


def test_something_else_than_a_circuit_is_refused():
    with pytest.raises(FrontendError) as caught:
        from_qutip("H 0")
    assert caught.value.code == "QL107"
