"""OpenQASM 2 and 3 programs lowered by from_qasm give Aer's distributions, with Aer's keys.

The sources are written by Qiskit's own exporters (``qiskit.qasm2.dumps``,
``qiskit.qasm3.dumps``) from the shared test circuits, and by hand; Aer runs the
circuit (OpenQASM 2: as re-read by Qiskit's independent ``qasm2`` parser).
"""

from __future__ import annotations

import pytest

from qmk.execution.runs import run
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.qvm.verify import check
from support.frontends import aer_counts, assert_same_distribution

qiskit = pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

SHOTS = 2000
SEED = 7


def _has_control_flow(circuit) -> bool:
    return any(i.operation.name in ("if_else", "for_loop") for i in circuit.data)


def test_qasm2_exports_match_aer_on_qiskits_own_parse(qiskit_program):
    import qiskit.qasm2

    label, make = qiskit_program
    circuit = make()
    if _has_control_flow(circuit):
        pytest.skip("OpenQASM 2 has no if_test blocks")
    source = qiskit.qasm2.dumps(circuit)
    graph = from_qasm(source, name=f"{label}.qasm")
    assert check(graph).ok
    qmk = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    legacy = qiskit.qasm2.LEGACY_CUSTOM_INSTRUCTIONS
    reread = qiskit.qasm2.loads(source, custom_instructions=legacy)
    aer = aer_counts(reread, SHOTS, SEED)
    assert_same_distribution(qmk, aer, label)


def test_qasm3_exports_match_aer(qiskit_program):
    import qiskit.qasm3

    label, make = qiskit_program
    circuit = make()
    source = qiskit.qasm3.dumps(circuit)
    graph = from_qasm(source, name=f"{label}.qasm")
    assert check(graph).ok
    qmk = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    aer = aer_counts(circuit, SHOTS, SEED)
    assert_same_distribution(qmk, aer, label)


HANDWRITTEN = {
    # modifiers, user gates with parameters, for loops, const, else, register conditions
    "modifiers": (
        """OPENQASM 3.0;
include "stdgates.inc";
const float a = pi / 3;
gate g(t) x, y { ry(t) x; cx x, y; gphase(t / 2); }
qubit[4] q;
bit[4] c;
h q[0]; h q[1];
ctrl @ g(a) q[0], q[2], q[3];
negctrl @ inv @ g(2 * a) q[1], q[2], q[3];
pow(3) @ t q[0];
pow(0.5) @ x q[1];
ctrl(2) @ rx(0.8) q[0], q[1], q[2];
c = measure q;
""",
        lambda qc: _modifiers(qc),
    ),
}


def _modifiers_circuit():
    import math

    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate
    from qiskit.circuit.library import RXGate, SXGate, TGate

    def g(t):
        body = QuantumCircuit(2, global_phase=t / 2)
        body.ry(t, 0)
        body.cx(0, 1)
        gate = Gate("g", 2, [])
        gate.definition = body
        return gate

    a = math.pi / 3
    qc = QuantumCircuit(4, 4)
    qc.h(0)
    qc.h(1)
    qc.append(g(a).control(1, annotated=False), [0, 2, 3])
    qc.append(g(2 * a).inverse().control(1, ctrl_state=0, annotated=False), [1, 2, 3])
    qc.append(TGate().power(3), [0])
    qc.append(SXGate(), [1])
    qc.append(RXGate(0.8).control(2, annotated=False), [0, 1, 2])
    qc.measure(range(4), range(4))
    return qc


def _modifiers(_):
    return _modifiers_circuit()


def test_modifiers_and_user_gates_match_the_same_circuit_built_in_qiskit():
    source, make = HANDWRITTEN["modifiers"]
    qmk = run(from_qasm(source), shots=SHOTS, seed=SEED, noise=False).counts
    aer = aer_counts(make(None), SHOTS, SEED)
    assert_same_distribution(qmk, aer, "modifiers")


