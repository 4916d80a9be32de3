"""Physical qubit parameters: the six predefined sets of the Azure Quantum Resource Estimator.

A :class:`QubitParams` describes a physical qubit technology by its operation
times (integer nanoseconds) and error rates. The six sets in
:data:`QUBIT_PARAMS` copy the Azure Quantum Resource Estimator (QRE) exactly:
the values are those of ``GateBasedPhysicalQubit::qubit_gate_*`` and
``MajoranaQubit::qubit_maj_*`` in ``source/resource_estimator/src/system/modeling/
physical_qubit.rs`` of microsoft/qsharp, as documented at
https://learn.microsoft.com/azure/quantum/overview-resources-estimator.

There are two instruction sets. A ``gate_based`` qubit has one- and two-qubit
gates and single-qubit measurement; a ``majorana`` qubit has single-qubit and
two-qubit joint measurements, whose error rates QRE splits into a *process*
part (the error the measurement leaves on the qubits) and a *readout* part (a
wrong outcome). Here the ``*_measurement_error_rate`` fields are the process
rates and ``*_readout_error_rate`` the readout rates; a readout rate left at
``None`` equals its process rate (QRE's ``"simple"`` form).

The rate the QEC formula uses is :attr:`QubitParams.physical_error_rate`:
QRE's ``max(clifford_error_rate, readout_error_rate)``. For gate-based qubits, the
Clifford rate is the largest of the one-qubit gate, two-qubit gate and idle rates, and
the readout rate is the measurement rate. For Majorana qubits the Clifford rate is the
largest of the idle and the two measurement *process* rates, and the readout rate the
larger of the two *readout* rates.
The T-gate rate never enters it (T states come from distillation).

``t1_ns`` and ``t2_ns`` are optional coherence times. QRE does not use them;
:class:`qmk.qec.noise.IdleNoise` turns them into an idle error rate.

>>> q = qubit_params("qubit_gate_ns_e3")
>>> q.two_qubit_gate_time, q.one_qubit_measurement_time, q.physical_error_rate
(50, 100, 0.001)
>>> qubit_params("qubit_maj_ns_e6").physical_error_rate
1e-06
>>> qubit_params("qubit_gate_ns_e5")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC101 unknown-qubit-params: no qubit parameter set 'qubit_gate_ns_e5'; ...
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from qmk import values
from qmk.qec.errors import QECError

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


def _bad(message: str, **details: Any) -> QECError:
    return QECError.of("bad-parameter", message, **details)


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


def _gate_based(
    name: str, *, time: int, rate: float, t_rate: float, measure_time: int = 100
) -> QubitParams:
    return QubitParams(
        name=name,
        instruction_set=GATE_BASED,
        one_qubit_measurement_time=measure_time,
        one_qubit_gate_time=time,
        two_qubit_gate_time=time,
        t_gate_time=time,
        one_qubit_measurement_error_rate=rate,
        one_qubit_gate_error_rate=rate,
        two_qubit_gate_error_rate=rate,
        t_gate_error_rate=t_rate,
        idle_error_rate=rate,
    )


def _majorana(name: str, *, rate: float, t_rate: float) -> QubitParams:
    return QubitParams(
        name=name,
        instruction_set=MAJORANA,
        one_qubit_measurement_time=100,
        two_qubit_joint_measurement_time=100,
        t_gate_time=100,
        one_qubit_measurement_error_rate=rate,
        one_qubit_measurement_readout_error_rate=rate,
        two_qubit_joint_measurement_error_rate=rate,
        two_qubit_joint_measurement_readout_error_rate=rate,
        t_gate_error_rate=t_rate,
        idle_error_rate=rate,
    )


#: The six predefined qubit parameter sets of QRE, by name, exactly as QRE defines them.
#: ``ns``/``us``: operation times in nanoseconds/microseconds; ``e3``/``e4``/``e6``: Clifford
#: and measurement error rates of 1e-3/1e-4/1e-6.
QUBIT_PARAMS: Mapping[str, QubitParams] = MappingProxyType(
    {
        params.name: params
        for params in (
            _gate_based("qubit_gate_ns_e3", time=50, rate=1e-3, t_rate=1e-3),
            _gate_based("qubit_gate_ns_e4", time=50, rate=1e-4, t_rate=1e-4),
            _gate_based(
                "qubit_gate_us_e3", time=100_000, rate=1e-3, t_rate=1e-6, measure_time=100_000
            ),
            _gate_based(
                "qubit_gate_us_e4", time=100_000, rate=1e-4, t_rate=1e-6, measure_time=100_000
            ),
            _majorana("qubit_maj_ns_e4", rate=1e-4, t_rate=0.05),
            _majorana("qubit_maj_ns_e6", rate=1e-6, t_rate=0.01),
        )
    }
)


def qubit_params(name: str | QubitParams) -> QubitParams:
    """The predefined qubit parameter set called ``name`` (a QubitParams passes through).

    Args:
        name: a key of :data:`QUBIT_PARAMS`, e.g. ``"qubit_gate_ns_e3"``.

    Returns:
        The parameter set.

    Raises:
        QECError: ``QC101 unknown-qubit-params`` when no set has that name.
    """
    if isinstance(name, QubitParams):
        return name
    params = QUBIT_PARAMS.get(name) if isinstance(name, str) else None
    if params is None:
        raise QECError.of(
            "unknown-qubit-params",
            f"no qubit parameter set {name!r}; known: {', '.join(QUBIT_PARAMS)}",
            name=str(name),
        )
    return params
