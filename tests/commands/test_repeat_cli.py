"""``qmk validate | info | estimate | fmt | disasm`` on programs with REPEAT rows: totals
read folded, never unrolled."""

from __future__ import annotations

import json
from pathlib import Path

from qmk.qvm import graph as graph_io
from qmk.qvm import graph_file
from support.cli import qmk

LOOP = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
    "for int i in [0:9999999] { t q[0]; cx q[0], q[1]; }\nc = measure q;\n"
)


def test_validate_info_and_estimate_read_a_ten_million_turn_loop_folded(tmp_path: Path):
    path = tmp_path / "loop.qasm"
    path.write_text(LOOP, encoding="utf-8")
    status, out, err = qmk("validate", str(path))
    assert status == 0, err
    assert "ok (7 rows, 20000004 nodes unrolled, 1 epoch, peak 2 live qubits)" in out
    status, out, _ = qmk("info", "--json", str(path))
    summary = json.loads(out)
    assert status == 0 and summary["rows"] == 7 and summary["repeats"] == 1
    assert (
        summary["counts"]["t_gates"] == 10**7 and summary["counts"]["by_op"]["APPLY_CNOT"] == 10**7
    )
    status, out, _ = qmk("estimate", "--json", str(path))
    assert status == 0
    assert json.loads(out)["logicalCounts"]["tCount"] == 10**7


def test_estimate_counts_a_stim_circuit_folded_with_its_noise_no_logical_operation(
    tmp_path: Path,
):
    # 10^9 measurements in 30 bytes: counted by multiplication, not unrolled (QV505)
    bomb = tmp_path / "bomb.stim"
    bomb.write_text("REPEAT 1000000000 {\n    M 0\n}\n", encoding="utf-8")
    status, out, err = qmk("estimate", "--json", str(bomb))
    assert status == 0, err
    assert json.loads(out)["logicalCounts"]["measurementCount"] == 10**9
    # the X_ERROR is a physical error: no scratch qubit, no rotation in the count
    noisy = tmp_path / "noisy.stim"
    noisy.write_text(
        "H 0\nREPEAT 10 {\n X_ERROR(0.1) 0\n CX 0 1\n MR 1\n}\nM 0\n",
        encoding="utf-8",
    )
    status, out, err = qmk("estimate", "--json", str(noisy))
    assert status == 0, err
    counts = json.loads(out)["logicalCounts"]
    assert (counts["numQubits"], counts["rotationCount"], counts["tCount"]) == (2, 0, 0)
    assert counts["measurementCount"] == 11


def test_fmt_and_disasm_keep_repeat_rows(tmp_path: Path):
    path = tmp_path / "loop.qasm"
    path.write_text(LOOP, encoding="utf-8")
    status, text, _ = qmk("asm", str(path))
    assert status == 0 and '"op": "REPEAT", "args": {"count": 10000000}' in text
    json_path = tmp_path / "loop.json"
    json_path.write_text(text, encoding="utf-8")
    status, formatted, _ = qmk("fmt", str(json_path))
    assert status == 0 and formatted == text
    status, assembly, _ = qmk("disasm", str(json_path))
    assert status == 0 and "loop1: REPEAT 10000000 {" in assembly
    asm_path = tmp_path / "loop.qvm.asm"
    asm_path.write_text(assembly, encoding="utf-8")
    status, again, _ = qmk("asm", str(asm_path))
    assert status == 0
    assert graph_file.dumps(graph_io.loads(again)) == graph_file.dumps(graph_io.loads(text))


def test_validate_names_an_unbalanced_body_with_its_code_and_row(tmp_path: Path):
    path = tmp_path / "leak.qvm.asm"
    path.write_text(
        "a: ALLOC_LQ vq:q\nr: REPEAT 3 {\n  b: ALLOC_LQ vq:s\n  t: APPLY_T vq:s\n}\n"
        "f: FREE_LQ vq:q, vq:s\n.caps CAP_ALLOC\n",
        encoding="utf-8",
    )
    status, _, err = qmk("validate", str(path))
    assert status == 1
    assert "QV701 repeat-unbalanced at REPEAT 'r'" in err and "'s'" in err
