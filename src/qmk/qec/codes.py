"""QEC schemes: each code family's threshold model, logical cycle time and qubit count.

A :class:`QecScheme` models one code family on one qubit technology the way
the Azure Quantum Resource Estimator (QRE) does: a logical qubit of code
distance ``d`` fails in one logical cycle with probability

    P_L(p, d) = a * (p / p*) ** ((d + 1) // 2)

Here ``a`` is the crossing prefactor, ``p*`` the error-correction threshold and ``p``
the qubit's physical error rate. The exponent uses integer division, as QRE's
``(d + 1) / 2`` on integers does. A logical cycle takes ``logical_cycle_time`` ns and a
logical qubit occupies ``physical_qubits_per_logical_qubit`` physical qubits, both
QRE-style formulas over the qubit's operation times and ``codeDistance``.

:data:`SCHEMES` holds, per family of :data:`qmk.qvm.profiles.FAMILIES`, one
scheme per instruction set the family supports:

- ``surface_code`` on ``gate_based`` and ``majorana`` qubits and
  ``floquet_code`` on ``majorana`` qubits are QRE's predefined schemes,
  value for value (``surface_code_gate_based``, ``surface_code_measurement_based``
  and ``floquet_code`` in ``source/resource_estimator/src/system/modeling/
  fault_tolerance.rs`` of microsoft/qsharp). As in QRE, ``floquet_code`` on
  gate-based qubits is refused.
- ``bacon_shor`` and ``SHYPS`` (gate-based only) are not in QRE. Their logical error
  rates are fitted to QMK's own memory circuits of them (Bacon-Shor's column law;
  SHYPS's ``a`` at its [[49, 9, 4]] block, ``p*`` stated); their qubits and cycle
  times are QMK's modelling assumptions. Each scheme's ``notes`` and ``docs/qec.md``
  give the reasoning.

>>> s = scheme_for("surface_code", "gate_based")
>>> s.crossing_prefactor, s.error_correction_threshold, str(s.logical_cycle_time)
(0.03, 0.01, '(4 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance')
>>> s.physical_qubits(9)
162
>>> scheme_for("floquet_code", "gate_based")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC105 scheme-not-supported: floquet_code has no scheme for gate_based ...
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qmk.qec.errors import QECError
from qmk.qec.formula import Formula
from qmk.qec.params import GATE_BASED, INSTRUCTION_SETS, MAJORANA, QubitParams
from qmk.qec.values import ColumnLaw as ColumnLaw
from qmk.qvm.profiles import FAMILIES, family_name, unknown_family

#: QRE's default maximum code distance (``MAX_CODE_DISTANCE`` in its constants.rs).
QRE_MAX_CODE_DISTANCE = 50

#: d syndrome-extraction rounds per logical cycle, as in every QRE scheme.
ROUNDS_PER_CYCLE = Formula("codeDistance")


@functools.lru_cache(maxsize=64)
def _time_variables(qubit: QubitParams) -> Mapping[str, float]:
    """``qubit.time_variables()``, made once per qubit (a search asks at every distance)."""
    return MappingProxyType(qubit.time_variables())


def powi(base: float, exponent: int) -> float:
    """``base ** exponent`` by repeated squaring, bit for bit as Rust's ``f64::powi``.

    QRE computes the threshold formula with ``powi``, whose rounding differs
    from ``math.pow`` in the last bits; this reproduces QRE's floats exactly.

    >>> 0.03 * powi(0.1, 10), 0.03 * 0.1 ** 10
    (3.000000000000003e-12, 3.0000000000000014e-12)
    """
    if exponent < 0:
        return 1.0 / powi(base, -exponent)
    result = 1.0
    while True:
        if exponent & 1:
            result *= base
        exponent >>= 1
        if exponent == 0:
            return result
        base *= base


def _round_half_away(value: float) -> int:
    """Rust's ``f64::round`` (halves away from zero), unlike Python's banker's ``round``."""
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


