"""The verifier's lane for faultless gates reports exactly what the full steps report.

:func:`qmk.qvm.walk._walk` takes runs of faultless gates on a short lane; with
``gate_lane=False`` every node goes through the full per-node steps. On seeded random
programs, clean and then with faults spliced in (repeated ids, undeclared, dead and
repeated qubits, bad angles, unknown ops, capabilities, guards, fences), both give the
same findings in the same order and the same verified program.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from qmk.qvm.generate import random_graph
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node
from qmk.qvm.limits import Limits
from qmk.qvm.verify import Report, check
from qmk.qvm.walk import _Findings, _walk


def _full_steps(graph: Graph, limits: Limits) -> Report:
    return _walk(graph, limits, _Findings(graph), gate_lane=False)


def _faulty(graph: Graph, rng: random.Random, faults: int) -> Graph:
    """``graph`` with ``faults`` nodes changed or inserted, each a different fault."""
    nodes = list(graph.nodes)
    vqs = list(graph.resources.vqs)
    events = list(graph.resources.events)
    for _ in range(faults):
        at = rng.randrange(len(nodes))
        q = rng.choice(vqs)
        other = rng.choice(vqs)
        kind = rng.randrange(12)
        new = [
            Node(id=nodes[rng.randrange(len(nodes))].id, op="APPLY_H", vqs=(q,)),
            Node(id=f"u{at}", op="APPLY_X", vqs=("nowhere",)),
            Node(id=f"d{at}", op="APPLY_CNOT", vqs=(q, q)),
            Node(id=f"r{at}", op="APPLY_RZ", args={"theta": math.nan}, vqs=(q,)),
            Node(id=f"s{at}", op="APPLY_RZ", args={"theta": math.pi / 2}, vqs=(q,)),
            Node(id=f"k{at}", op="APPLY_H", vqs=(q,), caps=("CAP_MAGIC",)),
            Node(id=f"o{at}", op="APPLY_HADAMARD", vqs=(q,)),
            Node(id=f"f{at}", op="FENCE_EPOCH"),
            Node(id=f"c{at}", op="APPLY_CZ", vqs=(q, other)),
            Node(id=f"x{at}", op="FREE_LQ", vqs=(q,)),
            Node(id=f"t{at}", op="APPLY_T", vqs=(q, other)),
            Node(
                id=f"g{at}",
                op="APPLY_X",
                vqs=(q,),
                guard=Guard(terms=(GuardTerm(event=rng.choice(events or ["e"]), equals=1),)),
            ),
        ][kind]
        if rng.random() < 0.5:
            nodes.insert(at, new)
        else:
            nodes[at] = new
    return dataclasses.replace(graph, nodes=tuple(nodes))


@pytest.mark.parametrize("seed", range(12))
def test_a_clean_random_program_verifies_the_same_on_the_gate_lane(seed: int) -> None:
    graph = random_graph(seed=seed, nodes=300, max_live=12)
    report = check(graph)
    assert report.program is not None
    assert report == _full_steps(graph, Limits())


@pytest.mark.parametrize("seed", range(40))
def test_a_faulty_random_program_gets_the_same_findings_on_the_gate_lane(seed: int) -> None:
    rng = random.Random(seed)
    graph = _faulty(random_graph(seed=seed, nodes=200, max_live=8), rng, rng.randint(1, 6))
    for limits in (Limits(), Limits(max_operands=1)):
        report = check(graph, limits=limits)
        assert report == _full_steps(graph, limits)
        assert report.findings == _full_steps(graph, limits).findings
