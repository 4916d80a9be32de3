"""The estimate's report: QRE's result JSON, QMK's decoder accounting, and :func:`estimate`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.params import (
    JobParams,
    budget_from_json,
)
from qmk.estimate.search import _Estimator, _Result
from qmk.qec.codes import QecScheme
from qmk.qec.errors import QECError
from qmk.qec.logical import syndrome_bits_per_round as logical_syndrome_bits

# -- decoder accounting ------------------------------------------------------------------------


def syndrome_bits_per_round(code: QecScheme, distance: int) -> float:
    """Syndrome bits one logical qubit yields per round.

    A code of a known family takes the physics model's count
    (:func:`qmk.qec.logical.syndrome_bits_per_round`, the one run telemetry reports and
    checked against the measurements per round of stim's memory circuits), so
    ``qmk estimate`` and ``qmk run`` agree. A custom scheme of no known family is charged
    one bit per qubit beyond ``d**2`` data qubits (at least one).
    """
    if not code.custom:
        return logical_syndrome_bits(code.family, distance)
    return float(max(1, code.physical_qubits(distance) - distance * distance))


def _whole(value: float) -> float | int:
    """``value`` as an int when it is whole (the counts a report shows), else as is."""
    return int(value) if float(value).is_integer() else value


def _decoder(code: QecScheme, result: _Result) -> dict[str, Any]:
    patch = result.patch
    d = patch.distance
    per_patch = syndrome_bits_per_round(code, d)
    rounds_per_second = d * 1e9 / patch.cycle_time
    algorithm_patches = result.physical_qubits_for_algorithm // patch.physical_qubits
    algorithm_bits = algorithm_patches * per_patch
    factory_bits = 0
    if result.factory is not None:
        busiest = 0
        for qubits, fd in zip(
            result.factory.qubits_per_round, result.factory.distances, strict=True
        ):
            if fd > 1:
                fraction = syndrome_bits_per_round(code, fd) / code.physical_qubits(fd)
                busiest = max(busiest, math.ceil(qubits * fraction))
        factory_bits = busiest * result.copies
    bits = algorithm_bits + factory_bits
    return {
        "syndromeRoundsPerLogicalCycle": d,
        "syndromeRoundTime": patch.cycle_time / d,
        "syndromeRoundsPerSecond": rounds_per_second,
        "syndromeBitsPerRoundPerLogicalQubit": _whole(per_patch),
        "algorithmSyndromeBitsPerRound": _whole(algorithm_bits),
        "tfactorySyndromeBitsPerRound": factory_bits,
        "syndromeBitsPerRound": _whole(bits),
        "syndromeBitsPerSecond": bits * rounds_per_second,
        "decodingRounds": result.num_cycles * d,
    }


# -- JSON --------------------------------------------------------------------------------------


def _entry(est: _Estimator, result: _Result, *, frontier: bool) -> dict[str, Any]:
    breakdown: dict[str, Any] = {
        "algorithmicLogicalQubits": est.logical_qubits,
        "algorithmicLogicalDepth": est.logical_depth,
        "logicalDepth": result.num_cycles,
        "numTstates": est.num_magic_states,
        "clockFrequency": 1e9 / result.patch.cycle_time,
        "numTfactories": result.copies,
        "numTfactoryRuns": result.runs,
        "physicalQubitsForTfactories": result.physical_qubits_for_factories,
        "physicalQubitsForAlgorithm": result.physical_qubits_for_algorithm,
        "requiredLogicalQubitErrorRate": result.required_logical_rate,
    }
    breakdown["requiredLogicalTstateErrorRate"] = result.required_tstate_rate
    breakdown["numTsPerRotation"] = est.ts_per_rotation
    breakdown["cliffordErrorRate"] = est.qubit.clifford_error_rate
    out: dict[str, Any] = {
        "logicalQubit": {
            "codeDistance": result.patch.distance,
            "physicalQubits": result.patch.physical_qubits,
            "logicalCycleTime": result.patch.cycle_time,
            "logicalErrorRate": result.patch.logical_error_rate,
        },
    }
    if result.factory is not None:
        out["tfactory"] = result.factory.to_json()
    elif frontier:
        out["tfactory"] = None  # QRE's frontier entries carry an explicit null
    budget = est.budget
    out["errorBudget"] = {
        "logical": budget.logical,
        ("magic_states" if frontier else "tstates"): budget.tstates,
        "rotations": budget.rotations,
    }
    out["physicalCounts"] = {
        "physicalQubits": result.physical_qubits,
        "runtime": result.runtime,
        "rqops": result.rqops,
        "breakdown": breakdown,
    }
    out["decoder"] = _decoder(est.scheme, result)
    return out


def estimate(
    counts: LogicalCounts, params: Mapping[str, Any] | JobParams | None = None
) -> dict[str, Any]:
    """The physical resource estimate of ``counts`` under QRE job ``params``, as QRE's JSON.

    Args:
        counts: the program's logical counts.
        params: QRE job parameters (a JSON object) or parsed :class:`JobParams`.

    Returns:
        ``{"status": "success", "jobParams", "physicalCounts", "logicalQubit",
        "tfactory" (when T states are needed), "errorBudget", "logicalCounts",
        "decoder"}``; for ``estimateType: "frontier"``, ``frontierEntries`` (a list
        of the per-point sections, fewest runtime last) replaces the point sections.

    Raises:
        QECError: bad parameters (``QC101``-``QC107``) or QRE's estimation errors
            (``QC120`` max duration too small, ``QC121`` max physical qubits too
            small, ``QC122`` conflicting constraints, ``QC123`` no resources), each
            with ``details["qre_code"]`` naming QRE's code where QRE has one.
    """
    job = params if isinstance(params, JobParams) else JobParams.from_json(params)
    budget = budget_from_json(job.error_budget, counts)
    est = _Estimator(counts, job, budget)
    cons = job.constraints
    head = {"status": "success", "jobParams": job.to_json()}
    if job.frontier:
        if (
            cons.max_duration is not None
            or cons.max_physical_qubits is not None
            or cons.max_t_factories is not None
        ):
            raise QECError.of(
                "conflicting-constraints",
                "Unsupported constraints provided for Frontier Estimation.",
                qre_code="Qdk.Qsc.Estimates.InvalidInputError.ConstraintsProvidedForFrontierEstimation",
            )
        entries = [_entry(est, r, frontier=True) for r in est.frontier()]
        out = {**head, "logicalCounts": counts.to_json(), "frontierEntries": entries}
        _warn(est, out)
        return out
    if cons.max_duration is not None and cons.max_physical_qubits is not None:
        raise QECError.of(
            "conflicting-constraints",
            "Both duration and number of physical qubits constraints are provided, but only "
            "one is allowed",
            qre_code="Qdk.Qsc.Estimates.BothDurationAndPhysicalQubitsProvided",
        )
    if cons.max_duration is not None:
        result = est.with_max_duration(cons.max_duration)
    elif cons.max_physical_qubits is not None:
        result = est.with_max_qubits(cons.max_physical_qubits)
    else:
        result = est.without_restrictions()
    entry = _entry(est, result, frontier=False)
    out = {**head, "physicalCounts": entry.pop("physicalCounts")}
    out.update(entry)
    out["logicalCounts"] = counts.to_json()
    decoder = out.pop("decoder")
    out["decoder"] = decoder
    _warn(est, out)
    return out


def _warn(est: _Estimator, out: dict[str, Any]) -> None:
    warnings: list[str] = []
    warnings += est.job.notes  # a physics file's (qmk.qec.physics)
    if est.qre_hangs:
        warnings.append(
            "the factory search needed a binomial quantile where QRE 1.31 never returns (its "
            "Newton iteration cycles, or its summation's first term underflows to zero); QMK "
            "takes the exact quantile (see docs/estimation.md)"
        )
    if est.qre_divides_by_zero:
        warnings.append(
            "a factory runs longer than the whole algorithm, so no number of copies fits "
            "maxTFactories within that time; QRE 1.31 divides by zero here, QMK skips the "
            "factory (see docs/estimation.md)"
        )
    if warnings:
        out["warnings"] = warnings
