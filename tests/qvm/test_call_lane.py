"""The verifier's call lane: a block's body checked once, each CALL row walked as one
operation of its block's effect, and totals that equal the inlined program's."""

from __future__ import annotations

import random

import pytest

from qmk.qvm.fold import one_turn, unroll
from qmk.qvm.folded import Totals
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node, Resources
from qmk.qvm.verify import FoldedProgram, Report, check, verify_folded

GATES_1 = ("APPLY_H", "APPLY_S", "APPLY_T", "APPLY_TDG", "APPLY_X", "APPLY_SDG")
GATES_2 = ("APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP")


def call(node_id: str, block: str, *qubits: str) -> Node:
    return Node(id=node_id, op="CALL", args={"block": block}, vqs=qubits)


def block(name: str, formals: tuple[str, ...], *body: Node) -> Node:
    return Node(id=name, op="BLOCK", vqs=formals, body=body)


def program(*rows: Node, blocks: tuple[Node, ...], n: int = 4, measure: bool = True) -> Graph:
    qubits = tuple(f"q{i}" for i in range(n))
    events = tuple(f"m{i}" for i in range(n)) if measure else ()
    tail = tuple(
        Node(id=f"z{i}", op="MEASURE_Z", vqs=(q,), produces=(e,))
        for i, (q, e) in enumerate(zip(qubits, events, strict=False))
    )
    return Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=qubits),
            *rows,
            *tail,
            Node(id="f", op="FREE_LQ", vqs=qubits),
        ),
        resources=Resources(vqs=qubits, events=events),
        caps=("CAP_ALLOC",),
        blocks=blocks,
    )


def random_block(rng: random.Random, name: str, arity: int, size: int) -> Node:
    formals = tuple(f"{name}_{i}" for i in range(arity))
    body = []
    for k in range(size):
        if arity > 1 and rng.random() < 0.4:
            a, b = rng.sample(formals, 2)
            body.append(Node(id=f"g{k}", op=rng.choice(GATES_2), vqs=(a, b)))
        elif rng.random() < 0.2:
            angle = rng.choice((0.5, 3.141592653589793 / 2))
            body.append(
                Node(id=f"g{k}", op="APPLY_RZ", vqs=(rng.choice(formals),), args={"theta": angle})
            )
        else:
            body.append(Node(id=f"g{k}", op=rng.choice(GATES_1), vqs=(rng.choice(formals),)))
    return block(name, formals, *body)


def random_program(seed: int, calls: int = 40) -> Graph:
    """Blocks of 1-3 qubits (one calling another), called on random distinct qubits,
    some calls inside REPEAT rows (nested too), gates between them."""
    rng = random.Random(seed)
    inner = random_block(rng, "inner", 2, 3)
    outer_formals = ("o0", "o1", "o2")
    outer = block(
        "outer",
        outer_formals,
        Node(id="h", op="APPLY_H", vqs=("o2",)),
        call("c1", "inner", "o0", "o2"),
        call("c2", "inner", "o2", "o1"),
    )
    single = random_block(rng, "one", 1, 2)
    names = {"inner": 2, "outer": 3, "one": 1}
    qubits = [f"q{i}" for i in range(5)]

    def rows(count: int, prefix: str, depth: int) -> list[Node]:
        out: list[Node] = []
        for k in range(count):
            roll = rng.random()
            if roll < 0.1 and depth < 2:
                body = rows(rng.randint(1, 4), f"{prefix}r{k}.", depth + 1)
                out.append(
                    Node(
                        id=f"{prefix}r{k}",
                        op="REPEAT",
                        args={"count": rng.randint(2, 7)},
                        body=tuple(body),
                    )
                )
            elif roll < 0.25:
                out.append(Node(id=f"{prefix}g{k}", op="APPLY_T", vqs=(rng.choice(qubits),)))
            else:
                name = rng.choice(sorted(names))
                out.append(call(f"{prefix}k{k}", name, *rng.sample(qubits, names[name])))
        return out

    return program(*rows(calls, "", 0), blocks=(inner, outer, single), n=5)


def lane(graph: Graph) -> Report:
    report = check(graph, unroll=False, turn=False)
    assert report.turn is None  # the call lane's report: totals alone, no bound view
    return report


def same_totals(lane_totals: Totals, inlined: Totals) -> None:
    assert lane_totals.nodes == inlined.nodes
    assert dict(lane_totals.counts.by_op) == dict(inlined.counts.by_op)
    assert lane_totals.counts == inlined.counts or (
        lane_totals.counts.to_json() == inlined.counts.to_json()
    )
    assert lane_totals.peak_live_qubits == inlined.peak_live_qubits
    assert lane_totals.epochs == inlined.epochs
    assert lane_totals.required_caps == inlined.required_caps


