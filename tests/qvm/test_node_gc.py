"""A graph's nodes are not tracked by the cyclic garbage collector (issue 32, item 5): a
verified 100,000-node program the kernel keeps is then not walked by every full
collection (40-60 ms each, holding the interpreter while other clients wait)."""

from __future__ import annotations

import gc
import pickle

import msgspec
import pytest

from qmk.frontends.qasm import from_qasm
from qmk.qvm.graph import Guard, GuardTerm, Node, loads


def test_a_node_is_not_tracked_by_the_cyclic_collector_and_still_a_value() -> None:
    guard = Guard(terms=(GuardTerm(event="m", equals=1),))
    node = Node(id="n", op="APPLY_X", args={"theta": 0.5}, vqs=("q",), guard=guard)
    assert not gc.is_tracked(node)
    assert node == Node(id="n", op="APPLY_X", args={"theta": 0.5}, vqs=("q",), guard=guard)
    assert pickle.loads(pickle.dumps(node)) == node
    assert msgspec.structs.replace(node, id="m").id == "m"
    assert Node(id="a", op="APPLY_X").args == {}


def test_nodes_read_or_lowered_are_not_tracked() -> None:
    graph = loads(
        '{"version": "0.2", "program": {"nodes": [{"id": "a", "op": "ALLOC_LQ", '
        '"args": {"n": 1}, "vqs": ["q"]}]}, "resources": {"vqs": ["q"]}}'
    )
    lowered = from_qasm('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\ncx q[0],q[1];')
    assert not any(gc.is_tracked(node) for node in (*graph.nodes, *lowered.nodes))


def test_a_guard_and_its_terms_are_not_tracked_and_still_values() -> None:
    # issue 47: a kept program guarding every node was three tracked objects per node
    term = GuardTerm(event="m", equals=1)
    guard = Guard(terms=(term, GuardTerm(event="k", equals=0)), conjunction=True)
    assert not gc.is_tracked(term) and not gc.is_tracked(guard)
    assert guard.events == ("m", "k")
    assert guard == Guard(terms=(term, GuardTerm(event="k", equals=0)), conjunction=True)
    assert hash(guard) == hash(pickle.loads(pickle.dumps(guard)))
    assert guard.to_json() == {"all": [{"event": "m", "equals": 1}, {"event": "k", "equals": 0}]}
    with pytest.raises(ValueError, match="exactly one term"):
        Guard(terms=(term, term))
