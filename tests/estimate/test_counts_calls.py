"""Logical counts of programs with calls: each call traced on its block's body, bound
once, exactly as the program with every call written out (qmk.estimate.counts)."""

from __future__ import annotations

import math
import random

import pytest

from qmk.estimate import count_graph
from qmk.estimate.counts import count_nodes
from qmk.qvm.fold import unroll
from qmk.qvm.graph import Graph, Node, Resources

QUBITS = ("q0", "q1", "q2", "q3", "q4")


def call(node_id: str, block: str, *qubits: str) -> Node:
    return Node(id=node_id, op="CALL", args={"block": block}, vqs=qubits)


def gate(rng: random.Random, node_id: str, formals: tuple[str, ...]) -> Node:
    k = rng.random()
    if k < 0.3:
        return Node(id=node_id, op="APPLY_T", vqs=(rng.choice(formals),))
    if k < 0.5:
        theta = rng.choice([0.1, math.pi / 4, math.pi / 2, 0.3])
        return Node(id=node_id, op="APPLY_RZ", args={"theta": theta}, vqs=(rng.choice(formals),))
    if k < 0.75 and len(formals) > 1:
        return Node(id=node_id, op="APPLY_CNOT", vqs=tuple(rng.sample(formals, 2)))
    if k < 0.85 and len(formals) > 2:
        return Node(id=node_id, op="APPLY_CCZ", vqs=tuple(rng.sample(formals, 3)))
    return Node(id=node_id, op="APPLY_H", vqs=(rng.choice(formals),))


def random_program(seed: int) -> Graph:
    """Three blocks (the outer one calls the inner one, and names its formals as the
    program names its qubits), called at random, some calls inside REPEAT rows."""
    rng = random.Random(seed)
    inner = Node(
        id="inner",
        op="BLOCK",
        vqs=("x", "y"),
        body=tuple(gate(rng, f"i{k}", ("x", "y")) for k in range(3)),
    )
    outer = Node(
        id="outer",
        op="BLOCK",
        vqs=("q1", "q0", "q2"),  # the program's names, in another order
        body=(
            gate(rng, "o0", ("q1", "q0", "q2")),
            call("c", "inner", "q2", "q1"),
            gate(rng, "o1", ("q1", "q0", "q2")),
        ),
    )
    one = Node(
        id="one", op="BLOCK", vqs=("z",), body=tuple(gate(rng, f"z{k}", ("z",)) for k in range(2))
    )
    arity = {"inner": 2, "outer": 3, "one": 1}
    rows: list[Node] = []
    for k in range(60):
        roll = rng.random()
        if roll < 0.1:
            name = rng.choice(sorted(arity))
            body = (call(f"rk{k}", name, *rng.sample(QUBITS, arity[name])),)
            rows.append(
                Node(id=f"r{k}", op="REPEAT", args={"count": rng.randint(2, 30)}, body=body)
            )
        elif roll < 0.3:
            rows.append(gate(rng, f"g{k}", QUBITS))
        else:
            name = rng.choice(sorted(arity))
            rows.append(call(f"k{k}", name, *rng.sample(QUBITS, arity[name])))
    return Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=QUBITS),
            *rows,
            Node(id="f", op="FREE_LQ", vqs=QUBITS),
        ),
        resources=Resources(vqs=QUBITS),
        caps=("CAP_ALLOC",),
        blocks=(inner, outer, one),
    )


@pytest.mark.parametrize("seed", range(10))
def test_a_program_of_calls_counts_as_its_calls_written_out(seed: int) -> None:
    graph = random_program(seed)
    written_out = unroll(graph, max_nodes=None)
    assert not any(node.op == "CALL" for node in written_out.nodes)
    assert count_graph(graph) == count_nodes(written_out.nodes)


def test_a_call_of_a_missing_block_counts_as_nothing_as_the_unrolling_leaves_it_out() -> None:
    graph = random_program(0)
    odd = Graph(
        version="0.3",
        nodes=(*graph.nodes[:-1], call("bad", "nowhere", "q0"), graph.nodes[-1]),
        resources=graph.resources,
        caps=graph.caps,
        blocks=graph.blocks,
    )
    assert count_graph(odd) == count_graph(graph)
