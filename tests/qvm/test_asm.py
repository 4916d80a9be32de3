"""The assembler and disassembler: exact round trips, every directive, every QA code."""

from __future__ import annotations

import json
import math
import random
import string
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmk.qvm.asm import assemble, assemble_file, disassemble
from qmk.qvm.errors import AsmError, FormatError
from qmk.qvm.graph import Graph, Guard, GuardTerm, Node, Resources
from qmk.qvm.graph_file import dumps
from qmk.qvm.limits import Limits
from qmk.qvm.ops import OPS

# --------------------------------------------------------------------------- strategies

_AWKWARD_NAMES = [
    "",
    " ",
    "q 0",
    "when",
    "caps",
    "meta",
    "meta.x",
    "when.x",
    "caps{",
    "true",
    "null",
    "all",
    "and",
    "a;b",
    "#x",
    "{i}",
    "q{i}",
    '"',
    "\\",
    "'",
    "日本",
    "a.b",
    "_x",
    "0",
    ".vqs",
    "ev:m",
    "vq:q",
    "x=1",
    "a,b",
    "\u2028",
    "\x85",
    "\t",
    "\r",
    "\x00",
]
names = st.one_of(
    st.sampled_from(_AWKWARD_NAMES),
    st.text(max_size=6),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,5}", fullmatch=True),
)
ops = st.one_of(st.sampled_from(sorted(OPS)), st.text(max_size=8), st.sampled_from(_AWKWARD_NAMES))
keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
    st.text(max_size=6),
    st.sampled_from(["when", "caps", "meta", "vq", "in", "out", "ev", "all"]),
)
json_leaves = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 0.0, 1e-300, 5e-324, 1.7976931348623157e308, 1e16, 0.1]),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
terms = st.builds(GuardTerm, event=names, equals=st.sampled_from([0, 1]))
guards = st.one_of(
    st.none(),
    st.builds(lambda term: Guard(terms=(term,)), terms),
    st.builds(
        lambda ts: Guard(terms=tuple(ts), conjunction=True), st.lists(terms, min_size=1, max_size=3)
    ),
)
name_tuples = st.lists(names, max_size=3).map(tuple)
nodes = st.builds(
    Node,
    id=names,
    op=ops,
    args=st.dictionaries(keys, json_values, max_size=4),
    vqs=name_tuples,
    chs=name_tuples,
    inputs=name_tuples,
    produces=name_tuples,
    caps=name_tuples,
    guard=guards,
    metadata=st.one_of(st.none(), json_objects),
)
graphs = st.builds(
    Graph,
    version=st.sampled_from(["0.1", "0.2"]),
    nodes=st.lists(nodes, max_size=5).map(tuple),
    resources=st.builds(Resources, vqs=name_tuples, chs=name_tuples, events=name_tuples),
    caps=name_tuples,
    description=st.one_of(st.none(), st.text(max_size=10)),
    metadata=st.one_of(st.none(), json_objects),
)


