"""T-factory search: round-based magic-state distillation, as the Azure QRE models it.

A factory is one to three (or, when none fits, up to four) rounds of
distillation units; each round runs several copies of one unit at one code
distance (distance 1 means physical qubits). The search enumerates every unit
sequence and, per sequence, the code distances per round, keeping the factories
that reach the required output T-state error rate and are not dominated in
(physical qubits per output state, duration). This follows Beverland et al.,
arXiv:2211.07629, Appendix C, and the open-source estimator's
``tfactory_exhaustive.rs``, ``distillation_units_map.rs``,
``code_distance_iterators.rs`` and ``round_based.rs`` step for step, so that the
chosen factory, its unit counts and its floats are QRE's.

Units: ``15-to-1 RM prep`` and ``15-to-1 space-efficient`` (QRE's defaults),
plus custom units whose failure-probability and output-error formulas are
parsed safely (numbers, ``+ - * / ^ **``, ``inputErrorRate``/``z``,
``cliffordErrorRate``/``c``, ``readoutErrorRate``/``r``).

>>> from qmk.qec.codes import SURFACE_CODE_GATE_BASED
>>> from qmk.qec.params import qubit_params
>>> f = find_factories(SURFACE_CODE_GATE_BASED, qubit_params("qubit_gate_ns_e3"),
...                    default_units(), 2.0964360587002096e-10, 21, 3)
>>> min(f, key=lambda x: x.normalized_volume).unit_names
('15-to-1 space efficient', '15-to-1 RM prep')
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from qmk.qec.codes import QecScheme, powi
from qmk.qec.errors import QECError
from qmk.qec.errors import bad_parameter as _bad
from qmk.qec.formula import Language, compile_formula, compile_tree
from qmk.qec.params import QubitParams

#: Rounds tried first, and the most rounds tried when no factory fits in fewer.
MAX_DISTILLATION_ROUNDS = 3
MAX_EXTRA_DISTILLATION_ROUNDS = 4
#: Required probability that a factory run fails to deliver its states, split over rounds.
FACTORY_FAILURE_PROBABILITY = 0.01

COMBINED = "combined"
PHYSICAL = "physical"
LOGICAL = "logical"

UnitFormula = Callable[[float, float, float], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitResources:
    """Qubits and duration (in qubit or logical cycles) of one distillation unit."""

    num_unit_qubits: int
    duration_in_qubit_cycle_time: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitTemplate:
    """A distillation unit: k-to-m states, its error formulas and its resources."""

    name: str
    num_input_ts: int
    num_output_ts: int
    failure_probability: UnitFormula
    output_error_rate: UnitFormula
    unit_type: str
    physical: UnitResources | None
    logical: UnitResources | None
    logical_first_round: UnitResources | None = None


def _rm_failure(z: float, c: float, _r: float) -> float:
    return 15.0 * z + 356.0 * c


def _rm_output(z: float, c: float, _r: float) -> float:
    return 35.0 * (z * (z * z)) + 7.1 * c  # z * (z * z) is powi(z, 3), bit for bit


RM_PREP = UnitTemplate(
    name="15-to-1 RM prep",
    num_input_ts=15,
    num_output_ts=1,
    failure_probability=_rm_failure,
    output_error_rate=_rm_output,
    unit_type=COMBINED,
    physical=UnitResources(num_unit_qubits=31, duration_in_qubit_cycle_time=24),
    logical=UnitResources(num_unit_qubits=31, duration_in_qubit_cycle_time=11),
)
SPACE_EFFICIENT = UnitTemplate(
    name="15-to-1 space efficient",
    num_input_ts=15,
    num_output_ts=1,
    failure_probability=_rm_failure,
    output_error_rate=_rm_output,
    unit_type=COMBINED,
    physical=UnitResources(num_unit_qubits=12, duration_in_qubit_cycle_time=45),
    logical=UnitResources(num_unit_qubits=20, duration_in_qubit_cycle_time=13),
)
TRIVIAL = UnitTemplate(
    name="trivial 1-to-1",
    num_input_ts=1,
    num_output_ts=1,
    failure_probability=lambda z, c, r: 0.0,
    output_error_rate=lambda z, c, r: z,
    unit_type=LOGICAL,
    physical=None,
    logical=UnitResources(num_unit_qubits=1, duration_in_qubit_cycle_time=1),
)
_PREDEFINED = {
    **dict.fromkeys(("15-1 RM", "15-1 RM prep", "15-to-1 RM", "15-to-1 RM prep"), RM_PREP),
    **dict.fromkeys(
        (
            "15-1 space-efficient",
            "15-1 space efficient",
            "15-to-1 space-efficient",
            "15-to-1 space efficient",
        ),
        SPACE_EFFICIENT,
    ),
}


def default_units() -> tuple[UnitTemplate, ...]:
    """QRE's default units: 15-to-1 RM prep, then 15-to-1 space efficient."""
    return (RM_PREP, SPACE_EFFICIENT)


# -- custom unit formulas ----------------------------------------------------------------------

#: The variables of a distillation unit's formulas (QRE's names and short names), each
#: the position of its value among (input error rate, Clifford error rate, readout rate).
_UNIT_VARIABLES = {
    "inputErrorRate": 0,
    "z": 0,
    "cliffordErrorRate": 1,
    "c": 1,
    "readoutErrorRate": 2,
    "r": 2,
}
_UNIT_LANGUAGE = Language(
    variables=frozenset(_UNIT_VARIABLES),
    functions=False,
    caret_power=True,  # QRE writes powers as ^ (binding tighter than * /)
    what="distillation unit formula",
)


