"""The Amazon Braket local simulator (``amazon-braket-default-simulator``) behind the
engine protocol.

A :class:`~qmk.engines.adapters._segments.SegmentEngine`: QMK holds the state between
calls and the Braket simulator's statevector kernels evolve each segment from it
(``StateVectorSimulation`` applies Braket gate operations to a given state: the same
code path ``LocalSimulator("braket_sv")`` runs). Braket's qubit 0 is the most
significant bit, as QMK's axis 0; a gate Braket has no class for (``ccz``) runs as
its matrix (``Unitary``).
Install with ``pip install 'quantum-microkernel[braket]'``.

>>> import pytest; _ = pytest.importorskip("braket.default_simulator")
>>> engine = BraketEngine(seed=1)
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

#: Gates applied per contraction by the simulator (its ``batch_size``).
BATCH_SIZE = 1


class BraketEngine(SegmentEngine):
    """The Braket local statevector simulator (see the module docstring)."""

    name: ClassVar[str] = defaults.BRAKET

    def _setup(self) -> None:
        from braket.default_simulator import gate_operations
        from braket.default_simulator.state_vector_simulation import StateVectorSimulation

        self._ops = gate_operations
        self._simulation = StateVectorSimulation

    def _operations(self, gates: Sequence[SegmentGate]) -> list[Any]:
        """Braket gate operations for the gates: each the class its record names in
        Braket, else its matrix (``Unitary``)."""
        g = self._ops
        ops: list[Any] = []
        for name, axes, params in gates:
            targets = list(axes)
            record = GATES[name]
            spelled = record.names.first("braket")
            if spelled is None:
                ops.append(g.Unitary(targets=targets, matrix=record.matrix(params)))
            elif params:
                ops.append(getattr(g, spelled)(targets=targets, angle=params[0]))
            else:
                ops.append(getattr(g, spelled)(targets=targets))
        return ops

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        start = np.ascontiguousarray(state, dtype=np.complex128)
        evolved = self._simulation._apply_operations(start, n, self._operations(gates), BATCH_SIZE)
        return np.asarray(evolved).reshape(-1)
