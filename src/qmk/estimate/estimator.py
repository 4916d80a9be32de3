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

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.tfactory import (
    MAX_DISTILLATION_ROUNDS,
    Patch,
    TFactory,
    UnitTemplate,
    default_units,
    find_factories_checked,
    unit_from_json,
)
from qmk.qec.codes import QRE_MAX_CODE_DISTANCE, SCHEMES, powi
from qmk.qec.errors import QECError
from qmk.qec.formula import Formula
from qmk.qec.logical import syndrome_bits_per_round as logical_syndrome_bits
from qmk.qec.params import GATE_BASED, MAJORANA, QUBIT_PARAMS, QubitParams
from qmk.qvm.profiles import family_name

#: QRE's default total error budget.
DEFAULT_ERROR_BUDGET = 1e-3
#: Ts per rotation: ceil(A log2(rotations / eps) + B). Beverland et al. (arXiv:2211.07629,
#: Eq. D2) give B = 5.3; qsharp 1.31 uses 4.86 (the mixed-fallback synthesis fit of
#: Kliuchnikov et al., arXiv:2203.10064), which our matrix test pins against qsharp.
TS_PER_ROTATION_A = 0.53
TS_PER_ROTATION_B = 4.86
_U64 = 2**64


def _bad(message: str, **details: Any) -> QECError:
    return QECError.of("bad-parameter", message, **details)


def _qre(name: str, message: str, qre_code: str, **details: Any) -> QECError:
    return QECError.of(name, message, qre_code=qre_code, **details)


def _div(a: float, b: float) -> float:
    """IEEE division (Rust's ``f64 /``): x/0 is inf or nan instead of raising."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# -- job parameters ----------------------------------------------------------------------------

_TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}
_TIME = re.compile(r"^([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*(ns|us|µs|μs|ms|s)$")


def parse_time(value: Any, field: str) -> int:
    """A QRE time string such as ``"100 ns"`` or ``"1.5 ms"`` as whole nanoseconds.

    >>> parse_time("1.5 ms", "maxDuration"), parse_time("100 ns", "t")
    (1500000, 100)
    """
    if isinstance(value, str):
        match = _TIME.match(value)
        if match:
            return int(float(match.group(1)) * _TIME_UNITS[match.group(2)])
    raise _bad(
        f"{field}: cannot parse time {value!r}; write a number and ns, us, µs, ms or s, "
        "e.g. '100 ns'",
        field=field,
    )


def format_time(ns: int) -> str:
    return f"{ns} ns"


_QUBIT_TIMES = {
    "oneQubitMeasurementTime": "one_qubit_measurement_time",
    "oneQubitGateTime": "one_qubit_gate_time",
    "twoQubitGateTime": "two_qubit_gate_time",
    "tGateTime": "t_gate_time",
    "twoQubitJointMeasurementTime": "two_qubit_joint_measurement_time",
}
_QUBIT_RATES = {
    "oneQubitGateErrorRate": "one_qubit_gate_error_rate",
    "twoQubitGateErrorRate": "two_qubit_gate_error_rate",
    "tGateErrorRate": "t_gate_error_rate",
    "idleErrorRate": "idle_error_rate",
}
_QUBIT_SPLIT = {
    "oneQubitMeasurementErrorRate": "one_qubit_measurement",
    "twoQubitJointMeasurementErrorRate": "two_qubit_joint_measurement",
}
_INSTRUCTION_SETS = {
    "gatebased": GATE_BASED,
    "gate_based": GATE_BASED,
    "gate-based": GATE_BASED,
    "majorana": MAJORANA,
}


def qubit_from_json(data: Any) -> QubitParams:
    """QRE's ``qubitParams``: a predefined ``name`` (fields given override it) or a custom set.

    Custom gate-based sets fill unset fields as QRE does: two-qubit gate and T-gate
    times from the one-qubit gate time, the two-qubit gate error rate from the
    one-qubit one, the idle rate from the measurement rate.

    Raises:
        QECError: ``QC101`` for an unknown predefined name without ``instructionSet``;
            ``QC103`` for unknown fields or bad values.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _bad("qubitParams must be a JSON object")
    known = {"name", "instructionSet", *_QUBIT_TIMES, *_QUBIT_RATES, *_QUBIT_SPLIT}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _bad(f"qubitParams: unknown field {unknown[0]!r}", field=unknown[0])
    name = data.get("name", "qubit_gate_ns_e3")
    base = QUBIT_PARAMS.get(name)
    if base is None and "instructionSet" not in data:
        raise QECError.of(
            "unknown-qubit-params",
            f"no qubit parameter set {name!r}; known: {', '.join(QUBIT_PARAMS)} "
            "(or give instructionSet and the fields of a custom set)",
            name=str(name),
        )
    fields: dict[str, Any] = base.to_json() if base is not None else {"name": str(name)}
    if "instructionSet" in data:
        kind = _INSTRUCTION_SETS.get(str(data["instructionSet"]).lower())
        if kind is None:
            raise _bad(f"qubitParams: unknown instructionSet {data['instructionSet']!r}")
        if base is not None and kind != base.instruction_set:
            fields = {"name": str(name)}
        fields["instruction_set"] = kind
    for key, field in _QUBIT_TIMES.items():
        if key in data:
            fields[field] = parse_time(data[key], key)
    for key, field in _QUBIT_RATES.items():
        if key in data:
            fields[field] = data[key]
    for key, field in _QUBIT_SPLIT.items():
        if key in data:
            value = data[key]
            if isinstance(value, Mapping):
                fields[f"{field}_error_rate"] = value.get("process")
                fields[f"{field}_readout_error_rate"] = value.get("readout")
            else:
                fields[f"{field}_error_rate"] = value
                fields[f"{field}_readout_error_rate"] = None
    if base is None and fields.get("instruction_set") == GATE_BASED:
        gate_time = fields.get("one_qubit_gate_time")
        fields.setdefault("two_qubit_gate_time", gate_time)
        fields.setdefault("t_gate_time", gate_time)
        fields.setdefault("two_qubit_gate_error_rate", fields.get("one_qubit_gate_error_rate"))
        fields.setdefault("idle_error_rate", fields.get("one_qubit_measurement_error_rate"))
    fields = {key: value for key, value in fields.items() if value is not None}
    return QubitParams.from_json(fields)


