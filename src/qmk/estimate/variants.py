"""Code variants of a program, and the choice among them (the design's user-mode JIT).

For a program's logical counts on a machine's qubits, :func:`plan_variants` generates the
variants the resource estimator can cost. It takes every code family with a scheme for
the qubit's instruction set, at the smallest distance that meets the error budget. For
each family it takes every magic-state factory count on the estimator's Pareto frontier
(fewer factories: fewer qubits, a longer run). It chooses the variant with the least
cost under an objective:

- ``volume``: physical qubits x runtime (the space-time cost; the default),
- ``qubits``: physical qubits, then runtime,
- ``runtime``: runtime, then physical qubits.

A family whose scheme cannot meet the budget (above threshold, distance too large) is
listed as infeasible with the estimator's reason. The chosen variant's ``profile``
(``logical:FAMILY(d=N)``) is what ``qmk run --profile auto`` and a kernel job with
``policy.profile = "auto"`` give the qubits whose ``ALLOC_LQ`` names none.

>>> from qmk.estimate.counts import LogicalCounts
>>> counts = LogicalCounts(num_qubits=20, t_count=10_000, measurement_count=100)
>>> plan = plan_variants(counts, "qubit_gate_ns_e3")
>>> plan.chosen.profile
'logical:surface_code(d=15)'
>>> sorted({v.family for v in plan.variants})
['SHYPS', 'bacon_shor', 'surface_code']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.estimator import DEFAULT_ERROR_BUDGET, estimate, qubit_to_json
from qmk.qec.codes import SCHEMES
from qmk.qec.errors import QECError
from qmk.qec.params import QubitParams, qubit_params


def profile_unused(graph: Any, profile: str = "auto") -> dict[str, str] | None:
    """The warning that a profile given for the qubits whose ``ALLOC_LQ`` names none
    changed nothing, because every ``ALLOC_LQ`` of ``graph`` (a QVM graph) names its own:
    ``QC130 profile-auto-unused`` for ``auto``, ``QC131 profile-unused`` for a profile
    given by name; None when some qubit takes it.

    >>> from qmk.qvm.asm import assemble
    >>> named = assemble('''
    ... .caps CAP_ALLOC
    ... a: ALLOC_LQ vq:q0, n=1, profile="logical:surface_code(d=5)"
    ... m: MEASURE_Z vq:q0, out:m
    ... ''')
    >>> profile_unused(named)["code"], profile_unused(named, "logical:color_code(d=7)")["code"]
    ('QC130', 'QC131')
    """
    from qmk.errors import warning

    allocations = [node for node in graph.nodes if node.op == "ALLOC_LQ"]
    if not allocations or any(not node.args.get("profile") for node in allocations):
        return None
    every = f"every qubit names its code profile ({len(allocations)} ALLOC_LQ)"
    if profile == "auto":
        return warning(
            QECError,
            "profile-auto-unused",
            f"{every}, so profile auto gave none of them the chosen code variant",
        )
    return warning(QECError, "profile-unused", f"{every}, so profile {profile} applied to none")


#: The objectives a plan may minimise (see the module docstring).
OBJECTIVES: tuple[str, ...] = ("volume", "qubits", "runtime")


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One way to run the program: a code family and distance, and a factory count."""

    family: str
    distance: int | None
    physical_qubits: int | None
    runtime_ns: float | None
    t_factories: int | None
    logical_error_rate: float | None
    feasible: bool
    why: str = ""
    #: The estimator's report of this variant (its frontier entry; None: infeasible).
    report: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def profile(self) -> str:
        return f"logical:{self.family}(d={self.distance})"

    def cost(self, objective: str) -> tuple[float, float]:
        """The sort key of ``objective`` (smaller is better)."""
        qubits, runtime = float(self.physical_qubits or 0), float(self.runtime_ns or 0)
        if objective == "qubits":
            return (qubits, runtime)
        if objective == "runtime":
            return (runtime, qubits)
        return (qubits * runtime, runtime)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "distance": self.distance,
            "profile": self.profile if self.feasible else None,
            "physical_qubits": self.physical_qubits,
            "runtime_ns": self.runtime_ns,
            "t_factories": self.t_factories,
            "logical_error_rate": self.logical_error_rate,
            "feasible": self.feasible,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantPlan:
    """Every variant generated, the objective and the one chosen."""

    variants: tuple[Variant, ...]
    objective: str
    chosen: Variant
    qubit: str
    error_budget: float

    def to_json(self) -> dict[str, Any]:
        return {
            "qubit": self.qubit,
            "error_budget": self.error_budget,
            "objective": self.objective,
            "chosen": self.chosen.to_json(),
            "variants": [v.to_json() for v in self.variants],
        }


