"""The verifier: every finding code, the verified program, and property tests."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qmk.qvm.codes import CODES, Severity
from qmk.qvm.errors import VerificationError
from qmk.qvm.generate import random_graph
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node, Resources, from_json
from qmk.qvm.limits import Limits
from qmk.qvm.uncompute import uncompute
from qmk.qvm.verify import MAX_FINDINGS_PER_CODE, check, verify
from support.paths import EXAMPLES


def graph(*nodes: dict, vqs=(), chs=(), events=(), caps=("CAP_ALLOC",)) -> Graph:
    """A graph from node dicts, as a user would write the JSON."""
    return from_json(
        {
            "version": "0.2",
            "program": {"nodes": list(nodes)},
            "resources": {"vqs": list(vqs), "chs": list(chs), "events": list(events)},
            "caps": list(caps),
        }
    )


def alloc(*qubits: str, id: str = "alloc", **args) -> dict:
    return {"id": id, "op": "ALLOC_LQ", "vqs": list(qubits), "args": args}


def free(*qubits: str, id: str = "free") -> dict:
    return {"id": id, "op": "FREE_LQ", "vqs": list(qubits)}


def codes(g: Graph, **kwargs) -> list[str]:
    return [f.code for f in check(g, **kwargs).findings]


def error_codes(g: Graph, **kwargs) -> set[str]:
    return {f.code for f in check(g, **kwargs).findings if f.is_error}


# --------------------------------------------------------------------------- each code


def test_a_clean_program_has_no_findings_and_verifies():
    g = graph(
        alloc("a", "b"),
        {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
        {"id": "cx", "op": "APPLY_CNOT", "vqs": ["a", "b"]},
        {"id": "ma", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m0"]},
        {"id": "mb", "op": "MEASURE_Z", "vqs": ["b"], "produces": ["m1"]},
        free("a", "b"),
        vqs=("a", "b"),
        events=("m0", "m1"),
    )
    report = check(g)
    assert report.ok and report.findings == ()


def test_unknown_op_is_reported_with_a_suggestion():
    g = graph(alloc("q"), {"id": "x", "op": "APPLY_HH", "vqs": ["q"]}, free("q"), vqs=("q",))
    (finding,) = check(g).findings
    assert (finding.code, finding.node_id, finding.op) == ("QV101", "x", "APPLY_HH")
    assert "did you mean 'APPLY_H'" in finding.message


@pytest.mark.parametrize(
    ("node", "kind"),
    [
        ({"id": "x", "op": "APPLY_CNOT", "vqs": ["q"]}, "vqs"),
        ({"id": "x", "op": "MEASURE_Z", "vqs": ["q"]}, "produces"),
        ({"id": "x", "op": "APPLY_H", "vqs": ["q"], "chs": ["c"]}, "chs"),
        ({"id": "x", "op": "APPLY_H", "vqs": ["q"], "inputs": ["m"]}, "inputs"),
    ],
)
def test_wrong_operand_counts_name_the_operand_kind(node, kind):
    g = graph(alloc("q"), node, free("q"), vqs=("q",), chs=("c",), events=("m",))
    findings = [f for f in check(g).findings if f.code == "QV102"]
    assert len(findings) == 1 and f"{kind}, got" in findings[0].message


def test_missing_rotation_angle_is_reported():
    g = graph(alloc("q"), {"id": "r", "op": "APPLY_RZ", "vqs": ["q"]}, free("q"), vqs=("q",))
    assert codes(g) == ["QV103"]


@pytest.mark.parametrize("theta", ["pi/2", None, True, [1.0], {"value": 1}])
def test_non_numeric_angle_is_an_invalid_arg(theta):
    node = {"id": "r", "op": "APPLY_RX", "vqs": ["q"], "args": {"theta": theta}}
    assert codes(graph(alloc("q"), node, free("q"), vqs=("q",))) == ["QV104"]


def test_out_of_range_and_unlisted_values_are_invalid_args():
    g = graph(
        alloc("a", "b"),
        {
            "id": "o",
            "op": "OPEN_CHAN",
            "vqs": ["a", "b"],
            "chs": ["c"],
            "args": {"opts": {"fidelity": 1.5, "type": "ghz"}},
        },
        {"id": "p", "op": "COND_PAULI", "vqs": ["a"], "inputs": ["m"], "args": {"mask": "W"}},
        {"id": "cl", "op": "CLOSE_CHAN", "chs": ["c"]},
        free("a", "b"),
        vqs=("a", "b"),
        chs=("c",),
        events=("m",),
        caps=("CAP_ALLOC", "CAP_LINK"),
    )
    invalid = [f for f in check(g).findings if f.code == "QV104"]
    assert [f.node_id for f in invalid] == ["o", "o", "p"]


def test_unknown_args_and_unknown_option_fields_are_reported():
    g = graph(
        alloc("a", "b"),
        {"id": "h", "op": "APPLY_H", "vqs": ["a"], "args": {"theta": 1.0}},
        {
            "id": "o",
            "op": "OPEN_CHAN",
            "vqs": ["a", "b"],
            "chs": ["c"],
            "args": {"opts": {"purify": True}},
        },
        {"id": "cl", "op": "CLOSE_CHAN", "chs": ["c"]},
        free("a", "b"),
        vqs=("a", "b"),
        chs=("c",),
        caps=("CAP_ALLOC", "CAP_LINK"),
    )
    assert [(f.code, f.node_id) for f in check(g).findings] == [("QV105", "h"), ("QV105", "o")]


def test_alloc_n_must_match_the_number_of_qubits():
    g = graph(alloc("a", "b", n=3), free("a", "b"), vqs=("a", "b"))
    assert codes(g) == ["QV106"]


@pytest.mark.parametrize(
    ("profile", "code"),
    [
        ("surface_code(d=9)", "QV107"),
        ("logical:surface_code", "QV107"),
        ("logical:surface_code(d=x)", "QV107"),
        ("logical:surface_code(d=9, k=2)", "QV107"),
        ("logical:surface_code(d=0)", "QV107"),
        ("logical:toric_code(d=5)", "QV108"),
    ],
)
def test_bad_profiles_are_reported(profile, code):
    assert codes(graph(alloc("q", profile=profile), free("q"), vqs=("q",))) == [code]


@pytest.mark.parametrize("profile", ["garbage", "surface_code(d=9)", "logical:surface_code"])
def test_a_profile_that_does_not_parse_says_how_to_write_one_once(profile):
    [finding] = check(graph(alloc("q", profile=profile), free("q"), vqs=("q",))).findings
    hint = "write logical:FAMILY(d=N), e.g. logical:surface_code(d=9)"
    assert finding.code == "QV107" and finding.message.count(hint) == 1, finding.message


@pytest.mark.parametrize(
    "profile",
    [
        "logical:surface_code(d=9)",
        "logical:Surface(d=7)",
        "logical:SHYPS(d=9)",
        "logical:floquet_code(d=7)",
        "logical:bacon_shor(d=5)",
        "logical:bacon-shor(d=3)",
    ],
)
def test_known_profiles_verify(profile):
    assert codes(graph(alloc("q", profile=profile), free("q"), vqs=("q",))) == []


def test_duplicate_node_ids_are_reported():
    g = graph(alloc("q"), {"id": "alloc", "op": "APPLY_H", "vqs": ["q"]}, free("q"), vqs=("q",))
    (finding,) = check(g).findings
    assert finding.code == "QV109" and finding.node_index == 1


def test_the_same_qubit_twice_in_one_op_is_reported():
    g = graph(
        alloc("q"), {"id": "cx", "op": "APPLY_CNOT", "vqs": ["q", "q"]}, free("q"), vqs=("q",)
    )
    assert codes(g) == ["QV110"]


def _calc_graph(type_: str, reads: str, expr: str, width: int) -> Graph:
    measure = {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e0", "e1"][:1]}
    args = {"type": type_, "reads": reads, "expr": expr}
    calc = {"id": "calc", "op": "CALC", "args": args, "inputs": ["e0"] * (reads.count(",") + 1)}
    calc["produces"] = [f"x{k}" for k in range(width)]
    events = ("e0", *calc["produces"])
    return graph(alloc("q"), measure, calc, free("q"), vqs=("q",), events=events)


@pytest.mark.parametrize(
    ("type_", "reads", "expr", "width", "why"),
    [
        ("bool", "bit", "v0 + 1.5 == 2", 1, None),
        ("int[8]", "bit,bit", "int8(v0) - v1", 8, None),
        ("int[8]", "bit", "v0 + 1", 7, "type int[8] produces 8 event"),
        ("bool", "bit,bit", "v0", 1, None),
        ("bool", "bit", "v1", 1, "unknown name 'v1'"),
        ("bool", "bit", "angle4(v0) + 1.0 > 0", 1, "cast to angle"),
        ("angle[4]", "bit", "angle4(v0)", 4, "bit[1] cannot be cast to angle[4]"),
        ("float[64]", "bit", "sin(v0) + v0", 64, None),
        ("bit", "bit", "v0 & 1.5", 1, "& of bit[1] and float[64]"),
        ("int[0]", "bit", "v0", 1, "widths run from 1"),
        ("bool", "bit", "v0.real", 1, "Attribute is not allowed"),
        ("angle[4]", "bit", "3.5", 4, None),
        ("int[4]", "bit", "angle4(1.0)", 4, "a angle[4] cannot be stored as int[4]"),
    ],
)
def test_a_calc_node_is_typed_and_a_mistyped_one_is_reported(type_, reads, expr, width, why):
    findings = check(_calc_graph(type_, reads, expr, width)).findings
    if why is None:
        assert [f.code for f in findings] == []
        return
    (finding,) = findings
    assert finding.code == "QV111" and finding.node_id == "calc"
    assert why in finding.message, finding.message


def test_undeclared_handles_are_reported_once_each():
    g = graph(
        alloc("q", "r"),
        {"id": "h1", "op": "APPLY_H", "vqs": ["r"]},
        {"id": "h2", "op": "APPLY_H", "vqs": ["r"]},
        free("q", "r"),
        vqs=("q",),
    )
    findings = check(g).findings
    assert [(f.code, f.node_id) for f in findings] == [("QV201", "alloc")]


def test_use_after_free_names_where_it_was_freed():
    g = graph(alloc("q"), free("q"), {"id": "h", "op": "APPLY_H", "vqs": ["q"]}, vqs=("q",))
    (finding,) = check(g).findings
    assert finding.code == "QV202" and "node #1 'free'" in finding.message


def measured(*rest: dict, vqs: tuple[str, ...] = ("a", "q"), events=("m",)) -> Graph:
    """``a`` allocated, put in |+> and measured into ``m``, then ``rest``, then ``a`` freed."""
    return graph(
        alloc("a", id="alloc_a"),
        {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
        {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
        *rest,
        free("a", id="free_a"),
        vqs=vqs,
        events=events,
    )


def when(node: dict, *terms: tuple[str, int]) -> dict:
    """``node`` guarded by ``terms`` (one: the simple form; more: all of them)."""
    forms = [{"event": e, "equals": v} for e, v in terms]
    return {**node, "guard": forms[0] if len(forms) == 1 else {"all": forms}}


X_Q = {"id": "x", "op": "APPLY_X", "vqs": ["q"]}


def test_a_qubit_allocated_under_a_guard_and_used_on_every_path_is_guarded_lifetime():
    """Before: accepted, and the run failed (an internal KeyError) where m was 0."""
    g = measured(when(alloc("q"), ("m", 1)), X_Q, free("q"))
    findings = check(g).findings
    assert [(f.code, f.node_id) for f in findings if f.is_error] == [
        ("QV208", "x"),
        ("QV208", "free"),
    ]
    assert "qubit 'q' is allocated by node #3 'alloc' only where its guard holds" in str(
        findings[0]
    )
    assert "use-before-alloc (it may not be allocated)" in findings[0].message
    assert "qmk validate --prove" in findings[0].message


def test_the_verifier_follows_one_guard_same_or_opposite_value():
    same = measured(when(alloc("q"), ("m", 1)), when(X_Q, ("m", 1)), when(free("q"), ("m", 1)))
    assert codes(same) == []
    stronger = measured(  # more terms than the allocation's: still only where it ran
        when(alloc("q"), ("m", 1)),
        when(X_Q, ("m", 1), ("m", 1)),
        when(free("q"), ("m", 1)),
    )
    assert codes(stronger) == []
    either_side_freed = measured(
        alloc("q"), when(free("q"), ("m", 1)), when(free("q", id="f0"), ("m", 0))
    )
    assert codes(either_side_freed) == []
    assert verify(either_side_freed).peak_live_qubits == 2


def test_a_use_only_where_the_guard_did_not_hold_is_the_finding_of_its_kind():
    g = measured(when(alloc("q"), ("m", 1)), when(X_Q, ("m", 0)))
    assert codes(g) == ["QV203", "QV207"]
    freed = measured(alloc("q"), when(free("q"), ("m", 1)), when(X_Q, ("m", 1)))
    assert codes(freed) == ["QV202", "QV207"]
    twice = measured(alloc("q"), when(free("q"), ("m", 1)), when(free("q", id="f2"), ("m", 1)))
    assert codes(twice) == ["QV204", "QV207"]


def test_a_qubit_that_may_stay_live_is_a_leak_warning():
    g = measured(alloc("q"), when(free("q"), ("m", 1)))
    (finding,) = check(g).findings
    assert finding.code == "QV207" and "may stay live" in finding.message


def test_channels_follow_guards_as_qubits_do():
    open_chan = {"id": "o", "op": "OPEN_CHAN", "vqs": ["a", "q"], "chs": ["c"]}
    use = {"id": "u", "op": "USE_CHAN", "chs": ["c"]}
    close = {"id": "c", "op": "CLOSE_CHAN", "chs": ["c"]}
    base = {"vqs": ("a", "q"), "events": ("m",)}
    g = graph(
        alloc("a", "q", id="alloc_a"),
        {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
        {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
        when(open_chan, ("m", 1)),
        use,
        close,
        free("a", "q", id="free_a"),
        chs=("c",),
        caps=("CAP_ALLOC", "CAP_LINK"),
        **base,
    )
    assert codes(g) == ["QV208", "QV208", "QV404"]


def test_use_before_alloc_is_reported():
    g = graph({"id": "h", "op": "APPLY_H", "vqs": ["q"]}, alloc("q"), free("q"), vqs=("q",))
    assert codes(g) == ["QV203"]


def test_double_free_is_reported():
    g = graph(alloc("q"), free("q"), free("q", id="again"), vqs=("q",))
    assert codes(g) == ["QV204"]


def test_double_alloc_is_reported_and_realloc_after_free_is_fine():
    twice = graph(alloc("q"), alloc("q", id="again"), free("q"), vqs=("q",))
    assert codes(twice) == ["QV205"]
    reuse = graph(alloc("q"), free("q"), alloc("q", id="again"), free("q", id="f2"), vqs=("q",))
    assert codes(reuse) == []


def test_a_handle_declared_twice_is_reported():
    assert codes(graph(alloc("q"), free("q"), vqs=("q", "q"))) == ["QV206"]


def test_qubits_live_at_the_end_are_a_warning_not_an_error():
    report = check(graph(alloc("q"), vqs=("q",)))
    (finding,) = report.findings
    assert finding.code == "QV207" and finding.severity is Severity.WARNING
    assert report.ok and report.program is not None
    assert report.program.warnings == report.findings


def test_an_event_produced_twice_is_reported():
    g = graph(
        alloc("q"),
        {"id": "m1", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        {"id": "m2", "op": "MEASURE_X", "vqs": ["q"], "produces": ["m"]},
        free("q"),
        vqs=("q",),
        events=("m",),
    )
    (finding,) = check(g).findings
    assert finding.code == "QV301" and finding.node_id == "m2"


@pytest.mark.parametrize("field", ["guard", "inputs"])
def test_reading_an_event_nothing_produces_is_reported(field):
    reader = {"id": "r", "op": "COND_PAULI", "vqs": ["q"], "args": {"mask": "X"}, "inputs": ["e"]}
    if field == "guard":
        reader = {"id": "r", "op": "APPLY_X", "vqs": ["q"], "guard": {"event": "e", "equals": 1}}
    g = graph(alloc("q"), reader, free("q"), vqs=("q",), events=("e",))
    assert codes(g) == ["QV302"]


def test_a_reader_listed_before_its_producer_is_an_error_not_a_reordering():
    g = graph(
        alloc("a", "b"),
        {"id": "x", "op": "APPLY_X", "vqs": ["b"], "guard": {"event": "m", "equals": 1}},
        {"id": "m", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},
        free("a", "b"),
        vqs=("a", "b"),
        events=("m",),
    )
    (finding,) = check(g).findings
    assert finding.code == "QV303" and finding.node_id == "x"


def test_a_reader_its_producer_waits_for_is_a_dependency_cycle():
    # x touches q before the measurement of q (chain x -> m), and reads m's event (m -> x).
    g = graph(
        alloc("q"),
        {"id": "x", "op": "APPLY_X", "vqs": ["q"], "guard": {"all": [{"event": "m", "equals": 1}]}},
        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
        free("q"),
        vqs=("q",),
        events=("m",),
    )
    (finding,) = check(g).findings
    assert finding.code == "QV304" and "'x' -> 'm'" in finding.message


def test_channel_lifetime_findings():
    opened = {"id": "open", "op": "OPEN_CHAN", "vqs": ["a", "b"], "chs": ["c"]}
    use = {"id": "use", "op": "USE_CHAN", "chs": ["c"]}
    close = {"id": "close", "op": "CLOSE_CHAN", "chs": ["c"]}
    kw = {"vqs": ("a", "b"), "chs": ("c",), "caps": ("CAP_ALLOC", "CAP_LINK")}
    assert codes(graph(alloc("a", "b"), use, opened, close, free("a", "b"), **kw)) == ["QV401"]
    after = {**use, "id": "late"}
    assert codes(graph(alloc("a", "b"), opened, close, after, free("a", "b"), **kw)) == ["QV402"]
    again = {**opened, "id": "again"}
    assert codes(graph(alloc("a", "b"), opened, again, close, free("a", "b"), **kw)) == ["QV403"]
    leak = check(graph(alloc("a", "b"), opened, use, free("a", "b"), **kw))
    assert [f.code for f in leak.findings] == ["QV404"] and leak.ok


def test_a_missing_capability_names_the_node_that_needs_it():
    g = graph(
        alloc("q"),
        {"id": "t", "op": "INJECT_T_STATE", "vqs": ["q"]},
        free("q"),
        vqs=("q",),
    )
    (finding,) = check(g).findings
    assert finding.code == "QV501" and finding.node_id == "t" and "CAP_MAGIC" in finding.message


def test_a_node_level_capability_must_also_be_requested_by_the_graph():
    g = graph(
        alloc("q"),
        {"id": "h", "op": "APPLY_H", "vqs": ["q"], "caps": ["CAP_TELEPORT"]},
        free("q"),
        vqs=("q",),
    )
    assert codes(g) == ["QV501"]


def test_unknown_capabilities_are_warnings():
    g = graph(alloc("q"), free("q"), vqs=("q",), caps=("CAP_ALLOC", "CAP_MEASURE"))
    report = check(g)
    assert [f.code for f in report.findings] == ["QV502"] and report.ok


@pytest.mark.parametrize(
    ("limits", "what"),
    [
        (Limits(max_nodes=2), "nodes"),
        (Limits(max_qubits=1), "declared qubits"),
        (Limits(max_name_length=3), "longer than 3"),
        (Limits(max_operands=1), "operands"),
    ],
)
def test_graphs_over_the_configured_limits_are_reported(limits, what):
    g = graph(
        alloc("qubit", "b"),
        {"id": "h", "op": "APPLY_H", "vqs": ["b"]},
        free("qubit", "b"),
        vqs=("qubit", "b"),
    )
    findings = [f for f in check(g, limits=limits).findings if f.code == "QV503"]
    assert findings and what in findings[0].message


def test_every_finding_code_has_a_test_here():
    # the QV6xx placement codes are not findings: tests/qvm/test_teleport.py tests them;
    # the prover's own (QV504) are tested beside it, REPEAT rows' (QV7xx) in test_repeat.py,
    # blocks' (QV704..QV706) in test_blocks.py
    source = "".join(
        path.read_text(encoding="utf-8")
        for path in (
            Path(__file__),
            Path(__file__).with_name("test_prove.py"),
            Path(__file__).with_name("test_repeat.py"),
            Path(__file__).with_name("test_blocks.py"),
        )
    )
    findings = [
        c for c, e in CODES.items() if c.startswith("QV") and e.exception is VerificationError
    ]
    untested = [code for code in findings if f'"{code}"' not in source]
    assert untested == []


def test_all_findings_come_at_once():
    g = graph(
        {"id": "h", "op": "APPLY_H", "vqs": ["q"]},
        alloc("q"),
        {"id": "bad", "op": "NOPE", "vqs": ["q"]},
        {"id": "t", "op": "APPLY_T", "vqs": ["q", "q"]},
        vqs=("q",),
    )
    assert codes(g) == ["QV203", "QV101", "QV102", "QV110", "QV207"]
    with pytest.raises(VerificationError) as caught:
        verify(g)
    assert len(caught.value.findings) == 5
    assert caught.value.exit_status == 1
    assert "\n" not in str(caught.value)


def test_findings_come_in_node_order_each_nodes_own_checks_before_its_handles_then_the_end():
    g = graph(
        alloc("q", id="a"),
        {"id": "h", "op": "APPLY_H", "vqs": ["q", "q"], "args": {"theta": 1}},
        {"id": "h", "op": "MEASURE_Z", "vqs": ["u"], "produces": ["m"]},
        {"id": "r", "op": "MEASURE_X", "vqs": ["q"], "inputs": ["e"], "produces": ["m"]},
        {"id": "f", "op": "FENCE_EPOCH", "caps": ["CAP_NOPE"]},
        {"id": "o", "op": "OPEN_CHAN", "vqs": ["q", "p"], "chs": ["c"], "args": {"x": 1}},
        alloc("p", id="a2"),
        vqs=("q", "q", "p"),
        chs=("c",),
        events=("m",),
        caps=("CAP_ALLOC", "CAP_ZZ"),
    )
    found = [(f.code, f.node_id) for f in check(g).findings]
    assert found == [
        ("QV206", None),  # the declarations first
        ("QV102", "h"),  # then each node: what it says of itself ...
        ("QV105", "h"),
        ("QV110", "h"),
        ("QV109", "h"),
        ("QV201", "h"),  # ... then its handles and events
        ("QV203", "h"),
        ("QV102", "r"),
        ("QV201", "r"),
        ("QV301", "r"),
        ("QV105", "o"),
        ("QV203", "o"),
        ("QV302", "r"),  # then what only the end tells: events, leaks, capabilities
        ("QV207", None),
        ("QV207", None),
        ("QV404", None),
        ("QV501", "o"),
        ("QV502", "f"),
        ("QV502", None),
    ]


def test_findings_of_one_code_are_capped_with_a_summary():
    count = MAX_FINDINGS_PER_CODE + 7
    nodes = [{"id": f"h{i}", "op": "APPLY_H", "vqs": ["q"]} for i in range(count)]
    findings = check(graph(*nodes, vqs=("q",))).findings
    assert len(findings) == MAX_FINDINGS_PER_CODE + 1
    assert "7 more use-before-alloc findings" in findings[-1].message


def test_findings_are_one_line_and_plain_json():
    g = graph(alloc("q"), {"id": "x\ny", "op": "BAD\nOP", "vqs": ["q"]}, free("q"), vqs=("q",))
    for finding in check(g).findings:
        assert "\n" not in str(finding)
        assert json.loads(json.dumps(finding.to_json()))["code"] == finding.code


def test_original_v01_shaped_graphs_verify():
    g = from_json(
        {
            "version": "0.1",
            "description": "original shape",
            "program": {
                "nodes": [
                    {
                        "id": "alloc",
                        "op": "ALLOC_LQ",
                        "args": {"n": 2, "profile": "logical:Surface(d=7)"},
                        "vqs": ["q0", "q1"],
                    },
                    {"id": "h", "op": "APPLY_H", "vqs": ["q0"], "metadata": {"note": "x"}},
                    {"id": "m", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["m0"]},
                    {
                        "id": "fix",
                        "op": "COND_PAULI",
                        "args": {"mask": "X"},
                        "vqs": ["q1"],
                        "inputs": ["m0"],
                    },
                    {"id": "free", "op": "FREE_LQ", "vqs": ["q0", "q1"]},
                ]
            },
            "resources": {"vqs": ["q0", "q1"], "events": ["m0"]},
            "caps": ["CAP_ALLOC", "CAP_MEASURE"],
        }
    )
    report = check(g)
    assert report.ok and [f.code for f in report.findings] == ["QV502"]


# --------------------------------------------------------------------------- the program


def test_dag_follows_handle_chains_events_and_fences():
    g = graph(
        alloc("a", "b"),  # 0
        {"id": "ha", "op": "APPLY_H", "vqs": ["a"]},  # 1
        {"id": "hb", "op": "APPLY_H", "vqs": ["b"]},  # 2
        {"id": "ma", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["m"]},  # 3
        {"id": "fence", "op": "FENCE_EPOCH"},  # 4
        {"id": "xb", "op": "APPLY_X", "vqs": ["b"], "guard": {"event": "m", "equals": 1}},  # 5
        {"id": "pol", "op": "SET_POLICY", "args": {"priority": 1}},  # 6
        free("a", "b"),  # 7
        vqs=("a", "b"),
        events=("m",),
    )
    program = verify(g)
    # free waits for a's measurement through the fence: xb (5) waits for the fence (4).
    assert program.preds == ((), (0,), (0,), (1,), (2, 3), (4,), (4,), (5,))
    assert [e.nodes for e in program.epochs] == [(0, 1, 2, 3), (5, 6, 7)]
    assert [e.fence for e in program.epochs] == [4, None]


def test_rev_segments_are_maximal_unitary_runs_closed_by_irreversible_ops():
    g = graph(
        alloc("a", "b", "c"),  # 0
        {"id": "ha", "op": "APPLY_H", "vqs": ["a"]},  # 1
        {"id": "hc", "op": "APPLY_H", "vqs": ["c"]},  # 2
        {"id": "cx", "op": "APPLY_CNOT", "vqs": ["a", "b"]},  # 3
        {"id": "tag", "op": "BAR_REGION", "vqs": ["a"], "args": {"tag": "t"}},  # 4: transparent
        {"id": "rz", "op": "APPLY_RZ", "vqs": ["b"], "args": {"theta": 0.25}},  # 5
        {"id": "mb", "op": "MEASURE_Z", "vqs": ["b"], "produces": ["m"]},  # 6: closes {a, b}
        {"id": "sa", "op": "APPLY_S", "vqs": ["a"]},  # 7: a new segment
        free("a", "b", "c"),  # 8
        vqs=("a", "b", "c"),
        events=("m",),
    )
    segments = verify(g).rev_segments
    assert [(s.nodes, set(s.qubits), s.closed_by) for s in segments] == [
        ((1, 3, 5), {"a", "b"}, 6),
        ((2,), {"c"}, 8),
        ((7,), {"a"}, 8),
    ]
    undo = uncompute(segments[0], g)
    assert [(n.op, n.vqs, dict(n.args)) for n in undo] == [
        ("APPLY_RZ", ("b",), {"theta": -0.25}),
        ("APPLY_CNOT", ("a", "b"), {}),
        ("APPLY_H", ("a",), {}),
    ]


def test_closing_a_channel_closes_the_segments_of_its_qubits():
    g = graph(
        alloc("a", "b"),
        {"id": "open", "op": "OPEN_CHAN", "vqs": ["a", "b"], "chs": ["c"]},
        {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
        {"id": "close", "op": "CLOSE_CHAN", "chs": ["c"]},
        free("a", "b"),
        vqs=("a", "b"),
        chs=("c",),
        caps=("CAP_ALLOC", "CAP_LINK"),
    )
    (segment,) = verify(g).rev_segments
    assert segment.nodes == (2,) and segment.closed_by == 3


def test_counts_peak_qubits_caps_and_clifford_ness():
    g = graph(
        alloc("a", "b", "c"),
        {"id": "t", "op": "APPLY_T", "vqs": ["a"]},
        {"id": "td", "op": "APPLY_TDG", "vqs": ["a"]},
        {"id": "r", "op": "APPLY_RY", "vqs": ["a"], "args": {"theta": 0.3}},
        {"id": "ccz", "op": "APPLY_CCZ", "vqs": ["a", "b", "c"]},
        {"id": "inj", "op": "INJECT_T_STATE", "vqs": ["c"]},
        {"id": "bell", "op": "MEASURE_BELL", "vqs": ["a", "b"], "produces": ["x", "z"]},
        free("c", id="fc"),
        alloc("d", id="ad"),
        free("a", "b", "d"),
        vqs=("a", "b", "c", "d"),
        events=("x", "z"),
        caps=("CAP_MAGIC", "CAP_ALLOC"),
    )
    program = verify(g)
    counts = program.counts
    assert (
        counts.t_gates,
        counts.rotations,
        counts.ccz_like,
        counts.measurements,
        counts.magic_states,
        counts.non_clifford,
    ) == (2, 1, 1, 1, 1, 5)
    assert counts.by_op["ALLOC_LQ"] == 2 and counts.total == 10
    assert program.peak_live_qubits == 3
    assert program.required_caps == ("CAP_ALLOC", "CAP_MAGIC")
    assert not program.is_clifford


@pytest.mark.parametrize(
    ("theta", "clifford"),
    [
        (math.pi / 2, True),
        (-math.pi, True),
        (0.0, True),
        (3 * math.pi, True),
        (math.pi / 4, False),
        (0.3, False),
    ],
)
def test_rotations_are_clifford_exactly_at_quarter_turns(theta, clifford):
    g = graph(
        alloc("q"),
        {"id": "r", "op": "APPLY_RX", "vqs": ["q"], "args": {"theta": theta}},
        free("q"),
        vqs=("q",),
    )
    assert verify(g).is_clifford is clifford


# --------------------------------------------------------------------------- properties

SETTINGS = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 400))
def test_random_valid_graphs_verify_with_no_findings(seed, size):
    g = random_graph(seed=seed, nodes=size)
    report = check(g)
    assert report.findings == ()
    program = report.program
    assert program is not None
    assert all(p < i for i, preds in enumerate(program.preds) for p in preds)
    covered = sorted(i for epoch in program.epochs for i in epoch.nodes)
    fences = [e.fence for e in program.epochs if e.fence is not None]
    assert sorted(covered + fences) == list(range(len(g.nodes)))


def _insert(g: Graph, index: int, node: Node) -> Graph:
    nodes = list(g.nodes)
    nodes.insert(index, node)
    return dataclasses.replace(g, nodes=tuple(nodes))


def _replace_node(g: Graph, index: int, **changes) -> Graph:
    nodes = list(g.nodes)
    nodes[index] = msgspec.structs.replace(nodes[index], **changes)
    return dataclasses.replace(g, nodes=tuple(nodes))


def _positions(g: Graph, predicate: Callable[[Node], bool]) -> list[int]:
    return [i for i, node in enumerate(g.nodes) if predicate(node)]


def _free_twice(g: Graph, rng: random.Random) -> Graph | None:
    frees = _positions(g, lambda n: n.op == "FREE_LQ")
    i = rng.choice(frees)
    return _insert(g, i + 1, msgspec.structs.replace(g.nodes[i], id="mutant"))


def _use_after_free(g: Graph, rng: random.Random) -> Graph | None:
    i = rng.choice(_positions(g, lambda n: n.op == "FREE_LQ"))
    return _insert(g, i + 1, Node(id="mutant", op="APPLY_H", vqs=(g.nodes[i].vqs[0],)))


def _use_before_alloc(g: Graph, rng: random.Random) -> Graph | None:
    return _insert(g, 0, Node(id="mutant", op="APPLY_X", vqs=(rng.choice(g.nodes[0].vqs),)))


def _double_alloc(g: Graph, rng: random.Random) -> Graph | None:
    i = rng.choice(_positions(g, lambda n: n.op == "ALLOC_LQ"))
    node = Node(id="mutant", op="ALLOC_LQ", vqs=(rng.choice(g.nodes[i].vqs),), caps=("CAP_ALLOC",))
    return _insert(g, i + 1, node)


def _read_unproduced_event(g: Graph, rng: random.Random) -> Graph | None:
    gates = _positions(g, lambda n: n.op.startswith("APPLY_"))
    if not gates:
        return None
    resources = dataclasses.replace(g.resources, events=(*g.resources.events, "ghost"))
    guard = Guard(terms=(GuardTerm(event="ghost", equals=1),))
    mutated = _replace_node(g, rng.choice(gates), guard=guard)
    return dataclasses.replace(mutated, resources=resources)


def _read_before_produced(g: Graph, rng: random.Random) -> Graph | None:
    # A producer in the first epoch: one after a fence would make the reader, which
    # the fence orders before it, a dependency cycle instead.
    fences = _positions(g, lambda n: n.op == "FENCE_EPOCH")
    first_fence = fences[0] if fences else len(g.nodes)
    measures = [i for i in _positions(g, lambda n: n.op.startswith("MEASURE_")) if i < first_fence]
    if not measures:
        return None
    event = g.nodes[rng.choice(measures)].produces[0]
    guard = Guard(terms=(GuardTerm(event=event, equals=0),))
    node = Node(id="mutant", op="BAR_REGION", guard=guard)
    return _insert(g, 0, node)


def _add_cycle(g: Graph, rng: random.Random) -> Graph | None:
    measures = _positions(g, lambda n: n.op in ("MEASURE_Z", "MEASURE_X", "MEASURE_Y"))
    if not measures:
        return None
    i = rng.choice(measures)
    target = g.nodes[i]
    guard = Guard(terms=(GuardTerm(event=target.produces[0], equals=1),))
    return _insert(g, i, Node(id="mutant", op="APPLY_X", vqs=target.vqs, guard=guard))


def _drop_capability(g: Graph, rng: random.Random) -> Graph | None:
    cap = rng.choice(g.caps)
    return dataclasses.replace(g, caps=tuple(c for c in g.caps if c != cap))


def _produce_twice(g: Graph, rng: random.Random) -> Graph | None:
    measures = _positions(g, lambda n: n.op == "MEASURE_Z")
    if not measures:
        return None
    i = rng.choice(measures)
    return _insert(g, i + 1, msgspec.structs.replace(g.nodes[i], id="mutant"))


def _unknown_op(g: Graph, rng: random.Random) -> Graph | None:
    return _replace_node(g, rng.randrange(len(g.nodes)), op="APPLY_SQRT_X")


def _duplicate_id(g: Graph, rng: random.Random) -> Graph | None:
    i = rng.randrange(1, len(g.nodes))
    return _replace_node(g, i, id=g.nodes[0].id)


def _same_qubit_twice(g: Graph, rng: random.Random) -> Graph | None:
    pairs = _positions(g, lambda n: n.op in ("APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP"))
    if not pairs:
        return None
    i = rng.choice(pairs)
    return _replace_node(g, i, vqs=(g.nodes[i].vqs[0],) * 2)


def _undeclare(g: Graph, rng: random.Random) -> Graph | None:
    q = rng.choice(g.resources.vqs)
    resources = dataclasses.replace(g.resources, vqs=tuple(v for v in g.resources.vqs if v != q))
    return dataclasses.replace(g, resources=resources)


def _wrong_arity(g: Graph, rng: random.Random) -> Graph | None:
    pairs = _positions(g, lambda n: n.op in ("APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP"))
    if not pairs:
        return None
    i = rng.choice(pairs)
    return _replace_node(g, i, vqs=g.nodes[i].vqs[:1])


def _drop_angle(g: Graph, rng: random.Random) -> Graph | None:
    rotations = _positions(g, lambda n: n.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"))
    if not rotations:
        return None
    return _replace_node(g, rng.choice(rotations), args={})


def _text_angle(g: Graph, rng: random.Random) -> Graph | None:
    rotations = _positions(g, lambda n: n.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"))
    if not rotations:
        return None
    return _replace_node(g, rng.choice(rotations), args={"theta": "pi/4"})


def _alloc_count(g: Graph, rng: random.Random) -> Graph | None:
    i = rng.choice(_positions(g, lambda n: n.op == "ALLOC_LQ"))
    return _replace_node(g, i, args={**g.nodes[i].args, "n": len(g.nodes[i].vqs) + 1})


def _bad_profile(g: Graph, rng: random.Random) -> Graph | None:
    i = rng.choice(_positions(g, lambda n: n.op == "ALLOC_LQ"))
    return _replace_node(g, i, args={"profile": "logical:surface_code(distance=9)"})


MUTATIONS: dict[str, tuple[Callable[[Graph, random.Random], Graph | None], str]] = {
    "free twice": (_free_twice, "QV204"),
    "use after free": (_use_after_free, "QV202"),
    "use before alloc": (_use_before_alloc, "QV203"),
    "double alloc": (_double_alloc, "QV205"),
    "read an unproduced event": (_read_unproduced_event, "QV302"),
    "read before produced": (_read_before_produced, "QV303"),
    "add a cycle": (_add_cycle, "QV304"),
    "drop a capability": (_drop_capability, "QV501"),
    "produce an event twice": (_produce_twice, "QV301"),
    "unknown op": (_unknown_op, "QV101"),
    "duplicate id": (_duplicate_id, "QV109"),
    "same qubit twice": (_same_qubit_twice, "QV110"),
    "undeclared qubit": (_undeclare, "QV201"),
    "wrong arity": (_wrong_arity, "QV102"),
    "missing angle": (_drop_angle, "QV103"),
    "angle as text": (_text_angle, "QV104"),
    "alloc count": (_alloc_count, "QV106"),
    "bad profile": (_bad_profile, "QV107"),
}


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(30, 200),
    mutation=st.sampled_from(sorted(MUTATIONS)),
)
def test_each_mutation_of_a_valid_graph_is_caught_with_its_own_code(seed, size, mutation):
    mutate, expected = MUTATIONS[mutation]
    mutated = mutate(random_graph(seed=seed, nodes=size), random.Random(seed))
    assume(mutated is not None)
    assert error_codes(mutated) == {expected}


def test_every_mutation_kind_is_exercised_on_a_fixed_graph():
    g = random_graph(seed=2024, nodes=400)
    for name, (mutate, expected) in MUTATIONS.items():
        mutated = mutate(g, random.Random(7))
        assert mutated is not None, name
        assert error_codes(mutated) == {expected}, name


def test_verification_does_not_depend_on_resources_order_or_node_metadata():
    g = random_graph(seed=5, nodes=150)
    shuffled = dataclasses.replace(
        g,
        resources=Resources(
            vqs=tuple(reversed(g.resources.vqs)), chs=g.resources.chs, events=g.resources.events
        ),
    )
    assert check(shuffled).ok and verify(shuffled).counts == verify(g).counts


def test_a_guard_built_in_memory_comparing_with_2_is_arg_invalid() -> None:
    # the JSON reader refuses such a guard; a graph built in memory reaches the verifier
    g = from_json(json.loads((EXAMPLES / "bell.qvm.json").read_text()))
    index = next(i for i, n in enumerate(g.nodes) if n.id == "meas_q0") + 1
    for equals, refused in ((1, False), (2, True)):
        guard = Guard(terms=(GuardTerm(event="m0", equals=equals),))
        flipped = _insert(g, index, Node(id="x_q1", op="APPLY_X", vqs=("q1",), guard=guard))
        findings = {f.name for f in check(flipped).findings}
        assert ("arg-invalid" in findings) is refused, findings
