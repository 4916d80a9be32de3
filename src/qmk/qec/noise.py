"""Physical error models: what error rates the physical operations have.

A noise model is a small frozen value with one method, ``apply(qubit)``, that
returns the qubit parameters with its error rates in place of the qubit's own.
The QEC formula then reads ``physical_error_rate`` from the result, by QRE's
rule (see :mod:`qmk.qec.params`). With no noise model (``None``, the default
everywhere) a qubit keeps the rates of its QRE parameter set.

- :class:`Depolarizing` gives every physical operation the same error rate p.
- :class:`GateNoise` sets gate error rates (gate-based qubits).
- :class:`MeasurementNoise` sets measurement process and readout error rates.
- :class:`IdleNoise` derives the idle error rate from T1 and T2.
- :class:`Drift` multiplies every error rate by a factor (calibration drift).
- :class:`NoiseStack` applies several models in order.

>>> from qmk.qec.params import qubit_params
>>> q = qubit_params("qubit_gate_ns_e4")
>>> physical_error_rate(q), physical_error_rate(q, Depolarizing(p=2e-3))
(0.0001, 0.002)
>>> physical_error_rate(q, MeasurementNoise(process=5e-4))
0.0005
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qmk.qec.errors import QECError
from qmk.qec.values import _RATES, GATE_BASED, NOISE_MODEL_NAMES, QubitParams


@runtime_checkable
class NoiseModel(Protocol):
    """Anything that maps qubit parameters to qubit parameters with other error rates."""

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit parameters with this model's error rates."""
        ...


def physical_error_rate(qubit: QubitParams, noise: NoiseModel | None = None) -> float:
    """The rate p of the QEC formula for ``qubit`` under ``noise`` (None: its own rates)."""
    return (qubit if noise is None else noise.apply(qubit)).physical_error_rate