def _variants_of(
    family: str, counts: LogicalCounts, qubit: QubitParams, budget: float
) -> list[Variant]:
    params = {
        "qubitParams": qubit_to_json(qubit),
        "qecScheme": {"name": family},
        "errorBudget": budget,
        "estimateType": "frontier",
    }
    try:
        report = estimate(counts, params)
    except QECError as exc:
        return [
            Variant(
                family=family,
                distance=None,
                physical_qubits=None,
                runtime_ns=None,
                t_factories=None,
                logical_error_rate=None,
                feasible=False,
                why=exc.message,
            )
        ]
    out = []
    for entry in report.get("frontierEntries") or [report]:
        breakdown = entry["physicalCounts"]["breakdown"]
        out.append(
            Variant(
                family=family,
                distance=int(entry["logicalQubit"]["codeDistance"]),
                physical_qubits=int(entry["physicalCounts"]["physicalQubits"]),
                runtime_ns=float(entry["physicalCounts"]["runtime"]),
                t_factories=int(breakdown.get("numTfactories", 0)),
                logical_error_rate=float(entry["logicalQubit"]["logicalErrorRate"]),
                feasible=True,
                report=entry,
            )
        )
    return out


def plan_variants(
    counts: LogicalCounts,
    qubit: str | QubitParams,
    *,
    error_budget: float = DEFAULT_ERROR_BUDGET,
    objective: str = "volume",
) -> VariantPlan:
    """The variants of a program with ``counts`` on ``qubit`` and the one ``objective`` picks.

    Raises:
        QECError: ``QC103`` for an unknown objective, and when no family meets the budget
            (naming each family's reason).
    """
    if objective not in OBJECTIVES:
        raise QECError.of(
            "bad-parameter", f"objective {objective!r}: use one of {', '.join(OBJECTIVES)}"
        )
    params = qubit_params(qubit)
    variants: list[Variant] = []
    for family, by_set in SCHEMES.items():
        if params.instruction_set in by_set:
            variants += _variants_of(family, counts, params, error_budget)
    feasible = [v for v in variants if v.feasible]
    if not feasible:
        reasons = "; ".join(f"{v.family}: {v.why}" for v in variants)
        raise QECError.of(
            "bad-parameter", f"no code variant meets the error budget {error_budget}: {reasons}"
        )
    chosen = min(feasible, key=lambda v: v.cost(objective))
    return VariantPlan(
        variants=tuple(variants),
        objective=objective,
        chosen=chosen,
        qubit=params.name,
        error_budget=error_budget,
    )


def variant_estimate(
    counts: LogicalCounts,
    qubit: str | QubitParams,
    *,
    family: str,
    distance: int,
    t_factories: int,
    error_budget: float = DEFAULT_ERROR_BUDGET,
    objective: str = "volume",
) -> Mapping[str, Any]:
    """The estimator's report of one variant of :func:`plan_variants`: the entry of
    ``family``'s frontier at ``distance`` with ``t_factories`` factories that
    ``objective`` picks, so the estimate of a plan's chosen variant is the plan's own
    figures (QRE's single point is the fastest variant, often with more factories).

    Raises:
        QECError: ``QC103`` when no entry of the family's frontier has that distance and
            factory count (or the family is infeasible: its reason).
    """
    variants = _variants_of(family, counts, qubit_params(qubit), error_budget)
    matching = [
        v
        for v in variants
        if v.feasible and v.distance == distance and v.t_factories == t_factories
    ]
    if not matching:
        why = "; ".join(v.why for v in variants if not v.feasible)
        raise QECError.of(
            "bad-parameter",
            f"no {family} variant at d={distance} with {t_factories} T factories"
            + (f": {why}" if why else ""),
        )
    report = min(matching, key=lambda v: v.cost(objective)).report
    assert report is not None  # a feasible variant has its entry
    return report


__all__ = ["OBJECTIVES", "Variant", "VariantPlan", "plan_variants", "variant_estimate"]
