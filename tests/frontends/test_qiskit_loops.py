"""Qiskit ``for_loop`` read folded: a loop whose passes are alike is one REPEAT row, which
samples as Aer samples the loop written out and counts by multiplication (issue 76)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit

from qmk.estimate import count_graph
from qmk.execution.runs import run
from qmk.frontends.qiskit import from_qiskit
from qmk.qvm import graph_file
from qmk.qvm.fold import rows, unroll, unrolled_size
from qmk.qvm.verify import check
from support.cli import qmk
from support.frontends import aer_counts, assert_same_distribution, tvd

SHOTS = 4000
SEED = 20261128


def repeats(nodes) -> list:
    return [n for n in nodes if n.op == "REPEAT"]


def pass_gates(qc: QuantumCircuit, inner: int) -> None:
    """One pass of the loop body the tests fold (and write out), on 3 qubits."""
    qc.rx(0.37, 0)
    qc.cx(0, 1)
    qc.ry(0.21, 2)
    qc.t(1)
    for _ in range(inner):
        qc.cz(1, 2)
        qc.h(2)


def looped(turns: int, inner: int) -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    with qc.for_loop(range(turns)):
        qc.rx(0.37, 0)
        qc.cx(0, 1)
        qc.ry(0.21, 2)
        qc.t(1)
        with qc.for_loop(range(inner)):
            qc.cz(1, 2)
            qc.h(2)
    qc.measure([0, 1, 2], [0, 1, 2])
    return qc


def written_out(turns: int, inner: int) -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    for _ in range(turns):
        pass_gates(qc, inner)
    qc.measure([0, 1, 2], [0, 1, 2])
    return qc


def test_a_loop_of_gates_that_ignores_its_parameter_is_one_repeat_row_nested_inside_out():
    graph = from_qiskit(looped(7, 3))
    assert graph.version == "0.3" and check(graph).ok
    (outer,) = repeats(graph.nodes)
    assert outer.args == {"count": 7}
    assert [n.op for n in outer.body] == [
        "APPLY_RX",
        "APPLY_CNOT",
        "APPLY_RY",
        "APPLY_T",
        "REPEAT",
    ]
    (inner,) = repeats(outer.body)
    assert inner.args == {"count": 3} and [n.op for n in inner.body] == ["APPLY_CZ", "APPLY_H"]
    assert unrolled_size(graph) == len(from_qiskit(written_out(7, 3)).nodes)


def test_a_folded_loop_samples_as_aer_samples_the_loop_written_out():
    circuit = looped(7, 3)
    graph = from_qiskit(circuit)
    assert repeats(graph.nodes)
    ours = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    aer = aer_counts(written_out(7, 3), SHOTS, SEED)
    assert_same_distribution(ours, aer, "folded for_loop")
    assert tvd(ours, aer) < 0.05  # 4000 shots over 8 outcomes: sampling noise is ~0.02
    flat = unroll(graph, max_nodes=None)
    assert [n.op for n in flat.nodes] == [n.op for n in from_qiskit(written_out(7, 3)).nodes]


def test_loops_whose_passes_differ_are_unrolled_as_before():
    qc = QuantumCircuit(2, 2)
    with qc.for_loop(range(3)) as i:  # reads its parameter
        qc.rx(i * 0.5, 0)
    # reads it in a nested loop only: the inner loop folds
    with qc.for_loop(range(3)) as j, qc.for_loop(range(2)):
        qc.ry(j * 0.25, 1)
    with qc.for_loop(range(4)):  # ends at its first pass
        qc.x(0)
        qc.break_loop()
    with qc.for_loop(range(2)):  # measures
        qc.h(1)
        qc.measure(1, 1)
    qc.measure(0, 0)
    graph = from_qiskit(qc)
    ops = [n.op for n in graph.nodes]
    assert ops.count("APPLY_RX") == 2  # rx(0) is the identity and is not written
    inner = repeats(graph.nodes)  # the j loop's passes, j = 1 and 2 (ry(0) writes nothing)
    assert [(r.args["count"], [n.args["theta"] for n in r.body]) for r in inner] == [
        (2, [0.25]),
        (2, [0.5]),
    ]
    assert ops.count("APPLY_X") == 1 and ops.count("APPLY_H") == 2 and ops.count("MEASURE_Z") == 3


def test_info_and_estimate_count_a_million_turn_loop_by_multiplication(tmp_path: Path):
    qc = QuantumCircuit(2, 2)
    with qc.for_loop(range(10**6)):
        qc.t(0)
        qc.cx(0, 1)
        with qc.for_loop(range(10)):
            qc.tdg(1)
            qc.tdg(0)
    qc.measure([0, 1], [0, 1])
    graph = from_qiskit(qc)
    assert rows(graph.nodes) == 10  # alloc, 2 REPEAT rows and their 3 + 2, 2 measurements, free
    assert count_graph(graph).t_count == 21 * 10**6
    path = tmp_path / "loop.json"
    path.write_text(graph_file.dumps(graph), encoding="utf-8")
    status, out, err = qmk("info", "--json", str(path))
    assert status == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 10 and summary["counts"]["t_gates"] == 21 * 10**6
    assert summary["counts"]["by_op"]["APPLY_CNOT"] == 10**6
    status, out, err = qmk("estimate", "--json", str(path))
    assert status == 0, err
    assert json.loads(out)["logicalCounts"]["tCount"] == 21 * 10**6
