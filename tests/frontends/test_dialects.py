"""OpenQASM as vendors write it: physical qubits, box, Braket's gates, Q#'s rotations,
pytket's libraries, each against the vendor's own simulator or Qiskit's, and the coded
warning each dialect gives (never silent)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qmk.execution.runs import run
from qmk.frontends import dialects
from qmk.frontends.errors import CODES, FrontendError
from qmk.frontends.qasm import STDGATES_GATES, from_qasm

SEED = 20261123


def _state(source: str, **params: float) -> np.ndarray:
    """QMK's final state, qubit 0 least significant (Qiskit's order)."""
    graph = from_qasm(source, name="t.qasm", params=params or None)
    result = run(graph, shots=1, seed=SEED, noise=False, final_state="amplitudes")
    assert result.final_state is not None
    return np.asarray(result.final_state.amplitudes)


def _same_state(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the global phase (no measurement sees it)."""
    k = int(np.argmax(np.abs(b)))
    np.testing.assert_allclose(a * (b[k] / a[k]), b, atol=1e-9)


def _warnings(source: str) -> list[str]:
    graph = from_qasm(source, name="t.qasm")
    return [w["code"] for w in (graph.metadata or {}).get("warnings", [])]


def _braket_state(source: str, n: int) -> np.ndarray:
    """Braket's default simulator's state vector, reordered to qubit 0 least significant."""
    braket = pytest.importorskip("braket.default_simulator")
    from braket.ir.openqasm import Program

    text = source + "#pragma braket result state_vector\n"
    result = braket.StateVectorSimulator().run_openqasm(Program(source=text), shots=0)
    big_endian = np.asarray(result.resultTypes[0].value)
    return big_endian.reshape([2] * n).transpose(range(n - 1, -1, -1)).reshape(-1)


def _qiskit_state(source: str) -> np.ndarray:
    qasm3 = pytest.importorskip("qiskit.qasm3")
    from qiskit.quantum_info import Statevector

    return np.asarray(Statevector(qasm3.loads(source)).data)


_PREP = "ry(0.3) $0; rx(0.7) $1; ry(1.1) $2; cnot $0, $2; rz(0.4) $1; h $2;\n"

_BRAKET_CALLS = {
    "i": "i $1;",
    "si": "si $0;",
    "ti": "ti $2;",
    "v": "v $1;",
    "vi": "vi $0;",
    "phaseshift": "phaseshift(0.8) $1;",
    "cnot": "cnot $2, $0;",
    "ccnot": "ccnot $0, $1, $2;",
    "cphaseshift": "cphaseshift(0.9) $0, $1;",
    "cphaseshift00": "cphaseshift00(0.9) $0, $1;",
    "cphaseshift01": "cphaseshift01(0.9) $0, $1;",
    "cphaseshift10": "cphaseshift10(0.9) $0, $1;",
    "xx": "xx(0.6) $0, $2;",
    "yy": "yy(0.6) $1, $2;",
    "zz": "zz(0.6) $0, $1;",
    "xy": "xy(0.5) $0, $1;",
    "iswap": "iswap $1, $2;",
    "pswap": "pswap(0.7) $0, $2;",
    "ecr": "ecr $0, $1;",
    "gpi": "gpi(0.4) $1;",
    "gpi2": "gpi2(0.4) $2;",
}


def test_every_braket_gate_qmk_defines_is_called_here():
    assert set(_BRAKET_CALLS) == set(dialects.BRAKET_GATES)


@pytest.mark.parametrize("gate", sorted(_BRAKET_CALLS))
def test_a_braket_gate_without_stdgates_has_braket_simulators_state(gate):
    source = "OPENQASM 3.0;\n" + _PREP + _BRAKET_CALLS[gate] + "\n"
    _same_state(_state(source), _braket_state(source, 3))


def test_braket_dialect_is_accepted_with_a_warning_naming_braket():
    source = "OPENQASM 3.0;\nbit[2] b;\nh $0;\ncnot $0, $1;\nb = measure $0;\n"
    graph = from_qasm(source.replace("b = measure $0", "b[0] = measure $0"), name="t.qasm")
    (notice,) = (graph.metadata or {})["warnings"]
    assert notice["code"] == "QL112" and notice["name"] == "dialect"
    assert "Amazon Braket" in notice["message"] and "cnot" in notice["message"]
    assert CODES["QL112"].severity is not None and CODES["QL112"].exit_status == 0


def test_braket_input_parameters_and_physical_qubits_sample_as_braket_does():
    source = (
        "OPENQASM 3.0;\ninput float theta;\nbit[2] b;\nrx(theta) $0;\ncnot $0, $3;\n"
        "b[0] = measure $0;\nb[1] = measure $3;\n"
    )
    theta = 1.2
    counts = run(
        from_qasm(source, name="t.qasm", params={"theta": theta}),
        shots=4000,
        seed=SEED,
        noise=False,
    ).counts
    p11 = math.sin(theta / 2) ** 2
    assert set(counts) <= {"00", "11"}
    assert abs(counts.get("11", 0) / 4000 - p11) < 4 * math.sqrt(p11 * (1 - p11) / 4000)


