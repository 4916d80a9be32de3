"""The bulk reader of flat OpenQASM files gives the statement reader's very program, or
routes the file to it.

For every program here, :func:`read_flat` either gives columns whose graph view has
the same canonical text (so the same digest and the same findings) as
:func:`from_qasm`'s graph, or a :class:`Routed` with its reason; and wherever the
statement reader refuses a program (a coded error), the bulk reader routes it there.
The programs: the examples, hand-written edge cases, seeded random flat programs of
both versions, and seeded mutations of those (mostly broken programs).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from qmk.execution.request import program_digest
from qmk.frontends.errors import FrontendError
from qmk.frontends.qasm import from_qasm
from qmk.frontends.qasm_bulk import Routed, read_flat
from qmk.qvm.columns import Columns, check, verified
from qmk.qvm.graph import Graph
from qmk.qvm.sorted_text import canonical_graph_text
from qmk.qvm.verify import verify

ROOT = Path(__file__).resolve().parents[2]


def statement_reader(source: str, **options) -> Graph | str:
    """The statement reader's graph, or its error's code."""
    try:
        return from_qasm(source, name="p.qasm", **options)
    except FrontendError as exc:
        return exc.code


def assert_same_or_routed(source: str, *, profile: str | None = None) -> Columns | Routed:
    bulk = read_flat(source, "p.qasm", profile=profile)
    reference = statement_reader(source, profile=profile)
    if isinstance(bulk, Routed):
        return bulk
    assert isinstance(reference, Graph), (reference, source)
    view = bulk.to_graph()
    text = canonical_graph_text(view)
    assert text == canonical_graph_text(reference), source
    assert bulk.canonical_text() == text  # written from the columns, no node made
    assert program_digest(text) == program_digest(canonical_graph_text(reference))
    return bulk


def random_flat(rng: random.Random, version: int) -> str:
    """A program of the bulk reader's shape, with two qubit and two bit registers."""
    n, m = rng.randint(2, 5), rng.randint(1, 3)
    if version == 2:
        head = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", "creg c[2];"]
        head += [f"qreg r[{m}];", "creg d[1];"]
    else:
        head = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{n}] q;", "bit[2] c;"]
        head += [f"qubit[{m}] r;", "bit[1] d;"]
    qubits = [f"q[{i}]" for i in range(n)] + [f"r[{i}]" for i in range(m)]
    angles = ["pi/4", "-pi/8", "0.25", "1e-3", "2*pi/3", "-(pi-1)", ".5", "3.", "1/2", "7", "tau"]
    one = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "id"]
    lines = []
    for _ in range(rng.randint(10, 40)):
        a, b, c = rng.sample(qubits, 3)
        r = rng.random()
        space = rng.choice(["", " ", "  "])
        if r < 0.3:
            stmt = f"{rng.choice(one)} {a};"
        elif r < 0.45:
            stmt = f"{rng.choice(['cx', 'cz', 'swap', 'cy', 'ch'])} {a},{space}{b};"
        elif r < 0.5:
            stmt = f"{rng.choice(['ccx', 'cswap'])} {a}, {b},{space}{c};"
        elif r < 0.6:
            stmt = f"{rng.choice(['rz', 'rx', 'ry', 'p', 'u1'])}({rng.choice(angles)}) {a};"
        elif r < 0.65:
            stmt = f"u3({rng.choice(angles)}, {rng.choice(angles)},{rng.choice(angles)}) {a};"
        elif r < 0.7:
            stmt = f"crz({rng.choice(angles)}) {a}, {b};"
        elif r < 0.75:
            stmt = rng.choice(["barrier q;", f"barrier {a}, {b};", "barrier q, r;"])
        elif r < 0.85:
            bit = rng.randrange(2)
            stmt = f"measure {a} -> c[{bit}];" if version == 2 else f"c[{bit}] = measure {a};"
        elif r < 0.9:
            stmt = "measure r -> d;" if m == 1 and version == 2 else "// a comment; with a ;"
        else:
            stmt = f"{rng.choice(one)} {a}; {rng.choice(one)} {b};  // two on a line"
        lines.append(rng.choice(["", "\n", "  "]) + stmt)
    tail = "measure q[0] -> c[1];" if version == 2 else "c[1] = measure q[0];"
    return "\n".join(head + lines) + "\n" + tail + "\n"


