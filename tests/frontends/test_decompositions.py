"""Every decomposition in the shared table equals its Qiskit matrix exactly, phase included."""

from __future__ import annotations

import numpy as np
import pytest

from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS

pytest.importorskip("qiskit")

from qiskit.circuit import library as lib
from qiskit.quantum_info import Operator

QISKIT = {
    "id": lib.IGate, "x": lib.XGate, "y": lib.YGate, "z": lib.ZGate, "h": lib.HGate,
    "s": lib.SGate, "sdg": lib.SdgGate, "t": lib.TGate, "tdg": lib.TdgGate, "rx": lib.RXGate,
    "ry": lib.RYGate, "rz": lib.RZGate, "sx": lib.SXGate, "sxdg": lib.SXdgGate,
    "p": lib.PhaseGate, "u": lib.UGate, "u2": lib.U2Gate, "r": lib.RGate, "cx": lib.CXGate,
    "cz": lib.CZGate, "cy": lib.CYGate, "ch": lib.CHGate, "cs": lib.CSGate,
    "csdg": lib.CSdgGate, "csx": lib.CSXGate, "cp": lib.CPhaseGate, "crx": lib.CRXGate,
    "cry": lib.CRYGate, "crz": lib.CRZGate, "cu": lib.CUGate, "cu3": lib.CU3Gate,
    "swap": lib.SwapGate, "iswap": lib.iSwapGate, "dcx": lib.DCXGate, "ecr": lib.ECRGate,
    "rxx": lib.RXXGate, "ryy": lib.RYYGate, "rzz": lib.RZZGate, "rzx": lib.RZXGate,
    "ccx": lib.CCXGate, "ccz": lib.CCZGate, "cswap": lib.CSwapGate, "rccx": lib.RCCXGate,
    "rcccx": lib.RC3XGate, "c3x": lib.C3XGate, "c3sx": lib.C3SXGate, "c4x": lib.C4XGate,
    "gphase": lib.GlobalPhaseGate,
}  # fmt: skip
ALIASES = {"u3": lib.U3Gate, "u1": lib.U1Gate, "cu1": lib.CU1Gate, "toffoli": lib.CCXGate}


def test_every_table_entry_has_a_qiskit_reference():
    assert set(QISKIT) == set(decompose.STANDARD_GATES)


