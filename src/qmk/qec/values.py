"""The QEC layer's plain values: a qubit technology, a fitted calibration, a column law.

:class:`QubitParams` and :class:`Calibration` travel as their JSON in a run request, a
job's policy and the kernel's ``[machine]`` table (the kernel process holds no QEC
value, docs/kernel.md); :func:`qubit_of` and :func:`calibration_of` make them values again
where the layer uses them. This module holds them, and what they need to check
themselves, without the layer's models: loading it loads no scheme, formula or noise
model. :mod:`qmk.qec.params`, :mod:`qmk.qec.codes` and :mod:`qmk.qec.logical`
export them as before.

>>> QubitParams.from_json({"name": "q", "instruction_set": "majorana",
...     "one_qubit_measurement_time": 100, "t_gate_time": 100,
...     "one_qubit_measurement_error_rate": 1e-4, "t_gate_error_rate": 0.05,
...     "idle_error_rate": 1e-4, "two_qubit_joint_measurement_time": 100,
...     "two_qubit_joint_measurement_error_rate": 1e-4}).physical_error_rate
0.0001
>>> law = ColumnLaw(prefactor=1.0, column_factor=2.0)
>>> Calibration(family="bacon_shor", law=law).law == law
True
"""

from __future__ import annotations

import contextvars
import json
import math
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.qec.errors import QECError
from qmk.qec.errors import bad_parameter as _bad
from qmk.qvm.profiles import FAMILIES, unknown_family

#: A qubit with one- and two-qubit gates and single-qubit measurements.
GATE_BASED = "gate_based"
#: A qubit whose native operations are single- and two-qubit (joint) measurements.
MAJORANA = "majorana"
#: The instruction sets, as QRE names them in its serialized formats (lower case here).
INSTRUCTION_SETS: tuple[str, ...] = (GATE_BASED, MAJORANA)

_GATE_ONLY = (
    "one_qubit_gate_time",
    "two_qubit_gate_time",
    "one_qubit_gate_error_rate",
    "two_qubit_gate_error_rate",
)
_MAJORANA_ONLY = (
    "two_qubit_joint_measurement_time",
    "two_qubit_joint_measurement_error_rate",
    "one_qubit_measurement_readout_error_rate",
    "two_qubit_joint_measurement_readout_error_rate",
)
_MAJORANA_REQUIRED = ("two_qubit_joint_measurement_time", "two_qubit_joint_measurement_error_rate")


#: A whole, positive number of nanoseconds.
_Time = Annotated[int, Meta(gt=0, description="ns")]
#: An error rate in the open interval (0, 1), QRE's rule.
_Rate = Annotated[float, Meta(gt=0, lt=1)]
#: A coherence time: a positive number of nanoseconds.
_Coherence = Annotated[float, Meta(gt=0, description="ns")]


#: Set while :func:`check_fields` decodes a copy, whose own ``__post_init__`` then skips it.
_CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar("qmk_check_fields", default=False)


def check_fields(value: msgspec.Struct, error: values.ErrorFactory) -> None:
    """Check a Struct built in Python against its own schema, as decoding it would.

    msgspec checks the types and ranges of what it decodes, not of what Python code
    passes to a constructor; a value's ``__post_init__`` calls this so both ways in
    obey one schema. It decodes the value's plain data once more (a few microseconds).

    Raises:
        QMKError: what ``error`` makes of the first field that does not fit.
    """
    if _CHECKING.get():
        return
    token = _CHECKING.set(True)
    try:
        data = values.to_builtins(value)
    except TypeError as exc:  # a field holds something no schema has (an object)
        raise error(f"{type(value).__name__}: {exc}", "") from None
    try:
        values.convert(data, type(value), error=error)
    finally:
        _CHECKING.reset(token)


