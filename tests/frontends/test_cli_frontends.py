"""qmk validate/info/asm/run take .qasm files by extension or --format; bad sources exit 2."""

from __future__ import annotations

import json

import pytest

from qmk.execution.executor import load_program
from qmk.frontends import read_program
from qmk.frontends.errors import FrontendError
from support.cli import qmk
from support.paths import EXAMPLES


def test_run_takes_a_qasm_file_and_prints_aer_style_keys():
    status, out, err = qmk(
        "run", str(EXAMPLES / "bell.qasm"), "--shots", "400", "--seed", "3", "--no-noise", "--json"
    )
    assert status == 0, err
    assert set(json.loads(out)["counts"]) == {"00", "11"}


def test_run_teleport_example_gives_register_groups():
    status, out, _ = qmk(
        "run", str(EXAMPLES / "teleport.qasm"), "--shots", "300", "--seed", "1", "--json"
    )
    assert status == 0
    assert all(len(k) == 4 and k[1] == " " for k in json.loads(out)["counts"])


def test_validate_info_and_asm_read_qasm():
    assert qmk("validate", str(EXAMPLES / "bell.qasm"))[0] == 0
    status, out, _ = qmk("info", str(EXAMPLES / "teleport.qasm"), "--json")
    assert status == 0 and json.loads(out)["qubits"] == 3
    status, out, _ = qmk(
        "asm", str(EXAMPLES / "bell.qasm"), "--profile", "logical:surface_code(d=5)"
    )
    graph = json.loads(out)
    assert status == 0
    assert graph["program"]["nodes"][0]["args"]["profile"] == "logical:surface_code(d=5)"
    assert graph["metadata"]["output"]["groups"] == [["m1", "m0"]]


def test_asm_keeps_assembling_qvm_assembly():
    status, out, _ = qmk("asm", str(EXAMPLES / "bell.qvm.asm"))
    assert status == 0 and json.loads(out)["program"]["nodes"]


def test_format_overrides_the_extension(tmp_path):
    source = tmp_path / "prog.txt"
    source.write_text((EXAMPLES / "bell.qasm").read_text())
    assert qmk("validate", str(source))[0] == 2
    assert qmk("validate", "--format", "qasm2", str(source))[0] == 0
    status, _, err = qmk("validate", "--format", "qasm3", str(source))
    assert status == 2 and "QL107" in err


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("OPENQASM 3.0;\nqubit q;\nh q\nx q;\n", "QL101", 4),
        ("OPENQASM 3.0;\nqubit q;\nnope q;\n", "QL102", 3),
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncx q[0];\n', "QL103", 4),
        ("OPENQASM 3.0;\nqubit q;\nlet r = q;\n", "QL104", 3),
        ("OPENQASM 3.0;\nqubit q;\nwhile (true) { reset q; }\n", "QL110", 3),
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqubit q;\n', "QL111", 3),
    ],
)
def test_bad_sources_exit_2_with_one_coded_line_and_no_traceback(tmp_path, text, code, line):
    path = tmp_path / "bad.qasm"
    path.write_text(text)
    for command in ("run", "validate", "info", "asm"):
        status, _, err = qmk(command, str(path))
        assert status == 2, (command, err)
        assert err.startswith(code) and f"bad.qasm:{line}:" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_extension_is_unknown_format(tmp_path):
    path = tmp_path / "prog.quil"
    path.write_text("H 0\n")
    status, _, err = qmk("run", str(path))
    assert status == 2 and err.startswith("QL108 unknown-format")
    with pytest.raises(FrontendError, match="--format"):
        read_program(path)


def test_load_program_reads_qasm_files():
    program = load_program(EXAMPLES / "bell.qasm")
    assert program.graph.metadata["language"] == "openqasm2"
