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