def test_a_missing_input_is_an_error_naming_it():
    source = "OPENQASM 3.0;\ninput float theta;\nrx(theta) $0;\n"
    with pytest.raises(FrontendError, match=r"QL102 .*input theta has no value"):
        from_qasm(source, name="t.qasm")


def test_physical_qubits_are_qubits_0_to_max_as_qiskit_reads_them():
    source = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
        "ry(0.3) $0; rx(0.9) $3; cx $0, $2; ry(0.5) $1; cz $3, $1;\n"
    )
    assert _warnings(source) == []  # standard OpenQASM 3: no warning
    graph = from_qasm(source, name="t.qasm")
    assert sum(n.op == "ALLOC_LQ" for n in graph.nodes) == 1  # one register of $0..$3
    _same_state(_state(source), _qiskit_state(source))


def test_physical_qubits_in_a_comment_are_not_qubits():
    source = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n// $7 is unused\nh $1;\n'
    assert dialects.prepare(source, "t.qasm", STDGATES_GATES).physical == 2


def test_a_box_runs_its_body_and_a_duration_is_a_coded_warning():
    source = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\n'
        "box[100ns] { h q[0]; cx q[0], q[1]; }\nbox { rx(0.4) q[2]; cx q[1], q[2]; }\n"
        "delay[50ns] q[0];\nbarrier q;\nry(0.2) q[0];\n"
    )
    graph = from_qasm(source, name="t.qasm")
    (notice,) = (graph.metadata or {})["warnings"]
    assert (notice["code"], notice["name"]) == ("QL113", "timing-ignored")
    assert "line 4" in notice["message"] and "100ns" in notice["message"]
    unboxed = source.replace("box[100ns] ", "").replace("box ", "")
    assert _warnings(unboxed) == []
    qiskit = pytest.importorskip("qiskit")
    from qiskit.quantum_info import Statevector

    qc = qiskit.QuantumCircuit(3)  # the bodies, as Qiskit's gates
    qc.h(0)
    qc.cx(0, 1)
    qc.rx(0.4, 2)
    qc.cx(1, 2)
    qc.ry(0.2, 0)
    expected = np.asarray(Statevector(qc).data)
    _same_state(_state(source), expected)


def test_a_box_keeps_the_lines_of_its_statements():
    source = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit q;\nbox[1us] {\n  nope q;\n}\n'
    with pytest.raises(FrontendError, match=r"QL102 .*t\.qasm:5:"):
        from_qasm(source, name="t.qasm")


def test_qsharp_two_qubit_rotations_are_qsharps_and_named_in_a_warning():
    body = "ry(0.3) q[0]; rx(0.7) q[1]; rxx(0.5) q[0], q[1]; ryy(0.6) q[0], q[1]; "
    body += "rzz(0.7) q[0], q[1];\n"
    source = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\n' + body
    graph = from_qasm(source, name="t.qasm")
    (notice,) = (graph.metadata or {})["warnings"]
    assert notice["code"] == "QL112" and "Q#" in notice["message"]
    # Qiskit's RXX/RYY/RZZ are exp(-i theta/2 P⊗P), as Q#'s Rxx/Ryy/Rzz
    qiskit = pytest.importorskip("qiskit")
    from qiskit.quantum_info import Statevector

    qc = qiskit.QuantumCircuit(2)
    qc.ry(0.3, 0)
    qc.rx(0.7, 1)
    qc.rxx(0.5, 0, 1)
    qc.ryy(0.6, 0, 1)
    qc.rzz(0.7, 0, 1)
    _same_state(_state(source), np.asarray(Statevector(qc).data))


def test_pytkets_hqslib1_primitives_are_pytkets_optypes():
    pytest.importorskip("qiskit")
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import RXXGate, RYYGate, RZZGate
    from qiskit.quantum_info import Statevector

    source = (
        'OPENQASM 2.0;\ninclude "hqslib1.inc";\nqreg q[2];\n'
        "ry(0.3) q[0]; rx(0.7) q[1];\n"
        "U1q(0.9, 0.4) q[0]; Rz(0.5) q[1]; ZZ q[0], q[1]; RZZ(0.3*pi) q[0], q[1];\n"
        "Rxxyyzz(0.2, 0.4, 0.6) q[0], q[1]; cs q[0], q[1]; csdg q[1], q[0];\n"
    )
    graph = from_qasm(source, name="t.qasm")
    (notice,) = (graph.metadata or {})["warnings"]
    assert notice["code"] == "QL112" and "hqslib1.inc" in notice["message"]
    qc = QuantumCircuit(2)
    qc.ry(0.3, 0)
    qc.rx(0.7, 1)
    qc.rz(-0.4, 0)  # PhasedX(theta, phi) = Rz(phi) Rx(theta) Rz(-phi)
    qc.rx(0.9, 0)
    qc.rz(0.4, 0)
    qc.rz(0.5, 1)
    qc.append(RZZGate(math.pi / 2), [0, 1])  # ZZMax = exp(-i pi/4 Z⊗Z)
    qc.append(RZZGate(0.3 * math.pi), [0, 1])  # ZZPhase(theta/pi)
    qc.append(RXXGate(0.2), [0, 1])  # TK2: exp(-i/2 (a XX + b YY + c ZZ))
    qc.append(RYYGate(0.4), [0, 1])
    qc.append(RZZGate(0.6), [0, 1])
    qc.cs(0, 1)
    qc.csdg(1, 0)
    _same_state(_state(source), np.asarray(Statevector(qc).data))


