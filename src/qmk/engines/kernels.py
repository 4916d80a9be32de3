"""Applying a fused ``k``-qubit matrix to a statevector in place: compiled or numpy.

Two implementations of one operation, :func:`apply_matrix`:

- ``simd`` (:mod:`qmk.engines.simd`): SIMD code generated for this CPU and compiled by
  llvmlite (the ``fast`` extra), every core used. The default where it imports.
- ``numpy``: the state seen as a tensor of ``n`` axes, the matrix contracted with the
  target axes (``tensordot``, BLAS) chunk by chunk over the leading axes it does not
  touch, written back through ``moveaxis``. Always there; slower on large states, where
  the transposes cost more than the arithmetic.

``simd`` is several times faster than ``numpy`` and than numba ``@njit`` loops on the
same gates; ``docs/engines.md`` has the figures.

>>> import numpy as np
>>> psi = np.zeros(8, dtype=np.complex128); psi[0] = 1
>>> x = np.array([[0, 1], [1, 0]])
>>> apply_matrix(psi, x, [2], kernels="numpy"); psi.nonzero()[0].tolist()
[4]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from qmk.engines import simd

#: The implementations, best first.
KERNELS = ("simd", "numpy")
#: A numpy chunk holds at least this many amplitudes (the rest of the state waits).
_CHUNK = 1 << 16


def default_kernels() -> str:
    """``"simd"`` where the compiled kernels work here, else ``"numpy"``."""
    return "simd" if simd.available() else "numpy"


def apply_matrix(psi: np.ndarray, matrix: np.ndarray, bits: Sequence[int], *, kernels: str) -> None:
    """Apply the ``2**k``-square ``matrix`` in place to the flat state ``psi``.

    Args:
        psi: ``2**n`` amplitudes (complex64 or complex128, C-contiguous).
        matrix: the unitary; bit ``j`` of its index acts on bit ``bits[j]`` of ``psi``'s.
        bits: distinct index bits of ``psi``.
        kernels: ``"simd"`` or ``"numpy"`` (:data:`KERNELS`); ``simd`` hands states
            smaller than one vector to numpy, and every gate to numpy once the LLVM here
            failed to build a kernel (:func:`qmk.engines.simd.unavailable_reason` says why).
    """
    if kernels == "simd" and simd.available() and psi.size >> simd.lane_bits(psi.dtype):
        try:
            simd.apply_matrix(psi, matrix, bits)
            return
        except RuntimeError:  # a kernel LLVM could not build (before any write): numpy
            pass
    apply_numpy(psi, matrix, bits)


def apply_diagonal(
    psi: np.ndarray, diagonal: np.ndarray, bits: Sequence[int], *, kernels: str
) -> None:
    """Multiply the flat state ``psi`` in place by a diagonal gate: ``diagonal`` holds its
    ``2**k`` entries, bit ``j`` of their index acting on bit ``bits[j]`` of ``psi``'s
    (as :func:`apply_matrix`, which it equals on ``np.diag(diagonal)``, in one pass)."""
    if (
        kernels == "simd"
        and simd.available()
        and psi.size >> simd.lane_bits(psi.dtype)
        and len(bits) <= simd.MAX_DIAGONAL_BITS
    ):
        try:
            simd.apply_diagonal(psi, diagonal, bits)
            return
        except RuntimeError:  # a kernel LLVM could not build (before any write): numpy
            pass
    diagonal = np.asarray(diagonal).astype(psi.dtype, copy=False)
    for start in range(0, psi.size, _CHUNK):
        index = np.arange(start, min(psi.size, start + _CHUNK))
        sub = np.zeros(index.size, dtype=np.intp)
        for j, bit in enumerate(bits):
            sub |= ((index >> bit) & 1) << j
        psi[start : start + _CHUNK] *= diagonal[sub]


def apply_blocks(
    psi: np.ndarray,
    blocks: Sequence[tuple[np.ndarray, Sequence[int], bool]],
    *,
    kernels: str,
    threads: int | None = None,
) -> None:
    """Apply gates to the flat state ``psi`` in place, in order: each ``(gate, bits,
    diagonal)`` as :func:`apply_diagonal` (``diagonal``: ``gate`` holds a diagonal's
    entries) or :func:`apply_matrix` would, with ``simd`` in one go
    (:func:`qmk.engines.simd.apply_blocks`: no return to Python between passes) on
    ``threads`` threads (None: the kernels' own count)."""
    if (
        kernels == "simd"
        and simd.available()
        and psi.size >> simd.lane_bits(psi.dtype)
        and all(len(bits) <= simd.MAX_DIAGONAL_BITS for _, bits, diagonal in blocks if diagonal)
    ):
        try:
            simd.apply_blocks(psi, blocks, threads=threads)
            return
        except RuntimeError:  # a kernel LLVM could not build (before any write): numpy
            pass
    for gate, bits, diagonal in blocks:
        if diagonal:
            apply_diagonal(psi, gate, bits, kernels="numpy")
        else:
            apply_numpy(psi, gate, bits)


def apply_numpy(psi: np.ndarray, matrix: np.ndarray, bits: Sequence[int]) -> None:
    """:func:`apply_matrix` in numpy: ``tensordot`` on the target axes, chunk by chunk."""
    n = psi.size.bit_length() - 1
    k = len(bits)
    # tensor axis a is index bit n-1-a; the matrix's tensor axis i is its index bit k-1-i
    axes = [n - 1 - bits[k - 1 - i] for i in range(k)]
    gate = np.asarray(matrix).astype(psi.dtype, copy=False).reshape((2,) * (2 * k))
    lead = 0  # leading axes the gate does not touch, iterated over
    while lead < min(axes) and n - lead > 16 and (1 << (n - lead - 1)) >= _CHUNK:
        lead += 1
    tensor = psi.reshape((2,) * n)
    inner = [a - lead for a in axes]
    for prefix in itertools.product((0, 1), repeat=lead):
        chunk: Any = tensor[prefix] if prefix else tensor
        moved = np.tensordot(gate, chunk, axes=(list(range(k, 2 * k)), inner))
        chunk[...] = np.moveaxis(moved, list(range(k)), inner)
