"""QRE's job parameters for :mod:`qmk.estimate`: qubit parameters, the QEC scheme, the
error budget, constraints and distillation units, parsed and echoed as QRE does.

A ``qecScheme`` becomes a :class:`qmk.qec.codes.QecScheme` (the physics room's scheme type):
a predefined family's scheme with any fields the job overrides, or a custom scheme.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.estimate.tfactory import (
    MAX_DISTILLATION_ROUNDS,
    UnitTemplate,
    default_units,
    unit_from_json,
)
from qmk.qec.codes import QRE_MAX_CODE_DISTANCE, SCHEMES, QecScheme
from qmk.qec.errors import QECError
from qmk.qec.errors import bad_parameter as _bad
from qmk.qec.formula import Formula, compile_formula, compile_tree
from qmk.qec.params import GATE_BASED, MAJORANA, QUBIT_PARAMS, QubitParams
from qmk.qvm.profiles import family_name

if TYPE_CHECKING:
    from qmk.estimate.counts import LogicalCounts

#: QRE's default total error budget.
DEFAULT_ERROR_BUDGET = 1e-3
#: Ts per rotation: ceil(A log2(rotations / eps) + B). Beverland et al. (arXiv:2211.07629,
#: Eq. D2) give B = 5.3; qsharp 1.31 uses 4.86 (the mixed-fallback synthesis fit of
#: Kliuchnikov et al., arXiv:2203.10064), which our matrix test pins against qsharp.
TS_PER_ROTATION_A = 0.53
TS_PER_ROTATION_B = 4.86
_U64 = 2**64


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
    if base is not None and len(data) <= 1 and (not data or "name" in data):
        return base  # a predefined set as it is (checked when it was made)
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


_SCHEME_FIELDS = (
    "name",
    "errorCorrectionThreshold",
    "crossingPrefactor",
    "distanceCoefficientPower",
    "logicalCycleTime",
    "physicalQubitsPerLogicalQubit",
    "maxCodeDistance",
)


def code_from_json(data: Any, qubit: QubitParams) -> QecScheme:
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
    law = None
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
        # a scheme fitted to its circuits (a law: Bacon-Shor) keeps the law unless the
        # job restates the threshold form's figures
        if not {"errorCorrectionThreshold", "crossingPrefactor"} & set(data):
            law = scheme.law
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
    logical_cycle_time = Formula(values["logicalCycleTime"])
    physical_qubits = Formula(values["physicalQubitsPerLogicalQubit"])
    extra = sorted(physical_qubits.names - {"codeDistance"})
    if extra:
        raise _bad(
            f"qecScheme.physicalQubitsPerLogicalQubit may name only codeDistance, not {extra[0]}"
        )
    if values["crossingPrefactor"] > 0.5:
        raise _bad("invalid value for 'crossingPrefactor', expected value between 0 and 0.5")
    threshold = float(values["errorCorrectionThreshold"])
    if law is None and qubit.clifford_error_rate >= threshold:
        names = (
            "oneQubitGateErrorRate, twoQubitGateErrorRate, idleErrorRate"
            if qubit.instruction_set == GATE_BASED
            else "idleErrorRate, oneQubitMeasurementErrorRate, twoQubitJointMeasurementErrorRate"
        )
        raise QECError.of(
            "above-threshold",
            f"invalid value for '{names}', expected value between 0 and {threshold}",
            qre_code="Qdk.Qsc.Estimates.InvalidValueError.InvalidValue",
        )
    max_distance = values["maxCodeDistance"]
    _check_positive(logical_cycle_time, physical_qubits, qubit.time_variables(), max_distance)
    return QecScheme(
        family=family or str(name),
        instruction_set=qubit.instruction_set,
        crossing_prefactor=float(values["crossingPrefactor"]),
        error_correction_threshold=threshold,
        logical_cycle_time=logical_cycle_time,
        physical_qubits_per_logical_qubit=physical_qubits,
        max_distance=max(1, max_distance),
        distance_coefficient_power=values["distanceCoefficientPower"],
        name=str(name),
        custom=family is None,
        law=law,
    )


def _check_positive(
    cycle_time: Formula, qubits: Formula, times: dict[str, float], max_distance: int
) -> None:
    """QRE's check that both formulas are positive at every code distance from 3 to
    ``max_distance``, in QRE's order (and with its messages, before the scheme's own).

    Where the bounds of both formulas prove them positive over the whole range
    (:func:`_positive`), nothing is evaluated. Else the formulas are compiled once and
    evaluated on one variable map (the distance changed in place); one that fails to
    evaluate (a variable it lacks, bad arithmetic) is evaluated again through
    :meth:`Formula.evaluate`, which raises its own error.
    """
    if max_distance < 3:
        return
    cycle_tree, qubits_tree = compile_formula(cycle_time.text)[0], compile_formula(qubits.text)[0]
    ranges = {name: (value, value) for name, value in times.items() if 0.0 < value < math.inf}
    ranges["codeDistance"] = (3.0, float(max_distance))
    if _positive(cycle_tree, ranges) and _positive(
        qubits_tree, {"codeDistance": ranges["codeDistance"]}
    ):
        return  # (QRE's predefined schemes, and most custom ones)
    cycle_at, qubits_at = compile_tree(cycle_tree), compile_tree(qubits_tree)
    variables = {**times, "codeDistance": 3.0}
    alone = {"codeDistance": 3.0}
    for distance in range(3, max_distance + 1):
        variables["codeDistance"] = alone["codeDistance"] = float(distance)
        try:
            cycle = cycle_at(variables)
        except (ArithmeticError, LookupError, ValueError):
            cycle = cycle_time.evaluate(variables)
        if cycle <= 0:
            raise _bad(
                f"logicalCycleTime formula yields non-positive value for code distance = {distance}"
            )
        try:
            per_qubit = qubits_at(alone)
        except (ArithmeticError, LookupError, ValueError):
            per_qubit = qubits.evaluate(alone)
        if per_qubit <= 0:
            raise _bad(
                "physicalQubitsPerLogicalQubit formula yields non-positive value for code "
                f"distance = {distance}"
            )


def _positive(tree: ast.AST, ranges: Mapping[str, tuple[float, float]]) -> bool:
    """Whether a checked formula is positive wherever each variable lies in its range
    (``name -> (low, high)``, both positive), proven from the bounds of its value: a
    formula of positive numbers and variables joined by ``+``, ``*`` and ``/`` only.

    Sound in floating point: on positive operands each of these operations, correctly
    rounded, never decreases when an operand grows (or, for a divisor, shrinks). So the
    value is at least the low bound computed with the same operations, and a low bound
    that is positive (not rounded to 0) proves the value positive. Anything else (another
    operation, a function, a variable out of the ranges) proves nothing: False.
    """
    bounds = _bounds(tree.body if isinstance(tree, ast.Expression) else tree, ranges)
    return bounds is not None and bounds[0] > 0.0


def _bounds(node: ast.AST, ranges: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)  # type: ignore[arg-type]  # (an int or a float)
        return (value, value) if 0.0 < value < math.inf else None
    if isinstance(node, ast.Name):
        return ranges.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult, ast.Div)):
        left, right = _bounds(node.left, ranges), _bounds(node.right, ranges)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left[0] + right[0], left[1] + right[1]
        if isinstance(node.op, ast.Mult):
            return left[0] * right[0], left[1] * right[1]
        return left[0] / right[1], left[1] / right[0]
    return None


def echoed_power(data: Any) -> int | None:
    """What ``jobParams.qecScheme.distanceCoefficientPower`` echoes: QRE echoes null for a
    custom scheme that omits it, the value (0 by default) otherwise."""
    data = {} if data is None else data
    name = data.get("name", "surface_code")
    predefined = isinstance(name, str) and family_name(name) is not None
    if predefined or "distanceCoefficientPower" in data:
        return int(data.get("distanceCoefficientPower", 0))
    return None


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
    scheme: QecScheme
    #: what ``jobParams.qecScheme.distanceCoefficientPower`` echoes (see :func:`echoed_power`)
    echoed_power: int | None
    error_budget: Any
    constraints: Constraints
    units: tuple[UnitTemplate, ...]
    units_json: tuple[Any, ...]
    frontier: bool
    #: Warnings of a physics file the parameters came from (``CODE name: message``).
    notes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> JobParams:
        """Parse QRE job parameters (``{}`` or None: all defaults), or a physics file's
        keys in place of ``qubitParams`` and ``qecScheme`` (:func:`physics_params`).

        Raises:
            QECError: for any unknown field or bad value (see the parsers above).
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise _bad("estimate parameters must be a JSON object")
        notes: tuple[str, ...] = ()
        if set(data) & set(PHYSICS_KEYS):
            data, notes = physics_params(data)
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
        scheme = code_from_json(data.get("qecScheme"), qubit)
        units_json = data.get("distillationUnitSpecifications") or []
        if not isinstance(units_json, list):
            raise _bad("distillationUnitSpecifications must be a list")
        units = tuple(unit_from_json(u) for u in units_json) or default_units()
        kind = data.get("estimateType", "singlePoint")
        if kind not in ("singlePoint", "frontier"):
            raise _bad(f"estimateType must be 'singlePoint' or 'frontier', got {kind!r}")
        return cls(
            qubit=qubit,
            scheme=scheme,
            echoed_power=echoed_power(data.get("qecScheme")),
            error_budget=data.get("errorBudget", DEFAULT_ERROR_BUDGET),
            constraints=Constraints.from_json(data.get("constraints")),
            units=units,
            units_json=tuple(units_json),
            frontier=kind == "frontier",
            notes=notes,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "qecScheme": scheme_to_json(self.scheme, self.echoed_power),
            "errorBudget": self.error_budget,
            "qubitParams": qubit_to_json(self.qubit),
            "constraints": self.constraints.to_json(),
        }
        if self.units_json:
            out["distillationUnitSpecifications"] = list(self.units_json)
        out["estimateType"] = "frontier" if self.frontier else "singlePoint"
        return out


