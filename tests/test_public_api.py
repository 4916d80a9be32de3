"""The public front door: ``qmk.__all__`` is what a user may rely on (pinned here, so a
change to it is a decision), ``import qmk`` stays light, and ``qmk.run`` takes a program
as text in every language QMK reads, as a file or as a graph, with the user's parameters
only, and says what was wrong with a bad source to a Python user."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import qmk
from qmk import defaults
from support.paths import EXAMPLES

#: The user's surface. Changing it is changing the promise: write it in CHANGELOG.md.
SURFACE = [
    "AsyncClient",
    "Client",
    "EngineError",
    "FormatError",
    "FrontendError",
    "QECError",
    "QMKError",
    "RunResult",
    "SyscallError",
    "TargetError",
    "Telemetry",
    "TransportError",
    "VerificationError",
    "__version__",
    "run",
]

#: qmk.run's parameters, in order: the user's, and nothing only the kernel sets.
RUN_PARAMETERS = [
    "source",
    "format",
    "shots",
    "seed",
    "engine",
    "noise",
    "qubit",
    "profile",
    "inputs",
    "engine_options",
    "calibration",
    "initial_state",
    "final_state",
    "limits",
    "physics",
    "target",
    "target_options",
]

BELL_COUNTS = ["00", "11"]
QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""


def test_all_is_the_users_surface_exactly():
    assert qmk.__all__ == SURFACE


def test_every_name_of_the_surface_is_there_and_every_error_is_a_qmk_error():
    for name in qmk.__all__:
        value = getattr(qmk, name)
        if name.endswith("Error"):
            assert issubclass(value, qmk.QMKError), name
    assert set(qmk.__all__) <= set(dir(qmk))
    namespace: dict[str, object] = {}
    exec("from qmk import *", namespace)
    assert set(qmk.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'runn'"):
        qmk.runn  # noqa: B018


def test_import_qmk_is_light_no_numpy_and_no_machine():
    code = (
        "import sys, qmk; "
        "print(sorted(m for m in ('numpy', 'stim', 'qmk.execution', 'qmk.engines') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_run_takes_the_users_parameters_only_with_the_shared_defaults():
    signature = inspect.signature(qmk.run)
    assert list(signature.parameters) == RUN_PARAMETERS
    for kernel_only in ("control", "resume", "part", "require_calibration"):
        assert kernel_only not in signature.parameters
    default = {name: p.default for name, p in signature.parameters.items()}
    assert default["shots"] == defaults.SHOTS
    assert (default["qubit"], default["profile"]) == (defaults.QUBIT, defaults.PROFILE)
    assert default["engine"] == defaults.ENGINE
    # None: the program's own target, stim for a stim circuit, defaults.TARGET for any other
    assert (default["target"], default["target_options"]) == (None, None)
    assert qmk.run.__module__ == "qmk._front" and qmk.run.__doc__


@pytest.mark.parametrize(
    "example", ["bell.qasm", "bell.qvm.asm", "bell.qvm.json", "bell.ll"], ids=lambda e: e
)
def test_run_takes_the_program_as_text_as_it_takes_its_file(example: str):
    path = EXAMPLES / example
    by_file = qmk.run(str(path), shots=300, seed=5, noise=False)
    by_path = qmk.run(path, shots=300, seed=5, noise=False)
    by_text = qmk.run(path.read_text(encoding="utf-8"), shots=300, seed=5, noise=False)
    assert sorted(by_text.counts) == BELL_COUNTS
    assert by_text.counts == by_file.counts == by_path.counts


@pytest.mark.parametrize(
    ("example", "format"),
    [
        ("bell.qasm", "qasm2"),
        ("bell.qasm", "qasm"),
        ("bell.qvm.asm", "qvm-asm"),
        ("bell.qvm.json", "qvm-json"),
        ("bell.ll", "qir"),
    ],
)
def test_format_names_the_language_of_text_and_of_files_of_any_name(
    example: str, format: str, tmp_path: Path
):
    text = (EXAMPLES / example).read_text(encoding="utf-8")
    assert sorted(qmk.run(text, format=format, shots=50, seed=1).counts) == BELL_COUNTS
    renamed = tmp_path / "program.txt"
    renamed.write_text(text, encoding="utf-8")
    assert sorted(qmk.run(renamed, format=format, shots=50, seed=1).counts) == BELL_COUNTS
    # and without format=, a file of an unknown extension is read by sight
    assert sorted(qmk.run(renamed, shots=50, seed=1).counts) == BELL_COUNTS


def test_openqasm_3_text_takes_its_inputs():
    result = qmk.run(QASM3, inputs={"theta": 3.141592653589793}, shots=100, seed=2, noise=False)
    assert result.counts == {"1": 100}


def test_one_line_text_is_text_and_a_graph_is_run_as_it_is():
    line = json.dumps(json.loads((EXAMPLES / "bell.qvm.json").read_text(encoding="utf-8")))
    assert "\n" not in line
    assert sorted(qmk.run(line, shots=50, seed=1).counts) == BELL_COUNTS
    data = json.loads(line)
    assert qmk.run(data, shots=50, seed=1).counts == qmk.run(line, shots=50, seed=1).counts


def test_text_of_no_language_qmk_knows_by_sight_asks_for_format_in_python_terms():
    with pytest.raises(qmk.FrontendError) as caught:
        qmk.run("qubit q;\nh q;\n")
    message = str(caught.value)
    assert caught.value.code == "QL108"
    assert "format=" in message and "--format" not in message and "\n" not in message
    text = 'include "stdgates.inc";\nqubit q;\nh q;\nbit c = measure q;\n'
    result = qmk.run(text, format="qasm3", shots=40, seed=3)
    assert set(result.counts) <= {"0", "1"}


def test_a_file_of_an_unknown_extension_and_language_asks_for_format_in_python_terms(
    tmp_path: Path,
):
    odd = tmp_path / "program.txt"
    odd.write_text("this is not a program\n", encoding="utf-8")
    with pytest.raises(qmk.FrontendError) as caught:
        qmk.run(odd)
    assert caught.value.code == "QL108"
    assert str(odd) in str(caught.value) and "format=" in str(caught.value)
    assert "--format" not in str(caught.value)


def test_a_missing_file_is_unreadable_not_a_syntax_error(tmp_path: Path):
    with pytest.raises(qmk.FrontendError) as caught:
        qmk.run(str(tmp_path / "missing.qasm"))
    assert caught.value.code == "QL105"


def test_an_unknown_format_names_the_closest():
    with pytest.raises(qmk.FrontendError, match="unknown format 'qasm4'; did you mean 'qasm"):
        qmk.run("OPENQASM 2.0;", format="qasm4")


def test_format_or_inputs_for_a_graph_is_refused():
    data = json.loads((EXAMPLES / "bell.qvm.json").read_text(encoding="utf-8"))
    with pytest.raises(qmk.FrontendError, match="format= is for program text or a file"):
        qmk.run(data, format="qasm2")


def test_a_misspelt_engine_is_qe101_with_the_closest_name():
    with pytest.raises(qmk.EngineError) as caught:
        qmk.run(EXAMPLES / "bell.qasm", engine="statevektor")
    assert caught.value.code == "QE101"
    assert "did you mean 'statevector'?" in str(caught.value)


@pytest.mark.parametrize("empty", ["", "  ", b""])
def test_an_empty_source_is_ql105_not_the_current_directory(empty: str | bytes):
    with pytest.raises(qmk.FrontendError) as caught:
        qmk.run(empty)
    assert caught.value.code == "QL105" and "the program is empty" in str(caught.value)
    assert "directory" not in str(caught.value)


@pytest.mark.parametrize("profile", ["garbage", "logical:surface_code(d=999999)"])
def test_a_profile_that_does_not_parse_is_a_qec_error_qc102(profile: str):
    with pytest.raises(qmk.QECError) as caught:
        qmk.run(EXAMPLES / "bell.qasm", profile=profile, shots=10, seed=1)
    assert caught.value.code == "QC102" and profile in str(caught.value)


@pytest.mark.parametrize(
    ("shots", "seed"), [(10**20, 1), (defaults.MAX_SHOTS + 1, 1), (0, 1), (10, 2**63), (10, -1)]
)
def test_shots_and_seeds_out_of_range_are_engine_errors_before_any_work(shots: int, seed: int):
    with pytest.raises(qmk.EngineError) as caught:
        qmk.run(EXAMPLES / "bell.qasm", shots=shots, seed=seed)
    assert caught.value.code == "QE105"


def test_an_unknown_engine_lists_every_engine_a_run_may_name():
    with pytest.raises(qmk.EngineError) as caught:
        qmk.run(EXAMPLES / "bell.qasm", engine="nope")
    known = str(caught.value).rsplit("; known: ", 1)[1].split(", ")
    assert known == list(defaults.ENGINES) and "mps" in known


def test_a_target_qmk_does_not_know_or_an_option_it_cannot_honour_is_a_target_error():
    with pytest.raises(qmk.TargetError) as unknown:
        qmk.run(EXAMPLES / "bell.qasm", target="lattice-surgeon")
    assert unknown.value.code == "QM101" and "lattice-surgery" in str(unknown.value)
    with pytest.raises(qmk.TargetError) as refused:
        qmk.run(EXAMPLES / "bell.qasm", target="lattice-surgery", target_options={"presett": 1})
    assert refused.value.code == "QM102" and "presett" in str(refused.value)


def test_the_result_of_run_is_the_surfaces_run_result():
    result = qmk.run(EXAMPLES / "bell.qasm", shots=10, seed=1)
    assert isinstance(result, qmk.RunResult) and isinstance(result.telemetry, qmk.Telemetry)
