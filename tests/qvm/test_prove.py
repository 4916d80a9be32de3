"""``qmk validate --prove`` (qmk.qvm.prove): linearity, capabilities and the entanglement
firewall decided by the z3 solver under every valuation of the events, each fault with a
valuation that shows it, checked against a reference interpreter run on every valuation
(tests/support/proofs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from qmk.qvm.asm import assemble
from qmk.qvm.graph import Graph, from_json
from support.cli import qmk
from support.proofs import ERRORS, guarded_programs, reachable, run_faults

pytest.importorskip("z3")

from qmk.qvm.prove import PROPERTIES, prove

HEAD = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:a
h: APPLY_H vq:a
m: MEASURE_Z vq:a, out:m
"""


def program(text: str, head: str = HEAD) -> Graph:
    return assemble(head + text + "\nfa: FREE_LQ vq:a\n")


def found(graph: Graph, **options: object) -> set[tuple[str, int | None]]:
    return {(f.code, f.node_index) for f in prove(graph, **options).findings}  # type: ignore[arg-type]


def test_a_qubit_used_on_both_sides_of_its_guarded_allocation_is_a_fault_where_m_is_0():
    graph = program(
        "q: ALLOC_LQ vq:q when ev:m == 1\nx: APPLY_X vq:q\nf: FREE_LQ vq:q when ev:m == 1"
    )
    proof = prove(graph)
    assert [(f.code, f.node_id) for f in proof.findings] == [("QV203", "x")]
    assert proof.valuations == ({"m": 0},)
    assert "on the run where m=0" in proof.findings[0].message
    assert proof.proved == ("capabilities", "firewall") and not proof.ok


def test_opposite_guards_freeing_on_either_side_are_proved_and_no_guard_asks_nothing():
    graph = program(
        "q: ALLOC_LQ vq:q\nf1: FREE_LQ vq:q when ev:m == 1\nf0: FREE_LQ vq:q when ev:m == 0"
    )
    proof = prove(graph)
    assert proof.ok and proof.findings == () and proof.proved == PROPERTIES
    plain = prove(assemble(".caps CAP_ALLOC\na: ALLOC_LQ vq:a\nh: APPLY_H vq:a\nf: FREE_LQ vq:a"))
    assert plain.ok and plain.questions == 0


