"""The in-process machine: a verified QVM program lowered into a plan and run on engines.

``execution/`` is the one layer that combines QVM programs, engines and the QEC layer;
the kernel (:mod:`qmk.kernel`) runs it inside worker processes, and ``qmk run`` runs it
in-process.

- :mod:`qmk.execution.plan` -- the op semantics, logical-noise locations and schedule.
- :mod:`qmk.execution.executor` -- :func:`run`, :class:`RunResult`, :class:`Telemetry`.
- :mod:`qmk.execution.trajectories` -- shots grouped by error pattern and branch.
- :mod:`qmk.execution.batch` -- plans lowered to an engine's batch circuit (the stabilizer
  engine samples Clifford programs as one stim circuit).
"""

from qmk.execution.executor import RunResult, Telemetry, run

__all__ = ["RunResult", "Telemetry", "run"]
