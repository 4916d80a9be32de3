"""The stim text of plain gates: the compiled loops and the numpy passes find the same
moments and write the same bytes, and a large layered circuit written by them samples
stim's bits of the same circuit written a gate a line."""

from __future__ import annotations

import numpy as np
import pytest
import stim

from qmk.engines import stim_lines
from qmk.engines.batch import BatchCircuit, Instruction, Kind
from qmk.engines.instructions import OBJECT, PLAIN, SITE, Instructions
from qmk.engines.stim_batch import compile_batch

SEED = 20261129


def compiled_or_skip(which: str) -> None:
    if stim_lines._kernel(which) is None:
        pytest.skip(f"no compiled stim loops here: {stim_lines.unavailable_reason()}")


def random_gates(
    seed: int, gates: int, qubits: int, *, cuts: float = 0.0, top: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gates of one to three targets (a qubit may repeat in one) on ``qubits`` qubits
    (numbered up to ``top``), a fraction ``cuts`` after another row, seven gate codes:
    the qubit column, starts, arity, after-other flags and codes."""
    rng = np.random.default_rng(seed)
    arity = rng.choice([1, 1, 1, 2, 2, 3], size=gates).astype(np.int64)
    names = rng.choice(top or qubits, size=qubits, replace=False)
    column = names[rng.integers(0, qubits, size=int(arity.sum()))].astype(np.int64)
    starts = np.cumsum(arity) - arity
    after = rng.random(gates) < cuts
    return column, starts, arity, after, rng.integers(0, 7, size=gates)


CASES = [
    (1, 50_000, 1000, 0.0, None),
    (2, 40_000, 64, 0.01, None),
    (3, 35_000, 5000, 0.2, 9_999_999),  # the widest numbers a slot holds
    (4, 1000, 3, 0.0, None),
]


@pytest.mark.parametrize(("seed", "gates", "qubits", "cuts", "top"), CASES)
def test_the_compiled_loop_finds_the_moments_numpys_passes_find(seed, gates, qubits, cuts, top):
    compiled_or_skip("moments")
    column, starts, arity, after, _ = random_gates(seed, gates, qubits, cuts=cuts, top=top)
    ours = stim_lines.moments(column, starts, arity, after, kernel="compiled")
    theirs = stim_lines.moments(column, starts, arity, after, kernel="numpy")
    assert ours is not None and theirs is not None
    np.testing.assert_array_equal(ours, theirs)


def test_runs_too_short_to_be_worth_moments_are_none_either_way() -> None:
    column, starts, arity, after, _ = random_gates(5, 40_000, 100, cuts=0.3)
    for kernel in ("compiled", "numpy"):
        if kernel == "compiled":
            compiled_or_skip("moments")
        assert stim_lines.moments(column, starts, arity, after, kernel=kernel) is None


def moments_and_order(
    column: np.ndarray, starts: np.ndarray, arity: np.ndarray, after: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gates' moments (a gate each where they would not pay) and numpy's order."""
    moment = stim_lines.moments(column, starts, arity, after, kernel="numpy")
    if moment is None:
        moment = np.arange(len(starts), dtype=np.int32)
    return moment, stim_lines.order_by_moment(moment, codes, 7, kernel="numpy")


@pytest.mark.parametrize(("seed", "gates", "qubits", "cuts", "top"), CASES)
def test_the_compiled_sort_orders_the_gates_as_numpys_stable_sort(seed, gates, qubits, cuts, top):
    compiled_or_skip("order")
    column, starts, arity, after, codes = random_gates(seed, gates, qubits, cuts=cuts, top=top)
    moment, theirs = moments_and_order(column, starts, arity, after, codes)
    ours = stim_lines.order_by_moment(moment, codes, 7, kernel="compiled")
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("seed", "gates", "qubits", "cuts", "top"), [*CASES, (6, 40_000, 100, 0.3, None)]
)
def test_the_compiled_writer_writes_the_bytes_numpy_writes(seed, gates, qubits, cuts, top):
    compiled_or_skip("lines")
    column, starts, arity, after, codes = random_gates(seed, gates, qubits, cuts=cuts, top=top)
    moment, order = moments_and_order(column, starts, arity, after, codes)
    heads = ["H ", "S ", "SQRT_XX_DAG ", "X ", "S_DAG ", "", "CX "]
    count = int(column.max()) + 1
    written = (column, starts, arity, codes, moment, order, heads, count)
    ours = stim_lines.write_lines(*written, kernel="compiled")
    theirs = stim_lines.write_lines(*written, kernel="numpy")
    assert ours[0] == theirs[0]
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[0].endswith(b"\n") and ours[1][-1] == len(ours[0])
    assert ours[0].count(b"\n") == len(np.unique(moment.astype(np.int64) * 7 + codes))


