"""Logical counts of programs with REPEAT rows, counted folded: exactly the unrolled
program's counts, without unrolling (qmk.estimate.counts)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from qmk.estimate import count_graph, estimate
from qmk.estimate.counts import count_nodes
from qmk.qvm.errors import UnrollError
from qmk.qvm.fold import unroll
from qmk.qvm.generate import random_folded_graph
from qmk.qvm.graph import Graph, Node, Resources

QUBITS = ("q0", "q1", "q2", "q3")


def _row(rng: random.Random, depth: int, ids: itertools.count) -> list[Node]:
    """One to four random rows: the tracer's every kind of step, scratch qubits, loops."""
    k, n = rng.random(), next(ids)
    if k < 0.15 and depth < 3:
        body = [row for _ in range(rng.randint(1, 3)) for row in _row(rng, depth + 1, ids)]
        return [Node(id=f"r{n}", op="REPEAT", args={"count": rng.randint(1, 40)}, body=tuple(body))]
    if k < 0.35:
        return [Node(id=f"n{n}", op="APPLY_T", vqs=(rng.choice(QUBITS),))]
    if k < 0.5:
        theta = rng.choice([0.1, math.pi / 4, math.pi / 2, 0.3])
        return [Node(id=f"n{n}", op="APPLY_RZ", args={"theta": theta}, vqs=(rng.choice(QUBITS),))]
    if k < 0.65:
        return [Node(id=f"n{n}", op="APPLY_CNOT", vqs=tuple(rng.sample(QUBITS, 2)))]
    if k < 0.75:
        return [Node(id=f"n{n}", op="APPLY_CCZ", vqs=tuple(rng.sample(QUBITS, 3)))]
    if k < 0.85:
        return [Node(id=f"n{n}", op="MEASURE_Z", vqs=(rng.choice(QUBITS),))]
    if k < 0.95:
        tmp = (f"t{n}",)
        return [
            Node(id=f"a{n}", op="ALLOC_LQ", vqs=tmp),
            Node(id=f"t{n}", op="APPLY_T", vqs=tmp),
            Node(id=f"c{n}", op="APPLY_CNOT", vqs=(tmp[0], rng.choice(QUBITS))),
            Node(id=f"f{n}", op="FREE_LQ", vqs=tmp),
        ]
    return [Node(id=f"n{n}", op="APPLY_H", vqs=(rng.choice(QUBITS),))]


def gate_program(seed: int) -> Graph:
    """A random program of loops, after a random run of rotations that leaves the layers
    uneven (so a loop's qubits climb through layers others made)."""
    rng, ids = random.Random(seed), itertools.count()
    rows = [Node(id="alloc", op="ALLOC_LQ", vqs=QUBITS)]
    rows += [
        Node(id=f"p{i}", op="APPLY_RZ", args={"theta": 0.1}, vqs=(rng.choice(QUBITS),))
        for i in range(rng.randint(0, 40))
    ]
    for _ in range(rng.randint(2, 6)):
        rows += _row(rng, 0, ids)
        if rng.random() < 0.5:
            body = tuple(row for _ in range(rng.randint(1, 4)) for row in _row(rng, 1, ids))
            rows.append(Node(id=f"L{next(ids)}", op="REPEAT", args={"count": 200}, body=body))
    return Graph(version="0.3", nodes=tuple(rows), resources=Resources(vqs=QUBITS))


@pytest.mark.parametrize("seed", range(40))
def test_folded_counts_equal_the_unrolled_programs_on_random_loops(seed):
    graph = gate_program(seed)
    assert count_graph(graph) == count_graph(unroll(graph, max_nodes=None))


@pytest.mark.parametrize("seed", range(8))
def test_folded_counts_equal_the_unrolled_programs_on_random_verified_programs(seed):
    graph = random_folded_graph(seed=seed, nodes=200, max_count=5)
    assert count_graph(graph) == count_graph(unroll(graph, max_nodes=None))


def test_the_estimate_of_a_folded_loop_is_the_unrolled_ones():
    body = (
        Node(id="t", op="APPLY_T", vqs=("q0",)),
        Node(id="cx", op="APPLY_CNOT", vqs=("q0", "q1")),
        Node(id="r", op="APPLY_RZ", args={"theta": 0.2}, vqs=("q1",)),
    )
    graph = Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=("q0", "q1")),
            Node(id="loop", op="REPEAT", args={"count": 500}, body=body),
        ),
        resources=Resources(vqs=("q0", "q1")),
    )
    folded = estimate(count_graph(graph), None)
    flat = estimate(count_graph(unroll(graph, max_nodes=None)), None)
    assert folded["status"] == "success" and folded == flat


def test_a_trillion_t_gates_in_nested_loops_are_counted_exactly():
    inner = Node(
        id="i",
        op="REPEAT",
        args={"count": 10**6},
        body=(
            Node(id="t", op="APPLY_T", vqs=("q0",)),
            Node(id="cx", op="APPLY_CNOT", vqs=("q0", "q1")),
        ),
    )
    outer = Node(id="o", op="REPEAT", args={"count": 10**6}, body=(inner,))
    graph = Graph(
        version="0.3",
        nodes=(Node(id="a", op="ALLOC_LQ", vqs=("q0", "q1")), outer),
        resources=Resources(vqs=("q0", "q1")),
    )
    counts = count_graph(graph)
    assert counts.t_count == 10**12 and counts.num_qubits == 2 and counts.rotation_depth == 0


