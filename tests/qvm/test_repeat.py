"""REPEAT rows: bounded repetition kept folded, from the JSON and the assembly text to the
verifier's rules and totals, and the one bounded unrolling."""

from __future__ import annotations

import json

import jsonschema
import pytest

from qmk.qvm import asm, graph_file
from qmk.qvm import graph as graph_io
from qmk.qvm.errors import AsmError, FormatError, UnrollError
from qmk.qvm.fold import one_turn, rows, unroll, unrolled_size
from qmk.qvm.generate import random_folded_graph
from qmk.qvm.graph import Graph, Node, Resources, from_json
from qmk.qvm.limits import Limits
from qmk.qvm.schema import load_schema
from qmk.qvm.sorted_text import canonical_graph_text
from qmk.qvm.verify import check


def program(*rows_: dict, vqs=("q0", "q1"), events=(), version="0.3") -> dict:
    """Graph JSON with the two qubits allocated first and freed last."""
    return {
        "version": version,
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "vqs": list(vqs)},
                *rows_,
                {"id": "f", "op": "FREE_LQ", "vqs": list(vqs)},
            ]
        },
        "resources": {"vqs": list(vqs), "events": list(events)},
        "caps": ["CAP_ALLOC"],
    }


def repeat(id: str, count: int, *body: dict) -> dict:
    return {"id": id, "op": "REPEAT", "args": {"count": count}, "body": list(body)}


def gate(id: str, op: str, *vqs: str, **fields) -> dict:
    return {"id": id, "op": op, "vqs": list(vqs), **fields}


LOOP = program(
    repeat(
        "outer",
        3,
        gate("t", "APPLY_T", "q0"),
        repeat("inner", 1000, gate("cx", "APPLY_CNOT", "q0", "q1")),
        gate("m", "MEASURE_Z", "q1", produces=["e"]),
        gate("x", "APPLY_X", "q0", guard={"event": "e", "equals": 1}),
    ),
    events=("e",),
)


# --------------------------------------------------------------------------- the value


def test_a_folded_graph_round_trips_through_canonical_json_and_the_schema():
    g = from_json(LOOP)
    text = graph_file.dumps(g)
    assert graph_file.dumps(graph_io.loads(text)) == text
    assert '"op": "REPEAT", "args": {"count": 1000}, "body": [' in text
    jsonschema.validate(json.loads(text), load_schema())
    assert rows(g.nodes) == 8 and unrolled_size(g) == 2 + 3 * (1 + 1000 + 2)


def test_the_schema_refuses_a_repeat_count_of_zero():
    data = json.loads(json.dumps(LOOP))
    data["program"]["nodes"][1]["args"]["count"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, load_schema())


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"args": {"count": 0}}, "bad-value"),
        ({"args": {"count": 2.5}}, "bad-value"),
        ({"args": {"count": 2, "step": 1}}, "bad-value"),
        ({"body": []}, "wrong-type"),
        ({"vqs": ["q0"]}, "unknown-key"),
        ({"guard": {"event": "e", "equals": 1}}, "unknown-key"),
    ],
)
def test_a_malformed_repeat_row_is_a_format_error(change, code):
    row = {**repeat("r", 2, gate("h", "APPLY_H", "q0")), **change}
    with pytest.raises(FormatError) as info:
        from_json(program(row))
    assert info.value.name == code


def test_a_body_on_an_operation_is_an_unknown_key():
    with pytest.raises(FormatError) as info:
        from_json(program({**gate("h", "APPLY_H", "q0"), "body": []}))
    assert info.value.name == "unknown-key"


def test_repeat_rows_need_version_0_3_and_flat_0_1_graphs_still_load():
    with pytest.raises(FormatError) as info:
        from_json(program(repeat("r", 2, gate("h", "APPLY_H", "q0")), version="0.2"))
    assert info.value.name == "unsupported-version"
    assert check(from_json(program(gate("h", "APPLY_H", "q0"), version="0.1"))).ok


def test_the_digest_text_is_the_folded_one():
    g = from_json(LOOP)
    text = canonical_graph_text(g)
    assert '"body":[' in text and len(text) < 1000
    program_ = check(g).program
    assert program_ is not None and program_.folded is g


# --------------------------------------------------------------------------- assembly text


