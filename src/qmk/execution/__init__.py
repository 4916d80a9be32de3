"""The in-process machine: a verified QVM program lowered into a plan and run on engines.

``execution/`` is the one layer that combines QVM programs, engines and the QEC layer;
the kernel (:mod:`qmk.kernel`) runs it inside worker processes, and ``qmk run`` runs it
in-process.

- :mod:`qmk.execution.request` -- :class:`~qmk.execution.request.RunRequest`, one run as
  one typed value.
- :mod:`qmk.execution.plan` -- the op semantics, logical-noise locations and schedule.
- :mod:`qmk.execution.runs` -- :func:`run`: a program run in this process, through its
  target (:mod:`qmk.execution.target`).
- :mod:`qmk.execution.executor` -- :func:`~qmk.execution.executor.execute`, the ``logical``
  target's runs.
- :mod:`qmk.execution.result` -- :class:`RunResult`, :class:`Telemetry`.
- :mod:`qmk.execution.trajectories` -- shots grouped by error pattern and branch.
- :mod:`qmk.execution.batch` -- plans lowered to an engine's batch circuit (the stabilizer
  engine samples Clifford programs as one stim circuit).

The names below load on first use, so that a module that needs only the run request
(the kernel's job record, say) does not import the engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.execution.result import RunResult, Telemetry
    from qmk.execution.runs import run


def __getattr__(name: str) -> Any:
    if name == "run":
        from qmk.execution.runs import run

        return run
    if name in ("RunResult", "Telemetry"):
        from qmk.execution import result

        return getattr(result, name)
    raise AttributeError(f"module 'qmk.execution' has no attribute {name!r}")


__all__ = ["RunResult", "Telemetry", "run"]
