"""The OpenQASM fast lane reads every program exactly as the reference parser does.

``from_qasm(fast=True)`` (the default) reads common statements with QMK's scanner and
hands the rest to the ``openqasm3`` reference parser; ``fast=False`` gives the whole
program to the reference parser. Both must give the same graph (nodes, metadata,
resources, keys) or the same error (code and message, line included): on Qiskit's
exports of the shared circuits, on hand-written programs, on seeded random programs
that mix every statement form the scanner reads with ones it leaves to the parser,
and on seeded mutations of those (characters deleted, doubled or swapped, tokens
inserted), which are mostly broken programs.
"""

from __future__ import annotations

import gc
import random
import re
from pathlib import Path

import pytest

from qmk.frontends.builder import ProgramBuilder
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qasm_gates import Gates
from qmk.frontends.qasm_scan import KEYWORDS, Scanner, parse_params, statement_end

ROOT = Path(__file__).resolve().parents[2]


def outcome(source: str, fast: bool, **options):
    """The graph, or the error as (code, message)."""
    try:
        return from_qasm(source, name="p.qasm", fast=fast, **options)
    except FrontendError as exc:
        return (exc.code, str(exc))


def assert_same_both_ways(source: str, **options) -> object:
    fast = outcome(source, True, **options)
    reference = outcome(source, False, **options)
    assert fast == reference, source
    return fast


def random_program(rng: random.Random, version: int) -> str:
    """A program mixing what the scanner reads with what it leaves to the parser."""
    lines = [f"OPENQASM {'2.0' if version == 2 else rng.choice(['3', '3.0'])};"]
    lines.append('include "qelib1.inc";' if version == 2 else 'include "stdgates.inc";')
    n = rng.randint(2, 5)
    opaque = version == 2 and rng.random() < 0.5
    if version == 2:
        lines += [f"qreg q[{n}];", "creg c[2];", "creg d[1];"]
        if opaque:
            lines.append("opaque mystery(a, b) x, y;")
    else:
        lines += [f"qubit[{n}] q;", "bit[2] c;", "bit d;", rng.choice(["qubit r;", "qreg r[1];"])]
    angles = ["pi/4", "-pi/8", "0.25", "1e-3", "2*pi/3", "-(pi-1)", ".5", "3.", "1/2", "7", "pi"]
    one = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx"]
    for _ in range(rng.randint(10, 40)):
        a, b = rng.sample(range(n), 2)
        r = rng.random()
        if r < 0.3:
            stmt = f"{rng.choice(one)} q[{a}];"
        elif r < 0.45:
            stmt = f"cx q[{a}],{rng.choice(['', ' ', '  '])}q[{b}];"
        elif r < 0.55:
            stmt = f"{rng.choice(['rz', 'rx', 'ry', 'p', 'u1'])}({rng.choice(angles)}) q[{a}];"
        elif r < 0.6:
            stmt = f"u3({rng.choice(angles)}, {rng.choice(angles)},{rng.choice(angles)}) q[{a}];"
        elif r < 0.63:
            stmt = rng.choice(["h q;", "barrier q;", f"barrier q[{a}], q[{b}];", "reset q;"])
        elif r < 0.7:
            stmt = (
                f"measure q[{a}] -> c[{rng.randrange(2)}];"
                if version == 2 or rng.random() < 0.5
                else f"c[{rng.randrange(2)}] = measure q[{a}];"
            )
        elif r < 0.75:
            stmt = f"if (c == {rng.randrange(4)}) x q[{a}];"
        elif r < 0.78:
            stmt = f"gate g{rng.randrange(1000)}(t) u, v {{ rz(t) u; cx u, v; }}"
        elif r < 0.81:
            stmt = f"// a comment\n/* a block\n comment */ h q[{a}]; t q[{b}];"
        elif r < 0.84:
            stmt = f"cx q[{a}],\n   q[{b}];"
        elif r < 0.87 and version == 3:
            stmt = f"for int i in [0:1] {{ rx(i * 0.1) q[{a}]; }}"
        elif r < 0.9 and n > 2:
            c = next(k for k in range(n) if k not in (a, b))
            stmt = f"ccx q[{a}], q[{b}], q[{c}];"
        elif r < 0.93 and opaque:
            stmt = "mystery(0.1, 0.2) q[0], q[1];" if rng.random() < 0.3 else f"reset q[{a}];"
        else:
            stmt = f"rz(pi / {rng.randint(1, 9)}) q[{a}]; // trailing"
        lines.append(stmt)
    lines.append("measure q[0] -> c[0];" if version == 2 else "c[1] = measure q[1];")
    return "\n".join(lines) + "\n"