def _error(text: str, **kwargs: object) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(text, source="prog.qvm.asm", **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------- round trips


@settings(derandomize=True, max_examples=200, deadline=None)
@given(graphs)
def test_disassembled_text_assembles_to_the_same_canonical_json(graph: Graph) -> None:
    assert dumps(assemble(disassemble(graph))) == dumps(graph)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(graphs)
def test_disassemble_is_idempotent_through_assemble(graph: Graph) -> None:
    text = disassemble(graph)
    assert disassemble(assemble(text)) == text
    assert text.endswith("\n")


def test_floats_ints_and_negative_zero_keep_their_types() -> None:
    graph = assemble("OP a=1, b=1.0, c=-0.0, d=1e-300, e=4 / 2, f=7 // 2, g=-5")
    args = graph.nodes[0].args
    assert type(args["a"]) is int and type(args["b"]) is float
    assert math.copysign(1.0, args["c"]) == -1.0
    assert args["d"] == 1e-300
    assert type(args["e"]) is float and args["f"] == 3 and args["g"] == -5


def test_json_values_are_read_as_json() -> None:
    graph = assemble('OP s="a, b ; # c", o={"x": [1, 2.5, null]}, t=true, f=false, n=null')
    assert graph.nodes[0].args == {
        "s": "a, b ; # c",
        "o": {"x": [1, 2.5, None]},
        "t": True,
        "f": False,
        "n": None,
    }


def test_all_three_guard_forms_round_trip_exactly() -> None:
    text = (
        "a: OP when ev:m == 1\n"
        "b: OP when ev:m == 0 and ev:k == 1\n"
        "c: OP when all(ev:m == 1)\n"
        "d: OP when all(ev:m == 1 and ev:k == 0)\n"
    )
    guards = [node.to_json()["guard"] for node in assemble(text)]
    assert guards == [
        {"event": "m", "equals": 1},
        {"all": [{"event": "m", "equals": 0}, {"event": "k", "equals": 1}]},
        {"all": [{"event": "m", "equals": 1}]},
        {"all": [{"event": "m", "equals": 1}, {"event": "k", "equals": 0}]},
    ]


def test_operand_kinds_may_interleave_and_keep_their_own_order() -> None:
    node = assemble("OP out:e1, vq:b, in:i, vq:a, ch:c, out:e0, k=1").nodes[0]
    assert (node.vqs, node.chs, node.inputs, node.produces) == (
        ("b", "a"),
        ("c",),
        ("i",),
        ("e1", "e0"),
    )


def test_quoted_names_ops_and_keys_are_taken_literally() -> None:
    node = assemble('"my label": "my op" vq:"q {i}", "k ey"=1 caps "meta" meta {}').nodes[0]
    assert (node.id, node.op, node.vqs, dict(node.args), node.caps, node.metadata) == (
        "my label",
        "my op",
        ("q {i}",),
        {"k ey": 1},
        ("meta",),
        {},
    )


def test_comments_start_outside_strings_only() -> None:
    graph = assemble('; full line\n# another\nOP s="x;y#z" ; trailing # more\n\n')
    assert graph.nodes[0].args == {"s": "x;y#z"}


def test_crlf_line_ends_and_a_byte_order_mark_are_accepted() -> None:
    graph = assemble("\ufeffa: OP vq:q\r\nb: OP vq:q\r\n")
    assert [node.id for node in graph] == ["a", "b"]


# --------------------------------------------------------------------------- labels


def test_names_that_merely_start_like_keywords_stay_names() -> None:
    node = assemble("meta.x: OP vq:when.y caps when.z caps.w meta {}").nodes[0]
    assert (node.id, node.vqs, node.caps, node.metadata) == (
        "meta.x",
        ("when.y",),
        ("when.z", "caps.w"),
        {},
    )


def test_a_keyword_followed_by_equals_is_an_argument_key() -> None:
    assert dict(assemble("OP when=1, meta=2").nodes[0].args) == {"when": 1, "meta": 2}


def test_unlabelled_nodes_get_their_one_based_position() -> None:
    assert [n.id for n in assemble("OP\nx: OP\nOP")] == ["n1", "x", "n3"]


def test_generated_ids_skip_labels_used_anywhere_in_the_program() -> None:
    graph = assemble("OP\nn1: OP\nn1_1: OP")
    assert [n.id for n in graph] == ["n1_2", "n1", "n1_1"]


def test_for_loop_interpolates_names() -> None:
    graph = assemble(".for i in range(3)\nh{i}: APPLY_H vq:q{i}\n.endfor")
    assert [(n.id, n.vqs) for n in graph] == [("h0", ("q0",)), ("h1", ("q1",)), ("h2", ("q2",))]


def test_interpolation_may_start_a_name_and_print_strings_as_themselves() -> None:
    graph = assemble('.param p = "anc"\n{p}_x: OP vq:{p}, vq:{p}{1 + 1}')
    assert (graph.nodes[0].id, graph.nodes[0].vqs) == ("anc_x", ("anc", "anc2"))


# --------------------------------------------------------------------------- directives


def test_version_description_and_metadata_directives_set_graph_fields() -> None:
    graph = assemble('.version 0.1\n.description "a \\"demo\\""\n.metadata {"b": 1, "a": [2]}')
    assert (graph.version, graph.description, graph.metadata) == (
        "0.1",
        'a "demo"',
        {"b": 1, "a": [2]},
    )


def test_version_defaults_to_the_current_version() -> None:
    assert assemble("").version == "0.2"


def test_caps_lines_append() -> None:
    assert assemble(".caps CAP_ALLOC\n.caps\n.caps CAP_LINK CAP_MAGIC").caps == (
        "CAP_ALLOC",
        "CAP_LINK",
        "CAP_MAGIC",
    )


def test_resource_lines_append_in_order() -> None:
    graph = assemble(".vqs b a\n.vqs c\n.chs l\n.events m1 m0")
    assert graph.resources == Resources(vqs=("b", "a", "c"), chs=("l",), events=("m1", "m0"))


def test_undeclared_resources_are_inferred_in_order_of_first_appearance() -> None:
    graph = assemble(
        "OP vq:b, vq:a, ch:x, out:p\nOP vq:a, vq:c, in:i, out:o when ev:g == 1\nOP ch:y, ch:x, in:p"
    )
    assert graph.resources == Resources(
        vqs=("b", "a", "c"), chs=("x", "y"), events=("p", "i", "g", "o")
    )


def test_declared_resources_are_exact_even_when_declared_empty() -> None:
    graph = assemble(".vqs\n.chs\n.events only\nOP vq:a, ch:c, out:e")
    assert graph.resources == Resources(vqs=(), chs=(), events=("only",))


def test_param_values_are_visible_to_expressions_and_names() -> None:
    graph = assemble(
        '.param n = 2\n.param theta = pi / n\n.param tag = "t"\nq{n}: OP x=theta, y=tag'
    )
    node = graph.nodes[0]
    assert (node.id, node.args["x"], node.args["y"]) == ("q2", math.pi / 2, "t")


def test_for_loops_take_start_stop_and_step_and_nest() -> None:
    text = ".for i in range(1, 6, 2)\n.for j in range(i, 2 * i, 3)\nn_{i}_{j}: OP\n.endfor\n.endfor"
    assert [n.id for n in assemble(text)] == ["n_1_1", "n_3_3", "n_5_5", "n_5_8"]


def test_loop_variables_end_with_their_loop() -> None:
    assert _error(".for i in range(1)\n.endfor\nOP x=i").name == "asm-undefined"


def test_params_inside_a_loop_are_local_to_one_iteration() -> None:
    graph = assemble(".for i in range(2)\n.param sq = i * i\nOP x=sq\n.endfor")
    assert [n.args["x"] for n in graph] == [0, 1]


def test_if_elif_else_assembles_the_first_true_branch() -> None:
    text = ".param n = {n}\n.if n == 1\none: OP\n.elif n == 2\ntwo: OP\n.else\nother: OP\n.endif"
    assert [[node.id for node in assemble(text.format(n=n))] for n in (1, 2, 3)] == [
        ["one"],
        ["two"],
        ["other"],
    ]


def test_conditions_after_the_true_branch_are_not_evaluated() -> None:
    assert len(assemble(".if 1\nOP\n.elif undefined_name\n.endif")) == 1


def test_macros_expand_with_handle_and_value_parameters() -> None:
    text = (
        ".macro ROT vq:q, ev:m angle\n"
        "r_{q}: APPLY_RZ vq:{q}, theta=angle\n"
        "m_{q}: MEASURE_Z vq:{q}, out:{m}\n"
        ".endmacro\n"
        "ROT vq:a, ev:ma, pi / 2\n"
        "ROT vq:b, ev:mb, 1\n"
    )
    graph = assemble(text)
    assert [(n.id, n.vqs, n.produces, dict(n.args)) for n in graph] == [
        ("r_a", ("a",), (), {"theta": math.pi / 2}),
        ("m_a", ("a",), ("ma",), {}),
        ("r_b", ("b",), (), {"theta": 1}),
        ("m_b", ("b",), ("mb",), {}),
    ]


def test_macros_may_call_other_macros() -> None:
    text = (
        ".macro A vq:q\nAPPLY_H vq:{q}\n.endmacro\n"
        ".macro B vq:q\nA vq:{q}\nA vq:{q}\n.endmacro\n"
        "B vq:x"
    )
    assert [n.op for n in assemble(text)] == ["APPLY_H", "APPLY_H"]


def test_a_quoted_op_is_never_a_macro_call() -> None:
    graph = assemble('.macro M\nAPPLY_H vq:q\n.endmacro\n"M" vq:z')
    assert [n.op for n in graph] == ["M"]


def test_include_reads_a_file_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "gates.qvm.asm").write_text(
        '.param width = 2\n.include "more.qvm.asm"\n', encoding="utf-8"
    )
    (tmp_path / "lib" / "more.qvm.asm").write_text(
        ".macro H vq:q\nh_{q}: APPLY_H vq:{q}\n.endmacro\n", encoding="utf-8"
    )
    main = tmp_path / "main.qvm.asm"
    main.write_text('.include "lib/gates.qvm.asm"\n.for i in range(width)\nH vq:q{i}\n.endfor\n')
    assert [n.id for n in assemble_file(main)] == ["h_q0", "h_q1"]


