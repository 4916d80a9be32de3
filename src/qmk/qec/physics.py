"""A machine's physics in one JSON file: its code, physical error rates and decoder.

The original QMK design describes the logical machine in one "Azure QRE-compatible"
file of three parts, which :class:`PhysicsConfig` reads (``qmk run --physics FILE``,
``qmk.run(physics=...)``, ``qmk estimate --params FILE``, ``qmk qec threshold
--physics FILE``; ``qmk schema --kind physics`` prints its JSON Schema):

.. code-block:: json

    {"qec_scheme": {"code_family": "surface_code", "code_distance": 9,
                    "logical_cycle_time_us": 1.0, "physical_qubit_count": 162},
     "error_budget": {"physical_gate_error_rate": 1e-3, "measurement_error_rate": 1e-2,
                      "idle_error_rate": 1e-4, "t1_us": 100, "t2_us": 80},
     "decoder": {"type": "MWPM", "max_syndrome_weight": 10, "cycle_time_us": 0.1}}

:meth:`PhysicsConfig.resolve` turns it into what a run takes (:class:`Resolved`). That
is the code profile and the physical qubit (its operation times set so the code's
logical cycle takes ``logical_cycle_time_us``). It is the noise model of its error
rates, the logical model they make and the decoder's load. It carries warnings for
what is only approximated or has no effect. Every key means something, and what QMK
cannot honour is a coded error:

- ``qec_scheme``: ``code_family`` and ``code_distance`` are the profile
  (``logical:surface_code(d=9)``). ``logical_cycle_time_us`` sets the qubit's timing. The
  operation times of the base qubit set (``qubit_gate_ns_e3`` unless the run names
  another) are scaled by one factor and rounded to whole ns (QRE's unit), so the family's
  cycle formula gives the nearest cycle time. A difference is warning ``QC132``, one over
  :data:`CYCLE_TOLERANCE` an error ``QC103`` naming both. ``physical_qubit_count`` is
  checked against the family's qubits per logical qubit at that distance (``QC103``
  naming both).
- ``error_budget``: the physical rates become a noise model (:mod:`qmk.qec.noise`):
  ``physical_gate_error_rate`` every gate's rate (one-, two-qubit and T), ``measurement_
  error_rate`` the measurement's, ``idle_error_rate`` the idle rate. ``t1_us``/``t2_us``
  are the qubit's coherence times; without ``idle_error_rate`` they give the idle rate
  (:class:`~qmk.qec.noise.IdleNoise` over the qubit's idle step); with it, the rate given
  wins and, where the two differ by over 1%, warning ``QC133`` says what T1/T2 would give.
- ``decoder``: ``type`` is ``MWPM`` (minimum-weight perfect matching: what the threshold
  formula's (a, p*) describe and what the memory experiments decode with, pymatching);
  any other is ``QC112``. ``cycle_time_us`` is the decoder's time per syndrome round: it
  must keep up with the rounds (at most the cycle time over the rounds per cycle), else
  ``QC113`` with both figures. ``max_syndrome_weight``: a memory experiment's decoder
  gives up on a shot with more detection events (``qmk qec threshold --physics``,
  counted as a logical error); a run's logical error rates are the threshold formula's,
  a decoder with no such limit, which warning ``QC133`` says.

>>> plan = PhysicsConfig.from_json({
...     "qec_scheme": {"code_family": "surface_code", "code_distance": 9,
...                    "logical_cycle_time_us": 1.0, "physical_qubit_count": 162},
...     "error_budget": {"physical_gate_error_rate": 1e-3, "measurement_error_rate": 1e-2,
...                      "idle_error_rate": 1e-4, "t1_us": 100, "t2_us": 80},
...     "decoder": {"type": "MWPM", "max_syndrome_weight": 10, "cycle_time_us": 0.1}})
>>> resolved = plan.resolve()
>>> resolved.profile, resolved.model.cycle_time_ns, resolved.model.logical_error_per_cycle
('logical:surface_code(d=9)', 1008, 0.03)
>>> for part in resolved.noise_model.split(" + "):
...     print(part)
gate(one_qubit=0.001, two_qubit=0.001, t_gate=0.001)
measurement(process=0.01)
idle(rate=0.0001)
>>> [w["code"] for w in resolved.warnings]
['QC132', 'QC133', 'QC133']
>>> PhysicsConfig.from_json({"qec_scheme": {"code_family": "surface_code", "code_distance": 9},
...                          "decoder": {"type": "UF"}}).resolve()
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC112 unknown-decoder: decoder.type 'UF': QMK models MWPM only
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.errors import warning
from qmk.qec.codes import QecScheme, scheme_for
from qmk.qec.errors import QECError
from qmk.qec.logical import LogicalModel, logical_model
from qmk.qec.noise import (
    GateNoise,
    IdleNoise,
    MeasurementNoise,
    NoiseModel,
    NoiseStack,
    describe_noise_model,
)
from qmk.qec.params import GATE_BASED, QubitParams, qubit_params
from qmk.qvm.profiles import family_name, unknown_family

#: The largest relative difference between the logical cycle time a physics file asks
#: and the one whole-ns operation times make, accepted with warning ``QC132``.
CYCLE_TOLERANCE = 0.01
#: The largest relative difference between ``idle_error_rate`` and what T1/T2 give over
#: the idle step left without a word (beyond it: warning ``QC133``).
IDLE_AGREEMENT = 0.01
#: The decoder types QMK models (``decoder.type``, any case).
DECODERS: tuple[str, ...] = ("MWPM",)

#: An error rate: QRE's open interval (0, 1).
_Rate = Annotated[float, Meta(gt=0, lt=1)]
#: A time in microseconds: positive, at most 1000 s.
_Micros = Annotated[float, Meta(gt=0, le=1e9)]

#: A qubit's time fields by the names QRE's formulas give them.
_TIME_FIELDS = {
    "oneQubitMeasurementTime": "one_qubit_measurement_time",
    "oneQubitGateTime": "one_qubit_gate_time",
    "twoQubitGateTime": "two_qubit_gate_time",
    "twoQubitJointMeasurementTime": "two_qubit_joint_measurement_time",
    "tGateTime": "t_gate_time",
}


def _bad(message: str, key: str = "") -> QECError:
    return QECError.of("bad-parameter", message, **({"key": key} if key else {}))


class _Part(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A part of a physics file: frozen, keyword-only, unknown keys refused."""


