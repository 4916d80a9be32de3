"""OpenQASM 3 gate and def definitions read as blocks: each call a CALL row, each
(definition, constant parameters) a block stored once; the same states as Qiskit's
reading and the same samples as the program written out by hand, at stated seeds."""

from __future__ import annotations

import numpy as np
import pytest

from qmk.execution.runs import run
from qmk.frontends.qasm import from_qasm
from qmk.qvm.fold import rows
from qmk.qvm.verify import check
from support.cli import qmk

SEED = 20261129

GATES = """OPENQASM 3.0;
include "stdgates.inc";
gate tcx(th) a, b { t a; rz(th) b; cx a, b; tdg b; h a; }
gate pair a, b { tcx(0.7) a, b; tcx(0.7) b, a; }
qubit[3] q;
h q[1];
tcx(0.25) q[0], q[1];
tcx(0.25) q[1], q[2];
tcx(1.5) q[2], q[0];
pair q[0], q[2];
pair q[2], q[1];
"""

WRITTEN_OUT = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
h q[1];
t q[0]; rz(0.25) q[1]; cx q[0], q[1]; tdg q[1]; h q[0];
t q[1]; rz(0.25) q[2]; cx q[1], q[2]; tdg q[2]; h q[1];
t q[2]; rz(1.5) q[0]; cx q[2], q[0]; tdg q[0]; h q[2];
t q[0]; rz(0.7) q[2]; cx q[0], q[2]; tdg q[2]; h q[0];
t q[2]; rz(0.7) q[0]; cx q[2], q[0]; tdg q[0]; h q[2];
t q[2]; rz(0.7) q[1]; cx q[2], q[1]; tdg q[1]; h q[2];
t q[1]; rz(0.7) q[2]; cx q[1], q[2]; tdg q[2]; h q[1];
"""


def _state(source: str) -> np.ndarray:
    result = run(
        from_qasm(source, name="t.qasm"), shots=1, seed=SEED, noise=False, final_state="amplitudes"
    )
    assert result.final_state is not None
    return np.asarray(result.final_state.amplitudes)


def _same_state(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to the global phase (no measurement sees it)."""
    k = int(np.argmax(np.abs(b)))
    np.testing.assert_allclose(a * (b[k] / a[k]), b, atol=1e-9)


def test_each_gate_definition_and_its_parameters_is_one_block_and_each_call_one_row():
    graph = from_qasm(GATES, name="t.qasm")
    assert graph.version == "0.3"
    assert [b.id for b in graph.blocks] == ["tcx", "tcx_2", "pair"]
    assert [b.vqs for b in graph.blocks] == [("a0", "a1")] * 3
    calls = [(n.args["block"], n.vqs) for n in graph.nodes if n.op == "CALL"]
    assert calls == [
        ("tcx", ("q0", "q1")),
        ("tcx", ("q1", "q2")),
        ("tcx_2", ("q2", "q0")),
        ("pair", ("q0", "q2")),
        ("pair", ("q2", "q1")),
    ]
    pair = graph.blocks[2]  # (a gate's body is lowered whole: its calls written out)
    assert [(n.op, n.vqs) for n in pair.body][:2] == [("APPLY_T", ("a0",)), ("APPLY_RZ", ("a1",))]
    assert len(pair.body) == 10


def test_a_program_of_blocks_has_the_state_qiskit_reads_from_the_same_file():
    qasm3 = pytest.importorskip("qiskit.qasm3")
    from qiskit.quantum_info import Statevector

    _same_state(_state(GATES), np.asarray(Statevector(qasm3.loads(GATES)).data))


def test_a_program_of_blocks_has_the_state_and_samples_of_the_program_written_out():
    _same_state(_state(GATES), _state(WRITTEN_OUT))
    measured = "bit[3] c;\nc = measure q;\n"
    blocks = run(from_qasm(GATES + measured, name="t.qasm"), shots=400, seed=SEED, noise=False)
    flat = run(from_qasm(WRITTEN_OUT + measured, name="t.qasm"), shots=400, seed=SEED, noise=False)
    assert blocks.counts == flat.counts  # the same operations, the same seeded draws


DEFS = """OPENQASM 3.0;
include "stdgates.inc";
const float[64] w = 0.3;
def layer(qubit a, qubit b, float[64] th) { rx(th) a; cx a, b; rz(w) b; }
def read(qubit a) -> bit { h a; return measure a; }
qubit[3] q;
bit b;
layer(q[0], q[1], 0.5);
layer(q[1], q[2], 0.5);
layer(q[2], q[0], 0.9);
b = read(q[1]);
if (b) layer(q[0], q[2], 0.5);
"""


