"""Bacon-Shor's logical error law fitted from its memory-experiment circuits.

The QRE form ``a (p / p*) ** ((d + 1) // 2)`` does not describe Bacon-Shor: the
code has no threshold, because each column-pair stabilizer is the product of d
weight-2 gauge outcomes and each column's parity collects the errors of d
qubits. :func:`fit_column_law` fits :class:`qmk.qec.codes.ColumnLaw`

    P_L(p, d) = A * C(d, k) * (c * d * p) ** k * exp(-b * d * p),   k = (d + 1) // 2

to memory experiments (:func:`qmk.experiments.memory.threshold_scan` of
``bacon_shor``) by least squares on the binomial (Pearson) residuals
``(errors - shots P) / sqrt(shots P (1 - P))`` of each point's per-cycle
failure count, so points with no errors count too. Only points whose measured
rate per cycle is at most :data:`FIT_MAX_RATE` enter: the law is a low-rate
expansion, and a fault-tolerant computation runs where ``P_L`` is small.

>>> from qmk.experiments.memory import threshold_scan
>>> scan = threshold_scan("bacon_shor", distances=[3, 5], ps=[1e-3, 2e-3, 4e-3],
...                       shots=4000, seed=3)
>>> fit = fit_column_law(scan)
>>> len(fit.points), fit.left_out, fit.dof
(4, 2, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qmk.experiments.memory import MemoryResult
from qmk.qec.codes import ColumnLaw
from qmk.qec.errors import bad_parameter as _bad
from qmk.qec.logical import Calibration
from qmk.qec.params import GATE_BASED

#: Points with a measured per-cycle rate above this are left out of the fit.
FIT_MAX_RATE = 0.05
#: The law's free parameters, in fit order.
PARAMETERS = ("prefactor", "column_factor", "damping")


@dataclass(frozen=True, slots=True, kw_only=True)
class LawPoint:
    """One observation: ``errors`` of ``shots`` logical cycles failed at (d, p)."""

    distance: int
    p: float
    shots: int
    errors: int

    @property
    def rate(self) -> float:
        """The measured failure rate per logical cycle."""
        return self.errors / self.shots


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnLawFit:
    """The fitted law, its standard errors and how well it describes the data.

    Attributes:
        law: the fitted :class:`ColumnLaw`.
        sigmas: one standard error of ``A``, ``c`` and ``b`` (scaled by sqrt(chi2/dof)
            when that exceeds 1).
        correlation: the correlation matrix of ``ln A``, ``ln c`` and ``ln b``.
        chi2: the sum of squared Pearson residuals.
        dof: points - 3.
        points: the observations used.
        left_out: points above :data:`FIT_MAX_RATE`.
    """

    law: ColumnLaw
    sigmas: tuple[float, float, float]
    correlation: tuple[tuple[float, ...], ...]
    chi2: float
    dof: int
    points: tuple[LawPoint, ...] = field(repr=False)
    left_out: int = 0

    @property
    def reduced_chi2(self) -> float:
        """chi2 / dof."""
        return self.chi2 / self.dof if self.dof > 0 else math.nan

    def residuals(self) -> list[float]:
        """Each point's Pearson residual under the fitted law."""
        return [_residual(self.law, q) for q in self.points]

    def calibration(self, *, instruction_set: str = GATE_BASED, source: str = "") -> Calibration:
        """The fit as a Bacon-Shor :class:`~qmk.qec.logical.Calibration` (a law, no (a, p*))."""
        return Calibration(
            family="bacon_shor", instruction_set=instruction_set, law=self.law, source=source
        )

    def to_json(self) -> dict[str, Any]:
        """The fit as plain JSON."""
        return {
            "model": "P_L = A C(d, k) (c d p)^k exp(-b d p), k = (d + 1) // 2",
            "prefactor": self.law.prefactor,
            "column_factor": self.law.column_factor,
            "damping": self.law.damping,
            "sigmas": dict(zip(PARAMETERS, self.sigmas, strict=True)),
            "correlation": [list(row) for row in self.correlation],
            "chi2": self.chi2,
            "dof": self.dof,
            "max_rate": FIT_MAX_RATE,
            "left_out": self.left_out,
            "points": [
                {"distance": q.distance, "p": q.p, "shots": q.shots, "errors": q.errors}
                for q in self.points
            ],
        }


def _law(theta: Sequence[float] | np.ndarray, source: str = "") -> ColumnLaw:
    a, c, b = (math.exp(float(t)) for t in theta)
    return ColumnLaw(prefactor=a, column_factor=c, damping=b, source=source)