def test_assemble_takes_base_dir_for_includes(tmp_path: Path) -> None:
    (tmp_path / "x.qvm.asm").write_text("x: OP\n", encoding="utf-8")
    assert [n.id for n in assemble('.include "x.qvm.asm"', base_dir=tmp_path)] == ["x"]


# --------------------------------------------------------------------------- errors, by code


def _assert_located(error: AsmError, code: str, line: int) -> None:
    assert error.name == code
    assert f"prog.qvm.asm:{line}:" in error.message
    assert error.details == {"source": "prog.qvm.asm", "line": line}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("OP\nOP vq:", 2, "expected a name after vq:"),
        ("OP ev:m", 1, "unknown operand kind ev:"),
        ("OP vq:a vq:b", 1, "separated by ','"),
        ("OP x=1, x=2", 1, "given twice"),
        ("OP x=", 1, "has no value"),
        ("OP x=true, y=[1,", 1, "not valid JSON"),
        ("OP when ev:m == 2", 1, "0 or 1"),
        ("OP caps A when ev:m == 1", 1, "out of place"),
        ("OP meta [1]", 1, "JSON object"),
        ('OP meta {"a": 1, "a": 2}', 1, "repeats the key"),
        ("OP x=1e999", 1, "not a finite number"),
        ("OP x=[1e999]", 1, "too large for a float"),
        ("OP x=NaN", 1, "undefined name"),
        ("OP x=1 < 2", 1, "write true or false"),
        ("OP caps", 1, "at least one capability"),
        ("APPLY_H, vq:q", 1, "expected a space after the op"),
        ("= OP", 1, "expected an op"),
        ("q{: OP", 1, "never closed"),
    ],
)
def test_lines_that_do_not_parse_are_located_errors(text: str, line: int, fragment: str) -> None:
    error = _error(text)
    assert error.code.startswith("QA00")
    assert f"prog.qvm.asm:{line}:" in error.message
    assert fragment in error.message


