"""OpenQASM 3 ``for`` loops read folded into REPEAT rows (qmk.frontends.qasm_fold)."""

from __future__ import annotations

from qmk.execution import run
from qmk.frontends.qasm import from_qasm
from qmk.qvm.fold import unroll, unrolled_size
from qmk.qvm.verify import check

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\n'


def repeats(graph):
    return [node for node in graph.nodes if node.op == "REPEAT"]


def test_a_loop_whose_body_ignores_its_variable_is_one_repeat_row():
    graph = from_qasm(HEAD + "for int i in [0:99999] { t q[0]; cx q[0], q[1]; }\nc = measure q;")
    (loop,) = repeats(graph)
    assert graph.version == "0.3"
    assert loop.args == {"count": 100_000}
    assert [n.op for n in loop.body] == ["APPLY_T", "APPLY_CNOT"]
    assert unrolled_size(graph) == 200_000 + 1 + 3 + 1  # alloc, measures, free
    totals = check(graph, unroll=False).totals
    assert totals is not None and totals.counts.t_gates == 100_000


def test_nested_loops_fold_inside_out_and_a_loop_naming_its_variable_unrolls():
    source = HEAD + (
        "for int i in [0:4] {\n"
        "  for int j in [0:2] { t q[0]; cx q[0], q[1]; }\n"
        "  for int k in [0:1] { rx(0.3) q[k]; }\n"
        "}\n"
        "c = measure q;"
    )
    graph = from_qasm(source)
    (outer,) = repeats(graph)
    assert outer.args == {"count": 5}
    inner, rx0, rx1 = outer.body
    assert inner.op == "REPEAT" and inner.args == {"count": 3}
    assert (rx0.op, rx0.vqs, rx1.vqs) == ("APPLY_RX", ("q0",), ("q1",))  # k: unrolled


def test_a_loop_with_a_measurement_or_a_set_is_unrolled_as_before():
    measured = from_qasm(HEAD + "for int i in [0:2] { h q[0]; c[0] = measure q[0]; }")
    assert repeats(measured) == []
    indexed = from_qasm(HEAD + "for int i in {0, 2} { h q[i]; }")
    assert repeats(indexed) == []


def test_running_the_folded_program_equals_running_the_loop_written_out():
    loop = HEAD + "h q[0];\nfor int i in [0:2] { rx(0.7) q[0]; cx q[0], q[1]; }\nc = measure q;"
    flat = HEAD + "h q[0];\n" + "rx(0.7) q[0]; cx q[0], q[1];\n" * 3 + "c = measure q;"
    folded, written = from_qasm(loop), from_qasm(flat)
    assert repeats(folded) and not repeats(written)
    assert len(unroll(folded, max_nodes=None).nodes) == len(written.nodes)
    seed = 11
    assert run(folded, shots=400, seed=seed).counts == run(written, shots=400, seed=seed).counts