def mutate(rng: random.Random, source: str) -> str:
    """One random edit: a character deleted, doubled or swapped, or a token inserted."""
    pos = rng.randrange(len(source))
    kind = rng.randrange(4)
    if kind == 0:
        return source[:pos] + source[pos + 1 :]
    if kind == 1:
        return source[:pos] + source[pos] + source[pos:]
    if kind == 2 and pos + 1 < len(source):
        return source[:pos] + source[pos + 1] + source[pos] + source[pos + 2 :]
    token = rng.choice(
        [
            ";",
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ",",
            " measure ",
            " pi ",
            "-",
            "//",
            "else ",
            "\n",
            "OPENQASM 3;",
            "$0",
            "1_0",
            "2ns",
            "**",
        ]
    )
    return source[:pos] + token + source[pos:]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_random_programs_read_the_same_both_ways(version, seed):
    rng = random.Random(1000 * version + seed)
    source = random_program(rng, version)
    result = assert_same_both_ways(source)
    if "mystery(0.1" in source:  # a call of the opaque gate
        assert isinstance(result, tuple) and result[0] == "QL104", result
    else:
        assert not isinstance(result, tuple), result


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_mutated_programs_give_the_same_graph_or_the_same_error(version, seed):
    rng = random.Random(7000 + 100 * version + seed)
    base = random_program(rng, version)
    for _ in range(25):
        assert_same_both_ways(mutate(rng, base))


def test_qiskit_exports_read_the_same_both_ways(qiskit_program):
    pytest.importorskip("qiskit")
    import qiskit.qasm2
    import qiskit.qasm3

    _, make = qiskit_program
    circuit = make()
    assert not isinstance(assert_same_both_ways(qiskit.qasm3.dumps(circuit)), tuple)
    if not any(i.operation.name in ("if_else", "for_loop") for i in circuit.data):
        assert not isinstance(assert_same_both_ways(qiskit.qasm2.dumps(circuit)), tuple)


def test_the_example_programs_read_the_same_both_ways():
    for path in sorted(ROOT.glob("examples/*.qasm")):
        assert not isinstance(assert_same_both_ways(path.read_text()), tuple), path


