"""Gates applied to rows of amplitudes at once, in place: the passes that adjoint
differentiation (:mod:`qmk.engines.adjoint`) and observables' matrices
(:mod:`qmk.engines.observables`) share.

A stack is a C-contiguous ``(rows, 2**n)`` complex128 array, each row a state with qubit
``k`` as bit ``k`` of its index (:class:`~qmk.engines.state_io.Amplitudes`' order). A
gate is undone on a state and its observables' vectors in one numpy pass over all rows;
a large state goes row by row through the statevector engine's compiled kernels
(:func:`qmk.engines.kernels.apply_matrix`), where a pass costs more than a call.

>>> import numpy as np
>>> stack = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=complex)  # |00>, |10> (qubit 1 set)
>>> apply_matrix(stack, np.array([[0, 1], [1, 0]]), (1,))  # X on qubit 1
>>> stack.real.tolist()
[[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qmk.engines import kernels

#: From this many amplitudes on, a gate goes through the engine's compiled kernels row by
#: row; below it, numpy on all rows at once costs less than a kernel call's set-up.
KERNEL_AMPLITUDES = 1 << 16
#: The most elements a dot product (BLAS) is given at once, and (``GEMM_WORK``) the most
#: multiply-adds a matrix product: OpenBLAS keeps a dot product of up to 10,000 and a
#: product of up to 2**18 on the calling thread. Past that it wakes its threads, and on a
#: busy host waiting for them costs 10-100 times the product.
SERIAL = 8192
GEMM_WORK = 1 << 18


def inner(a: np.ndarray, b: np.ndarray) -> complex:
    """``sum(conj(a) * b)`` of two arrays of the same shape, on this thread only
    (:data:`SERIAL` elements at a time).

    >>> inner(np.array([1j, 2]), np.array([1j, 3]))
    (7+0j)
    """
    a, b = a.reshape(-1), b.reshape(-1)
    if a.size <= SERIAL:
        return complex(np.vdot(a, b))
    return sum(
        (complex(np.vdot(a[k : k + SERIAL], b[k : k + SERIAL])) for k in range(0, a.size, SERIAL)),
        0j,
    )


def apply_matrix(stack: np.ndarray, matrix: np.ndarray, qubits: Sequence[int]) -> None:
    """Apply ``matrix`` (a gate's convention: its qubit 0 the most significant bit of its
    index) on ``qubits`` to every row of ``stack`` (rows of ``2**n`` amplitudes), in place.
    """
    size = stack.shape[1]
    n = size.bit_length() - 1
    if size >= KERNEL_AMPLITUDES:
        bits = list(reversed(qubits))  # the kernels' bit j is the matrix index's bit j
        for row in stack:
            kernels.apply_matrix(row, matrix, bits, kernels=kernels.default_kernels())
        return
    if len(qubits) == 1:
        _one_qubit(stack, qubits[0], matrix)
        return
    tensor = stack.reshape((stack.shape[0],) + (2,) * n)
    axes = [n - q for q in qubits]  # axis 0 holds the rows; qubit q is axis n - q
    block = _controlled_block(matrix)
    if block is not None:
        at: list[Any] = [slice(None)] * (n + 1)
        for axis in axes[:-1]:
            at[axis] = 1
        view = tensor[tuple(at)]
        # the target's axis among those the controls leave
        target = axes[-1] - sum(1 for axis in axes[:-1] if axis < axes[-1])
        _one(view, target, block)
        return
    k = len(qubits)
    gate = matrix.reshape((2,) * (2 * k))
    moved = np.tensordot(gate, tensor, axes=(list(range(k, 2 * k)), axes))
    tensor[...] = np.moveaxis(moved, list(range(k)), axes)


def draw(stack: np.ndarray, uniforms: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Basis indices drawn from the rows of ``stack``, each row's ``|amplitude|**2``
    relative to its norm (rows need not be normalised): ``counts[r]`` draws of row ``r``
    (one a row without ``counts``), row after row, draw ``i`` from ``uniforms[i]`` in
    ``[0, 1)``. An index of probability 0 is never drawn.

    >>> stack = np.array([[0, 1, 0, 1], [2, 0, 0, 0]], dtype=complex)
    >>> draw(stack, np.array([0.2, 0.7, 0.9]), np.array([2, 1])).tolist()
    [1, 3, 0]
    """
    weights = stack.real**2 + stack.imag**2
    cumulative = np.cumsum(weights, axis=1, out=weights)
    last = stack.shape[1] - 1
    if counts is None:
        scaled = uniforms * cumulative[:, -1]
        return np.minimum((cumulative <= scaled[:, None]).sum(axis=1), last)
    out = np.empty(int(counts.sum()), dtype=np.int64)
    starts = np.cumsum(counts) - counts
    single = np.flatnonzero(counts == 1)
    if len(single):  # (most rows of a noisy run: one shot each) all at once
        picked = cumulative[single]
        scaled = uniforms[starts[single]] * picked[:, -1]
        out[starts[single]] = np.minimum((picked <= scaled[:, None]).sum(axis=1), last)
    for r in np.flatnonzero(counts > 1).tolist():
        lo, hi = int(starts[r]), int(starts[r] + counts[r])
        row = cumulative[r]
        found = np.searchsorted(row, uniforms[lo:hi] * row[-1], side="right")
        out[lo:hi] = np.minimum(found, last)
    return out


