"""NVIDIA cuStateVec (``cuquantum``) behind the engine protocol, on a CUDA GPU.

A :class:`~qmk.engines.adapters._segments.SegmentEngine` whose state lives on the GPU
(CuPy) between segments. A segment from ``|0...0>`` is built there: its gates are fused
into blocks of up to :data:`FUSED_WIDTH` qubits by QMK's planner
(:func:`qmk.engines.fusion.plan`), and each block is applied by
``custatevec.apply_matrix``. The shots of a measurement of the whole state are drawn
there (each block's weight summed on the GPU, only the blocks drawn sent back). The
state comes to the host only where something reads it there (a mid-circuit collapse, a
snapshot, a marginal): a program whose measurements are terminal never downloads it. The
engine registers only where a CUDA GPU is present
(:func:`qmk.engines.registry.gpu_present` asks the driver without importing CUDA
packages) and cuquantum and CuPy are installed (``pip install
'quantum-microkernel[gpu]'`` on CUDA 12, ``[gpu-cu13]`` on CUDA 13).

Its tests skip where no GPU is present; on a GPU machine (an H200, cuquantum-python
26.9, CUDA 13) the conformance suite, the exact-distribution corpus and the adapter
tests pass (figures in ``docs/engines.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines import fusion, sampling
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate, dense_gate
from qmk.engines.base import EngineError
from qmk.errors import one_line

#: The widest block of gates fused into one ``apply_matrix`` (each pass over the state
#: is memory-bound: fewer, wider passes; qsim's GPU backend is run with the same width).
FUSED_WIDTH = 4
#: Entries of the state whose magnitudes are summed at a time when shots are drawn on
#: the GPU (bounds the temporary array to 256 MiB).
GPU_CHUNK = 1 << 26


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


def loaded(name: str = defaults.CUSTATEVEC) -> tuple[Any, Any, Any, Any, Any]:
    """``(cupy, custatevec, cudaDataType, ComputeType, handle)``: CuPy and cuStateVec
    loaded and a handle made on the GPU.

    The router found their packages by their files, so a library that does not load
    (a CUDA library missing beside the wheels, a driver too old) shows here, at the
    engine's making.

    Raises:
        EngineError: ``QE108 engine-unavailable``, in one line naming what failed.

    Example:
        >>> import importlib.util
        >>> if importlib.util.find_spec("cupy") is None:  # not installed here
        ...     try:
        ...         loaded()
        ...     except EngineError as exc:
        ...         print(exc.code)
        ... else:
        ...     print("QE108")
        QE108
    """
    try:
        import cupy

        cusv, data_type, compute_type = _bindings()
        handle = cusv.create()
    except Exception as exc:  # anything a library that does not load raises
        why = f"{type(exc).__name__}: {one_line(exc, limit=200)}"
        raise EngineError.of(
            "engine-unavailable",
            f"the {name} engine cannot run here: cuStateVec does not load ({why})",
            engine=name,
            reason=why,
        ) from None
    return cupy, cusv, data_type, compute_type, handle


class CuStateVecEngine(SegmentEngine):
    """cuStateVec on the first CUDA GPU (see the module docstring)."""

    name: ClassVar[str] = defaults.CUSTATEVEC

    def _setup(self) -> None:
        self._cupy, self._cusv, data_type, compute_type, handle = loaded(self.name)
        single = self._dtype == np.complex64
        self._data_type = data_type.CUDA_C_32F if single else data_type.CUDA_C_64F
        self._compute_type = compute_type.COMPUTE_32F if single else compute_type.COMPUTE_64F
        self._handle = handle
        self._device: Any = None  # the state on the GPU, where it is newer than _held

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            with contextlib.suppress(Exception):  # interpreter shutdown
                self._cusv.destroy(handle)

    # The state after a segment stays on the GPU (``_device``) until something reads it on
    # the host (:attr:`_state` downloads it then): a run whose measurements are terminal
    # draws its shots there (:meth:`_draw_whole`) and never downloads the state. Its own
    # _flush runs every segment, so the host-to-host _evolve of the base is never asked.

    @property
    def _state(self) -> np.ndarray:
        if self._device is not None:
            self._held = np.asarray(self._device.get())
            self._device = None
        return SegmentEngine._state.fget(self)  # type: ignore[attr-defined]

    @_state.setter
    def _state(self, state: np.ndarray) -> None:
        self._device = None
        SegmentEngine._state.fset(self, state)  # type: ignore[attr-defined]

    def _flush(self) -> None:
        if not self._pending:
            return
        gates = self._take_pending()
        n = len(self._order)
        if self._device is not None and not self._zeros:
            device_state = self._device  # the last segment's state, still on the GPU
        elif self._at_zero():
            device_state = self._cupy.zeros(2**n, dtype=self._dtype)  # |0...0> built there
            device_state[0] = 1
        else:
            upload = np.ascontiguousarray(self._state, dtype=self._dtype)
            device_state = self._cupy.asarray(upload)
        self._run_gates(device_state, n, gates)
        self._device, self._zeros = device_state, 0

    def _draw_whole(self, shots: int) -> np.ndarray:
        """Shots drawn on the GPU where the state is there (:func:`draw_indices`'s two
        levels: each block's weight summed there, then only the blocks drawn sent back)."""
        device_state = self._device
        size = 0 if device_state is None else int(device_state.size)
        if device_state is None or self._zeros or size <= sampling.FLAT_SAMPLING:
            return super()._draw_whole(shots)
        cp = self._cupy
        width = sampling.block_width(size, shots)
        blocks = device_state.reshape(-1, width)
        weights = cp.empty(len(blocks), dtype=cp.float64)
        rows = max(1, GPU_CHUNK // width)
        for start in range(0, len(blocks), rows):
            part = blocks[start : start + rows]
            weights[start : start + rows] = (cp.abs(part) ** 2).sum(axis=1, dtype=cp.float64)
        return sampling.draw_from_blocks(
            self._rng,
            cp.asnumpy(weights),
            width,
            shots,
            lambda used: cp.asnumpy(blocks[cp.asarray(used)]),
            amplitudes=True,
        )

    def _run_gates(self, device_state: Any, n: int, gates: Sequence[SegmentGate]) -> None:
        """Apply ``gates`` (on axes) to the state on the GPU, in place."""
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