def test_pytkets_oqclib1_defines_only_rz_sx_and_ecr_as_pytket_does():
    pytest.importorskip("qiskit")
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    source = (
        'OPENQASM 2.0;\ninclude "oqclib1.inc";\nqreg q[2];\n'
        "rz(0.3) q[0]; sx q[0]; sx q[1]; rz(0.8) q[1]; ecr q[0], q[1]; sx q[1]; ecr q[1], q[0];\n"
    )
    qc = QuantumCircuit(2)
    qc.rz(0.3, 0)
    qc.sx(0)
    qc.sx(1)
    qc.rz(0.8, 1)
    qc.ecr(0, 1)  # pytket's ECR matrix is Qiskit's
    qc.sx(1)
    qc.ecr(1, 0)
    _same_state(_state(source), np.asarray(Statevector(qc).data))
    with pytest.raises(FrontendError, match="QL102"):  # oqclib1.inc has no h
        from_qasm(source.replace("sx q[1];", "h q[1];", 1), name="t.qasm")


def test_a_program_that_defines_a_standard_gate_is_not_read_as_braket():
    source = "OPENQASM 3.0;\ngate h a { U(pi/2, 0, pi) a; }\nqubit q;\nh q;\ncnot q, q;\n"
    with pytest.raises(FrontendError, match=r"QL102 .*cnot"):
        from_qasm(source, name="t.qasm")


def test_qmk_run_takes_inputs_and_prints_the_dialect_warning(tmp_path):
    from support.cli import qmk

    path = tmp_path / "braket.qasm"
    path.write_text(
        "OPENQASM 3.0;\ninput float theta;\nbit[1] b;\nrx(theta) $0;\nb[0] = measure $0;\n"
    )
    status, out, err = qmk("run", str(path), "--input", "theta=pi", "--shots", "50", "--no-noise")
    assert status == 0, err
    assert "warning: QL112 dialect: Amazon Braket" in err and " 1 " in out
    status, out, err = qmk("run", str(path), "--input", "theta=pi", "--no-noise", "--json")
    data = json.loads(out)
    assert status == 0 and data["counts"] == {"1": 1024}
    assert [w["code"] for w in data["warnings"]] == ["QL112"] and "warning" not in err
    status, out, err = qmk("run", str(path), "--no-noise")
    assert status == 2 and err.startswith("QL102 ") and "input theta has no value" in err


def test_a_calibrations_physical_qubits_are_left_to_its_refusal():
    source = 'OPENQASM 3.0;\ndefcalgrammar "openpulse";\ndefcal x $0 {\n}\nx $0;\n'
    with pytest.raises(FrontendError, match=r"QL104 .*defcalgrammar"):
        from_qasm(source, name="t.qasm")


def test_qmk_validate_names_the_dialect_in_text_and_json(tmp_path):
    from support.cli import qmk

    path = tmp_path / "tket.qasm"
    path.write_text('OPENQASM 2.0;\ninclude "hqslib1.inc";\nqreg q[2];\nZZ q[0], q[1];\n')
    status, out, err = qmk("validate", str(path))
    assert status == 0, err
    assert f"{path}: warning: QL112 dialect: pytket's gate library hqslib1.inc" in out
    status, out, _ = qmk("validate", str(path), "--json")
    (result,) = json.loads(out)["files"]
    assert result["ok"] and [w["code"] for w in result["warnings"]] == ["QL112"]


def test_qsharps_const_bits_are_read_as_constants_and_cannot_be_assigned():
    from qmk import run

    head = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
    flipped = head + "const bit flip = 1;\nqubit q;\nbit c;\nif (flip) x q;\nc = measure q;\n"
    counts = run(flipped, shots=50, seed=11, noise=False).counts
    assert counts == {"11": 50}  # flip's bit and c's, both 1 in every shot
    with pytest.raises(FrontendError) as caught:
        run(head + "const bit flip = 1;\nflip = 0;\n", shots=1, seed=1, noise=False)
    assert caught.value.code == "QL107" and "flip is a constant" in str(caught.value)