class QubitParams(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A physical qubit technology: operation times in ns and error rates per operation.

    Gate-based qubits need the gate fields and must leave the Majorana fields
    at ``None``; Majorana qubits the other way round (as QRE refuses unknown
    fields for each instruction set). The JSON form (:meth:`to_json`,
    ``msgspec.to_builtins``) is the fields by name, those left at ``None`` omitted.

    Raises:
        QECError: ``QC103 bad-parameter`` for an unknown instruction set, a
            missing or misplaced field, a time that is not a positive integer,
            an error rate outside the open interval (0, 1) (QRE's rule), or
            coherence times that are not positive or violate T2 <= 2 T1.
    """

    name: str
    instruction_set: Annotated[str, Meta(extra_json_schema={"enum": list(INSTRUCTION_SETS)})]
    one_qubit_measurement_time: _Time
    t_gate_time: _Time
    one_qubit_measurement_error_rate: _Rate
    t_gate_error_rate: _Rate
    idle_error_rate: _Rate
    one_qubit_gate_time: _Time | None = None
    two_qubit_gate_time: _Time | None = None
    two_qubit_joint_measurement_time: _Time | None = None
    one_qubit_gate_error_rate: _Rate | None = None
    two_qubit_gate_error_rate: _Rate | None = None
    two_qubit_joint_measurement_error_rate: _Rate | None = None
    one_qubit_measurement_readout_error_rate: _Rate | None = None
    two_qubit_joint_measurement_readout_error_rate: _Rate | None = None
    t1_ns: _Coherence | None = None
    t2_ns: _Coherence | None = None

    def __post_init__(self) -> None:
        where = f"qubit parameters {self.name!r}"
        if self.instruction_set not in INSTRUCTION_SETS:
            raise _bad(
                f"{where}: instruction_set {self.instruction_set!r} is not one of "
                f"{', '.join(INSTRUCTION_SETS)}",
                field="instruction_set",
            )
        gate_based = self.instruction_set == GATE_BASED
        required = _GATE_ONLY if gate_based else _MAJORANA_REQUIRED
        forbidden = _MAJORANA_ONLY if gate_based else _GATE_ONLY
        for field in required:
            if getattr(self, field) is None:
                raise _bad(f"{where}: {self.instruction_set} qubits need {field}", field=field)
        for field in forbidden:
            if getattr(self, field) is not None:
                raise _bad(
                    f"{where}: {field} does not apply to {self.instruction_set} qubits",
                    field=field,
                )
        check_fields(self, lambda message, key: _bad(f"{where}: {message}", field=key))
        for field in ("t1_ns", "t2_ns"):
            if not math.isfinite(getattr(self, field) or 1.0):
                raise _bad(f"{where}: {field} must be a positive number of ns", field=field)
        if self.t1_ns is not None and self.t2_ns is not None and self.t2_ns > 2 * self.t1_ns:
            raise _bad(f"{where}: t2_ns (T2) may not exceed 2 t1_ns (2 T1)", field="t2_ns")

    @property
    def one_qubit_measurement_readout_rate(self) -> float:
        """The single-qubit measurement's readout error rate (its process rate unless set)."""
        if self.one_qubit_measurement_readout_error_rate is not None:
            return self.one_qubit_measurement_readout_error_rate
        return self.one_qubit_measurement_error_rate

    @property
    def two_qubit_joint_measurement_readout_rate(self) -> float | None:
        """The joint measurement's readout error rate (Majorana; its process rate unless set)."""
        if self.two_qubit_joint_measurement_readout_error_rate is not None:
            return self.two_qubit_joint_measurement_readout_error_rate
        return self.two_qubit_joint_measurement_error_rate

    @property
    def clifford_error_rate(self) -> float:
        """QRE's Clifford error rate (see the module docstring)."""
        if self.instruction_set == GATE_BASED:
            assert self.one_qubit_gate_error_rate is not None
            assert self.two_qubit_gate_error_rate is not None
            return max(
                self.one_qubit_gate_error_rate, self.two_qubit_gate_error_rate, self.idle_error_rate
            )
        assert self.two_qubit_joint_measurement_error_rate is not None
        return max(
            self.idle_error_rate,
            self.one_qubit_measurement_error_rate,
            self.two_qubit_joint_measurement_error_rate,
        )

    @property
    def readout_error_rate(self) -> float:
        """QRE's readout error rate (see the module docstring)."""
        if self.instruction_set == GATE_BASED:
            return self.one_qubit_measurement_error_rate
        joint = self.two_qubit_joint_measurement_readout_rate
        assert joint is not None
        return max(self.one_qubit_measurement_readout_rate, joint)

    @property
    def physical_error_rate(self) -> float:
        """The rate p of the QEC formula: ``max(clifford_error_rate, readout_error_rate)``."""
        return max(self.clifford_error_rate, self.readout_error_rate)

    def time_variables(self) -> dict[str, float]:
        """The operation times by the names QRE formulas use (``twoQubitGateTime``, ...).

        Only the times this instruction set has are present, as in QRE.

        >>> from qmk.qec.params import qubit_params
        >>> sorted(qubit_params("qubit_maj_ns_e4").time_variables())
        ['oneQubitMeasurementTime', 'tGateTime', 'twoQubitJointMeasurementTime']
        """
        names = {
            "oneQubitMeasurementTime": self.one_qubit_measurement_time,
            "oneQubitGateTime": self.one_qubit_gate_time,
            "twoQubitGateTime": self.two_qubit_gate_time,
            "twoQubitJointMeasurementTime": self.two_qubit_joint_measurement_time,
            "tGateTime": self.t_gate_time,
        }
        return {key: float(value) for key, value in names.items() if value is not None}

    def replace(self, **changes: Any) -> QubitParams:
        """A copy with ``changes`` applied and checked again."""
        return msgspec.structs.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The parameters as plain JSON (fields left at None are omitted).

        >>> from qmk.qec.params import QUBIT_PARAMS
        >>> QubitParams.from_json(QUBIT_PARAMS["qubit_maj_ns_e4"].to_json()).name
        'qubit_maj_ns_e4'
        """
        data: dict[str, Any] = values.to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QubitParams:
        """Parameters from :meth:`to_json`'s form.

        Raises:
            QECError: ``QC103 bad-parameter`` for an unknown or missing field or a bad value.
        """
        return values.convert(
            data, cls, error=lambda message, key: _bad(f"qubit parameters: {message}", field=key)
        )


#: Every error-rate field of :class:`QubitParams` (the fields a drift scales).
_RATES = tuple(name for name in QubitParams.__struct_fields__ if name.endswith("_error_rate"))


class ColumnLaw(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bacon-Shor's logical error per logical cycle as its circuits show it (no threshold).

        P_L(p, d) = A * C(d, k) * (c * d * p) ** k * exp(-b * d * p),   k = (d + 1) // 2

    A memory of the d x d Bacon-Shor code is a repetition code over its d columns.
    A column flips when an odd number of its d qubits do, so its flip rate grows
    as ``c d p``. The code fails when a majority ``k`` of the columns flip
    (``C(d, k)`` ways). ``exp(-b d p)`` is the measured bend below that leading
    term at larger ``d p``. Unlike the QRE form there is no threshold: at any
    ``p`` one distance (:meth:`best_distance`) has the lowest rate, and larger
    codes are worse. ``qmk qec calibrate --code bacon_shor`` fits ``A, c, b``
    to stim memory experiments (:func:`qmk.experiments.bacon_shor.fit_column_law`).

    >>> from qmk.qec.codes import BACON_SHOR_CIRCUIT_LAW as law
    >>> f"{law.rate(1e-3, 7):.2e}", law.best_distance(1e-3, 51)
    ('3.43e-03', 7)

    Attributes:
        prefactor: ``A``.
        column_factor: ``c``.
        damping: ``b`` (0: the leading term alone).
        source: where the values come from.
    """

    prefactor: Annotated[float, Meta(gt=0)]
    column_factor: Annotated[float, Meta(gt=0)]
    damping: Annotated[float, Meta(ge=0)] = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        check_fields(self, _law_error)
        for name in ("prefactor", "column_factor", "damping"):
            if not math.isfinite(getattr(self, name)):
                raise _law_error(f"{name} must be finite", name)

    def rate(self, p: float, distance: int) -> float:
        """``P_L`` per logical cycle at physical error rate ``p`` (capped at 1/2).

        Past ``d p = k / b``, where the bend would turn the rate down as ``p`` grows,
        the law no longer describes the code (it was fitted where ``P_L <= 5%``): the
        rate there is 1/2, a code that has failed.
        """
        if p <= 0:
            return 0.0
        k = (distance + 1) // 2
        if self.damping * distance * p >= k:
            return 0.5
        log_rate = (
            math.log(self.prefactor)
            + math.log(math.comb(distance, k))
            + k * math.log(self.column_factor * distance * p)
            - self.damping * distance * p
        )
        return 0.5 if log_rate >= math.log(0.5) else math.exp(log_rate)

    def best_distance(self, p: float, max_distance: int) -> int:
        """The odd distance in ``[3, max_distance]`` with the lowest rate at ``p``."""
        return min(range(3, max(3, max_distance) + 1, 2), key=lambda d: (self.rate(p, d), d))


def _law_error(message: str, key: str) -> QECError:
    return QECError.of("bad-parameter", f"Bacon-Shor column law: {message}", key=key)


#: The ``kind`` tag of a calibration JSON file.
CALIBRATION_KIND = "qmk.qec.calibration"


class Calibration(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag=CALIBRATION_KIND,
):
    """Fitted values that replace a scheme's (a, p*), or a Bacon-Shor law that replaces
    its threshold formula.

    ``qmk qec calibrate`` writes one as JSON (:meth:`to_json`, which is
    ``msgspec.to_builtins`` of it: ``kind`` and ``version`` first); a
    :func:`logical_model` given it uses ``a = crossing_prefactor`` and ``p* =
    error_correction_threshold`` for profiles of ``family`` on qubits of
    ``instruction_set``, and the scheme's values for every other profile. A
    calibration with a ``law`` (:class:`~qmk.qec.codes.ColumnLaw`, Bacon-Shor
    only) gives those profiles the law's rate instead; its (a, p*) may be left out.

    Raises:
        QECError: ``QC102`` for an unknown family, ``QC103`` for values out of range
            (a in (0, 0.5] and p* in (0, 1), as a scheme requires), for neither (a, p*)
            nor a law, or for a law on a family other than bacon_shor.
    """

    version: Literal[1] = 1
    family: str
    instruction_set: Annotated[str, Meta(extra_json_schema={"enum": list(INSTRUCTION_SETS)})] = (
        GATE_BASED
    )
    crossing_prefactor: Annotated[float, Meta(gt=0, le=0.5)] | None = None
    error_correction_threshold: Annotated[float, Meta(gt=0, lt=1)] | None = None
    crossing_prefactor_sigma: Annotated[float, Meta(ge=0)] | None = None
    error_correction_threshold_sigma: Annotated[float, Meta(ge=0)] | None = None
    law: ColumnLaw | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise QECError.of(
                "unknown-profile",
                f"calibration: {unknown_family(self.family)}",
            )
        if self.instruction_set not in INSTRUCTION_SETS:
            raise QECError.of(
                "bad-parameter", f"calibration: unknown instruction set {self.instruction_set!r}"
            )
        check_fields(self, _calibration_error)
        for name in ("crossing_prefactor_sigma", "error_correction_threshold_sigma"):
            if not math.isfinite(getattr(self, name) or 0.0):
                raise _calibration_error(f"{name} must be finite", name)
        pair = (self.crossing_prefactor, self.error_correction_threshold)
        if self.law is None and None in pair:
            raise _calibration_error(
                "give crossing_prefactor and error_correction_threshold (or a law)",
                "crossing_prefactor" if pair[0] is None else "error_correction_threshold",
            )
        if self.law is not None and self.family != "bacon_shor":
            raise _calibration_error(
                f"a column law is Bacon-Shor's; {self.family} takes (a, p*)", "law"
            )

    def to_json(self) -> dict[str, Any]:
        """The calibration as plain JSON (the file ``qmk qec calibrate`` writes)."""
        data: dict[str, Any] = values.to_builtins(self)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        """A calibration from :meth:`to_json`'s form (extra ``fit`` details are ignored).

        Raises:
            QECError: ``QC103`` for a wrong ``kind``, an unknown or missing key or a bad value.
        """
        if not isinstance(data, Mapping) or data.get("kind") != CALIBRATION_KIND:
            raise QECError.of(
                "bad-parameter",
                f"calibration: expected a JSON object with kind {CALIBRATION_KIND!r}",
            )
        fitted = {key: value for key, value in data.items() if key != "fit"}
        return values.convert(fitted, cls, error=_calibration_error)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read a calibration JSON file.

        Raises:
            QECError: ``QC103`` when the file cannot be read or is not a calibration.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise QECError.of("bad-parameter", f"calibration file {str(path)!r}: {exc}") from None
        return cls.from_json(data)


def _calibration_error(message: str, key: str) -> QECError:
    return QECError.of("bad-parameter", f"calibration: {message}", key=key)


#: The noise models a text spec may name (:data:`qmk.defaults.NOISE_MODEL_NAMES`).
NOISE_MODEL_NAMES: tuple[str, ...] = defaults.NOISE_MODEL_NAMES


def qubit_of(qubit: str | QubitParams | Mapping[str, Any]) -> str | QubitParams:
    """A run's qubit as the QEC layer takes it: a set's name as is, custom parameters
    made a value again from the JSON a run request and the kernel carry them as.

    Raises:
        QECError: ``QC103 bad-parameter`` for JSON that is no qubit parameters.
    """
    if isinstance(qubit, str | QubitParams):
        return qubit
    return QubitParams.from_json(qubit)


def calibration_of(calibration: Calibration | Mapping[str, Any] | None) -> Calibration | None:
    """A run's calibration as the QEC layer takes it: made a value again from the JSON a
    run request and the kernel carry it as (None: none).

    Raises:
        QECError: ``QC103 bad-parameter`` for JSON that is no calibration.
    """
    if calibration is None or isinstance(calibration, Calibration):
        return calibration
    return Calibration.from_json(calibration)


__all__ = [
    "CALIBRATION_KIND",
    "GATE_BASED",
    "INSTRUCTION_SETS",
    "MAJORANA",
    "NOISE_MODEL_NAMES",
    "Calibration",
    "ColumnLaw",
    "QubitParams",
    "calibration_of",
    "check_fields",
    "qubit_of",
]
