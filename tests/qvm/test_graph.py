"""The graph loader (every QF code it raises) and canonical ``dumps``."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qmk.qvm import graph, graph_file
from qmk.qvm.codes import BY_NAME
from qmk.qvm.errors import FormatError
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node, Resources, loads
from qmk.qvm.graph_file import dumps
from qmk.qvm.limits import Limits

#: A graph in the shape of the original QMK v0.1 spec, written for this test.
V01_GRAPH = """{
  "version": "0.1",
  "description": "teleport-style feed-forward on two modules",
  "metadata": {"author": "tests", "tags": ["v0.1", "compat"]},
  "program": {
    "nodes": [
      {"id": "alloc_a", "op": "ALLOC_LQ", "args": {"n": 1, "profile": "logical:SHYPS(d=9)"},
       "vqs": ["a"], "chs": [], "inputs": [], "produces": [], "caps": ["CAP_ALLOC"],
       "metadata": {"note": "data qubit"}},
      {"id": "alloc_b", "op": "ALLOC_LQ", "args": {"n": 1, "profile": "logical:Surface(d=7)"},
       "vqs": ["b"], "chs": [], "inputs": [], "produces": [], "caps": []},
      {"id": "h", "op": "APPLY_H", "args": {}, "vqs": ["a"], "chs": [], "inputs": [],
       "produces": [], "caps": []},
      {"id": "m", "op": "MEASURE_Z", "args": {}, "vqs": ["a"], "chs": [], "inputs": [],
       "produces": ["ev_a"], "caps": []},
      {"id": "fix", "op": "APPLY_X", "args": {}, "vqs": ["b"], "chs": [], "inputs": [],
       "produces": [], "caps": [], "guard": {"event": "ev_a", "equals": 1}},
      {"id": "free", "op": "FREE_LQ", "args": {}, "vqs": ["a", "b"], "chs": [], "inputs": [],
       "produces": [], "caps": []}
    ]
  },
  "resources": {"vqs": ["a", "b"], "events": ["ev_a"]},
  "caps": ["CAP_ALLOC"]
}"""


def minimal(**overrides: object) -> dict:
    """A small well-formed graph as JSON data, with top-level keys replaced."""
    data: dict = {
        "version": "0.2",
        "program": {"nodes": [{"id": "a", "op": "ALLOC_LQ", "vqs": ["q"]}]},
        "resources": {"vqs": ["q"], "events": []},
    }
    data.update(overrides)
    return data


def with_node(node: dict) -> str:
    return json.dumps(minimal(program={"nodes": [node]}))


def format_error(text: str | bytes, **kwargs: object) -> FormatError:
    with pytest.raises(FormatError) as info:
        loads(text, source="prog.json", **kwargs)  # type: ignore[arg-type]
    return info.value


def assert_one_line(error: FormatError, code_name: str) -> None:
    assert error.name == code_name
    assert error.code == BY_NAME[code_name].code
    assert "\n" not in str(error), str(error)
    assert str(error).startswith(f"{error.code} {code_name}: ")


# --------------------------------------------------------------------------- v0.1


def test_a_graph_in_the_original_v01_shape_loads_unchanged():
    g = loads(V01_GRAPH)
    assert g.version == "0.1"
    assert g.description == "teleport-style feed-forward on two modules"
    assert g.metadata == {"author": "tests", "tags": ["v0.1", "compat"]}
    assert g.caps == ("CAP_ALLOC",)
    assert g.resources == Resources(vqs=("a", "b"), chs=(), events=("ev_a",))
    assert [n.op for n in g] == [
        "ALLOC_LQ",
        "ALLOC_LQ",
        "APPLY_H",
        "MEASURE_Z",
        "APPLY_X",
        "FREE_LQ",
    ]
    assert g.nodes[0].args == {"n": 1, "profile": "logical:SHYPS(d=9)"}
    assert g.nodes[1].args["profile"] == "logical:Surface(d=7)"
    assert g.nodes[0].metadata == {"note": "data qubit"}
    assert g.nodes[0].caps == ("CAP_ALLOC",)
    assert g.nodes[4].guard == Guard(terms=(GuardTerm(event="ev_a", equals=1),))
    assert g.nodes[5].vqs == ("a", "b")


def test_a_v01_graph_keeps_its_version_and_content_through_dumps():
    g = loads(V01_GRAPH)
    again = loads(dumps(g))
    assert again == g
    assert json.loads(dumps(g))["version"] == "0.1"


# --------------------------------------------------------------------------- QF codes


def test_text_that_is_not_json_is_not_json_with_line_and_column():
    err = format_error('{\n  "version": }')
    assert_one_line(err, "not-json")
    assert "prog.json:2:14:" in err.message
    assert err.details["line"] == 2


def test_nan_is_not_json():
    err = format_error('{"version": "0.2", "metadata": {"x": NaN}}')
    assert_one_line(err, "not-json")
    assert "prog.json" in err.message and "NaN" in err.message


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity"])
def test_infinities_are_not_json(constant: str):
    assert_one_line(format_error(f'{{"version": {constant}}}'), "not-json")


def test_bytes_that_are_not_utf8_are_not_utf8_with_the_byte_offset():
    err = format_error(b'{"version": "\xff"}')
    assert_one_line(err, "not-utf8")
    assert "prog.json: byte 13" in err.message


def test_a_utf8_byte_order_mark_is_allowed():
    assert loads(b"\xef\xbb\xbf" + json.dumps(minimal()).encode()).version == "0.2"


def test_text_over_max_bytes_is_too_large_naming_the_limit():
    err = format_error(json.dumps(minimal()), limits=Limits(max_bytes=10))
    assert_one_line(err, "too-large")
    assert "prog.json" in err.message and "limit of 10" in err.message
    assert err.details["limit"] == 10


def test_a_file_over_max_bytes_is_too_large_before_it_is_read(tmp_path: Path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(minimal()))
    with pytest.raises(FormatError) as info:
        graph_file.load(path, limits=Limits(max_bytes=10))
    assert_one_line(info.value, "too-large")
    assert str(path) in info.value.message


def test_deeply_nested_json_is_too_deep_not_a_crash():
    err = format_error("[" * 100_000)
    assert_one_line(err, "too-deep")
    assert "prog.json" in err.message


def test_metadata_deeper_than_max_depth_is_too_deep_with_its_path():
    nested: object = 1
    for _ in range(Limits().max_depth + 1):
        nested = {"x": nested}
    err = format_error(json.dumps(minimal(metadata=nested)))
    assert_one_line(err, "too-deep")
    assert "prog.json: metadata:" in err.message
    assert err.details["limit"] == Limits().max_depth


def test_metadata_at_exactly_max_depth_loads():
    nested: object = [1]
    for _ in range(2):
        nested = {"x": nested}
    assert loads(json.dumps(minimal(metadata=nested)), limits=Limits(max_depth=3)).metadata


def test_node_args_deeper_than_max_depth_are_too_deep_with_the_node_path():
    text = with_node({"id": "a", "op": "SET_POLICY", "args": {"p": [[[[1]]]]}})
    err = format_error(text, limits=Limits(max_depth=3))
    assert_one_line(err, "too-deep")
    assert "program.nodes[0].args" in err.message


def test_a_field_of_the_wrong_type_is_wrong_type_with_its_path():
    err = format_error(with_node({"id": "a", "op": "APPLY_H", "vqs": "q"}))
    assert_one_line(err, "wrong-type")
    assert "program.nodes[0].vqs: expected an array of strings, got string" in err.message
    assert err.details["path"] == "program.nodes[0].vqs"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (minimal(version=2), "version"),
        (minimal(program=[]), "program"),
        (minimal(program={"nodes": {}}), "program.nodes"),
        (minimal(resources={"vqs": ["q", 1]}), "resources.vqs[1]"),
        (minimal(caps="CAP_ALLOC"), "caps"),
        (minimal(description=["x"]), "description"),
        (minimal(metadata=[]), "metadata"),
        (minimal(program={"nodes": [{"id": 1, "op": "APPLY_H"}]}), "program.nodes[0].id"),
        (minimal(program={"nodes": [{"id": "a", "op": None}]}), "program.nodes[0].op"),
        (minimal(program={"nodes": [{"id": "a", "op": "X", "args": []}]}), "program.nodes[0].args"),
        (
            minimal(program={"nodes": [{"id": "a", "op": "X", "guard": {"all": []}}]}),
            "program.nodes[0].guard.all",
        ),
        (
            minimal(
                program={"nodes": [{"id": "a", "op": "X", "guard": {"event": "m", "equals": "1"}}]}
            ),
            "program.nodes[0].guard.equals",
        ),
    ],
)
def test_wrong_types_everywhere_name_their_path(data: dict, path: str):
    err = format_error(json.dumps(data))
    assert_one_line(err, "wrong-type")
    assert f"prog.json: {path}: expected" in err.message


def test_an_unknown_node_key_is_unknown_key_naming_the_key_and_the_node():
    err = format_error(with_node({"id": "a", "op": "APPLY_H", "opp": "x"}))
    assert_one_line(err, "unknown-key")
    assert "program.nodes[0]: unknown key 'opp'" in err.message
    assert err.details["key"] == "opp"


def test_an_unknown_top_level_key_is_unknown_key():
    err = format_error(json.dumps(minimal(extra=1)))
    assert_one_line(err, "unknown-key")
    assert "graph: unknown key 'extra'" in err.message


def test_a_missing_required_key_is_missing_key_naming_the_key():
    data = minimal()
    del data["resources"]
    err = format_error(json.dumps(data))
    assert_one_line(err, "missing-key")
    assert "prog.json: graph: missing key 'resources'" in err.message


def test_a_node_without_op_is_missing_key_with_the_node_path():
    err = format_error(with_node({"id": "a"}))
    assert_one_line(err, "missing-key")
    assert "program.nodes[0]: missing key 'op'" in err.message


def test_a_repeated_key_is_duplicate_key_naming_the_key():
    err = format_error('{"version": "0.1", "version": "0.2"}')
    assert_one_line(err, "duplicate-key")
    assert "prog.json" in err.message and "'version'" in err.message


def test_an_unknown_version_is_unsupported_version_listing_the_known_ones():
    err = format_error(json.dumps(minimal(version="0.4")))
    assert_one_line(err, "unsupported-version")
    assert "prog.json: version '0.4' is not supported" in err.message
    assert "0.1, 0.2, 0.3" in err.message


@pytest.mark.parametrize(
    ("guard", "path"),
    [
        ({"event": "m", "equals": 2}, "program.nodes[0].guard.equals"),
        ({"all": [{"event": "m", "equals": 1}, {"event": "m", "equals": -1}]}, "guard.all[1]"),
    ],
)
def test_a_guard_equal_to_2_is_bad_value_with_its_path(guard: dict, path: str):
    err = format_error(with_node({"id": "a", "op": "APPLY_H", "vqs": ["q"], "guard": guard}))
    assert_one_line(err, "bad-value")
    assert path in err.message


def test_a_missing_file_is_unreadable_file_naming_the_path(tmp_path: Path):
    path = tmp_path / "nope.json"
    with pytest.raises(FormatError) as info:
        graph_file.load(path)
    assert_one_line(info.value, "unreadable-file")
    assert str(path) in info.value.message


def test_a_directory_is_unreadable_file(tmp_path: Path):
    with pytest.raises(FormatError) as info:
        graph_file.load(tmp_path)
    assert_one_line(info.value, "unreadable-file")


def test_ten_megabytes_of_random_bytes_are_a_format_error():
    noise = random.Random(20240611).randbytes(10 * 1024 * 1024)
    with pytest.raises(FormatError):
        loads(noise)


def test_random_json_like_text_is_a_format_error_and_nothing_else():
    rng = random.Random(7)
    alphabet = '{}[]":, 0123456789.-eEtruefalsnl\\version'
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
        with pytest.raises(FormatError):
            loads(text)


# --------------------------------------------------------------------------- dumps


def sample_graph() -> Graph:
    return Graph(
        version="0.2",
        description="sample",
        nodes=(
            Node(
                id="alloc",
                op="ALLOC_LQ",
                args={"profile": "logical:surface_code(d=3)", "n": 2},
                vqs=("q0", "q1"),
                metadata={"z": 1, "a": {"y": 2, "b": 3}},
            ),
            Node(id="m", op="MEASURE_Z", vqs=("q0",), produces=("m0",)),
            Node(id="m1", op="MEASURE_Z", vqs=("q1",), produces=("m1",)),
            Node(
                id="fix",
                op="COND_PAULI",
                args={"mask": "X"},
                vqs=("q1",),
                inputs=("m0",),
                guard=Guard(
                    terms=(GuardTerm(event="m0", equals=1), GuardTerm(event="m1", equals=0)),
                    conjunction=True,
                ),
            ),
            Node(
                id="one",
                op="APPLY_Z",
                vqs=("q0",),
                guard=Guard(terms=(GuardTerm(event="m1", equals=0),), conjunction=True),
            ),
            Node(
                id="simple",
                op="APPLY_X",
                vqs=("q0",),
                guard=Guard(terms=(GuardTerm(event="m0", equals=1),)),
            ),
            Node(id="free", op="FREE_LQ", vqs=("q0", "q1")),
        ),
        resources=Resources(vqs=("q0", "q1"), events=("m0", "m1")),
        caps=("CAP_ALLOC",),
        metadata={"b": [{"y": 1, "x": 2}], "a": None},
    )


def test_dumps_writes_top_level_keys_in_a_fixed_order():
    data = json.loads(dumps(sample_graph()))
    assert list(data) == ["version", "description", "program", "resources", "caps", "metadata"]
    assert list(data["resources"]) == ["vqs", "chs", "events"]


def test_dumps_writes_node_keys_in_a_fixed_order_and_leaves_empty_fields_out():
    nodes = json.loads(dumps(sample_graph()))["program"]["nodes"]
    assert list(nodes[0]) == ["id", "op", "args", "vqs", "metadata"]
    assert list(nodes[1]) == ["id", "op", "vqs", "produces"]
    assert list(nodes[3]) == ["id", "op", "args", "vqs", "inputs", "guard"]
    assert list(nodes[6]) == ["id", "op", "vqs"]


def test_dumps_sorts_args_and_metadata_keys_at_every_depth():
    data = json.loads(dumps(sample_graph()))
    alloc = data["program"]["nodes"][0]
    assert list(alloc["args"]) == ["n", "profile"]
    assert list(alloc["metadata"]) == ["a", "z"]
    assert list(alloc["metadata"]["a"]) == ["b", "y"]
    assert list(data["metadata"]) == ["a", "b"]
    assert list(data["metadata"]["b"][0]) == ["x", "y"]


def test_dumps_writes_one_node_per_line():
    lines = dumps(sample_graph()).splitlines()
    assert sum(1 for line in lines if line.lstrip().startswith('{"id": ')) == 7


def test_dumps_keeps_both_guard_forms_even_a_one_term_conjunction():
    nodes = json.loads(dumps(sample_graph()))["program"]["nodes"]
    assert nodes[4]["guard"] == {"all": [{"event": "m1", "equals": 0}]}
    assert nodes[5]["guard"] == {"event": "m0", "equals": 1}


def test_loads_of_dumps_gives_the_same_graph():
    for g in (sample_graph(), Graph(), loads(V01_GRAPH)):
        assert loads(dumps(g)) == g


def test_dumps_is_idempotent():
    text = dumps(sample_graph())
    assert dumps(loads(text)) == text
    assert graph_file.canonical(text) == text


def test_dumps_of_an_empty_graph_is_valid_json_with_empty_resources():
    data = json.loads(dumps(Graph()))
    assert data == {
        "version": graph.CURRENT_VERSION,
        "program": {"nodes": []},
        "resources": {"vqs": [], "chs": [], "events": []},
        "caps": [],
    }


def test_canonical_text_does_not_depend_on_input_key_order():
    a = (
        '{"version": "0.2", "program": {"nodes": [{"op": "APPLY_H", "id": "h", "vqs": ["q"]}]},'
        ' "resources": {"events": [], "vqs": ["q"]}}'
    )
    b = (
        '{"resources": {"vqs": ["q"]}, "program": {"nodes": [{"id": "h", "vqs": ["q"],'
        ' "op": "APPLY_H", "args": {}}]}, "version": "0.2"}'
    )
    assert graph_file.canonical(a) == graph_file.canonical(b)


def test_dumps_keeps_non_ascii_text_as_is():
    g = Graph(description="Zustand |ψ⟩")
    assert "|ψ⟩" in dumps(g)
    assert loads(dumps(g)).description == "Zustand |ψ⟩"


@pytest.mark.parametrize(
    ("number", "words"),
    [("1e400", "too large for a float"), ("9" * 5000, "5000 digits is too long")],
)
def test_numbers_json_cannot_hold_are_not_json_rather_than_a_crash(number, words):
    text = (
        '{"version": "0.2", "program": {"nodes": []}, "resources": {}, "metadata": {"x": '
        + number
        + "}}"
    )
    with pytest.raises(FormatError) as caught:
        loads(text, source="n.json")
    assert caught.value.code == "QF004" and words in str(caught.value)