def mutate(rng: random.Random, source: str) -> str:
    """``source`` with a few characters deleted, doubled or swapped, or a token put in."""
    chars = list(source)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(chars))
        kind = rng.random()
        if kind < 0.3:
            del chars[at]
        elif kind < 0.5:
            chars.insert(at, chars[at])
        elif kind < 0.7 and at + 1 < len(chars):
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
        else:
            chars.insert(at, rng.choice([" q[9]", ";", ",", "[", "]", "(", "1", "h ", "\n"]))
    return "".join(chars)


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_random_flat_programs_read_in_bulk_give_the_statement_readers_graph(version, seed):
    rng = random.Random(seed)
    read = [assert_same_or_routed(random_flat(rng, version)) for _ in range(10)]
    columns = [r for r in read if isinstance(r, Columns)]
    assert len(columns) >= 5, [r for r in read if isinstance(r, Routed)]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_a_mutated_program_is_read_the_same_or_routed_and_every_refusal_is_routed(version, seed):
    rng = random.Random(100 + seed)
    for _ in range(15):
        assert_same_or_routed(mutate(rng, random_flat(rng, version)))


def test_the_example_and_fixture_programs_read_in_bulk_give_the_same_graph():
    paths = sorted((ROOT / "examples").glob("*.qasm")) + sorted((ROOT / "tests").rglob("*.qasm"))
    read = [assert_same_or_routed(path.read_text(encoding="utf-8")) for path in paths]
    assert sum(isinstance(r, Columns) for r in read) >= 5


def test_a_profile_is_written_on_every_allocation_as_the_statement_reader_writes_it():
    source = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nqreg r[1];\ncx q[0],r[0];\n'
    columns = assert_same_or_routed(source, profile="logical:surface_code(d=5)")
    assert isinstance(columns, Columns)


EDGE_CASES = [
    # a measured bit written twice, and a bit never written: its key bit is None
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[3];\n'
    "measure q[0] -> c[0];\nmeasure q[1] -> c[0];\n",
    # statements on one line, comments between and after, blank lines, tabs
    'OPENQASM 2.0;\n// head\ninclude "qelib1.inc";\n\nqreg q[3];\ncreg c[3];\n'
    "h q[0]; cx q[0],q[1];\t// two\n\n\tcx q[1] , q[2] ;\nmeasure q -> c;\n// end\n",
    # a gate that lowers to several rows, a gate that lowers to none
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nu3(0.1,0.2,0.3) q[1];\nid q[0];\n'
    "cu1(pi/2) q[0],q[1];\nrzz(0.5) q[0],q[1];\n",
    # no measurement, no bits
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nh q[0];\ncx q[0], q[1];\n',
    # a measurement of a whole register into a whole register (OpenQASM 3)
    'OPENQASM 3;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\nc = measure q;\n',
]


@pytest.mark.parametrize("source", EDGE_CASES)
def test_edge_cases_read_in_bulk_give_the_same_graph(source):
    assert isinstance(assert_same_or_routed(source), Columns)


ROUTED = {
    "gate definition": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ngate g a { h a; }\n'
    "g q[0];\n",
    "register operand": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q;\n',
    "reset": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nreset q[0];\n',
    "condition": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\n'
    "if (c == 1) x q[0];\n",
    "block comment": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\n/* x */ h q[0];\n',
    "index past the end": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncx q[0],q[2];\n',
    "same qubit twice": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncx q[1],q[1];\n',
    "unknown gate": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nfoo q[1];\n',
    "wrong arity": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nrz q[1];\n',
    "no include": "OPENQASM 2.0;\nqreg q[2];\nCX q[0],q[1];\n",
    "late declaration": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\nqreg r[1];\n',
    "a variable parameter": 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\n'
    "rz(theta) q[0];\n",
    "a name ending in the only register's": 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
    "qreg q[2];\ncx q[0],aq[1];\n",
}


@pytest.mark.parametrize("why", sorted(ROUTED))
def test_what_the_bulk_reader_does_not_take_is_routed_to_the_statement_reader(why):
    routed = assert_same_or_routed(ROUTED[why])
    assert isinstance(routed, Routed) and routed.reason


def test_the_column_checks_figures_are_the_verifiers():
    rng = random.Random(7)
    for version in (2, 3):
        for _ in range(10):
            columns = read_flat(random_flat(rng, version), "p.qasm")
            if isinstance(columns, Routed):
                continue
            figures = check(columns)
            program = verify(columns.to_graph())
            assert figures is not None
            assert (figures.nodes, figures.epochs, figures.peak_live_qubits) == (
                len(program.graph.nodes),
                len(program.epochs),
                program.peak_live_qubits,
            )
            assert figures.caps == program.required_caps
            mine = verified(columns)
            assert mine is not None and mine.summary() == program.summary()
            assert mine.counts == program.counts


def test_a_wide_file_is_read_in_pieces_with_the_same_rows_and_lines():
    rng = random.Random(3)
    pairs = [rng.sample(range(40), 2) for _ in range(30000)]
    body = "\n".join(f"cx q[{a}],q[{b}];" for a, b in pairs)
    source = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[40];\n{body}\n'
    assert len(source) > 256 * 1024  # more than one piece
    columns = assert_same_or_routed(source)
    assert isinstance(columns, Columns)
    assert len(columns) == 30002 and columns.lines[-2] == 30003
    assert np.array_equal(columns.qubits[1:-1, :2], pairs)