EDGE_CASES = [
    "",
    "// only a comment\n",
    "OPENQASM 3;",
    "OPENQASM 2.0;\nqreg q[1];\nOPENQASM 2.0;\n",
    "qubit q;\nhq;\n",
    "qubit q;\nU(0, 0, 0)q;\n",
    "qubit q;\nU(0,0,0) q; else U(0,0,0) q;\n",
    "qubit[2] q;\nU(1_0, 0, 0) q[0];\n",
    "qubit[2] q;\nU(2**2, 0, 0) q[0];\n",
    "qubit[2] q;\nU(+1, 0, 0) q[0];\n",
    "qubit[2] q;\nU(-0.0, 0, 0) q[0];\nU(0.0, 0, 0) q[0];\n",
    "qubit[2] q;\nmeasure q;\n",
    "qubit[2] q;\nbit[2] c;\nc = measure q;\nmeasure q[1] -> c[0];\n",
    "qubit[2] q;\nqubit measure;\n",
    "qubit[2] q;\nreset q[5];\n",
    "qubit[2] q;\nbarrier;\nbarrier q[0], q[1];\n",
    "qreg q[0];\n",
    "qreg q;\nU(0,0,0) q;\n",
    "qubit q; qubit q;\n",
    "OPENQASM 2.0;\nopaque g a;\nqreg q[1];\ng q[0];\n",
    "OPENQASM 2.0;\nqreg q[1];\ng q[0];\nopaque g a;\n",
    "OPENQASM 2.0;\nopaque g(t) a, b;\nopaque g a;\n",
    "OPENQASM 3.0;\nopaque g a;\n",
    'include "stdgates.inc";\nqubit[3] q;\nccx q[0], q[1], q[1];\n',
    'include "stdgates.inc";\nqubit[3] q;\nh q[0]; h q[1]\nh q[2];\n',
    'include "stdgates.inc";\nqubit[3] q;\nrz(pi q[0];\nh q[1];\n',
    'include "stdgates.inc";\nqubit q;\n/* unterminated\nh q;\n',
    'include "stdgates.inc";\nqubit q;\ngate h a { U(0,0,0) a; }\nh q;\n',
    'include "stdgates.inc";\nqubit q;\nh q;\ngate h a { U(1,0,0) a; }\nh q;\n',
    'include "stdgates.inc";\nqubit q;\nfor int i in {1, 2} x q;\nx q;\n',
    'include "stdgates.inc";\nqubit q;\nbit c;\nif (c) { x q; }\nelse { h q; }\nh q;\n',
    'include "stdgates.inc";\nqubit q;\n@annotation here\nh q;\nx q;\n',
    'include "stdgates.inc";\nqubit q;\npragma something; {\nx q;\n',
    'include "stdgates.inc";\nqubit q;\ncal { weird ; } stuff }\nx q;\n',
    'include "stdgates.inc";\nconst float a = 0.5;\nqubit q;\nrx(a) q;\nrx(b) q;\n',
    'include "stdgates.inc";\nqubit q;\nrx(1/0) q;\n',
    'include "stdgates.inc";\nqubit q;\nrx(2im) q;\nrx(2ns) q;\n',
    'include "stdgates.inc";\nqubit q;\nrx(π) q;\nrx(pi) q;\n',
    'include "qelib1.inc";\r\nqreg q[1];\r\nh q[0];\r\n',
    # a gate lowered before, called on other qubits (read by its shape) or wrongly
    'include "stdgates.inc";\nqubit[3] q;\ncx q[0], q[1];\ncx q[1], q[2];\ncx q[2],q[2];\n',
    'include "stdgates.inc";\nqubit[3] q;\ncx q[0], q[1];\ncx q[1], q[3];\n',
    'include "stdgates.inc";\nqubit[3] q;\nqubit r;\ncx q[0], q[1];\ncx r[0], q[2];\n'
    "cx q[2], s[0];\n",
    'include "stdgates.inc";\nqubit[3] q;\nh q[0];\ngate h a { U(1,0,0) a; }\nh q[1];\n',
    'include "stdgates.inc";\nqubit[3] q;\ngate g a, b { cx b, a; h a; }\ng q[0], q[1];\n'
    "g q[2], q[0];\ng q[1] , q[ 2 ] ;\ng q[0];\n",
    # one node, on the called qubits in another order: not the call's own order
    'include "stdgates.inc";\nqubit[3] q;\ngate rev a, b { cx b, a; }\nrev q[0], q[1];\n'
    "rev q[2], q[0];\nrev q[1], q[2];\n",
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\nqreg r[2];\ncx q[0],r[1];\ncx r[0],q[2];\n'
    "CX q[1],q[0];\nCX q[2],q[1];\nreset q[2];\nreset q[0];\nbarrier q[1];\nbarrier q[2];\n",
]


@pytest.mark.parametrize("source", EDGE_CASES)
def test_edge_cases_read_the_same_both_ways(source):
    assert_same_both_ways(source)


