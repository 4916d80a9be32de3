"""Column programs: the whole-array checks pass a clean program with the verifier's figures
and leave every fault to the verifier's walk of the graph view, which names it. Guards held
as columns (``Columns.guards``: a term a row) are the graph view's guards, checked alike."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from qmk.qvm.columns import OP_CODES, Columns, check, verified
from qmk.qvm.graph import Guard, GuardTerm
from qmk.qvm.limits import Limits
from qmk.qvm.sorted_text import canonical_graph_text
from qmk.qvm.verify import check as verify_check
from qmk.qvm.verify import verify

H, CX, RZ, MZ = (OP_CODES[op] for op in ("APPLY_H", "APPLY_CNOT", "APPLY_RZ", "MEASURE_Z"))
ALLOC, FREE, FENCE = OP_CODES["ALLOC_LQ"], OP_CODES["FREE_LQ"], OP_CODES["FENCE_EPOCH"]
X = OP_CODES["APPLY_X"]


def program(rows: list[tuple[int, tuple[int, ...], float | None]]) -> Columns:
    """Columns of ``(op, qubits, theta)`` rows, each on its own line."""
    qubits = np.full((len(rows), 3), -1, dtype=np.int32)
    for k, (_, qs, _) in enumerate(rows):
        qubits[k, : len(qs)] = qs
    return Columns(
        ops=np.array([r[0] for r in rows], dtype=np.int16),
        qubits=qubits,
        theta=np.array([np.nan if r[2] is None else r[2] for r in rows]),
        lines=np.arange(1, len(rows) + 1, dtype=np.int32),
        source="t.qasm",
    )


CLEAN = [
    (ALLOC, (0, 3), None),
    (H, (0,), None),
    (CX, (0, 1), None),
    (FENCE, (), None),
    (RZ, (2,), 0.5),
    (MZ, (2,), None),
    (FREE, (0, 3), None),
]


def test_a_clean_program_has_the_verifiers_figures_and_no_finding():
    columns = program(CLEAN)
    figures = check(columns)
    report = verify_check(columns.to_graph())
    assert report.ok and not report.findings and report.program is not None
    assert figures is not None
    assert (figures.nodes, figures.epochs, figures.peak_live_qubits) == (
        7,
        len(report.program.epochs),
        report.program.peak_live_qubits,
    )


FAULTS = {
    "use after free": (
        [*CLEAN[:-1], (FREE, (0, 3), None), (H, (1,), None)],
        "use-after-free",
    ),
    "the same qubit twice": ([CLEAN[0], (CX, (1, 1), None), CLEAN[-1]], "duplicate-operand"),
    "a rotation without its angle": ([CLEAN[0], (RZ, (1,), None), CLEAN[-1]], "arg-missing"),
    "a gate with a qubit too many": ([CLEAN[0], (H, (0, 1), None), CLEAN[-1]], "operand-count"),
    "a qubit never allocated": ([CLEAN[0], (H, (5,), None), CLEAN[-1]], "undeclared-handle"),
    "a qubit never freed": (CLEAN[:-1], "qubit-leak"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_is_left_to_the_verifier_which_names_it_with_its_code(fault):
    rows, code = FAULTS[fault]
    columns = program(rows)
    assert check(columns) is None
    report = verify_check(columns.to_graph())
    assert code in {f.name for f in report.findings}, [str(f) for f in report.findings]


def test_a_program_over_a_size_limit_is_left_to_the_verifier():
    columns = program(CLEAN)
    assert check(columns, limits=Limits(max_nodes=6)) is None
    assert check(columns, limits=Limits(max_qubits=2)) is None
    assert check(columns, limits=Limits(max_nodes=7, max_qubits=3)) is not None
    report = verify_check(columns.to_graph(), limits=Limits(max_nodes=6))
    assert {f.name for f in report.findings} == {"graph-too-large"}


def random_program(rng: np.random.Generator, rows: int) -> Columns:
    """A seeded clean column program: qubits allocated in a few groups, then gates of
    one to three qubits (angles on a quarter turn and off it), measurements and fences,
    then frees in groups of their own."""
    names = "APPLY_H APPLY_S APPLY_T APPLY_CNOT APPLY_CZ APPLY_SWAP APPLY_RZ APPLY_RX APPLY_CCX"
    gates = [OP_CODES[op] for op in names.split()]
    width = {OP_CODES["APPLY_CNOT"]: 2, OP_CODES["APPLY_CZ"]: 2, OP_CODES["APPLY_SWAP"]: 2}
    width[OP_CODES["APPLY_CCX"]] = 3
    angled = {OP_CODES["APPLY_RZ"], OP_CODES["APPLY_RX"]}
    n = int(rng.integers(3, 9))
    cuts = sorted({0, n, *rng.integers(1, n, size=2).tolist()})
    out: list[tuple[int, tuple[int, ...], float | None]] = [
        (ALLOC, (a, b), None) for a, b in itertools.pairwise(cuts)
    ]
    for _ in range(rows):
        r = rng.random()
        if r < 0.05:
            out.append((FENCE, (), None))
        elif r < 0.15:
            out.append((MZ, (int(rng.integers(n)),), None))
        else:
            op = int(rng.choice(gates))
            qs = tuple(rng.choice(n, size=width.get(op, 1), replace=False).tolist())
            theta = float(rng.choice([np.pi / 2, -np.pi, 0.3, 2 * np.pi])) if op in angled else None
            out.append((op, qs, theta))
    frees = sorted({0, n, int(rng.integers(1, n))})
    out += [(FREE, (a, b), None) for a, b in itertools.pairwise(frees)]
    return program(out)


@pytest.mark.parametrize("seed", range(8))
def test_a_program_verified_on_its_columns_is_the_verifiers_program(seed: int):
    columns = random_program(np.random.default_rng(seed), 200)
    mine = verified(columns)
    walked = verify(columns.to_graph())
    assert mine is not None
    assert mine.graph == walked.graph
    assert mine.epochs == walked.epochs and mine.peak_live_qubits == walked.peak_live_qubits
    assert mine.counts == walked.counts
    assert list(mine.counts.by_op.items()) == list(walked.counts.by_op.items())
    assert mine.required_caps == walked.required_caps and mine.warnings == walked.warnings
    assert list(mine.preds) == list(walked.preds)  # walked when first read
    assert tuple(mine.rev_segments) == walked.rev_segments
    assert mine.summary() == walked.summary()


def test_a_program_with_a_fault_is_not_verified_on_its_columns():
    assert verified(program([*CLEAN[:-1], (FREE, (0, 3), None), (H, (1,), None)])) is None


@pytest.mark.parametrize("seed", range(8))
def test_the_canonical_text_written_from_the_columns_is_the_graph_views(seed: int):
    from qmk.execution.request import program_digest

    rng = np.random.default_rng(100 + seed)
    columns = random_program(rng, int(rng.integers(1, 400)))
    if seed % 2:  # a profile on every allocation, a source name json escapes, no lines
        columns = Columns(
            ops=columns.ops,
            qubits=columns.qubits,
            theta=columns.theta * rng.choice([1.0, 1e-7, 1e22, -3.3], size=len(columns)),
            lines=np.where(rng.random(len(columns)) < 0.3, 0, columns.lines * 1000 + 7),
            source='dir "x"\\é.qasm',
            description="a \u00e9 description",
            profile="logical:surface_code(d=5)",
            metadata={"language": "openqasm2", "output": {"groups": [["m1", "m0"]]}},
        )
    text = columns.canonical_text()
    assert text == canonical_graph_text(columns.to_graph())
    assert columns.digest() == program_digest(text)
    assert program_digest(text) == program_digest(canonical_graph_text(columns.to_graph()))


def test_an_unknown_profile_is_left_to_the_verifier_which_names_it():
    columns = program(CLEAN)
    columns = Columns(
        ops=columns.ops,
        qubits=columns.qubits,
        theta=columns.theta,
        lines=columns.lines,
        source="t.qasm",
        profile="logical:no_such_code(d=3)",
    )
    assert check(columns) is None
    report = verify_check(columns.to_graph())
    assert "profile-unknown" in {f.name for f in report.findings}


@pytest.mark.parametrize("seed", range(4))
def test_the_graph_views_nodes_made_on_read_are_the_graphs(seed: int):
    import pickle

    columns = random_program(np.random.default_rng(300 + seed), 150)
    whole = columns.to_graph()
    view = columns.graph_view()
    rows = len(whole.nodes)
    for at in [0, 1, rows // 2, rows - 2, rows - 1, -1, -rows]:  # a node alone
        assert view.nodes[at] == whole.nodes[at]
    assert [view.nodes[k] for k in range(rows)] == list(whole.nodes)
    assert view == whole and view.nodes[3:9] == whole.nodes[3:9]
    assert pickle.loads(pickle.dumps(view)) == whole
    with pytest.raises(IndexError):
        view.nodes[rows]


def guarded(columns: Columns, seed: int, share: float = 0.2) -> Columns:
    """``columns`` with a seeded share of its gate rows after the first measurement
    guarded on one to three earlier events, in either form."""
    rng = np.random.default_rng(seed)
    measured = np.cumsum(columns.ops == MZ) - (columns.ops == MZ)
    gates = [
        row
        for row in range(len(columns))
        if measured[row] and columns.ops[row] not in (MZ, OP_CODES["ALLOC_LQ"])
        and columns.ops[row] not in (OP_CODES["FREE_LQ"], OP_CODES["FENCE_EPOCH"])
    ]  # fmt: skip
    terms = []
    for row in gates:
        if rng.random() >= share:
            continue
        count = int(rng.integers(1, min(3, int(measured[row])) + 1))
        conj = int(count > 1 or rng.random() < 0.5)
        for event in rng.choice(int(measured[row]), size=count, replace=False).tolist():
            terms.append((row, event, int(rng.integers(2)), conj))
    assert terms
    return dataclasses.replace(columns, guards=np.array(terms, dtype=np.int32))


@pytest.mark.parametrize("seed", range(6))
def test_a_guarded_program_verified_on_its_columns_is_the_verifiers_program(seed: int):
    columns = guarded(random_program(np.random.default_rng(seed), 200), seed)
    graph = columns.to_graph()
    rows = columns.guarded_rows().tolist()
    assert [k for k, node in enumerate(graph.nodes) if node.guard is not None] == rows
    assert check(columns) is not None
    mine = verified(columns)
    walked = verify(graph)
    assert mine is not None
    assert mine.graph == walked.graph and mine.counts == walked.counts
    assert list(mine.preds) == list(walked.preds)  # the guards' edges
    assert mine.summary() == walked.summary()
    view = columns.graph_view()
    assert [view.nodes[k] for k in rows] == [graph.nodes[k] for k in rows]
    assert columns.canonical_text() == canonical_graph_text(graph)


def test_a_guard_is_its_terms_in_its_form():
    columns = dataclasses.replace(
        program([*CLEAN[:-1], (H, (0,), None), (X, (1,), None), CLEAN[-1]]),
        guards=np.array([[6, 0, 1, 0], [7, 0, 0, 1]], dtype=np.int32),
    )
    nodes = columns.to_graph().nodes
    assert nodes[6].guard == Guard(terms=(GuardTerm(event="m0", equals=1),))
    assert nodes[7].guard == Guard(terms=(GuardTerm(event="m0", equals=0),), conjunction=True)
    assert nodes[5].guard is None and nodes[8].guard is None
    assert check(columns) is not None


BAD = {
    "an event not yet recorded": ([[2, 0, 1, 0]], "dependency-cycle"),
    "an event never recorded": ([[7, 3, 1, 0]], "undeclared-handle"),
    # (the graph reader refuses it; the column checks leave it to the graph path)
    "a value other than 0 or 1": ([[7, 0, 2, 0]], "arg-invalid"),
    "a guarded measurement": ([[5, 0, 1, 0]], None),
    "a guarded free": ([[8, 0, 1, 0]], None),
    "two terms in the simple form": ([[7, 0, 1, 0], [7, 0, 0, 0]], None),
}


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_faulty_guard_is_left_to_the_verifier(fault: str):
    terms, code = BAD[fault]
    rows = [*CLEAN[:-1], (H, (0,), None), (X, (1,), None), CLEAN[-1]]
    rows[5] = (MZ, (2,), None)
    columns = dataclasses.replace(program(rows), guards=np.array(terms, dtype=np.int32))
    assert check(columns) is None
    report = verify_check(columns.to_graph())
    if code is not None:
        assert code in {f.name for f in report.findings}, [str(f) for f in report.findings]