def test_asm_syntax_quotes_the_line() -> None:
    error = _error("ok: OP\nbad: OP vq:")
    _assert_located(error, "asm-syntax", 2)
    assert error.code == "QA001"
    assert "[line is: bad: OP vq:]" in error.message


def test_asm_undefined_names_the_missing_parameter() -> None:
    error = _error("OP\nOP theta=angle")
    _assert_located(error, "asm-undefined", 2)
    assert "'angle'" in error.message


def test_bad_expressions_are_asm_expression_errors() -> None:
    _assert_located(_error("OP x=a.b"), "asm-expression", 1)
    _assert_located(_error(".param a = 1\nOP x=a.real"), "asm-expression", 2)


def test_division_by_zero_is_an_asm_expression_error() -> None:
    error = _error("OP\n.param n = 0\nOP x=1 / n")
    _assert_located(error, "asm-expression", 3)
    assert "division by zero" in error.message


def test_huge_powers_are_refused_not_computed() -> None:
    error = _error("OP x=10 ** 10 ** 10")
    _assert_located(error, "asm-expression", 1)
    assert "exponent" in error.message


def test_unknown_directives_are_asm_directive_errors() -> None:
    error = _error("OP\n.frobnicate 3")
    _assert_located(error, "asm-directive", 2)
    assert "unknown directive .frobnicate" in error.message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (".endfor", 1, ".endfor has no open .for"),
        (".for i in range(2)\n.endif", 2, "innermost open block is .for at line 1"),
        ("OP\n.for i in range(2)\nOP", 2, ".for is never closed"),
        (".if 1\n.else\n.elif 1\n.endif", 3, ".elif cannot follow .else"),
        (".if 1\n.else\n.else\n.endif", 3, "two .else"),
        (".macro M\nOP", 1, ".macro is never closed"),
        (".endmacro", 1, "no open .macro"),
        (".macro M\n.macro N\n.endmacro\n.endmacro", 2, "inside a macro"),
        (".for i in 1..3\n.endfor", 1, ".for is written"),
        (".if\n.endif", 1, "needs a condition"),
        (".endif extra", 1, "no open .if"),
    ],
)
def test_unbalanced_blocks_are_asm_directive_errors(text: str, line: int, fragment: str) -> None:
    error = _error(text)
    _assert_located(error, "asm-directive", line)
    assert fragment in error.message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (".param n = 1\n.param n = 2", 2, "already defined"),
        (".param when = 1", 1, "reserved"),
        (".param pi = 3", 1, "reserved"),
        (".version 9.9", 1, "not supported"),
        (".version 0.2\n.version 0.2", 2, "given twice"),
        ('.description "a"\n.description "b"', 2, "given twice"),
        (".description plain", 1, "JSON string"),
        (".for i in range(1, 2, 0)\n.endfor", 1, "step must not be zero"),
        (".param i = 0\n.for i in range(2)\n.endfor", 2, "already defined"),
        (".macro APPLY_H vq:q\n.endmacro", 1, "cannot name a macro"),
        (".macro include\n.endmacro", 1, "cannot name a macro"),
        (".macro M q:a\n.endmacro", 1, "write vq:NAME"),
        (".macro M a a\n.endmacro", 1, "given twice"),
        (".macro M\n.endmacro\n.macro M\n.endmacro", 3, "already defined at prog.qvm.asm:1"),
        ("M vq:q\n.macro M\n.endmacro", 2, "used as an op at prog.qvm.asm:1"),
    ],
)
def test_misused_directives_are_asm_directive_errors(text: str, line: int, fragment: str) -> None:
    error = _error(text)
    _assert_located(error, "asm-directive", line)
    assert fragment in error.message


