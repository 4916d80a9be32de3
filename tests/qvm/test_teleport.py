"""The teleportation pass's structure: placement, the rewritten graph, its coded errors.
(Its quantum results against exact theory: test_teleport_exact.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from qmk.qvm.errors import PlacementError
from qmk.qvm.graph import Graph, Node, from_json
from qmk.qvm.teleport import (
    METADATA_KEY,
    SEMANTIC,
    auto_placement,
    explicit_placement,
    interactions,
    parse_placement,
    summary_of,
    teleport,
)
from qmk.qvm.verify import verify


def program(n: int, gates: list[tuple[str, tuple[int, ...]]], *, prefix: str = "q") -> Graph:
    vqs = [f"{prefix}{i}" for i in range(n)]
    nodes: list[dict[str, Any]] = [{"id": "alloc", "op": "ALLOC_LQ", "vqs": vqs}]
    nodes += [
        {"id": f"g{k}", "op": op, "vqs": [vqs[q] for q in qs]} for k, (op, qs) in enumerate(gates)
    ]
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": [v], "produces": [f"e{i}"]}
        for i, v in enumerate(vqs)
    ]
    nodes.append({"id": "free", "op": "FREE_LQ", "vqs": vqs})
    return from_json(
        {
            "version": "0.2",
            "program": {"nodes": nodes},
            "resources": {"vqs": vqs, "events": [f"e{i}" for i in range(n)]},
            "caps": ["CAP_ALLOC"],
        }
    )


def chain(n: int) -> Graph:
    return program(n, [("APPLY_H", (0,))] + [("APPLY_CNOT", (i, i + 1)) for i in range(n - 1)])


def test_automatic_placement_cuts_a_chain_once() -> None:
    placement = auto_placement(chain(8), [6, 6])
    assert placement.cut == 1 and placement.automatic
    assert sorted(placement.module_of.values()) == [0] * 4 + [1] * 4


def test_automatic_placement_keeps_clusters_together() -> None:
    # two 4-cliques joined by one CNOT: the cut is that CNOT
    gates = [("APPLY_CZ", (a, b)) for a in range(4) for b in range(a + 1, 4)]
    gates += [("APPLY_CZ", (a, b)) for a in range(4, 8) for b in range(a + 1, 8)]
    gates.append(("APPLY_CNOT", (3, 4)))
    # interleave the qubits' order so that a fill in program order would cut badly
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    graph = program(8, [(op, tuple(order[q] for q in qs)) for op, qs in gates])
    placement = auto_placement(graph, [6, 6])
    assert placement.cut == 1


def test_a_program_that_fits_the_largest_module_stays_whole_and_untouched() -> None:
    graph = chain(5)
    placement = auto_placement(graph, [3, 5])
    assert set(placement.module_of.values()) == {1} and placement.cut == 0
    done = teleport(graph, placement)
    assert done.graph is graph and done.gates == () and summary_of(graph) is None


def test_qubits_that_fit_no_placement_are_refused_with_qv602() -> None:
    with pytest.raises(PlacementError) as caught:
        auto_placement(chain(9), [6, 6])  # 4 + 4 places besides the pairs' halves
    assert caught.value.code == "QV602"


def test_a_module_over_its_capacity_with_the_pairs_halves_is_refused_with_qv602() -> None:
    graph = chain(4)
    placement = explicit_placement(graph, {"q0": 0, "q1": 0, "q2": 0, "q3": 1}, capacities=[3, 3])
    with pytest.raises(PlacementError) as caught:
        teleport(graph, placement)  # module 0 holds 3 data qubits and then a pair's half
    assert caught.value.code == "QV602" and caught.value.details["module"] == 0


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"q0": 0, "q1": 1}, "unplaced"),
        ({"q0": 0, "q1": 1, "q2": 0, "q3": 1, "x": 0}, "does not allocate"),
        ({"q0": 0, "q1": 5, "q2": 0, "q3": 1}, "modules 0..1"),
        ({"q0": -1, "q1": 1, "q2": 0, "q3": 1}, "a module is 0, 1"),
    ],
)
def test_a_bad_explicit_placement_is_qv601(mapping: dict[str, int], fragment: str) -> None:
    with pytest.raises(PlacementError) as caught:
        explicit_placement(chain(4), mapping, capacities=[4, 4])
    assert caught.value.code == "QV601" and fragment in caught.value.message


@pytest.mark.parametrize("text", ["q0", "q0=a", "=1", "q0=1,q0=0", ""])
def test_placement_text_of_another_shape_is_qv601(text: str) -> None:
    with pytest.raises(PlacementError) as caught:
        parse_placement(text)
    assert caught.value.code == "QV601"


def test_the_rewritten_graph_verifies_asks_cap_link_and_keys_results_by_the_programs_events() -> (
    None
):
    graph = chain(4)
    done = teleport(
        graph, explicit_placement(graph, {"q0": 0, "q1": 1, "q2": 0, "q3": 1}), fidelity=0.9
    )
    verified = verify(done.graph)
    assert "CAP_LINK" in verified.required_caps and "CAP_LINK" in done.graph.caps
    assert done.graph.resources.events[:4] == ("e0", "e1", "e2", "e3")
    assert done.graph.metadata is not None
    assert done.graph.metadata["output"] == {"groups": [["e0", "e1", "e2", "e3"]], "separator": ""}
    assert summary_of(done.graph) == done.graph.metadata[METADATA_KEY]
    opens = [n for n in done.graph.nodes if n.op == "OPEN_CHAN"]
    uses = [n for n in done.graph.nodes if n.op == "USE_CHAN"]
    assert len(opens) == len(uses) == done.epr_pairs == 3
    assert all(n.args["opts"]["fidelity"] == 0.9 for n in opens)
    assert all(n.args["semantic"] == SEMANTIC for n in uses)
    # the original gate's node id names its local step on the home module
    assert [g.node for g in done.gates] == ["g1", "g2", "g3"]
    assert {g.home for g in done.gates} == {0, 1}


def test_fresh_names_never_clash_with_the_programs_own() -> None:
    graph = program(2, [("APPLY_CNOT", (0, 1))], prefix="tp_")
    done = teleport(graph, explicit_placement(graph, {"tp_0": 0, "tp_1": 1}))
    verify(done.graph)
    new = set(done.graph.resources.vqs) - set(graph.resources.vqs)
    assert new and not any(name.startswith("tp_") for name in new)


def test_latency_added_counts_the_longest_chain_of_dependent_teleported_gates() -> None:
    # q0-q1 and q2-q3 cross independently (their pairs are made at once): one latency;
    # then q1-q2 depends on both: two
    graph = program(4, [("APPLY_CNOT", (0, 1)), ("APPLY_CNOT", (2, 3))])
    placement = explicit_placement(graph, {"q0": 0, "q1": 1, "q2": 0, "q3": 1})
    assert teleport(graph, placement, latency_ns=100.0).latency_added_ns == 100.0
    graph = program(4, [("APPLY_CNOT", (0, 1)), ("APPLY_CNOT", (2, 3)), ("APPLY_CNOT", (1, 2))])
    placement = explicit_placement(graph, {"q0": 0, "q1": 1, "q2": 0, "q3": 1})
    done = teleport(graph, placement, latency_ns=100.0)
    assert done.latency_added_ns == 200.0 and len(done.gates) == 3


def test_swap_costs_three_pairs_and_a_bell_measurement_two() -> None:
    weights = interactions(program(2, [("APPLY_SWAP", (0, 1)), ("APPLY_CZ", (0, 1))]))
    assert weights == {("q0", "q1"): 4}


def test_a_fidelity_outside_zero_to_one_is_refused() -> None:
    graph = chain(2)
    with pytest.raises(PlacementError):
        teleport(graph, explicit_placement(graph, {"q0": 0, "q1": 1}), fidelity=1.5)


def _multi_qubit_ops() -> list[str]:
    from qmk.qvm.ops import OPS, Category

    local = {Category.LIFECYCLE, Category.ADMIN, Category.CHANNEL}
    return [
        name
        for name, spec in OPS.items()
        if spec.category not in local and (spec.vqs.high is None or spec.vqs.high >= 2)
    ]


@pytest.mark.parametrize("op", _multi_qubit_ops())
def test_every_multi_qubit_op_of_the_table_has_a_teleported_form(op: str) -> None:
    """A new multi-qubit op fails here until the pass can teleport it (else a program
    using it across modules is QV603 cannot-teleport)."""
    from qmk.qvm.ops import OPS

    spec = OPS[op]
    n = spec.vqs.low
    vqs = [f"q{i}" for i in range(n)]
    events = [f"o{i}" for i in range(spec.produces.low)]
    node: dict[str, Any] = {"id": "g", "op": op, "vqs": vqs, "produces": events}
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "alloc", "op": "ALLOC_LQ", "vqs": vqs},
                    node,
                    {"id": "free", "op": "FREE_LQ", "vqs": vqs},
                ]
            },
            "resources": {"vqs": vqs, "events": events},
            "caps": ["CAP_ALLOC", *([spec.cap] if spec.cap else [])],
        }
    )
    placement = explicit_placement(graph, {q: i for i, q in enumerate(vqs)})
    done = teleport(graph, placement)
    verify(done.graph)
    assert done.gates and done.gates[0].op == op


def test_an_op_with_no_teleported_form_is_qv603() -> None:
    from qmk.qvm.teleport import _rewrite, _Writer

    graph = chain(2)
    writer = _Writer(graph, explicit_placement(graph, {"q0": 0, "q1": 1}), 1.0)
    # BAR_REGION is an admin op: the pass never asks it; asked, it has no teleported form
    node = from_json(
        {
            "version": "0.2",
            "program": {"nodes": [{"id": "r", "op": "BAR_REGION", "vqs": ["q0", "q1"]}]},
            "resources": {"vqs": ["q0", "q1"], "events": []},
        }
    ).nodes[0]
    with pytest.raises(PlacementError) as caught:
        _rewrite(writer, node)
    assert caught.value.code == "QV603"


def _allocs(*metadata: Any) -> Graph:
    nodes = [
        {"id": f"a{i}", "op": "ALLOC_LQ", "vqs": [f"q{i}"], "metadata": m}
        for i, m in enumerate(metadata)
    ]
    names = [f"q{i}" for i in range(len(metadata))]
    nodes.append({"id": "free", "op": "FREE_LQ", "vqs": names})
    return from_json(
        {
            "version": "0.2",
            "program": {"nodes": nodes},
            "resources": {"vqs": names, "events": []},
            "caps": ["CAP_ALLOC"],
        }
    )


def test_a_program_declares_its_placement_with_integer_modules_on_its_allocations() -> None:
    from qmk.qvm.teleport import declared_placement

    assert declared_placement(_allocs({"module": 1}, {"module": 0})) == {"q0": 1, "q1": 0}
    # text labels (examples/linked_modules.qvm.asm) declare nothing
    assert declared_placement(_allocs({"module": "A"}, {"module": "B"})) is None
    with pytest.raises(PlacementError) as caught:
        declared_placement(_allocs({"module": 1}, {"tenant": "x"}))
    assert caught.value.code == "QV601" and "'a1'" in caught.value.message


def test_a_pairs_qubits_belong_to_the_tenant_of_the_qubit_they_copy() -> None:
    graph = program(2, [("APPLY_CNOT", (0, 1))])
    nodes = list(graph.nodes)
    nodes[0] = Node(id="alloc", op="ALLOC_LQ", vqs=("q0", "q1"), metadata={"tenant": "bob"})
    graph = Graph(nodes=tuple(nodes), resources=graph.resources, caps=graph.caps)
    done = teleport(graph, explicit_placement(graph, {"q0": 0, "q1": 1}))
    pair = [n for n in done.graph.nodes if n.op == "ALLOC_LQ" and n.id != "alloc"]
    assert [n.metadata for n in pair] == [{"tenant": "bob"}]
