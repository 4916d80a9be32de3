"""Every stable code of the QVM layer, in one table.

Codes never change meaning once published. ``QF`` codes are input that cannot be
read as a graph (exit status 2), ``QA`` codes are assembly text that does not
assemble (exit status 2), and ``QV`` codes are verifier findings about a graph
that was read (exit status 1 when any has severity ``error``). ``docs/qvm.md``
lists this table; a test fails when they drift.

>>> CODES["QV101"].name
'unknown-op'
>>> BY_NAME["use-after-free"].code
'QV202'
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Severity(str, enum.Enum):
    """How bad a finding is: errors stop a graph from running, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """One stable code: what it means and what to do about it."""

    code: str
    name: str
    severity: Severity
    summary: str
    fix: str


def _c(code: str, name: str, summary: str, fix: str, *, warning: bool = False) -> Code:
    return Code(
        code=code,
        name=name,
        severity=Severity.WARNING if warning else Severity.ERROR,
        summary=summary,
        fix=fix,
    )


_TABLE: tuple[Code, ...] = (
    # QF: input that cannot be read as a graph
    _c("QF001", "unreadable-file", "the file cannot be opened or read", "check the path"),
    _c(
        "QF002",
        "too-large",
        "the input is larger than the configured byte limit",
        "split the program or raise Limits.max_bytes",
    ),
    _c("QF003", "not-utf8", "the input is not UTF-8 text", "save the file as UTF-8"),
    _c(
        "QF004",
        "not-json",
        "the input is not valid JSON",
        "fix the JSON at the line and column given",
    ),
    _c(
        "QF005",
        "too-deep",
        "values are nested deeper than the configured limit",
        "flatten args/metadata or raise Limits.max_depth",
    ),
    _c(
        "QF006",
        "wrong-type",
        "a field has the wrong JSON type",
        "give the type the schema names (see qmk schema)",
    ),
    _c(
        "QF007",
        "unknown-key",
        "an object has a key the schema does not allow",
        "remove the key, or move free-form data under metadata",
    ),
    _c("QF008", "missing-key", "a required key is missing", "add the key"),
    _c("QF009", "duplicate-key", "an object repeats a key", "keep one of the keys"),
    _c(
        "QF010",
        "unsupported-version",
        "the graph's version is not one this QMK reads",
        "write version 0.1 or 0.2",
    ),
    _c(
        "QF011",
        "bad-value",
        "a value is out of its allowed set (e.g. a guard equals 2)",
        "use a value the schema allows",
    ),
    # QA: assembly text
    _c(
        "QA001",
        "asm-syntax",
        "a line of assembly does not parse",
        "fix the line; see docs/qvm.md#assembly-text",
    ),
    _c(
        "QA002",
        "asm-undefined",
        "an expression names an undefined parameter or macro",
        "define it with .param or .macro before use",
    ),
    _c(
        "QA003",
        "asm-expression",
        "an expression cannot be evaluated",
        "use numbers, parameters, + - * / // % **, and the listed functions",
    ),
    _c(
        "QA004",
        "asm-directive",
        "a directive is unknown, misplaced or unbalanced",
        "match every .for/.if/.macro with its .end",
    ),
    _c(
        "QA005",
        "asm-include",
        "an included file cannot be read or includes itself",
        "check the path, which is relative to the including file",
    ),
    _c(
        "QA006",
        "asm-expansion-limit",
        "loops or macros expand past the node limit",
        "reduce the loop bounds or raise Limits.max_nodes",
    ),
    # QV1xx: an op and its operands/args
    _c("QV101", "unknown-op", "the op is not in the op table", "use an op from docs/qvm.md"),
    _c(
        "QV102",
        "operand-count",
        "the op got the wrong number of vqs, chs, inputs or produces",
        "give the counts the op table lists",
    ),
    _c("QV103", "arg-missing", "a required argument is missing", "add the argument"),
    _c(
        "QV104",
        "arg-invalid",
        "an argument has the wrong type or is out of range",
        "give a value of the listed type and range",
    ),
    _c("QV105", "arg-unknown", "an argument the op does not take", "remove the argument"),
    _c(
        "QV106",
        "alloc-count-mismatch",
        "ALLOC_LQ's n differs from the number of vqs",
        "make n equal the number of vqs, or drop n",
    ),
    _c(
        "QV107",
        "profile-invalid",
        "a code profile does not parse",
        "write logical:FAMILY(d=N), e.g. logical:surface_code(d=9)",
    ),
    _c(
        "QV108",
        "profile-unknown",
        "a code profile names an unknown code family",
        "use surface_code, floquet_code, bacon_shor or SHYPS",
    ),
    _c("QV109", "duplicate-node-id", "two nodes share an id", "give every node its own id"),
    _c(
        "QV110",
        "duplicate-operand",
        "the same handle appears twice in one op",
        "use distinct qubits, channels or events in one op",
    ),
    # QV2xx: handle lifetimes and declarations
    _c(
        "QV201",
        "undeclared-handle",
        "a node names a handle absent from resources",
        "declare it in resources.vqs, resources.chs or resources.events",
    ),
    _c("QV202", "use-after-free", "a qubit is used after FREE_LQ", "allocate it again first"),
    _c(
        "QV203",
        "use-before-alloc",
        "a qubit is used before any ALLOC_LQ",
        "allocate it with ALLOC_LQ before this node",
    ),
    _c("QV204", "double-free", "a qubit is freed twice", "free it once"),
    _c(
        "QV205",
        "double-alloc",
        "a live qubit is allocated again",
        "free it first, or use another handle",
    ),
    _c(
        "QV206",
        "duplicate-declaration",
        "resources declares a handle twice",
        "list each handle once",
    ),
    _c(
        "QV207",
        "qubit-leak",
        "a qubit is still live at the end of the program",
        "free it with FREE_LQ",
        warning=True,
    ),
    # QV3xx: events and order
    _c(
        "QV301",
        "event-produced-twice",
        "two nodes (or one twice) produce the same event",
        "give each measurement its own event",
    ),
    _c(
        "QV302",
        "event-never-produced",
        "a guard or input reads an event nothing produces",
        "produce the event with a measurement, or remove the reader",
    ),
    _c(
        "QV303",
        "event-read-before-produced",
        "a guard or input reads an event produced later in list order",
        "move the reader after the node that produces the event",
    ),
    _c(
        "QV304",
        "dependency-cycle",
        "a reader waits for an event whose producer waits for the reader",
        "move the reader after the producer and break the cycle",
    ),
    # QV4xx: channels
    _c(
        "QV401",
        "channel-before-open",
        "a channel is used before OPEN_CHAN",
        "open it with OPEN_CHAN first",
    ),
    _c(
        "QV402",
        "channel-after-close",
        "a channel is used or closed after CLOSE_CHAN",
        "open a new channel",
    ),
    _c(
        "QV403",
        "channel-double-open",
        "an open channel is opened again",
        "close it first, or use another handle",
    ),
    _c(
        "QV404",
        "channel-leak",
        "a channel is still open at the end of the program",
        "close it with CLOSE_CHAN",
        warning=True,
    ),
    # QV5xx: capabilities and limits
    _c(
        "QV501",
        "capability-missing",
        "the graph does not request a capability a node needs",
        "add the capability to the graph's caps",
    ),
    _c(
        "QV502",
        "capability-unknown",
        "the graph or a node names a capability QMK does not know",
        "remove it; known capabilities are listed in docs/qvm.md",
        warning=True,
    ),
    _c(
        "QV503",
        "graph-too-large",
        "the graph exceeds a configured size limit",
        "split the program or raise the limit (qmk validate --max-nodes ...)",
    ),
)

#: Every code by its code string, in table order.
CODES: Mapping[str, Code] = MappingProxyType({c.code: c for c in _TABLE})
#: Every code by its name.
BY_NAME: Mapping[str, Code] = MappingProxyType({c.name: c for c in _TABLE})
