"""`qmk estimate`: a table or QRE's JSON, from a program or logical counts; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

from qmk.estimate.counts import LogicalCounts, count_graph
from qmk.estimate.estimator import estimate
from qmk.qvm.files import read_graph
from support.cli import qmk
from support.paths import EXAMPLES

LARGE = '{"numQubits": 100, "tCount": 1000000, "rotationCount": 10000, "rotationDepth": 1000}'


def test_estimate_of_logical_counts_prints_qre_json() -> None:
    status, out, err = qmk("estimate", "--logical-counts", LARGE, "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data == json.loads(json.dumps(estimate(LogicalCounts.from_json(json.loads(LARGE)))))
    assert {"physicalCounts", "logicalQubit", "tfactory", "errorBudget", "logicalCounts"} <= set(
        data
    )


def test_estimate_of_a_program_file_counts_it_and_prints_a_table(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(
        '{"qubitParams": {"name": "qubit_maj_ns_e4"}, "qecScheme": {"name": "floquet_code"}}'
    )
    status, out, err = qmk("estimate", str(EXAMPLES / "ghz.qvm.json"), "--params", str(params))
    assert status == 0, err
    counts = count_graph(read_graph(str(EXAMPLES / "ghz.qvm.json")))
    assert f"logical numQubits           {counts.num_qubits}" in out
    assert "physical qubits" in out and "decoder throughput" in out


def test_estimate_takes_a_list_of_parameter_sets() -> None:
    status, out, err = qmk(
        "estimate", "--logical-counts", LARGE, "--params", '[{}, {"errorBudget": 0.01}]', "--json"
    )
    assert status == 0, err
    first, second = json.loads(out)
    assert first["physicalCounts"]["physicalQubits"] > second["physicalCounts"]["physicalQubits"]


def test_bad_input_is_one_line_with_a_code_and_exit_status_2() -> None:
    for argv in (
        ("estimate", "--logical-counts", '{"numQubits": 4}'),
        ("estimate", "--logical-counts", LARGE, "--params", '{"errorBudget": 2}'),
        ("estimate", "--logical-counts", "{not json"),
        ("estimate", "--logical-counts", LARGE, "--params", "/no/such/file.json"),
        ("estimate",),
    ):
        status, out, err = qmk(*argv)
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("QC1"), err
