"""What the fuzzers found, kept as tests: each input once crashed or hung a reader, or
made it print more than one coded line.

- an OpenQASM source without one token (empty, or only comments) raised AttributeError
  inside openqasm3; it is the empty program, as ``OPENQASM 3;`` is;
- ANTLR printed its own error line on stderr beside QMK's coded one;
- a NUL in QIR text made pyqir panic (a BaseException, past every ``except Exception``);
- an ``inttoptr`` of any integer but an ``i64`` (``i63``, ``i91``) made pyqir's
  ``ptr_id`` crash the process (SIGSEGV);
- a qubit id of 3,000,000 in QIR took seconds and memory to allocate, 2**63 forever;
- a QIR entry point that is only declared (its attribute on a ``declare``) raised
  IndexError.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qir import from_qir
from support.cli import qmk
from support.paths import EXAMPLES, ROOT

BELL_QIR = (EXAMPLES / "bell.ll").read_text()


@pytest.mark.parametrize("source", ["", "  \n", "// only a comment\n", "/* and\nthis */"])
def test_an_openqasm_source_without_a_statement_is_the_empty_program(source):
    assert len(from_qasm(source).nodes) == len(from_qasm("OPENQASM 3;").nodes) == 0


def test_an_openqasm_token_error_is_one_coded_line_on_stderr(tmp_path, capfd):
    path = tmp_path / "bad.qasm"
    path.write_text('OPENQASM 3;\nqubit q;\nh q; "oops\n')
    status, out, err = qmk("validate", str(path))
    assert status == 2 and out == ""
    assert err.startswith("QL101 syntax: ") and err.count("\n") == 1
    assert capfd.readouterr().err == ""  # nothing printed past the command's own stream


def test_a_nul_in_qir_text_is_a_syntax_error_naming_its_line():
    with pytest.raises(FrontendError, match=r"fuzz.ll:7: a NUL character") as err:
        from_qir(
            BELL_QIR.replace("%Result = type opaque", "%Result = \0type opaque"), name="fuzz.ll"
        )
    assert err.value.code == "QL101"


@pytest.mark.parametrize("width", ["i1", "i63", "i91"])
def test_a_qir_pointer_constant_of_another_width_than_i64_is_refused_without_a_crash(width):
    source = BELL_QIR.replace(
        "%Result* inttoptr (i64 1 to %Result*), i8*",
        f"%Result* inttoptr ({width} 1 to %Result*), i8*",
    )
    assert source != BELL_QIR
    script = (
        "import sys\n"
        "from qmk.frontends.qir import from_qir\n"
        "from qmk.frontends.errors import FrontendError\n"
        "try:\n"
        "    from_qir(sys.stdin.read())\n"
        "except FrontendError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr  # a crash would be -11 (SIGSEGV)
    assert run.stdout.startswith("QL104 unsupported: ") and "static id" in run.stdout


@pytest.mark.parametrize("qubit", ["3000000", "9223372036854775807", "-1"])
def test_a_qir_qubit_id_past_the_limit_is_refused_before_it_is_allocated(qubit):
    source = BELL_QIR.replace("inttoptr (i64 1 to %Qubit*)", f"inttoptr (i64 {qubit} to %Qubit*)")
    with pytest.raises(FrontendError, match="a program allocates at most 1000000") as err:
        from_qir(source)
    assert err.value.code == "QL107"


def test_a_qir_entry_point_that_is_only_declared_is_refused_by_name():
    source = BELL_QIR.replace("#0 {", "#5 {").replace(
        "declare void @__quantum__qis__h__body(%Qubit*)",
        "declare void @__quantum__qis__h__body(%Qubit*) #0",
    )
    assert source.count("#0") == 2  # the attribute group, on the declaration only
    with pytest.raises(FrontendError, match="@__quantum__qis__h__body is declared, not defined"):
        from_qir(source)
