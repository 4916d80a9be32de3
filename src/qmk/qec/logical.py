"""The logical-qubit model: a profile on a qubit technology, as error rates and costs.

:func:`logical_model` turns a code profile (``logical:surface_code(d=9)``) and
qubit parameters (``qubit_gate_ns_e3``) into a :class:`LogicalModel`: the
physical error rate, the logical error probability per logical cycle, the
logical cycle time, the physical qubits per logical qubit and the decoder
rounds per cycle. The executor uses two more things from it:

- :meth:`LogicalModel.pauli_error` -- the logical Pauli channel of a qubit that
  spends ``cycles`` logical cycles. It suffers a logical error with probability
  ``1 - (1 - P_L) ** cycles``, split equally among X, Y and Z (a logical
  depolarizing channel). QRE's threshold formula gives the failure probability
  only, and an equal split is the assumption that favours no basis;
- :func:`op_cycles` -- how many logical cycles each logical operation takes
  (the table :data:`OP_CYCLES`, keyed by lower-case names and reachable by QVM
  op names such as ``APPLY_H`` or ``MEASURE_Z``).

>>> m = logical_model("logical:surface_code(d=9)", "qubit_gate_ns_e3")
>>> m.physical_qubits_per_logical, m.cycle_time_ns, m.decoder_rounds_per_cycle
(162, 3600, 9)
>>> m.logical_error_per_cycle
3.0000000000000015e-07
>>> op_cycles("APPLY_CNOT"), op_cycles("APPLY_X"), op_cycles("ccz")
(1.0, 0.0, 3.0)
>>> round(m.pauli_error(2).total, 16)
5.9999991e-07
>>> m.syndrome_bits_per_round, round(m.decoder_bits_per_second / 1e6, 3)
(80.0, 200.0)

A :class:`Calibration` (fitted by ``qmk qec calibrate``, see
``docs/qec_experiments.md``) replaces the scheme's crossing prefactor and
threshold for its family:

>>> cal = Calibration(family="surface_code", crossing_prefactor=0.05,
...                   error_correction_threshold=0.008)
>>> f"{logical_model('logical:surface_code(d=9)', calibration=cal).logical_error_per_cycle:.2e}"
'1.53e-06'
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeGuard

from qmk import defaults
from qmk.qec.codes import QecScheme, scheme_for
from qmk.qec.errors import QECError
from qmk.qec.noise import NoiseModel
from qmk.qec.params import QubitParams, qubit_params
from qmk.qec.values import CALIBRATION_KIND as CALIBRATION_KIND
from qmk.qec.values import Calibration as Calibration
from qmk.qec.values import calibration_of
from qmk.qvm.ops import OPS, STIM_OPS, Exec, OpSpec, canonical_op
from qmk.qvm.profiles import Profile, ProfileError, parse_profile, unknown_family

#: The machine QMK models when a job names none.
DEFAULT_PROFILE = defaults.PROFILE
DEFAULT_QUBIT = defaults.QUBIT


@dataclass(frozen=True, slots=True, kw_only=True)
class PauliRates:
    """A Pauli channel: X, Y and Z with probabilities ``px``, ``py``, ``pz``."""

    px: float
    py: float
    pz: float

    def __post_init__(self) -> None:
        rates = (self.px, self.py, self.pz)
        if not all(math.isfinite(r) and r >= 0 for r in rates) or sum(rates) > 1 + 1e-12:
            raise QECError.of(
                "bad-parameter", f"Pauli rates {rates} must be >= 0 and sum to at most 1"
            )

    @property
    def total(self) -> float:
        """The probability of any Pauli error."""
        return self.px + self.py + self.pz

    def as_tuple(self) -> tuple[float, float, float]:
        """``(px, py, pz)``, the order stim's ``PAULI_CHANNEL_1`` takes."""
        return (self.px, self.py, self.pz)


