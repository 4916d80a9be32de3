"""NVIDIA cuStateVec (``cuquantum``) behind the engine protocol, on a CUDA GPU.

A :class:`~qmk.engines.adapters._segments.SegmentEngine`: QMK holds the state between
calls; each segment is uploaded to the GPU once (CuPy; a segment from ``|0...0>`` is built
there), its gates are fused into blocks of up to :data:`FUSED_WIDTH` qubits by QMK's
planner (:func:`qmk.engines.fusion.plan`), each block is applied there by
``custatevec.apply_matrix``, and the result comes back. A program whose measurements
are terminal is one upload, one segment and one download. The engine registers only
where a CUDA GPU is present (:func:`qmk.engines.registry.gpu_present` asks the driver
without importing CUDA packages) and cuquantum and CuPy are installed
(``pip install 'quantum-microkernel[gpu]'``).

Written to cuQuantum Python's documented ``apply_matrix`` call; **untested on a GPU**
(the development machine has none): its tests skip where no GPU is present.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines import fusion
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate, dense_gate

#: The widest block of gates fused into one ``apply_matrix`` (each pass over the state
#: is memory-bound: fewer, wider passes; qsim's GPU backend is run with the same width).
FUSED_WIDTH = 4


def _bindings() -> tuple[Any, Any, Any]:
    """``(custatevec, cudaDataType, ComputeType)`` from either cuquantum layout."""
    try:  # cuquantum-python >= 25
        from cuquantum.bindings import custatevec
    except ImportError:
        from cuquantum import custatevec
    try:
        from cuquantum import ComputeType, cudaDataType
    except ImportError:  # layouts that keep them beside the bindings only
        from cuquantum.bindings._utils import ComputeType, cudaDataType

    return custatevec, cudaDataType, ComputeType


class CuStateVecEngine(SegmentEngine):
    """cuStateVec on the first CUDA GPU (see the module docstring; untested on a GPU)."""

    name: ClassVar[str] = defaults.CUSTATEVEC

    def _setup(self) -> None:
        import cupy

        self._cupy = cupy
        self._cusv, data_type, compute_type = _bindings()
        single = self._dtype == np.complex64
        self._data_type = data_type.CUDA_C_32F if single else data_type.CUDA_C_64F
        self._compute_type = compute_type.COMPUTE_32F if single else compute_type.COMPUTE_64F
        self._handle = self._cusv.create()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            with contextlib.suppress(Exception):  # interpreter shutdown
                self._cusv.destroy(handle)

    def _evolve_from_zero(self, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        """``|0...0>`` built on the GPU: no host state built or uploaded."""
        device_state = self._cupy.zeros(2**n, dtype=self._dtype)
        device_state[0] = 1
        return self._run_gates(device_state, n, gates)

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        upload = np.ascontiguousarray(state, dtype=self._dtype)
        return self._run_gates(self._cupy.asarray(upload), n, gates)

    def _run_gates(self, device_state: Any, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        """Apply ``gates`` to the state on the GPU, then download it."""
        cp, cusv = self._cupy, self._cusv
        blocks = fusion.plan(
            [(axes, dense_gate(name, params)) for name, axes, params in gates],
            max_width=FUSED_WIDTH,
        )
        for block in blocks:
            axes, k = block.qubits, len(block.qubits)
            matrix = np.ascontiguousarray(block.matrix, dtype=self._dtype)
            # custatevec's targets[i] is bit i of the matrix index; our gate qubit 0 is its
            # most significant bit, and axis a is bit n - 1 - a of the state index.
            targets = np.asarray([n - 1 - a for a in reversed(axes)], dtype=np.int32)
            layout = cusv.MatrixLayout.ROW
            size = cusv.apply_matrix_get_workspace_size(
                self._handle,
                self._data_type,
                n,
                matrix.ctypes.data,
                self._data_type,
                layout,
                0,
                k,
                0,
                self._compute_type,
            )
            workspace = cp.cuda.memory.alloc(size) if size else None
            cusv.apply_matrix(
                self._handle,
                device_state.data.ptr,
                self._data_type,
                n,
                matrix.ctypes.data,
                self._data_type,
                layout,
                0,
                targets.ctypes.data,
                k,
                0,
                0,
                0,
                self._compute_type,
                workspace.ptr if workspace is not None else 0,
                size,
            )
        cp.cuda.Device().synchronize()
        return np.asarray(device_state.get())
