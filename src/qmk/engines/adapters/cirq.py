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
from qmk.gates import GATES


def cirq_gate(cirq: Any, name: str, params: Sequence[float]) -> Any:
    """Gate ``name`` of the records as Cirq's gate: the one its record names in Cirq
    (``S**-1``: a gate to a power; ``rx``: a function of the angle), else its matrix
    (``cirq.MatrixGate``)."""
    record = GATES[name]
    spelled = record.names.first("cirq")
    if spelled is None:
        return cirq.MatrixGate(record.matrix(params))
    base, _, power = spelled.partition("**")
    gate = getattr(cirq, base)
    if record.params:
        return gate(*params)
    if power:
        exponent = float(power)
        return gate ** (int(exponent) if exponent.is_integer() else exponent)
    return gate


def cirq_operations(cirq: Any, qubits: Sequence[Any], gates: Sequence[SegmentGate]) -> list[Any]:
    """Cirq operations for engine gates on ``qubits`` (by axis); shared with qsim."""
    fixed: dict[str, Any] = {}  # a segment's parameterless gates, each made once
    ops = []
    for name, axes, params in gates:
        if params:
            gate = cirq_gate(cirq, name, params)
        else:
            gate = fixed.get(name)
            if gate is None:
                gate = fixed[name] = cirq_gate(cirq, name, params)
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