def test_a_body_whose_turns_never_settle_is_refused_past_the_step_budget():
    # each turn allocates a qubit it never frees: its state never repeats
    body = (
        Node(id="a", op="ALLOC_LQ", vqs=("leak",)),
        Node(id="t", op="APPLY_T", vqs=("leak",)),
    )
    rows = (Node(id="r", op="REPEAT", args={"count": 10**9}, body=body),)
    with pytest.raises(UnrollError) as info:
        count_nodes(rows, max_steps=10_000)
    assert info.value.code == "QV505"


def _nest(rng: random.Random, qubits: tuple[str, ...], depth: int, ids: itertools.count) -> Node:
    """A REPEAT row (count 1-50) whose body mixes gates on a few of ``qubits`` with up to
    two loops nested ``depth`` more deep: inner loops on one qubit skew the layer fronts."""
    rows: list[Node] = []
    for _ in range(rng.randint(1, 4)):
        k, n = rng.random(), next(ids)
        if k < 0.3 and depth:
            rows.append(
                _nest(rng, tuple(rng.sample(qubits, rng.randint(1, len(qubits)))), depth - 1, ids)
            )
        elif k < 0.5:
            rows.append(Node(id=f"t{n}", op="APPLY_T", vqs=(rng.choice(qubits),)))
        elif k < 0.65:
            theta = rng.choice([0.1, math.pi / 4, 0.3])
            rows.append(
                Node(id=f"z{n}", op="APPLY_RZ", args={"theta": theta}, vqs=(rng.choice(qubits),))
            )
        elif k < 0.85 and len(qubits) > 1:
            rows.append(Node(id=f"c{n}", op="APPLY_CNOT", vqs=tuple(rng.sample(qubits, 2))))
        elif k < 0.95 and len(qubits) > 2:
            rows.append(Node(id=f"x{n}", op="APPLY_CCZ", vqs=tuple(rng.sample(qubits, 3))))
        else:
            rows.append(Node(id=f"m{n}", op="MEASURE_Z", vqs=(rng.choice(qubits),)))
    return Node(
        id=f"r{next(ids)}", op="REPEAT", args={"count": rng.randint(1, 50)}, body=tuple(rows)
    )


def nested_program(seed: int) -> Graph:
    """Loops nested 1-3 deep over 2-5 qubits, each body's gates on a random few of them."""
    rng, ids = random.Random(seed), itertools.count()
    qubits = tuple(f"q{i}" for i in range(rng.randint(2, 5)))
    rows = [Node(id="alloc", op="ALLOC_LQ", vqs=qubits)]
    for _ in range(rng.randint(1, 3)):
        rows.append(_nest(rng, qubits, rng.randint(0, 2), ids))
        if rng.random() < 0.5:
            rows.append(
                Node(
                    id=f"s{next(ids)}",
                    op="APPLY_RZ",
                    args={"theta": 0.2},
                    vqs=(rng.choice(qubits),),
                )
            )
    return Graph(version="0.3", nodes=tuple(rows), resources=Resources(vqs=qubits))


@pytest.mark.parametrize("seed", range(150))
def test_folded_counts_equal_the_unrolled_programs_on_random_nested_loops(seed):
    graph = nested_program(seed)
    assert count_graph(graph) == count_graph(unroll(graph, max_nodes=None))


def _skewed(outer: int, inner: int, rotation: bool = False) -> Graph:
    """``for outer { cx q0, q1; for inner { t q1 } }``: the inner loop climbs q1 alone."""
    gate = (
        Node(id="t", op="APPLY_RZ", args={"theta": 0.1}, vqs=("q1",))
        if rotation
        else Node(id="t", op="APPLY_T", vqs=("q1",))
    )
    body = (
        Node(id="cx", op="APPLY_CNOT", vqs=("q0", "q1")),
        Node(id="i", op="REPEAT", args={"count": inner}, body=(gate,)),
    )
    return Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=("q0", "q1")),
            Node(id="o", op="REPEAT", args={"count": outer}, body=body),
        ),
        resources=Resources(vqs=("q0", "q1")),
    )


def test_an_inner_loop_on_one_qubit_of_the_outer_body_is_counted_folded():
    counts = count_nodes(_skewed(10**6, 10).nodes, max_steps=10_000)
    assert counts.t_count == 10**7 and counts.num_qubits == 2 and counts.rotation_depth == 0
    rotations = count_nodes(_skewed(10**6, 10, rotation=True).nodes, max_steps=10_000)
    assert rotations.rotation_count == 10**7 and rotations.rotation_depth == 10**7


@pytest.mark.parametrize(("outer", "inner"), [(7, 3), (40, 9), (25, 1)])
def test_skewed_nested_loops_count_as_their_unrolling(outer, inner):
    for rotation in (False, True):
        graph = _skewed(outer, inner, rotation)
        assert count_graph(graph) == count_graph(unroll(graph, max_nodes=None))


def test_a_skew_wider_than_the_period_window_is_refused_not_miscounted():
    # the inner loop's 2000 layers on q1 put the outer period past MAX_PERIOD_WINDOW
    with pytest.raises(UnrollError) as info:
        count_nodes(_skewed(10**6, 2000).nodes, max_steps=100_000)
    assert info.value.code == "QV505"
