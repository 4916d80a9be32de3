"""PennyLane Lightning (``lightning.qubit``) behind the engine protocol.

A :class:`~qmk.engines.adapters._segments.SegmentEngine`: QMK holds the state between
calls and Lightning's C++ kernels evolve each segment from it (a ``StatePrep`` of the
held state, the gates, then ``qml.state()``), in complex128 or complex64. PennyLane's
wire 0 is the most significant bit, as QMK's axis 0. Install with
``pip install 'quantum-microkernel[lightning]'``.

>>> import pytest; _ = pytest.importorskip("pennylane_lightning")
>>> engine = LightningEngine(seed=1)
>>> a, b = engine.allocate(), engine.allocate()
>>> engine.apply("h", [a]); engine.apply("cx", [a, b])
>>> round(engine.probability(b), 12)
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate
from qmk.gates import GATES


class LightningEngine(SegmentEngine):
    """PennyLane ``lightning.qubit`` (see the module docstring)."""

    name: ClassVar[str] = defaults.LIGHTNING

    def _setup(self) -> None:
        import pennylane as qml

        self._qml = qml
        self._devices: dict[int, Any] = {}

    def _device(self, n: int) -> Any:
        device = self._devices.get(n)
        if device is None:
            device = self._devices[n] = self._qml.device(
                "lightning.qubit", wires=n, c_dtype=self._dtype.type
            )
        return device

    def _operations(self, gates: Sequence[SegmentGate]) -> list[Any]:
        """PennyLane operations for the gates: each the one its record names in
        PennyLane (``Adjoint(S)``: an adjoint), else its matrix (``QubitUnitary``)."""
        qml = self._qml
        ops: list[Any] = []
        for name, axes, params in gates:
            wires = list(axes)
            record = GATES[name]
            spelled = record.names.first("pennylane")
            if spelled is None:
                ops.append(qml.QubitUnitary(record.matrix(params), wires=wires))
            elif spelled.startswith("Adjoint("):
                inner = getattr(qml, spelled.removeprefix("Adjoint(").removesuffix(")"))
                ops.append(qml.adjoint(inner(*params, wires=wires)))
            else:
                ops.append(getattr(qml, spelled)(*params, wires=wires))
        return ops

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        qml = self._qml
        start = state.astype(np.complex128)
        start = start / np.linalg.norm(start)
        ops = [qml.StatePrep(start, wires=range(n)), *self._operations(gates)]
        tape = qml.tape.QuantumScript(ops, [qml.state()])
        (result,) = self._device(n).execute([tape])
        return np.asarray(result)