class QecSchemePart(_Part, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``qec_scheme``: the code every logical qubit runs in."""

    code_family: Annotated[
        str, Meta(description="a code family or an alias of one: surface_code, surfaceCode, ...")
    ]
    code_distance: Annotated[int, Meta(ge=1, description="the code distance d")]
    logical_cycle_time_us: Annotated[
        _Micros | None,
        Meta(
            description="the logical cycle (d syndrome rounds) in microseconds: sets the "
            "qubit's operation times (whole ns, the base qubit's proportions)"
        ),
    ] = None
    physical_qubit_count: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="physical qubits per logical qubit: must be the family's count at "
            "code_distance"
        ),
    ] = None


class ErrorBudgetPart(_Part, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``error_budget``: the physical error rates (None keeps the base qubit's)."""

    physical_gate_error_rate: Annotated[
        _Rate | None, Meta(description="every gate's error rate: one-, two-qubit and T gates")
    ] = None
    measurement_error_rate: Annotated[
        _Rate | None, Meta(description="a measurement's error rate")
    ] = None
    idle_error_rate: Annotated[
        _Rate | None,
        Meta(description="an idle step's error rate (wins over the rate T1/T2 give)"),
    ] = None
    t1_us: Annotated[
        _Micros | None,
        Meta(description="T1 in microseconds: with t2_us, the idle rate when none is given"),
    ] = None
    t2_us: Annotated[_Micros | None, Meta(description="T2 in microseconds (at most 2 T1)")] = None


class DecoderPart(_Part, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``decoder``: what decodes the syndromes."""

    type: Annotated[
        str, Meta(description="MWPM (minimum-weight perfect matching), the one QMK models")
    ] = "MWPM"
    max_syndrome_weight: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(
            description="a memory experiment's decoder gives up on a shot with more "
            "detection events (a logical error)"
        ),
    ] = None
    cycle_time_us: Annotated[
        _Micros | None,
        Meta(
            description="the decoder's time per syndrome round in microseconds: at most "
            "the time between rounds"
        ),
    ] = None


class PhysicsConfig(_Part, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A machine's physics: its code, physical error rates and decoder (see the module
    docstring). Read with :meth:`from_json` or :func:`load_physics`."""

    qec_scheme: QecSchemePart
    error_budget: ErrorBudgetPart = ErrorBudgetPart()
    decoder: DecoderPart | None = None

    @classmethod
    def from_json(cls, data: Any) -> PhysicsConfig:
        """A physics file's JSON data as the typed value.

        Raises:
            QECError: ``QC103`` naming the key that is unknown, missing or out of range.
        """
        config: PhysicsConfig = values.convert(data, cls, where="physics", error=_bad)
        return config

    def to_json(self) -> dict[str, Any]:
        """The file's JSON data (keys left unset omitted)."""
        out: dict[str, Any] = _pruned(values.to_builtins(self))
        return out

    @property
    def profile(self) -> str:
        """The code profile ``qec_scheme`` names, canonical.

        Raises:
            QECError: ``QC102`` for an unknown family or a distance out of range.
        """
        from qmk.qvm.profiles import ProfileError, parse_profile

        scheme = self.qec_scheme
        family = family_name(scheme.code_family)
        if family is None:
            raise QECError.of(
                "unknown-profile",
                f"qec_scheme.code_family: {unknown_family(scheme.code_family)}",
                key="physics.qec_scheme.code_family",
            )
        try:
            return str(parse_profile(f"logical:{family}(d={scheme.code_distance})"))
        except ProfileError as exc:
            raise QECError.of(
                "unknown-profile", f"qec_scheme: {exc}", key="physics.qec_scheme.code_distance"
            ) from None

    def resolve(
        self, qubit: str | QubitParams = defaults.QUBIT, *, decodes: bool = False
    ) -> Resolved:
        """What a run takes from this physics, on the base qubit technology ``qubit``.

        ``decodes``: for a memory experiment, whose decoder honours
        ``max_syndrome_weight`` (else warning ``QC133`` says the logical model does not).

        Raises:
            QECError: ``QC102`` (family, distance); ``QC105`` (a family the qubit's
                instruction set has no scheme for). ``QC103``: a qubit count or cycle
                time the code cannot have, T2 > 2 T1, a rate the instruction set lacks.
                ``QC106`` (rates at or above the threshold), ``QC112`` (decoder type),
                ``QC113`` (a decoder slower than the syndrome rounds).
        """
        profile = self.profile
        base = qubit_params(qubit)
        scheme = scheme_for(family_name(self.qec_scheme.code_family) or "", base)
        distance = self.qec_scheme.code_distance
        notes: list[dict[str, str]] = []
        timed = _timed(base, scheme, distance, self.qec_scheme.logical_cycle_time_us, notes)
        timed = self._coherent(timed, base)
        self._check_qubits(scheme, distance)
        noise = self._noise(timed, notes)
        model = logical_model(profile, timed, noise=noise)
        load = None if self.decoder is None else _decoder(self.decoder, model, notes, decodes)
        return Resolved(
            config=self,
            profile=profile,
            qubit=timed,
            noise=noise,
            model=model,
            decoder=load,
            warnings=tuple(notes),
        )

    def _coherent(self, timed: QubitParams, base: QubitParams) -> QubitParams:
        """``timed`` with the file's T1/T2 (ns), named as the physics' qubit if changed."""
        budget = self.error_budget
        changes: dict[str, Any] = {}
        if budget.t1_us is not None:
            changes["t1_ns"] = budget.t1_us * 1000
        if budget.t2_us is not None:
            changes["t2_ns"] = budget.t2_us * 1000
        if changes:
            timed = timed.replace(**changes)
        if timed != base:
            timed = timed.replace(name=f"physics({base.name})")
        return timed

    def _check_qubits(self, scheme: QecScheme, distance: int) -> None:
        count = self.qec_scheme.physical_qubit_count
        if count is None:
            return
        derived = scheme.physical_qubits(distance)
        if count != derived:
            raise _bad(
                f"qec_scheme.physical_qubit_count is {count}, but {scheme.family} at "
                f"d={distance} on {scheme.instruction_set} qubits takes {derived} physical "
                f"qubits per logical qubit ({scheme.physical_qubits_per_logical_qubit.text})",
                "physics.qec_scheme.physical_qubit_count",
            )

    def _noise(self, qubit: QubitParams, notes: list[dict[str, str]]) -> NoiseModel | None:
        """The error budget as a noise model on ``qubit`` (None: nothing set)."""
        budget = self.error_budget
        models: list[NoiseModel] = []
        gate = budget.physical_gate_error_rate
        if gate is not None:
            if qubit.instruction_set != GATE_BASED:
                raise _bad(
                    f"error_budget.physical_gate_error_rate: {qubit.name!r} is a "
                    f"{qubit.instruction_set} qubit, which has no gates (its Clifford "
                    "operations are measurements: set measurement_error_rate)",
                    "physics.error_budget.physical_gate_error_rate",
                )
            models.append(GateNoise(one_qubit=gate, two_qubit=gate, t_gate=gate))
        measure = budget.measurement_error_rate
        if measure is not None:
            readout = None if qubit.instruction_set == GATE_BASED else measure
            models.append(MeasurementNoise(process=measure, readout=readout))
        coherent = budget.t1_us is not None or budget.t2_us is not None
        if budget.idle_error_rate is not None:
            models.append(IdleNoise(rate=budget.idle_error_rate))
            if coherent:
                _idle_note(budget.idle_error_rate, qubit, notes)
        elif coherent:
            models.append(IdleNoise())  # T1/T2 are the qubit's (IdleNoise reads them)
        if not models:
            return None
        return models[0] if len(models) == 1 else NoiseStack(tuple(models))


def _pruned(data: Any) -> Any:
    """JSON data without the keys whose value is None."""
    if isinstance(data, dict):
        return {k: _pruned(v) for k, v in data.items() if v is not None}
    return data


def _timed(
    base: QubitParams,
    scheme: QecScheme,
    distance: int,
    cycle_us: float | None,
    notes: list[dict[str, str]],
) -> QubitParams:
    """``base`` with its operation times scaled by one factor (each rounded to whole ns,
    at least 1) so that ``scheme``'s logical cycle at ``distance`` is nearest
    ``cycle_us``; ``base`` itself when no cycle time is asked.

    Raises:
        QECError: ``QC103`` when the nearest cycle time is off by more than
            :data:`CYCLE_TOLERANCE`, naming both.
    """
    if cycle_us is None:
        return base
    target = cycle_us * 1000
    names = [n for n in sorted(scheme.logical_cycle_time.names) if n in _TIME_FIELDS]
    times = {
        field: value
        for field in _TIME_FIELDS.values()
        if (value := getattr(base, field)) is not None
    }
    anchor = max(float(getattr(base, _TIME_FIELDS[n])) for n in names)
    middle = target / scheme.cycle_time_ns(base, distance) * anchor
    best: tuple[float, float, QubitParams, int] | None = None
    for m in range(max(1, math.floor(middle) - 2), math.ceil(middle) + 3):
        scale = m / anchor
        qubit = base.replace(**{f: max(1, round(v * scale)) for f, v in times.items()})
        cycle = scheme.cycle_time_ns(qubit, distance)
        key = (abs(cycle - target), abs(m - middle))
        if best is None or key < best[:2]:
            best = (*key, qubit, cycle)
    assert best is not None
    _, _, qubit, cycle = best
    where = f"{scheme.family} at d={distance} ({scheme.logical_cycle_time.text})"
    shown = ", ".join(f"{n} {getattr(qubit, _TIME_FIELDS[n])} ns" for n in names)
    if abs(cycle - target) > CYCLE_TOLERANCE * target:
        raise _bad(
            f"qec_scheme.logical_cycle_time_us is {cycle_us:g}, but the nearest cycle of "
            f"{where} on whole-ns operation times in {base.name}'s proportions is "
            f"{cycle / 1000:g} us ({shown})",
            "physics.qec_scheme.logical_cycle_time_us",
        )
    if cycle != target:
        notes.append(
            warning(
                QECError,
                "physics-approximated",
                f"qec_scheme.logical_cycle_time_us {cycle_us:g} is realized as "
                f"{cycle / 1000:g} us: {where} of whole-ns times in {base.name}'s "
                f"proportions ({shown})",
            )
        )
    return qubit


def _idle_note(rate: float, qubit: QubitParams, notes: list[dict[str, str]]) -> None:
    """Warning ``QC133`` when T1/T2 give an idle rate other than ``rate`` (over 1%)."""
    from qmk.qec.noise import default_idle_step_ns

    implied = IdleNoise().apply(qubit).idle_error_rate
    if abs(implied - rate) <= IDLE_AGREEMENT * rate:
        return
    notes.append(
        warning(
            QECError,
            "physics-unused",
            f"error_budget.idle_error_rate {rate:g} is the idle rate; t1_us/t2_us give "
            f"{implied:.3g} over the {default_idle_step_ns(qubit):g} ns idle step and set "
            "no rate here (they stay the qubit's coherence times)",
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DecoderLoad:
    """What the decoder must do for one logical qubit, and whether it keeps up.

    Attributes:
        type: the decoder (``MWPM``).
        round_time_ns: the time between syndrome rounds (cycle time / rounds per cycle).
        decoder_time_ns: the decoder's time per round (None: not given).
        bits_per_second: the syndrome bits per second it receives (the model's
            ``decoder_bits_per_second``).
        capacity_bits_per_second: the bits per second it can take (None: not given).
        max_syndrome_weight: a memory experiment's cap on detection events per shot.
    """

    type: str
    round_time_ns: float
    decoder_time_ns: float | None
    bits_per_second: float
    capacity_bits_per_second: float | None
    max_syndrome_weight: int | None

    def to_json(self) -> dict[str, Any]:
        """The load as plain JSON."""
        return {
            "type": self.type,
            "round_time_ns": self.round_time_ns,
            "decoder_time_ns": self.decoder_time_ns,
            "bits_per_second": self.bits_per_second,
            "capacity_bits_per_second": self.capacity_bits_per_second,
            "max_syndrome_weight": self.max_syndrome_weight,
        }


def _decoder(
    part: DecoderPart, model: LogicalModel, notes: list[dict[str, str]], decodes: bool
) -> DecoderLoad:
    """The decoder's load on ``model``, checked (``decodes``: a memory experiment's,
    which honours ``max_syndrome_weight``).

    Raises:
        QECError: ``QC112`` for a type other than :data:`DECODERS`; ``QC113`` for a
            decoder slower per round than the rounds come.
    """
    kind = next((known for known in DECODERS if known.lower() == part.type.lower()), None)
    if kind is None:
        raise QECError.of(
            "unknown-decoder",
            f"decoder.type {part.type!r}: QMK models {', '.join(DECODERS)} only",
            key="physics.decoder.type",
        )
    round_ns = model.cycle_time_ns / model.decoder_rounds_per_cycle
    decoder_ns = None if part.cycle_time_us is None else part.cycle_time_us * 1000
    if decoder_ns is not None and decoder_ns > round_ns:
        raise QECError.of(
            "decoder-too-slow",
            f"decoder.cycle_time_us {part.cycle_time_us:g}: the decoder takes "
            f"{decoder_ns:g} ns a syndrome round, but {model.profile} makes one every "
            f"{round_ns:g} ns ({model.cycle_time_ns} ns cycle / {model.decoder_rounds_per_cycle}"
            f" rounds): it falls behind by {decoder_ns - round_ns:g} ns a round",
            key="physics.decoder.cycle_time_us",
        )
    if part.max_syndrome_weight is not None and not decodes:
        notes.append(
            warning(
                QECError,
                "physics-unused",
                f"decoder.max_syndrome_weight {part.max_syndrome_weight}: the logical "
                "error rates of runs and estimates are the threshold formula's, a matching "
                "decoder with no limit on a syndrome's weight; qmk qec threshold --physics "
                "measures the decoder that gives up above it",
            )
        )
    bits = model.syndrome_bits_per_round
    return DecoderLoad(
        type=kind,
        round_time_ns=round_ns,
        decoder_time_ns=decoder_ns,
        bits_per_second=model.decoder_bits_per_second,
        capacity_bits_per_second=None if decoder_ns is None else bits * 1e9 / decoder_ns,
        max_syndrome_weight=part.max_syndrome_weight,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """A physics file as a run takes it (:meth:`PhysicsConfig.resolve`).

    Attributes:
        config: the file.
        profile: the code profile of every qubit that names none.
        qubit: the physical qubit: the base set's instruction set, its times scaled to
            the cycle time, the file's T1/T2.
        noise: the error budget's noise model (None: the base qubit's rates).
        model: the logical model of the profile on that qubit under that noise.
        decoder: the decoder's load (None: the file names no decoder).
        warnings: what is approximated (``QC132``) or has no effect (``QC133``).
    """

    config: PhysicsConfig
    profile: str
    qubit: QubitParams
    noise: NoiseModel | None
    model: LogicalModel
    decoder: DecoderLoad | None
    warnings: tuple[dict[str, str], ...]

    @property
    def effective_qubit(self) -> QubitParams:
        """:attr:`qubit` with the error budget's rates (what the logical model reads)."""
        return self.qubit if self.noise is None else self.noise.apply(self.qubit)

    @property
    def noise_model(self) -> str | None:
        """The noise model as ``parse_noise_model`` text (a run request's ``noise_model``)."""
        return None if self.noise is None else describe_noise_model(self.noise)

    def to_json(self) -> dict[str, Any]:
        """What the physics resolved to, as plain JSON (``qmk run --json``'s ``physics``)."""
        return {
            "profile": self.profile,
            "qubit": self.effective_qubit.to_json(),
            "noise_model": self.noise_model,
            "logical_cycle_time_ns": self.model.cycle_time_ns,
            "physical_qubits_per_logical": self.model.physical_qubits_per_logical,
            "physical_error_rate": self.model.physical_error_rate,
            "logical_error_per_cycle": self.model.logical_error_per_cycle,
            "decoder": None if self.decoder is None else self.decoder.to_json(),
            "warnings": list(self.warnings),
        }


def load_physics(
    source: PhysicsConfig | Mapping[str, Any] | str | os.PathLike[str],
) -> PhysicsConfig:
    """A physics file from the value, its JSON data, inline JSON text or a file's path.

    Raises:
        QECError: ``QC103`` for a file that cannot be read, text that is not JSON, or
            data that is not a physics file (the message names the key).
    """
    if isinstance(source, PhysicsConfig):
        return source
    if isinstance(source, Mapping):
        return PhysicsConfig.from_json(source)
    if not isinstance(source, str | os.PathLike):
        raise _bad(f"physics: a file's path, JSON text or data, not {type(source).__name__}")
    text = str(source) if isinstance(source, str) else ""
    if not text.lstrip().startswith("{"):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad(f"physics file {str(source)!r}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _bad(f"physics {str(source)!r}: not JSON ({exc})") from None
    return PhysicsConfig.from_json(data)


#: The keys of a physics file (what tells one from QRE's job parameters).
KEYS: tuple[str, ...] = tuple(PhysicsConfig.__struct_fields__)

#: The shipped JSON Schema of a physics file (``qmk schema --kind physics``).
SCHEMA_PATH = Path(__file__).with_name("physics.schema.json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a physics file, from :class:`PhysicsConfig`.

    >>> sorted(json_schema()["$defs"]["DecoderPart"]["properties"])
    ['cycle_time_us', 'max_syndrome_weight', 'type']
    """
    schema = values.json_schema(PhysicsConfig)
    return {
        "$schema": schema.pop("$schema"),
        "$id": "https://qmk.dev/schemas/physics.json",
        "title": "QMK physics file (qec_scheme, error_budget, decoder)",
        **schema,
    }


def schema_text() -> str:
    """:func:`json_schema` as the shipped file's text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "CYCLE_TOLERANCE",
    "DECODERS",
    "IDLE_AGREEMENT",
    "KEYS",
    "SCHEMA_PATH",
    "DecoderLoad",
    "DecoderPart",
    "ErrorBudgetPart",
    "PhysicsConfig",
    "QecSchemePart",
    "Resolved",
    "json_schema",
    "load_physics",
    "schema_text",
]