def test_opaque_is_accepted_unused_and_refused_with_a_code_where_called():
    ok = from_qasm('OPENQASM 2.0;\ninclude "qelib1.inc";\nopaque g(t) a, b;\nqreg q[1];\nh q[0];\n')
    assert [n.op for n in ok.nodes] == ["ALLOC_LQ", "APPLY_H", "FREE_LQ"]
    with pytest.raises(FrontendError) as info:
        from_qasm("OPENQASM 2.0;\nopaque g a;\nqreg q[1];\ng q[0];\n", name="o.qasm")
    assert info.value.code == "QL104"
    assert "o.qasm:4: gate g is opaque" in str(info.value)


def test_a_syntax_error_after_a_semantic_one_is_reported_first_as_the_reference_does():
    source = "OPENQASM 3.0;\nqubit q;\nfoo q;\n" + "U(0,0,0) q;\n" * 50 + "U(0,0,0 q;\n"
    code, message = outcome(source, True)
    assert code == "QL101" and "p.qasm:54:" in message
    assert outcome(source, False) == (code, message)


def test_the_scanner_leaves_what_it_does_not_read_to_the_parser_with_its_position():
    items = list(Scanner("qubit q;\n  if (c) { x q; }\nx q;"))
    assert [i[0] for i in items] == ["qreg", "chunk", "gate"]
    assert items[1][3:] == (2, 2)  # line 2, column 2


def test_parameter_expressions_follow_the_grammars_precedence():
    assert parse_params("-a*b") == (("*", ("neg", ("id", "a")), ("id", "b")),)
    assert parse_params("a-b-c") == (("-", ("-", ("id", "a"), ("id", "b")), ("id", "c")),)
    assert parse_params("1,") is None
    assert parse_params("") == ()


@pytest.mark.parametrize("text", ["2pi", "2π", "1.5\u00e9", "3\U0001d70b", "1_000", "7.5."])
def test_a_number_run_into_a_name_or_any_non_ascii_letter_is_left_to_the_parser(text):
    assert parse_params(text) is None


def test_a_number_before_an_operator_or_space_is_read() -> None:
    assert parse_params("2 * pi") == (("*", ("n", 2), ("id", "pi")),)
    assert parse_params("2/\u00a0") is None  # a no-break space is no OpenQASM whitespace


def test_statement_ends_respect_blocks_sets_and_else():
    text = "for int i in {1, 2} { x q; } h q;"
    assert text[: statement_end(text, 0)] == "for int i in {1, 2} { x q; }"
    text = "if (c) x q; else { y q; } h q;"
    assert text[: statement_end(text, 0)] == "if (c) x q; else { y q; }"


def test_the_scanners_keywords_are_the_reference_lexers() -> None:
    from openqasm3._antlr.qasm3Lexer import qasm3Lexer

    words = {name.strip("'") for name in qasm3Lexer.literalNames if name}
    words |= {"true", "false", "pragma", "im"}
    assert {w for w in words if re.fullmatch(r"[A-Za-z_]\w*", w)} == KEYWORDS


def test_a_lowered_program_is_freed_by_its_reference_count_not_the_cyclic_collector() -> None:
    # issue 47: the lowerer held a dict of its own bound methods, a cycle, so a big
    # program's builder and its nodes waited for the cyclic collector, which freed them
    # in one go (23-50 ms with the interpreter held) on whichever thread set it off.
    # (Counted by type: what a cache lets go meanwhile may be in cycles of its own.)
    body = "x q[0];\nmeasure q[1] -> c[1];\nreset q[1];\nbarrier q;\n" * 500
    source = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n{body}'
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage
    try:
        graph = from_qasm(source, name="p.qasm")
        assert len(graph.nodes) > 1500
        del graph
        gc.collect()
        in_cycles = [o for o in gc.garbage if isinstance(o, Gates | ProgramBuilder)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not in_cycles, f"in reference cycles: {in_cycles}"
