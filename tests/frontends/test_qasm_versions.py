"""The OPENQASM header names a version QMK reads, or the program is refused (QL107).

Found by the corpus run (bench/bench_corpus.py): Qiskit's test file with the header
``OPENQASM 2.6;`` was read as OpenQASM 2.0 without a word. These fixtures are written
here, not copied.
"""

from __future__ import annotations

import pytest

from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm

TWO = 'include "qelib1.inc";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q[0] -> c[0];\n'
THREE = 'include "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n'


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("header", "body"),
    [("2.0", TWO), ("2", TWO), ("3", THREE), ("3.0", THREE), ("3.1", THREE)],
)
def test_headers_of_versions_that_exist_are_read(header: str, body: str, fast: bool) -> None:
    graph = from_qasm(f"OPENQASM {header};\n{body}", name="v.qasm", fast=fast)
    assert [n.op for n in graph.nodes if n.op.startswith(("APPLY", "MEASURE"))] == [
        "APPLY_X",
        "MEASURE_Z",
    ]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("header", "body"), [("2.6", TWO), ("4", THREE), ("1.0", TWO)])
def test_a_header_of_a_version_that_does_not_exist_is_refused_at_its_line(
    header: str, body: str, fast: bool
) -> None:
    source = f"// a comment\n\nOPENQASM {header};\n{body}"
    with pytest.raises(FrontendError) as info:
        from_qasm(source, name="v.qasm", fast=fast)
    assert info.value.code == "QL107"
    assert str(info.value) == (
        f"QL107 bad-value: v.qasm:3: OPENQASM {header} is not a version QMK reads "
        "(2.0, or 3 and its minor versions)"
    )


# ----------------------------------------------------------------------------- version rules
# Qiskit's importers refuse each of these; so does QMK, naming the rule (QL111).

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("source", "line", "rule"),
    [
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqubit[2] q;\n', 3, "declares qubits with qreg"),
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nbit c;\n', 4, "bits with creg"),
        (V2 + "c[0] = measure q[0];\n", 5, "writes measure q -> c"),
        (V2 + "for int i in [0:1] { h q[i]; }\n", 5, "for loop is OpenQASM 3"),
        (V2 + "if (c == 1) { x q[0]; } else { h q[0]; }\n", 5, "else is OpenQASM 3"),
        (V2 + "ctrl @ x q[0], q[1];\n", 5, "gate modifiers"),
        (V2 + "int n = 1;\n", 5, "'int ...' (OpenQASM 2.0 declares bits with creg)"),
        ('OPENQASM 2.0;\ninclude "stdgates.inc";\nqreg q[1];\n', 2, '"stdgates.inc" is OpenQASM 3'),
        ('OPENQASM 3.0;\ninclude "qelib1.inc";\nqubit q;\n', 2, '"qelib1.inc" is OpenQASM 2'),
        ("OPENQASM 3.0;\nqubit[2] q;\nCX q[0], q[1];\n", 3, "CX is OpenQASM 2's built-in"),
        (
            "OPENQASM 3.0;\ngate g a, b { CX a, b; }\nqubit[2] q;\ng q[0], q[1];\n",
            4,
            "builds in only U and gphase",
        ),
    ],
)
def test_a_construct_of_the_other_openqasm_version_is_refused_naming_the_rule(
    source: str, line: int, rule: str, fast: bool
) -> None:
    with pytest.raises(FrontendError) as info:
        from_qasm(source, name="v.qasm", fast=fast)
    assert info.value.code == "QL111", str(info.value)
    assert f"v.qasm:{line}:" in str(info.value) and rule in str(info.value), str(info.value)


def test_openqasm_2_as_written_and_cx_under_stdgates_are_still_read() -> None:
    two = from_qasm(V2 + "h q[0];\nCX q[0], q[1];\nif (c == 0) x q[1];\nmeasure q -> c;\n")
    three = from_qasm('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nCX q[0], q[1];\n')
    assert "APPLY_CNOT" in {n.op for n in two.nodes} & {n.op for n in three.nodes}