@pytest.mark.parametrize("name", sorted(QISKIT) + sorted(ALIASES))
def test_decomposition_equals_the_qiskit_matrix_including_global_phase(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    cls = QISKIT.get(name) or ALIASES[name]
    _, n_params = decompose.arity(name)
    for _ in range(3):
        params = [float(x) for x in rng.uniform(-2 * np.pi, 2 * np.pi, n_params)]
        low = decompose.lower_gate(name, params)
        assert {op for op, _, _ in low.ops} <= set(GATE_OPS)
        assert np.allclose(decompose.matrix_of(low), Operator(cls(*params)).data, atol=1e-9)


@pytest.mark.parametrize("n_controls", [1, 2, 3])
@pytest.mark.parametrize("name", ["u", "h", "swap", "rzz", "ccx", "rccx", "iswap"])
def test_controlled_matches_qiskit_control_for_every_control_state(name, n_controls):
    rng = np.random.default_rng(n_controls * 31 + len(name))
    _, n_params = decompose.arity(name)
    params = [float(x) for x in rng.uniform(-np.pi, np.pi, n_params)]
    state = int(rng.integers(2**n_controls))
    gate = QISKIT[name](*params).control(n_controls, ctrl_state=state, annotated=False)
    low = decompose.controlled(decompose.lower_gate(name, params), n_controls, state)
    assert np.allclose(decompose.matrix_of(low), Operator(gate).data, atol=1e-8)


def test_a_controlled_global_phase_is_a_phase_gate_on_the_control():
    low = decompose.controlled(decompose.lower_gate("gphase", [0.7]), 1)
    assert np.allclose(decompose.matrix_of(low), np.diag([1, np.exp(0.7j)]))


@pytest.mark.parametrize("name", ["u", "cu", "rccx", "ecr", "c3sx"])
def test_inverse_is_the_adjoint(name):
    rng = np.random.default_rng(5)
    _, n_params = decompose.arity(name)
    low = decompose.lower_gate(name, [float(x) for x in rng.uniform(-3, 3, n_params)])
    back = decompose.matrix_of(decompose.inverse(low))
    assert np.allclose(back @ decompose.matrix_of(low), np.eye(back.shape[0]), atol=1e-9)


def test_integer_and_fractional_powers_match_qiskit():
    for name, k in (("t", 3), ("rzz", -2), ("sx", 0.5), ("h", 0.5), ("ry", 1.5)):
        _, n_params = decompose.arity(name)
        params = [0.9] * n_params
        low = decompose.power(decompose.lower_gate(name, params), k)
        ref = Operator(QISKIT[name](*params).power(k)).data
        assert np.allclose(decompose.matrix_of(low), ref, atol=1e-9), (name, k)


def test_a_fractional_power_of_a_two_qubit_gate_is_refused():
    with pytest.raises(ValueError, match="fractional power"):
        decompose.power(decompose.lower_gate("cx"), 0.5)


def test_any_one_qubit_unitary_is_exact_with_its_phase():
    from scipy.stats import unitary_group

    for seed in range(20):
        u = unitary_group.rvs(2, random_state=seed)
        assert np.allclose(decompose.matrix_of(decompose.unitary(u)), u, atol=1e-9)


def _unitary(low: decompose.Lowered) -> np.ndarray:
    """``matrix_of(low)`` gate by gate on an ``n``-qubit tensor (dense products of
    512x512 matrices per gate would take minutes at 9 qubits)."""
    n = low.num_qubits
    dim = 2**n
    state = np.eye(dim, dtype=complex).reshape((2,) * n + (dim,))
    for name, qs, params in low.ops:
        if name == "swap":
            a, b = (n - 1 - q for q in qs)
            state = np.swapaxes(state, a, b)
            continue
        u = decompose.basic_matrix(name, params)
        *controls, target = qs
        index: list[object] = [slice(None)] * (n + 1)
        for c in controls:
            index[n - 1 - c] = 1  # qubit q is axis n-1-q (qubit 0 least significant)
        sub = state[tuple(index)]
        axis = (n - 1 - target) - sum(1 for c in controls if n - 1 - c < n - 1 - target)
        moved = np.moveaxis(sub, axis, 0)
        state[tuple(index)] = np.moveaxis(np.tensordot(u, moved, axes=(1, 0)), 0, axis)
    return np.exp(1j * low.phase) * state.reshape(dim, dim)


def test_the_fast_unitary_helper_agrees_with_matrix_of():
    low = decompose.controlled(decompose.lower_gate("u", [0.3, -1.1, 2.0]), 3, 5)
    assert np.allclose(_unitary(low), decompose.matrix_of(low), atol=1e-10)


@pytest.mark.parametrize("n_controls", [4, 6, 7, 8])
def test_many_controls_are_exact_with_every_control_state(n_controls):
    rng = np.random.default_rng(100 + n_controls)
    params = [float(x) for x in rng.uniform(-np.pi, np.pi, 3)]
    state = int(rng.integers(2**n_controls))
    low = decompose.controlled(decompose.lower_gate("u", params), n_controls, state)
    gate = lib.UGate(*params).control(n_controls, ctrl_state=state, annotated=False)
    assert np.allclose(_unitary(low), Operator(gate).data, atol=1e-8)
    x = decompose.mcx(n_controls)
    assert np.allclose(_unitary(x), Operator(lib.MCXGate(n_controls)).data, atol=1e-8)


def test_many_controls_cost_quadratically_not_exponentially():
    sizes = {n: len(decompose.mcx(n).ops) for n in (8, 16, 32)}
    assert sizes[32] < 6 * sizes[16] < 36 * sizes[8]  # ~4x per doubling: quadratic
    assert sizes[32] < 20_000


@pytest.mark.parametrize("name", sorted(QISKIT))
def test_the_additive_gates_are_exactly_the_one_parameter_groups_of_the_table(name):
    """ADDITIVE lists a gate when its Qiskit matrix, the other parameters held, is a
    one-parameter group in the listed one: g(a + b) == g(a) g(b), phase included (what
    lets a run-time angle apply bit by bit); every other gate with a parameter breaks the
    law for all its parameters (seeded values)."""
    rng = np.random.default_rng(sum(map(ord, name)) + 7)
    _, n_params = decompose.arity(name)

    def law_holds(index: int) -> bool:
        held = [float(x) for x in rng.uniform(-np.pi, np.pi, n_params)]

        def g(value: float) -> np.ndarray:
            return Operator(QISKIT[name](*held[:index], value, *held[index + 1 :])).data

        for _ in range(3):
            a, b = (float(x) for x in rng.uniform(-2 * np.pi, 2 * np.pi, 2))
            if not np.allclose(g(a + b), g(a) @ g(b), atol=1e-9):
                return False
        return True

    groups = [k for k in range(n_params) if law_holds(k)]
    index = decompose.ADDITIVE.get(name)
    assert groups == ([] if index is None else [index])
