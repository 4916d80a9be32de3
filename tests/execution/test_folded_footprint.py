"""A program kept folded has a footprint on the logical machine from its one-turn view,
multiplied: the unrolled program's T states, measurements and tiles, and a duration no
shorter than the unrolled schedule's; it has no run there (QV505)."""

from __future__ import annotations

import pytest

from qmk.execution.logical import LogicalTarget
from qmk.execution.request import RunRequest
from qmk.qvm.errors import UnrollError
from qmk.qvm.fold import unroll
from qmk.qvm.graph import Graph, Node, Resources
from qmk.qvm.limits import Limits
from qmk.qvm.verify import FoldedProgram, verify, verify_folded

REQUEST = RunRequest(program_digest="ab" * 32, shots=10, seed=5, noise=False)


def nested(outer: int, inner: int) -> Graph:
    """``outer`` turns of (H q1, ``inner`` turns of (T q0, CNOT q0 q1), measure q1)."""
    body = (
        Node(id="t", op="APPLY_T", vqs=("q0",)),
        Node(id="c", op="APPLY_CNOT", vqs=("q0", "q1")),
    )
    turn = (
        Node(id="h", op="APPLY_H", vqs=("q1",)),
        Node(id="i", op="REPEAT", args={"count": inner}, body=body),
        Node(id="m", op="MEASURE_Z", vqs=("q1",), produces=("e",)),
    )
    return Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=("q0", "q1")),
            Node(id="o", op="REPEAT", args={"count": outer}, body=turn),
            Node(id="f", op="FREE_LQ", vqs=("q0", "q1")),
        ),
        resources=Resources(vqs=("q0", "q1"), events=("e",)),
        caps=("CAP_ALLOC",),
    )


def test_a_folded_footprint_counts_what_the_unrolled_one_counts_within_its_duration():
    graph = nested(7, 5)
    folded = verify_folded(graph, limits=Limits(max_unrolled_nodes=10))
    assert isinstance(folded, FoldedProgram)
    flat = verify(unroll(graph, max_nodes=None))
    target = LogicalTarget()
    fold_fp = target.compile(folded, REQUEST).footprint
    flat_fp = target.compile(flat, REQUEST).footprint
    assert fold_fp.t_states == flat_fp.t_states == 7 * 5
    assert fold_fp.measurements == flat_fp.measurements == 7
    assert (fold_fp.tiles, fold_fp.physical_qubits) == (flat_fp.tiles, flat_fp.physical_qubits)
    assert fold_fp.operations == 2 + 7 * (2 + 2 * 5)
    # turns follow each other with no overlap: an upper bound of the unrolled schedule,
    # and no more than every operation's cycle one after another
    assert flat_fp.duration_cycles <= fold_fp.duration_cycles <= fold_fp.operations


def test_a_folded_footprint_of_10_12_t_gates_is_a_few_steps():
    fp = LogicalTarget().compile(verify_folded(nested(10**6, 10**6)), REQUEST).footprint
    assert fp.t_states == 10**12
    assert len(fp.steps) <= 4


def test_a_program_kept_folded_has_no_run_on_the_logical_machine():
    executable = LogicalTarget().compile(verify_folded(nested(10**6, 10**3)), REQUEST)
    with pytest.raises(UnrollError) as caught:
        executable.run(10, 5)
    assert caught.value.code == "QV505"