def test_a_guard_that_never_holds_hides_nothing_from_the_solver_but_nothing_runs_there():
    # the verifier reports the use after free under a guard no valuation meets; the solver
    # proves it never runs
    graph = from_json(  # the conjunction form
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "vqs": ["a", "q"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
                    {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
                    {
                        "id": "x",
                        "op": "APPLY_X",
                        "vqs": ["q"],
                        "guard": {
                            "all": [{"event": "m", "equals": 1}, {"event": "m", "equals": 0}]
                        },
                    },
                    {"id": "fa", "op": "FREE_LQ", "vqs": ["a"]},
                ]
            },
            "resources": {"vqs": ["a", "q"], "events": ["m"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    from qmk.qvm.verify import check

    assert [f.code for f in check(graph).findings] == ["QV202"]
    assert prove(graph).ok


def test_an_event_whose_producer_did_not_run_reads_0_and_the_valuation_says_so():
    graph = program(
        "q: ALLOC_LQ vq:q\n"
        "k: MEASURE_Z vq:q, out:k when ev:m == 1\n"  # k is produced only where m is 1
        "f: FREE_LQ vq:q when ev:k == 1\n"
        "x: APPLY_X vq:q when ev:m == 1\n"
        "f2: FREE_LQ vq:q when ev:k == 0"
    )
    proof = prove(graph)
    by_node = dict(zip([f.node_id for f in proof.findings], proof.valuations, strict=True))
    assert by_node["x"] == {"m": 1, "k": 1}  # freed where k was 1, then used
    assert found(graph) == reachable(graph)


def test_a_capability_needed_only_under_a_guard_that_can_hold_is_missing():
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "vqs": ["a", "b"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
                    {
                        "id": "o",
                        "op": "OPEN_CHAN",
                        "vqs": ["a", "b"],
                        "chs": ["c"],
                        "guard": {"event": "m", "equals": 1},
                    },
                    {
                        "id": "c",
                        "op": "CLOSE_CHAN",
                        "chs": ["c"],
                        "guard": {"event": "m", "equals": 1},
                    },
                    {"id": "f", "op": "FREE_LQ", "vqs": ["a", "b"]},
                ]
            },
            "resources": {"vqs": ["a", "b"], "chs": ["c"], "events": ["m"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    proof = prove(graph)
    assert [(f.code, f.node_id) for f in proof.findings] == [("QV501", "o")]
    assert proof.valuations == ({"m": 1},) and "capabilities" not in proof.proved


def test_two_tenants_qubits_joined_on_one_side_of_a_guard_break_the_firewall():
    graph = from_json(
        {
            "version": "0.2",
            "program": {
                "nodes": [
                    {"id": "a", "op": "ALLOC_LQ", "vqs": ["a"]},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
                    {
                        "id": "b1",
                        "op": "ALLOC_LQ",
                        "vqs": ["q"],
                        "metadata": {"tenant": "bob"},
                        "guard": {"event": "m", "equals": 1},
                    },
                    {
                        "id": "b0",
                        "op": "ALLOC_LQ",
                        "vqs": ["q"],
                        "guard": {"event": "m", "equals": 0},
                    },
                    {"id": "cx", "op": "APPLY_CNOT", "vqs": ["a", "q"]},
                    {"id": "f", "op": "FREE_LQ", "vqs": ["a", "q"]},
                ]
            },
            "resources": {"vqs": ["a", "q"], "events": ["m"]},
            "caps": ["CAP_ALLOC"],
        }
    )
    proof = prove(graph)
    assert [(f.code, f.node_id) for f in proof.findings] == [("QV504", "cx")]
    assert proof.valuations == ({"m": 1},) and proof.proved == ("linearity", "capabilities")
    assert prove(graph, tenant="bob").ok  # submitted by bob, every qubit is bob's


@settings(max_examples=60, derandomize=True, deadline=None)
@given(guarded_programs(tenants=("self", "bob")))
def test_the_solver_finds_exactly_the_faults_some_valuation_meets_and_each_shown_is_real(graph):
    proof = prove(graph)
    assert found(graph) == reachable(graph)
    for finding, valuation in zip(proof.findings, proof.valuations, strict=True):
        values = {event: value or 0 for event, value in valuation.items()}
        faults = run_faults(graph, values)
        code = finding.code
        if code == "QV501":  # as run_faults names it
            assert any(c.startswith("QV501:") and i == finding.node_index for c, i in faults)
        else:
            assert (code, finding.node_index) in faults, (finding, valuation)
    assert proof.ok == (not any(code in ERRORS for code, _ in found(graph)))


def test_qmk_validate_prove_prints_each_fault_with_its_valuation_and_what_it_proved(tmp_path: Path):
    bad = tmp_path / "bad.qvm.asm"
    bad.write_text(
        HEAD + "q: ALLOC_LQ vq:q when ev:m == 1\nx: APPLY_X vq:q\nf: FREE_LQ vq:q when ev:m == 1\n"
        "fa: FREE_LQ vq:a\n"
    )
    good = tmp_path / "good.qvm.asm"
    good.write_text(
        HEAD
        + "q: ALLOC_LQ vq:q\nf1: FREE_LQ vq:q when ev:m == 1\nf0: FREE_LQ vq:q when ev:m == 0\n"
        "fa: FREE_LQ vq:a\n"
    )
    code, out, err = qmk("validate", str(bad))  # the verifier alone: it cannot decide
    assert code == 1 and "QV208 guarded-lifetime at node #4 'x'" in err
    code, out, err = qmk("validate", "--prove", str(bad))
    assert code == 1
    assert "QV203 use-before-alloc at node #4 'x' (APPLY_X)" in err and "where m=0" in err
    assert "QV208" not in err
    code, out, err = qmk("validate", "--prove", str(good))
    assert code == 0, err
    assert "proved linearity, capabilities, firewall under every valuation of its 1 event" in out
    code, out, err = qmk("validate", "--prove", "--json", str(bad), str(good))
    files = json.loads(out)["files"]
    assert [f["ok"] for f in files] == [False, True] and code == 1
    assert files[0]["proof"]["findings"][0]["valuation"] == {"m": 0}
    assert files[1]["proof"]["proved"] == list(PROPERTIES)
