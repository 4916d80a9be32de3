"""The op table walked as a whole: structural invariants and real quantum facts.

The matrix checks use small pure-Python complex matrices (at most 8x8), so they
need no numerical library. Qubit order: the first qubit in ``vqs`` is the most
significant bit of a basis index, so CNOT on vqs (control, target) is
``|0><0| (x) I + |1><1| (x) X``.
"""

from __future__ import annotations

import cmath
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from qmk.qvm.ops import (
    CAPABILITIES,
    ONE,
    OPERAND_KINDS,
    OPS,
    ArgSpec,
    ArgType,
    Category,
    Clifford,
    OpSpec,
)

ARCHITECTURE_OPS = (
    "ALLOC_LQ",
    "FREE_LQ",
    "RESET",
    "APPLY_H",
    "APPLY_S",
    "APPLY_SDG",
    "APPLY_X",
    "APPLY_Y",
    "APPLY_Z",
    "APPLY_T",
    "APPLY_TDG",
    "APPLY_RX",
    "APPLY_RY",
    "APPLY_RZ",
    "APPLY_CNOT",
    "APPLY_CZ",
    "APPLY_SWAP",
    "MEASURE_Z",
    "MEASURE_X",
    "MEASURE_Y",
    "MEASURE_ANGLE",
    "MEASURE_BELL",
    "TELEPORT_CNOT",
    "INJECT_T_STATE",
    "COND_PAULI",
    "OPEN_CHAN",
    "USE_CHAN",
    "CLOSE_CHAN",
    "FENCE_EPOCH",
    "BAR_REGION",
    "SET_POLICY",
)


def _all_args(spec: OpSpec) -> list[ArgSpec]:
    """Every argument of an op, object fields included."""
    out: list[ArgSpec] = []
    stack = list(spec.args)
    while stack:
        arg = stack.pop()
        out.append(arg)
        stack.extend(arg.fields)
    return out


def _name(spec: OpSpec) -> str:
    return spec.name


# --------------------------------------------------------------------------- structure


def test_every_op_named_in_the_architecture_is_in_the_table():
    assert [name for name in ARCHITECTURE_OPS if name not in OPS] == []


def test_op_records_are_keyed_by_their_own_name():
    assert all(name == spec.name for name, spec in OPS.items())


def test_the_capabilities_are_alloc_teleport_magic_link_the_device_and_observe():
    assert set(CAPABILITIES) == {
        "CAP_ALLOC",
        "CAP_TELEPORT",
        "CAP_MAGIC",
        "CAP_LINK",
        "CAP_DEVICE_NA",
        "CAP_OBSERVE",
    }


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_every_op_with_a_capability_names_a_known_one(spec: OpSpec):
    assert spec.cap is None or spec.cap in CAPABILITIES


def test_every_capability_but_the_devices_and_observe_is_needed_by_some_op():
    # CAP_DEVICE_NA guards the neutral-atom target's jobs (q_submit), CAP_OBSERVE the
    # kernel's load (q_kernel_load): neither is a QVM op's
    needed = {spec.cap for spec in OPS.values()} - {None}
    assert needed == set(CAPABILITIES) - {"CAP_DEVICE_NA", "CAP_OBSERVE"}


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_a_unitary_op_has_an_inverse_in_the_table_whose_inverse_is_the_op(spec: OpSpec):
    if not spec.unitary:
        assert spec.inverse is None, f"{spec.name} is not unitary but names an inverse"
        assert spec.inverse_negates == ()
        return
    assert spec.inverse in OPS, f"{spec.name}'s inverse {spec.inverse!r} is not in the table"
    inverse = OPS[spec.inverse]
    assert inverse.unitary
    assert inverse.inverse == spec.name
    assert inverse.inverse_negates == spec.inverse_negates
    # Operands carry over one to one, so the inverse must take the same operands.
    for kind in OPERAND_KINDS:
        assert getattr(inverse, kind) == getattr(spec, kind), kind


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_inverse_negates_names_number_args_of_the_op(spec: OpSpec):
    for name in spec.inverse_negates:
        arg = spec.arg(name)
        assert arg is not None, f"{spec.name}.inverse_negates names {name!r}, not an argument"
        assert arg.type is ArgType.NUMBER


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_only_string_and_pauli_args_have_choices(spec: OpSpec):
    for arg in _all_args(spec):
        if arg.choices:
            assert arg.type in (ArgType.STRING, ArgType.PAULI), f"{spec.name}.{arg.name}"
        if arg.type is ArgType.PAULI:
            assert set(arg.choices) <= {"I", "X", "Y", "Z"} and arg.choices


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_equals_count_of_names_an_operand_kind(spec: OpSpec):
    for arg in _all_args(spec):
        if arg.equals_count_of is not None:
            assert arg.equals_count_of in OPERAND_KINDS
            assert arg.type is ArgType.INTEGER