@functools.lru_cache(maxsize=64)
def unit_formula(text: str) -> UnitFormula:
    """A safe evaluator for a unit's failure-probability or output-error formula
    (:func:`qmk.qec.formula.compile_formula` in the distillation-unit language).

    >>> unit_formula("35.0 * inputErrorRate ^ 3 + 7.1 * c")(0.01, 1e-6, 0.0)
    4.21e-05
    """
    tree, names = compile_formula(text, _UNIT_LANGUAGE)
    value_of = compile_tree(tree)

    def evaluate(z: float, c: float, r: float) -> float:
        values = (z, c, r)
        try:
            return value_of({name: values[_UNIT_VARIABLES[name]] for name in names})
        except (ArithmeticError, ValueError) as exc:
            raise _bad(f"distillation unit formula {text!r} fails: {exc}") from None

    return evaluate


def _resources(data: Any, where: str) -> UnitResources | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise _bad(f"{where} must be an object")
    unknown = sorted(set(data) - {"numUnitQubits", "durationInQubitCycleTime"})
    if unknown:
        raise _bad(f"{where}: unknown field {unknown[0]!r}")
    qubits = data.get("numUnitQubits", 0)
    duration = data.get("durationInQubitCycleTime", 0)
    for name, value in (("numUnitQubits", qubits), ("durationInQubitCycleTime", duration)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"{where}.{name} must be a whole number >= 0, got {value!r}")
    if qubits == 0:
        raise _bad(f"{where}: the number of unit qubits must be greater than 0")
    return UnitResources(num_unit_qubits=qubits, duration_in_qubit_cycle_time=duration)