def _expected(theta: Sequence[float] | np.ndarray, q: LawPoint) -> float:
    ln_a, ln_c, ln_b = (float(t) for t in theta)
    k = (q.distance + 1) // 2
    log_rate = (
        ln_a
        + math.log(math.comb(q.distance, k))
        + k * (ln_c + math.log(q.distance * q.p))
        - math.exp(ln_b) * q.distance * q.p
    )
    return min(math.exp(min(log_rate, 0.0)), 0.999)


def _residual(law: ColumnLaw, q: LawPoint) -> float:
    rate = min(max(law.rate(q.p, q.distance), 1e-300), 0.999)
    return (q.errors - q.shots * rate) / math.sqrt(q.shots * rate * (1 - rate))


def law_points(results: Sequence[MemoryResult]) -> tuple[list[LawPoint], int]:
    """The fit's observations (per-cycle counts) and how many points were left out.

    A shot of ``rounds`` rounds is ``rounds / d`` cycles; only ``rounds == d`` (one cycle
    per shot, the default) keeps the counts binomial, so other round counts are refused.
    """
    points: list[LawPoint] = []
    left_out = 0
    for r in results:
        if r.family != "bacon_shor":
            raise _bad(f"a column law is fitted to bacon_shor experiments, not {r.family}")
        if r.rounds != r.distance:
            raise _bad(
                f"a column-law fit needs one logical cycle per shot (rounds = d); "
                f"d = {r.distance} ran {r.rounds} rounds"
            )
        if r.shot_error_rate > FIT_MAX_RATE:
            left_out += 1
            continue
        points.append(LawPoint(distance=r.distance, p=r.p, shots=r.shots, errors=r.errors))
    return points, left_out


def fit_column_law(results: Sequence[MemoryResult], *, source: str = "") -> ColumnLawFit:
    """Fit ``A, c, b`` of :class:`~qmk.qec.codes.ColumnLaw` to Bacon-Shor memory experiments.

    The parameters are fitted as logarithms (so they stay positive) from a few
    fixed starting points; the best least-squares solution wins. Standard errors
    come from the Jacobian at the solution, scaled by sqrt(chi2/dof) when that
    exceeds 1, and reach ``A, c, b`` by the delta method.

    Raises:
        QECError: ``QC103`` with fewer than 4 points at or below :data:`FIT_MAX_RATE`,
            fewer than two distances, or experiments of another family or round count.
    """
    from scipy.optimize import least_squares

    points, left_out = law_points(results)
    if len(points) < 4 or len({q.distance for q in points}) < 2:
        raise _bad(
            f"a column-law fit needs at least 4 (d, p) points at two or more distances with "
            f"P_L <= {FIT_MAX_RATE:g} per cycle, got {len(points)} at "
            f"{len({q.distance for q in points})}; lower --p or add distances"
        )

    def residuals(theta: np.ndarray) -> np.ndarray:
        out = []
        for q in points:
            rate = max(_expected(theta, q), 1e-300)
            out.append((q.errors - q.shots * rate) / math.sqrt(q.shots * rate * (1 - rate)))
        return np.array(out)

    best = None
    for start in ((0.0, 2.7, 3.5), (0.0, 2.0, 0.0), (-1.0, 3.0, 2.0), (1.0, 1.0, -2.0)):
        solution = least_squares(residuals, np.array(start), method="lm")
        if best is None or solution.cost < best.cost:
            best = solution
    assert best is not None
    theta = best.x
    chi2 = float(2 * best.cost)
    dof = len(points) - len(PARAMETERS)
    try:
        cov = np.linalg.inv(best.jac.T @ best.jac)
    except np.linalg.LinAlgError:
        cov = np.full((3, 3), np.nan)
    if dof > 0 and chi2 / dof > 1:
        cov = cov * (chi2 / dof)
    law = _law(theta, source)
    values = (law.prefactor, law.column_factor, law.damping)
    sigmas = tuple(v * math.sqrt(max(cov[i, i], 0.0)) for i, v in enumerate(values))
    scale = np.sqrt(np.abs(np.diag(cov)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(scale, scale)
    return ColumnLawFit(
        law=law,
        sigmas=(sigmas[0], sigmas[1], sigmas[2]),
        correlation=tuple(tuple(round(float(x), 6) for x in row) for row in corr),
        chi2=chi2,
        dof=dof,
        points=tuple(points),
        left_out=left_out,
    )
