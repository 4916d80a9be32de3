"""The qmk command: exit statuses, output, and bad input as one line with a code."""

from __future__ import annotations

import ast
import io
import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import pytest

from qmk import __version__
from qmk.cli import main
from qmk.qvm import graph_file
from qmk.qvm.generate import random_graph
from support.cli import qmk
from support.paths import EXAMPLES

BELL = {
    "version": "0.2",
    "program": {
        "nodes": [
            {"id": "a", "op": "ALLOC_LQ", "vqs": ["q0", "q1"], "args": {"n": 2}},
            {"id": "h", "op": "APPLY_H", "vqs": ["q0"]},
            {"id": "cx", "op": "APPLY_CNOT", "vqs": ["q0", "q1"]},
            {"id": "m0", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["m0"]},
            {"id": "m1", "op": "MEASURE_Z", "vqs": ["q1"], "produces": ["m1"]},
            {"id": "f", "op": "FREE_LQ", "vqs": ["q0", "q1"]},
        ]
    },
    "resources": {"vqs": ["q0", "q1"], "chs": [], "events": ["m0", "m1"]},
    "caps": ["CAP_ALLOC"],
}


@pytest.fixture
def bell(tmp_path: Path) -> Path:
    path = tmp_path / "bell.qvm.json"
    path.write_text(json.dumps(BELL), encoding="utf-8")
    return path


def broken_graph(tmp_path: Path) -> Path:
    doc = json.loads(json.dumps(BELL))
    doc["program"]["nodes"].append({"id": "x", "op": "APPLY_X", "vqs": ["q0"]})
    path = tmp_path / "broken.qvm.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_validate_a_valid_program_exits_0_and_says_ok(bell):
    status, out, err = qmk("validate", str(bell))
    assert status == 0 and err == ""
    assert out.startswith(f"{bell}: ok (6 nodes, 1 epoch, peak 2 live qubits")


def test_validate_reports_every_finding_with_its_code_and_exits_1(tmp_path):
    path = broken_graph(tmp_path)
    status, _out, err = qmk("validate", str(path))
    assert status == 1
    assert f"{path}: error: QV202 use-after-free at node #6 'x' (APPLY_X)" in err


def test_validate_json_lists_findings_for_every_file(tmp_path, bell):
    path = broken_graph(tmp_path)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json", encoding="utf-8")
    status, out, _ = qmk("validate", "--json", str(bell), str(path), str(junk))
    assert status == 2  # unreadable input wins over findings
    files = json.loads(out)["files"]
    assert [f["ok"] for f in files] == [True, False, False]
    assert files[1]["findings"][0]["code"] == "QV202"
    assert files[2]["error"]["code"] == "QF004"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"version": ', "QF004"),
        (b"\xff\xfe\x00garbage", "QF003"),
        (b"[" * 200_000, "QF005"),
        (b'{"version": "0.2", "program": {"nodes": {}}, "resources": {}}', "QF006"),
        (b'{"version": "0.2", "program": {"nodes": []}, "resources": {}, "extra": 1}', "QF007"),
        (b'{"version": "0.2", "program": {"nodes": []}}', "QF008"),
        (b'{"version": "0.2", "version": "0.2"}', "QF009"),
        (b'{"version": "9", "program": {"nodes": []}, "resources": {}}', "QF010"),
        (b'{"version": "0.2", "program": {"nodes": [], "x": NaN}, "resources": {}}', "QF004"),
    ],
)
def test_bad_input_is_one_line_with_a_code_and_exit_2(tmp_path, content, code):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    for command in ("validate", "info", "fmt", "disasm"):
        status, _out, err = qmk(command, str(path))
        assert status == 2, command
        assert err.count("\n") == 1 and code in err and "Traceback" not in err, (command, err)


def test_ten_megabytes_of_junk_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.json"
    path.write_bytes(random.Random(1).randbytes(10 * 1024 * 1024))
    status, _, err = qmk("validate", str(path))
    assert status == 2 and err.count("\n") == 1 and err.startswith("QF003 not-utf8: ")


def test_a_missing_file_is_unreadable_input(tmp_path):
    status, _, err = qmk("validate", str(tmp_path / "nope.json"))
    assert status == 2 and "QF001 unreadable-file" in err


def test_max_bytes_refuses_large_files_before_reading(bell):
    status, _, err = qmk("validate", "--max-bytes", "10", str(bell))
    assert status == 2 and "QF002 too-large" in err


def test_max_nodes_makes_a_large_graph_a_finding(bell):
    status, _, err = qmk("validate", "--max-nodes", "3", str(bell))
    assert status == 1 and "QV503 graph-too-large" in err


