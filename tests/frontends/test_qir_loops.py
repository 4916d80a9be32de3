"""QIR counted loops read folded: a block that branches back to itself on a counter with a
constant start, step and bound is one REPEAT row of its turns (issue 76).

The modules are built with pyqir's builder, as a compiler that does not unroll writes
them. Turns are checked against the loop run literally (a do-while in Python), samples
against exact theory at a stated seed, and counts by multiplication.
"""

from __future__ import annotations

import math
import operator

import pytest

pyqir = pytest.importorskip("pyqir")

from pyqir import BasicBlock, IntPredicate, IntType, const, qis, rt  # noqa: E402

from qmk.estimate import count_graph  # noqa: E402
from qmk.execution.runs import run  # noqa: E402
from qmk.frontends.errors import FrontendError  # noqa: E402
from qmk.frontends.qir import from_qir  # noqa: E402
from qmk.qvm.fold import rows, unroll  # noqa: E402
from support.exact import chi2_pvalue  # noqa: E402

SEED = 20261128
SHOTS = 2000

_TESTS = {
    "EQ": operator.eq,
    "NE": operator.ne,
    "SLT": operator.lt,
    "SLE": operator.le,
    "SGT": operator.gt,
    "SGE": operator.ge,
    "ULT": operator.lt,
    "UGE": operator.ge,
}


def looped(
    body,
    *,
    start: int = 0,
    step: int = 1,
    predicate: str = "SLT",
    bound: int = 1000,
    tests_next: bool = True,
    back_on_true: bool = True,
    text: bool = False,
) -> bytes | str:
    """A two-qubit QIR module (bitcode, or LLVM text): ``body(module)`` in a counted loop
    of one block, then both qubits measured and recorded."""
    module = pyqir.SimpleModule("loop", num_qubits=2, num_results=2)
    builder, i64 = module.builder, IntType(module.context, 64)
    loop = BasicBlock(module.context, "loop", module.entry_point)
    done = BasicBlock(module.context, "done", module.entry_point)
    builder.br(loop)
    builder.insert_at_end(loop)
    counter = builder.phi(i64)
    body(module)
    following = (
        builder.add(counter, const(i64, step))
        if step > 0
        else builder.sub(counter, const(i64, -step))
    )
    tested = following if tests_next else counter
    test = builder.icmp(getattr(IntPredicate, predicate), tested, const(i64, bound % 2**64))
    builder.condbr(test, loop, done) if back_on_true else builder.condbr(test, done, loop)
    counter.add_incoming(const(i64, start % 2**64), module.entry_block)
    counter.add_incoming(following, loop)
    builder.insert_at_end(done)
    for qubit, result in zip(module.qubits, module.results, strict=True):
        qis.mz(builder, qubit, result)
    for result in module.results:
        rt.result_record_output(builder, result, pyqir.Constant.null(pyqir.PointerType(i64)))
    return module.ir() if text else module.bitcode()


def t_and_cx(module) -> None:
    qis.t(module.builder, module.qubits[0])
    qis.cx(module.builder, module.qubits[0], module.qubits[1])


def literal_turns(start, step, predicate, bound, tests_next, back_on_true) -> int:
    """The loop run as written: a do-while whose test reads the counter before or after
    its step."""
    turns, counter = 0, start
    while True:
        turns += 1
        following = counter + step
        if _TESTS[predicate](following if tests_next else counter, bound) != back_on_true:
            return turns
        counter = following


def test_a_counted_loop_of_gates_is_one_repeat_row():
    graph = from_qir(looped(t_and_cx), name="loop.bc")
    (loop,) = [n for n in graph.nodes if n.op == "REPEAT"]
    assert loop.args == {"count": 1000}
    assert [n.op for n in loop.body] == ["APPLY_T", "APPLY_CNOT"]
    assert [n.op for n in graph.nodes if n.op != "REPEAT"] == [
        "ALLOC_LQ",
        "MEASURE_Z",
        "MEASURE_Z",
        "FREE_LQ",
    ]
    assert len(unroll(graph, max_nodes=None).nodes) == 4 + 2 * 1000


@pytest.mark.parametrize(
    ("start", "step", "predicate", "bound", "tests_next", "back_on_true"),
    [
        (0, 1, "SLT", 1000, True, True),
        (0, 1, "SLE", 10, True, True),
        (0, 1, "SLT", 5, False, True),  # tests the turn's own value: one more turn
        (10, -1, "SGT", 0, True, True),
        (0, 2, "NE", 10, True, True),
        (0, 1, "SGE", 1000, True, False),  # leaves when the test holds
        (0, 1, "EQ", 7, True, False),
        (5, 1, "SLT", 3, True, True),  # the body runs once before the first test
        (3, 3, "ULT", 100, True, True),
        (-5, 1, "SLT", 5, True, True),
    ],
)
def test_a_counted_loop_runs_as_many_turns_as_the_loop_run_as_written(
    start, step, predicate, bound, tests_next, back_on_true
):
    module = looped(
        t_and_cx,
        start=start,
        step=step,
        predicate=predicate,
        bound=bound,
        tests_next=tests_next,
        back_on_true=back_on_true,
    )
    turns = literal_turns(start, step, predicate, bound, tests_next, back_on_true)
    assert count_graph(from_qir(module)).t_count == turns


def test_a_folded_loop_samples_as_exact_theory():
    theta, turns = 0.0025, 300  # rx(0.0025) 300 times is rx(0.75) on qubit 0, then copied

    def rotate(module):
        qis.rx(module.builder, theta, module.qubits[0])

    graph = from_qir(looped(rotate, bound=turns))
    assert [n.args for n in graph.nodes if n.op == "REPEAT"] == [{"count": turns}]
    one = math.sin(theta * turns / 2) ** 2
    counts = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    assert chi2_pvalue(counts, {"00": 1 - one, "10": one}) > 1e-3  # first result leftmost


def test_a_billion_turn_loop_is_read_and_counted_folded():
    graph = from_qir(looped(t_and_cx, bound=10**9))
    assert rows(graph.nodes) == 7
    counts = count_graph(graph)
    assert counts.t_count == 10**9


def _refusal(module: bytes) -> FrontendError:
    with pytest.raises(FrontendError) as caught:
        from_qir(module, name="loop.bc")
    assert caught.value.code == "QL104"
    return caught.value


def test_a_loop_that_measures_or_reads_its_counter_is_refused_naming_the_instruction():
    def measures(module):
        qis.mz(module.builder, module.qubits[0], module.results[0])

    error = _refusal(looped(measures))
    assert "gate calls only" in str(error) and "__quantum__qis__mz__body" in str(error)
    reads = looped(t_and_cx, text=True).replace(
        "  call void @__quantum__qis__t__body(ptr null)\n",
        "  %angle = sitofp i64 %0 to double\n"
        "  call void @__quantum__qis__rx__body(double %angle, ptr null)\n",
    )
    reads += "declare void @__quantum__qis__rx__body(double, ptr)\n"
    error = _refusal(reads)
    assert "gate calls only" in str(error) and "sitofp" in str(error)


def test_a_counter_that_never_meets_its_bound_is_refused_not_run():
    error = _refusal(looped(t_and_cx, start=0, step=2, predicate="NE", bound=7))
    assert "backward branch to block loop" in str(error) and "wraps around" in str(error)
