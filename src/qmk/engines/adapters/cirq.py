"""Cirq's statevector simulator (``cirq.Simulator``) behind the engine protocol.

A :class:`~qmk.engines.adapters._segments.SegmentEngine`: QMK holds the state between
calls and Cirq evolves each segment of gates from it (``initial_state``), in complex64
(Cirq's default) or complex128. Cirq's qubit order is QMK's: the first qubit is the most
significant bit. Install with ``pip install 'quantum-microkernel[cirq]'``.

>>> import pytest; _ = pytest.importorskip("cirq")
>>> engine = CirqEngine(seed=1, dtype="complex128")
>>> a, b = engine.allocate(), engine.allocate()
>>> engine.apply("h", [a]); engine.apply("cx", [a, b])
>>> round(engine.probability(b), 12), sorted(set(map(tuple, engine.sample([a, b], 50).tolist())))
(0.5, [(0, 0), (1, 1)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate


def cirq_operations(cirq: Any, qubits: Sequence[Any], gates: Sequence[SegmentGate]) -> list[Any]:
    """Cirq operations for engine gates on ``qubits`` (by axis); shared with qsim."""
    fixed = {
        "i": cirq.I,
        "x": cirq.X,
        "y": cirq.Y,
        "z": cirq.Z,
        "h": cirq.H,
        "s": cirq.S,
        "sdg": cirq.S**-1,
        "t": cirq.T,
        "tdg": cirq.T**-1,
        "cx": cirq.CNOT,
        "cz": cirq.CZ,
        "swap": cirq.SWAP,
        "ccx": cirq.CCX,
        "ccz": cirq.CCZ,
    }
    rotations = {"rx": cirq.rx, "ry": cirq.ry, "rz": cirq.rz}
    ops = []
    for name, axes, params in gates:
        gate = rotations[name](params[0]) if name in rotations else fixed[name]
        ops.append(gate.on(*(qubits[a] for a in axes)))
    return ops


class CirqEngine(SegmentEngine):
    """Cirq's ``cirq.Simulator`` (see the module docstring)."""

    name: ClassVar[str] = defaults.CIRQ

    def _setup(self) -> None:
        import cirq

        self._cirq = cirq
        self._simulator = cirq.Simulator(dtype=self._dtype.type)

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        cirq = self._cirq
        qubits = cirq.LineQubit.range(n)
        circuit = cirq.Circuit(cirq_operations(cirq, qubits, gates))
        result = self._simulator.simulate(
            circuit, qubit_order=qubits, initial_state=state.astype(self._dtype)
        )
        return np.asarray(result.final_state_vector)