def physics_params(data: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """QRE job parameters of a physics file (:mod:`qmk.qec.physics`) and its warnings.

    Its ``qec_scheme`` and ``error_budget`` become ``qubitParams`` and ``qecScheme``.
    ``qubitParams`` is a custom set: the default qubit's instruction set, its times
    scaled to the logical cycle time, the budget's error rates. ``qecScheme`` is the
    family, with ``maxCodeDistance`` the file's ``code_distance``. The estimate takes the
    smallest distance up to it that meets the error budget, and is ``QC107`` when none
    does. Its ``decoder`` is checked as a
    run checks it. QRE's other keys (``errorBudget``, ``constraints``,
    ``distillationUnitSpecifications``, ``estimateType``) may stand beside them.

    Raises:
        QECError: ``QC103`` for ``qubitParams`` or ``qecScheme`` beside a physics file's
            keys; what :meth:`~qmk.qec.physics.PhysicsConfig.resolve` raises.
    """
    from qmk.qec.physics import PhysicsConfig

    clash = sorted({"qubitParams", "qecScheme"} & set(data))
    if clash:
        raise _bad(
            f"estimate parameters: {clash[0]} and a physics file's qec_scheme/error_budget "
            "both describe the machine: give one",
            field=clash[0],
        )
    config = PhysicsConfig.from_json({k: v for k, v in data.items() if k in PHYSICS_KEYS})
    resolved = config.resolve()
    family = config.profile.removeprefix("logical:").partition("(")[0]
    params = {k: v for k, v in data.items() if k not in PHYSICS_KEYS}
    params["qubitParams"] = qubit_to_json(resolved.effective_qubit)
    params["qecScheme"] = {"name": family, "maxCodeDistance": config.qec_scheme.code_distance}
    notes = tuple(f"{w['code']} {w['name']}: {w['message']}" for w in resolved.warnings)
    return params, notes


#: The keys of a physics file (:data:`qmk.qec.physics.KEYS`).
PHYSICS_KEYS: tuple[str, ...] = ("qec_scheme", "error_budget", "decoder")


def scheme_to_json(scheme: QecScheme, echoed_power: int | None) -> dict[str, Any]:
    """The scheme as QRE's ``jobParams.qecScheme`` echoes it."""
    return {
        "name": scheme.name or scheme.family,
        "errorCorrectionThreshold": scheme.error_correction_threshold,
        "crossingPrefactor": scheme.crossing_prefactor,
        "distanceCoefficientPower": echoed_power,
        "logicalCycleTime": scheme.logical_cycle_time.text,
        "physicalQubitsPerLogicalQubit": scheme.physical_qubits_per_logical_qubit.text,
        "maxCodeDistance": scheme.max_distance,
    }