def random_gate_calls(rng: random.Random, version: int, calls: int) -> tuple[str, str]:
    """A program's head and a body of gate calls alone (the array lane's pieces): gates
    of one to three qubits on two registers, with angles, spaces and blank lines."""
    head, body = random_flat(rng, version).split("\n")[:6], []
    qubits = [f"q[{i}]" for i in range(2)] + [f"r[{i}]" for i in range(1)]
    names = ["h", "t", "cx", "cz", "swap", "ccx", "rz(pi/4)", "u3(0.1, -pi/2,(1+2)/3)", "crz(0.5)"]
    width = {"cx": 2, "cz": 2, "swap": 2, "ccx": 3, "crz(0.5)": 2}
    for _ in range(calls):
        name = rng.choice(names)
        picked = rng.sample(qubits, width.get(name, 1))
        sep = rng.choice([",", ", ", " , ", ",\t"])
        body.append(
            rng.choice(["", "  ", "\n"]) + f"{name} {sep.join(picked)}" + rng.choice([";", " ;"])
        )
    return "\n".join(head) + "\n", "\n".join(body) + "\n"


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_gate_calls_alone_are_read_by_the_array_lane_as_the_statement_reader_reads_them(
    version, seed
):
    from qmk.frontends.qasm_bulk import _Reader

    rng = random.Random(200 + seed)
    head, body = random_gate_calls(rng, version, 60)
    assert isinstance(assert_same_or_routed(head + body), Columns)
    reader = _Reader((head + body).encode(), "p.qasm", None, None)
    reader.head(head)
    assert reader.fast_piece(body.encode()[: body.rindex(";") + 1])
    for _ in range(20):  # mutations: the same graph, or routed
        assert_same_or_routed(mutate(rng, head + body))


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_calls_on_a_files_only_register_are_read_by_the_array_lane_as_the_statement_reader_does(
    version, seed
):
    """The array lane's shortcuts for a file of one qubit register (each operand's name
    taken as that register's, checked whole; heads of up to seven bytes read as one
    word) give what the statement reader gives."""
    from qmk.frontends.qasm_bulk import _Reader

    rng = random.Random(300 + seed)
    declare = "qreg qs[6];" if version == 2 else "qubit[6] qs;"
    head = f'OPENQASM {version}.0;\ninclude "{"qelib1" if version == 2 else "stdgates"}.inc";\n'
    head += declare + "\n"
    names = ["h", "sdg", "cx", "swap", "ccx", "rz(pi/4)", "crz(0.5)", "u3(0.1,0.2,0.3)"]
    width = {"cx": 2, "swap": 2, "ccx": 3, "crz(0.5)": 2}
    body = []
    for _ in range(80):
        name = rng.choice(names)
        picked = [f"qs[{q}]" for q in rng.sample(range(6), width.get(name, 1))]
        sep = rng.choice([",", ",", ", ", " , "])
        body.append(f"{name} {sep.join(picked)};")
    source = head + "\n".join(body) + "\n"
    assert isinstance(assert_same_or_routed(source), Columns)
    reader = _Reader(source.encode(), "p.qasm", None, None)
    reader.head(head)
    assert reader.register == b"qs"
    piece = "\n".join(body).encode()
    assert reader.fast_piece(piece)
    for _ in range(20):  # mutations (another name, a digit, a space): the same graph, or routed
        mutated = mutate(rng, source)
        for token in ("aqs[1]", "q[1]", "qs [1]", "qs[01]"):
            if rng.random() < 0.2:
                at = mutated.index(";", len(head)) + 1
                mutated = f"{mutated[:at]} h {token};{mutated[at:]}"
        assert_same_or_routed(mutated)


def test_more_distinct_gate_heads_in_a_piece_than_hash_buckets_are_told_apart():
    """A piece's heads are told apart by a hash into :data:`_BUCKETS` buckets; with more
    distinct heads than buckets some share one, and the piece is read by sorting them,
    as the statement reader reads it."""
    from qmk.frontends.qasm_bulk import _BUCKETS, _Reader

    angles = [f"rz({k}/4096) q[{k % 3}];" for k in range(1, _BUCKETS + 300)]
    head = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\n'
    body = "\n".join(angles) + "\n"
    columns = assert_same_or_routed(head + body)
    assert isinstance(columns, Columns)
    reader = _Reader((head + body).encode(), "p.qasm", None, None)
    reader.head(head)
    assert reader.fast_piece(body.encode()[: body.rindex(";") + 1])  # the array lane's
    assert np.allclose(columns.theta[1:-1], np.arange(1, _BUCKETS + 300) / 4096)
