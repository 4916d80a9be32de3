"""Errors of the QVM layer and their codes.

- ``QF``: input that cannot be read as a graph (exit status 2).
- ``QA``: assembly text that does not assemble (exit status 2).
- ``QV``: verifier findings about a graph that was read (exit status 1 when any is an
  error).

This module registers every code of the three families in :data:`qmk.errors.REGISTRY`;
:mod:`qmk.qvm.codes` gives the layer's views of them. Codes never change meaning once
published; ``docs/errors.md`` and ``docs/qvm.md`` list them, and a test fails when they drift.

>>> err = FormatError.of("not-json", "prog.json:1:2: Expecting value")
>>> str(err)
'QF004 not-json: prog.json:1:2: Expecting value'
>>> err.exit_status
2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qmk.errors import REGISTRY, ErrorCode, QMKError, Severity

if TYPE_CHECKING:
    from qmk.qvm.verify import Finding


class QVMError(QMKError):
    """Base of the QVM layer's errors."""


class FormatError(QVMError):
    """Input that cannot be read as a graph: not JSON, wrong shape, too large (exit 2)."""

    exit_status = 2

    def located(self, source: str) -> FormatError:
        """The same error with ``source:`` in front of its message."""
        return type(self)(self.code, self.name, f"{source}: {self.message}", details=self.details)

    @classmethod
    def wrong_type(cls, path: str, expected: str, value: Any) -> FormatError:
        """``wrong-type`` at ``path``: ``expected`` was wanted, ``value``'s JSON type came."""
        return cls.of(
            "wrong-type", f"{path}: expected {expected}, got {_type_name(value)}", path=path
        )