def _one_qubit(stack: np.ndarray, qubit: int, m: np.ndarray) -> None:
    """A 2x2 matrix on ``qubit`` of every row, in the layout numpy passes fastest.

    A diagonal is one product with a vector of its two entries. On a low qubit (short
    runs of amplitudes between its partners) the matrix is one real matrix product over
    rows of :func:`_realified` floats. A real matrix is one over (real, imaginary)
    pairs. Anything else goes by :func:`_one` on the qubit's axis."""
    rows, size = stack.shape
    low = 1 << qubit
    m00, m01, m10, m11 = (x.real if x.imag == 0 else x for x in map(complex, m.flat))
    if m01 == 0 and m10 == 0:
        np.multiply(stack, np.where(_bit(size, qubit), m11, m00), out=stack)
    elif qubit <= LOW_QUBITS:
        width = 4 * low
        flat = stack.view(np.float64).reshape(-1, width)
        realified = _realified(m, qubit)
        step = GEMM_WORK // (width * width)
        for k in range(0, len(flat), step):
            flat[k : k + step] = flat[k : k + step] @ realified
    elif not any(isinstance(x, complex) for x in (m00, m01, m10, m11)):
        pairs = stack.view(np.float64).reshape(rows * (size // (2 * low)), 2, 2 * low)
        np.matmul(np.array([[m00, m01], [m10, m11]]), pairs, out=pairs)
    else:
        _one(stack.reshape(rows, size // (2 * low), 2, low), 2, m)


#: Up to this qubit a one-qubit gate is one real matrix product (:func:`_realified`): a
#: run of ``2**qubit`` amplitudes is too short for numpy's passes over the qubit's axis.
LOW_QUBITS = 3


def _realified(m: np.ndarray, qubit: int) -> np.ndarray:
    """The real matrix ``R`` with ``row @ R`` = ``m`` on ``qubit`` of a row of
    ``2 * 2**qubit`` amplitudes seen as floats (the ``a`` half, then the ``b`` half, each
    amplitude (real, imaginary)): a sum of eight basis matrices weighted by the real and
    imaginary parts of ``m``'s entries, one product."""
    entries = np.asarray(m, dtype=np.complex128).reshape(-1).view(np.float64)
    width = 4 << qubit
    return (entries @ _realified_basis(qubit)).reshape(width, width)


def _realified_basis(qubit: int) -> np.ndarray:
    """For each of ``m``'s entries ``(j, k)`` and part (real, imaginary), its matrix in
    :func:`_realified`'s sum (kept per qubit)."""
    found = _BASES.get(qubit)
    if found is None:
        low = 1 << qubit
        # complex multiplication on (real, imaginary): z = x + iy as [[x, -y], [y, x]]
        parts = (np.eye(2), np.array([[0.0, -1.0], [1.0, 0.0]]))
        found = np.empty((8, 4 * low, 4 * low))  # kept flat: one product sums them
        for j in range(2):
            for k in range(2):
                for p in range(2):
                    block = np.zeros((2, 2))
                    block[j, k] = 1
                    # output index (j, l, c) from input (k, l, c'): block x identity x part
                    found[4 * j + 2 * k + p] = np.kron(np.kron(block, np.eye(low)), parts[p]).T
        found = _BASES[qubit] = found.reshape(8, -1)
    return found


_BASES: dict[int, np.ndarray] = {}


def _bit(size: int, qubit: int) -> np.ndarray:
    """Whether bit ``qubit`` of each index below ``size`` is set (kept per size and bit)."""
    found = _BITS.get((size, qubit))
    if found is None:
        found = _BITS[(size, qubit)] = ((np.arange(size) >> qubit) & 1).astype(bool)
    return found


_BITS: dict[tuple[int, int], np.ndarray] = {}


def _one(tensor: np.ndarray, axis: int, m: np.ndarray) -> None:
    """A 2x2 matrix on one axis of ``tensor``, in place (a diagonal or a swap costs less)."""
    lead = (slice(None),) * axis
    zero: tuple[Any, ...] = (*lead, 0)
    one: tuple[Any, ...] = (*lead, 1)
    a, b = tensor[zero], tensor[one]
    # Python numbers, real where they are (a real factor costs half a complex one)
    m00, m01, m10, m11 = (x.real if x.imag == 0 else x for x in map(complex, m.flat))
    if m01 == 0 and m10 == 0:
        if m00 != 1:
            a *= m00
        if m11 != 1:
            b *= m11
    elif m00 == 0 and m11 == 0:
        saved = a.copy()
        a[...] = b
        if m01 != 1:
            a *= m01
        b[...] = saved
        if m10 != 1:
            b *= m10
    else:
        mixed = a * m00
        mixed += m01 * b
        b *= m11
        b += m10 * a
        a[...] = mixed


def _controlled_block(matrix: np.ndarray) -> np.ndarray | None:
    """The 2x2 block a matrix applies to its last qubit where all others read 1, if it
    is that controlled one-qubit gate (identity elsewhere); else None."""
    size = len(matrix)
    if not np.array_equal(matrix[: size - 2, : size - 2], np.eye(size - 2)):
        return None
    if np.any(matrix[: size - 2, size - 2 :]) or np.any(matrix[size - 2 :, : size - 2]):
        return None
    return np.asarray(matrix[size - 2 :, size - 2 :])


__all__ = ["GEMM_WORK", "KERNEL_AMPLITUDES", "SERIAL", "apply_matrix", "draw", "inner"]
