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


def _one_qubit(stack: np.ndarray, qubit: int, m: np.ndarray) -> None:
    """A 2x2 matrix on ``qubit`` of every row, in the layout numpy passes fastest: a
    diagonal as one product with a vector of its two entries; a real matrix on any but
    the lowest qubit as one real matrix product over (real, imaginary) pairs, which
    keeps the inner runs long; anything else by :func:`_one` on the qubit's axis."""
    rows, size = stack.shape
    low = 1 << qubit
    m00, m01, m10, m11 = (x.real if x.imag == 0 else x for x in map(complex, m.flat))
    if m01 == 0 and m10 == 0:
        np.multiply(stack, np.where(_bit(size, qubit), m11, m00), out=stack)
    elif qubit and not any(isinstance(x, complex) for x in (m00, m01, m10, m11)):
        pairs = stack.view(np.float64).reshape(rows * (size // (2 * low)), 2, 2 * low)
        np.matmul(np.array([[m00, m01], [m10, m11]]), pairs, out=pairs)
    else:
        _one(stack.reshape(rows, size // (2 * low), 2, low), 2, m)


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


__all__ = ["KERNEL_AMPLITUDES", "apply_matrix"]