def test_info_describes_counts_epochs_segments_and_caps(bell):
    status, out, _ = qmk("info", str(bell))
    assert status == 0
    assert "6 nodes" in out and "caps        required: CAP_ALLOC" in out
    assert "REV         1 segment" in out and "closed by m0" in out
    status, out, _ = qmk("info", "--json", str(bell))
    summary = json.loads(out)
    assert summary["counts"]["measurements"] == 2 and summary["rev_segments"][0]["nodes"] == [
        "h",
        "cx",
    ]


def test_info_of_a_program_with_findings_lists_them_and_exits_1(tmp_path):
    status, _, err = qmk("info", str(broken_graph(tmp_path)))
    assert status == 1 and "QV202" in err


def test_fmt_prints_canonical_json_and_rewrites_in_place(tmp_path, bell):
    status, out, _ = qmk("fmt", str(bell))
    assert status == 0 and out == graph_file.dumps(graph_file.load(bell)) + "\n"
    assert qmk("fmt", "--in-place", str(bell))[0] == 0
    assert bell.read_text(encoding="utf-8") == out


def test_fmt_refuses_assembly_with_a_pointer_to_asm(tmp_path):
    path = tmp_path / "p.qvm.asm"
    path.write_text("ALLOC_LQ vq:q\n", encoding="utf-8")
    status, _, err = qmk("fmt", str(path))
    assert status == 2 and "qmk asm" in err


def test_disasm_then_asm_round_trips_exactly(tmp_path):
    g = random_graph(seed=11, nodes=300)
    source = tmp_path / "g.qvm.json"
    source.write_text(graph_file.dumps(g) + "\n", encoding="utf-8")
    text_path = tmp_path / "g.qvm.asm"
    assert qmk("disasm", str(source), "-o", str(text_path))[0] == 0
    status, out, _ = qmk("asm", str(text_path))
    assert status == 0 and out == source.read_text(encoding="utf-8")
    assert qmk("validate", "-q", str(text_path)) == (0, "", "")


def test_asm_syntax_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.qvm.asm"
    path.write_text(".version 0.2\nALLOC_LQ vq:q,, \n", encoding="utf-8")
    status, _, err = qmk("asm", str(path))
    assert status == 2 and f"{path}:2:" in err and err.count("\n") == 1


def test_schema_prints_the_shipped_schema():
    status, out, _ = qmk("schema")
    schema = json.loads(out)
    assert status == 0 and schema["$schema"].startswith("https://json-schema.org/")


def test_no_command_prints_help_and_exits_2():
    status, out, _ = qmk()
    assert status == 2 and "validate" in out


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["rn", "bell.qasm"], "QW011 bad-option: unknown command 'rn'; did you mean 'run'?"),
        (["valdate"], "QW011 bad-option: unknown command 'valdate'; did you mean 'validate'?"),
        (
            ["qec", "thresold"],
            "QW011 bad-option: unknown command 'qec thresold'; did you mean 'qec threshold'?",
        ),
    ],
)
def test_a_misspelt_command_is_one_coded_line_naming_the_closest_command(argv, line):
    assert qmk(*argv) == (2, "", line + "\n")


def test_a_command_close_to_none_lists_the_commands():
    status, _, err = qmk("xyzzy")
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("QW011 bad-option: unknown command 'xyzzy'; known: validate, asm, ")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--engine", "qsm"], "argument --engine: invalid choice 'qsm'; did you mean 'qsim'?"),
        (["--format", "qasm4"], "argument --format: invalid choice 'qasm4'; did you mean 'qasm"),
        (["--shtos", "5"], "unrecognized arguments: --shtos 5; did you mean '--shots'?"),
        (["--shots", "0"], "argument --shots: must be in [1, 10000000], got 0"),
        (["--seed"], "argument --seed: expected one argument"),
    ],
)
def test_bad_usage_of_a_command_is_one_coded_line_never_argparse_usage(bell, argv, hint):
    status, out, err = qmk("run", str(bell), *argv)
    assert (status, out) == (2, "")
    assert err.startswith(f"QW011 bad-option: qmk run: {hint}"), err
    assert err.count("\n") == 1 and "usage:" not in err


def test_a_missing_argument_is_one_coded_line():
    assert qmk("run") == (
        2,
        "",
        "QW011 bad-option: qmk run: the following arguments are required: FILE "
        "(see qmk run --help)\n",
    )


def test_the_installed_command_says_a_misspelt_command_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "qmk", "rn"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "QW011 bad-option: unknown command 'rn'; did you mean 'run'?\n"


