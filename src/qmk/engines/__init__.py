"""Quantum state engines behind one protocol (:class:`Engine`).

- ``statevector`` (:class:`~qmk.engines.statevector.StatevectorEngine`): numpy,
  universal, complex128 by default; gates applied in place with fusion; a memory
  guard refuses a state that would not fit before allocating it.
- ``stabilizer`` (:class:`~qmk.engines.stabilizer.StabilizerEngine`): stim's
  TableauSimulator; Clifford gates only, thousands of qubits.
- adapters to the field's simulators (:mod:`qmk.engines.adapters`: qsim, Qiskit Aer,
  Cirq, QuTiP, PennyLane Lightning, Braket, and GPU engines), each an optional extra.

Every engine is one entry of the registry (:mod:`qmk.engines.registry`: capabilities,
cost model, whether it is installed here); the router (:mod:`qmk.engines.router`)
picks the cheapest able one per job. Engines know gates (:data:`GATES`), not graphs;
``qmk.execution.executor`` runs programs on them.

>>> engine = make_engine("statevector", seed=7)
>>> q0, q1 = engine.allocate(), engine.allocate()
>>> engine.apply("h", [q0]); engine.apply("cx", [q0, q1])
>>> engine.sample([q0, q1], 4).tolist()[0] in ([0, 0], [1, 1])
True
>>> make_engine("tensor", seed=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.engines.base.EngineError: QE101 engine-unknown: no engine named 'tensor'; known: ...
"""

from __future__ import annotations

from typing import Any

from qmk.engines.base import Engine, EngineError
from qmk.engines.gates import BASES, GATES, Gate
from qmk.engines.registry import ENGINE_NAMES, availability, capabilities, load


def engine_class(name: str) -> type:
    """The class registered under ``name`` (importing it needs no optional package).

    Raises:
        EngineError: ``QE101 engine-unknown``.
    """
    return load(name)


def make_engine(name: str, *, seed: int | None = None, **options: Any) -> Engine:
    """A new, empty engine ``name`` seeded with ``seed``; ``options`` go to its class.

    Raises:
        EngineError: ``QE101 engine-unknown``; ``QE108 engine-unavailable`` when its
            package (or GPU) is missing here.
    """
    engine: Engine = engine_class(name)(seed=seed, **options)
    return engine


__all__ = [
    "BASES",
    "ENGINE_NAMES",
    "GATES",
    "Engine",
    "EngineError",
    "Gate",
    "availability",
    "capabilities",
    "engine_class",
    "make_engine",
]