def test_macro_handle_kind_mismatch_names_both_kinds() -> None:
    error = _error(".macro M vq:a\nOP vq:{a}\n.endmacro\nM ch:link")
    _assert_located(error, "asm-syntax", 4)
    assert "expected vq: got ch:" in error.message


def test_macro_value_parameter_refuses_a_handle_and_handle_refuses_a_value() -> None:
    assert "takes a value" in _error(".macro M n\n.endmacro\nM vq:q").message
    assert "expected vq: got a value" in _error(".macro M vq:q\n.endmacro\nM 3").message


def test_macro_argument_count_must_match() -> None:
    error = _error(".macro M vq:a n\n.endmacro\nM vq:q")
    _assert_located(error, "asm-syntax", 3)
    assert "takes 2 arguments (vq:a n), got 1" in error.message


def test_macro_calls_take_no_label() -> None:
    error = _error(".macro M\nOP\n.endmacro\nx: M")
    _assert_located(error, "asm-syntax", 4)
    assert "takes no label" in error.message


def test_errors_inside_a_macro_name_the_call_site() -> None:
    error = _error(".macro M n\nOP x=1 / n\n.endmacro\nOP\nM 0")
    _assert_located(error, "asm-expression", 2)
    assert "in macro M called at prog.qvm.asm:5" in error.message