@pytest.mark.parametrize("spec", OPS.values(), ids=list(OPS))
def test_only_object_args_have_fields_and_arg_names_are_unique(spec: OpSpec):
    names = [arg.name for arg in spec.args]
    assert len(names) == len(set(names))
    for arg in _all_args(spec):
        assert bool(arg.fields) == (arg.type is ArgType.OBJECT), f"{spec.name}.{arg.name}"
        if arg.minimum is not None and arg.maximum is not None:
            assert arg.minimum <= arg.maximum


@pytest.mark.parametrize(
    "spec", [s for s in OPS.values() if s.category is Category.MEASUREMENT], ids=_name
)
def test_measurement_ops_produce_one_event_per_outcome(spec: OpSpec):
    assert spec.produces.low >= 1
    if spec.name == "NOISY_MEASURE":  # stim's MPAD(p) writes a bit of no qubit
        assert spec.produces == ONE and spec.vqs.high == 1
        return
    assert spec.produces == spec.vqs, "one outcome per measured qubit"
    assert not spec.unitary


def test_only_measurements_and_classical_computations_produce_events():
    producers = {spec.name for spec in OPS.values() if spec.produces.high != 0}
    measurements = {s.name for s in OPS.values() if s.category is Category.MEASUREMENT}
    assert producers == measurements | {"CALC"}


@pytest.mark.parametrize(
    "spec", [s for s in OPS.values() if s.clifford is Clifford.QUARTER_TURN], ids=_name
)
def test_quarter_turn_ops_have_exactly_one_number_arg(spec: OpSpec):
    assert [arg.type for arg in spec.args] == [ArgType.NUMBER]
    assert spec.args[0].required


def test_gate_ops_are_unitary():
    assert all(spec.unitary for spec in OPS.values() if spec.category is Category.GATE)


# --------------------------------------------------------------------------- matrices

Matrix = tuple[tuple[complex, ...], ...]


def matrix(rows: list[list[complex]]) -> Matrix:
    return tuple(tuple(complex(x) for x in row) for row in rows)


def identity(size: int) -> Matrix:
    return tuple(tuple(1.0 + 0j if i == j else 0j for j in range(size)) for i in range(size))


def matmul(a: Matrix, b: Matrix) -> Matrix:
    columns = list(zip(*b, strict=True))
    return tuple(
        tuple(sum(x * y for x, y in zip(row, col, strict=True)) for col in columns) for row in a
    )


def dagger(a: Matrix) -> Matrix:
    return tuple(tuple(x.conjugate() for x in col) for col in zip(*a, strict=True))


def kron(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(x * y for x in row_a for y in row_b) for row_a in a for row_b in b)


def scale(c: complex, a: Matrix) -> Matrix:
    return tuple(tuple(c * x for x in row) for row in a)


def add(a: Matrix, b: Matrix) -> Matrix:
    return tuple(
        tuple(x + y for x, y in zip(ra, rb, strict=True)) for ra, rb in zip(a, b, strict=True)
    )


def close(a: Matrix, b: Matrix, tol: float = 1e-9) -> bool:
    return all(
        abs(x - y) <= tol for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)
    )


def diag(*values: complex) -> Matrix:
    return tuple(
        tuple(complex(v) if i == j else 0j for j in range(len(values)))
        for i, v in enumerate(values)
    )