def _rate(name: str, value: float | None) -> None:
    if value is not None and not (
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1
    ):
        raise QECError.of(
            "bad-parameter", f"{name} must lie strictly between 0 and 1, got {value!r}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Depolarizing:
    """Uniform circuit-level noise: every physical operation fails with probability ``p``.

    Sets the gate, T-gate, idle and measurement (process and readout) error
    rates the qubit's instruction set has to ``p``.
    """

    p: float

    def __post_init__(self) -> None:
        _rate("Depolarizing.p", self.p)

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit with every error rate equal to ``p``."""
        changes: dict[str, Any] = {
            "one_qubit_measurement_error_rate": self.p,
            "t_gate_error_rate": self.p,
            "idle_error_rate": self.p,
        }
        if qubit.instruction_set == GATE_BASED:
            changes |= {"one_qubit_gate_error_rate": self.p, "two_qubit_gate_error_rate": self.p}
        else:
            changes |= {
                "one_qubit_measurement_readout_error_rate": self.p,
                "two_qubit_joint_measurement_error_rate": self.p,
                "two_qubit_joint_measurement_readout_error_rate": self.p,
            }
        return qubit.replace(**changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateNoise:
    """Gate error rates of a gate-based qubit; a field left at None keeps the qubit's rate."""

    one_qubit: float | None = None
    two_qubit: float | None = None
    t_gate: float | None = None

    def __post_init__(self) -> None:
        _rate("GateNoise.one_qubit", self.one_qubit)
        _rate("GateNoise.two_qubit", self.two_qubit)
        _rate("GateNoise.t_gate", self.t_gate)

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit with these gate error rates.

        Raises:
            QECError: ``QC103 bad-parameter`` for a Majorana qubit with a
                one- or two-qubit rate (its Clifford operations are measurements).
        """
        if qubit.instruction_set != GATE_BASED and (
            self.one_qubit is not None or self.two_qubit is not None
        ):
            raise QECError.of(
                "bad-parameter",
                f"GateNoise sets gate error rates, but {qubit.name!r} is a "
                f"{qubit.instruction_set} qubit; use MeasurementNoise",
            )
        changes: dict[str, Any] = {}
        if self.one_qubit is not None:
            changes["one_qubit_gate_error_rate"] = self.one_qubit
        if self.two_qubit is not None:
            changes["two_qubit_gate_error_rate"] = self.two_qubit
        if self.t_gate is not None:
            changes["t_gate_error_rate"] = self.t_gate
        return qubit.replace(**changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasurementNoise:
    """Measurement error rates: ``process`` (error left on the qubits) and ``readout``.

    On a gate-based qubit QRE has one measurement rate: ``process`` sets it and
    ``readout`` must be None. On a Majorana qubit both the single-qubit and the
    two-qubit joint measurement take these rates. None keeps the qubit's rate.
    """

    process: float | None = None
    readout: float | None = None

    def __post_init__(self) -> None:
        _rate("MeasurementNoise.process", self.process)
        _rate("MeasurementNoise.readout", self.readout)

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit with these measurement error rates.

        Raises:
            QECError: ``QC103 bad-parameter`` for ``readout`` on a gate-based qubit.
        """
        changes: dict[str, Any] = {}
        if qubit.instruction_set == GATE_BASED:
            if self.readout is not None:
                raise QECError.of(
                    "bad-parameter",
                    "gate-based qubits have one measurement error rate; set process only",
                )
            if self.process is not None:
                changes["one_qubit_measurement_error_rate"] = self.process
            return qubit.replace(**changes)
        if self.process is not None:
            changes["one_qubit_measurement_error_rate"] = self.process
            changes["two_qubit_joint_measurement_error_rate"] = self.process
        if self.readout is not None:
            changes["one_qubit_measurement_readout_error_rate"] = self.readout
            changes["two_qubit_joint_measurement_readout_error_rate"] = self.readout
        return qubit.replace(**changes)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleNoise:
    """The idle error rate from amplitude damping (T1) and dephasing (T2).

    An idle step of ``step_ns`` becomes the Pauli channel of the Pauli-twirl
    approximation (Ghosh, Fowler, Geller, PRA 86, 062318 (2012), arXiv:1210.5799):

        px = py = (1 - exp(-t/T1)) / 4,  pz = (1 - exp(-t/T2)) / 2 - (1 - exp(-t/T1)) / 4

    and the idle error rate is their sum. T1/T2 left at None come from the
    qubit's ``t1_ns``/``t2_ns``. ``step_ns`` left at None is the qubit's longest
    Clifford-cycle operation: the longest of its one-qubit gate, two-qubit gate
    and measurement times (gate-based), or of its measurement and joint
    measurement times (Majorana) -- the longest a qubit waits for a neighbour.

    ``rate`` sets the idle error rate itself instead (QRE's ``idleErrorRate``; as a
    Pauli channel, a third each of X, Y and Z); it takes no T1, T2 or step.

    >>> from qmk.qec.params import qubit_params
    >>> noise = IdleNoise(t1_ns=100_000, t2_ns=100_000)
    >>> round(noise.apply(qubit_params("qubit_gate_ns_e4")).idle_error_rate, 8)
    0.00074963
    >>> IdleNoise(rate=2e-4).apply(qubit_params("qubit_gate_ns_e4")).idle_error_rate
    0.0002
    """

    t1_ns: float | None = None
    t2_ns: float | None = None
    step_ns: float | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        for name in ("t1_ns", "t2_ns", "step_ns"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            ):
                raise QECError.of("bad-parameter", f"IdleNoise.{name} must be positive ns")
        _rate("IdleNoise.rate", self.rate)
        if self.rate is not None and (self.t1_ns, self.t2_ns, self.step_ns) != (None,) * 3:
            raise QECError.of(
                "bad-parameter",
                "IdleNoise takes an idle error rate or T1/T2 (and a step), not both",
            )

    def pauli(self, qubit: QubitParams) -> tuple[float, float, float]:
        """``(px, py, pz)`` of one idle step of ``qubit``.

        Raises:
            QECError: ``QC103 bad-parameter`` when T1 or T2 is known from neither
                this model nor the qubit, or T2 > 2 T1.
        """
        if self.rate is not None:
            return self.rate / 3, self.rate / 3, self.rate / 3
        t1 = self.t1_ns if self.t1_ns is not None else qubit.t1_ns
        t2 = self.t2_ns if self.t2_ns is not None else qubit.t2_ns
        if t1 is None or t2 is None:
            raise QECError.of(
                "bad-parameter",
                f"IdleNoise needs T1 and T2: give t1_ns/t2_ns, or qubit parameters "
                f"{qubit.name!r} with t1_ns/t2_ns",
            )
        if t2 > 2 * t1:
            raise QECError.of("bad-parameter", f"IdleNoise: T2 = {t2} ns exceeds 2 T1 = {2 * t1}")
        step = self.step_ns if self.step_ns is not None else default_idle_step_ns(qubit)
        damp = -math.expm1(-step / t1)
        dephase = -math.expm1(-step / t2)
        px = py = damp / 4
        pz = dephase / 2 - damp / 4
        return px, py, pz

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit with the idle error rate of one idle step."""
        if self.rate is not None:
            return qubit.replace(idle_error_rate=self.rate)
        rate = sum(self.pauli(qubit))
        if not 0 < rate < 1:
            raise QECError.of("bad-parameter", f"IdleNoise: idle error rate {rate!r} not in (0, 1)")
        return qubit.replace(idle_error_rate=rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """Calibration drift: every error rate of the qubit multiplied by ``factor``.

    The kernel's fault injection (``[faults] drift_per_epoch``, docs/kernel.md) stacks it
    after the machine's own noise model, so drifted rates reach the logical model.

    >>> from qmk.qec.params import qubit_params
    >>> Drift(factor=2.5).apply(qubit_params("qubit_gate_ns_e3")).physical_error_rate
    0.0025

    Raises:
        QECError: ``QC103 bad-parameter`` for a factor that is not a finite number > 0,
            or (from :meth:`apply`) one that takes a rate to 1 or above.
    """

    factor: float

    def __post_init__(self) -> None:
        if (
            isinstance(self.factor, bool)
            or not isinstance(self.factor, (int, float))
            or not math.isfinite(self.factor)
            or self.factor <= 0
        ):
            raise QECError.of("bad-parameter", f"Drift.factor must be > 0, got {self.factor!r}")

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit with every error rate it has multiplied by ``factor``."""
        changes = {
            name: rate * self.factor
            for name in _RATES  # every error-rate field of QubitParams
            if (rate := getattr(qubit, name)) is not None
        }
        for name, rate in changes.items():
            if rate >= 1:
                raise QECError.of(
                    "bad-parameter",
                    f"drift factor {self.factor:g} takes {qubit.name!r} {name} to {rate:g} (>= 1)",
                )
        return qubit.replace(**changes)


def default_idle_step_ns(qubit: QubitParams) -> float:
    """The idle step :class:`IdleNoise` assumes when none is given (see there)."""
    times = [
        qubit.one_qubit_measurement_time,
        qubit.one_qubit_gate_time,
        qubit.two_qubit_gate_time,
        qubit.two_qubit_joint_measurement_time,
    ]
    return float(max(time for time in times if time is not None))


@dataclass(frozen=True, slots=True)
class NoiseStack:
    """Several noise models applied in order (a later model overrides an earlier one).

    >>> from qmk.qec.params import qubit_params
    >>> stack = NoiseStack((Depolarizing(p=1e-3), GateNoise(two_qubit=4e-3)))
    >>> stack.apply(qubit_params("qubit_gate_ns_e4")).physical_error_rate
    0.004
    """

    models: tuple[NoiseModel, ...]

    def apply(self, qubit: QubitParams) -> QubitParams:
        """The qubit after every model, first to last."""
        for model in self.models:
            qubit = model.apply(qubit)
        return qubit


#: The noise models a text spec may name, by name (see :func:`parse_noise_model`); the
#: names are :data:`qmk.qec.values.NOISE_MODEL_NAMES`, which the kernel's config loads alone.
NOISE_MODELS: dict[str, type] = dict(
    zip(
        NOISE_MODEL_NAMES,
        (Depolarizing, GateNoise, MeasurementNoise, IdleNoise, Drift),
        strict=True,
    )
)


def parse_noise_model(text: str) -> NoiseModel:
    """A noise model from text: ``NAME(key=value, ...)``, several joined by ``+`` (a stack,
    applied left to right). Names: :data:`NOISE_MODELS`; keys: the model's fields.

    >>> parse_noise_model("depolarizing(p=0.009)")
    Depolarizing(p=0.009)
    >>> parse_noise_model("depolarizing(p=1e-3) + gate(two_qubit=4e-3)").models[1]
    GateNoise(one_qubit=None, two_qubit=0.004, t_gate=None)
    >>> parse_noise_model("thermal(p=0.1)")
    Traceback (most recent call last):
    ...
    qmk.qec.errors.QECError: QC103 bad-parameter: noise model 'thermal(p=0.1)': unknown model \
'thermal'; known: depolarizing, gate, measurement, idle, drift

    Raises:
        QECError: ``QC103 bad-parameter`` naming the part that is wrong.
    """
    import dataclasses
    import re

    models: list[NoiseModel] = []
    for part in str(text).split("+"):
        match = re.fullmatch(r"\s*([a-z_]+)\s*\((.*)\)\s*", part)
        if match is None:
            raise QECError.of(
                "bad-parameter",
                f"noise model {part.strip()!r}: write NAME(key=value, ...), e.g. "
                "depolarizing(p=0.001)",
            )
        name, body = match.groups()
        cls = NOISE_MODELS.get(name)
        if cls is None:
            raise QECError.of(
                "bad-parameter",
                f"noise model {part.strip()!r}: unknown model {name!r}; known: "
                f"{', '.join(NOISE_MODELS)}",
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, float] = {}
        for item in filter(None, (piece.strip() for piece in body.split(","))):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in fields:
                raise QECError.of(
                    "bad-parameter",
                    f"noise model {part.strip()!r}: {item!r} is not key=value with a key of "
                    f"{', '.join(sorted(fields))}",
                )
            try:
                values[key] = float(value)
            except ValueError:
                raise QECError.of(
                    "bad-parameter",
                    f"noise model {part.strip()!r}: {key}={value.strip()!r} is not a number",
                ) from None
        try:
            models.append(cls(**values))
        except TypeError as exc:
            raise QECError.of("bad-parameter", f"noise model {part.strip()!r}: {exc}") from None
    return models[0] if len(models) == 1 else NoiseStack(tuple(models))


def describe_noise_model(model: NoiseModel) -> str:
    """The text :func:`parse_noise_model` reads back to an equal model (for telemetry).

    >>> describe_noise_model(parse_noise_model("depolarizing(p=0.009) + idle(t1_ns=1e5)"))
    'depolarizing(p=0.009) + idle(t1_ns=100000.0)'
    """
    import dataclasses

    if isinstance(model, NoiseStack):
        return " + ".join(describe_noise_model(m) for m in model.models)
    names = {cls: name for name, cls in NOISE_MODELS.items()}
    name = names.get(type(model))
    if name is None:
        return repr(model)
    value: Any = model  # one of the dataclasses of NOISE_MODELS
    args = ", ".join(
        f"{f.name}={getattr(model, f.name)!r}"
        for f in dataclasses.fields(value)
        if getattr(model, f.name) is not None
    )
    return f"{name}({args})"
