"""Blocks (program.blocks, CALL rows): stored once, read and written in every form,
checked by their rules once, counted by multiplication, bound at each call site."""

from __future__ import annotations

import json
import time

import pytest

from qmk.qvm.asm import assemble, disassemble
from qmk.qvm.fold import calls_bound, one_turn, rows, unroll, unrolled_size
from qmk.qvm.graph import Graph, Node, Resources, loads
from qmk.qvm.graph_file import dumps
from qmk.qvm.limits import Limits
from qmk.qvm.schema import load_schema
from qmk.qvm.verify import check, verify, verify_folded

TCX = Node(
    id="tcx",
    op="BLOCK",
    vqs=("a", "b"),
    body=(
        Node(id="t", op="APPLY_T", vqs=("a",)),
        Node(id="c", op="APPLY_CNOT", vqs=("a", "b")),
        Node(id="d", op="APPLY_TDG", vqs=("b",)),
    ),
)


def call(node_id: str, block: str, *qubits: str) -> Node:
    return Node(id=node_id, op="CALL", args={"block": block}, vqs=qubits)


def program(*rows_: Node, blocks: tuple[Node, ...] = (TCX,), n: int = 3) -> Graph:
    qubits = tuple(f"q{i}" for i in range(n))
    return Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=qubits),
            *rows_,
            Node(id="f", op="FREE_LQ", vqs=qubits),
        ),
        resources=Resources(vqs=qubits),
        caps=("CAP_ALLOC",),
        blocks=blocks,
    )


LOOPED = program(
    Node(id="r", op="REPEAT", args={"count": 10**5}, body=(call("k", "tcx", "q0", "q1"),)),
    call("k2", "tcx", "q2", "q0"),
)


def codes(graph: Graph) -> list[str]:
    return sorted({f.code for f in check(graph, unroll=False).findings})


def test_blocks_round_trip_through_json_and_assembly_text_to_the_same_canonical_text():
    text = dumps(LOOPED)
    assert '"blocks": [' in text and '"op": "CALL"' in text
    assert dumps(loads(text)) == text
    asm = disassemble(LOOPED)
    assert "tcx: BLOCK vq:a, vq:b {" in asm and 'k2: CALL vq:q2, vq:q0, block="tcx"' in asm
    assert dumps(assemble(asm)) == text


def test_the_schema_takes_blocks_and_calls_and_refuses_a_call_with_a_body():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(load_schema())
    data = json.loads(dumps(LOOPED))
    assert list(validator.iter_errors(data)) == []
    data["program"]["nodes"][2]["body"] = [{"id": "x", "op": "APPLY_H", "vqs": ["q0"]}]
    assert list(validator.iter_errors(data)) != []


def test_blocks_need_version_0_3():
    data = json.loads(dumps(LOOPED))
    data["version"] = "0.2"
    with pytest.raises(Exception, match=r"need version '0\.3'"):
        loads(json.dumps(data))


def test_a_block_body_is_stored_once_and_its_calls_counted_by_multiplication():
    assert rows(LOOPED.nodes) + rows(LOOPED.blocks) == 5 + 4
    report = check(LOOPED, unroll=False)
    assert report.ok and report.totals is not None
    totals = report.totals
    assert totals.rows == 9 and totals.blocks == 1
    assert totals.counts.t_gates == 2 * (10**5 + 1)
    assert totals.counts.by_op["APPLY_CNOT"] == 10**5 + 1
    assert totals.nodes == unrolled_size(LOOPED) == 3 * (10**5 + 1) + 2


def test_a_call_binds_the_block_at_its_call_site_in_the_one_turn_view_and_the_unrolling():
    view = one_turn(LOOPED)
    assert [(n.id, n.vqs) for n in view.nodes][1:4] == [
        ("k/t", ("q0",)),
        ("k/c", ("q0", "q1")),
        ("k/d", ("q1",)),
    ]
    small = program(
        Node(id="r", op="REPEAT", args={"count": 2}, body=(call("k", "tcx", "q0", "q1"),)),
        call("k2", "tcx", "q2", "q0"),
    )
    flat = unroll(small, max_nodes=100)
    assert flat.blocks == ()
    assert [(n.id, n.op, n.vqs) for n in flat.nodes][1:5] == [
        ("k/t@0", "APPLY_T", ("q0",)),
        ("k/c@0", "APPLY_CNOT", ("q0", "q1")),
        ("k/d@0", "APPLY_TDG", ("q1",)),
        ("k/t@1", "APPLY_T", ("q0",)),
    ]
    assert [(n.op, n.vqs) for n in flat.nodes][-4:-1] == [
        ("APPLY_T", ("q2",)),
        ("APPLY_CNOT", ("q2", "q0")),
        ("APPLY_TDG", ("q0",)),
    ]
    assert verify(small).folded is small  # verified unrolled, digested folded


