"""Physical resource estimates, computed as the Azure Quantum Resource Estimator computes them.

:func:`estimate` takes logical counts (:class:`~qmk.estimate.counts.LogicalCounts`)
and QRE's job parameters (``qubitParams``, ``qecScheme``, ``errorBudget``,
``constraints``, ``distillationUnitSpecifications``, ``estimateType``) and
returns QRE's result JSON: ``physicalCounts`` (with ``breakdown``),
``logicalQubit``, ``tfactory``, ``errorBudget``, ``logicalCounts`` and
``jobParams`` -- or, for ``estimateType: "frontier"``, ``frontierEntries``.
The model is Beverland et al., arXiv:2211.07629 (PSSPC layout, Appendix C
factories), following the open-source estimator in microsoft/qsharp
(``source/resource_estimator``) step for step, floats included. QMK adds a
``decoder`` section (syndrome bits per round and the decoding throughput the
program needs; see ``docs/estimation.md``) and two code families QRE lacks,
``bacon_shor`` and ``SHYPS`` (formulas in :mod:`qmk.qec.codes`).

>>> from qmk.estimate.counts import LogicalCounts
>>> r = estimate(LogicalCounts(num_qubits=100, t_count=10**6, rotation_count=10**4,
...     rotation_depth=10**3, ccz_count=10**5, measurement_count=10**5))
>>> r["physicalCounts"]["physicalQubits"], r["logicalQubit"]["codeDistance"]
(735980, 21)
"""

from __future__ import annotations

from qmk.estimate.params import (
    DEFAULT_ERROR_BUDGET,
    TS_PER_ROTATION_A,
    TS_PER_ROTATION_B,
    Budget,
    Constraints,
    JobParams,
    budget_from_json,
    code_from_json,
    echoed_power,
    format_time,
    parse_time,
    qubit_from_json,
    qubit_to_json,
    scheme_to_json,
)
from qmk.estimate.report import estimate, syndrome_bits_per_round
from qmk.estimate.search import distance_for, logical_error_rate

__all__ = [
    "DEFAULT_ERROR_BUDGET",
    "TS_PER_ROTATION_A",
    "TS_PER_ROTATION_B",
    "Budget",
    "Constraints",
    "JobParams",
    "budget_from_json",
    "code_from_json",
    "distance_for",
    "echoed_power",
    "estimate",
    "format_time",
    "logical_error_rate",
    "parse_time",
    "qubit_from_json",
    "qubit_to_json",
    "scheme_to_json",
    "syndrome_bits_per_round",
]