I2 = identity(2)
X = matrix([[0, 1], [1, 0]])
Y = matrix([[0, -1j], [1j, 0]])
Z = diag(1, -1)
PAULIS = {"I": I2, "X": X, "Y": Y, "Z": Z}
H = scale(1 / math.sqrt(2), matrix([[1, 1], [1, -1]]))
S = diag(1, 1j)
T = diag(1, cmath.exp(1j * math.pi / 4))
P0 = diag(1, 0)
P1 = diag(0, 1)
CNOT = add(kron(P0, I2), kron(P1, X))
CZ = diag(1, 1, 1, -1)
SWAP = matrix([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
CCX = add(kron(diag(1, 1, 1, 0), I2), kron(diag(0, 0, 0, 1), X))
CCZ = diag(1, 1, 1, 1, 1, 1, 1, -1)


def rotation(pauli: Matrix, theta: float) -> Matrix:
    """exp(-i theta P / 2) = cos(theta/2) I - i sin(theta/2) P, for a Pauli P."""
    return add(scale(math.cos(theta / 2), I2), scale(-1j * math.sin(theta / 2), pauli))


#: The matrix of each gate op as a function of its args (vqs order = kron order).
GATES: Mapping[str, Callable[[Mapping[str, Any]], Matrix]] = {
    "APPLY_H": lambda args: H,
    "APPLY_S": lambda args: S,
    "APPLY_SDG": lambda args: dagger(S),
    "APPLY_X": lambda args: X,
    "APPLY_Y": lambda args: Y,
    "APPLY_Z": lambda args: Z,
    "APPLY_T": lambda args: T,
    "APPLY_TDG": lambda args: dagger(T),
    "APPLY_RX": lambda args: rotation(X, args["theta"]),
    "APPLY_RY": lambda args: rotation(Y, args["theta"]),
    "APPLY_RZ": lambda args: rotation(Z, args["theta"]),
    "APPLY_CNOT": lambda args: CNOT,
    "APPLY_CZ": lambda args: CZ,
    "APPLY_SWAP": lambda args: SWAP,
    "APPLY_CCX": lambda args: CCX,
    "APPLY_CCZ": lambda args: CCZ,
    # A teleported CNOT has the CNOT's effect; the teleportation is how, not what.
    "TELEPORT_CNOT": lambda args: CNOT,
}

THETAS = (0.0, 0.3, -1.1, math.pi / 4, math.pi / 2, math.pi, 2.5, -3 * math.pi / 2)


def pauli_strings(qubits: int) -> list[Matrix]:
    out = []
    for letters in itertools.product("IXYZ", repeat=qubits):
        m: Matrix = ((1 + 0j,),)
        for letter in letters:
            m = kron(m, PAULIS[letter])
        out.append(m)
    return out


def is_pauli_up_to_phase(m: Matrix) -> bool:
    """True when ``m`` is c * P for a Pauli string P and |c| = 1.

    Pauli strings are an orthogonal basis with tr(P^dag Q) = 2^n delta_PQ, so the
    coefficients c_P = tr(P^dag m) / 2^n of a unitary m have squared norms summing
    to 1; m is a single Pauli exactly when one coefficient has norm 1.
    """
    size = len(m)
    qubits = size.bit_length() - 1
    best = 0.0
    for p in pauli_strings(qubits):
        trace = sum(matmul(dagger(p), m)[i][i] for i in range(size)) / size
        best = max(best, abs(trace))
    return abs(best - 1) < 1e-9


def maps_paulis_to_paulis(u: Matrix) -> bool:
    return all(is_pauli_up_to_phase(matmul(matmul(u, p), dagger(u))) for p in pauli_strings_for(u))


def pauli_strings_for(u: Matrix) -> list[Matrix]:
    return pauli_strings(len(u).bit_length() - 1)


def sample_args(spec: OpSpec, theta: float) -> dict[str, float]:
    return {arg.name: theta for arg in spec.args}


def inverse_args(spec: OpSpec, args: Mapping[str, float]) -> dict[str, float]:
    return {name: -value if name in spec.inverse_negates else value for name, value in args.items()}


def test_the_reference_matrices_are_unitary_and_the_right_size():
    for name, gate in GATES.items():
        u = gate({"theta": 0.7})
        assert len(u) == 2 ** OPS[name].vqs.low, name
        assert close(matmul(u, dagger(u)), identity(len(u))), name


def test_every_unitary_op_on_qubits_alone_has_a_reference_matrix():
    # COND_PAULI is classically controlled (its matrix depends on events); tested below.
    pure = {
        spec.name
        for spec in OPS.values()
        if spec.unitary and spec.inputs.high == 0 and spec.chs.high == 0
    }
    assert pure == set(GATES)


@pytest.mark.parametrize("name", list(GATES))
def test_a_gate_times_its_table_inverse_is_the_identity(name: str):
    spec = OPS[name]
    inverse = GATES[spec.inverse]
    for theta in THETAS if spec.args else (0.0,):
        args = sample_args(spec, theta)
        u = GATES[name](args)
        assert close(matmul(u, inverse(inverse_args(spec, args))), identity(len(u))), theta


def test_every_cond_pauli_mask_is_its_own_inverse():
    mask = OPS["COND_PAULI"].arg("mask")
    assert mask is not None
    for letter in mask.choices:
        assert close(matmul(PAULIS[letter], PAULIS[letter]), I2), letter


@pytest.mark.parametrize("name", [n for n in GATES if OPS[n].clifford is Clifford.YES], ids=str)
def test_clifford_gates_map_every_pauli_to_a_pauli(name: str):
    assert maps_paulis_to_paulis(GATES[name]({}))


@pytest.mark.parametrize("name", [n for n in GATES if OPS[n].clifford is Clifford.NO], ids=str)
def test_non_clifford_gates_map_some_pauli_outside_the_pauli_group(name: str):
    assert not maps_paulis_to_paulis(GATES[name]({}))


def test_t_tdg_ccx_and_ccz_are_the_non_clifford_gates():
    assert {n for n in GATES if OPS[n].clifford is Clifford.NO} == {
        "APPLY_T",
        "APPLY_TDG",
        "APPLY_CCX",
        "APPLY_CCZ",
    }


@pytest.mark.parametrize(
    "name", [n for n in GATES if OPS[n].clifford is Clifford.QUARTER_TURN], ids=str
)
def test_quarter_turn_rotations_are_clifford_exactly_at_multiples_of_half_pi(name: str):
    theta_name = OPS[name].args[0].name
    for k in range(-4, 5):
        assert maps_paulis_to_paulis(GATES[name]({theta_name: k * math.pi / 2})), k
    for theta in (math.pi / 4, -math.pi / 4, 3 * math.pi / 4, 0.1):
        assert not maps_paulis_to_paulis(GATES[name]({theta_name: theta})), theta


def test_cnot_controls_on_the_first_qubit_in_vqs():
    # |10> (control set) goes to |11>; |01> (target set only) stays.
    assert CNOT[3][2] == 1 and CNOT[1][1] == 1
    assert OPS["APPLY_CNOT"].description.endswith("(control, target)")