def test_a_def_of_gates_is_a_block_and_one_that_measures_or_is_guarded_is_written_out():
    graph = from_qasm(DEFS, name="t.qasm")
    assert [b.id for b in graph.blocks] == ["layer", "layer_2"]
    assert check(graph, unroll=False).ok
    ops = [(n.op, n.args.get("block")) for n in graph.nodes]
    assert ops[1:4] == [("CALL", "layer"), ("CALL", "layer"), ("CALL", "layer_2")]
    assert ("MEASURE_Z", None) in ops  # read measures: written out
    guarded = [n for n in graph.nodes if n.guard is not None]
    assert [n.op for n in guarded] == ["APPLY_RX", "APPLY_CNOT", "APPLY_RZ"]  # under if


def test_openqasm_2_gate_definitions_stay_inlined():
    source = GATES.replace("OPENQASM 3.0;", "OPENQASM 2.0;").replace("stdgates", "qelib1")
    source = source.replace("qubit[3] q;", "qreg q[3];")
    graph = from_qasm(source, name="t.qasm")
    assert graph.version == "0.2" and graph.blocks == ()
    _same_state(_state(source), _state(GATES))


LOOP = """OPENQASM 3.0;
include "stdgates.inc";
gate tcx a, b {{ t a; cx a, b; tdg b; }}
qubit[2] q;
bit[2] c;
for int i in [1:{n}] {{ tcx q[0], q[1]; }}
tcx q[1], q[0];
c = measure q;
"""


def test_a_gate_called_a_hundred_thousand_times_in_a_loop_is_stored_once_and_counted_exactly():
    graph = from_qasm(LOOP.format(n=10**5), name="loop.qasm")
    assert rows(graph.nodes) + rows(graph.blocks) == 11
    report = check(graph, unroll=False)
    assert report.ok and report.totals is not None
    assert report.totals.counts.t_gates == 2 * (10**5 + 1)


def test_validate_and_estimate_give_the_t_count_of_a_loop_of_calls(tmp_path):
    path = tmp_path / "loop.qasm"
    path.write_text(LOOP.format(n=10**5), encoding="utf-8")
    code, out, _ = qmk("validate", str(path))
    assert code == 0 and "300007 nodes unrolled" in out
    code, out, _ = qmk("estimate", str(path))
    assert code == 0 and "logical tCount              200,002" in out
    code, out, _ = qmk("info", str(path))
    assert code == 0 and "(1 REPEAT row, 1 block)" in out


def test_a_short_loop_of_calls_samples_as_the_loop_written_out():
    measured = LOOP.format(n=3)
    written = measured.replace("for int i in [1:3] { tcx q[0], q[1]; }", "tcx q[0], q[1];" * 3)
    written = written.replace("gate tcx a, b { t a; cx a, b; tdg b; }", "")
    written = written.replace("tcx q[0], q[1];", "t q[0]; cx q[0], q[1]; tdg q[1];")
    written = written.replace("tcx q[1], q[0];", "h q[1]; t q[1]; cx q[1], q[0]; tdg q[0];")
    measured = measured.replace("tcx q[1], q[0];", "h q[1]; tcx q[1], q[0];")
    assert from_qasm(measured, name="t.qasm").blocks
    a = run(from_qasm(measured, name="t.qasm"), shots=300, seed=SEED, noise=False)
    b = run(from_qasm(written, name="t.qasm"), shots=300, seed=SEED, noise=False)
    assert a.counts == b.counts and len(a.counts) > 1


NESTED = """OPENQASM 3.0;
include "stdgates.inc";
gate tcx(th) a, b { t a; rz(th) b; cx a, b; tdg b; h a; }
def twice(qubit x, qubit y) { tcx(0.5) x, y; h x; tcx(0.5) y, x; }
qubit[3] q;
ry(0.4) q[1];
twice(q[0], q[1]);
twice(q[1], q[2]);
twice(q[2], q[0]);
"""


def test_a_def_that_calls_gates_is_a_block_of_calls_with_the_state_of_its_unrolling():
    graph = from_qasm(NESTED, name="t.qasm")
    twice = next(b for b in graph.blocks if b.id == "twice")
    assert [(n.op, n.args.get("block"), n.vqs) for n in twice.body] == [
        ("CALL", "tcx", ("a0", "a1")),
        ("APPLY_H", None, ("a0",)),
        ("CALL", "tcx", ("a1", "a0")),
    ]
    written = NESTED.split("def twice")[0] + "qubit[3] q;\nry(0.4) q[1];\n"
    for a, b in (("q[0]", "q[1]"), ("q[1]", "q[2]"), ("q[2]", "q[0]")):
        written += f"tcx(0.5) {a}, {b}; h {a}; tcx(0.5) {b}, {a};\n"
    _same_state(_state(NESTED), _state(written))