NO_ERROR = PauliRates(px=0.0, py=0.0, pz=0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpCycles:
    """How many logical cycles one kind of logical operation occupies its qubits for.

    Attributes:
        key: the lower-case name (``"h"``, ``"cx"``, ``"measure"``).
        cycles: logical cycles; 0 means no time and no logical error.
        qvm_ops: the QVM ops of this kind (names from ``qmk.qvm.ops.OPS``).
        why: the reasoning, with QRE's count where it has one.
    """

    key: str
    cycles: float
    qvm_ops: tuple[str, ...]
    why: str


def _cycle_key(spec: OpSpec) -> str:
    """The lower-case key an op's cycles are listed under: its engine gate (``cx``),
    ``measure`` for the three Pauli-basis measurements, else its name (``alloc``)."""
    if spec.kind is Exec.GATE and spec.gate:
        return spec.gate
    if spec.kind is Exec.MEASURE:
        return "measure"
    return spec.name.lower().removesuffix("_lq")


# Why an op takes the logical cycles it does (QRE: the Azure Quantum Resource Estimator).
_PAULI_FRAME = "tracked in the software Pauli frame: no physical operation, no time"
_CLIFFORD_1Q = (
    "one lattice-surgery/patch-deformation step of d rounds (QRE folds Cliffords into its "
    "Pauli-measurement schedule and counts none)"
)
_MAGIC = "consume one magic state by a joint measurement (QRE: 1)"
_ROTATION = "one rotation, simulated exactly (QRE: 1 per rotation)"
_SURGERY_2Q = "one two-patch lattice-surgery step of d rounds"
_MEASURE = "one logical measurement (QRE: 1 per measurement)"
_BOOKKEEPING = "classical bookkeeping on the channel; no qubit touched"
_SCHEDULING = "scheduling only"
_STIM = "a stim circuit's own row; no logical time"

#: Each QVM op's logical cycles (code cycles of d rounds), and why, by op name: one row
#: an op of the op table (:data:`qmk.qvm.ops.OPS`), and only those.
_COSTS: Mapping[str, tuple[float, str]] = MappingProxyType(
    {
        "ALLOC_LQ": (1, "prepare the patch and establish its stabilizers: d rounds"),
        "FREE_LQ": (0, "the patch is released; nothing left to protect"),
        "RESET": (1, "re-prepare the patch in |0>: d rounds"),
        "APPLY_H": (1, _CLIFFORD_1Q),
        "APPLY_S": (1, _CLIFFORD_1Q),
        "APPLY_SDG": (1, _CLIFFORD_1Q),
        "APPLY_X": (0, _PAULI_FRAME),
        "APPLY_Y": (0, _PAULI_FRAME),
        "APPLY_Z": (0, _PAULI_FRAME),
        "APPLY_T": (1, _MAGIC),
        "APPLY_TDG": (1, _MAGIC),
        "APPLY_RX": (1, _ROTATION),
        "APPLY_RY": (1, _ROTATION),
        "APPLY_RZ": (1, _ROTATION),
        "APPLY_CNOT": (1, _SURGERY_2Q),
        "APPLY_CZ": (1, _SURGERY_2Q),
        "APPLY_SWAP": (1, "one patch-move step of d rounds"),
        "APPLY_CCX": (3, "three multi-qubit Pauli measurements (QRE: 3 per CCiX)"),
        "APPLY_CCZ": (3, "three multi-qubit Pauli measurements (QRE: 3 per CCZ)"),
        "MEASURE_Z": (1, _MEASURE),
        "MEASURE_X": (1, _MEASURE),
        "MEASURE_Y": (1, _MEASURE),
        "MEASURE_ANGLE": (2, "a rotation (1) then a measurement (1)"),
        "MEASURE_BELL": (2, "a CNOT (1) then measurements (1)"),
        "TELEPORT_CNOT": (
            2,
            "joint measurements with the Bell pair's halves (1), then measuring the halves (1)",
        ),
        "INJECT_T_STATE": (1, "consume one magic state, as a T gate"),
        "COND_PAULI": (0, _PAULI_FRAME),
        "OPEN_CHAN": (1, "prepare the Bell pair's two patches: d rounds"),
        "USE_CHAN": (0, _BOOKKEEPING),
        "CLOSE_CHAN": (0, _BOOKKEEPING),
        "CALC": (0, "classical control computes while the code cycles; no logical time"),
        "HALT": (0, "classical control; no logical time"),
        "FENCE_EPOCH": (0, _SCHEDULING),
        "BAR_REGION": (0, _SCHEDULING),
        "SET_POLICY": (0, _SCHEDULING),
        **dict.fromkeys(STIM_OPS, (0, _STIM)),
    }
)


def _derive_cycles() -> dict[str, OpCycles]:
    if set(_COSTS) != set(OPS):  # an op added to the op table is given its cycles here
        raise RuntimeError(
            f"the logical cycles and the op table differ: {sorted(set(_COSTS) ^ set(OPS))}"
        )
    table: dict[str, OpCycles] = {}
    for spec in OPS.values():
        key = _cycle_key(spec)
        seen = table.get(key)
        qvm_ops = (*seen.qvm_ops, spec.name) if seen else (spec.name,)
        cycles, why = _COSTS[spec.name]
        table[key] = OpCycles(key=key, cycles=float(cycles), qvm_ops=qvm_ops, why=why)
    return table


#: Logical cycles per kind of logical operation, by lower-case key: each op's row of
#: :data:`_COSTS`, grouped by :func:`_cycle_key`.
OP_CYCLES: Mapping[str, OpCycles] = MappingProxyType(_derive_cycles())

#: Spellings :func:`op_cycles` accepts beyond op names, op aliases and keys.
OP_ALIASES: Mapping[str, str] = MappingProxyType(
    {"rotation": "rz", "m": "measure", "mz": "measure", "mx": "measure", "my": "measure"}
)

_BY_QVM_OP: Mapping[str, str] = MappingProxyType(
    {op: entry.key for entry in OP_CYCLES.values() for op in entry.qvm_ops}
)


def op_key(op_name: str) -> str:
    """The :data:`OP_CYCLES` key of an op name: a QVM op name, a key or an alias.

    >>> op_key("MEASURE_X"), op_key("CNOT"), op_key("h")
    ('measure', 'cx', 'h')

    Raises:
        QECError: ``QC104 unknown-op`` when the name is none of those.
    """
    if op_name in _BY_QVM_OP:
        return _BY_QVM_OP[op_name]
    lower = op_name.lower() if isinstance(op_name, str) else ""
    if lower in OP_CYCLES:
        return lower
    if lower in OP_ALIASES:
        return OP_ALIASES[lower]
    op = canonical_op(lower.upper()) or canonical_op(f"APPLY_{lower.upper()}")
    if op is not None:
        return _BY_QVM_OP[op]
    raise QECError.of(
        "unknown-op",
        f"no logical-cycle entry for op {op_name!r}; use a QVM op name (APPLY_H, MEASURE_Z, ...) "
        f"or one of: {', '.join(OP_CYCLES)}",
        op=str(op_name),
    )


def op_cycles(op_name: str) -> float:
    """Logical cycles the operation ``op_name`` takes (see :data:`OP_CYCLES`).

    Args:
        op_name: a QVM op name (``"APPLY_H"``, ``"TELEPORT_CNOT"``), a key of
            :data:`OP_CYCLES` (``"h"``, ``"cx"``) or an alias (``"cnot"``).

    Raises:
        QECError: ``QC104 unknown-op`` for any other name.
    """
    return OP_CYCLES[op_key(op_name)].cycles


@dataclass(frozen=True, slots=True, kw_only=True)
class LogicalModel:
    """One logical qubit: a code profile on a qubit technology, as rates and costs.

    Built by :func:`logical_model`; every number is computed there.

    Attributes:
        profile: the code family and distance.
        scheme: the family's QEC scheme for this qubit technology.
        qubit: the qubit parameters (before ``noise``).
        noise: the noise model that set the error rates, or None for the qubit's own.
        physical_error_rate: p of the threshold formula.
        logical_error_per_cycle: P_L, the probability of a logical error per logical cycle.
        cycle_time_ns: the duration of one logical cycle.
        physical_qubits_per_logical: physical qubits one logical qubit occupies.
        decoder_rounds_per_cycle: syndrome-extraction rounds the decoder handles per cycle.
        syndrome_bits_per_round: measurement outcomes the decoder receives per round for
            this logical qubit (:func:`syndrome_bits_per_round`).
        calibration: the fitted (a, p*) that replaced the scheme's, or None.
    """

    profile: Profile
    scheme: QecScheme
    qubit: QubitParams
    noise: NoiseModel | None
    physical_error_rate: float
    logical_error_per_cycle: float
    cycle_time_ns: int
    physical_qubits_per_logical: int
    decoder_rounds_per_cycle: int
    syndrome_bits_per_round: float
    calibration: Calibration | None = None

    @property
    def decoder_bits_per_second(self) -> float:
        """The syndrome bits per second this logical qubit's decoder must keep up with."""
        per_cycle = self.syndrome_bits_per_round * self.decoder_rounds_per_cycle
        return per_cycle * 1e9 / self.cycle_time_ns

    @property
    def family(self) -> str:
        """The code family (canonical name)."""
        return self.profile.family

    @property
    def distance(self) -> int:
        """The code distance."""
        return self.profile.distance

    def pauli_error(self, cycles: float) -> PauliRates:
        """The logical Pauli channel of ``cycles`` logical cycles.

        The probability of any logical error is ``1 - (1 - P_L) ** cycles``,
        split equally among X, Y and Z. Zero cycles give no error.

        Raises:
            QECError: ``QC103 bad-parameter`` for a negative or non-finite ``cycles``.
        """
        if isinstance(cycles, bool) or not (
            isinstance(cycles, (int, float)) and math.isfinite(cycles) and cycles >= 0
        ):
            raise QECError.of(
                "bad-parameter", f"cycles must be a finite number >= 0, got {cycles!r}"
            )
        if cycles == 0:
            return NO_ERROR
        total = -math.expm1(cycles * math.log1p(-self.logical_error_per_cycle))
        each = total / 3
        return PauliRates(px=each, py=each, pz=each)

    def op_cycles(self, op_name: str) -> float:
        """Logical cycles of ``op_name`` (:func:`op_cycles`)."""
        return op_cycles(op_name)

    def op_error(self, op_name: str) -> PauliRates:
        """The logical Pauli channel on each qubit ``op_name`` touches."""
        return self.pauli_error(op_cycles(op_name))

    def op_time_ns(self, op_name: str) -> float:
        """The wall-clock time of ``op_name``: its cycles times the cycle time."""
        return op_cycles(op_name) * self.cycle_time_ns

    def to_json(self) -> dict[str, Any]:
        """The model as plain JSON, for telemetry and reports."""
        return {
            "profile": str(self.profile),
            "family": self.family,
            "distance": self.distance,
            "qubit": self.qubit.name,
            "instruction_set": self.qubit.instruction_set,
            "noise": None if self.noise is None else repr(self.noise),
            "physical_error_rate": self.physical_error_rate,
            "logical_error_per_cycle": self.logical_error_per_cycle,
            "cycle_time_ns": self.cycle_time_ns,
            "physical_qubits_per_logical": self.physical_qubits_per_logical,
            "decoder_rounds_per_cycle": self.decoder_rounds_per_cycle,
            "syndrome_bits_per_round": self.syndrome_bits_per_round,
            "decoder_bits_per_second": self.decoder_bits_per_second,
            "crossing_prefactor": self.scheme.crossing_prefactor,
            "error_correction_threshold": self.scheme.error_correction_threshold,
            "calibration": None if self.calibration is None else self.calibration.to_json(),
        }


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if not isinstance(profile, str):
        raise QECError.of("unknown-profile", f"a profile is a string, not {profile!r}")
    try:
        return parse_profile(profile)
    except ProfileError as exc:
        raise QECError.of("unknown-profile", str(exc), profile=profile) from None


def logical_model(
    profile: str | Profile = DEFAULT_PROFILE,
    qubit: str | QubitParams | Mapping[str, Any] = DEFAULT_QUBIT,
    *,
    noise: NoiseModel | None = None,
    calibration: Calibration | Mapping[str, Any] | None = None,
) -> LogicalModel:
    """The logical-qubit model of ``profile`` on ``qubit`` under ``noise``.

    Args:
        profile: ``logical:FAMILY(d=N)`` or a parsed :class:`~qmk.qvm.profiles.Profile`.
        qubit: a predefined parameter set name (:data:`~qmk.qec.params.QUBIT_PARAMS`)
            or :class:`~qmk.qec.params.QubitParams` (or its JSON, a run request's).
        noise: a noise model for the error rates (default: the qubit's own rates).
        calibration: fitted (a, p*) to use instead of the scheme's when it is for
            this profile's family and the qubit's instruction set (otherwise ignored);
            a :class:`Calibration` or its JSON (a run request's).

    Returns:
        The model (cached: the same arguments give the same object).

    Raises:
        QECError: ``QC102`` for a bad profile, ``QC101`` for an unknown qubit
            set, ``QC105`` for a family that does not fit the qubit technology.
            ``QC106`` when the qubit's error rate is not below the threshold
            (QRE refuses a Clifford rate >= p* and a physical rate > p*).
            ``QC107`` for a distance above the scheme's maximum.
    """
    parsed, params = _profile(profile), qubit_params(qubit)
    calibration = calibration_of(calibration)
    if not _hashable(noise):  # an unhashable noise model: build the model without the cache
        return _build(parsed, params, noise, calibration)
    return _cached_build(parsed, params, noise, calibration)


def _hashable(value: object) -> TypeGuard[Hashable]:
    # isinstance(value, Hashable) is not enough: a frozen dataclass holding a list says yes.
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _applies(calibration: Calibration, scheme: QecScheme) -> bool:
    """Whether ``calibration`` is for ``scheme``'s family and instruction set."""
    return (
        scheme.family == calibration.family
        and scheme.instruction_set == calibration.instruction_set
    )


def calibrated(scheme: QecScheme, calibration: Calibration) -> QecScheme:
    """``scheme`` with the calibrated (a, p*), or with the calibrated law.

    A model applies a calibration here, not the value itself: the kernel process holds
    calibrations (:mod:`qmk.qec.values`) and loads no scheme.
    """
    a = calibration.crossing_prefactor
    threshold = calibration.error_correction_threshold
    return dataclasses.replace(
        scheme,
        crossing_prefactor=float(scheme.crossing_prefactor if a is None else a),
        error_correction_threshold=float(
            scheme.error_correction_threshold if threshold is None else threshold
        ),
        law=calibration.law,
        qre=False,
        sources=(*scheme.sources, f"calibrated: {calibration.source or 'qmk qec calibrate'}"),
    )


def _build(
    profile: Profile,
    qubit: QubitParams,
    noise: NoiseModel | None,
    calibration: Calibration | None = None,
) -> LogicalModel:
    scheme = scheme_for(profile.family, qubit)
    if calibration is not None and _applies(calibration, scheme):
        scheme = calibrated(scheme, calibration)
    else:
        calibration = None
    noisy = qubit if noise is None else noise.apply(qubit)
    p = noisy.physical_error_rate
    if scheme.has_threshold and noisy.clifford_error_rate >= scheme.error_correction_threshold:
        raise QECError.of(
            "above-threshold",
            f"{noisy.name!r}: Clifford error rate {noisy.clifford_error_rate:g} is not below "
            f"the {scheme.family} threshold {scheme.error_correction_threshold:g}",
            physical_error_rate=p,
            threshold=scheme.error_correction_threshold,
        )
    return LogicalModel(
        profile=profile,
        scheme=scheme,
        qubit=qubit,
        noise=noise,
        physical_error_rate=p,
        logical_error_per_cycle=scheme.logical_error_rate(p, profile.distance),
        cycle_time_ns=scheme.cycle_time_ns(qubit, profile.distance),
        physical_qubits_per_logical=scheme.physical_qubits(profile.distance),
        decoder_rounds_per_cycle=scheme.rounds(profile.distance),
        syndrome_bits_per_round=syndrome_bits_per_round(profile.family, profile.distance),
        calibration=calibration,
    )


_cached_build = functools.lru_cache(maxsize=512)(_build)


def _shyps_block(distance: int) -> tuple[int, int]:
    """``(n, k)`` of the smallest SHYPS block a ``SHYPS(d=distance)`` profile uses."""
    r = max(3, math.ceil(math.log2(distance)) + 1) if distance > 1 else 3
    return (2**r - 1) ** 2, r * r


def syndrome_bits_per_round(family: str, distance: int) -> float:
    """Measurement outcomes a decoder receives per syndrome round, per logical qubit.

    - ``surface_code``: one per stabilizer, ``d^2 - 1``.
    - ``bacon_shor``: one per weight-2 gauge, ``2 d (d - 1)`` (the decoder
      multiplies gauge outcomes into stabilizers itself).
    - ``floquet_code``: one per two-body check; each of the 3 sub-rounds of a
      round measures every qubit once in pairs, so ``3 n / 2`` with ``n`` the
      scheme's ``4 d^2 + 8 (d - 1)`` qubits.
    - ``SHYPS``: one per weight-3 gauge of the block, ``2 n`` (n X and n Z
      gauges), shared by the block's ``k`` logical qubits: ``2 n / k``.

    >>> syndrome_bits_per_round("surface_code", 9), syndrome_bits_per_round("bacon_shor", 3)
    (80.0, 12.0)

    Raises:
        QECError: ``QC102`` for an unknown family, ``QC103`` for a distance < 1.
    """
    if isinstance(distance, bool) or not isinstance(distance, int) or distance < 1:
        raise QECError.of(
            "bad-parameter", f"code distance must be a whole number >= 1, got {distance!r}"
        )
    d = distance
    if family == "surface_code":
        return float(d * d - 1)
    if family == "bacon_shor":
        return float(2 * d * (d - 1))
    if family == "floquet_code":
        return 1.5 * (4 * d * d + 8 * (d - 1))
    if family == "SHYPS":
        n, k = _shyps_block(d)
        return 2 * n / k
    raise QECError.of("unknown-profile", unknown_family(family), family=family)
