"""Fused segments: the fusion plan, the kernels (compiled and numpy), and the engine's
fused path against its gate-by-gate path, a dense reference, the executor and Aer.

The reference for a kernel is the full ``2**n`` operator, built entry by entry from the
matrix (independent of both kernels). The engine's gate-by-gate path (``max_fused=1``) is
the reference for its fused path; it meets the conformance checks on its own elsewhere.
All randomness is seeded.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import qmk
from qmk.engines import fusion, kernels, simd
from qmk.engines.base import EngineError, apply_segment
from qmk.engines.gates import GATES
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.statevector import StatevectorEngine
from qmk.qvm.asm import assemble
from qmk.testing import assert_engine_conformance
from support.workloads import random_gates as brickwork_gates

#: The kernel implementations that run here (``simd`` needs llvmlite).
HERE = [k for k in kernels.KERNELS if k == "numpy" or simd.available()]
DTYPES = ("complex64", "complex128")
TOLERANCE = {"complex64": 2e-5, "complex128": 1e-11}
NAMES = sorted(GATES)


def random_unitary(rng: np.random.Generator, size: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size)))
    return q * (np.diag(r) / abs(np.diag(r)))


def full_operator(matrix: np.ndarray, bits: Sequence[int], n: int) -> np.ndarray:
    """The ``2**n`` operator of ``matrix`` whose index bit ``j`` is state bit ``bits[j]``."""
    size = 1 << n
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    mask = sum(1 << b for b in bits)
    sub_row = np.zeros_like(rows)
    sub_col = np.zeros_like(cols)
    for j, b in enumerate(bits):
        sub_row |= ((rows >> b) & 1) << j
        sub_col |= ((cols >> b) & 1) << j
    same_rest = (rows & ~mask) == (cols & ~mask)
    return np.where(same_rest, matrix[sub_row, sub_col], 0)


def random_gates(
    rng: np.random.Generator, n: int, count: int
) -> list[tuple[str, list[int], list[float]]]:
    """Gates of every kind, with rotations by generic angles."""
    out = []
    for _ in range(count):
        name = NAMES[rng.integers(len(NAMES))]
        spec = GATES[name]
        if spec.qubits > n:
            name, spec = "h", GATES["h"]
        qubits = [int(q) for q in rng.permutation(n)[: spec.qubits]]
        out.append((name, qubits, [float(rng.uniform(-7, 7)) for _ in spec.params]))
    return out


def run_engine(
    gates: Sequence[tuple[str, list[int], list[float]]],
    n: int,
    *,
    segments: int = 1,
    **options: Any,
) -> np.ndarray:
    """The final state (wire 0 most significant) of ``gates`` cut into ``segments``."""
    engine = StatevectorEngine(seed=0, **options)
    qs = [engine.allocate() for _ in range(n)]
    cuts = np.linspace(0, len(gates), segments + 1).astype(int)
    for lo, hi in itertools.pairwise(cuts):
        engine.apply_segment([(g, [qs[q] for q in w], p) for g, w, p in gates[lo:hi]])
    return engine.state_vector(qs)


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
def test_every_gate_lands_in_one_block_in_order_within_the_width(seed: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    gates = random_gates(rng, n, int(rng.integers(0, 60)))
    blocks = fusion.plan([(w, GATES[g].matrix(p)) for g, w, p in gates], max_width=width)
    placed = [i for block in blocks for i in block.gates]
    assert sorted(placed) == list(range(len(gates)))  # each gate exactly once
    for q in range(n):  # the gates on each qubit apply in their order
        on_q = [i for i in placed if q in gates[i][1]]
        assert on_q == sorted(on_q), (seed, q, on_q)
    for block in blocks:
        widest = max(len(gates[i][1]) for i in block.gates)
        assert len(block.qubits) <= max(width, widest)
        assert set(block.qubits) == {q for i in block.gates for q in gates[i][1]}
        assert block.matrix.shape == (1 << len(block.qubits),) * 2


@pytest.mark.parametrize("seed", range(6))
def test_a_blocks_matrix_is_the_product_of_its_gates(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 5
    gates = random_gates(rng, n, 40)
    for block in fusion.plan([(w, GATES[g].matrix(p)) for g, w, p in gates], max_width=4):
        k = len(block.qubits)
        expected = np.eye(1 << k, dtype=complex)
        for i in block.gates:  # qubit block.qubits[0] is the most significant bit
            name, wires, params = gates[i]
            bits = [k - 1 - block.qubits.index(w) for w in reversed(wires)]
            expected = full_operator(GATES[name].matrix(params), bits, k) @ expected
        np.testing.assert_allclose(block.matrix, expected, atol=1e-12)


def test_a_brickwork_fuses_into_four_qubit_blocks() -> None:
    gates = brickwork_gates(20, 20, seed=0)
    blocks = fusion.plan([(w, GATES[g].matrix(p)) for g, w, p in gates])
    widths = [len(b.qubits) for b in blocks]
    assert max(widths) == 4 and widths.count(4) > 0.8 * len(blocks)
    assert len(blocks) < len(gates) / 20  # 1390 gates in about 60 passes


def assert_folds_exactly(
    gates: Sequence[tuple[str, list[int], list[float]]], paulis: Sequence[tuple[int, str]], n: int
) -> None:
    """fold_paulis(plan(gates), paulis): every gate and Pauli in one block, numbered
    Paulis first, and the blocks' product that of the Paulis then the gates."""
    body = [(w, GATES[g].matrix(p)) for g, w, p in gates]
    expected = np.eye(1 << n, dtype=complex)
    for name, wires, params in [(p, [q], []) for q, p in paulis] + list(gates):
        bits = [n - 1 - q for q in wires][::-1]
        expected = full_operator(GATES[name].matrix(params), bits, n) @ expected
    for diagonal_width in (0, fusion.DIAGONAL_WIDTH):
        planned = fusion.plan(body, max_width=3, diagonal_width=diagonal_width)
        folded = fusion.fold_paulis(planned, [(q, GATES[p].matrix()) for q, p in paulis])
        assert sorted(i for b in folded for i in b.gates) == list(range(len(gates) + len(paulis)))
        got = np.eye(1 << n, dtype=complex)
        for block in folded:
            matrix = np.diag(block.matrix) if block.diagonal else block.matrix
            got = full_operator(matrix, [n - 1 - q for q in block.qubits][::-1], n) @ got
        np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_paulis_folded_into_a_plan_are_the_plan_of_the_paulis_then_the_gates(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    n = 5
    gates = random_gates(rng, n - 1, 30)  # qubit n - 1: only a Pauli may touch it
    paulis = [(int(q), str(rng.choice(["x", "y", "z"]))) for q in rng.permutation(n)[:3]]
    assert_folds_exactly(gates, paulis, n)


@pytest.mark.parametrize("paulis", [[(0, "z"), (1, "y"), (2, "x")], [(0, "y"), (2, "z")]])
def test_paulis_before_a_diagonal_block_fold_into_it_or_go_first(
    paulis: list[tuple[int, str]],
) -> None:
    """A Z multiplies a diagonal block's entries; an X or Y cannot fold into one."""
    gates = [("cz", [0, 1], []), ("rz", [1], [0.4]), ("cz", [1, 2], []), ("t", [2], [])]
    assert_folds_exactly(gates, paulis, 3)


# --------------------------------------------------------------------------- the kernels


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 8])
def test_a_kernel_applies_the_full_operator(which: str, dtype: str, n: int) -> None:
    rng = np.random.default_rng(n)
    for k in range(1, min(n, 5) + 1):
        for _ in range(4):
            bits = [int(b) for b in rng.permutation(n)[:k]]
            matrix = random_unitary(rng, 1 << k)
            psi = (rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)).astype(dtype)
            expected = full_operator(matrix, bits, n) @ psi.astype(complex)
            kernels.apply_matrix(psi, matrix, bits, kernels=which)
            np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 10, err_msg=f"{bits}")


@pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed")
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_threaded_simd_kernel_agrees_with_numpy_on_a_large_state(dtype: str) -> None:
    rng = np.random.default_rng(7)
    n = 17  # above PARALLEL_MIN: the steps are cut between threads
    for bits in ([0, 1, 2, 3], [16, 2, 9, 5], [15, 16], [1, 12, 6, 0, 14]):
        matrix = random_unitary(rng, 1 << len(bits))
        psi = (rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)).astype(dtype)
        expected = psi.copy()
        kernels.apply_numpy(expected, matrix, bits)
        simd.apply_matrix(psi, matrix, bits, threads=3)
        np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 10)


@pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed")
@pytest.mark.parametrize("bits", [[3, 3], [10], [-1], [0, 1, 2]])
def test_the_simd_kernel_refuses_bits_outside_the_state_instead_of_writing_there(
    bits: list[int],
) -> None:
    psi = np.zeros(1 << 10, dtype=np.complex64)
    with pytest.raises(ValueError, match="does not fit"):
        simd.apply_matrix(psi, np.eye(1 << len(bits) if len(bits) < 3 else 4), bits)


def _threaded_kernel_in_child(queue: Any) -> None:
    psi = np.zeros(1 << 17, dtype=np.complex64)
    psi[0] = 1
    simd.apply_matrix(psi, GATES["h"].matrix(), [16], threads=2)
    queue.put(float(abs(psi[1 << 16]) ** 2))


@pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_runs_threaded_kernels_with_threads_of_its_own() -> None:
    """A child forked after its parent's kernel threads started has none of them: it
    starts its own (it used to wait for the parent's forever)."""
    psi = np.zeros(1 << 17, dtype=np.complex64)
    simd.apply_matrix(psi, np.eye(2), [3], threads=2)  # the parent's threads start
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_threaded_kernel_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)  # a hang, not a speed: it finishes in milliseconds
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(0.5)


def test_the_kernels_default_to_simd_where_llvmlite_imports() -> None:
    assert kernels.default_kernels() == ("simd" if simd.available() else "numpy")
    assert StatevectorEngine().kernels == kernels.default_kernels()


# --------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_a_fused_segment_gives_the_gate_by_gate_state(which: str, dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3 + seed * 2
    gates = random_gates(rng, n, 30 * n)
    expected = run_engine(gates, n, max_fused=1)
    for width in (2, 3, 4, 5):
        got = run_engine(
            gates, n, segments=3, dtype=dtype, kernels=which, max_fused=width, fused_min_qubits=0
        )
        assert np.max(np.abs(got - expected)) < TOLERANCE[dtype] * n, (width, n)


@pytest.mark.parametrize("which", HERE)
def test_a_brickwork_segment_gives_the_gate_by_gate_state(which: str) -> None:
    gates = brickwork_gates(12, 8, seed=3)
    expected = run_engine(gates, 12, max_fused=1)
    for dtype in DTYPES:
        got = run_engine(gates, 12, dtype=dtype, kernels=which)  # 12 >= fused_min_qubits
        assert np.max(np.abs(got - expected)) < TOLERANCE[dtype] * 12


def test_a_segment_the_bookkeeping_does_for_free_takes_no_amplitudes() -> None:
    engine = StatevectorEngine(seed=1, fused_min_qubits=0)
    qs = [engine.allocate() for _ in range(25)]
    ghz = [("h", [qs[0]], [])] + [("cx", [a, b], []) for a, b in itertools.pairwise(qs)]
    engine.apply_segment([*ghz, ("t", [qs[5]], []), ("rz", [qs[9]], [0.3])])
    assert engine.tensor_qubits == 1
    assert sorted(set(engine.sample(qs, 64).sum(axis=1).tolist())) == [0, 25]


def test_pending_bookkeeping_folds_into_the_fused_blocks() -> None:
    """Flips, pending one-qubit matrices, phases and cx bookkeeping from ``apply`` calls
    before a fused segment are applied first, exactly once."""
    rng = np.random.default_rng(11)
    n = 6
    before = [*random_gates(rng, n, 40), ("x", [2], []), ("h", [3], []), ("cx", [0, 4], [])]
    segment = random_gates(rng, n, 60)
    expected = run_engine(before + segment, n, max_fused=1)
    engine = StatevectorEngine(seed=0, fused_min_qubits=0)
    qs = [engine.allocate() for _ in range(n)]
    for g, w, p in before:
        engine.apply(g, [qs[q] for q in w], p)
    engine.apply_segment([(g, [qs[q] for q in w], p) for g, w, p in segment])
    np.testing.assert_allclose(engine.state_vector(qs), expected, atol=1e-10)


