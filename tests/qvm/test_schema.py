"""The generated JSON Schema: shipped copy, validity, and agreement with the loader."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from qmk.qvm import graph, graph_file, schema
from qmk.qvm.errors import FormatError
from qmk.qvm.limits import Limits
from qmk.qvm.ops import OP_ALIASES, OPERAND_KINDS, OPS, ArgSpec, ArgType
from qmk.qvm.profiles import FAMILIES, ProfileError, parse_profile
from support.paths import ROOT

REGENERATE = "python -m qmk.qvm.schema --write"

SCHEMA = schema.build_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
#: The schema does not express the configurable reading limits, so the loader is
#: compared with them switched off.
NO_LIMITS = Limits(max_depth=None, max_bytes=None)


def loader_accepts(doc: Any) -> bool:
    try:
        graph.from_json(doc, limits=NO_LIMITS)
    except FormatError:
        return False
    return True


def graph_doc(*nodes: dict, **top: Any) -> dict:
    return {
        "version": "0.2",
        "program": {"nodes": list(nodes)},
        "resources": {"vqs": ["q", "r"], "chs": ["c"], "events": ["m"]},
        **top,
    }


# --------------------------------------------------------------------------- the file


def test_shipped_schema_json_is_the_generated_schema():
    shipped = schema.SCHEMA_PATH.read_text(encoding="utf-8")
    assert shipped == schema.schema_text(), (
        f"src/qmk/qvm/schema.json is out of date with the op table; run: {REGENERATE}"
    )


def test_load_schema_reads_the_shipped_file_as_package_data():
    assert schema.load_schema() == SCHEMA


def test_check_flag_passes_on_the_shipped_file(capsys: pytest.CaptureFixture[str]):
    assert schema.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_without_flags_main_prints_the_schema(capsys: pytest.CaptureFixture[str]):
    assert schema.main([]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_op_has_its_rule_under_defs_and_in_the_op_enum():
    node = SCHEMA["$defs"]["node"]
    assert node["properties"]["op"]["enum"] == [*OPS, *OP_ALIASES]
    targets = [rule["then"]["$ref"] for rule in node["allOf"]]
    assert targets == [f"#/$defs/{name}" for name in OPS]
    assert all(name in SCHEMA["$defs"] for name in OPS)


def test_versions_come_from_the_graph_module():
    assert SCHEMA["properties"]["version"]["enum"] == list(graph.VERSIONS)


# --------------------------------------------------------------------------- ops


def valid_value(arg: ArgSpec) -> Any:
    """A value the op table allows for ``arg``."""
    if arg.choices:
        return arg.choices[-1]
    if arg.type is ArgType.NUMBER:
        return arg.maximum if arg.maximum is not None else 0.5
    if arg.type is ArgType.INTEGER:
        return int(arg.minimum) if arg.minimum is not None else 3
    if arg.type is ArgType.STRING:
        return "text"
    if arg.type is ArgType.PROFILE:
        return "logical:surface_code(d=9)"
    if arg.type is ArgType.NUMBERS:
        return [
            arg.maximum if arg.maximum is not None else 0.5,
            0.0 if arg.minimum is None else arg.minimum,
        ]
    if arg.type is ArgType.INTEGERS:
        return [int(arg.maximum) if arg.maximum is not None else 3]
    return {field.name: valid_value(field) for field in arg.fields}


def valid_node(name: str) -> dict:
    spec = OPS[name]
    node: dict[str, Any] = {"id": "n", "op": name}
    pools = {"vqs": ["q", "r", "s"], "chs": ["c"], "inputs": ["m"], "produces": ["m", "k"]}
    for kind in OPERAND_KINDS:
        arity = getattr(spec, kind)
        count = max(arity.low, 1) if arity.high != 0 else 0
        if count:
            node[kind] = pools[kind][:count]
    if spec.args:
        node["args"] = {arg.name: valid_value(arg) for arg in spec.args}
    return node


@pytest.mark.parametrize("name", list(OPS))
def test_a_node_with_every_arg_and_the_listed_operand_counts_is_valid(name: str):
    VALIDATOR.validate(graph_doc(valid_node(name)))


@pytest.mark.parametrize("name", list(OPS))
def test_a_node_with_an_extra_operand_beyond_the_arity_is_invalid(name: str):
    spec = OPS[name]
    node = valid_node(name)
    for kind in OPERAND_KINDS:
        high = getattr(spec, kind).high
        if high is not None:
            bad = copy.deepcopy(node)
            bad[kind] = [f"h{i}" for i in range(high + 1)]
            assert not VALIDATOR.is_valid(graph_doc(bad)), (name, kind)


@pytest.mark.parametrize("name", list(OPS))
def test_a_node_missing_a_required_operand_or_arg_is_invalid(name: str):
    spec = OPS[name]
    node = valid_node(name)
    for kind in OPERAND_KINDS:
        if getattr(spec, kind).low > 0:
            bad = copy.deepcopy(node)
            del bad[kind]
            assert not VALIDATOR.is_valid(graph_doc(bad)), (name, kind)
    for arg in spec.args:
        if arg.required:
            bad = copy.deepcopy(node)
            del bad["args"][arg.name]
            assert not VALIDATOR.is_valid(graph_doc(bad)), (name, arg.name)


@pytest.mark.parametrize("name", list(OPS))
def test_an_unknown_arg_is_invalid_for_every_op(name: str):
    node = valid_node(name)
    node.setdefault("args", {})["bogus"] = 1
    assert not VALIDATOR.is_valid(graph_doc(node))


def test_an_object_arg_refuses_unknown_fields_and_values_out_of_range():
    node = valid_node("OPEN_CHAN")
    node["args"]["opts"]["colour"] = "blue"
    assert not VALIDATOR.is_valid(graph_doc(node))
    node = valid_node("OPEN_CHAN")
    node["args"]["opts"]["fidelity"] = 1.5
    assert not VALIDATOR.is_valid(graph_doc(node))


def test_a_pauli_arg_takes_only_its_choices():
    node = valid_node("COND_PAULI")
    node["args"]["mask"] = "W"
    assert not VALIDATOR.is_valid(graph_doc(node))


def test_unknown_capabilities_are_valid_because_they_are_verifier_warnings():
    node = {"id": "h", "op": "APPLY_H", "vqs": ["q"], "caps": ["CAP_TIME_TRAVEL"]}
    assert VALIDATOR.is_valid(graph_doc(node, caps=["CAP_TIME_TRAVEL"]))


@pytest.mark.parametrize(
    "profile",
    [
        f"logical:{name}(d={d})"
        for family in FAMILIES.values()
        for name in (family.name, *family.aliases)
        for d in (1, 9, 255)
    ]
    + ["logical:Surface(d=7)", "logical:SHYPS(d=9)", " logical:surface-code( d = 3 ) "],
)
def test_the_profile_pattern_accepts_every_profile_the_parser_accepts(profile: str):
    parse_profile(profile)
    assert re.search(schema.PROFILE_PATTERN, profile)


@pytest.mark.parametrize(
    "profile",
    [
        "surface_code(d=9)",
        "logical:surface_code",
        "logical:surface_code(d=x)",
        "logical:surface_code(d=3, r=2)",
        "logical:(d=3)",
        "logical:9x(d=3)",
        "logical:s(3)",
    ],
)
def test_the_profile_pattern_refuses_profiles_that_do_not_parse(profile: str):
    with pytest.raises(ProfileError):
        parse_profile(profile)
    assert not re.search(schema.PROFILE_PATTERN, profile)


# --------------------------------------------------------------------------- clear errors


@pytest.mark.parametrize(
    ("node", "path", "words"),
    [
        ({"id": "a", "op": "APPLY_HH", "vqs": ["q"]}, "$.program.nodes[0].op", "'APPLY_HH'"),
        (
            {"id": "a", "op": "APPLY_RX", "vqs": ["q"], "args": {"theta": "0.5"}},
            "$.program.nodes[0].args.theta",
            "is not of type 'number'",
        ),
        (
            {"id": "a", "op": "APPLY_H", "vqs": ["q"], "guard": {"event": "m", "equals": 2}},
            "$.program.nodes[0].guard.equals",
            "2 is not one of [0, 1]",
        ),
        (
            {
                "id": "a",
                "op": "APPLY_H",
                "vqs": ["q"],
                "guard": {"all": [{"event": "m", "equals": 2}]},
            },
            "$.program.nodes[0].guard.all[0].equals",
            "2 is not one of [0, 1]",
        ),
        ({"id": "a", "op": "APPLY_H", "vqs": ["q"], "opp": 1}, "$.program.nodes[0]", "'opp'"),
        ({"id": "a", "op": "APPLY_CNOT", "vqs": ["q"]}, "$.program.nodes[0].vqs", "too short"),
        ({"id": "a", "op": "APPLY_H"}, "$.program.nodes[0]", "'vqs' is a required property"),
    ],
)
def test_invalid_documents_are_rejected_at_the_exact_path(node: dict, path: str, words: str):
    errors = list(VALIDATOR.iter_errors(graph_doc(node)))
    assert [error.json_path for error in errors] == [path]
    assert words in best_match(errors).message


# --------------------------------------------------------------------------- the loader

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "q", "m", "0.1", "0.2", "APPLY_H", "all", "CAP_ALLOC"])
)
#: Keys for corruptions: most are known somewhere in a graph, so adding one tests
#: that each object refuses the keys it does not own.
KEYS = st.sampled_from(
    [
        *("id", "op", "args", "vqs", "chs", "guard", "event", "equals", "all", "nodes"),
        *("metadata", "version", "program", "resources", "theta", "x", "caps", "events"),
    ]
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=6,
)


def valid_arg(draw: st.DrawFn, arg: ArgSpec) -> Any:
    if arg.choices:
        return draw(st.sampled_from(arg.choices))
    if arg.type is ArgType.NUMBER:
        low = arg.minimum if arg.minimum is not None else -10.0
        high = arg.maximum if arg.maximum is not None else 10.0
        return draw(st.floats(low, high) | st.integers(int(low), int(high)))
    if arg.type is ArgType.INTEGER:
        return draw(st.integers(int(arg.minimum or 0), 5))
    if arg.type is ArgType.PROFILE:
        return draw(st.sampled_from(["logical:surface_code(d=9)", "logical:SHYPS(d=9)"]))
    if arg.type is ArgType.OBJECT:
        return {f.name: valid_arg(draw, f) for f in arg.fields if draw(st.booleans())}
    return draw(st.sampled_from(["tag", "teleport"]))


GUARD_TERMS = st.fixed_dictionaries(
    {"event": st.sampled_from(["m", "k"]), "equals": st.sampled_from([0, 1])}
)
GUARDS = GUARD_TERMS | st.fixed_dictionaries({"all": st.lists(GUARD_TERMS, min_size=1, max_size=2)})


@st.composite
def nodes(draw: st.DrawFn, index: int) -> dict:
    """A node the schema accepts, or (one time in five) one with an op-level fault."""
    spec = OPS[draw(st.sampled_from(list(OPS)))]
    node: dict[str, Any] = {"id": f"n{index}", "op": spec.name}
    for kind in OPERAND_KINDS:
        arity = getattr(spec, kind)
        count = draw(st.integers(arity.low, arity.high if arity.high is not None else 3))
        if count or draw(st.booleans()):
            node[kind] = [f"{kind[0]}{i}" for i in range(count)]
    if draw(st.booleans()):
        node["caps"] = draw(st.lists(st.sampled_from(["CAP_LINK", "CAP_NEW"]), max_size=2))
    args = {a.name: valid_arg(draw, a) for a in spec.args if a.required or draw(st.booleans())}
    if args or draw(st.booleans()):
        node["args"] = args
    if draw(st.booleans()):
        node["guard"] = draw(GUARDS)
    if draw(st.integers(0, 4)) == 0:
        node["metadata"] = draw(st.dictionaries(KEYS, JSON_VALUES, max_size=2))
    # Faults the verifier reports and the schema refuses, but the loader lets through.
    fault = draw(st.sampled_from([*[None] * 12, "op", "count", "arg"]))
    if fault == "op":
        node["op"] = draw(st.sampled_from(["APPLY_HH", "apply_h", ""]))
    elif fault == "count":
        node[draw(st.sampled_from(OPERAND_KINDS))] = ["z0", "z1", "z2", "z3"]
    elif fault == "arg":
        node["args"] = {**args, draw(st.sampled_from(["bogus", "theta", "mask"])): draw(SCALARS)}
    return node


@st.composite
def well_formed_documents(draw: st.DrawFn) -> dict:
    doc: dict[str, Any] = {
        "version": draw(st.sampled_from(["0.1", "0.2"])),
        "program": {"nodes": [draw(nodes(i)) for i in range(draw(st.integers(0, 3)))]},
        "resources": {key: ["a", "b"] for key in ("vqs", "chs", "events") if draw(st.booleans())},
    }
    if draw(st.booleans()):
        doc["caps"] = draw(st.lists(st.sampled_from(["CAP_ALLOC", "CAP_LINK", "CAP_X"])))
    if draw(st.integers(0, 3)) == 0:
        doc["description"] = "d"
    if draw(st.integers(0, 3)) == 0:
        doc["metadata"] = draw(st.dictionaries(KEYS, JSON_VALUES, max_size=2))
    return doc


def containers(value: Any, *, into_free_form: bool = True) -> list[Any]:
    """Every object and array inside ``value`` (``value`` included), in document order.

    With ``into_free_form=False``, the insides of ``metadata`` and ``args`` (whose
    shape the loader does not check) are left out.
    """
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(item)
            stack.extend(
                reversed(
                    [v for k, v in item.items() if into_free_form or k not in ("metadata", "args")]
                )
            )
        elif isinstance(item, list):
            out.append(item)
            stack.extend(reversed(item))
    return out


def corrupt(draw: st.DrawFn, doc: Any) -> None:
    """Change one thing somewhere in ``doc``: add a key, delete one, or replace a value."""
    structure = containers(doc, into_free_form=False)
    action = draw(st.sampled_from(["add", "guard", "delete", "replace"]))
    terms = [c for c in structure if isinstance(c, dict) and "equals" in c]
    if action == "guard" and terms:
        # Guards are the one place the loader checks values, not only types.
        target = draw(st.sampled_from(terms))
        target["equals"] = draw(st.sampled_from([2, -1, True, 1.5, "1", None]))
        return
    if action in ("add", "guard"):
        target = draw(st.sampled_from([c for c in structure if isinstance(c, dict)]))
        target[draw(KEYS)] = draw(JSON_VALUES)
        return
    candidates = [c for c in structure if c]
    if not candidates:
        return
    target = draw(st.sampled_from(candidates))
    key = draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
    if action == "delete":
        del target[key]
    else:
        target[key] = draw(st.sampled_from([2, True, 1.5, None, [], {}, "s"]) | JSON_VALUES)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A graph the schema accepts, mostly, then up to three corruptions anywhere in it."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)
    doc = draw(well_formed_documents())
    for _ in range(draw(st.sampled_from([1, 0, 1, 1, 2, 3]))):
        corrupt(draw, doc)
    return doc


def test_whenever_the_schema_accepts_a_document_the_loader_accepts_it_too():
    seen: Counter[tuple[bool, bool]] = Counter()

    @settings(
        max_examples=200,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(documents())
    def check(doc: Any) -> None:
        schema_ok = VALIDATOR.is_valid(doc)
        # The loader raises FormatError for bad input and nothing else.
        loader_ok = loader_accepts(doc)
        seen[schema_ok, loader_ok] += 1
        if schema_ok:
            assert loader_ok, "the schema accepts a document the loader refuses"
        if not loader_ok:
            assert not schema_ok, "the loader refuses a document the schema accepts"

    check()
    # The mix really mixes: both agree on valid and invalid documents, and the
    # schema refuses some documents that only the verifier would flag.
    assert seen[True, True] >= 10, seen
    assert seen[False, False] >= 10, seen
    assert seen[False, True] >= 5, seen
    assert seen[True, False] == 0


RICH_GRAPH: dict = {
    "version": "0.2",
    "description": "every key of the format at least once",
    "program": {
        "nodes": [
            {
                "id": "a",
                "op": "ALLOC_LQ",
                "args": {"n": 2, "profile": "logical:SHYPS(d=9)"},
                "vqs": ["q", "r"],
                "caps": ["CAP_ALLOC"],
                "metadata": {"k": [1, {"x": None}]},
            },
            {
                "id": "o",
                "op": "OPEN_CHAN",
                "args": {"opts": {"fidelity": 0.9}},
                "vqs": ["q", "r"],
                "chs": ["c"],
            },
            {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["m"]},
            {
                "id": "p",
                "op": "COND_PAULI",
                "args": {"mask": "X"},
                "vqs": ["r"],
                "inputs": ["m"],
                "guard": {"event": "m", "equals": 1},
            },
            {
                "id": "z",
                "op": "APPLY_RZ",
                "args": {"theta": 0.5},
                "vqs": ["r"],
                "guard": {"all": [{"event": "m", "equals": 0}]},
            },
            {"id": "f", "op": "FENCE_EPOCH"},
        ]
    },
    "resources": {"vqs": ["q", "r"], "chs": ["c"], "events": ["m"]},
    "caps": ["CAP_ALLOC", "CAP_LINK"],
    "metadata": {"author": "tests"},
}
REPLACEMENTS = (None, 2, -1, True, 1.5, 1.0, "s", [], {}, ["s"], [1], {"x": 1})


def single_corruptions(doc: dict) -> list[tuple[str, Any]]:
    """Every document that differs from ``doc`` in one place, with a label saying where."""
    out: list[tuple[str, Any]] = []
    for index in range(len(containers(doc, into_free_form=False))):
        for action in ("delete", "add", *range(len(REPLACEMENTS))):
            copy_ = copy.deepcopy(doc)
            target = containers(copy_, into_free_form=False)[index]
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            if action == "add":
                if isinstance(target, dict):
                    target["unknown"] = 1
                    out.append((f"container {index} + unknown key", copy_))
                continue
            for key in keys:
                changed = copy.deepcopy(copy_)
                inner = containers(changed, into_free_form=False)[index]
                if action == "delete":
                    del inner[key]
                else:
                    inner[key] = REPLACEMENTS[action]
                out.append((f"container {index}[{key!r}] {action}", changed))
    return out


def test_every_single_corruption_the_loader_refuses_is_refused_by_the_schema():
    assert VALIDATOR.is_valid(RICH_GRAPH) and loader_accepts(RICH_GRAPH)
    checked = 0
    for label, doc in single_corruptions(RICH_GRAPH):
        checked += 1
        if not loader_accepts(doc):
            assert not VALIDATOR.is_valid(doc), f"schema accepts what the loader refuses: {label}"
    assert checked > 500


def test_a_guard_equal_to_one_point_zero_is_treated_alike_by_schema_and_loader():
    doc = graph_doc(
        {"id": "a", "op": "APPLY_H", "vqs": ["q"], "guard": {"event": "m", "equals": 1.0}}
    )
    assert VALIDATOR.is_valid(doc) == loader_accepts(doc)


def test_null_optional_fields_load_but_the_schema_refuses_them():
    # The loader reads null as absent; the schema asks for the real type.
    doc = graph_doc({"id": "a", "op": "APPLY_H", "vqs": ["q"], "guard": None, "args": None})
    assert loader_accepts(doc)
    assert not VALIDATOR.is_valid(doc)


# --------------------------------------------------------------------------- examples


def example_files() -> list[Path]:
    return sorted((ROOT / "examples").glob("**/*.qvm.json"))


def test_every_example_graph_validates_against_the_schema():
    files = example_files()
    if not files:
        pytest.skip("no examples/*.qvm.json yet")
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        errors = sorted(VALIDATOR.iter_errors(data), key=lambda e: e.json_path)
        assert not errors, f"{path.name}: {errors[0].json_path}: {errors[0].message}"
        graph_file.load(path)


def test_an_op_alias_validates_like_its_op():
    node = {"id": "c", "op": "APPLY_CX", "vqs": ["a"]}
    graph_json = {"version": "0.2", "program": {"nodes": [node]}, "resources": {"vqs": ["a"]}}
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(graph_json))
    assert errors, "APPLY_CX takes two vqs, as APPLY_CNOT does"
    node["vqs"] = ["a", "b"]
    graph_json["resources"] = {"vqs": ["a", "b"]}
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(graph_json))