def _type_name(value: Any) -> str:
    """The JSON type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def unwritable(path: object, exc: OSError) -> FormatError:
    """``QF012 unwritable-file`` for ``path``, which could not be written (``exc``).

    >>> str(unwritable("/no/dir/out.json", FileNotFoundError(2, "No such file or directory")))
    'QF012 unwritable-file: /no/dir/out.json: cannot write: No such file or directory'
    """
    return FormatError.of("unwritable-file", f"{path}: cannot write: {exc.strerror or exc}")


class AsmError(FormatError):
    """Assembly text that does not assemble; the message starts with ``file:line:``."""

    @classmethod
    def at(cls, name: str, source: str, line: int, message: str, text: str = "") -> AsmError:
        """Build the error for code ``name`` at ``source:line``, quoting the offending text."""
        where = f"{source}:{line}: "
        quote = f" [line is: {text.strip()}]" if text.strip() else ""
        return cls.of(name, f"{where}{message}{quote}", source=source, line=line)


class VerificationError(QVMError):
    """A graph with error findings; ``findings`` holds every one of them (exit 1)."""

    exit_status = 1

    def __init__(self, findings: Sequence[Finding]) -> None:
        errors = [f for f in findings if f.is_error]
        first = errors[0] if errors else findings[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(
            first.code,
            first.name,
            f"{first.message}{more}",
            details={"findings": [f.to_json() for f in findings]},
        )
        self.findings = tuple(findings)


class UnrollError(QVMError):
    """A program whose REPEAT rows unroll past the limit of a consumer that applies
    operations one at a time (:func:`qmk.qvm.fold.unroll`; exit 1, as every ``QV``
    error). Nothing was unrolled."""

    exit_status = 1


class PlacementError(QVMError):
    """A placement of a program's qubits on modules that names unknown qubits or modules
    or that the modules cannot hold, or an op across modules that has no teleported form
    (:mod:`qmk.qvm.teleport`; exit 1, as every ``QV`` error)."""

    exit_status = 1


def _c(
    exception: type[QVMError],
    code: str,
    name: str,
    summary: str,
    fix: str,
    *,
    warning: bool = False,
) -> ErrorCode:
    severity = Severity.WARNING if warning else Severity.ERROR
    return ErrorCode(
        code=code, name=name, summary=summary, fix=fix, exception=exception, severity=severity
    )


REGISTRY.add(
    # QF: input that cannot be read as a graph
    _c(
        FormatError,
        "QF001",
        "unreadable-file",
        "the file cannot be opened or read",
        "check the path",
    ),
    _c(
        FormatError,
        "QF002",
        "too-large",
        "the input is larger than the configured byte limit",
        "split the program or raise Limits.max_bytes",
    ),
    _c(FormatError, "QF003", "not-utf8", "the input is not UTF-8 text", "save the file as UTF-8"),
    _c(
        FormatError,
        "QF004",
        "not-json",
        "the input is not valid JSON",
        "fix the JSON at the line and column given",
    ),
    _c(
        FormatError,
        "QF005",
        "too-deep",
        "values are nested deeper than the configured limit",
        "flatten args/metadata or raise Limits.max_depth",
    ),
    _c(
        FormatError,
        "QF006",
        "wrong-type",
        "a field has the wrong JSON type",
        "give the type the schema names (see qmk schema)",
    ),
    _c(
        FormatError,
        "QF007",
        "unknown-key",
        "an object has a key the schema does not allow",
        "remove the key, or move free-form data under metadata",
    ),
    _c(FormatError, "QF008", "missing-key", "a required key is missing", "add the key"),
    _c(FormatError, "QF009", "duplicate-key", "an object repeats a key", "keep one of the keys"),
    _c(
        FormatError,
        "QF010",
        "unsupported-version",
        "the graph's version is not one this QMK reads",
        "write version 0.1, 0.2 or 0.3",
    ),
    _c(
        FormatError,
        "QF011",
        "bad-value",
        "a value is out of its allowed set (e.g. a guard equals 2)",
        "use a value the schema allows",
    ),
    _c(
        FormatError,
        "QF012",
        "unwritable-file",
        "a file a command was asked to write cannot be written",
        "check that the file's folder exists and is writable, and that the disk has room",
    ),
    _c(
        FormatError,
        "QF013",
        "prover-unavailable",
        "qmk validate --prove needs the z3 SMT solver, which is not installed",
        "pip install 'quantum-microkernel[prove]' (z3-solver)",
    ),
    # QA: assembly text
    _c(
        AsmError,
        "QA001",
        "asm-syntax",
        "a line of assembly does not parse",
        "fix the line; see docs/qvm.md#assembly-text",
    ),
    _c(
        AsmError,
        "QA002",
        "asm-undefined",
        "an expression names an undefined parameter or macro",
        "define it with .param or .macro before use",
    ),
    _c(
        AsmError,
        "QA003",
        "asm-expression",
        "an expression cannot be evaluated",
        "use numbers, parameters, + - * / // % **, and the listed functions",
    ),
    _c(
        AsmError,
        "QA004",
        "asm-directive",
        "a directive is unknown, misplaced or unbalanced",
        "match every .for/.if/.macro with its .end",
    ),
    _c(
        AsmError,
        "QA005",
        "asm-include",
        "an included file cannot be read or includes itself",
        "check the path, which is relative to the including file",
    ),
    _c(
        AsmError,
        "QA006",
        "asm-expansion-limit",
        "loops or macros expand past the node limit",
        "reduce the loop bounds or raise Limits.max_nodes",
    ),
    # QV1xx: an op and its operands/args
    _c(
        VerificationError,
        "QV101",
        "unknown-op",
        "the op is not in the op table",
        "use an op from docs/qvm.md",
    ),
    _c(
        VerificationError,
        "QV102",
        "operand-count",
        "the op got the wrong number of vqs, chs, inputs or produces",
        "give the counts the op table lists",
    ),
    _c(
        VerificationError,
        "QV103",
        "arg-missing",
        "a required argument is missing",
        "add the argument",
    ),
    _c(
        VerificationError,
        "QV104",
        "arg-invalid",
        "an argument has the wrong type or is out of range",
        "give a value of the listed type and range",
    ),
    _c(
        VerificationError,
        "QV105",
        "arg-unknown",
        "an argument the op does not take",
        "remove the argument",
    ),
    _c(
        VerificationError,
        "QV106",
        "alloc-count-mismatch",
        "ALLOC_LQ's n differs from the number of vqs",
        "make n equal the number of vqs, or drop n",
    ),
    _c(
        VerificationError,
        "QV107",
        "profile-invalid",
        "a code profile does not parse",
        "write logical:FAMILY(d=N), e.g. logical:surface_code(d=9)",
    ),
    _c(
        VerificationError,
        "QV108",
        "profile-unknown",
        "a code profile names an unknown code family",
        "use surface_code, floquet_code, bacon_shor or SHYPS",
    ),
    _c(
        VerificationError,
        "QV109",
        "duplicate-node-id",
        "two nodes share an id",
        "give every node its own id",
    ),
    _c(
        VerificationError,
        "QV110",
        "duplicate-operand",
        "the same handle appears twice in one op",
        "use distinct qubits, channels or events in one op",
    ),
    _c(
        VerificationError,
        "QV111",
        "classical-type",
        "a CALC node's type, operand types or expression is not well formed or well typed",
        "see docs/qvm.md#classical-values for the types, operators and casts",
    ),
    # QV2xx: handle lifetimes and declarations
    _c(
        VerificationError,
        "QV201",
        "undeclared-handle",
        "a node names a handle absent from resources",
        "declare it in resources.vqs, resources.chs or resources.events",
    ),
    _c(
        VerificationError,
        "QV202",
        "use-after-free",
        "a qubit is used after FREE_LQ",
        "allocate it again first",
    ),
    _c(
        VerificationError,
        "QV203",
        "use-before-alloc",
        "a qubit is used before any ALLOC_LQ",
        "allocate it with ALLOC_LQ before this node",
    ),
    _c(VerificationError, "QV204", "double-free", "a qubit is freed twice", "free it once"),
    _c(
        VerificationError,
        "QV205",
        "double-alloc",
        "a live qubit is allocated again",
        "free it first, or use another handle",
    ),
    _c(
        VerificationError,
        "QV206",
        "duplicate-declaration",
        "resources declares a handle twice",
        "list each handle once",
    ),
    _c(
        VerificationError,
        "QV207",
        "qubit-leak",
        "a qubit is still live at the end of the program",
        "free it with FREE_LQ",
        warning=True,
    ),
    _c(
        VerificationError,
        "QV208",
        "guarded-lifetime",
        "a guarded node allocates or frees a qubit (opens or closes a channel), and a later "
        "node may then use it dead, free it twice or allocate it live, on some values of the "
        "events: the verifier does not follow guards that far",
        "guard the later node like the first (or with the opposite value), or check every "
        "valuation with qmk validate --prove",
    ),
    # QV3xx: events and order
    _c(
        VerificationError,
        "QV301",
        "event-produced-twice",
        "two nodes (or one twice) produce the same event",
        "give each measurement its own event",
    ),
    _c(
        VerificationError,
        "QV302",
        "event-never-produced",
        "a guard or input reads an event nothing produces",
        "produce the event with a measurement, or remove the reader",
    ),
    _c(
        VerificationError,
        "QV303",
        "event-read-before-produced",
        "a guard or input reads an event produced later in list order",
        "move the reader after the node that produces the event",
    ),
    _c(
        VerificationError,
        "QV304",
        "dependency-cycle",
        "a reader waits for an event whose producer waits for the reader",
        "move the reader after the producer and break the cycle",
    ),
    # QV4xx: channels
    _c(
        VerificationError,
        "QV401",
        "channel-before-open",
        "a channel is used before OPEN_CHAN",
        "open it with OPEN_CHAN first",
    ),
    _c(
        VerificationError,
        "QV402",
        "channel-after-close",
        "a channel is used or closed after CLOSE_CHAN",
        "open a new channel",
    ),
    _c(
        VerificationError,
        "QV403",
        "channel-double-open",
        "an open channel is opened again",
        "close it first, or use another handle",
    ),
    _c(
        VerificationError,
        "QV404",
        "channel-leak",
        "a channel is still open at the end of the program",
        "close it with CLOSE_CHAN",
        warning=True,
    ),
    # QV5xx: capabilities and limits
    _c(
        VerificationError,
        "QV501",
        "capability-missing",
        "the graph does not request a capability a node needs",
        "add the capability to the graph's caps",
    ),
    _c(
        VerificationError,
        "QV502",
        "capability-unknown",
        "the graph or a node names a capability QMK does not know",
        "remove it; known capabilities are listed in docs/qvm.md",
        warning=True,
    ),
    _c(
        VerificationError,
        "QV503",
        "graph-too-large",
        "the graph exceeds a configured size limit",
        "split the program or raise the limit (qmk validate --max-nodes ...)",
    ),
    _c(
        VerificationError,
        "QV504",
        "tenants-entangled",
        "a node that runs on some values of the events joins qubits of two tenants without "
        "a channel bound to them (qmk validate --prove: the entanglement firewall)",
        "open a channel between the tenants and bind it (policy.channels; --channels), or "
        "keep each op on one tenant's qubits",
    ),
    _c(
        UnrollError,
        "QV505",
        "unrolled-too-large",
        "a consumer that applies operations one at a time was given a program whose "
        "REPEAT rows unroll past the configured limit",
        "use a consumer that reads the program folded (qmk validate, info, estimate), "
        "lower the REPEAT counts, or raise Limits.max_unrolled_nodes",
    ),
    # QV6xx: placement on modules and teleportation (qmk.qvm.teleport)
    _c(
        PlacementError,
        "QV601",
        "bad-placement",
        "a placement names a qubit the program does not allocate or a module the machine "
        "does not have, or leaves a qubit unplaced",
        "place every allocated qubit on a module 0..modules-1 (NAME=MODULE,...)",
    ),
    _c(
        PlacementError,
        "QV602",
        "placement-does-not-fit",
        "the program's qubits (with the EPR pairs' halves) do not fit the modules",
        "use more or larger modules, or a program with fewer qubits live at once",
    ),
    _c(
        PlacementError,
        "QV603",
        "cannot-teleport",
        "an op acts on qubits of different modules and has no teleported form",
        "place its qubits on one module",
    ),
    # QV7xx: bounded repetition (REPEAT rows; qmk.qvm.fold)
    _c(
        VerificationError,
        "QV701",
        "repeat-unbalanced",
        "a REPEAT body starts a handle's lifetime it does not end, or ends one it did not "
        "start, so its turns would not leave the handle as they found it",
        "free (close) in the body every qubit (channel) the body allocates (opens), and "
        "allocate in it every one it frees",
    ),
    _c(
        VerificationError,
        "QV702",
        "repeat-event-escapes",
        "a node after a REPEAT row reads an event its body produces (each turn produces its own)",
        "read the event inside the body, or measure again after the REPEAT row",
    ),
    _c(
        VerificationError,
        "QV703",
        "repeat-invalid",
        "a REPEAT row is malformed: a count that is not a whole number >= 1, an empty "
        "body, operands, a guard, capabilities, or a guarded lifetime change in its body",
        "write REPEAT N { ... } with N >= 1 around unguarded allocations and frees",
    ),
    # QV704..QV706: blocks (program.blocks, CALL rows; qmk.qvm.fold)
    _c(
        VerificationError,
        "QV704",
        "block-invalid",
        "a block is malformed: a name two blocks share, formal qubits not distinct, an empty "
        "body, or a body row that allocates, frees, measures into an event, uses a channel, "
        "holds a guard or touches a qubit that is none of its formals",
        "give each block its own name and a body of operations on its formal qubits only",
    ),
    _c(
        VerificationError,
        "QV705",
        "call-invalid",
        "a CALL row names no block, gives it another count of qubits, repeats a qubit, or "
        "holds something beside its block and qubits",
        "call a block of program.blocks as CALL NAME q1, q2, ... with one distinct qubit a formal",
    ),
    _c(
        VerificationError,
        "QV706",
        "block-recursive",
        "a block calls itself, directly or through other blocks: a call would never end",
        "write the repetition as a REPEAT row, or call a copy of the block",
    ),
)