def test_only_a_pauli_folds_into_a_plan() -> None:
    blocks = fusion.plan([((0, 1), GATES["cz"].matrix())])
    with pytest.raises(ValueError, match="not a Pauli"):
        fusion.fold_paulis(blocks, [(0, GATES["h"].matrix())])


def test_a_segment_applied_again_after_its_errors_reuses_their_tails_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trajectory's error tail (Paulis, then the gates), then the error-free tail (the
    same gates, from a snapshot): the second plans nothing, and each state is the
    gate-by-gate one."""
    rng = np.random.default_rng(21)
    n = 7
    head, tail = random_gates(rng, n, 80), random_gates(rng, n, 120)
    errors = [("z", [4], []), ("y", [1], [])]
    planned: list[int] = []
    plan = fusion.plan
    monkeypatch.setattr(fusion, "plan", lambda gates, **kw: planned.append(1) or plan(gates, **kw))
    engine = StatevectorEngine(seed=0, fused_min_qubits=0)
    qs = [engine.allocate() for _ in range(n)]

    def on(gates: Sequence[tuple[str, list[int], list[float]]]) -> list[Any]:
        return [(g, [qs[q] for q in w], p) for g, w, p in gates]

    engine.apply_segment(on(head))
    at_cut = engine.snapshot()
    engine.apply_segment(on(errors + tail))
    with_errors = engine.state_vector(qs)
    engine.restore(at_cut)
    engine.apply_segment(on(tail))
    assert len(planned) == 2  # the head's and the tail's, not the error-free tail's again
    np.testing.assert_allclose(
        with_errors, run_engine(head + errors + tail, n, max_fused=1), atol=1e-10
    )
    np.testing.assert_allclose(
        engine.state_vector(qs), run_engine(head + tail, n, max_fused=1), atol=1e-10
    )


@pytest.mark.parametrize("which", HERE)
def test_measurement_and_reset_between_segments_match_the_gate_by_gate_engine(which: str) -> None:
    """Same seed, same calls: the same outcomes and the same states, fused or not."""
    rng = np.random.default_rng(5)
    n = 7
    engines = [
        StatevectorEngine(seed=9, kernels=which, fused_min_qubits=0),
        StatevectorEngine(seed=9, max_fused=1),
    ]
    qubits = [[e.allocate() for _ in range(n)] for e in engines]
    outcomes: list[list[int]] = [[], []]
    for round_ in range(6):
        gates = random_gates(rng, n, 50)
        target = int(rng.integers(n))
        basis = "ZXY"[round_ % 3]
        for e, qs, out in zip(engines, qubits, outcomes, strict=True):
            e.apply_segment([(g, [qs[q] for q in w], p) for g, w, p in gates])
            out.append(e.measure(qs[target], basis))
            if round_ % 2:
                e.reset(qs[(target + 1) % n])
    assert outcomes[0] == outcomes[1]
    np.testing.assert_allclose(
        engines[0].state_vector(qubits[0]), engines[1].state_vector(qubits[1]), atol=1e-10
    )


def test_a_bad_gate_in_a_segment_leaves_the_state_unchanged() -> None:
    engine = StatevectorEngine(seed=0, fused_min_qubits=0)
    a, b = engine.allocate(), engine.allocate()
    engine.apply("h", [a])
    before = engine.state_vector([a, b])
    with pytest.raises(EngineError, match="QE105"):
        engine.apply_segment([("h", [b], []), ("ry", [a], [0.3]), ("cx", [a], [])])
    with pytest.raises(EngineError, match="QE103"):
        engine.apply_segment([("h", [b], []), ("u9", [a], [])])
    np.testing.assert_allclose(engine.state_vector([a, b]), before)


@pytest.mark.parametrize(
    "options",
    [
        {"max_fused": 0},
        {"max_fused": 7},
        {"max_fused": True},
        {"kernels": "numba"},
        {"fused_min_qubits": -1},
    ],
)
def test_bad_fusion_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(EngineError, match="QE105"):
        StatevectorEngine(**options)


class SegmentFed(StatevectorEngine):
    """The statevector engine fed through segments: ``apply`` checks a gate and holds it;
    anything else that reads or changes the state first applies the held gates as one
    fused segment. Lets the conformance checks run the fused path."""

    def __init__(self, **options: Any) -> None:
        super().__init__(fused_min_qubits=0, **options)
        self._held: list[tuple[str, list[int], list[float]]] = []

    def apply(self, gate: str, qubits: Sequence[int], params: Sequence[float] = ()) -> None:
        self.check_gate(gate, qubits, params)  # refuse now, as apply does
        self._held.append((gate, list(qubits), list(params)))

    def _flush(self) -> None:
        held, self._held = self._held, []
        self.apply_segment(held)

    def free(self, qubit: int) -> None:
        self._flush()
        super().free(qubit)

    def probability(self, qubit: int, basis: str = "Z") -> float:
        self._flush()
        return super().probability(qubit, basis)

    def collapse(self, qubit: int, outcome: int, basis: str = "Z") -> None:
        self._flush()
        super().collapse(qubit, outcome, basis)

    def measure(self, qubit: int, basis: str = "Z") -> int:
        self._flush()
        return super().measure(qubit, basis)

    def reset(self, qubit: int) -> None:
        self._flush()
        super().reset(qubit)

    def apply_pauli_channel(self, qubit: int, px: float, py: float, pz: float) -> str:
        self._flush()
        return super().apply_pauli_channel(qubit, px, py, pz)

    def snapshot(self) -> Any:
        self._flush()
        return super().snapshot()

    def sample(self, qubits: Sequence[int], shots: int) -> np.ndarray:
        self._flush()
        return super().sample(qubits, shots)

    def state_vector(self, qubits: Sequence[int] | None = None) -> np.ndarray:
        self._flush()
        return super().state_vector(qubits)

    def restore(self, snapshot: Any) -> None:
        self._held = []
        super().restore(snapshot)


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fused_path_meets_the_engine_contract(which: str, dtype: str) -> None:
    atol = 1e-7 if dtype == "complex128" else 2e-5
    assert_engine_conformance(
        lambda seed: SegmentFed(seed=seed, kernels=which, dtype=dtype), circuits=12, atol=atol
    )


def test_the_stabilizer_engine_checks_a_whole_segment_before_applying_it() -> None:
    engine = StabilizerEngine(seed=0)
    a, b = engine.allocate(), engine.allocate()
    with pytest.raises(EngineError, match="QE103"):
        engine.apply_segment([("h", [a], []), ("cx", [a, b], []), ("t", [b], [])])
    assert engine.probability(a) == 0.0 and engine.probability(b) == 0.0
    apply_segment(engine, [("h", [a], []), ("cx", [a, b], [])])
    assert engine.probability(a, "Z") == 0.5


# --------------------------------------------------------------------------- peers and runs


def test_a_random_circuit_agrees_with_aers_statevector() -> None:
    pytest.importorskip("qiskit_aer")
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator

    rng = np.random.default_rng(21)
    n = 9
    gates = random_gates(rng, n, 200)
    qc = QuantumCircuit(n)
    names = {"cx": "cx", "ccx": "ccx", "i": "id"}
    for g, wires, params in gates:
        getattr(qc, names.get(g, g))(*params, *(n - 1 - w for w in wires))  # qiskit: little-endian
    qc.save_statevector()
    backend = AerSimulator(method="statevector")
    # (no SWAP elision: level 0 keeps the qubits where the statevector reports them)
    aer = np.asarray(
        backend.run(transpile(qc, backend, optimization_level=0)).result().get_statevector()
    )
    for which in HERE:
        ours = run_engine(gates, n, segments=2, kernels=which, fused_min_qubits=0)
        phase = np.vdot(aer, ours)
        np.testing.assert_allclose(ours, aer * phase / abs(phase), atol=1e-10)


PROGRAM = """\
.caps CAP_ALLOC
.vqs a b c d
.events m0 m1 m2 m3 m4
q: ALLOC_LQ vq:a, vq:b, vq:c, vq:d, n=4
g0: APPLY_H vq:a
g1: APPLY_RY vq:b, theta=0.7
g2: APPLY_CNOT vq:a, vq:b
g3: APPLY_RX vq:c, theta=1.9
g4: APPLY_T vq:c
g5: APPLY_CZ vq:b, vq:c
g6: APPLY_H vq:d
mid: MEASURE_Z vq:a, out:m0
fix: COND_PAULI vq:c, in:m0, mask="X"
g7: APPLY_RY vq:c, theta=1.1
g8: APPLY_H vq:b
g9: APPLY_CZ vq:c, vq:d
r: RESET vq:a
g10: APPLY_RX vq:a, theta=0.4
g11: APPLY_CNOT vq:d, vq:a
m1: MEASURE_X vq:b, out:m1
m2: MEASURE_Z vq:c, out:m2
m3: MEASURE_Y vq:d, out:m3
m4: MEASURE_Z vq:a, out:m4
f: FREE_LQ vq:a, vq:b, vq:c, vq:d
"""


def exact_program_distribution() -> np.ndarray:
    """PROGRAM's joint distribution of (m0, ..., m4), bit m0 the most significant: dense
    matrices on wires (a, b, c, d) = (0, 1, 2, 3), the measurement of a enumerated."""

    def op(name: str, wires: Sequence[int], params: Sequence[float] = ()) -> np.ndarray:
        return full_operator(GATES[name].matrix(params), [3 - w for w in reversed(wires)], 4)

    def run(state: np.ndarray, ops: Sequence[tuple[str, list[int], list[float]]]) -> np.ndarray:
        for name, wires, params in ops:
            state = op(name, wires, params) @ state
        return state

    zero = np.zeros(16, dtype=complex)
    zero[0] = 1
    first = run(
        zero,
        [
            ("h", [0], []),
            ("ry", [1], [0.7]),
            ("cx", [0, 1], []),
            ("rx", [2], [1.9]),
            ("t", [2], []),
            ("cz", [1, 2], []),
            ("h", [3], []),
        ],
    )
    out = np.zeros(32)
    index = np.arange(16)
    for m0 in (0, 1):
        kept = np.where((index >> 3) & 1 == m0, first, 0)
        p0 = float(np.vdot(kept, kept).real)
        state = kept / math.sqrt(p0)
        rest = [("x", [2], [])] if m0 else []
        rest += [("ry", [2], [1.1]), ("h", [1], []), ("cz", [2, 3], [])]
        rest += [("x", [0], [])] if m0 else []  # the reset of a, which holds m0
        rest += [("rx", [0], [0.4]), ("cx", [3, 0], [])]
        rest += [("h", [1], []), ("sdg", [3], []), ("h", [3], [])]  # X on b, Y on d
        final = np.abs(run(state, rest)) ** 2
        for i in range(16):  # i's bits: a b c d; events m1 (b), m2 (c), m3 (d), m4 (a)
            a, b, c, d = ((i >> (3 - w)) & 1 for w in range(4))
            out[(m0 << 4) | (b << 3) | (c << 2) | (d << 1) | a] += p0 * final[i]
    return out


def test_a_run_with_mid_circuit_measurement_reset_and_feed_forward_fuses_exactly() -> None:
    """The executor hands segments to the engine: fused (every segment that can) or gate
    by gate, the counts follow the exact distribution (seeded; the bound fails a correct
    engine with probability < 1e-9: E[TVD] <= sqrt(K/N)/2 plus McDiarmid's term)."""
    graph = assemble(PROGRAM)
    exact = exact_program_distribution()
    shots = 4000
    bound = math.sqrt(32 / shots) / 2 + math.sqrt(math.log(1e9) / (2 * shots))
    for options in ({"fused_min_qubits": 0}, {"max_fused": 1}):
        result = qmk.run(
            graph, shots=shots, seed=3, engine="statevector", noise=False, engine_options=options
        )
        columns = [result.events.index(f"m{i}") for i in range(5)]
        bits = result.bits[:, columns].astype(int)
        index = (bits * (1 << np.arange(4, -1, -1))).sum(axis=1)
        observed = np.bincount(index, minlength=32) / shots
        tvd = 0.5 * np.abs(observed - exact).sum()
        assert tvd < bound, (options, tvd, bound)
