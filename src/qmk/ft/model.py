"""The physics a layout and a lattice-surgery schedule use, read from the estimator.

One source for every number: :func:`ft_model` runs :func:`qmk.estimate.estimator.estimate`
on the program's logical counts (the same call ``qmk estimate`` makes). From it, it takes
the T factory (its duration, states per run, physical qubits, output error rate and the
number of copies) and the logical cycle time. It takes the logical error rate per patch
and cycle of the code at the distance used too. So a schedule and the estimate it is compared with
rest on the same assumptions; where they still differ, the schedule says why
(``docs/ft-execution.md``).

Units: one *logical cycle* is ``d`` code cycles (syndrome rounds), QRE's
``logicalCycleTime``; one lattice-surgery tick (Litinski's ``d`` code cycles) is one
logical cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.ft.errors import FTError
from qmk.qvm.profiles import PATCH_FAMILIES

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts
    from qmk.qec.params import QubitParams


@dataclass(frozen=True, slots=True, kw_only=True)
class Factory:
    """The estimator's T factory, as the layout places it and the schedule runs it.

    Attributes:
        copies: factories placed (QRE's ``numTfactories``).
        duration_cycles: one run, in logical cycles (``ceil(runtime / cycle time)``).
        duration_ns: one run, in ns (QRE's ``tfactory.runtime``).
        states_per_run: T states one run of one copy delivers.
        physical_qubits: one copy's physical qubits.
        output_error_rate: a delivered state's error probability.
        description: the distillation units per round, as ``qmk estimate`` prints them.
    """

    copies: int
    duration_cycles: int
    duration_ns: int
    states_per_run: int
    physical_qubits: int
    output_error_rate: float
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FTModel:
    """A program's fault-tolerant machine: code, distance, timing, error rates, factory.

    Attributes:
        family: the code family (a patch code of :data:`PATCH_FAMILIES`).
        distance: the code distance of the data patches.
        qubit: the qubit parameter set's name.
        patch_qubits: physical qubits of one tile (one patch at ``distance``).
        cycle_time_ns: one logical cycle (``d`` code cycles).
        logical_error_rate: per patch and logical cycle, the scheme's ``P_L(d)``.
        factory: the T factory, or None when the program needs no T state.
        ts_per_rotation: T states of one arbitrary-angle rotation (QRE's
            ``numTsPerRotation``), or None when the program has none.
        estimate: the estimator's whole result (QRE JSON).
    """

    family: str
    distance: int
    qubit: str
    patch_qubits: int
    cycle_time_ns: int
    logical_error_rate: float
    factory: Factory | None
    ts_per_rotation: int | None
    estimate: dict[str, Any]

    @property
    def profile(self) -> str:
        return f"logical:{self.family}(d={self.distance})"


def _factory(result: dict[str, Any], cycle_time_ns: int) -> Factory | None:
    data = result.get("tfactory")
    if not data:
        return None
    units = ", ".join(
        f"{n} x {name} (d={d})"
        for n, name, d in zip(
            data["numUnitsPerRound"],
            data["unitNamePerRound"],
            data["codeDistancePerRound"],
            strict=True,
        )
    )
    return Factory(
        copies=int(result["physicalCounts"]["breakdown"]["numTfactories"]),
        duration_cycles=max(1, math.ceil(data["runtime"] / cycle_time_ns)),
        duration_ns=int(data["runtime"]),
        states_per_run=int(data["numTstates"]),
        physical_qubits=int(data["physicalQubits"]),
        output_error_rate=float(data["logicalErrorRate"]),
        description=units,
    )


def ft_model(
    counts: LogicalCounts,
    qubit: str | QubitParams,
    family: str = "surface_code",
    distance: int | None = None,
    *,
    error_budget: float | None = None,
) -> FTModel:
    """The machine for a program with ``counts`` on ``qubit``, with ``family``'s patches.

    ``error_budget`` None is the estimator's default. ``distance`` None takes the
    estimator's code distance (then every number is the estimate's); a distance given
    keeps the estimator's factory and sets the patches' size, cycle time and error rate
    at that distance.

    Raises:
        FTError: ``QP104`` a family with no patches; QECError: what the estimator raises.
    """
    from qmk.estimate.estimator import JobParams, estimate, qubit_to_json
    from qmk.estimate.tfactory import make_patch
    from qmk.qec.params import qubit_params
    from qmk.qvm.profiles import family_name

    name = family_name(family) or family
    if name not in PATCH_FAMILIES:
        raise FTError.of(
            "code-unsupported",
            f"{family}: lattice surgery here joins patches of {' or '.join(PATCH_FAMILIES)}",
            family=family,
        )
    params = qubit_params(qubit)
    qubit_json = {"name": qubit} if isinstance(qubit, str) else qubit_to_json(params)
    data: dict[str, Any] = {"qubitParams": qubit_json, "qecScheme": {"name": name}}
    if error_budget is not None:
        data["errorBudget"] = error_budget
    job = JobParams.from_json(data)
    result = estimate(counts, job)
    d = int(result["logicalQubit"]["codeDistance"]) if distance is None else distance
    patch = make_patch(job.scheme, job.qubit, d)
    return FTModel(
        family=name,
        distance=d,
        qubit=params.name,
        patch_qubits=patch.physical_qubits,
        cycle_time_ns=patch.cycle_time,
        logical_error_rate=patch.logical_error_rate,
        factory=_factory(result, patch.cycle_time),
        ts_per_rotation=result["physicalCounts"]["breakdown"]["numTsPerRotation"],
        estimate=result,
    )
