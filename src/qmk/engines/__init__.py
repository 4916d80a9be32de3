"""Quantum state engines behind one protocol (:class:`Engine`).

- ``statevector`` (:class:`~qmk.engines.statevector.StatevectorEngine`): numpy,
  universal, complex128 by default; gates applied in place with fusion; a memory
  guard refuses a state that would not fit before allocating it.
- ``stabilizer`` (:class:`~qmk.engines.stabilizer.StabilizerEngine`): stim's
  TableauSimulator; Clifford gates only, thousands of qubits.

Engines know gates (:data:`GATES`), not graphs; ``qmk.execution.executor`` runs programs
on them.

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

from qmk import defaults
from qmk.engines.base import ENGINE_ERRORS, Engine, EngineError
from qmk.engines.gates import BASES, GATES, Gate

#: Engine names (:data:`qmk.defaults.ENGINES`).
ENGINE_NAMES = defaults.ENGINES


def engine_class(name: str) -> type:
    """The class registered under ``name``; raises ``QE101 engine-unknown``."""
    if name == defaults.STATEVECTOR:
        from qmk.engines.statevector import StatevectorEngine

        return StatevectorEngine
    if name == defaults.STABILIZER:
        from qmk.engines.stabilizer import StabilizerEngine

        return StabilizerEngine
    raise EngineError.of(
        "engine-unknown", f"no engine named {name!r}; known: {', '.join(ENGINE_NAMES)}"
    )


def make_engine(name: str, *, seed: int | None = None, **options: Any) -> Engine:
    """A new, empty engine ``name`` seeded with ``seed``; ``options`` go to its class."""
    return engine_class(name)(seed=seed, **options)


__all__ = [
    "BASES",
    "ENGINE_ERRORS",
    "ENGINE_NAMES",
    "GATES",
    "Engine",
    "EngineError",
    "Gate",
    "engine_class",
    "make_engine",
]
