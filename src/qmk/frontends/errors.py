"""Errors of the front-ends (and of the OpenQASM 3 writer): where, and what is wrong (exit 2).

This module registers the ``QL`` family in :data:`qmk.errors.REGISTRY`; the codes are
stable and ``docs/errors.md`` lists them.

>>> err = FrontendError.at("unsupported", "prog.qasm", 7, "gate rccx is not supported")
>>> str(err)
'QL104 unsupported: prog.qasm:7: gate rccx is not supported'
>>> err.exit_status, err.details["line"]
(2, 7)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmk.errors import REGISTRY, ErrorCode, QMKError, QuotaError, Severity, register


class FrontendError(QMKError):
    """A source program the front-end cannot lower (exit 2)."""

    exit_status = 2

    @classmethod
    def at(
        cls, name: str, source: str, line: int | None, message: str, **details: Any
    ) -> FrontendError:
        """The error for ``name`` at ``source:line`` (``line`` None: the whole source)."""
        where = f"{source}:{line}: " if line is not None else f"{source}: "
        return cls.of(name, where + message, source=source, line=line, **details)


def too_many_nodes(name: str, what: str, needed: int, limit: int) -> QuotaError:
    """The refusal of a program past its node cap (``kernel.max_graph_nodes``)."""
    return QuotaError(
        f"{name}: {what}: at least {needed} nodes, past the {limit} a graph may have "
        "(kernel.max_graph_nodes); nothing was built",
        limit="max_graph_nodes",
        value=limit,
        needed=needed,
    )


register(
    FrontendError,
    ("QL101", "syntax", "the source does not parse", "fix the source at the line given"),
    (
        "QL102",
        "undefined",
        "a gate, register, variable or function that is not defined",
        "define it, or include the file that does (e.g. qelib1.inc, stdgates.inc)",
    ),
    (
        "QL103",
        "arity",
        "a gate or call with the wrong number of qubits or parameters",
        "give the counts the gate's definition takes",
    ),
    (
        "QL104",
        "unsupported",
        "a construct QMK does not support (named, never dropped)",
        "rewrite the construct; docs/frontends.md lists what each language supports",
    ),
    (
        "QL105",
        "unreadable",
        "a file that cannot be read, or truncated/invalid bitcode",
        "check the path, and that the file is UTF-8 text or complete bitcode",
    ),
    (
        "QL106",
        "missing-extra",
        "an optional dependency the front-end needs is not installed",
        "install the package the message names; pip install 'quantum-microkernel[all]' has all",
    ),
    (
        "QL107",
        "bad-value",
        "a value out of range (index, angle, width, shots)",
        "give a value in the range the message names",
    ),
    (
        "QL108",
        "unknown-format",
        "a file type QMK cannot tell: pass --format",
        "pass --format, or use an extension QMK knows (.json .asm .qasm .ll .bc)",
    ),
    (
        "QL109",
        "not-expressible",
        "a QVM node the OpenQASM 3 writer cannot write (named by index, id and op)",
        "rewrite the node; docs/frontends.md lists what each op becomes in OpenQASM 3",
    ),
    (
        "QL110",
        "loop-cap",
        "a loop that runs past its iteration cap in every run (a shot that does so in some "
        "runs stops the run with QE115 instead)",
        "bound the loop, or raise its cap with 'pragma qmk loop_cap N' before it",
    ),
    (
        "QL111",
        "version-rule",
        "a construct of another OpenQASM version than the program's header says (OpenQASM 3 "
        "syntax under OPENQASM 2.0, the other version's gate library or built-in gate)",
        "write the construct as the header's version does, or change the header",
    ),
)
REGISTRY.add(
    ErrorCode(
        code="QL112",
        name="dialect",
        summary="a vendor's OpenQASM dialect, read as the vendor defines it (Amazon Braket's "
        "gates without stdgates.inc, pytket's hqslib1.inc/oqclib1.inc, Q#'s rxx/ryy/rzz)",
        fix="nothing to do if the vendor's meaning is meant; include the standard library "
        "and define the gates to be portable",
        exception=FrontendError,
        severity=Severity.WARNING,
    ),
    ErrorCode(
        code="QL113",
        name="timing-ignored",
        summary="a duration that is timing only (box[d]): the body runs, QMK models no idle time",
        fix="nothing to do for results; drop the duration to silence it",
        exception=FrontendError,
        severity=Severity.WARNING,
    ),
    ErrorCode(
        code="QL114",
        name="annotation-ignored",
        summary="a stim circuit's DETECTOR or OBSERVABLE_INCLUDE lowered to QVM (for the logical "
        "machine, lattice surgery or a device): it samples the measurement record (as stim's "
        "compile_sampler), not detectors or observables",
        fix="run the circuit on the stim target (qmk run's default for a .stim file), which "
        "computes them (--detectors, --decode); or compute them from the record",
        exception=FrontendError,
        severity=Severity.WARNING,
    ),
)

#: Every QL code, by code.
CODES: Mapping[str, ErrorCode] = REGISTRY.family("QL")