def test_calls_inside_blocks_nest_and_bind_through_each_level():
    outer = Node(
        id="twice",
        op="BLOCK",
        vqs=("x", "y"),
        body=(call("c1", "tcx", "x", "y"), call("c2", "tcx", "y", "x")),
    )
    graph = program(call("k", "twice", "q1", "q2"), blocks=(TCX, outer))
    assert check(graph, unroll=False).ok
    bound = calls_bound(graph)
    assert [(n.id, n.vqs) for n in bound.nodes][1:3] == [
        ("k/c1/t", ("q1",)),
        ("k/c1/c", ("q1", "q2")),
    ]
    assert [n.vqs for n in bound.nodes][4:7] == [("q2",), ("q2", "q1"), ("q1",)]


def test_a_block_that_touches_a_qubit_not_its_formal_is_reported():
    bad = Node(id="bad", op="BLOCK", vqs=("a",), body=(Node(id="h", op="APPLY_H", vqs=("q1",)),))
    report = check(program(blocks=(TCX, bad)), unroll=False)
    (finding,) = [f for f in report.findings if f.code == "QV704"]
    assert "'q1'" in finding.message and finding.node_id == "bad"
    assert not report.ok


@pytest.mark.parametrize(
    "body",
    [
        (Node(id="m", op="MEASURE_Z", vqs=("a",), produces=("e",)),),
        (Node(id="al", op="ALLOC_LQ", vqs=("a",)),),
    ],
    ids=["an event", "a lifetime change"],
)
def test_a_block_that_measures_into_an_event_or_allocates_is_reported(body):
    bad = Node(id="bad", op="BLOCK", vqs=("a",), body=body)
    assert "QV704" in codes(program(blocks=(TCX, bad)))


def test_two_blocks_of_one_name_are_reported():
    assert "QV704" in codes(program(blocks=(TCX, TCX)))


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (call("k", "nope", "q0", "q1"), "no block"),
        (call("k", "tcx", "q0"), "takes 2 qubit(s), the call gives 1"),
        (call("k", "tcx", "q0", "q0"), "not distinct"),
        (Node(id="k", op="CALL", args={"block": "tcx", "n": 1}, vqs=("q0", "q1")), "args"),
    ],
    ids=["unknown block", "arity", "repeated qubit", "extra args"],
)
def test_a_malformed_call_is_reported_with_its_id(row, words):
    report = check(program(row), unroll=False)
    (finding,) = [f for f in report.findings if f.code == "QV705"]
    assert words in finding.message and finding.node_id == "k"


def test_a_recursive_block_is_refused_directly_or_through_another():
    me = Node(id="me", op="BLOCK", vqs=("a",), body=(call("c", "me", "a"),))
    ping = Node(id="ping", op="BLOCK", vqs=("a",), body=(call("c", "pong", "a"),))
    pong = Node(id="pong", op="BLOCK", vqs=("a",), body=(call("c", "ping", "a"),))
    report = check(program(call("k", "me", "q0"), blocks=(me,)), unroll=False)
    assert [f.node_id for f in report.findings if f.code == "QV706"] == ["me"]
    report = check(program(call("k", "ping", "q0"), blocks=(ping, pong)), unroll=False)
    assert [f.node_id for f in report.findings if f.code == "QV706"] == ["ping", "pong"]
    assert not report.ok


def test_a_chain_of_doubling_calls_is_sized_at_once_and_refused_over_the_node_limit():
    chain = [Node(id="b0", op="BLOCK", vqs=("a",), body=(Node(id="t", op="APPLY_T", vqs=("a",)),))]
    for k in range(1, 61):
        body = (call("x", f"b{k - 1}", "a"), call("y", f"b{k - 1}", "a"))
        chain.append(Node(id=f"b{k}", op="BLOCK", vqs=("a",), body=body))
    graph = program(call("k", "b60", "q0"), blocks=tuple(chain), n=1)
    start = time.process_time()
    assert unrolled_size(graph) == 2**60 + 2
    report = check(graph, limits=Limits(max_nodes=10**6), unroll=False)
    assert time.process_time() - start < 5  # (linear in the 122 rows, not in 2**60)
    assert [f.code for f in report.findings] == ["QV503"]
    assert "2" in report.findings[0].message


def test_a_folded_program_of_a_block_called_a_billion_times_is_counted_not_unrolled():
    graph = program(
        Node(id="r", op="REPEAT", args={"count": 10**9}, body=(call("k", "tcx", "q0", "q1"),))
    )
    folded = verify_folded(graph, limits=Limits(max_unrolled_nodes=10**6))
    assert folded.counts.t_gates == 2 * 10**9


def test_a_program_of_calls_alone_counts_each_call_and_each_fence_in_a_block():
    fenced = Node(
        id="fenced",
        op="BLOCK",
        vqs=("a",),
        body=(Node(id="t", op="APPLY_T", vqs=("a",)), Node(id="e", op="FENCE_EPOCH")),
    )
    graph = program(call("k1", "fenced", "q0"), call("k2", "fenced", "q1"), blocks=(fenced,))
    totals = check(graph, unroll=False).totals
    assert totals is not None and totals.repeats == 0
    assert (totals.counts.t_gates, totals.epochs, totals.nodes) == (2, 3, 6)
    assert verify(graph).counts == totals.counts  # the unrolling's own count
