"""``qmk validate`` of a flat OpenQASM file reads it in bulk as columns and reports what
the statement reader and the verifier report for it: the same figures, the same
findings and codes, the same refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.qvm.verify import verify
from support.cli import qmk

FLAT = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
    "h q[0];\ncx q[0],q[1];\nrz(pi/8) q[2];\nbarrier q;\nu3(0.1,0.2,0.3) q[1];\n"
    "measure q -> c;\n"
)


def test_a_flat_file_is_reported_with_the_statement_readers_figures(tmp_path: Path):
    path = tmp_path / "flat.qasm"
    path.write_text(FLAT, encoding="utf-8")
    program = verify(from_qasm(FLAT, name=str(path)))
    status, out, err = qmk("validate", str(path))
    assert status == 0, err
    assert out == (
        f"{path}: ok ({len(program.graph.nodes)} nodes, {len(program.epochs)} epochs, "
        f"peak {program.peak_live_qubits} live qubits)\n"
    )
    status, out, _ = qmk("validate", "--json", str(path))
    assert status == 0
    assert json.loads(out) == {"files": [{"file": str(path), "ok": True, "error": None,
                                          "findings": []}]}  # fmt: skip


def test_a_flat_file_over_the_node_limit_gets_the_verifiers_finding(tmp_path: Path):
    path = tmp_path / "flat.qasm"
    path.write_text(FLAT, encoding="utf-8")
    status, _, err = qmk("validate", "--max-nodes", "5", str(path))
    assert status == 1
    assert "QV501" not in err and "graph-too-large" in err and "over the limit of 5" in err


def test_a_faulty_flat_file_is_refused_by_the_statement_reader_with_its_code(tmp_path: Path):
    path = tmp_path / "bad.qasm"
    text = FLAT.replace("cx q[0],q[1]", "cx q[0],q[7]")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FrontendError) as refused:
        from_qasm(text, name=str(path))
    status, out, err = qmk("validate", str(path))
    assert (status, out, err) == (2, "", f"{refused.value}\n")
    assert err.startswith(refused.value.code)


@pytest.mark.parametrize("form", [(), ("--json",)])
def test_qmk_info_of_a_flat_file_read_in_bulk_is_the_statement_readers(tmp_path: Path, form):
    path = tmp_path / "flat.qasm"
    text = FLAT.replace("rz(pi/8) q[2];", "rz(pi/8) q[2];\nmeasure q[0] -> c[0];\nh q[0];")
    path.write_text(text, encoding="utf-8")
    bulk = qmk("info", *form, str(path))
    path.write_text(text + "/* read by statements */\n", encoding="utf-8")
    statements = qmk("info", *form, str(path))
    assert bulk == statements and bulk[0] == 0
    assert "REV" in bulk[1] or "rev_segments" in bulk[1]