def unit_from_json(data: Any) -> UnitTemplate:
    """A unit from QRE's ``distillationUnitSpecifications`` entry (predefined name or custom).

    Raises:
        QECError: ``QC103 bad-parameter`` with QRE's reasons (unknown name, zero states,
            no specification, an override without a logical specification, a bad formula).
    """
    if not isinstance(data, Mapping):
        raise _bad("a distillation unit specification must be an object")
    if set(data) == {"name"}:
        unit = _PREDEFINED.get(data["name"]) if isinstance(data["name"], str) else None
        if unit is None:
            raise _bad(f"Invalid distillation unit specification name: {data['name']}.")
        return unit
    known = {
        "displayName",
        "numInputTs",
        "numOutputTs",
        "failureProbabilityFormula",
        "outputErrorRateFormula",
        "physicalQubitSpecification",
        "logicalQubitSpecification",
        "logicalQubitSpecificationFirstRoundOverride",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise _bad(f"distillation unit specification: unknown field {unknown[0]!r}")
    missing = sorted(
        key
        for key in (
            "displayName",
            "numInputTs",
            "numOutputTs",
            "failureProbabilityFormula",
            "outputErrorRateFormula",
        )
        if key not in data
    )
    if missing:
        raise _bad(f"distillation unit specification: missing field {missing[0]!r}")
    for key in ("numInputTs", "numOutputTs"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"distillation unit {key} must be a whole number, got {value!r}")
    if data["numInputTs"] == 0:
        raise _bad("The number of input t states must be greater than 0.")
    if data["numOutputTs"] == 0:
        raise _bad("The number of output t states must be greater than 0.")
    physical = _resources(data.get("physicalQubitSpecification"), "physicalQubitSpecification")
    logical = _resources(data.get("logicalQubitSpecification"), "logicalQubitSpecification")
    override = _resources(
        data.get("logicalQubitSpecificationFirstRoundOverride"),
        "logicalQubitSpecificationFirstRoundOverride",
    )
    if physical is None and logical is None:
        raise _bad("At least one of the physical or the logical specification must be specified.")
    if physical is not None and logical is not None:
        unit_type = COMBINED
    elif physical is not None:
        if override is not None:
            raise _bad(
                "The logical specification can be overridden for the first round of "
                "distillation only if the logical specification is specified."
            )
        unit_type = PHYSICAL
    else:
        unit_type = LOGICAL
    return UnitTemplate(
        name=str(data["displayName"]),
        num_input_ts=data["numInputTs"],
        num_output_ts=data["numOutputTs"],
        failure_probability=unit_formula(data["failureProbabilityFormula"]),
        output_error_rate=unit_formula(data["outputErrorRateFormula"]),
        unit_type=unit_type,
        physical=physical,
        logical=logical,
        logical_first_round=override,
    )


# -- logical patches and unit instances --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """A logical qubit of the scheme at one code distance (QRE's ``LogicalPatch``)."""

    distance: int
    physical_qubits: int
    cycle_time: int
    logical_error_rate: float


def make_patch(
    scheme: QecScheme, qubit: QubitParams, distance: int, physical_error_rate: float | None = None
) -> Patch:
    """The patch at ``distance``; raises QECError where QRE's ``LogicalPatch::new`` fails.

    ``physical_error_rate`` is the qubit's (computed here unless given: a caller making
    many patches computes it once).
    """
    if physical_error_rate is None:
        physical_error_rate = qubit.physical_error_rate
    return Patch(
        distance=distance,
        physical_qubits=scheme.physical_qubits(distance),
        cycle_time=scheme.cycle_time_ns(qubit, distance),
        logical_error_rate=scheme.logical_error_rate(physical_error_rate, distance),
    )


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit template placed on physical qubits (distance 1) or on a logical patch."""

    template: UnitTemplate
    distance: int
    qubits_first: int
    qubits_next: int
    duration_first: int
    duration_next: int
    clifford_error_rate: float
    readout_error_rate: float
    t_error_rate: float

    @property
    def is_valid(self) -> bool:
        return self.clifford_error_rate <= 0.1 * self.t_error_rate


def place_unit(template: UnitTemplate, qubit: QubitParams, patch: Patch | None) -> Unit:
    """QRE's ``TFactoryDistillationUnit::by_template`` for a physical (None) or logical qubit."""
    distance = 1 if patch is None else patch.distance
    kind = template.unit_type
    if distance == 1 and kind in (COMBINED, PHYSICAL):
        first = template.physical
    elif kind == PHYSICAL:
        first = None
    else:
        first = template.logical_first_round or template.logical
    following = None if kind == PHYSICAL else template.logical
    n_qubits = 1 if patch is None else patch.physical_qubits
    cycle = qubit.t_gate_time if patch is None else patch.cycle_time
    return Unit(
        template,
        distance,
        0 if first is None else first.num_unit_qubits * n_qubits,
        0 if following is None else following.num_unit_qubits * n_qubits,
        0 if first is None else first.duration_in_qubit_cycle_time * cycle,
        0 if following is None else following.duration_in_qubit_cycle_time * cycle,
        qubit.clifford_error_rate if patch is None else patch.logical_error_rate,
        qubit.readout_error_rate if patch is None else 0.0,
        qubit.t_gate_error_rate,
    )


# -- the inverse binomial CDF, as the `probability` crate computes it ---------------------------


def _binomial_cdf(n: int, p: float, q: float, x: int) -> float:
    """P(X <= x) for X ~ Binomial(n, p), summed from x downwards (only decides a branch)."""
    if x < 0:
        return 0.0
    if x == 0:
        return powi(q, n)
    if x >= n:
        return 1.0
    log_p, log_q = math.log(p), math.log(q)
    if p < 0.5:
        return min(1.0, sum(_pmf(n, k, log_p, log_q) for k in range(x + 1)))
    term = _pmf(n, x, log_p, log_q)
    total = term
    ratio_q_p = q / p
    for k in range(x, 0, -1):
        term *= k / (n - k + 1) * ratio_q_p
        total += term
        if term <= total * 1e-17:
            break
    return min(total, 1.0)


def _at_most_half_cdf_reaches(n: int, p: float, q: float, u: float) -> bool:
    """``u <= _binomial_cdf(n, p, q, n // 2)``: which end the crate's inversion sums from.

    The sum costs up to ``n / 2`` terms, so Hoeffding's bound decides first where it
    settles the comparison with room to spare (a factor 2 against rounding in either
    figure). The bounds are ``P(X >= n//2 + 1) <= exp(-2 t^2 / n)`` for
    ``t = n//2 + 1 - np > 0`` (the CDF is then at least ``1 - bound``), and
    ``P(X <= n//2) <= exp(-2 t^2 / n)`` for ``t = np - n//2 > 0``. Otherwise the sum is
    taken, as the crate does.
    """
    half = n // 2
    if half > 0 and half < n:
        mean = n * p
        if mean < half + 1 and u <= 0.25:
            gap = half + 1 - mean
            if math.exp(-2.0 * gap * gap / n) <= 0.5:  # the CDF is at least 1/2 >= 2u
                return True
        elif mean > half:
            gap = mean - half
            if math.exp(-2.0 * gap * gap / n) < 0.5 * u:  # the CDF is below u / 2
                return False
    return u <= _binomial_cdf(n, p, q, half)


def _pmf(n: int, k: int, log_p: float, log_q: float) -> float:
    return math.exp(
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * log_p
        + (n - k) * log_q
    )


#: How many quantiles so far needed the exact fallback where QRE's Newton iteration cycles.
NEWTON_FALLBACKS = [0]


def binomial_inverse(n: int, q: float, u: float) -> int:
    """Smallest k with P(X <= k) >= u for X ~ Binomial(n, 1 - q) (see :func:`_inverse`)."""
    value, fell_back = _inverse(n, q, u)
    if fell_back:
        NEWTON_FALLBACKS[0] += 1
    return value


@functools.lru_cache(maxsize=65536)
def _inverse(n: int, q: float, u: float) -> tuple[int, bool]:
    """Smallest k with P(X <= k) >= u for X ~ Binomial(n, 1 - q) (``Binomial::with_failure``).

    Small n use the crate's summations; large n its Cornish-Fisher normal approximation
    (Moorhead 2013) with the same inverse normal (Wichura AS241).
    """
    if n == 0:  # what the summation below gives for no trials, whatever q and u
        return 0, False
    p = 1.0 - q
    if u == 1.0:
        return n, False
    if u == 0.0:
        return 0, False
    if n < 1000:
        # (for one trial the test is u <= P(X <= 0) = q: no Hoeffding bound applies)
        if (u <= q) if n == 1 else _at_most_half_cdf_reaches(n, p, q, u):
            k, a = 1, powi(q, n)
            if a == 0.0:  # its first term underflows: QRE's sum never ends (as its Newton
                return _exact_quantile(n, p, q, u), True  # cycles: the exact quantile)
            total = a - u
            while total < 0.0:
                a *= p / q * ((n - k + 1) / k)
                total += a
                k += 1
            return k - 1, False
        k, a = 1, powi(p, n)
        if a == 0.0:  # underflows: as above
            return _exact_quantile(n, p, q, u), True
        total = (1.0 - u) - a
        while total >= 0.0:
            a *= q / p * ((n - k + 1) / k)
            total -= a
            k += 1
        return n - k + 1, False
    np_, npq = n * p, n * p * q
    if npq > 80.0:
        return math.floor(_normal_quantile(p, np_, npq, u)), False
    # Newton's method from the mode, on the exact CDF (rare: huge n with tiny variance).
    r = p * (n + 1)
    m = math.floor(r) if r != math.floor(r) else int(r) - 1
    seen: set[int] = set()
    while True:
        cdf = _binomial_cdf(n, p, q, m)
        mass = _pmf(n, m, math.log(p), math.log(q))
        if mass == 0.0 or m in seen:
            # Newton stalls or oscillates; take the exact quantile (docs/estimation.md).
            return _exact_quantile(n, p, q, u), True
        step = (u - cdf) / mass
        if -0.5 < step < 0.5:
            return m, False
        seen.add(m)
        m += int(math.floor(step + 0.5) if step >= 0 else -math.floor(-step + 0.5))
        m = min(max(m, 0), n)


def _exact_quantile(n: int, p: float, q: float, u: float) -> int:
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if _binomial_cdf(n, p, q, mid) >= u:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _normal_quantile(p: float, np_: float, v: float, u: float) -> float:
    w = NormalDist().inv_cdf(u)
    w2, w3 = w * w, w * w * w
    w4, w5, w6 = w3 * w, w3 * w * w, w3 * w3
    sd = math.sqrt(v)
    e1, e2 = 1.0 / sd, 1.0 / v
    e3, e4 = e1 * e2, e2 * e2
    p2 = p * p
    p3, p4 = p2 * p, p2 * p2
    return (
        np_
        + sd * w
        + (p + 1.0) / 3.0
        - (2.0 * p - 1.0) * w2 / 6.0
        + e1 * w3 * (2.0 * p2 - 2.0 * p - 1.0) / 72.0
        - w * (7.0 * p2 - 7.0 * p + 1.0) / 36.0
        + e2 * (2.0 * p - 1.0) * (p + 1.0) * (p - 2.0) * (3.0 * w4 + 7.0 * w2 - 16.0 / 1620.0)
        + e3
        * (
            w5 * (4.0 * p4 - 8.0 * p3 - 48.0 * p2 + 52.0 * p - 23.0) / 17280.0
            + w3 * (256.0 * p4 - 512.0 * p3 - 147.0 * p2 + 403.0 * p - 137.0) / 38880.0
            - w * (433.0 * p4 - 866.0 * p3 - 921.0 * p2 + 1354.0 * p - 671.0) / 38880.0
        )
        + e4
        * (
            w6 * (2.0 * p - 1.0) * (p2 - p + 1.0) * (p2 - p + 19.0) / 34020.0
            + w4 * (2.0 * p - 1.0) * (9.0 * p4 - 18.0 * p3 - 35.0 * p2 + 44.0 * p - 25.0) / 15120.0
            + w2
            * (2.0 * p - 1.0)
            * (923.0 * p4 - 1846.0 * p3 + 5271.0 * p2 - 4348.0 * p + 5189.0)
            / 408240.0
            - 4.0 * (2.0 * p - 1.0) * (p + 1.0) * (p - 2.0) * (23.0 * p2 - 23.0 * p + 2.0) / 25515.0
        )
    )


# -- factories ---------------------------------------------------------------------------------


class _BuildError(Exception):
    """Why a unit sequence gives no factory: 'low', 'high', 'output', 'units'."""


@dataclass(slots=True)
class _Round:
    unit: Unit
    position: int
    requirement: float
    num_units: int = 1

    @property
    def qubits_per_unit(self) -> int:
        return self.unit.qubits_first if self.position == 0 else self.unit.qubits_next

    @property
    def duration(self) -> int:
        return self.unit.duration_first if self.position == 0 else self.unit.duration_next

    def outputs(self, failure: float) -> int:
        out = self.unit.template.num_output_ts
        if failure == 0.0 and self.requirement == 0.0:
            return self.num_units * out
        return binomial_inverse(self.num_units, failure, self.requirement) * out

    def adjust(self, needed: int, failure: float) -> None:
        self.num_units, fell_back = _units_needed(
            needed, failure, self.requirement, self.unit.template.num_output_ts
        )
        if fell_back:
            NEWTON_FALLBACKS[0] += 1


@functools.lru_cache(maxsize=65536)
def _units_needed(needed: int, failure: float, requirement: float, out: int) -> tuple[int, bool]:
    """The fewest units of ``out`` states each that deliver ``needed`` states with
    probability ``1 - requirement`` when each fails with probability ``failure`` (QRE's
    doubling then bisection), and whether a quantile on the way needed the exact fallback.

    A function of its arguments alone, so cached: a search meets the same round many
    times (the 250 unit sequences of a default estimate need 77 distinct counts).
    """
    fell_back = False

    def outputs(units: int) -> int:
        nonlocal fell_back
        if failure == 0.0 and requirement == 0.0:
            return units * out
        value, fell = _inverse(units, failure, requirement)
        fell_back = fell_back or fell
        return value * out

    units = least = -(-needed // out)
    # Counts known to deliver too few, whatever their quantile: the quantile of fewer than
    # 1000 units (the sums of :func:`_inverse`; no fallback) is at most their number, and
    # below it where each unit fails more often than the requirement allows (P(X <= n -
    # 1) = 1 - p^n >= q > u, with room for the sums' rounding): then `least` are too few.
    too_few = min(least - 1, 999)
    if failure - requirement > 1e-9 and least < 1000:
        too_few = least
    while units <= too_few or outputs(units) < needed:
        units *= 2
        if units >= 1_000_000_000_000_000:
            raise _BuildError("units")
    upper, lower = units, units // 2
    while lower < upper:
        units = (lower + upper) // 2
        if units <= too_few:
            lower = units + 1
        elif outputs(units) >= needed:
            upper = units
        else:
            lower = units + 1
    return upper, fell_back


@dataclass(frozen=True, slots=True, kw_only=True)
class TFactory:
    """A built T factory (QRE's ``RoundBasedFactory``): its JSON is QRE's ``tfactory``."""

    physical_qubits: int
    duration: int
    num_output_states: int
    num_input_states: int
    units_per_round: tuple[int, ...]
    unit_names: tuple[str, ...]
    distances: tuple[int, ...]
    qubits_per_round: tuple[int, ...]
    duration_per_round: tuple[int, ...]
    output_error_rate: float
    #: T states a run delivers on average (``num_output_states`` is the number it
    #: delivers with probability ``1 - requirement``, QRE's guarantee)
    expected_output_states: float = 0.0

    @property
    def normalized_volume(self) -> float:
        return float(self.physical_qubits * self.duration) / float(self.num_output_states)

    @property
    def max_distance(self) -> int:
        return self.distances[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "physicalQubits": self.physical_qubits,
            "runtime": self.duration,
            "numTstates": self.num_output_states,
            "numInputTstates": self.num_input_states,
            "numRounds": len(self.units_per_round),
            "numUnitsPerRound": list(self.units_per_round),
            "unitNamePerRound": list(self.unit_names),
            "codeDistancePerRound": list(self.distances),
            "physicalQubitsPerRound": list(self.qubits_per_round),
            "runtimePerRound": list(self.duration_per_round),
            "logicalErrorRate": self.output_error_rate,
        }


def _finish(rounds: list[_Round], failures: list[float], rates: list[float]) -> TFactory:
    per_round = tuple(r.num_units * r.qubits_per_unit for r in rounds)
    return TFactory(
        physical_qubits=max(per_round),
        duration=sum(r.duration for r in rounds),
        num_output_states=rounds[-1].outputs(failures[len(rounds) - 1]),
        num_input_states=rounds[0].unit.template.num_input_ts * rounds[0].num_units,
        units_per_round=tuple(r.num_units for r in rounds),
        unit_names=tuple(r.unit.template.name for r in rounds),
        distances=tuple(r.unit.distance for r in rounds),
        qubits_per_round=per_round,
        duration_per_round=tuple(r.duration for r in rounds),
        output_error_rate=rates[len(rounds)],
        expected_output_states=rounds[-1].num_units
        * rounds[-1].unit.template.num_output_ts
        * (1.0 - failures[len(rounds) - 1]),
    )


def build_factory(
    units: Sequence[Unit], requirement: float = FACTORY_FAILURE_PROBABILITY
) -> TFactory:
    """Build the factory of ``units`` (one per round); raises ``_BuildError`` when none exists."""
    return _finish(*_build(units, requirement))


def _build(
    units: Sequence[Unit], requirement: float = FACTORY_FAILURE_PROBABILITY
) -> tuple[list[_Round], list[float], list[float]]:
    length = len(units)
    rates = [units[0].t_error_rate]
    failures = [1.0] * (length + 1)
    rounds: list[_Round] = []
    for unit in units:
        rate = rates[-1]
        out = unit.template.output_error_rate(
            rate, unit.clifford_error_rate, unit.readout_error_rate
        )
        if out > rate:
            raise _BuildError("output")
        rounds.append(_Round(unit, len(rounds), requirement / length))
        rates.append(out)
    needed = rounds[-1].unit.template.num_output_ts
    for idx in range(length - 1, -1, -1):
        unit = units[idx]
        q = unit.template.failure_probability(
            rates[idx], unit.clifford_error_rate, unit.readout_error_rate
        )
        if q <= 0.0:
            raise _BuildError("low")
        if q >= 1.0:
            raise _BuildError("high")
        failures[idx] = q
        rounds[idx].adjust(needed, q)
        needed = rounds[idx].unit.template.num_input_ts * rounds[idx].num_units
    return rounds, failures, rates


def trivial_factory(qubit: QubitParams, patch: Patch) -> TFactory:
    """QRE's default factory when the physical T gate already meets the target: 1-to-1."""
    unit = place_unit(TRIVIAL, qubit, patch)
    round_ = _Round(unit, 0, 0.0)
    # qsharp 1.31 reports the physical T-gate error rate as this factory's output rate.
    return _finish([round_], [0.0, 0.0], [qubit.t_gate_error_rate] * 2)


def _dominates(a: tuple[float, int], b: tuple[float, int]) -> bool:
    return (a[0] < b[0] and a[1] <= b[1]) or (a[0] <= b[0] and a[1] < b[1])


class _Population:
    """QRE's Pareto ``Population`` of factories over (normalized qubits, duration).

    It holds each factory's units (one per round), not the factory: which factories
    stay depends on the keys alone, and only those that stay are built, at the end.
    """

    def __init__(self) -> None:
        self.items: list[tuple[tuple[float, int], list[Unit]]] = []
        self._attempts = 0
        #: the least duration of an item (inf: none), below which nothing is dominated
        self.shortest: float = math.inf

    def push(self, key: tuple[float, int], units: list[Unit]) -> None:
        self.items.append((key, units))
        if key[1] < self.shortest:
            self.shortest = key[1]

    def attempt_filter(self) -> None:
        if self._attempts <= 1000:
            self._attempts += 1
        else:
            self.filter()

    def filter(self) -> None:
        items = self.items
        idx, length = 0, len(items)
        while idx < length:
            if any(_dominates(k, items[idx][0]) for k, _ in items):
                items[idx], items[length - 1] = items[length - 1], items[idx]
                length -= 1
            else:
                idx += 1
        self._attempts = 0
        del items[length:]
        self.shortest = min((key[1] for key, _ in items), default=math.inf)

    def sort(self) -> None:
        self.items.sort(key=lambda item: item[0], reverse=True)


class _Search:
    def __init__(self, target: float, max_rounds: int, *, prune: bool = True) -> None:
        self.target = target
        self.frontier = _Population()
        self.prune = prune
        #: (least units, failure, rounds) -> what :func:`_small_counts` says
        self.small_counts: dict[tuple[int, float, int], bool] = {}
        # log(2 / requirement) by number of rounds, for the bound of :func:`_small_counts`
        self.log_terms = [math.inf] + [
            math.log(2.0 * length / FACTORY_FAILURE_PROBABILITY)
            for length in range(1, max(max_rounds, MAX_EXTRA_DISTILLATION_ROUNDS) + 1)
        ]

    def check(self, records: Sequence[_Record]) -> bool:
        """True when raising the distances could still improve this unit sequence.

        :func:`_build`'s arithmetic on plain locals over each round's :data:`_Record`
        (this runs for every candidate of a search: some 250 for a default estimate);
        the factory itself is built only for those left on the frontier at the end.

        The first round's unit count, the costliest, is skipped where the answer does not
        depend on it (see :meth:`_settle`) and computing it could neither fail nor fall
        back from Newton's method (:func:`_small_counts`): the answer, the frontier and
        the fallback flag are those of the full computation (``prune=False``).
        """
        rates = _output_rates(records)
        if rates is None:
            return True  # _build's "output"
        rate = rates[-1]
        length = len(records)
        requirement = FACTORY_FAILURE_PROBABILITY / length
        last = records[-1]
        needed = last[6]
        qubits = 0
        duration = 0
        last_units, last_failure = 0, 0.0
        outputs = 0  # the last round's quantile, where known without asking for it
        units_needed = _units_needed
        prune, small_counts = self.prune, self.small_counts
        for idx in range(length - 1, -1, -1):
            _, _, failure, clifford, readout, num_input, num_output, unit_qubits, unit_time = (
                records[idx]
            )
            if failure is _rm_failure:  # (inline)
                q = 15.0 * rates[idx] + 356.0 * clifford
            else:
                q = failure(rates[idx], clifford, readout)
            if q <= 0.0:
                return False  # _build's "low"
            if q >= 1.0:
                return True  # _build's "high"
            if (
                prune
                and needed <= num_output
                and q < requirement
                and (1.0 - requirement) < (1.0 - q)
            ):
                # One unit delivers the states: the quantile of one unit is 1 exactly
                # when P(X <= 0) = q is below the requirement, in the floats of
                # :func:`_inverse`'s summation from the top.
                num_units = 1
                if idx == length - 1:
                    outputs = 1
            else:
                if idx == 0 and prune and length > 1:
                    least = -(-needed // num_output)
                    # (a first round takes few failure rates: one per unit and distance)
                    small = small_counts.get((least, q, length))
                    if small is None:
                        small = small_counts[least, q, length] = _small_counts(
                            least, q, self.log_terms[length]
                        )
                    if small:
                        settled = self._settle(
                            records,
                            rate,
                            qubits,
                            duration + unit_time,
                            least,
                            last_units,
                            last_failure,
                            outputs,
                        )
                        if settled is not None:
                            return settled
                try:
                    num_units, fell_back = units_needed(needed, q, requirement, num_output)
                except _BuildError:
                    return True  # _build's "units"
                if fell_back:
                    NEWTON_FALLBACKS[0] += 1
            if idx == length - 1:
                last_units, last_failure = num_units, q
            if num_units * unit_qubits > qubits:
                qubits = num_units * unit_qubits
            duration += unit_time
            needed = num_input * num_units
        if not outputs:
            outputs, fell_back = _inverse(last_units, last_failure, requirement)
            if fell_back:  # (binomial_inverse, inline)
                NEWTON_FALLBACKS[0] += 1
        return self._judge(records, rate, qubits / (outputs * last[6]), duration)

    def _judge(self, records: Sequence[_Record], rate: float, share: float, duration: int) -> bool:
        """:meth:`check`'s answer for a factory of ``share`` qubits per output state and
        ``duration``: one the frontier does not dominate joins it when its output
        ``rate`` meets the target, and is worth raising the distances of when not."""
        not_dominated = True
        for (other_share, other_duration), _ in self.frontier.items:  # _dominates, inline
            if (other_share < share and other_duration <= duration) or (
                other_share <= share and other_duration < duration
            ):
                not_dominated = False
                break
        below = rate <= self.target
        if not_dominated and below:
            self.frontier.push((share, duration), [record[0] for record in records])
            self.frontier.attempt_filter()
        return not_dominated and not below

    def _settle(
        self,
        records: Sequence[_Record],
        rate: float,
        later_qubits: int,
        duration: int,
        least: int,
        last_units: int,
        last_failure: float,
        outputs: int,
    ) -> bool | None:
        """:meth:`check`'s answer where the first round has ``least`` units or more, or None
        where that does not settle it.

        ``later_qubits`` are the most qubits of a later round, ``duration`` the factory's
        and ``outputs`` the last round's quantile where already known (else 0). Where the
        frontier holds no factory as short as this one, the candidate is not dominated
        whatever its qubits; where ``least`` units in the first round already leave it
        dominated, it is dominated with its true count, which is no smaller.
        """
        if duration < self.frontier.shortest:
            # no factory on the frontier is as short: not dominated, whatever its qubits
            # (one that joins the frontier needs its true qubits)
            return None if rate <= self.target else True
        share = -1.0  # (not computed yet)
        for (other_share, other_duration), _ in self.frontier.items:
            if other_duration > duration:
                continue
            if share < 0.0:
                if not outputs:
                    requirement = FACTORY_FAILURE_PROBABILITY / len(records)
                    outputs, fell_back = _inverse(last_units, last_failure, requirement)
                    if fell_back:  # (the full computation asks this quantile too)
                        NEWTON_FALLBACKS[0] += 1
                # at most the true qubits per output state (a correctly rounded quotient
                # of integers keeps their order)
                share = max(later_qubits, least * records[0][7]) / (outputs * records[-1][6])
            if other_share < share or (other_share <= share and other_duration < duration):
                return False  # dominated
        return None


def _output_rates(records: Sequence[_Record]) -> list[float] | None:
    """The T error rate into the first round, then out of each round; None when a round
    makes it worse (:func:`_build`'s "output")."""
    rate = records[0][0].t_error_rate
    rates = [rate]
    for record in records:
        if record[1] is _rm_output:  # QRE's default units: _rm_output, inline
            out = 35.0 * (rate * (rate * rate)) + 7.1 * record[3]
        else:
            out = record[1](rate, record[3], record[4])
        if out > rate:
            return None
        rates.append(out)
        rate = out
    return rates


def _small_counts(least: int, failure: float, log_term: float) -> bool:
    """Whether :func:`_units_needed` for ``least`` or more units' worth of states asks
    only quantiles of fewer than 1000 units, the summed ones (no Newton's method, so no
    fallback, and never the 10^18 units at which it gives up).

    Its doubling from ``least`` stops at the first count whose quantile reaches ``least``
    and its bisection stays below that count. By Hoeffding's inequality, ``P(X <= a) <=
    exp(-2 (n p - a)^2 / n)`` for ``a = least - 1 < n p``, which decreases in ``n``; it is
    at most ``requirement / 2`` (``log_term = log(2 / requirement)``) from the root
    ``n p = a + c / 2 + sqrt(a c + c^2 / 4)``, ``c = log_term / (2 p)``, on. Half the
    requirement leaves room for the rounding of the crate's sums, so from there on the
    quantile is ``least`` or more and the doubling has stopped.
    """
    p = 1.0 - failure
    a = least - 1
    c = log_term / (2.0 * p)
    enough = (a + 0.5 * c + math.sqrt(a * c + 0.25 * c * c)) / p * 1.000001 + 1.0
    units = least
    while units < enough and units < 1000:
        units *= 2
    return units < 1000


#: One round's unit as :meth:`_Search.check` reads it: the unit, its output-error and
#: failure formulas, its Clifford and readout error rates, its input and output states,
#: and its qubits and duration in its round (the first round's or a later one's).
_Record = tuple[Unit, UnitFormula, UnitFormula, float, float, int, int, int, int]


def _record(unit: Unit, position: int) -> _Record:
    template = unit.template
    first = position == 0
    return (
        unit,
        template.output_error_rate,
        template.failure_probability,
        unit.clifford_error_rate,
        unit.readout_error_rate,
        template.num_input_ts,
        template.num_output_ts,
        unit.qubits_first if first else unit.qubits_next,
        unit.duration_first if first else unit.duration_next,
    )


class _UnitsMap:
    """QRE's ``DistillationUnitsMap``: units by round position, distance and template."""

    def __init__(
        self,
        qubit: QubitParams,
        patches: list[Patch | None],
        distances: list[int],
        templates: Sequence[UnitTemplate],
    ) -> None:
        combined = [t for t in templates if t.unit_type == COMBINED]
        logical_only = [t for t in templates if t.unit_type == LOGICAL]
        physical_only = [
            u
            for u in (place_unit(t, qubit, None) for t in templates if t.unit_type == PHYSICAL)
            if u.is_valid
        ]
        self.nc, self.nl, self.np = len(combined), len(logical_only), len(physical_only)
        self.physical = [place_unit(t, qubit, None) for t in combined] + physical_only
        self.valid_physical = [u.is_valid for u in self.physical[: self.nc]] + [True] * self.np
        self.qubit, self.patches = qubit, patches
        self.logical_templates = combined + logical_only
        # each logical unit is placed when the search first asks for it (most are never
        # asked for); [] where there is no patch, so that asking fails as QRE's does
        self.logical: list[list[Unit | None]] = [
            [] if p is None else [None] * len(self.logical_templates) for p in patches
        ]
        # A logical unit is valid where its patch's error rate is at most a tenth of
        # the T gate's (Unit.is_valid), whatever its template: the first such patch.
        limit = 0.1 * qubit.t_gate_error_rate
        present = [p for p in patches if p is not None]
        valid = [i for i, p in enumerate(present) if p.logical_error_rate <= limit]
        self.min_valid = [valid[0] if valid else len(patches)] * (self.nl + self.nc)
        self.distances = distances

    def get(self, position: int, distance: int, idx: int) -> Unit:
        if distance == 1 and position == 0:
            return self.physical[idx if idx < self.nc else idx - self.nl]
        units = self.logical[distance]
        unit = units[idx]
        if unit is None:
            patch = self.patches[distance]
            unit = units[idx] = place_unit(self.logical_templates[idx], self.qubit, patch)
        return unit

    def min_index(self, position: int, idx: int) -> int:
        if position == 0:
            if idx >= self.nl + self.nc:
                return 0
            if idx < self.nc and self.valid_physical[idx]:
                return 0
            return max(1, self.min_valid[idx])
        return self.min_valid[idx]

    def max_index(self, position: int, idx: int) -> int:
        if idx >= self.nl + self.nc:
            return 0
        return len(self.distances) - 1

    def combinations(self, num_rounds: int) -> list[tuple[int, ...]]:
        if self.nl + self.nc + self.np == 0 or (num_rounds > 1 and self.nl + self.nc == 0):
            # no unit for the first round (no valid physical one, no logical one), or none
            # for a later round (each needs a logical unit): no sequence (the walk below,
            # as QRE's, would count on without end)
            return []
        result = []
        a = [0] * (num_rounds + 1)
        while True:
            result.append(tuple(a[1:]))
            j = num_rounds
            while a[j] == (
                1
                if j == 0
                else (self.nl + self.nc + self.np - 1 if j == 1 else self.nl + self.nc - 1)
            ):
                a[j] = 0
                j -= 1
            if j == 0:
                return result
            a[j] += 1


def _search_distances(
    n: int, left: list[int], right_in: list[int], check: Callable[[list[int]], bool]
) -> list[int] | None:
    right = list(right_in)
    if check(right):
        return None
    if not check(left):
        return None
    mid = list(right)
    for cur in range(n):
        lo = list(mid)
        lo[cur] = left[0] if cur == 0 else mid[cur - 1]
        while lo[cur] + 1 < right[cur]:
            mid[cur] = (lo[cur] + right[cur]) // 2
            if check(mid):
                lo[cur] = mid[cur] + 1
            else:
                right[cur] = mid[cur]
        if lo[cur] + 1 == right[cur]:
            mid[cur] = lo[cur]
            if check(mid):
                mid[cur] = right[cur]
        else:
            mid[cur] = right[cur]
    return mid


def _increment(current: list[int], left: list[int], right: list[int], n: int) -> bool:
    i = n - 1
    current[i] += 1
    while current[i] > right[i]:
        if i == 0:
            return False
        i -= 1
        current[i] += 1
    while i < n - 1:
        current[i + 1] = max(current[i], left[i + 1])
        i += 1
    return True


def _switch(current: list[int], left: list[int], right: list[int], n: int) -> bool:
    j = len(current) - 1
    while j > 0 and (current[j] <= current[j - 1] + 1 or current[j - 1] == right[j - 1]):
        j -= 1
    if j == 0:
        return False
    current[j - 1] += 1
    while j < n:
        current[j] = max(current[j - 1], left[j])
        j += 1
    return True


def _iterate_distances(
    n: int, left: list[int], right: list[int], start: list[int], check: Callable[[list[int]], bool]
) -> None:
    current = [max(c, low) for c, low in zip(start, left, strict=True)]
    if not _switch(current, left, right, n):
        return
    while True:
        if check(current):
            if not _increment(current, left, right, n):
                return
        elif not _switch(current, left, right, n):
            return


def find_factories(
    scheme: QecScheme,
    qubit: QubitParams,
    templates: Sequence[UnitTemplate],
    target: float,
    max_distance: int,
    max_rounds: int = MAX_DISTILLATION_ROUNDS,
) -> list[TFactory]:
    """The non-dominated factories that reach ``target`` with distances up to ``max_distance``.

    Ordered as QRE orders them (descending normalized qubits, then duration).
    """
    return list(
        find_factories_checked(scheme, qubit, templates, target, max_distance, max_rounds)[0]
    )


def find_factories_checked(
    scheme: QecScheme,
    qubit: QubitParams,
    templates: Sequence[UnitTemplate],
    target: float,
    max_distance: int,
    max_rounds: int = MAX_DISTILLATION_ROUNDS,
) -> tuple[tuple[TFactory, ...], bool]:
    """:func:`find_factories`, and whether QRE's own search would not terminate here."""
    return _find_cached(scheme, qubit, tuple(templates), target, max_distance, max_rounds)


@functools.lru_cache(maxsize=512)
def _find_cached(
    scheme: QecScheme,
    qubit: QubitParams,
    templates: tuple[UnitTemplate, ...],
    target: float,
    max_distance: int,
    max_rounds: int,
) -> tuple[tuple[TFactory, ...], bool]:
    return _find(scheme, qubit, templates, target, max_distance, max_rounds)


def _find(
    scheme: QecScheme,
    qubit: QubitParams,
    templates: tuple[UnitTemplate, ...],
    target: float,
    max_distance: int,
    max_rounds: int,
    *,
    prune: bool = True,
) -> tuple[tuple[TFactory, ...], bool]:
    """The search behind :func:`find_factories_checked`; ``prune=False`` computes every
    candidate in full, as QRE does (the tests hold the two equal)."""
    before = NEWTON_FALLBACKS[0]
    distances = list(range(1, max_distance + 1, 2))
    if target > qubit.t_gate_error_rate:
        try:
            patch = make_patch(scheme, qubit, max_distance)
        except QECError:
            return (), False
        return (trivial_factory(qubit, patch),), False
    patches: list[Patch | None] = [None] * (max_distance + 1)
    rate = qubit.physical_error_rate
    for d in distances:
        try:
            patches[d] = make_patch(scheme, qubit, d, rate)
        except QECError:
            patches[d] = None
    units = _UnitsMap(qubit, patches, distances, templates)
    search = _Search(target, max_rounds, prune=prune)
    search_check = search.check
    records: dict[tuple[int, int], list[_Record | None]] = {}

    def run(num_rounds: int) -> None:
        for combo in units.combinations(num_rounds):
            left: list[int] = []
            state = 0
            for position, idx in enumerate(combo):
                state = max(state, units.min_index(position, idx))
                left.append(state)
            right = [units.max_index(position, idx) for position, idx in enumerate(combo)]
            if any(i >= len(distances) for i in left):
                continue  # no valid distance for some round (QRE would index out of range)

            # Each round's record at each distance index, made once per search: a round's
            # unit depends on its position and template only, whatever the other rounds.
            tables = [
                records.setdefault((position, idx), [None] * len(distances))
                for position, idx in enumerate(combo)
            ]

            def check(
                indexes: list[int],
                combo: tuple[int, ...] = combo,
                tables: list[list[_Record | None]] = tables,
            ) -> bool:
                chosen = []
                for position, d in enumerate(indexes):
                    table = tables[position]
                    record = table[d]
                    if record is None:
                        unit = units.get(position, distances[d], combo[position])
                        record = table[d] = _record(unit, position)
                    chosen.append(record)
                return search_check(chosen)

            start = _search_distances(num_rounds, left, right, check)
            if start is not None:
                _iterate_distances(num_rounds, left, right, start, check)

    for num_rounds in range(1, max_rounds + 1):
        run(num_rounds)
    if not search.frontier.items:
        for num_rounds in range(max_rounds + 1, MAX_EXTRA_DISTILLATION_ROUNDS + 1):
            run(num_rounds)
    search.frontier.filter()
    search.frontier.sort()
    # (a factory's arithmetic is its check's, so building it falls back nowhere new)
    factories = tuple(build_factory(units) for _, units in search.frontier.items)
    return factories, NEWTON_FALLBACKS[0] != before
