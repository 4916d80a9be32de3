"""``qmk run`` of a flat OpenQASM file reads it in bulk as columns and runs the very
program the statement reader gives: the same samples at the same seed, the same
telemetry, the same refusals; ``--explain`` says which reader read it, and why."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scipy import stats

from support.cli import qmk

#: Appended to a file, it routes the file to the statement reader (a block comment)
#: and changes nothing else of its program.
ROUTE = "/* read by statements */\n"


def clifford_flat(rng: random.Random, qubits: int, gates: int) -> str:
    """A seeded flat OpenQASM 2 program of Clifford gates, a mid-circuit measurement
    and a measurement of every qubit."""
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for k in range(gates):
        if rng.random() < 0.5:
            a, b = rng.sample(range(qubits), 2)
            lines.append(f"{rng.choice(['cx', 'cz', 'swap'])} q[{a}],q[{b}];")
        else:
            gate = rng.choice(["h", "s", "sdg", "x", "y", "z"])
            lines.append(f"{gate} q[{rng.randrange(qubits)}];")
        if k == gates // 2:
            lines.append("measure q[0] -> c[0];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def run_json(path: Path, *options: str) -> dict:
    status, out, err = qmk("run", "--json", "--explain", *options, str(path))
    assert status == 0, err
    data = json.loads(out)
    data["telemetry"].pop("wall_time_s")
    return data


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("noise", [True, False])
def test_a_flat_file_read_in_bulk_runs_as_the_statement_readers_program(
    tmp_path: Path, seed: int, noise: bool
):
    path = tmp_path / "flat.qasm"
    text = clifford_flat(random.Random(seed), 6, 80)
    options = ("--shots", "500", "--seed", str(seed), *(() if noise else ("--no-noise",)))
    path.write_text(text, encoding="utf-8")
    bulk = run_json(path, *options)
    path.write_text(text + ROUTE, encoding="utf-8")
    statements = run_json(path, *options)
    assert bulk.pop("reader") == "read in bulk as columns (89 rows)"
    assert statements.pop("reader").startswith("read statement by statement (")
    assert bulk == statements
    assert bulk["telemetry"]["mode"] == "stim-batch"


def test_a_non_clifford_flat_file_runs_alike_on_either_reader(tmp_path: Path):
    path = tmp_path / "t.qasm"
    text = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\n'
        "h q[0];\nt q[0];\ncx q[0], q[1];\nrz(0.3) q[2];\nh q[2];\nc = measure q;\n"
    )
    path.write_text(text, encoding="utf-8")
    bulk = run_json(path, "--shots", "300", "--seed", "5")
    path.write_text(text + ROUTE, encoding="utf-8")
    statements = run_json(path, "--shots", "300", "--seed", "5")
    assert bulk.pop("reader").startswith("read in bulk")
    statements.pop("reader")
    assert bulk == statements


def test_a_ghz_file_read_in_bulk_samples_the_exact_distribution(tmp_path: Path):
    path = tmp_path / "ghz.qasm"
    path.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
        "h q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;\n",
        encoding="utf-8",
    )
    data = run_json(path, "--shots", "4000", "--seed", "11", "--no-noise")
    assert data["reader"].startswith("read in bulk")
    counts = data["counts"]
    assert set(counts) == {"000", "111"}
    observed = [counts["000"], counts["111"]]
    assert stats.chisquare(observed, [2000, 2000]).pvalue > 1e-4


def test_a_faulty_flat_file_gets_the_statement_readers_refusal(tmp_path: Path):
    path = tmp_path / "bad.qasm"
    path.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncx q[0],q[5];\n', encoding="utf-8"
    )
    status, out, err = qmk("run", str(path))
    assert status == 2 and out == "" and err.startswith("QL")


def test_a_flat_file_over_the_node_limit_is_refused_as_before(tmp_path: Path):
    path = tmp_path / "big.qasm"
    text = clifford_flat(random.Random(1), 3, 30)
    path.write_text(text, encoding="utf-8")
    bulk = qmk("run", "--max-nodes", "10", str(path))
    path.write_text(text + ROUTE, encoding="utf-8")
    assert bulk == qmk("run", "--max-nodes", "10", str(path))
    assert bulk[0] != 0


@pytest.mark.parametrize("seed", range(3))
def test_a_run_request_digests_a_program_verified_on_its_columns_as_its_graph(seed: int):
    from qmk.execution.runs import build_request
    from qmk.frontends.qasm import from_qasm
    from qmk.frontends.qasm_bulk import read_flat
    from qmk.qvm.columns import Columns, verified
    from qmk.qvm.verify import verify

    text = clifford_flat(random.Random(seed), 5, 60)
    columns = read_flat(text, "p.qasm")
    assert isinstance(columns, Columns)
    program = verified(columns)
    assert program is not None and program.columns is columns
    mine = build_request(program, shots=10, seed=1).program_digest
    theirs = build_request(verify(from_qasm(text, name="p.qasm")), shots=10, seed=1)
    assert mine == theirs.program_digest


def test_a_flat_file_teleported_over_modules_runs_alike_on_either_reader(tmp_path: Path):
    path = tmp_path / "modules.qasm"
    text = (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[4];\ncreg c[4];\n'
        "h q[0];\ncx q[0],q[3];\ncx q[1],q[2];\ncx q[0],q[2];\nmeasure q -> c;\n"
    )
    options = ("--modules", "2", "--module-qubits", "4", "--shots", "200", "--seed", "4")
    path.write_text(text, encoding="utf-8")
    bulk = run_json(path, *options)
    path.write_text(text + ROUTE, encoding="utf-8")
    statements = run_json(path, *options)
    assert bulk.pop("reader").startswith("read in bulk")
    statements.pop("reader")
    assert bulk == statements and "teleportation" in bulk