def test_includes_without_a_file_are_asm_include_errors() -> None:
    error = _error('.include "x.qvm.asm"')
    _assert_located(error, "asm-include", 1)
    assert "includes need a file" in error.message


def test_a_missing_include_is_an_asm_include_error(tmp_path: Path) -> None:
    error = _error('OP\n.include "missing.qvm.asm"', base_dir=tmp_path)
    _assert_located(error, "asm-include", 2)
    assert "missing.qvm.asm" in error.message


def test_a_file_including_itself_is_an_include_cycle(tmp_path: Path) -> None:
    path = tmp_path / "self.qvm.asm"
    path.write_text('OP\n.include "self.qvm.asm"\n', encoding="utf-8")
    with pytest.raises(AsmError) as info:
        assemble_file(path)
    assert info.value.name == "asm-include"
    assert f"{path}:2:" in info.value.message
    assert "include cycle" in info.value.message


def test_an_indirect_include_cycle_names_the_chain(tmp_path: Path) -> None:
    (tmp_path / "a.qvm.asm").write_text('.include "b.qvm.asm"\n', encoding="utf-8")
    (tmp_path / "b.qvm.asm").write_text('OP\n.include "a.qvm.asm"\n', encoding="utf-8")
    with pytest.raises(AsmError) as info:
        assemble_file(tmp_path / "a.qvm.asm")
    message = info.value.message
    assert info.value.name == "asm-include"
    assert f"{tmp_path / 'b.qvm.asm'}:2:" in message
    assert "a.qvm.asm -> " in message and "b.qvm.asm -> " in message


def test_errors_in_an_included_file_name_that_file_and_the_include_line(tmp_path: Path) -> None:
    (tmp_path / "inner.qvm.asm").write_text("OP\nOP x=1 / 0\n", encoding="utf-8")
    error = _error('OP\n.include "inner.qvm.asm"', base_dir=tmp_path)
    assert error.name == "asm-expression"
    assert f"{tmp_path / 'inner.qvm.asm'}:2:" in error.message
    assert "included from prog.qvm.asm:2" in error.message


def test_a_non_utf8_include_is_an_asm_include_error(tmp_path: Path) -> None:
    (tmp_path / "bad.qvm.asm").write_bytes(b"OP \xff\xfe\n")
    error = _error('.include "bad.qvm.asm"', base_dir=tmp_path)
    _assert_located(error, "asm-include", 1)
    assert "not UTF-8" in error.message


def test_more_nodes_than_the_limit_is_an_expansion_limit_error() -> None:
    error = _error(".for i in range(11)\nOP\n.endfor", limits=Limits(max_nodes=10))
    _assert_located(error, "asm-expansion-limit", 2)
    assert "more than 10 nodes" in error.message
    assert len(assemble(".for i in range(10)\nOP\n.endfor", limits=Limits(max_nodes=10))) == 10


def test_empty_loops_are_stopped_by_the_iteration_cap() -> None:
    start = time.perf_counter()
    error = _error(".for i in range(10 ** 12)\n.endfor", limits=Limits(max_nodes=10))
    _assert_located(error, "asm-expansion-limit", 1)
    assert time.perf_counter() - start < 2


def test_runaway_macro_recursion_is_an_expansion_limit_error() -> None:
    error = _error(".macro R\nR\n.endmacro\nR")
    _assert_located(error, "asm-expansion-limit", 2)
    assert "deeper than 64" in error.message


def test_branching_macro_recursion_is_stopped_by_the_iteration_cap() -> None:
    text = ".macro R d\n.if d < 60\nR d + 1\nR d + 1\n.endif\n.endmacro\nR 0"
    assert _error(text, limits=Limits(max_nodes=100)).name == "asm-expansion-limit"


