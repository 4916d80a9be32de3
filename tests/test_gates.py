"""The gate records: every record keeps its invariants, its names are the same gate in
each language (checked by that language's own tool where it is installed), and a gate
registered at run time is applied or refused with a code by everything that names gates.

These walk :data:`qmk.gates.GATES`, so a record added there is checked at once.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from qmk.engines import make_engine
from qmk.engines.base import EngineError
from qmk.engines.gate_matrices import matrices
from qmk.engines.gates import pauli_string, unitary
from qmk.engines.registry import SPECS, availability
from qmk.gates import (
    BUILT_IN,
    GATES,
    LANGUAGES,
    Gate,
    Names,
    fixed,
    named,
    register,
    registered,
    unregister,
)

RECORDS = [GATES[name] for name in sorted(BUILT_IN)]
ANGLES = (0.0, math.pi / 2, math.pi, -math.pi / 2, 0.3, -1.1, 2.5)


def _params(gate: Gate, angle: float) -> tuple[float, ...]:
    return tuple(angle for _ in gate.params)


def _same_up_to_phase(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=complex), np.asarray(b, dtype=complex)
    return a.shape == b.shape and abs(abs(np.trace(a.conj().T @ b)) - len(a)) < 1e-9


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("gate", RECORDS, ids=lambda g: g.name)
def test_a_records_matrix_is_a_unitary_of_its_arity_at_every_angle(gate: Gate) -> None:
    size = 2**gate.qubits
    for angle in ANGLES:
        matrix = gate.matrix(_params(gate, angle))
        assert matrix.shape == (size, size)
        assert np.allclose(matrix.conj().T @ matrix, np.eye(size)), (gate.name, angle)
    with pytest.raises(ValueError, match=gate.name):
        gate.matrix((*_params(gate, 0.1), 0.2))


@pytest.mark.parametrize("gate", RECORDS, ids=lambda g: g.name)
def test_a_records_inverse_undoes_it_and_the_inverse_of_its_inverse_is_itself(gate: Gate):
    inverse = GATES[gate.adjoint()[0]]
    assert inverse.adjoint()[0] == gate.name
    assert inverse.params == gate.params and inverse.qubits == gate.qubits
    for angle in ANGLES:
        params = _params(gate, angle)
        name, undo = gate.adjoint(params)
        product = GATES[name].matrix(undo) @ gate.matrix(params)
        assert np.allclose(product, np.eye(len(product))), (gate.name, angle)
        again, back = GATES[name].adjoint(undo)
        assert (again, back) == (gate.name, tuple(float(p) for p in params))


def _maps_paulis_to_paulis(matrix: np.ndarray) -> bool:
    """Whether ``matrix`` conjugates every one-qubit X and Z (so every Pauli product) to a
    Pauli product: the definition of a Clifford gate."""
    n = len(matrix).bit_length() - 1
    for q, letter in itertools.product(range(n), "XZ"):
        text = "I" * q + letter + "I" * (n - q - 1)
        pauli = np.eye(1)
        for c in text:
            pauli = np.kron(
                pauli, {"I": np.eye(2), "X": [[0, 1], [1, 0]], "Z": np.diag([1, -1])}[c]
            )
        if pauli_string(matrix @ pauli @ matrix.conj().T) is None:
            return False
    return True


@pytest.mark.parametrize("gate", RECORDS, ids=lambda g: g.name)
def test_a_records_clifford_flags_say_whether_its_matrix_maps_paulis_to_paulis(gate: Gate):
    for angle in ANGLES:
        params = _params(gate, angle)
        assert gate.is_clifford(params) == _maps_paulis_to_paulis(gate.matrix(params)), (
            gate.name,
            angle,
        )
    if gate.quarter_turn:
        assert not gate.clifford and len(gate.params) == 1


_PAULIS = {"I": np.eye(2), "X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]])}
_PAULIS["Z"] = np.diag([1, -1])


def _is_pauli_up_to_phase(matrix: np.ndarray) -> bool:
    n = len(matrix).bit_length() - 1
    for letters in itertools.product("IXYZ", repeat=n):
        pauli = np.eye(1)
        for letter in letters:
            pauli = np.kron(pauli, _PAULIS[letter])
        if _same_up_to_phase(pauli, matrix):
            return True
    return False


def _is_diagonal(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix, np.diag(np.diag(matrix))))


@pytest.mark.parametrize("gate", RECORDS, ids=lambda g: g.name)
def test_a_records_diagonal_and_pauli_flags_agree_with_its_matrix(gate: Gate) -> None:
    """A flag holds at every angle; a gate not flagged fails it at some angle (``rx`` is
    diagonal at 0 and a Pauli at pi only)."""
    for flag, check in ((gate.diagonal, _is_diagonal), (gate.pauli, _is_pauli_up_to_phase)):
        held = [check(gate.matrix(_params(gate, angle))) for angle in ANGLES]
        assert all(held) if flag else not all(held), (flag, held)


@pytest.mark.parametrize("gate", RECORDS, ids=lambda g: g.name)
def test_a_records_generator_is_the_pauli_its_matrix_rotates_about(gate: Gate) -> None:
    """``matrix(t) = exp(-i t P / 2)`` at every angle; a gate of one parameter without a
    generator is none of these (no record of ours)."""
    if not gate.generator:
        assert len(gate.params) != 1
        return
    pauli = np.eye(1, dtype=complex)
    for letter in gate.generator:
        pauli = np.kron(pauli, {"I": np.eye(2), "X": _X, "Y": _Y, "Z": _Z}[letter])
    for angle in ANGLES:
        rotation = math.cos(angle / 2) * np.eye(len(pauli)) - 1j * math.sin(angle / 2) * pauli
        np.testing.assert_allclose(gate.matrix((angle,)), rotation, atol=1e-12)


_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.diag([1.0, -1.0]).astype(complex)


# --------------------------------------------------------------------------- names


def _names(language: str) -> list[tuple[Gate, str]]:
    return [(gate, name) for gate in RECORDS for name in gate.names.of(language)]


def _ids(case: tuple[Gate, str]) -> str:
    return f"{case[0].name}-{case[1]}"


def test_every_name_of_every_language_is_one_records_and_the_index_finds_it() -> None:
    for language in LANGUAGES:
        seen: dict[str, str] = {}
        for gate, name in _names(language):
            assert name not in seen, (language, name, seen.get(name), gate.name)
            seen[name] = gate.name
            assert named(language, name) is gate
    assert named("stim", "T") is None and named("qasm9", "x") is None


@pytest.mark.parametrize("case", _names("stim"), ids=_ids)
def test_a_records_stim_name_is_the_gate_of_stims_own_tableau(case: tuple[Gate, str]) -> None:
    stim = pytest.importorskip("stim")
    gate, name = case
    for angle in ANGLES:
        ours = stim.Tableau.from_unitary_matrix(gate.matrix(_params(gate, angle)), endian="big")
        assert ours == stim.Tableau.from_named_gate(name), (gate.name, angle)


@pytest.mark.parametrize("gate", [g for g in RECORDS if g.names.stim_quarter], ids=lambda g: g.name)
def test_a_rotations_stim_names_are_its_tableaus_at_each_quarter_turn(gate: Gate) -> None:
    stim = pytest.importorskip("stim")
    for turns, name in enumerate(gate.names.stim_quarter or ()):
        for full in (0, 1, -1):  # the same gate a whole turn on, either way
            theta = (turns + 4 * full) * math.pi / 2
            ours = stim.Tableau.from_unitary_matrix(gate.matrix((theta,)), endian="big")
            assert ours == stim.Tableau.from_named_gate(name), (gate.name, turns, full)


@pytest.mark.parametrize("case", _names("qiskit"), ids=_ids)
def test_a_records_qiskit_name_is_the_same_gate_in_qiskit(case: tuple[Gate, str]) -> None:
    pytest.importorskip("qiskit")
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator

    gate, name = case
    for angle in ANGLES:
        params = _params(gate, angle)
        circuit = QuantumCircuit(gate.qubits)
        # gate qubit 0 on Qiskit's highest qubit: the operator's index is then ours
        getattr(circuit, name)(*params, *reversed(range(gate.qubits)))
        assert np.allclose(Operator(circuit).data, gate.matrix(params)), (gate.name, angle)


def _qasm_program(version: int, gate: Gate, name: str, params: Sequence[float]) -> str:
    args = f"({', '.join(repr(p) for p in params)})" if params else ""
    operands = ", ".join(f"q[{q}]" for q in reversed(range(gate.qubits)))
    if version == 2:
        head = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{gate.qubits}];\n'
    else:
        head = f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{gate.qubits}] q;\n'
        head += (gate.names.qasm3_definition or "") + "\n"
    return f"{head}{name}{args} {operands};\n"


@pytest.mark.parametrize(
    ("version", "case"),
    [(2, case) for case in _names("qasm2")] + [(3, case) for case in _names("qasm3")],
    ids=lambda x: str(x) if isinstance(x, int) else _ids(x),
)
def test_a_records_openqasm_name_is_that_gate_to_qiskits_openqasm_readers(
    version: int, case: tuple[Gate, str]
) -> None:
    pytest.importorskip("qiskit")
    from qiskit import qasm2, qasm3
    from qiskit.quantum_info import Operator

    gate, name = case
    if version == 3:
        pytest.importorskip("qiskit_qasm3_import")
    for angle in (0.3, -1.1):
        params = _params(gate, angle)
        text = _qasm_program(version, gate, name, params)
        if version == 2:  # qelib1.inc as Qiskit's reader extends it (swap, sx, ...)
            circuit = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        else:
            circuit = qasm3.loads(text)
        circuit.remove_final_measurements()
        assert _same_up_to_phase(Operator(circuit).data, gate.matrix(params)), text


@pytest.mark.parametrize("case", _names("cirq"), ids=_ids)
def test_a_records_cirq_name_is_the_same_gate_in_cirq(case: tuple[Gate, str]) -> None:
    cirq = pytest.importorskip("cirq")
    from qmk.engines.adapters.cirq import cirq_gate

    gate, _ = case
    for angle in ANGLES:
        params = _params(gate, angle)
        assert _same_up_to_phase(
            cirq.unitary(cirq_gate(cirq, gate.name, params)), gate.matrix(params)
        )


def _pennylane_op(qml: Any, name: str, params: Sequence[float], wires: list[int]) -> Any:
    inner = re.fullmatch(r"Adjoint\((\w+)\)", name)
    if inner:
        return qml.adjoint(getattr(qml, inner.group(1))(*params, wires=wires))
    return getattr(qml, name)(*params, wires=wires)


@pytest.mark.parametrize("case", _names("pennylane"), ids=_ids)
def test_a_records_pennylane_name_is_the_same_gate_in_pennylane(case: tuple[Gate, str]) -> None:
    qml = pytest.importorskip("pennylane")
    gate, name = case
    for angle in ANGLES:
        params = _params(gate, angle)
        wires = list(range(gate.qubits))
        matrix = qml.matrix(_pennylane_op(qml, name, params, wires), wire_order=wires)
        assert np.allclose(matrix, gate.matrix(params)), (gate.name, angle)


@pytest.mark.parametrize("case", _names("braket"), ids=_ids)
def test_a_records_braket_name_is_the_same_gate_in_braket(case: tuple[Gate, str]) -> None:
    pytest.importorskip("braket.default_simulator")
    from braket.default_simulator import gate_operations

    gate, name = case
    for angle in ANGLES:
        params = _params(gate, angle)
        angle_arg = {"angle": params[0]} if params else {}
        op = getattr(gate_operations, name)(targets=list(range(gate.qubits)), **angle_arg)
        assert np.allclose(op.matrix, gate.matrix(params)), (gate.name, angle)


@pytest.mark.parametrize("case", _names("qutip"), ids=_ids)
def test_a_records_qutip_name_is_the_same_gate_in_qutip_qip(case: tuple[Gate, str]) -> None:
    pytest.importorskip("qutip_qip")
    from qutip_qip.circuit import QubitCircuit

    gate, name = case
    for angle in ANGLES:
        params = _params(gate, angle)
        circuit = QubitCircuit(gate.qubits)
        arg = {"arg_value": params[0]} if params else {}
        *controls, target = range(gate.qubits)
        if gate.qubits > 1 and name != "SWAP":  # QuTiP's controlled gates take controls
            circuit.add_gate(name, controls=controls, targets=[target], **arg)
        else:
            circuit.add_gate(name, targets=list(range(gate.qubits)), **arg)
        matrix = circuit.gates[0].get_compact_qobj().full()
        assert _same_up_to_phase(matrix, gate.matrix(params)), (gate.name, angle)


#: pyqir's QIS functions and the gate each is (pyqir names the functions it emits).
PYQIR = {
    "h": "h", "x": "x", "y": "y", "z": "z", "s": "s", "s_adj": "sdg", "t": "t",
    "t_adj": "tdg", "rx": "rx", "ry": "ry", "rz": "rz", "cx": "cx", "cz": "cz",
}  # fmt: skip


@pytest.mark.parametrize("function", sorted(PYQIR))
def test_the_qir_function_pyqir_emits_for_a_gate_is_that_records_qir_name(function: str) -> None:
    pyqir = pytest.importorskip("pyqir")
    gate = GATES[PYQIR[function]]
    module = pyqir.SimpleModule("gate", gate.qubits, 0)
    qis = pyqir.BasicQisBuilder(module.builder)
    angle = [pyqir.const(pyqir.Type.double(module.context), 0.3)] if gate.params else []
    getattr(qis, function)(*angle, *module.qubits)
    (emitted,) = set(re.findall(r"__quantum__qis__(\w+)\(", module.ir()))
    assert named("qir", emitted) is gate


# --------------------------------------------------------------------------- the registry


def _gate(name: str, matrix: Any, **fields: Any) -> Gate:
    size = len(np.asarray(matrix))
    return Gate(name=name, qubits=size.bit_length() - 1, build=fixed(np.asarray(matrix)), **fields)


_SQY = np.array([[1, -1], [1, 1]]) / math.sqrt(2)  # sqrt(Y): ry(pi/2)


def test_matrices_of_many_calls_are_each_records_matrix_bit_for_bit() -> None:
    rng = np.random.default_rng(62)
    calls = []
    for _ in range(400):  # every record, rotations among them at random angles, signs too
        gate = RECORDS[int(rng.integers(len(RECORDS)))]
        calls.append((gate.name, tuple(rng.uniform(-7, 7, size=len(gate.params)))))
    calls += [("rz", (0.0,)), ("rx", (-0.0,)), ("ry", (math.pi,))]
    for (name, params), got in zip(calls, matrices(calls), strict=True):
        want = GATES[name].matrix(params)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert got.view(np.float64).tobytes() == want.view(np.float64).tobytes(), (name, params)


def test_matrices_builds_a_registered_gate_by_its_own_record() -> None:
    half = _gate("half", np.diag([1, 1j]), inverse="halfdg")
    undo = _gate("halfdg", np.diag([1, -1j]), inverse="half")
    register(half, undo)
    try:
        got = matrices([("half", ()), ("rz", (0.5,)), ("halfdg", ())])
        assert np.array_equal(got[0], np.diag([1, 1j])) and np.array_equal(got[2], undo.matrix())
    finally:
        unregister("half", "halfdg")
    with pytest.raises(KeyError):
        matrices([("half", ())])


def test_register_adds_a_gate_and_its_names_and_unregister_takes_them_out() -> None:
    sqy = _gate("sqy", _SQY, clifford=True, inverse="sqydg", names=Names(stim="SQRT_Y"))
    sqydg = _gate("sqydg", _SQY.T, clifford=True, inverse="sqy", names=Names(stim="SQRT_Y_DAG"))
    register(sqy, sqydg)
    try:
        assert GATES["sqy"] is sqy and named("stim", "SQRT_Y") is sqy
    finally:
        unregister("sqy", "sqydg")
    assert "sqy" not in GATES and named("stim", "SQRT_Y") is None


@pytest.mark.parametrize(
    ("gate", "why"),
    [
        (_gate("h", np.eye(2)), "already registered"),
        (_gate("Bad", np.eye(2)), "lower-case identifier"),
        (_gate("dup", np.eye(2), names=Names(cirq="H")), "cirq name 'H' is gate h's"),
        (_gate("skew", [[1, 1], [0, 1]]), "not unitary"),
        (_gate("lost", np.eye(2), inverse="nowhere"), "not a registered gate"),
        (_gate("odd", np.diag([1, 1j]), inverse="z"), "is not undone"),
        (Gate(name="wide", qubits=2, build=fixed(np.eye(2))), r"\(2, 2\), not \(4, 4\)"),
        (Gate(name="qt", qubits=1, quarter_turn=True, build=fixed(np.eye(2))), "one parameter"),
        (Gate(name="gen", qubits=1, generator="XX", build=fixed(np.eye(2))), "Pauli word of 1"),
    ],
    ids=lambda x: x.name if isinstance(x, Gate) else "",
)
def test_register_refuses_a_record_that_contradicts_the_registry_or_itself(gate: Gate, why: str):
    before = dict(GATES)
    with pytest.raises(ValueError, match=why):
        register(gate)
    assert dict(GATES) == before


def test_qmks_own_gates_cannot_be_taken_out_nor_an_unknown_one() -> None:
    with pytest.raises(ValueError, match="QMK's own"):
        unregister("cx")
    with pytest.raises(ValueError, match="no gate named"):
        unregister("never")
    assert "cx" in GATES


# --------------------------------------------------------------------------- a made-up gate

#: A partial iSWAP then T on the second qubit: two qubits, neither Clifford nor diagonal
#: nor the same with its qubits swapped, named in no language (every engine that applies
#: it does so by its matrix).
_A = math.pi / 8
_XY = np.array(
    [
        [1, 0, 0, 0],
        [0, math.cos(_A), -1j * math.sin(_A), 0],
        [0, -1j * math.sin(_A), math.cos(_A), 0],
        [0, 0, 0, 1],
    ]
) @ np.kron(np.eye(2), np.diag([1, np.exp(0.25j * math.pi)]))


def _ramp(params: Sequence[float]) -> np.ndarray:
    """Phases ``theta * k / 8`` on the basis states ``k`` of three qubits (diagonal, and
    different under any exchange of its qubits)."""
    return np.diag(np.exp(1j * params[0] * np.arange(8) / 8))


def made_up_gates() -> tuple[Gate, ...]:
    """Gates no language has: a two-qubit one by matrix alone, a Clifford that stim and
    Cirq name (its inverse too), and a three-qubit diagonal with an angle."""
    return (
        _gate("xyh", _XY, inverse="xyhdg"),
        _gate("xyhdg", _XY.conj().T, inverse="xyh"),
        _gate(
            "sqy",
            _SQY,
            clifford=True,
            inverse="sqydg",
            names=Names(stim="SQRT_Y", cirq="Y**0.5"),
        ),
        _gate(
            "sqydg",
            _SQY.T,
            clifford=True,
            inverse="sqy",
            names=Names(stim="SQRT_Y_DAG", cirq="Y**-0.5"),
        ),
        Gate(name="ramp", qubits=3, params=("theta",), diagonal=True, build=_ramp),
    )


@pytest.fixture
def made_up() -> Iterator[tuple[Gate, ...]]:
    gates = made_up_gates()
    with registered(*gates):
        yield gates


ENGINES = [spec.name for spec in SPECS]


def _state(engine: Any, n: int) -> list[int]:
    """``n`` qubits in an entangled state no basis makes trivial (the gates every engine
    applies: h s cx)."""
    qs = [engine.allocate() for _ in range(n)]
    for q in qs:
        engine.apply("h", [q])
    for a, b in itertools.pairwise(qs):
        engine.apply("cx", [a, b])
    engine.apply("s", [qs[0]])
    engine.apply("h", [qs[-1]])
    return qs


def _reference(n: int, gate: str, params: Sequence[float]) -> np.ndarray:
    prep = [("h", (q,), ()) for q in range(n)]
    prep += [("cx", (q, q + 1), ()) for q in range(n - 1)]
    prep += [("s", (0,), ()), ("h", (n - 1,), ())]
    width = GATES[gate].qubits
    return unitary([*prep, (gate, tuple(range(width)), params)], n)[:, 0]


def _one_probability(state: np.ndarray, q: int, n: int, basis: str) -> float:
    to_z = {
        "Z": np.eye(2),
        "X": GATES["h"].matrix(),
        "Y": GATES["h"].matrix() @ GATES["sdg"].matrix(),
    }
    turned = unitary([], n) @ state
    tensor = np.moveaxis(turned.reshape((2,) * n), q, 0).reshape(2, -1)
    tensor = to_z[basis] @ tensor
    return float(np.sum(abs(tensor[1]) ** 2))


@pytest.mark.parametrize("engine_name", ENGINES)
def test_every_engine_applies_a_made_up_gate_exactly_or_refuses_it_with_a_code(
    engine_name: str, made_up: tuple[Gate, ...]
) -> None:
    if not availability(engine_name).available:
        pytest.skip(f"{engine_name}: {availability(engine_name).reason}")
    n = 3
    for gate in made_up:
        for params in [()] if not gate.params else [(0.7,), (math.pi / 2,)]:
            engine = make_engine(engine_name, seed=5)
            qs = _state(engine, n)
            if not engine.supports(gate.name, params):
                with pytest.raises(EngineError, match=rf"QE103 gate-unsupported: .*{gate.name}"):
                    engine.apply(gate.name, qs[: gate.qubits], params)
                assert not gate.is_clifford(params) or gate.names.first("stim") is None
                continue
            engine.apply(gate.name, qs[: gate.qubits], params)
            state = _reference(n, gate.name, params)
            for q, basis in itertools.product(range(n), "XYZ"):
                want = _one_probability(state, q, n, basis)
                assert engine.probability(qs[q], basis) == pytest.approx(want, abs=2e-5), (
                    engine_name,
                    gate.name,
                    q,
                    basis,
                )


def test_the_stabilizer_applies_a_made_up_clifford_it_has_a_stim_name_for(made_up) -> None:
    engine = make_engine("stabilizer", seed=1)
    q = engine.allocate()
    engine.apply("sqy", [q])  # sqrt(Y)|0> = |+>
    assert engine.probability(q, "X") == 0.0
    assert not engine.supports("xyh") and not engine.supports("ramp", [0.3])


def _front_ends() -> dict[str, Callable[[], Any]]:
    """Programs that call the made-up gate ``xyh`` in each front-end's language."""
    from qmk.frontends.qasm import from_qasm
    from qmk.frontends.qir import from_qir

    qir = (
        "%Qubit = type opaque\n"
        "define void @main() #0 {\n"
        "  call void @__quantum__qis__xyh__body("
        "%Qubit* null, %Qubit* inttoptr (i64 1 to %Qubit*))\n"
        "  ret void\n}\n"
        "declare void @__quantum__qis__xyh__body(%Qubit*, %Qubit*)\n"
        'attributes #0 = { "entry_point" "required_num_qubits"="2" "required_num_results"="0" }\n'
    )
    return {
        "openqasm2": lambda: from_qasm(
            'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nxyh q[0], q[1];\n'
        ),
        "openqasm3": lambda: from_qasm(
            'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nxyh q[0], q[1];\n'
        ),
        "qir": lambda: from_qir(qir),
    }