#: The law fitted to QMK's Bacon-Shor memory circuits (``--noise qubit`` on
#: qubit_gate_ns_e3, d = 3..11, p = 1e-4..3e-3, points with P_L <= 5%); see docs/qec.md.
BACON_SHOR_CIRCUIT_LAW = ColumnLaw(
    prefactor=0.946,
    column_factor=15.32,
    damping=35.1,
    source="fitted to stim memory experiments of qmk.experiments.circuits' bacon_shor "
    "circuits, see docs/qec.md",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QecScheme:
    """A code family on one qubit technology (see the module docstring).

    Attributes:
        family: the canonical family name, a key of :data:`qmk.qvm.profiles.FAMILIES`.
        instruction_set: ``"gate_based"`` or ``"majorana"``.
        crossing_prefactor: ``a`` in the threshold formula (QRE allows at most 0.5).
        error_correction_threshold: ``p*`` in the threshold formula.
        logical_cycle_time: ns per logical cycle, over the qubit times and ``codeDistance``.
        physical_qubits_per_logical_qubit: over ``codeDistance`` only (as in QRE).
        syndrome_rounds: syndrome-extraction (decoder) rounds per logical cycle.
        max_distance: the largest code distance the scheme accepts.
        distance_coefficient_power: QRE's ``distanceCoefficientPower``: ``P_L`` carries a
            factor ``d ** power`` (0 for every predefined scheme).
        name: the scheme's name as a QRE job writes it (a custom scheme's own name);
            empty: the family's.
        custom: a QRE custom scheme: ``family`` is its name, not one of the profile families.
        qre: True for QRE's own predefined schemes.
        sources: where the values come from.
        notes: the reasoning behind values that are QMK's assumptions.
        law: a Bacon-Shor :class:`ColumnLaw` that replaces the threshold formula (from a
            calibration; the estimator's QRE-form path does not read it).
    """

    family: str
    instruction_set: str
    crossing_prefactor: float
    error_correction_threshold: float
    logical_cycle_time: Formula
    physical_qubits_per_logical_qubit: Formula
    syndrome_rounds: Formula = ROUNDS_PER_CYCLE
    max_distance: int = QRE_MAX_CODE_DISTANCE
    distance_coefficient_power: int = 0
    name: str = ""
    custom: bool = False
    qre: bool = False
    sources: tuple[str, ...] = ()
    notes: str = ""
    law: ColumnLaw | None = None

    def __post_init__(self) -> None:
        where = f"scheme {self.family}/{self.instruction_set}"
        if self.family not in FAMILIES and not self.custom:
            raise QECError.of("unknown-profile", f"{where}: {unknown_family(self.family)}")
        if self.instruction_set not in INSTRUCTION_SETS:
            raise QECError.of(
                "bad-parameter", f"{where}: unknown instruction set {self.instruction_set!r}"
            )
        if not 0 < self.crossing_prefactor <= 0.5:
            raise QECError.of("bad-parameter", f"{where}: crossing_prefactor must be in (0, 0.5]")
        if not 0 < self.error_correction_threshold < 1:
            raise QECError.of(
                "bad-parameter", f"{where}: error_correction_threshold must be in (0, 1)"
            )
        for formula in (self.physical_qubits_per_logical_qubit, self.syndrome_rounds):
            extra = sorted(formula.names - {"codeDistance"})
            if extra:
                raise QECError.of(
                    "bad-parameter",
                    f"{where}: formula {formula.text!r} may name only codeDistance, not {extra[0]}",
                )
        if self.max_distance < 1:
            raise QECError.of("bad-parameter", f"{where}: max_distance must be at least 1")

    def _check_distance(self, distance: int) -> None:
        if isinstance(distance, bool) or not isinstance(distance, int) or distance < 1:
            raise QECError.of(
                "bad-parameter", f"code distance must be a whole number >= 1, got {distance!r}"
            )
        if distance > self.max_distance:
            raise QECError.of(
                "distance-too-large",
                f"{self.family} on {self.instruction_set} qubits allows distances up to "
                f"{self.max_distance}, got {distance}",
                distance=distance,
                max_distance=self.max_distance,
            )

    def physical_qubits(self, distance: int) -> int:
        """Physical qubits per logical qubit at ``distance`` (QRE truncates to an integer).

        Raises:
            QECError: ``QC107`` above :attr:`max_distance`; ``QC103`` for a bad distance
                or a formula that is not positive there.
        """
        self._check_distance(distance)
        value = self.physical_qubits_per_logical_qubit.evaluate({"codeDistance": distance})
        if value <= 0:
            raise QECError.of(
                "bad-parameter", f"{self.family}: physical qubits at d={distance} are {value}"
            )
        return int(value)

    def cycle_time_ns(self, qubit: QubitParams, distance: int) -> int:
        """The logical cycle time in ns at ``distance`` (QRE rounds to whole ns).

        Raises:
            QECError: ``QC105`` when the qubit has another instruction set; ``QC107``/``QC103``
                as for :meth:`physical_qubits`.
        """
        self._check_qubit(qubit)
        self._check_distance(distance)
        variables = {**_time_variables(qubit), "codeDistance": float(distance)}
        value = self.logical_cycle_time.evaluate(variables)
        if value <= 0:
            raise QECError.of(
                "bad-parameter", f"{self.family}: logical cycle time at d={distance} is {value}"
            )
        return _round_half_away(value)

    def rounds(self, distance: int) -> int:
        """Syndrome-extraction rounds per logical cycle at ``distance``."""
        self._check_distance(distance)
        return _round_half_away(self.syndrome_rounds.evaluate({"codeDistance": distance}))

    def logical_error_rate(self, physical_error_rate: float, distance: int) -> float:
        """``P_L = a * (p / p*) ** ((d + 1) // 2)``, computed as QRE computes it
        (or the :attr:`law`'s rate, which has no threshold, when the scheme has one).

        Raises:
            QECError: ``QC106 above-threshold`` when ``p > p*`` (QRE's rule);
                ``QC107``/``QC103`` as for :meth:`physical_qubits`.
        """
        self._check_distance(distance)
        self._check_rate(physical_error_rate)
        if self.law is not None:
            return self.law.rate(physical_error_rate, distance)
        if physical_error_rate > self.error_correction_threshold:
            raise self._above(physical_error_rate)
        ratio = physical_error_rate / self.error_correction_threshold
        if self.distance_coefficient_power:
            return (
                self.crossing_prefactor
                * float(distance**self.distance_coefficient_power)
                * powi(ratio, (distance + 1) // 2)
            )
        return self.crossing_prefactor * powi(ratio, (distance + 1) // 2)

    def distance_for(self, physical_error_rate: float, target: float) -> int:
        """The smallest odd distance whose ``P_L`` meets ``target`` (QRE's Eq. E2).

        ``d = ceil(2 ln(a / target) / ln(p* / p) - 1)``, made odd, as QRE's
        ``compute_code_parameter`` does. Under a :attr:`law`, the smallest odd
        ``d >= 3`` whose law rate meets ``target``.

        Raises:
            QECError: ``QC107 distance-too-large`` above :attr:`max_distance`,
                ``QC106`` above threshold, ``QC103`` for a target outside (0, 1).
        """
        self._check_rate(physical_error_rate)
        if not 0 < target < 1:
            raise QECError.of("bad-parameter", f"target logical error rate {target!r} not in (0,1)")
        if self.law is not None:
            return self._law_distance(self.law, physical_error_rate, target)
        if physical_error_rate >= self.error_correction_threshold:
            raise self._above(physical_error_rate)
        numerator = 2.0 * math.log(self.crossing_prefactor / target)
        denominator = math.log(self.error_correction_threshold / physical_error_rate)
        distance = max(0, math.ceil(numerator / denominator - 1.0)) | 1
        if distance > self.max_distance:
            raise QECError.of(
                "distance-too-large",
                f"the computed code distance {distance} is too high; {self.family} allows up to "
                f"{self.max_distance}; try a larger error budget",
                distance=distance,
                max_distance=self.max_distance,
            )
        return distance

    def _law_distance(self, law: ColumnLaw, p: float, target: float) -> int:
        for distance in range(3, self.max_distance + 1, 2):
            if law.rate(p, distance) <= target:
                return distance
        best = law.best_distance(p, self.max_distance)
        raise QECError.of(
            "distance-too-large",
            f"{self.family} has no threshold: at p = {p:g} its lowest logical error rate is "
            f"{law.rate(p, best):.3g} per cycle at d = {best}, above the target {target:g}; "
            "larger codes are worse",
            distance=best,
            max_distance=self.max_distance,
        )

    @property
    def has_threshold(self) -> bool:
        """Whether the scheme's rate follows the threshold formula (False under a law)."""
        return self.law is None

    def _check_qubit(self, qubit: QubitParams) -> None:
        if qubit.instruction_set != self.instruction_set:
            raise QECError.of(
                "scheme-not-supported",
                f"this {self.family} scheme is for {self.instruction_set} qubits; "
                f"{qubit.name!r} is {qubit.instruction_set}",
            )

    def _check_rate(self, rate: float) -> None:
        if not 0 < rate < 1:
            raise QECError.of("bad-parameter", f"physical error rate {rate!r} not in (0, 1)")

    def _above(self, rate: float) -> QECError:
        return QECError.of(
            "above-threshold",
            f"physical error rate {rate:g} is not below the {self.family} threshold "
            f"{self.error_correction_threshold:g} on {self.instruction_set} qubits",
            physical_error_rate=rate,
            threshold=self.error_correction_threshold,
        )


_QRE_SOURCE = (
    "Azure Quantum Resource Estimator, "
    "https://learn.microsoft.com/azure/quantum/overview-resources-estimator; "
    "microsoft/qsharp source/resource_estimator/src/system/modeling/fault_tolerance.rs"
)

SURFACE_CODE_GATE_BASED = QecScheme(
    family="surface_code",
    instruction_set=GATE_BASED,
    crossing_prefactor=0.03,
    error_correction_threshold=0.01,
    logical_cycle_time=Formula(
        "(4 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance"
    ),
    physical_qubits_per_logical_qubit=Formula("2 * codeDistance * codeDistance"),
    qre=True,
    sources=(
        _QRE_SOURCE,
        "Fowler, Mariantoni, Martinis, Cleland, arXiv:1208.0928, Eqs. (11) and (13)",
        "Wang, Fowler, Hollenberg, arXiv:1009.3686, Figs. 6-7",
    ),
    notes="QRE's surface_code for gate-based qubits: d rounds of 4 CNOT layers and "
    "2 measurement times each; d^2 data plus d^2 - 1 ancilla qubits, rounded to 2 d^2.",
)

SURFACE_CODE_MAJORANA = QecScheme(
    family="surface_code",
    instruction_set=MAJORANA,
    crossing_prefactor=0.08,
    error_correction_threshold=0.0015,
    logical_cycle_time=Formula("20 * oneQubitMeasurementTime * codeDistance"),
    physical_qubits_per_logical_qubit=Formula("2 * codeDistance * codeDistance"),
    qre=True,
    sources=(_QRE_SOURCE, "Chao, Beverland, Delfosse, Haah, arXiv:2007.00307, Eq. (1)"),
    notes="QRE's surface_code for Majorana (measurement-based) qubits: each stabilizer "
    "round is a sequence of 20 measurement times.",
)

FLOQUET_CODE = QecScheme(
    family="floquet_code",
    instruction_set=MAJORANA,
    crossing_prefactor=0.07,
    error_correction_threshold=0.01,
    logical_cycle_time=Formula("3 * oneQubitMeasurementTime * codeDistance"),
    physical_qubits_per_logical_qubit=Formula(
        "4 * codeDistance * codeDistance + 8 * (codeDistance - 1)"
    ),
    qre=True,
    sources=(_QRE_SOURCE, "Paetznick et al., arXiv:2202.11829, Table 2"),
    notes="QRE's floquet_code (honeycomb, Majorana qubits only): 3 two-body measurement "
    "sub-rounds per round.",
)

BACON_SHOR = QecScheme(
    family="bacon_shor",
    instruction_set=GATE_BASED,
    law=BACON_SHOR_CIRCUIT_LAW,
    crossing_prefactor=0.1,
    error_correction_threshold=0.003,
    logical_cycle_time=Formula(
        "(4 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance"
    ),
    physical_qubits_per_logical_qubit=Formula("3 * codeDistance * codeDistance - 2 * codeDistance"),
    sources=(
        "Bacon, arXiv:quant-ph/0506023 (the [[d^2, 1, d]] subsystem code)",
        "Aliferis, Cross, arXiv:quant-ph/0610063 (weight-2 gauge measurements)",
        "Alam, Chen, Scruby, 'Bacon-Shor Board Games', arXiv:2504.02749 "
        "(period-4 schedule; threshold ~0.3% under circuit noise with MWPM)",
    ),
    notes="Its logical error rate is BACON_SHOR_CIRCUIT_LAW, a ColumnLaw fitted to stim "
    "memory experiments of QMK's own circuits of the period-4 schedule (chi2/dof 1.8; "
    "docs/qec_experiments.md): the code has no threshold, and at p = 1e-3 its best distance "
    "is d = 7 at 3.4e-3 per cycle, so the estimator finds it infeasible there for any "
    "program of size; at p = 1e-4 and d = 25 the law gives 1.7e-12. The threshold form's "
    "figures kept beside it (p* = 0.003, the ~0.3% circuit-level threshold of "
    "arXiv:2504.02749; a = 0.1) apply only where a job restates them (qecScheme "
    "errorCorrectionThreshold or crossingPrefactor). A calibration with a law (qmk qec "
    "calibrate --code bacon_shor) replaces the law. Qubits and cycle time are QMK's "
    "modelling assumption: d^2 data plus one ancilla per weight-2 gauge (2 d (d - 1)), "
    "no reuse. A round measures the XX then the ZZ gauges, 2 CNOT layers and a "
    "measurement each, the same 4 CNOT + 2 measurement times as the surface code; d "
    "rounds per logical cycle.",
)

SHYPS = QecScheme(
    family="SHYPS",
    instruction_set=GATE_BASED,
    crossing_prefactor=0.0372,
    error_correction_threshold=0.003,
    logical_cycle_time=Formula(
        "(6 * twoQubitGateTime + 2 * oneQubitMeasurementTime) * codeDistance"
    ),
    physical_qubits_per_logical_qubit=Formula(
        "ceil(3 * (2 ** max(3, ceil(log2(codeDistance)) + 1) - 1) ** 2"
        " / max(3, ceil(log2(codeDistance)) + 1) ** 2)"
    ),
    sources=(
        "Malcolm et al. (Photonic Inc.), 'Computing Efficiently in QLDPC Codes', "
        "arXiv:2502.07150 (SHYPS codes [[(2^r-1)^2, r^2, 2^(r-1)]], weight-3 gauges; "
        "pseudo-thresholds ~0.32% and ~0.35% for [[49,9,4]] and [[225,16,8]])",
        "Error Correction Zoo, https://errorcorrectionzoo.org/c/shyps (checked for QMK: the "
        "code parameters, weight-3 gauges and the two pseudo-thresholds, from memory "
        "simulations under circuit-level noise with a sliding-window BP+LSD decoder)",
        "fitted: qmk qec calibrate --code SHYPS --d 4 --p 0.0002:0.001 --points 5 "
        "--shots 40000 --max-errors 400 --seed 78 (qmk.experiments.shyps' [[49,9,4]] "
        "memory circuits decoded by BP+OSD; docs/qec.md)",
    ),
    notes="a is fitted to QMK's SHYPS memory circuits: the [[49,9,4]] block built from "
    "the simplex code (k = 9 and d = 4 checked exactly), --noise qubit on "
    "qubit_gate_ns_e3, decoded by BP+OSD, P_L per logical qubit per cycle of d = 4 "
    "rounds; a = 0.0372 +- 0.0019, chi2/dof 13.9/4. One block's distance fixes only "
    "a / p*^2, so p* = 0.003 stays stated, below the reported pseudo-thresholds; larger "
    "distances follow from the QRE exponent, an extrapolation. A rough fit of a and p* "
    "from the [[49,9,4]] and [[225,16,8]] blocks (docs/qec.md: p* = 0.000868 +- 0.00013) "
    "is not adopted: its p* is below the default qubit's 1e-3. The rest is QMK's "
    "modelling assumption. A profile "
    "SHYPS(d=N) uses the smallest SHYPS block with distance >= N: r = max(3, ceil(log2 "
    "N) + 1), n = (2^r - 1)^2 data qubits, k = r^2 logical qubits; each logical qubit "
    "is charged ceil(3 n / k) physical qubits (data plus one ancilla per weight-3 gauge, "
    "2 n, no reuse), far above the paper's claimed savings. P_L uses the requested N, "
    "not the block's larger distance. A round measures the X then the Z gauges, 3 CNOT "
    "layers and a measurement each; d rounds per logical cycle, although SHYPS codes are "
    "reported single-shot.",
)

#: The QEC schemes, by family (keys of ``qmk.qvm.profiles.FAMILIES``) and instruction set.
SCHEMES: Mapping[str, Mapping[str, QecScheme]] = MappingProxyType(
    {
        "surface_code": MappingProxyType(
            {GATE_BASED: SURFACE_CODE_GATE_BASED, MAJORANA: SURFACE_CODE_MAJORANA}
        ),
        "floquet_code": MappingProxyType({MAJORANA: FLOQUET_CODE}),
        "bacon_shor": MappingProxyType({GATE_BASED: BACON_SHOR}),
        "SHYPS": MappingProxyType({GATE_BASED: SHYPS}),
    }
)


def scheme_for(family: str, instruction_set: str | QubitParams) -> QecScheme:
    """The scheme of ``family`` for a qubit technology.

    Args:
        family: a family's name or alias (``Profile.family``, ``surfaceCode``; any case).
        instruction_set: ``"gate_based"``, ``"majorana"``, or qubit parameters.

    Returns:
        The scheme.

    Raises:
        QECError: ``QC102 unknown-profile`` for an unknown family; ``QC105
            scheme-not-supported`` when the family has no scheme for that
            instruction set (QRE refuses floquet_code on gate-based qubits).
    """
    name = instruction_set.name if isinstance(instruction_set, QubitParams) else None
    kind = (
        instruction_set.instruction_set
        if isinstance(instruction_set, QubitParams)
        else instruction_set
    )
    canonical = family_name(family) if isinstance(family, str) else None
    variants = None if canonical is None else SCHEMES.get(canonical)
    if canonical is None or variants is None:
        raise QECError.of("unknown-profile", unknown_family(str(family)), family=str(family))
    family = canonical
    scheme = variants.get(kind)
    if scheme is None:
        qubit = f" (qubit parameters {name!r})" if name else ""
        raise QECError.of(
            "scheme-not-supported",
            f"{family} has no scheme for {kind} qubits{qubit}; it supports "
            f"{', '.join(variants)} qubits",
            family=family,
            instruction_set=kind,
        )
    return scheme