def test_else_for_and_input_lower_to_the_expected_distribution():
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    source = """OPENQASM 3.0;
include "stdgates.inc";
input float theta;
qubit[3] q;
bit[2] c;
bit r;
for int i in [0:1] { h q[i]; }
c[0] = measure q[0];
c[1] = measure q[1];
if (c == 2) { ry(theta) q[2]; } else { if (!c[0]) { x q[2]; } }
for uint k in {1, 3} { rz(k * 0.1) q[2]; }
r = measure q[2];
"""
    graph = from_qasm(source, params={"theta": 0.9})
    qmk = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    qr, c, r = QuantumRegister(3), ClassicalRegister(2, "c"), ClassicalRegister(1, "r")
    qc = QuantumCircuit(qr, c, r)
    qc.h(0)
    qc.h(1)
    qc.measure(0, c[0])
    qc.measure(1, c[1])
    with qc.if_test((c, 2)) as else_:
        qc.ry(0.9, 2)
    with else_, qc.if_test((c[0], 0)):
        qc.x(2)
    qc.measure(2, r[0])
    assert_same_distribution(qmk, aer_counts(qc, SHOTS, SEED), "else")


def test_keys_are_registers_in_reverse_declaration_order_bit_zero_rightmost():
    source = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg a[2];
creg b[3];
x q[0]; x q[2];
measure q[0] -> a[0];
measure q[2] -> b[1];
"""
    assert run(from_qasm(source), shots=10, seed=1, noise=False).counts == {"010 01": 10}


def test_the_example_files_run():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    bell = run(from_qasm((root / "bell.qasm").read_text()), shots=1000, seed=2, noise=False)
    assert set(bell.counts) == {"00", "11"}
    tele = run(from_qasm((root / "teleport.qasm").read_text()), shots=4000, seed=2, noise=False)
    ones = sum(v for k, v in tele.counts.items() if k.startswith("1"))
    assert abs(ones / 4000 - 0.2721) < 0.035  # sin(0.55)^2, 5 sigma


ERRORS = [
    ("syntax", "OPENQASM 3.0;\nqubit q;\nh q\nx q;\n", 4, "QL101"),
    ("undefined gate", "OPENQASM 3.0;\nqubit q;\nfoo q;\n", 3, "QL102"),
    ("no include", "OPENQASM 2.0;\nqreg q[1];\nh q[0];\n", 3, "QL102"),
    ("wrong qubits", 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncx q[0];\n', 4, "QL103"),
    ("wrong params", 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit q;\nrx q;\n', 4, "QL103"),
    ("undefined register", "OPENQASM 3.0;\nqubit q;\nU(0,0,0) r;\n", 3, "QL102"),
    ("index", "OPENQASM 3.0;\nqubit[2] q;\nU(0,0,0) q[2];\n", 3, "QL107"),
    ("endless while", "OPENQASM 3.0;\nqubit q;\nwhile (true) { U(0,0,0) q; }\n", 3, "QL110"),
    ("recursive def", "OPENQASM 3.0;\ndef f() { f(); }\nf();\n", 2, "QL104"),
    ("input", "OPENQASM 3.0;\ninput float t;\n", 2, "QL102"),
    ("break outside a loop", "OPENQASM 3.0;\nqubit q;\nbreak;\n", 3, "QL101"),
    (
        "fractional pow",
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\npow(0.5) @ cx q[0], q[1];\n',
        4,
        "QL104",
    ),
    ("assignment to a const", "OPENQASM 3.0;\nconst int x = 1;\nx = 2;\n", 3, "QL107"),
    (
        "foreign qubit in gate",
        "OPENQASM 3.0;\ngate g a { U(0,0,0) b; }\nqubit q;\ng q;\n",
        4,
        "QL102",
    ),
    (
        "indexed gate argument",
        "OPENQASM 3.0;\ngate g a { U(0,0,0) a[0]; }\nqubit q;\ng q;\n",
        4,
        "QL104",
    ),
]


@pytest.mark.parametrize(("label", "source", "line", "code"), ERRORS, ids=[e[0] for e in ERRORS])
def test_malformed_sources_give_a_coded_error_with_the_line(label, source, line, code):
    with pytest.raises(FrontendError) as info:
        from_qasm(source, name="bad.qasm")
    assert info.value.code == code, str(info.value)
    assert f"bad.qasm:{line}:" in str(info.value)


def test_every_node_records_its_source_line():
    graph = from_qasm(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\n\nh q[0];\n', name="p.qasm"
    )
    assert graph.nodes[1].metadata["source"] == "p.qasm:5"