def test_ten_megabytes_of_junk_fail_fast_with_a_located_error() -> None:
    rng = random.Random(20240611)
    alphabet = string.printable.replace("\n", "")
    junk_line = "".join(rng.choice(alphabet) for _ in range(1000))
    text = "@" + "\n".join([junk_line] * 10_000)
    start = time.perf_counter()
    error = _error(text)
    assert time.perf_counter() - start < 5
    _assert_located(error, "asm-syntax", 1)
    assert len(error.message) < 400


def test_a_single_ten_megabyte_line_is_quoted_briefly() -> None:
    error = _error("OP x=(" + "1" * 10_000_000)
    assert error.name == "asm-expression"
    assert len(error.message) < 600


def test_deeply_nested_json_in_meta_is_a_syntax_error_not_a_crash() -> None:
    for depth in (40, 100_000):
        error = _error("OP meta " + '{"a": ' * depth + "1" + "}" * depth)
        _assert_located(error, "asm-syntax", 1)
        assert "nests" in error.message


def test_deeply_nested_blocks_are_refused_not_crashed() -> None:
    text = ".if 1\n" * 200 + "OP\n" + ".endif\n" * 200
    _assert_located(_error(text), "asm-directive", 101)


def test_non_utf8_files_are_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.qvm.asm"
    path.write_bytes(b"OP vq:\xff\n")
    with pytest.raises(FormatError) as info:
        assemble_file(path)
    assert info.value.name == "not-utf8"
    assert str(path) in info.value.message


def test_oversized_files_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.qvm.asm"
    path.write_text("OP\n" * 100, encoding="utf-8")
    with pytest.raises(FormatError) as info:
        assemble_file(path, limits=Limits(max_bytes=10))
    assert info.value.name == "too-large"


def test_disassemble_refuses_non_finite_floats() -> None:
    graph = Graph(nodes=(Node(id="a", op="OP", args={"x": math.inf}),))
    with pytest.raises(ValueError, match="not a JSON number"):
        disassemble(graph)


def test_disassembled_text_reads_as_the_same_json_file() -> None:
    graph = assemble(
        '.description "d"\n.metadata {"z": 1}\n.caps C\n'
        'a: ALLOC_LQ vq:q, n=1, profile="logical:surface_code(d=9)" meta {"k": "v"}'
    )
    assert json.loads(dumps(assemble(disassemble(graph)))) == graph.to_json()


_TOKENS = [
    "OP",
    "APPLY_H",
    "x:",
    "vq:",
    "ch:",
    "in:",
    "out:",
    "ev:",
    "q",
    "q{i}",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "==",
    "0",
    "1",
    "-1.5e3",
    "1/0",
    "2**99999",
    '"s"',
    "'t'",
    '"',
    "when",
    "caps",
    "meta",
    "all(",
    "and",
    "{}",
    '{"a":',
    "true",
    "null",
    ".for i in range(3)",
    ".endfor",
    ".if i",
    ".elif 1",
    ".else",
    ".endif",
    ".macro M vq:a n",
    ".endmacro",
    "M",
    ".param p = 2",
    ".vqs",
    ".chs",
    ".events",
    ".caps",
    ".version 0.2",
    '.include "x"',
    ".description",
    ".metadata",
    ";",
    "#",
    "\n",
    "\n",
    "\n",
    " ",
    "\t",
    "日本",
    "\x00",
    "\u2028",
]


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map(" ".join))
def test_any_text_assembles_or_raises_a_located_asm_error(text: str) -> None:
    try:
        assemble(text, source="fuzz.qvm.asm", limits=Limits(max_nodes=50))
    except AsmError as error:
        assert error.message.startswith("fuzz.qvm.asm:")
        assert error.code.startswith("QA")


def test_a_json_number_too_long_for_python_is_a_syntax_error_not_a_crash():
    with pytest.raises(AsmError) as caught:
        assemble('x: APPLY_H vq:q meta {"n": ' + "9" * 5000 + "}\n", source="big.asm")
    assert caught.value.code == "QA001" and "big.asm:1:" in str(caught.value)
    assert "5000 digits is too long" in str(caught.value)
