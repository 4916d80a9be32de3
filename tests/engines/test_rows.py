"""Gates on rows of amplitudes: every layout :func:`qmk.engines.rows.apply_matrix` picks
(a diagonal's product, a low qubit's real matrix product in chunks, real pairs, the
qubit's axis, controlled blocks, any matrix, the compiled kernels of a large state)
against numpy's ``tensordot`` of the same matrix on the state's tensor."""

from __future__ import annotations

import numpy as np
import pytest

from qmk.engines import rows
from qmk.engines.gates import GATES
from qmk.engines.rows import apply_matrix, inner

SEED = 20261126


def _reference(state: np.ndarray, matrix: np.ndarray, qubits: tuple[int, ...]) -> np.ndarray:
    n = state.size.bit_length() - 1
    k = len(qubits)
    tensor = state.reshape((2,) * n)
    axes = [n - 1 - q for q in qubits]  # qubit q is bit q: axis n-1-q of the tensor
    moved = np.tensordot(matrix.reshape((2,) * (2 * k)), tensor, axes=(list(range(k, 2 * k)), axes))
    return np.moveaxis(moved, list(range(k)), axes).reshape(-1)


def _unitary(k: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.normal(size=(1 << k, 1 << k)) + 1j * rng.normal(size=(1 << k, 1 << k))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / abs(np.diag(r)))


@pytest.mark.parametrize("n", [1, 5, 13, 17])
def test_every_layout_equals_numpys_tensordot(n):
    # n = 13: qubit 3's product runs in chunks (its rows of 32 floats outnumber a
    # chunk's); n = 17: the compiled kernels
    assert rows.GEMM_WORK // 32**2 < 3 * (1 << 13) * 4 // 32
    assert rows.KERNEL_AMPLITUDES <= 1 << 17
    rng = np.random.default_rng(SEED + n)
    stack = rng.normal(size=(3, 1 << n)) + 1j * rng.normal(size=(3, 1 << n))
    one_qubit = [
        GATES["rz"].matrix((0.7,)),  # diagonal
        GATES["ry"].matrix((0.4,)),  # real
        GATES["x"].matrix(),  # a swap
        _unitary(1, rng),  # complex
    ]
    cases = [(m, (q,)) for q in range(n) for m in one_qubit]
    if n >= 3:
        cases += [
            (GATES["cx"].matrix(), (n - 1, 0)),
            (GATES["cz"].matrix(), (1, n - 2)),
            (GATES["ccx"].matrix(), (0, n - 1, 1)),
            (GATES["swap"].matrix(), (2, 0)),
            (_unitary(2, rng), (n - 1, 1)),  # no controlled block: any matrix
        ]
    for matrix, qubits in cases:
        want = np.array([_reference(row, matrix, qubits) for row in stack])
        apply_matrix(stack, matrix, qubits)
        np.testing.assert_allclose(stack, want, atol=1e-12, err_msg=f"{qubits}")


def test_an_inner_product_past_one_serial_piece_sums_its_pieces():
    rng = np.random.default_rng(SEED)
    size = 3 * rows.SERIAL + 5
    a = rng.normal(size=size) + 1j * rng.normal(size=size)
    b = rng.normal(size=size) + 1j * rng.normal(size=size)
    assert inner(a, b) == pytest.approx(np.sum(np.conj(a) * b), abs=1e-9)
    assert inner(a[::2], b[::2]) == pytest.approx(np.sum(np.conj(a[::2]) * b[::2]), abs=1e-9)