def test_version_names_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_the_installed_command_never_shows_a_traceback_for_bad_input(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(
        b'{"version": "0.2", "program": {"nodes": [{"id": 1, "op": "X"}]}, "resources": {}}'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "qmk", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count(str(path)) == 1
    assert proc.stderr.strip().endswith("program.nodes[0].id: expected a string, got number")
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not any(EXAMPLES.glob("*.qvm.*")), reason="no examples")
def test_every_example_validates_through_the_command():
    files = sorted(str(p) for p in EXAMPLES.glob("*.qvm.*"))
    assert files
    status, out, err = qmk("validate", *files)
    assert (status, err) == (0, "")
    assert out.count(": ok (") == len(files)


def test_each_command_module_adds_exactly_the_commands_its_table_row_lists():
    import argparse
    from importlib import import_module

    from qmk.commands import MODULES

    for module, listed in MODULES.items():
        added: list[str] = []

        def add(
            name: str, help_text: str, /, *, limits: bool = True, added: list[str] = added
        ) -> argparse.ArgumentParser:
            added.append(name)
            return argparse.ArgumentParser(prog=name)

        import_module(f"qmk.commands.{module}").register(add)
        assert tuple(added) == listed, module


def test_a_fresh_run_process_never_imports_other_commands_heavy_modules(tmp_path):
    # qmk run builds run's parser alone: the device's job model (numpy, the ISA) and the
    # estimator are imported by their own commands, not by every qmk process
    program = tmp_path / "bell.json"
    program.write_text(json.dumps(BELL))
    probe = (
        "import sys\n"
        "from qmk.cli import main\n"
        f"status = main(['run', {str(program)!r}, '--shots', '4', '--seed', '1'])\n"
        "heavy = [m for m in ('qmk.devices.neutral_atom.job', 'qmk.estimate.estimator')"
        " if m in sys.modules]\n"
        "print(status, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_a_command_process_sets_numpys_huge_pages_before_numpy_is_imported(tmp_path):
    # NumPy reads NUMPY_MADVISE_HUGEPAGE once, at its import: entry must set it first
    program = tmp_path / "bell.json"
    program.write_text(json.dumps(BELL))
    probe = (
        "import os, sys\n"
        "from qmk import cli, defaults\n"
        "before = 'numpy' in sys.modules\n"
        f"sys.argv = ['qmk', 'run', {str(program)!r}, '--shots', '4', '--quiet']\n"
        "try:\n    cli.entry()\nexcept SystemExit as exit:\n    status = exit.code\n"
        "import numpy\n"
        "print(status, before, os.environ['NUMPY_MADVISE_HUGEPAGE'], defaults.HUGE_PAGES,"
        " bool(numpy._core.multiarray._get_madvise_hugepage()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False 0 False False"


#: A stage that frees 64 MiB of 1 MiB blocks, three times: the minor faults of each.
_HEAP_PROBE = (
    "import os, resource\n"
    "from qmk import cli\n"
    "why = cli.keep_freed_heap() if os.environ.get('PROBE_KEEP') else 'not asked'\n"
    "faults = []\n"
    "for _ in range(3):\n"
    "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "    blocks = [bytearray(1 << 20) for _ in range(64)]\n"
    "    del blocks\n"
    "    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    "print(repr(why), faults[1], faults[2])\n"
)


def _heap_probe(**env: str) -> tuple[str, int, int]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    }
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, env=clean | env
    )
    assert done.returncode == 0, done.stderr
    why, second, third = done.stdout.rsplit(maxsplit=2)
    return ast.literal_eval(why), int(second), int(third)


def test_a_command_process_reuses_the_heap_a_stage_freed_without_faulting_it_in_again():
    # 64 MiB is 16,384 pages: glibc's defaults hand them back after each stage, so the
    # next stage faults them all in again; with keep_freed_heap it reuses them
    why, *kept = _heap_probe(PROBE_KEEP="1")
    if platform.libc_ver()[0] == "glibc":
        assert why is None
        assert max(kept) < 1000, kept
        _, *default = _heap_probe()
        assert min(default) > 8000, default
    else:
        assert why == "the C library is not glibc: mallopt's thresholds are glibc's"


def test_the_heap_thresholds_the_environment_sets_stand():
    why, *_ = _heap_probe(PROBE_KEEP="1", MALLOC_TRIM_THRESHOLD_="131072")
    assert why == "the environment sets glibc's malloc thresholds (GLIBC_TUNABLES, MALLOC_*_)"
    why, *_ = _heap_probe(PROBE_KEEP="1", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")
    assert why.startswith("the environment sets")


def test_an_internal_error_is_one_line_whatever_the_message_it_carries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library's exception can carry a message of many lines (cuda-pathfinder lists
    every file of a folder it searched): the report is still one line, exit 3."""

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise ValueError("no libfoo.so in\n    libbar.so\n    libbaz.so")

    monkeypatch.delenv("QMK_DEBUG", raising=False)
    err = io.StringIO()
    assert main(["engines"], stdout=Broken(), stderr=err) == 3
    said = err.getvalue()
    assert said.count("\n") == 1
    assert "internal error ValueError: no libfoo.so in libbar.so libbaz.so" in said