@pytest.mark.parametrize("language", sorted(_front_ends()))
def test_a_front_end_refuses_a_made_up_gate_with_a_code_for_no_op_applies_it(
    language: str, made_up
) -> None:
    from qmk.errors import QMKError

    with pytest.raises(QMKError, match=r"^QL\d+ [a-z-]+: .*xyh"):
        _front_ends()[language]()


def test_the_batch_compiler_takes_a_made_up_clifford_stim_names_and_leaves_the_rest(
    made_up,
) -> None:
    from qmk.engines.batch import BatchCircuit, Instruction, Kind
    from qmk.engines.stabilizer import StabilizerEngine

    def circuit(gate: str, qubits: tuple[int, ...]) -> BatchCircuit:
        return BatchCircuit(
            num_qubits=2, instructions=(Instruction(kind=Kind.GATE, qubits=qubits, gate=gate),)
        )

    assert StabilizerEngine.compile_batch(circuit("sqy", (0,))) is not None
    # not stim's: None, and the runner simulates the circuit shot by shot instead
    assert StabilizerEngine.compile_batch(circuit("xyh", (0, 1))) is None


def test_the_neutral_atom_lowering_takes_a_one_qubit_made_up_gate_by_its_matrix_only(
    made_up,
) -> None:
    from qmk.devices.neutral_atom.lowering import Lowering

    lowering = Lowering()
    assert lowering.gate("sqy", ["a"], (), "n0")
    assert np.allclose(lowering.ops[-1].matrix, _SQY)
    # no wire ops for it: the compiler refuses the node (QD301 compile-unsupported)
    assert not lowering.gate("xyh", ["a", "b"], (), "n1") and len(lowering.ops) == 1