def test_assembly_text_reads_and_writes_repeat_blocks_and_round_trips():
    text = """
    .param n = 3
    a: ALLOC_LQ vq:q0, vq:q1
    outer: REPEAT n {
        t: APPLY_T vq:q0
        REPEAT 10 ** 3 {
            cx: APPLY_CNOT vq:q0, vq:q1
        }
    }
    f: FREE_LQ vq:q0, vq:q1
    """
    g = asm.assemble(text)
    assert g.version == "0.3"
    assert [n.id for n in g.nodes] == ["a", "outer", "f"]
    assert g.nodes[1].args == {"count": 3} and g.nodes[1].body[1].args == {"count": 1000}
    written = asm.disassemble(g)
    assert "outer: REPEAT 3 {\n    t: APPLY_T vq:q0\n    n4: REPEAT 1000 {\n" in written
    assert graph_file.dumps(asm.assemble(written)) == graph_file.dumps(g)
    assert graph_file.dumps(asm.assemble(asm.disassemble(from_json(LOOP)))) == graph_file.dumps(
        from_json(LOOP)
    )


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("REPEAT 2 {\nAPPLY_H vq:q\n", "never closed"),
        ("APPLY_H vq:q\n}\n", "closes no REPEAT"),
        ("REPEAT 0 {\nAPPLY_H vq:q\n}\n", "whole number >= 1"),
        ("REPEAT 2 {\n}\n", "body of one row"),
    ],
)
def test_unbalanced_or_empty_repeat_blocks_are_assembly_errors(text, what):
    with pytest.raises(AsmError) as info:
        asm.assemble(text)
    assert what in info.value.message


# --------------------------------------------------------------------------- the rules


def finding(data: dict, code: str):
    found = [f for f in check(from_json(data), unroll=False).findings if f.code == code]
    assert found, f"no {code} in {check(from_json(data), unroll=False).findings}"
    return found[0]


def test_a_body_that_allocates_a_qubit_it_does_not_free_is_unbalanced():
    data = program(
        repeat("r", 5, gate("b", "ALLOC_LQ", "tmp"), gate("t", "APPLY_T", "tmp")),
        vqs=("q0", "q1", "tmp"),
    )
    data["program"]["nodes"][0]["vqs"] = ["q0", "q1"]
    data["program"]["nodes"][-1]["vqs"] = ["q0", "q1", "tmp"]
    f = finding(data, "QV701")
    assert (f.node_id, f.op, f.repeat) == ("r", "REPEAT", ())
    assert "'tmp'" in f.message and "QV701 repeat-unbalanced at REPEAT 'r'" in str(f)
    assert not check(from_json(data), unroll=False).ok


def test_a_body_that_frees_a_qubit_it_did_not_allocate_is_unbalanced_with_its_path():
    data = program(
        repeat("outer", 2, repeat("inner", 2, gate("g", "FREE_LQ", "q1"))),
    )
    data["program"]["nodes"][-1]["vqs"] = ["q0"]
    f = finding(data, "QV701")
    assert (f.node_id, f.repeat) == ("inner", ("outer",))


def test_a_body_that_allocates_and_frees_a_scratch_qubit_is_balanced():
    data = program(
        repeat(
            "r",
            4,
            gate("b", "ALLOC_LQ", "tmp"),
            gate("cx", "APPLY_CNOT", "tmp", "q0"),
            gate("g", "FREE_LQ", "tmp"),
        ),
        vqs=("q0", "q1", "tmp"),
    )
    data["program"]["nodes"][0]["vqs"] = ["q0", "q1"]
    data["program"]["nodes"][-1]["vqs"] = ["q0", "q1"]
    report = check(from_json(data), unroll=False)
    assert report.ok and report.totals is not None
    assert report.totals.peak_live_qubits == 3 and report.totals.nodes == 2 + 4 * 3


def test_an_event_of_a_body_read_after_it_escapes():
    data = program(
        repeat("r", 3, gate("m", "MEASURE_Z", "q0", produces=["e"])),
        gate("x", "APPLY_X", "q1", guard={"event": "e", "equals": 1}),
        events=("e",),
    )
    f = finding(data, "QV702")
    assert (f.node_id, f.repeat) == ("x", ())


def test_a_body_reading_an_event_it_produces_later_reads_a_later_turn():
    data = program(
        repeat(
            "r",
            3,
            gate("x", "APPLY_X", "q1", guard={"event": "e", "equals": 1}),
            gate("m", "MEASURE_Z", "q0", produces=["e"]),
        ),
        events=("e",),
    )
    f = finding(data, "QV303")
    assert (f.node_id, f.repeat) == ("x", ("r",))
    assert "in REPEAT 'r'" in str(f)