def inlined_totals(graph: Graph) -> Totals:
    """The totals of the same program with every call written out (the unrolling binds
    each call's body at its site), REPEAT rows kept as the full path counts them."""
    report = check(graph, unroll=False)  # the full path: every call bound, then walked
    assert report.ok and report.totals is not None and report.turn is not None
    flat = check(unroll(graph, max_nodes=None))
    assert flat.program is not None
    assert report.totals.counts.to_json() == flat.program.counts.to_json()
    return report.totals


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_a_random_program_of_calls_counts_the_same_as_its_inlined_form(seed: int) -> None:
    graph = random_program(seed)
    report = lane(graph)
    assert report.ok and report.findings == ()
    assert report.totals is not None
    same_totals(report.totals, inlined_totals(graph))


def test_nested_calls_inside_nested_repeats_multiply_like_the_unrolled_program() -> None:
    inner = block(
        "inner",
        ("x", "y"),
        Node(id="t", op="APPLY_T", vqs=("x",)),
        Node(id="c", op="APPLY_CNOT", vqs=("x", "y")),
    )
    outer = block(
        "outer",
        ("u", "v", "w"),
        call("a", "inner", "u", "v"),
        call("b", "inner", "w", "u"),
        Node(id="s", op="APPLY_S", vqs=("v",)),
    )
    loop = Node(
        id="r",
        op="REPEAT",
        args={"count": 3},
        body=(
            Node(
                id="r2",
                op="REPEAT",
                args={"count": 5},
                body=(call("k", "outer", "q0", "q1", "q2"),),
            ),
            call("k2", "inner", "q3", "q0"),
        ),
    )
    graph = program(loop, call("k3", "outer", "q2", "q3", "q1"), blocks=(inner, outer))
    totals = lane(graph).totals
    assert totals is not None
    # outer: 2 T, 2 CNOT, 1 S; 16 outer calls and 3 inner calls outside it
    assert totals.counts.t_gates == 16 * 2 + 3
    assert totals.counts.by_op["APPLY_CNOT"] == 16 * 2 + 3
    assert totals.counts.by_op["APPLY_S"] == 16
    same_totals(totals, inlined_totals(graph))


def test_a_block_of_rotations_counts_its_non_clifford_angles_once_a_call() -> None:
    rot = block(
        "rot",
        ("a",),
        Node(id="r1", op="APPLY_RZ", vqs=("a",), args={"theta": 0.25}),
        Node(id="r2", op="APPLY_RZ", vqs=("a",), args={"theta": 3.141592653589793}),
    )
    graph = program(*(call(f"k{i}", "rot", f"q{i % 4}") for i in range(10)), blocks=(rot,))
    totals = lane(graph).totals
    assert totals is not None
    assert totals.counts.non_clifford == 10
    same_totals(totals, inlined_totals(graph))


def test_a_call_after_its_qubit_is_freed_keeps_its_code() -> None:
    blocks = (block("b", ("a",), Node(id="h", op="APPLY_H", vqs=("a",))),)
    graph = program(call("k", "b", "q0"), blocks=blocks, measure=False)
    freed = Graph(
        version="0.3",
        nodes=(*graph.nodes, call("late", "b", "q0")),
        resources=graph.resources,
        caps=graph.caps,
        blocks=blocks,
    )
    full = check(freed, unroll=False)
    fast = check(freed, unroll=False, turn=False)
    assert not fast.ok
    assert [f.code for f in fast.findings] == [f.code for f in full.findings]
    assert any(f.node_id == "late/h" for f in fast.findings)  # named where it is bound


def test_a_call_of_an_undeclared_qubit_keeps_its_code() -> None:
    blocks = (block("b", ("a",), Node(id="h", op="APPLY_H", vqs=("a",))),)
    graph = program(call("k", "b", "nowhere"), blocks=blocks)
    assert {f.name for f in check(graph, unroll=False, turn=False).errors} >= {"undeclared-handle"}