def test_a_large_layered_circuit_samples_stims_bits_of_its_gate_a_line_text() -> None:
    """Past :data:`~qmk.engines.stim_lines.COMPILED_GATES` gates the default takes the
    compiled loops where they build: stim draws the very bits at the same seed."""
    rng = np.random.default_rng(SEED)
    qubits, names = 400, ("h", "s", "sdg", "x", "y", "z")
    gates: list[tuple[str, tuple[int, ...]]] = []
    layers = 0
    while len(gates) <= stim_lines.COMPILED_GATES:
        layers += 1
        gates += [(names[k], (q,)) for q, k in enumerate(rng.integers(0, 6, qubits).tolist())]
        pairs = rng.permutation(qubits).tolist()
        gates += [("cx", (a, b)) for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
    order = sorted({gate for gate, _ in gates})
    sizes = [len(qs) for _, qs in gates] + [0] * qubits
    rows = Instructions(
        np.array([PLAIN] * len(gates) + [OBJECT] * qubits),
        np.array([order.index(gate) for gate, _ in gates] + list(range(qubits))),
        np.r_[0, np.cumsum(sizes)],
        np.array([q for _, qs in gates for q in qs], dtype=np.int64),
        gates=[(name, ()) for name in order],
        objects=[Instruction(kind=Kind.MEASURE, qubits=(q,)) for q in range(qubits)],
    )
    sampler = compile_batch(BatchCircuit(num_qubits=qubits, instructions=rows))
    assert sampler is not None
    stim_names = {"h": "H", "s": "S", "sdg": "S_DAG", "x": "X", "y": "Y", "z": "Z", "cx": "CX"}
    lines = [f"{stim_names[gate]} {' '.join(map(str, qs))}" for gate, qs in gates]
    written = stim.Circuit("\n".join([*lines, "M " + " ".join(map(str, range(qubits)))]))
    assert len(sampler.circuit) <= layers * 7 + 1  # a line a moment and name
    np.testing.assert_array_equal(
        sampler.sample_packed(300, SEED),
        written.compile_sampler(seed=SEED).sample(300, bit_packed=True),
    )


def noisy_rows(seed: int, count: int, qubits: int) -> Instructions:
    """Rows in random order: one- and two-qubit gates (an identity among them), error
    sites on a qubit, and now and then a measurement (an object)."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice([PLAIN, SITE, OBJECT], size=count, p=[0.6, 0.39, 0.01])
    arity = np.where(kinds == PLAIN, rng.choice([1, 2], size=count), 1)
    arity[kinds == OBJECT] = 0
    column = np.concatenate(
        [rng.choice(qubits, size=k, replace=False) for k in arity.tolist()]
    ).astype(np.int64)
    codes = np.where(kinds == PLAIN, rng.integers(0, 3, size=count), 0)
    codes[(kinds == PLAIN) & (arity == 2)] = 3
    objects = [Instruction(kind=Kind.MEASURE, qubits=(0,))]
    return Instructions(
        kinds,
        codes,
        np.r_[0, np.cumsum(arity)],
        column,
        gates=[("h", ()), ("s", ()), ("i", ()), ("cx", ())],
        probs=[(0.1, 0.0, 0.0)],
        objects=objects,
    )


def full_anchors(rows: Instructions, plain: stim_lines.PlainLines) -> np.ndarray:
    """For each error site of the rows, in circuit order, the row after whose text it
    stands (-1: the text's start), found for every site at once: the reference that
    the compiler's search for the sites struck (``stim_batch.SiteAnchors``) must meet.

    A site on qubit ``q`` stands after the moment of the last gate on ``q`` before it,
    or after the last object row before it where that comes later."""
    kinds, offsets = rows.kinds, rows.offsets
    mend = np.full(len(kinds), -1, dtype=np.int64)
    mend[plain.placed] = plain.moment_ends
    gates = np.flatnonzero((kinds == PLAIN) & (mend >= 0))
    sites = np.flatnonzero(kinds == SITE)
    arity = offsets[gates + 1] - offsets[gates]
    first = np.cumsum(arity) - arity
    at = np.repeat(offsets[gates] - first, arity) + np.arange(int(arity.sum()))
    row = np.r_[np.repeat(gates, arity), sites]
    qubit = np.r_[rows.qubits[at], rows.qubits[offsets[sites]]]
    value = np.r_[np.repeat(mend[gates], arity), np.full(len(sites), -1, dtype=np.int64)]
    order = np.lexsort((row, qubit))
    row, qubit, value = row[order], qubit[order], value[order]
    # each entry's latest gate entry at or before it (its qubit's, checked below)
    index = np.where(value >= 0, np.arange(len(order)), -1)
    np.maximum.accumulate(index, out=index)
    found = (index >= 0) & (qubit[np.maximum(index, 0)] == qubit)
    anchor = np.where(found, value[np.maximum(index, 0)], -1)
    is_site = np.zeros(len(kinds), dtype=bool)
    is_site[sites] = True
    mine = is_site[row] & (value < 0)
    by_row = np.empty(len(sites), dtype=np.int64)
    by_row[np.searchsorted(sites, row[mine])] = anchor[mine]
    objects = np.flatnonzero(kinds == OBJECT)  # the last object row before each site
    last_object = np.r_[-1, objects][np.searchsorted(objects, sites)]
    return np.maximum(by_row, last_object)


@pytest.mark.parametrize(("seed", "count", "qubits"), [(9, 20_000, 300), (10, 8_000, 8)])
def test_sites_beside_the_rows_stand_where_sites_as_rows_do(seed, count, qubits):
    """The same error sites as rows of their own and as a side table (each before the
    row it names) compile to the same text, and each stands at the offset of its anchor
    as the full pass finds it (numpy's): found for the sites asked about only."""
    rows = noisy_rows(seed, count, qubits)
    own = rows.kinds != SITE
    site_rows = np.flatnonzero(~own)
    widths = np.diff(rows.offsets)
    beside = Instructions(
        rows.kinds[own],
        rows.codes[own],
        np.r_[0, np.cumsum(widths[own])],
        rows.qubits[np.repeat(own, widths)],
        gates=rows.gates,
        probs=rows.probs,
        objects=rows.objects,
        site_at=site_rows - np.arange(len(site_rows)),
        site_qubits=rows.qubits[rows.offsets[site_rows]],
        site_codes=rows.codes[site_rows],
    )
    assert beside == rows  # read as a sequence: the sites are rows again
    as_rows = compile_batch(BatchCircuit(num_qubits=qubits, instructions=rows))
    as_table = compile_batch(BatchCircuit(num_qubits=qubits, instructions=beside))
    assert as_rows is not None and as_table is not None
    assert as_rows.source == as_table.source and as_rows.flip_text == as_table.flip_text
    plain = stim_lines.PlainLines.of(rows, qubits)
    assert plain is not None
    anchors = full_anchors(rows, plain)
    ends = np.zeros(len(rows) + 1, dtype=np.int64)  # each row's flip text, summed
    ends[plain.rows] = plain.sizes()
    ends[np.flatnonzero(rows.kinds == OBJECT)] = len("M 0\n")  # (each object measures qubit 0)
    np.cumsum(ends[:-1], out=ends[:-1])
    expected = ends[anchors]
    asked = np.random.default_rng(seed).choice(len(site_rows), size=500, replace=False)
    asked.sort()
    for sampler in (as_rows, as_table):
        np.testing.assert_array_equal(sampler.offsets_of(asked), expected[asked])
        np.testing.assert_array_equal(sampler.site_offsets, expected)
        np.testing.assert_array_equal(sampler.site_qubits, beside.site_qubits)
