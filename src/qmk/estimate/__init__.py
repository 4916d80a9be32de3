"""Physical resource estimation, as the Azure Quantum Resource Estimator (QRE) does it.

Built on the logical-qubit layer (:mod:`qmk.qec`):

- :mod:`qmk.estimate.counts` -- :class:`LogicalCounts` of a program, counted as the Q#
  tracer counts (peak qubits, T, rotations, rotation depth, CCZ, measurements).
- :mod:`qmk.estimate.tfactory` -- T-factory units and the factory search.
- :mod:`qmk.estimate.params` -- QRE's job parameters: qubit parameters, the QEC scheme (a
  :class:`qmk.qec.codes.QecScheme`), budgets, constraints, distillation units.
- :mod:`qmk.estimate.search` -- the code distance, factory search, single point and frontier.
- :mod:`qmk.estimate.report` -- the result JSON, the decoder accounting and :func:`estimate`.
- :mod:`qmk.estimate.estimator` -- the public names of the three, in one place
  (``docs/estimation.md``).

>>> from qmk.estimate import LogicalCounts, estimate
>>> report = estimate(LogicalCounts(num_qubits=10, t_count=100, measurement_count=10))
>>> report["logicalQubit"]["codeDistance"] > 0
True
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts, count_graph
    from qmk.estimate.estimator import JobParams, estimate

#: Where each public name lives. They load on first use: the kernel's shared machine
#: sizes its patches and factories with :mod:`~qmk.estimate.params` and
#: :mod:`~qmk.estimate.tfactory` and never runs the search or the report.
_HOMES = {
    "JobParams": "qmk.estimate.estimator",
    "LogicalCounts": "qmk.estimate.counts",
    "count_graph": "qmk.estimate.counts",
    "estimate": "qmk.estimate.estimator",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'qmk.estimate' has no attribute {name!r}")
    return getattr(import_module(home), name)


__all__ = ["JobParams", "LogicalCounts", "count_graph", "estimate"]