@pytest.mark.parametrize(
    ("blocks", "rows", "name"),
    [
        # a block that leaks a qubit it allocates
        (
            (block("b", ("a",), Node(id="n", op="ALLOC_LQ", vqs=("a",))),),
            (call("k", "b", "q0"),),
            "block-invalid",
        ),
        # a block that measures into an event
        (
            (block("b", ("a",), Node(id="m", op="MEASURE_Z", vqs=("a",), produces=("e",))),),
            (call("k", "b", "q0"),),
            "block-invalid",
        ),
        # a call with the wrong arity
        (
            (block("b", ("a", "c"), Node(id="x", op="APPLY_CNOT", vqs=("a", "c"))),),
            (call("k", "b", "q0"),),
            "call-invalid",
        ),
        # a call of no block
        (
            (block("b", ("a",), Node(id="h", op="APPLY_H", vqs=("a",))),),
            (call("k", "nope", "q0"),),
            "call-invalid",
        ),
        # a block that calls itself through another
        (
            (
                block("b", ("a",), call("x", "c", "a")),
                block("c", ("a",), call("y", "b", "a")),
            ),
            (call("k", "b", "q0"),),
            "block-recursive",
        ),
        # an op the table does not know, inside a block
        (
            (block("b", ("a",), Node(id="h", op="APPLY_HH", vqs=("a",))),),
            (call("k", "b", "q0"),),
            "unknown-op",
        ),
        # two calls of one id
        (
            (block("b", ("a",), Node(id="h", op="APPLY_H", vqs=("a",))),),
            (call("k", "b", "q0"), call("k", "b", "q1")),
            "duplicate-node-id",
        ),
    ],
)
def test_a_bad_program_of_calls_keeps_its_code_on_the_call_lane(blocks, rows, name) -> None:
    graph = program(*rows, blocks=blocks)
    fast = check(graph, unroll=False, turn=False)
    full = check(graph, unroll=False)
    assert not fast.ok
    assert name in {f.name for f in fast.errors}
    assert sorted(f.code for f in fast.findings) == sorted(f.code for f in full.findings)


def test_a_guarded_row_beside_calls_takes_the_full_steps_and_counts_alike() -> None:
    blocks = (block("b", ("a", "c"), Node(id="x", op="APPLY_CNOT", vqs=("a", "c"))),)
    graph = program(
        Node(id="m", op="MEASURE_Z", vqs=("q0",), produces=("e",)),
        Node(
            id="g", op="APPLY_X", vqs=("q1",), guard=Guard(terms=(GuardTerm(event="e", equals=1),))
        ),
        *(call(f"k{i}", "b", f"q{i % 4}", f"q{(i + 1) % 4}") for i in range(6)),
        blocks=blocks,
        measure=False,
    )
    graph = Graph(
        version=graph.version,
        nodes=graph.nodes,
        resources=Resources(vqs=graph.resources.vqs, events=("e",)),
        caps=graph.caps,
        blocks=blocks,
    )
    report = lane(graph)
    assert report.ok and report.totals is not None
    same_totals(report.totals, inlined_totals(graph))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verifying_calls_to_run_gives_the_unrolled_program_verified_once(seed: int) -> None:
    rng = random.Random(seed)
    blocks = (random_block(rng, "b", 2, 4), random_block(rng, "c", 3, 3))
    arity = {"b": 2, "c": 3}
    rows = []
    for k in range(30):
        name = rng.choice(("b", "c"))
        rows.append(call(f"k{k}", name, *rng.sample(("q0", "q1", "q2", "q3"), arity[name])))
    graph = program(*rows, blocks=blocks)
    report = check(graph)  # unroll: what a run verifies
    written_out = check(unroll(graph, max_nodes=None))
    assert report.program is not None and written_out.program is not None
    assert report.program.graph.nodes == written_out.program.graph.nodes
    assert report.program.counts == written_out.program.counts
    assert report.program.folded is graph
    assert report.totals is not None
    assert report.totals.counts == written_out.program.counts


def test_a_call_after_free_keeps_its_code_when_verified_to_run() -> None:
    blocks = (block("b", ("a",), Node(id="h", op="APPLY_H", vqs=("a",))),)
    graph = program(call("k", "b", "q0"), blocks=blocks, measure=False)
    freed = Graph(
        version="0.3",
        nodes=(*graph.nodes, call("late", "b", "q0")),
        resources=graph.resources,
        caps=graph.caps,
        blocks=blocks,
    )
    report = check(freed)
    assert report.program is None
    assert any(f.node_id == "late/h" and f.is_error for f in report.findings)


def test_a_folded_program_of_calls_keeps_its_one_turn_view_verified() -> None:
    graph = random_program(3)
    calls = [row for row in graph.nodes[1:-6] if row.op == "CALL"]
    flat = program(*calls, blocks=graph.blocks, n=5)
    folded = verify_folded(flat, unroll=False)  # what admission reads
    assert isinstance(folded, FoldedProgram)
    assert folded.graph.nodes == one_turn(flat).nodes
    written_out = check(unroll(flat, max_nodes=None)).program
    assert written_out is not None
    assert folded.totals.counts == written_out.counts
    assert folded.turn.epochs == written_out.epochs
