"""The kernel: the executor now; scheduler, jobs, sessions and the service later.

``kernel/`` is the one layer that combines QVM programs, engines and the QEC layer.
"""

from qmk.kernel.executor import RunResult, Telemetry, run

__all__ = ["RunResult", "Telemetry", "run"]
