"""Errors of the logical-qubit layer, each with a stable ``QC`` code (exit status 2).

This module registers the ``QC`` family in :data:`qmk.errors.REGISTRY`. Codes never
change meaning once published; ``docs/errors.md`` and ``docs/qec.md`` list them, and a
test fails when they drift.

>>> err = QECError.of("unknown-qubit-params", "no qubit parameter set 'qubit_x'")
>>> str(err)
"QC101 unknown-qubit-params: no qubit parameter set 'qubit_x'"
>>> CODES["QC105"].name
'scheme-not-supported'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmk.errors import REGISTRY, ErrorCode, QMKError, Severity, register


class QECError(QMKError):
    """A logical-layer error: unknown names, bad parameters, unsupported combinations."""

    exit_status = 2


def bad_parameter(message: str, **details: Any) -> QECError:
    """``QC103 bad-parameter``: what every logical-layer check of a value raises."""
    return QECError.of("bad-parameter", message, **details)


register(
    QECError,
    (
        "QC101",
        "unknown-qubit-params",
        "no predefined physical qubit parameter set has this name",
        "use one of the six QRE sets, e.g. qubit_gate_ns_e3, or pass a QubitParams",
    ),
    (
        "QC102",
        "unknown-profile",
        "the code profile does not parse or names an unknown code family",
        "write logical:FAMILY(d=N) with a family from qmk.qvm.profiles.FAMILIES",
    ),
    (
        "QC103",
        "bad-parameter",
        "a qubit, noise or scheme parameter is missing, misplaced or out of range",
        "give the value the message names, in its stated range",
    ),
    (
        "QC104",
        "unknown-op",
        "the op-cycle table has no entry for this operation",
        "use a QVM op name (APPLY_H, MEASURE_Z, ...) or a key of OP_CYCLES",
    ),
    (
        "QC105",
        "scheme-not-supported",
        "the code family has no scheme for this qubit technology",
        "floquet_code needs Majorana qubits; bacon_shor and SHYPS need gate-based qubits",
    ),
    (
        "QC106",
        "above-threshold",
        "the physical error rate is at or above the scheme's threshold",
        "use better qubits or a code family with a higher threshold",
    ),
    (
        "QC107",
        "distance-too-large",
        "the code distance exceeds the scheme's maximum distance",
        "use a smaller distance, better qubits or a larger error budget",
    ),
    (
        "QC110",
        "no-experiment",
        "the code family has no memory-experiment circuit yet",
        "run experiments for surface_code, repetition_code or bacon_shor",
    ),
    (
        "QC111",
        "unknown-protocol",
        "no magic-state distillation protocol has this name",
        "use a protocol of qmk.qec.distill.PROTOCOLS, e.g. 15-to-1",
    ),
    (
        "QC112",
        "unknown-decoder",
        "a physics file names a decoder type QMK does not model, or a run or memory "
        "experiment a decoder QMK does not have",
        "in a physics file use type MWPM (what the threshold formula's (a, p*) describe); "
        "to decode detection events use pymatching or bposd (qmk.experiments.decoders)",
    ),
    (
        "QC113",
        "decoder-too-slow",
        "the decoder takes longer per syndrome round than the code takes to make one: "
        "its backlog grows without bound",
        "use a decoder with a cycle_time_us at most the syndrome round time the message "
        "names, or a longer logical_cycle_time_us",
    ),
    (
        "QC114",
        "decoder-unavailable",
        "the decoder named needs a package that is not installed",
        "install the extra the message names (bposd: pip install 'quantum-microkernel[bposd]', "
        "the ldpc package), or decode with pymatching",
    ),
    (
        "QC115",
        "no-matching",
        "matching found no correction for a shot's detection events: the model has errors "
        "that flip more than two detectors (a hypergraph), which matching cannot pair up",
        "decode with bposd, which reads hypergraph models",
    ),
    (
        "QC120",
        "max-duration-too-small",
        "no estimate fits the maxDuration constraint (QRE: MaxDurationTooSmall)",
        "allow a longer maxDuration, or drop the constraint to see the unconstrained runtime",
    ),
    (
        "QC121",
        "max-qubits-too-small",
        "no estimate fits the maxPhysicalQubits constraint (QRE: MaxPhysicalQubitsTooSmall)",
        "allow more physical qubits, or drop the constraint to see the unconstrained count",
    ),
    (
        "QC122",
        "conflicting-constraints",
        "constraints that QRE refuses together were given",
        "give maxDuration or maxPhysicalQubits, not both; frontier estimates take neither "
        "nor maxTFactories",
    ),
    (
        "QC123",
        "no-resources",
        "the program has no magic states and no logical depth to estimate",
        "estimate a program with at least one T, rotation, CCZ or measurement",
    ),
    (
        "QC124",
        "no-t-factory",
        "no T factory reaches the T-state error rate the budget asks for at any code "
        "distance the estimate can reach (QRE 1.31 searches on without end here)",
        "use qubits with a lower T gate error rate, a larger T-state error budget, or "
        "allow more distillation rounds",
    ),
)

REGISTRY.add(
    ErrorCode(
        code="QC130",
        name="profile-auto-unused",
        summary="profile auto chose nothing: every qubit of the program names its own code profile",
        fix="drop --profile auto (policy.profile), or the profile of the ALLOC_LQ nodes that "
        "should take the chosen code variant",
        exception=QECError,
        severity=Severity.WARNING,
    ),
    ErrorCode(
        code="QC131",
        name="profile-unused",
        summary="the profile given changed nothing: every qubit of the program names its own "
        "code profile",
        fix="drop --profile (policy.profile), or the profile of the ALLOC_LQ nodes that "
        "should take it",
        exception=QECError,
        severity=Severity.WARNING,
    ),
    ErrorCode(
        code="QC132",
        name="physics-approximated",
        summary="a value of the physics file is realized only to the nearest value the "
        "model can make (a logical cycle time from whole-ns operation times)",
        fix="give the value the message names as realized, or accept the difference it states",
        exception=QECError,
        severity=Severity.WARNING,
    ),
    ErrorCode(
        code="QC133",
        name="physics-unused",
        summary="a value of the physics file changes nothing in this run (the message "
        "says what is used instead, and where the value has an effect)",
        fix="drop the value, or use it where the message says it applies",
        exception=QECError,
        severity=Severity.WARNING,
    ),
)

#: Every QC code, by code.
CODES: Mapping[str, ErrorCode] = REGISTRY.family("QC")