def qubit_to_json(qubit: QubitParams) -> dict[str, Any]:
    """The qubit in QRE's ``jobParams.qubitParams`` form."""
    out: dict[str, Any] = {
        "instructionSet": "GateBased" if qubit.instruction_set == GATE_BASED else "Majorana",
        "name": qubit.name,
        "oneQubitMeasurementTime": format_time(qubit.one_qubit_measurement_time),
    }
    if qubit.instruction_set == GATE_BASED:
        assert qubit.one_qubit_gate_time is not None and qubit.two_qubit_gate_time is not None
        out["oneQubitGateTime"] = format_time(qubit.one_qubit_gate_time)
        out["twoQubitGateTime"] = format_time(qubit.two_qubit_gate_time)
        out["tGateTime"] = format_time(qubit.t_gate_time)
        out["oneQubitMeasurementErrorRate"] = qubit.one_qubit_measurement_error_rate
        out["oneQubitGateErrorRate"] = qubit.one_qubit_gate_error_rate
        out["twoQubitGateErrorRate"] = qubit.two_qubit_gate_error_rate
    else:
        assert qubit.two_qubit_joint_measurement_time is not None
        out["twoQubitJointMeasurementTime"] = format_time(qubit.two_qubit_joint_measurement_time)
        out["tGateTime"] = format_time(qubit.t_gate_time)
        out["oneQubitMeasurementErrorRate"] = {
            "process": qubit.one_qubit_measurement_error_rate,
            "readout": qubit.one_qubit_measurement_readout_rate,
        }
        out["twoQubitJointMeasurementErrorRate"] = {
            "process": qubit.two_qubit_joint_measurement_error_rate,
            "readout": qubit.two_qubit_joint_measurement_readout_rate,
        }
    out["tGateErrorRate"] = qubit.t_gate_error_rate
    out["idleErrorRate"] = qubit.idle_error_rate
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """A QEC code with threshold and distance (QRE's ``CodeWithThresholdAndDistance``).

    ``P_L(d) = a * d**power * (p / p*) ** ((d + 1) // 2)`` per logical cycle.
    """

    name: str
    crossing_prefactor: float
    error_correction_threshold: float
    distance_coefficient_power: int
    logical_cycle_time: Formula
    physical_qubits_per_logical_qubit: Formula
    max_code_distance: int
    #: what ``jobParams`` echoes (QRE echoes null for a custom scheme that omits it)
    echoed_power: int | None = 0

    def physical_qubits(self, distance: int) -> int:
        value = self.physical_qubits_per_logical_qubit.evaluate({"codeDistance": distance})
        if value <= 0:
            raise _bad(
                "physicalQubitsPerLogicalQubit formula yields non-positive value for code "
                f"distance = {distance}"
            )
        return int(value)

    def cycle_time_ns(self, qubit: QubitParams, distance: int) -> int:
        variables = {**qubit.time_variables(), "codeDistance": float(distance)}
        value = self.logical_cycle_time.evaluate(variables)
        if value <= 0:
            raise _bad(
                f"logicalCycleTime formula yields non-positive value for code distance = {distance}"
            )
        return math.floor(value + 0.5)

    def logical_error_rate(self, physical_error_rate: float, distance: int) -> float:
        if physical_error_rate > self.error_correction_threshold:
            raise QECError.of(
                "above-threshold",
                f"invalid value for 'physical_error_rate', expected value between 0 and "
                f"{self.error_correction_threshold}",
            )
        return (
            self.crossing_prefactor
            * float(distance**self.distance_coefficient_power)
            * powi(physical_error_rate / self.error_correction_threshold, (distance + 1) // 2)
        )

    def distance_for(self, qubit: QubitParams, required: float) -> int:
        """QRE's ``compute_code_parameter`` (Eq. E2, or a scan when power > 0)."""
        p = qubit.physical_error_rate
        if self.distance_coefficient_power == 0:
            ratio = _div(2.0 * math.log(_div(self.crossing_prefactor, required)), 1.0)
            value = _div(ratio, math.log(self.error_correction_threshold / p)) - 1.0
            distance = (max(0, math.ceil(value)) if math.isfinite(value) else _U64 - 1) | 1
            if distance > self.max_code_distance:
                raise QECError.of(
                    "distance-too-large",
                    f"The code parameter cannot be computed: The computed code distance "
                    f"{distance} is too high; maximum allowed code distance is "
                    f"{self.max_code_distance}; try increasing the total logical error budget",
                    qre_code="Qdk.Qsc.Estimates.CodeParameterComputationFailed",
                    distance=distance,
                )
            return distance
        for distance in range(1, self.max_code_distance + 1, 2):
            if self.logical_error_rate(p, distance) <= required:
                return distance
        raise QECError.of(
            "distance-too-large",
            "The code parameter cannot be computed: no code distance up to "
            f"{self.max_code_distance} reaches the required logical error rate {required}",
            qre_code="Qdk.Qsc.Estimates.CodeParameterComputationFailed",
        )

    def patch(self, qubit: QubitParams, distance: int) -> Patch:
        return Patch(
            distance=distance,
            physical_qubits=self.physical_qubits(distance),
            cycle_time=self.cycle_time_ns(qubit, distance),
            logical_error_rate=self.logical_error_rate(qubit.physical_error_rate, distance),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "errorCorrectionThreshold": self.error_correction_threshold,
            "crossingPrefactor": self.crossing_prefactor,
            "distanceCoefficientPower": self.echoed_power,
            "logicalCycleTime": self.logical_cycle_time.text,
            "physicalQubitsPerLogicalQubit": self.physical_qubits_per_logical_qubit.text,
            "maxCodeDistance": self.max_code_distance,
        }


_SCHEME_FIELDS = (
    "name",
    "errorCorrectionThreshold",
    "crossingPrefactor",
    "distanceCoefficientPower",
    "logicalCycleTime",
    "physicalQubitsPerLogicalQubit",
    "maxCodeDistance",
)


def code_from_json(data: Any, qubit: QubitParams) -> Code:
    """QRE's ``qecScheme``: a predefined name (fields given override it) or a custom scheme.

    Predefined names are QRE's ``surface_code`` and ``floquet_code`` (and their
    camelCase/kebab-case spellings) and QMK's ``bacon_shor`` and ``SHYPS``.

    Raises:
        QECError: ``QC105`` when the family has no scheme for the qubit;
            ``QC106`` when the qubit's Clifford error rate is not below the threshold;
            ``QC103`` for a missing field of a custom scheme, a bad formula, a
            prefactor above 0.5 or a formula that is not positive for d >= 3.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise _bad("qecScheme must be a JSON object")
    unknown = sorted(set(data) - set(_SCHEME_FIELDS))
    if unknown:
        raise _bad(f"qecScheme: unknown field {unknown[0]!r}", field=unknown[0])
    name = data.get("name", "surface_code")
    family = family_name(name) if isinstance(name, str) else None
    values: dict[str, Any] = {}
    if family is not None:
        scheme = SCHEMES[family].get(qubit.instruction_set)
        if scheme is None:
            raise QECError.of(
                "scheme-not-supported",
                f"fault tolerance protocol does not support gate type of qubit ({family} has "
                f"no scheme for {qubit.instruction_set} qubits)",
                qre_code="Qdk.Qsc.Estimates.InvalidInputError.InvalidFaultToleranceProtocol",
            )
        values = {
            "errorCorrectionThreshold": scheme.error_correction_threshold,
            "crossingPrefactor": scheme.crossing_prefactor,
            "distanceCoefficientPower": 0,
            "logicalCycleTime": scheme.logical_cycle_time.text,
            "physicalQubitsPerLogicalQubit": scheme.physical_qubits_per_logical_qubit.text,
            "maxCodeDistance": QRE_MAX_CODE_DISTANCE,
        }
    else:
        for key in (
            "errorCorrectionThreshold",
            "crossingPrefactor",
            "logicalCycleTime",
            "physicalQubitsPerLogicalQubit",
        ):
            if key not in data:
                raise _bad(f"qecScheme {name!r} is not predefined; it needs {key}", field=key)
        values = {"distanceCoefficientPower": 0, "maxCodeDistance": QRE_MAX_CODE_DISTANCE}
    values.update({k: v for k, v in data.items() if k != "name"})
    for key in ("errorCorrectionThreshold", "crossingPrefactor"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise _bad(f"qecScheme.{key} must be a positive number, got {value!r}")
    for key in ("distanceCoefficientPower", "maxCodeDistance"):
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"qecScheme.{key} must be a whole number >= 0, got {value!r}")
    for key in ("logicalCycleTime", "physicalQubitsPerLogicalQubit"):
        if not isinstance(values[key], str):
            raise _bad(f"qecScheme.{key} must be a formula string")
    code = Code(
        name=str(name),
        crossing_prefactor=float(values["crossingPrefactor"]),
        error_correction_threshold=float(values["errorCorrectionThreshold"]),
        distance_coefficient_power=values["distanceCoefficientPower"],
        logical_cycle_time=Formula(values["logicalCycleTime"]),
        physical_qubits_per_logical_qubit=Formula(values["physicalQubitsPerLogicalQubit"]),
        max_code_distance=values["maxCodeDistance"],
        echoed_power=(
            values["distanceCoefficientPower"]
            if family is not None or "distanceCoefficientPower" in data
            else None
        ),
    )
    extra = sorted(code.physical_qubits_per_logical_qubit.names - {"codeDistance"})
    if extra:
        raise _bad(
            f"qecScheme.physicalQubitsPerLogicalQubit may name only codeDistance, not {extra[0]}"
        )
    if code.crossing_prefactor > 0.5:
        raise _bad("invalid value for 'crossingPrefactor', expected value between 0 and 0.5")
    if qubit.clifford_error_rate >= code.error_correction_threshold:
        names = (
            "oneQubitGateErrorRate, twoQubitGateErrorRate, idleErrorRate"
            if qubit.instruction_set == GATE_BASED
            else "idleErrorRate, oneQubitMeasurementErrorRate, twoQubitJointMeasurementErrorRate"
        )
        raise QECError.of(
            "above-threshold",
            f"invalid value for '{names}', expected value between 0 and "
            f"{code.error_correction_threshold}",
            qre_code="Qdk.Qsc.Estimates.InvalidValueError.InvalidValue",
        )
    for distance in range(3, code.max_code_distance + 1):
        code.cycle_time_ns(qubit, distance)
        code.physical_qubits(distance)
    return code


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """The error budget split: logical, T states (magic states), rotations."""

    logical: float
    tstates: float
    rotations: float


def budget_from_json(data: Any, counts: LogicalCounts) -> Budget:
    """QRE's ``errorBudget``: a total split by what the program has, or explicit parts.

    Raises:
        QECError: ``QC103`` with QRE's message for a budget outside (0, 1) or a part
            that must be positive.
    """
    has_t = bool(counts.t_count or counts.ccz_count or counts.ccix_count or counts.rotation_count)
    has_r = bool(counts.rotation_count)

    def invalid(value: Any) -> QECError:
        return QECError.of(
            "bad-parameter",
            f"The error budget must be between 0.0 and 1.0, provided input was `{value}`",
            qre_code="Qdk.Qsc.Estimates.InvalidInputError.InvalidErrorBudget",
        )

    if data is None:
        data = DEFAULT_ERROR_BUDGET
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        total = float(data)
        if not 0.0 < total < 1.0:
            raise invalid(data)
        if has_t and has_r:
            return Budget(logical=total / 3.0, tstates=total / 3.0, rotations=total / 3.0)
        if has_t:
            return Budget(logical=total / 2.0, tstates=total / 2.0, rotations=0.0)
        return Budget(logical=total, tstates=0.0, rotations=0.0)
    if not isinstance(data, Mapping):
        raise _bad("errorBudget must be a number or an object {logical, tStates, rotations}")
    unknown = sorted(set(data) - {"logical", "tStates", "rotations"})
    if unknown or set(data) != {"logical", "tStates", "rotations"}:
        raise _bad("errorBudget parts must be exactly logical, tStates and rotations")
    parts = [data["logical"], data["tStates"], data["rotations"]]
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, float)):
            raise _bad(f"errorBudget parts must be numbers, got {part!r}")
    logical, tstates, rotations = (float(x) for x in parts)
    if logical + tstates + rotations >= 1.0:
        raise invalid(logical + tstates + rotations)
    if logical <= 0.0:
        raise invalid(data["logical"])
    if tstates < 0.0 or (has_t and tstates == 0.0):
        raise invalid(data["tStates"])
    if rotations < 0.0 or (has_r and rotations == 0.0):
        raise invalid(data["rotations"])
    return Budget(logical=logical, tstates=tstates, rotations=rotations)


@dataclass(frozen=True, slots=True, kw_only=True)
class Constraints:
    """QRE's ``constraints`` (None: not set)."""

    logical_depth_factor: float | None = None
    max_t_factories: int | None = None
    max_duration: int | None = None
    max_physical_qubits: int | None = None
    max_distillation_rounds: int = MAX_DISTILLATION_ROUNDS

    @classmethod
    def from_json(cls, data: Any) -> Constraints:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise _bad("constraints must be a JSON object")
        known = {
            "logicalDepthFactor",
            "maxTFactories",
            "maxDuration",
            "maxPhysicalQubits",
            "maxDistillationRounds",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise _bad(f"constraints: unknown field {unknown[0]!r}", field=unknown[0])
        factor = data.get("logicalDepthFactor")
        if factor is not None and (
            isinstance(factor, bool) or not isinstance(factor, (int, float))
        ):
            raise _bad(f"constraints.logicalDepthFactor must be a number, got {factor!r}")
        ints = {}
        for key in ("maxTFactories", "maxPhysicalQubits", "maxDistillationRounds"):
            value = data.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise _bad(f"constraints.{key} must be a whole number >= 0, got {value!r}")
            ints[key] = value
        duration = data.get("maxDuration")
        return cls(
            logical_depth_factor=None if factor is None else float(factor),
            max_t_factories=ints["maxTFactories"],
            max_duration=None if duration is None else parse_time(duration, "maxDuration"),
            max_physical_qubits=ints["maxPhysicalQubits"],
            max_distillation_rounds=(
                MAX_DISTILLATION_ROUNDS
                if ints["maxDistillationRounds"] is None
                else ints["maxDistillationRounds"]
            ),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.logical_depth_factor is not None:
            out["logicalDepthFactor"] = self.logical_depth_factor
        if self.max_t_factories is not None:
            out["maxTFactories"] = self.max_t_factories
        if self.max_duration is not None:
            out["maxDuration"] = format_time(self.max_duration)
        if self.max_physical_qubits is not None:
            out["maxPhysicalQubits"] = self.max_physical_qubits
        out["maxDistillationRounds"] = self.max_distillation_rounds
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class JobParams:
    """Parsed QRE job parameters."""

    qubit: QubitParams
    code: Code
    error_budget: Any
    constraints: Constraints
    units: tuple[UnitTemplate, ...]
    units_json: tuple[Any, ...]
    frontier: bool

    @classmethod
    def from_json(cls, data: Any) -> JobParams:
        """Parse QRE job parameters (``{}`` or None: all defaults).

        Raises:
            QECError: for any unknown field or bad value (see the parsers above).
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise _bad("estimate parameters must be a JSON object")
        known = {
            "qubitParams",
            "qecScheme",
            "errorBudget",
            "constraints",
            "distillationUnitSpecifications",
            "estimateType",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise _bad(
                f"estimate parameters: unknown field {unknown[0]!r}; "
                f"known: {', '.join(sorted(known))}",
                field=unknown[0],
            )
        qubit = qubit_from_json(data.get("qubitParams"))
        code = code_from_json(data.get("qecScheme"), qubit)
        units_json = data.get("distillationUnitSpecifications") or []
        if not isinstance(units_json, list):
            raise _bad("distillationUnitSpecifications must be a list")
        units = tuple(unit_from_json(u) for u in units_json) or default_units()
        kind = data.get("estimateType", "singlePoint")
        if kind not in ("singlePoint", "frontier"):
            raise _bad(f"estimateType must be 'singlePoint' or 'frontier', got {kind!r}")
        return cls(
            qubit=qubit,
            code=code,
            error_budget=data.get("errorBudget", DEFAULT_ERROR_BUDGET),
            constraints=Constraints.from_json(data.get("constraints")),
            units=units,
            units_json=tuple(units_json),
            frontier=kind == "frontier",
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "qecScheme": self.code.to_json(),
            "errorBudget": self.error_budget,
            "qubitParams": qubit_to_json(self.qubit),
            "constraints": self.constraints.to_json(),
        }
        if self.units_json:
            out["distillationUnitSpecifications"] = list(self.units_json)
        out["estimateType"] = "frontier" if self.frontier else "singlePoint"
        return out


# -- the estimation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    patch: Patch
    num_cycles: int
    factory: TFactory | None
    copies: int
    runs: int
    required_tstate_rate: float | None
    required_logical_rate: float
    physical_qubits_for_factories: int
    physical_qubits_for_algorithm: int
    physical_qubits: int
    runtime: int
    rqops: int


class _Estimator:
    """The estimation algorithms of QRE's ``PhysicalResourceEstimation``."""

    def __init__(self, counts: LogicalCounts, job: JobParams, budget: Budget) -> None:
        self.c = counts
        self.job = job
        self.code = job.code
        self.qubit = job.qubit
        self.budget = budget
        self.cons = job.constraints
        self.qre_divides_by_zero = False
        self.qre_hangs = False
        q = counts.num_qubits
        self.logical_qubits = 2 * q + math.ceil(math.sqrt(float(8 * q))) + 1
        self.ts_per_rotation: int | None = None
        if counts.rotation_count > 0:
            value = (
                TS_PER_ROTATION_A * math.log2(_div(counts.rotation_count, budget.rotations))
                + TS_PER_ROTATION_B
            )
            self.ts_per_rotation = math.ceil(value)
        per = self.ts_per_rotation or 0
        self.logical_depth = (
            (counts.measurement_count + counts.rotation_count + counts.t_count)
            + 3 * (counts.ccz_count + counts.ccix_count)
            + per * counts.rotation_depth
        )
        self.num_magic_states = (
            4 * (counts.ccz_count + counts.ccix_count)
            + counts.t_count
            + per * counts.rotation_count
        )

    # helpers named as in QRE
    def num_cycles(self) -> int:
        cycles = self.logical_depth
        factor = self.cons.logical_depth_factor
        if factor is not None:
            if factor < 1.0:
                raise QECError.of(
                    "bad-parameter",
                    f"Logical depth scaling factor is too small, it must be at least 1: {factor:g}",
                    qre_code="Qdk.Qsc.Estimates.LogicalDepthScalingFactorTooSmall",
                )
            cycles = math.ceil(cycles * factor)
        if cycles == 0 and self.num_magic_states == 0:
            raise QECError.of(
                "no-resources",
                "Algorithm requires at least one magic state or measurement to estimate resources",
                qre_code="Qdk.Qsc.Estimates.AlgorithmHasNoResources",
            )
        return cycles

    def required_rate(self, cycles: int) -> float:
        return _div(self.budget.logical, float(self.logical_qubits * cycles))

    def cycles_for_distance(self, distance: int) -> int:
        rate = self.code.logical_error_rate(self.qubit.physical_error_rate, distance)
        value = _div(self.budget.logical, self.logical_qubits * rate)
        return _saturating_u64(value)

    def algorithm_qubits(self, patch: Patch) -> int:
        return self.logical_qubits * patch.physical_qubits

    def num_factories(self, patch: Patch, factory: TFactory, cycles: int) -> int | None:
        """Copies needed to make every state within ``cycles``; None when no copy count can."""
        total = cycles * patch.cycle_time
        if total < _U64:
            per_run = (total // factory.duration) * factory.num_output_states
            if per_run == 0:
                self.qre_divides_by_zero = True  # QRE panics here (see docs/estimation.md)
                return None
            return _ceil_div(self.num_magic_states, per_run)
        per_cycle = self.num_magic_states / float(factory.num_output_states * cycles)
        return math.ceil(per_cycle * (factory.duration / patch.cycle_time))

    def cycles_for_states(self, copies: int, factory: TFactory, patch: Patch) -> int:
        runs = _ceil_div(self.num_magic_states, copies * factory.num_output_states)
        return _ceil_div(runs * factory.duration, patch.cycle_time)

    def factories(self, target: float, distance: int) -> list[TFactory]:
        found, qre_hangs = find_factories_checked(
            self.code,  # type: ignore[arg-type]
            self.qubit,
            self.job.units,
            target,
            distance,
            self.cons.max_distillation_rounds,
        )
        self.qre_hangs = self.qre_hangs or qre_hangs
        return list(found)

    def result(
        self,
        patch: Patch,
        cycles: int,
        factory: TFactory | None,
        copies: int,
        target: float | None,
        required: float,
    ) -> _Result:
        runs = 0
        for_factories = 0
        if factory is not None:
            runs = _ceil_div(self.num_magic_states, copies * factory.num_output_states)
            for_factories = factory.physical_qubits * copies
        for_algorithm = self.algorithm_qubits(patch)
        return _Result(
            patch,
            cycles,
            factory,
            copies,
            runs,
            target,
            required,
            for_factories,
            for_algorithm,
            for_algorithm + for_factories,
            patch.cycle_time * cycles,
            math.ceil(self.logical_qubits * (1e9 / patch.cycle_time)),
        )

    def patch(self, distance: int) -> Patch:
        return self.code.patch(self.qubit, distance)

    # -- single point without duration or qubit limits
    def without_restrictions(self) -> _Result:
        cycles = self.num_cycles()
        while True:
            required = self.required_rate(cycles)
            distance = self.code.distance_for(self.qubit, required)
            max_cycles = self.cycles_for_distance(distance)
            patch = self.patch(distance)
            if self.num_magic_states == 0:
                return self.result(patch, cycles, None, 0, None, required)
            target = self.budget.tstates / self.num_magic_states
            factories = self.factories(target, distance)
            found = None
            if factories:
                duration = cycles * patch.cycle_time
                # QRE evaluates the maxTFactories predicate for every factory first.
                allowed = [self._max_f_ok(patch, f, cycles) for f in factories]
                fits = [
                    f
                    for f, ok in zip(factories, allowed, strict=True)
                    if ok and f.duration <= duration
                ]
                if fits:
                    found = (_first_min(fits, lambda f: f.normalized_volume), cycles)
                else:
                    found = self._within_max_cycles(factories, patch, max_cycles)
            if found is not None:
                factory, cycles = found
                copies = self.num_factories(patch, factory, cycles)
                assert copies is not None
                return self.result(patch, cycles, factory, copies, target, required)
            cycles = max(max_cycles + 1, cycles + 1)

    def _max_f_ok(self, patch: Patch, factory: TFactory, cycles: int) -> bool:
        if self.cons.max_t_factories is None:
            return True
        copies = self.num_factories(patch, factory, cycles)
        return copies is not None and self.cons.max_t_factories >= copies

    def _within_max_cycles(
        self, factories: list[TFactory], patch: Patch, max_cycles: int
    ) -> tuple[TFactory, int] | None:
        max_f = self.cons.max_t_factories
        options = []
        for f in factories:
            if max_f is None:
                num = _ceil_div(f.duration, patch.cycle_time)
            else:
                if max_f == 0:
                    continue
                runs = _ceil_div(self.num_magic_states, max_f * f.num_output_states)
                num = _ceil_div(runs * f.duration, patch.cycle_time)
            if num <= max_cycles:
                options.append((f.normalized_volume, num, f))
        if not options:
            return None
        best = _first_min(options, lambda o: (o[0], o[1]))
        return best[2], best[1]

    def _initial(self) -> tuple[int, int, float, float]:
        cycles = self.num_cycles()
        target = _div(self.budget.tstates, float(self.num_magic_states))
        required = self.required_rate(cycles)
        distance = self.code.distance_for(self.qubit, required)
        return distance, cycles, required, target

    def _distances(self, lowest: int) -> list[int]:
        return list(range(lowest, self.code.max_code_distance + 1, 2))[::-1]

    # -- single point under maxDuration
    def with_max_duration(self, max_duration: int) -> _Result:
        lowest, cycles, required, target = self._initial()
        too_small = QECError.of(
            "max-duration-too-small",
            "No solution found for the provided maximum duration.",
            qre_code="Qdk.Qsc.Estimates.MaxDurationTooSmall",
        )
        if self.num_magic_states == 0:
            patch = self.patch(lowest)
            if cycles * patch.cycle_time <= max_duration:
                return self.result(patch, cycles, None, 0, None, required)
            raise too_small
        best: _Result | None = None
        factories: list[TFactory] = []
        last: int | None = None
        for distance in self._distances(lowest):
            patch = self.patch(distance)
            by_duration = math.floor(max_duration / patch.cycle_time)
            if by_duration < cycles:
                continue
            by_error = self.cycles_for_distance(distance)
            if by_error < cycles:
                continue
            allowed = min(by_duration, by_error)
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            for factory in factories:
                if _ceil_div(factory.duration, patch.cycle_time) > allowed:
                    continue
                copies = self.num_factories(patch, factory, allowed)
                if copies is None:
                    continue
                used = max(self.cycles_for_states(copies, factory, patch), cycles)
                if self.cons.max_t_factories is not None and copies > self.cons.max_t_factories:
                    continue
                result = self.result(patch, used, factory, copies, target, required)
                if best is None or result.physical_qubits < best.physical_qubits:
                    best = result
        if best is None:
            raise too_small
        return best

    # -- single point under maxPhysicalQubits
    def with_max_qubits(self, max_qubits: int) -> _Result:
        lowest, cycles, required, target = self._initial()
        too_small = QECError.of(
            "max-qubits-too-small",
            "No solution found for the provided maximum number of physical qubits.",
            qre_code="Qdk.Qsc.Estimates.MaxPhysicalQubitsTooSmall",
        )
        if self.num_magic_states == 0:
            patch = self.patch(lowest)
            if self.algorithm_qubits(patch) <= max_qubits:
                return self.result(patch, cycles, None, 0, None, required)
            raise too_small
        best: _Result | None = None
        factories: list[TFactory] = []
        last: int | None = None
        for distance in self._distances(lowest):
            patch = self.patch(distance)
            for_algorithm = self.algorithm_qubits(patch)
            if max_qubits <= for_algorithm:
                continue
            room = max_qubits - for_algorithm
            by_error = self.cycles_for_distance(distance)
            if by_error < cycles:
                continue
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            fitting = [f for f in factories if f.physical_qubits <= room]
            if not fitting:
                continue
            factory = _first_min(fitting, lambda f: f.normalized_volume)
            copies = room // factory.physical_qubits
            if copies == 0:
                continue
            used = max(self.cycles_for_states(copies, factory, patch), cycles)
            if used > by_error:
                continue
            if self.cons.max_t_factories is not None and copies > self.cons.max_t_factories:
                continue
            result = self.result(patch, used, factory, copies, target, required)
            if best is None or result.runtime < best.runtime:
                best = result
        if best is None:
            raise too_small
        return best

    # -- the frontier
    def frontier(self) -> list[_Result]:
        cycles = self.num_cycles()
        required = self.required_rate(cycles)
        target = _div(self.budget.tstates, float(self.num_magic_states))
        lowest = self.code.distance_for(self.qubit, required)
        if self.num_magic_states == 0:
            return [self.result(self.patch(lowest), cycles, None, 0, None, required)]
        points: list[tuple[float, int, _Result]] = []
        factories: list[TFactory] = []
        last: int | None = None
        for distance in self._distances(lowest):
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            patch = self.patch(distance)
            allowed = self.cycles_for_distance(distance)
            if allowed < cycles:
                continue
            for factory in factories:
                if _ceil_div(factory.duration, patch.cycle_time) > allowed:
                    continue
                copies = self.num_factories(patch, factory, allowed)
                if copies is None:
                    continue
                while True:
                    needed = self.cycles_for_states(copies, factory, patch)
                    result = self.result(
                        patch, max(needed, cycles), factory, copies, target, required
                    )
                    points.append((float(result.physical_qubits), result.runtime, result))
                    if needed <= cycles or result.runs <= 1:
                        break
                    copies += 1
        return _pareto(points)


def _saturating_u64(value: float) -> int:
    """Rust's ``f64 as u64`` after ``floor``: NaN -> 0, negatives -> 0, huge -> u64::MAX."""
    if math.isnan(value) or value <= 0:
        return 0
    if value >= _U64:
        return _U64 - 1
    return math.floor(value)


def _first_min(items: Sequence[Any], key: Any) -> Any:
    best = items[0]
    best_key = key(best)
    for item in items[1:]:
        k = key(item)
        if k < best_key:
            best, best_key = item, k
    return best


def _pareto(points: list[tuple[float, int, _Result]]) -> list[_Result]:
    def dominates(a: tuple[float, int, _Result], b: tuple[float, int, _Result]) -> bool:
        return (a[0] < b[0] and a[1] <= b[1]) or (a[0] <= b[0] and a[1] < b[1])

    idx, length = 0, len(points)
    while idx < length:
        if any(dominates(p, points[idx]) for p in points):
            points[idx], points[length - 1] = points[length - 1], points[idx]
            length -= 1
        else:
            idx += 1
    kept = points[:length]
    kept.sort(key=lambda p: (p[0], p[1]), reverse=True)
    return [p[2] for p in kept]


# -- decoder accounting ------------------------------------------------------------------------


def syndrome_bits_per_round(code: Code, distance: int) -> float:
    """Syndrome bits one logical qubit yields per round.

    A code of a known family takes the physics model's count
    (:func:`qmk.qec.logical.syndrome_bits_per_round`, the one run telemetry reports and
    checked against the measurements per round of stim's memory circuits), so
    ``qmk estimate`` and ``qmk run`` agree. A custom scheme of no known family is charged
    one bit per qubit beyond ``d**2`` data qubits (at least one).
    """
    family = family_name(code.name)
    if family is not None:
        return logical_syndrome_bits(family, distance)
    return float(max(1, code.physical_qubits(distance) - distance * distance))


def _whole(value: float) -> float | int:
    """``value`` as an int when it is whole (the counts a report shows), else as is."""
    return int(value) if float(value).is_integer() else value


def _decoder(code: Code, result: _Result) -> dict[str, Any]:
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
    out["decoder"] = _decoder(est.code, result)
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
    warnings = []
    if est.qre_hangs:
        warnings.append(
            "the factory search needed a binomial quantile where QRE 1.31's Newton iteration "
            "cycles forever; QMK takes the exact quantile (see docs/estimation.md)"
        )
    if est.qre_divides_by_zero:
        warnings.append(
            "a factory runs longer than the whole algorithm, so no number of copies fits "
            "maxTFactories within that time; QRE 1.31 divides by zero here, QMK skips the "
            "factory (see docs/estimation.md)"
        )
    if warnings:
        out["warnings"] = warnings
