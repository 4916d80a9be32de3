"""The kernel shapes of issue 28: the diagonal kernel, dense gates on hi bits only (scalar
coefficients), gates wider than the accumulators (rows computed in blocks), and the
fusion plan's diagonal blocks, each against a numpy reference built here from the
definition (amplitude ``i`` times entry ``sub(i)``, or the full ``2**n`` operator), at
explicit seeds, odd bit placements, both precisions and one or two threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from qmk.engines import fusion, kernels, simd
from qmk.engines.gates import GATES
from qmk.engines.statevector import StatevectorEngine

HERE = [k for k in kernels.KERNELS if k == "numpy" or simd.available()]
DTYPES = ("complex64", "complex128")
TOLERANCE = {"complex64": 2e-5, "complex128": 1e-11}
needs_simd = pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed")


def random_state(rng: np.random.Generator, n: int, dtype: str) -> np.ndarray:
    return (rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)).astype(dtype)


def random_unitary(rng: np.random.Generator, size: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size)))
    return q * (np.diag(r) / abs(np.diag(r)))


def sub_index(n: int, bits: Sequence[int]) -> np.ndarray:
    """For each amplitude of an ``n``-bit state, the gate index its ``bits`` make."""
    index = np.arange(1 << n)
    out = np.zeros(1 << n, dtype=np.int64)
    for j, b in enumerate(bits):
        out |= ((index >> b) & 1) << j
    return out


def dense_reference(psi: np.ndarray, matrix: np.ndarray, bits: Sequence[int]) -> np.ndarray:
    """``matrix`` on ``bits`` of ``psi`` in complex128: each group of amplitudes that
    differ only in ``bits`` multiplied by ``matrix``."""
    n = psi.size.bit_length() - 1
    psi = psi.astype(np.complex128)
    sub = sub_index(n, bits)
    rest = np.arange(1 << n) & ~sum(1 << b for b in bits)
    order = np.lexsort((sub, rest))  # by group, then by the gate index within the group
    out = np.empty_like(psi)
    out[order] = (psi[order].reshape(-1, 1 << len(bits)) @ matrix.T).ravel()
    return out


# --------------------------------------------------------------------------- diagonal


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 4, 5, 9, 16])
def test_a_diagonal_gate_multiplies_each_amplitude_by_the_entry_its_bits_pick(
    which: str, dtype: str, n: int
) -> None:
    rng = np.random.default_rng(100 + n)
    for k in range(1, min(n, simd.MAX_DIAGONAL_BITS) + 1):
        for _ in range(2):
            bits = [int(b) for b in rng.permutation(n)[:k]]  # odd placements, any order
            diagonal = np.exp(1j * rng.uniform(0, 2 * math.pi, 1 << k))
            psi = random_state(rng, n, dtype)
            expected = psi.astype(np.complex128) * diagonal[sub_index(n, bits)]
            kernels.apply_diagonal(psi, diagonal, bits, kernels=which)
            np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 10, err_msg=f"{bits}")


@needs_simd
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_the_diagonal_kernel_agrees_on_a_state_cut_between_threads(
    dtype: str, threads: int
) -> None:
    rng = np.random.default_rng(7)
    n = 17  # above PARALLEL_MIN: two threads cut the vectors between them
    for bits in ([0], [16], [2, 0, 1], [3, 16, 9], [1, 5, 8, 11, 14, 0, 16, 4, 6, 2]):
        diagonal = rng.normal(size=1 << len(bits)) + 1j * rng.normal(size=1 << len(bits))
        psi = random_state(rng, n, dtype)
        expected = psi.astype(np.complex128) * diagonal[sub_index(n, bits)]
        simd.apply_diagonal(psi, diagonal, bits, threads=threads)
        np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 50)


@needs_simd
@pytest.mark.parametrize("bits", [[0, 0], [9], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
def test_the_diagonal_kernel_refuses_bits_that_do_not_fit(bits: list[int]) -> None:
    psi = np.zeros(1 << 9, dtype=np.complex64)
    with pytest.raises(ValueError, match="does not fit"):
        simd.apply_diagonal(psi, np.ones(1 << len(bits)), bits)


# --------------------------------------------------------------------------- dense shapes


@needs_simd
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_gates_on_hi_bits_only_use_scalar_coefficients_and_agree(dtype: str, threads: int) -> None:
    rng = np.random.default_rng(11)
    n = 15  # PARALLEL_MIN amplitudes: two threads take part
    hi = simd.lane_bits(np.dtype(dtype))
    for k in range(1, 5):
        for _ in range(3):
            bits = [int(b) for b in rng.choice(np.arange(hi, n), size=k, replace=False)]
            lo, _, coef = simd.coefficients(np.eye(1 << k), bits, np.dtype(dtype))
            assert lo == () and coef.shape == (1 << k, 2, 1 << k)
            matrix = random_unitary(rng, 1 << k)
            psi = random_state(rng, n, dtype)
            expected = dense_reference(psi, matrix, bits)
            simd.apply_matrix(psi, matrix, bits, threads=threads)
            np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 20, err_msg=f"{bits}")


@needs_simd
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_gates_wider_than_the_accumulators_compute_their_rows_in_blocks(
    dtype: str, threads: int
) -> None:
    rng = np.random.default_rng(12)
    n = 15
    # 5 and 6 hi bits: 32 and 64 output rows against 16 accumulators; and mixed lo/hi
    for bits in ([4, 6, 9, 12, 14], [14, 3, 7, 10, 5, 12], [0, 5, 8, 11, 13, 14], [1, 2, 9, 4, 6]):
        matrix = random_unitary(rng, 1 << len(bits))
        psi = random_state(rng, n, dtype)
        expected = dense_reference(psi, matrix, bits)
        simd.apply_matrix(psi, matrix, bits, threads=threads)
        np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 50, err_msg=f"{bits}")


# --------------------------------------------------------------------------- the plan


def cp_gates(lam: float, c: int, t: int) -> list[tuple[str, list[int], list[float]]]:
    """A controlled phase written as RZ and CX (as the QFT bench and OpenQASM give it)."""
    return [
        ("rz", [c], [lam / 2]),
        ("rz", [t], [lam / 2]),
        ("cx", [c, t], []),
        ("rz", [t], [-lam / 2]),
        ("cx", [c, t], []),
    ]


def qft(n: int, seed: int) -> list[tuple[str, list[int], list[float]]]:
    """A random product input (RY, RZ on each qubit), then the QFT without swaps."""
    rng = np.random.default_rng(seed)
    gates: list[tuple[str, list[int], list[float]]] = []
    for q in range(n):
        gates += [("ry", [q], [float(rng.uniform(0, 3))]), ("rz", [q], [float(rng.uniform(0, 3))])]
    for j in range(n):
        gates.append(("h", [j], []))
        for k in range(j + 1, n):
            gates += cp_gates(math.pi / 2 ** (k - j), k, j)
    return gates


def unitary_of(n: int, ops: Sequence[tuple[Sequence[int], np.ndarray]]) -> np.ndarray:
    """The ``2**n`` unitary of gates on qubits (qubit 0 the most significant bit)."""
    out = np.eye(1 << n, dtype=np.complex128)
    for qubits, matrix in ops:
        bits = [n - 1 - q for q in reversed(qubits)]
        full = np.stack([dense_reference(col, matrix, bits) for col in np.eye(1 << n)], axis=1)
        out = full @ out
    return out


@pytest.mark.parametrize("seed", range(3))
def test_diagonal_blocks_hold_every_gate_once_in_order_and_give_the_same_unitary(seed: int) -> None:
    n = 5
    gates = qft(n, seed)
    items = [(qs, GATES[name].matrix(ps)) for name, qs, ps in gates]
    blocks = fusion.plan(items, max_width=3, diagonal_width=4)
    members = [i for b in blocks for i in b.gates]
    assert sorted(members) == list(range(len(gates)))
    for q in range(n):  # gates on one qubit keep their order
        on_q = [i for i in members if q in gates[i][1]]
        assert on_q == sorted(on_q)
    assert any(b.diagonal for b in blocks)  # the controlled phases make diagonal blocks
    for b in blocks:
        assert len(b.qubits) <= (4 if b.diagonal else 3)
        assert b.matrix.shape == (
            (1 << len(b.qubits),) if b.diagonal else (1 << len(b.qubits),) * 2
        )
    planned = unitary_of(
        n, [(b.qubits, np.diag(b.matrix) if b.diagonal else b.matrix) for b in blocks]
    )
    np.testing.assert_allclose(planned, unitary_of(n, items), atol=1e-12)


def test_without_a_diagonal_width_the_plan_is_the_one_the_router_models() -> None:
    items = [(qs, GATES[name].matrix(ps)) for name, qs, ps in qft(6, 0)]
    blocks = fusion.plan(items)
    assert not any(b.diagonal for b in blocks)
    assert [len(b.qubits) for b in blocks] == fusion.widths([qs for qs, _ in items])


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_qft_segment_through_diagonal_blocks_gives_the_gate_by_gate_state(
    which: str, dtype: str
) -> None:
    n = 11
    gates = qft(n, 5)

    def final(**options: object) -> np.ndarray:
        engine = StatevectorEngine(seed=0, **options)  # type: ignore[arg-type]
        qs = [engine.allocate() for _ in range(n)]
        engine.apply_segment([(g, [qs[q] for q in w], p) for g, w, p in gates])
        return engine.state_vector(qs)

    expected = final(max_fused=1)
    got = final(dtype=dtype, kernels=which, fused_min_qubits=0)
    assert np.max(np.abs(got - expected)) < TOLERANCE[dtype] * n * 10


# --------------------------------------------------------------------------- the driver


def random_blocks(
    rng: np.random.Generator, n: int, count: int
) -> list[tuple[np.ndarray, list[int], bool]]:
    """``count`` gates of 1-4 qubits at odd bit placements, a third of them diagonal."""
    blocks: list[tuple[np.ndarray, list[int], bool]] = []
    for i in range(count):
        k = int(rng.integers(1, 5))
        bits = [int(b) for b in rng.permutation(n)[:k]]
        if i % 3 == 2:
            blocks.append((np.exp(1j * rng.uniform(0, 2 * math.pi, 1 << k)), bits, True))
        else:
            blocks.append((random_unitary(rng, 1 << k), bits, False))
    return blocks


def apply_reference(
    psi: np.ndarray, blocks: Sequence[tuple[np.ndarray, list[int], bool]]
) -> np.ndarray:
    out = psi.astype(np.complex128)
    for gate, bits, diagonal in blocks:
        n = out.size.bit_length() - 1
        out = out * gate[sub_index(n, bits)] if diagonal else dense_reference(out, gate, bits)
    return out


@needs_simd
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("per_call", [1 << 17, 1 << 19, 1 << 25])
def test_a_run_of_passes_in_one_driver_call_gives_the_gates_applied_in_order(
    dtype: str, threads: int, per_call: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pass waits for the one before it (a pass reads what the last one wrote),
    whatever the threads and however many passes one call of the driver runs (1, 4
    or all 24 of them here)."""
    monkeypatch.setattr(simd, "CALL_AMPLITUDES", per_call)
    rng = np.random.default_rng(21)
    n = 17  # above PARALLEL_MIN: the threads share every pass
    blocks = random_blocks(rng, n, 24)
    psi = random_state(rng, n, dtype)
    expected = apply_reference(psi, blocks)
    simd.apply_blocks(psi, blocks, threads=threads)
    np.testing.assert_allclose(psi, expected, atol=TOLERANCE[dtype] * 200)


@pytest.mark.parametrize("which", HERE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_blocks_equals_the_gates_one_by_one(which: str, dtype: str) -> None:
    rng = np.random.default_rng(22)
    n = 9
    blocks = random_blocks(rng, n, 12)
    psi = random_state(rng, n, dtype)
    one_by_one = psi.copy()
    for gate, bits, diagonal in blocks:
        apply = kernels.apply_diagonal if diagonal else kernels.apply_matrix
        apply(one_by_one, gate, bits, kernels=which)
    kernels.apply_blocks(psi, blocks, kernels=which)
    np.testing.assert_allclose(psi, one_by_one, atol=TOLERANCE[dtype])


@needs_simd
def test_apply_blocks_checks_every_gate_before_it_writes_any() -> None:
    rng = np.random.default_rng(23)
    psi = random_state(rng, 10, "complex64")
    before = psi.copy()
    blocks = [*random_blocks(rng, 10, 3), (np.eye(2), [10], False)]  # bit 10 is outside
    with pytest.raises(ValueError, match="does not fit"):
        simd.apply_blocks(psi, blocks)
    np.testing.assert_array_equal(psi, before)
