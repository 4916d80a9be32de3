"""Google's qsim (``qsimcirq``) behind the engine protocol, on the CPU or a CUDA GPU.

A :class:`~qmk.engines.adapters._segments.SegmentEngine`: QMK holds the state between
calls and qsim evolves each segment from it (``initial_state``), with its gate fuser
(blocks of up to :data:`FUSED_GATE_SIZE` qubits) and every core of the machine. qsim
computes in single precision (complex64) only. Install with
``pip install 'quantum-microkernel[qsim]'``.

:class:`QsimGpuEngine` runs qsim's CUDA backend; it registers only where a CUDA GPU is
present and qsimcirq was built with GPU support (``qsimcirq.qsim_gpu``), through
qsimcirq's options ``use_gpu`` and ``gpu_mode``. Its tests skip without one; on an H200
and an H100, with a qsimcirq 0.22.0 whose CUDA module was built from qsim's sources, it
passes the conformance suite and the exact-distribution corpus (``docs/engines.md``).

>>> import pytest; _ = pytest.importorskip("qsimcirq")
>>> engine = QsimEngine(seed=1)
>>> a, b = engine.allocate(), engine.allocate()
>>> engine.apply("h", [a]); engine.apply("cx", [a, b])
>>> round(engine.probability(b), 6), engine.dtype.name
(0.5, 'complex64')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate
from qmk.engines.adapters.cirq import cirq_operations
from qmk.engines.base import EngineError

#: The largest gate block qsim's fuser builds (qsim's own benchmarks use 4).
FUSED_GATE_SIZE = 4


class QsimEngine(SegmentEngine):
    """qsim on the CPU (see the module docstring)."""

    name: ClassVar[str] = defaults.QSIM
    #: qsim's options beyond the fuser and threads (the GPU engine adds its own).
    _gpu: ClassVar[bool] = False

    def _setup(self) -> None:
        import cirq
        import qsimcirq

        self._cirq = cirq
        options = qsimcirq.QSimOptions(
            max_fused_gate_size=FUSED_GATE_SIZE,
            cpu_threads=os.cpu_count() or 1,
            use_gpu=self._gpu,
            gpu_mode=0,
        )
        self._simulator = qsimcirq.QSimSimulator(qsim_options=options)

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        return self._simulate(np.ascontiguousarray(state, dtype=np.complex64), n, gates)

    def _evolve_from_zero(self, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        return self._simulate(0, n, gates)  # qsim builds |0...0> itself

    def _simulate(
        self, initial: np.ndarray | int, n: int, gates: Sequence[SegmentGate]
    ) -> np.ndarray:
        """qsim's final state of the segment from ``initial`` (a state, or a basis
        state's index), as qsim returns it (``simulate_into_1d_array``: no copy into a
        cirq result, which takes longer than a 26-qubit segment's gates)."""
        cirq = self._cirq
        qubits = cirq.LineQubit.range(n)
        circuit = cirq.Circuit(cirq_operations(cirq, qubits, gates))
        # qsim simulates the qubits of the circuit: name every one, idle ones too.
        circuit.append(cirq.I.on_each(*(q for q in qubits if q not in circuit.all_qubits())))
        _, state, _ = self._simulator.simulate_into_1d_array(
            circuit, qubit_order=qubits, initial_state=initial
        )
        return np.asarray(state)


class QsimGpuEngine(QsimEngine):
    """qsim's CUDA backend (see the module docstring)."""

    name: ClassVar[str] = defaults.QSIM_GPU
    _gpu: ClassVar[bool] = True

    def _setup(self) -> None:
        import qsimcirq

        if qsimcirq.qsim_gpu is None:  # a CUDA module there, but not the one qsim loads
            raise EngineError.of(
                "engine-unavailable",
                f"the {self.name} engine cannot run here: qsimcirq found no GPU backend "
                "it can load (qsimcirq.qsim_gpu is None)",
                engine=self.name,
            )
        super()._setup()