def test_a_malformed_repeat_row_built_in_code_is_repeat_invalid():
    body = (Node(id="h", op="APPLY_H", vqs=("q",)),)
    g = Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=("q",)),
            Node(id="r", op="REPEAT", args={"count": 0}, body=body),
            Node(id="f", op="FREE_LQ", vqs=("q",)),
        ),
        resources=Resources(vqs=("q",)),
        caps=("CAP_ALLOC",),
    )
    codes = [f.code for f in check(g).findings]
    assert codes == ["QV703"]


def test_two_repeat_rows_of_one_id_are_repeat_invalid():
    data = program(
        repeat("r", 2, gate("h", "APPLY_H", "q0")),
        repeat("r", 3, gate("x", "APPLY_X", "q0")),
    )
    f = finding(data, "QV703")
    assert f.node_id == "r" and "another row's id" in f.message


def test_a_finding_deep_in_a_body_names_its_node_and_repeat_path():
    data = program(repeat("outer", 2, repeat("inner", 3, gate("bad", "APPLY_HH", "q0"))))
    f = finding(data, "QV101")
    assert (f.node_id, f.repeat) == ("bad", ("outer", "inner"))
    assert f.to_json()["repeat"] == ["outer", "inner"]


def test_fences_in_a_body_count_per_turn():
    data = program(repeat("r", 4, gate("h", "APPLY_H", "q0"), {"id": "fe", "op": "FENCE_EPOCH"}))
    report = check(from_json(data))
    assert report.totals is not None and report.program is not None
    assert report.totals.epochs == 5 == len(report.program.epochs)


# --------------------------------------------------------------------------- totals, unrolling


@pytest.mark.parametrize("seed", range(12))
def test_totals_found_folded_equal_the_unrolled_programs(seed):
    g = random_folded_graph(seed=seed, nodes=150)
    report = check(g, unroll=False)
    assert report.ok and report.program is None
    totals = report.totals
    assert totals is not None and totals.repeats > 0
    flat = check(unroll(g, max_nodes=None)).program
    assert flat is not None
    assert totals.counts == flat.counts
    assert totals.nodes == len(flat.graph.nodes)
    assert totals.peak_live_qubits == flat.peak_live_qubits
    assert totals.epochs == len(flat.epochs)
    assert totals.required_caps == flat.required_caps
    assert [w.code for w in totals.warnings] == [w.code for w in flat.warnings]


def test_totals_of_a_huge_loop_come_by_multiplication():
    data = program(
        repeat("o", 10**6, repeat("i", 10**6, gate("t", "APPLY_T", "q0"))),
    )
    totals = check(from_json(data), unroll=False).totals
    assert totals is not None
    assert totals.counts.t_gates == 10**12 and totals.rows == 5


def test_unrolling_past_the_limit_is_a_coded_refusal_before_anything_is_built():
    g = from_json(LOOP)
    with pytest.raises(UnrollError) as info:
        unroll(g, max_nodes=100)
    assert info.value.code == "QV505"
    report = check(g, limits=Limits(max_unrolled_nodes=100))
    assert not report.ok and [f.code for f in report.findings] == ["QV505"]
    assert check(g, limits=Limits(max_unrolled_nodes=100), unroll=False).ok


def test_unrolling_names_turns_and_renames_the_events_each_turn_produces():
    g = from_json(LOOP)
    flat = unroll(g, max_nodes=None)
    ids = [n.id for n in flat.nodes]
    assert ids[:3] == ["a", "t@0", "cx@0@0"] and "cx@2@999" in ids
    assert flat.resources.events == ("e@0", "e@1", "e@2")
    x = next(n for n in flat.nodes if n.id == "x@1")
    assert x.guard is not None and x.guard.events == ("e@1",)


def test_the_one_turn_view_holds_each_body_once():
    view = one_turn(from_json(LOOP))
    assert [n.id for n in view.nodes] == ["a", "t", "cx", "m", "x", "f"]
    assert view.multipliers == (1, 3, 3000, 3, 3, 1)
    assert [(s.id, s.start, s.end) for s in view.spans] == [("outer", 1, 5), ("inner", 2, 3)]
