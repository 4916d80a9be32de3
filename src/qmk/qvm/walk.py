"""The verifier's one pass over a flat program, and the values it gives.

:func:`check_flat` walks a graph with no REPEAT or CALL row, in list order, and
reports every finding. :mod:`qmk.qvm.verify` is the verifier's face: it sends a
flat program here, and a folded one to :mod:`qmk.qvm.folded`, which walks the
program's one-turn view here too. A kernel whose programs are flat loads only
this module of the two.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qmk.qvm.codes import BY_NAME, CODES, Severity
from qmk.qvm.graph import (
    CALL,
    Graph,
    Guard,
    Node,
    Resources,
    duplicates,
    gc_paused,
    is_finite_number,
    node_at,
)
from qmk.qvm.limits import Limits
from qmk.qvm.ops import (
    CAPABILITIES,
    OPERAND_KINDS,
    OPS,
    ArgSpec,
    ArgType,
    Category,
    Clifford,
    Exec,
    OpSpec,
)
from qmk.qvm.packed import Ragged
from qmk.qvm.profiles import ProfileError, parse_profile

if TYPE_CHECKING:
    from qmk.qvm.folded import Totals
    from qmk.qvm.guards import Guarded

#: At most this many findings of one code are listed; one more finding says how many were left out.
MAX_FINDINGS_PER_CODE = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem the verifier found.

    Attributes:
        code: the stable code, e.g. ``"QV202"``.
        name: its slug, e.g. ``"use-after-free"``.
        severity: error (the graph cannot run) or warning.
        message: what is wrong and what to do, in one sentence.
        node_index: 0-based position of the node in ``program.nodes``, or None
            for a finding about the whole graph or a REPEAT row; in a program with
            REPEAT rows, its position in the one-turn view (:func:`qmk.qvm.fold.one_turn`).
        node_id: the node's id, or None.
        op: the node's op, or None.
        repeat: the ids of the REPEAT rows around the node, from the outside in.
    """

    code: str
    name: str
    severity: Severity
    message: str
    node_index: int | None = None
    node_id: str | None = None
    op: str | None = None
    repeat: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = ""
        if self.node_index is not None:
            op = self.op if self.op is not None and self.op.isidentifier() else repr(self.op)
            where = f" at node #{self.node_index} {self.node_id!r} ({op})"
        elif self.node_id is not None:
            where = f" at {self.op} {self.node_id!r}"
        if self.repeat:
            where += f" in REPEAT {' > '.join(map(repr, self.repeat))}"
        return f"{self.code} {self.name}{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "node_index": self.node_index,
            "node_id": self.node_id,
            "op": self.op,
        }
        if self.repeat:
            out["repeat"] = list(self.repeat)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OpCounts:
    """How many ops of each kind a program has (guarded nodes count once).

    ``non_clifford`` counts the nodes a stabilizer simulation cannot carry out:
    T and TDG, CCX and CCZ, magic-state injection, and rotations or angle
    measurements whose angle is not a multiple of pi/2.
    """

    total: int
    by_op: Mapping[str, int]
    t_gates: int
    rotations: int
    ccz_like: int
    measurements: int
    magic_states: int
    non_clifford: int

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "t_gates": self.t_gates,
            "rotations": self.rotations,
            "ccz_like": self.ccz_like,
            "measurements": self.measurements,
            "magic_states": self.magic_states,
            "non_clifford": self.non_clifford,
            "by_op": dict(self.by_op),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Epoch:
    """The nodes between two fences (node indices), and the fence that closes it."""

    index: int
    nodes: tuple[int, ...]
    fence: int | None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "nodes": len(self.nodes), "fence": self.fence}


@dataclass(frozen=True, slots=True, kw_only=True)
class RevSegment:
    """A maximal run of unitary nodes on a set of qubits between irreversible nodes
    (the nodes that undo it: :func:`qmk.qvm.uncompute.uncompute`).

    Attributes:
        index: the segment's number, in order of each segment's first node.
        nodes: node indices in list order.
        qubits: the qubits the segment acts on, in order of first use.
        closed_by: the node that ended the segment (a measurement, reset, free,
            ...), or None when the program ended first.
    """

    index: int
    nodes: tuple[int, ...]
    qubits: tuple[str, ...]
    closed_by: int | None

    def to_json(self, graph: Graph) -> dict[str, Any]:
        ids = [graph.nodes[i].id for i in self.nodes]
        closed = None if self.closed_by is None else graph.nodes[self.closed_by].id
        return {"index": self.index, "nodes": ids, "qubits": list(self.qubits), "closed_by": closed}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedProgram:
    """A graph the verifier accepted, with what it learned about it.

    Attributes:
        graph: the graph.
        preds: for each node (by index), the nodes it must wait for. These are the
            previous node on each of its qubits and channels and the producers of
            the events it reads, within its epoch. A node with no such predecessor
            waits for the fence that opens its epoch; a fence waits for the nodes of
            its epoch that nothing else in the epoch waits for. Edges implied by
            these are left out. Every edge points backwards in list order, so
            list order is a topological order. Kept as a :class:`~qmk.qvm.packed.Ragged`
            (arrays: no tuple per node for the cyclic collector to walk), read as
            tuples.
        epochs: the epochs, in order; there is one more epoch than fences.
        rev_segments: the REV segments, in order of their first node.

            A program verified on its columns (:func:`qmk.qvm.columns.verified`) finds
            ``preds`` and ``rev_segments`` by the verifier's walk of its graph when either
            is first read (:class:`~qmk.qvm.walked.Walked`): a run reads neither.
        peak_live_qubits: most qubits live at once, in list order.
        counts: op counts.
        required_caps: capabilities the nodes need, sorted.
        warnings: the warnings found (no errors: a verified program has none).
    """

    graph: Graph
    preds: Sequence[tuple[int, ...]]
    epochs: tuple[Epoch, ...]
    rev_segments: Sequence[RevSegment]
    peak_live_qubits: int
    counts: OpCounts
    required_caps: tuple[str, ...]
    warnings: tuple[Finding, ...] = ()
    #: The program as submitted, REPEAT rows folded, when ``graph`` is its unrolling
    #: (:func:`qmk.qvm.fold.unroll`); its digest is the folded text's.
    folded: Graph | None = None
    #: The columns it was verified on (:func:`qmk.qvm.columns.verified`), whose
    #: graph view ``graph`` is: the digest and the plan read them instead of nodes.
    columns: Any = None

    @property
    def is_clifford(self) -> bool:
        """True when a stabilizer simulation can run every node."""
        return self.counts.non_clifford == 0

    def summary(self) -> dict[str, Any]:
        """Plain JSON for ``qmk info``: counts, epochs, REV segments, caps."""
        graph = self.graph
        return {
            "version": graph.version,
            "nodes": len(graph.nodes),
            "qubits": len(graph.resources.vqs),
            "channels": len(graph.resources.chs),
            "events": len(graph.resources.events),
            "peak_live_qubits": self.peak_live_qubits,
            "dag_edges": sum(len(p) for p in self.preds),
            "clifford": self.is_clifford,
            "counts": self.counts.to_json(),
            "epochs": [e.to_json() for e in self.epochs],
            "rev_segments": [s.to_json(graph) for s in self.rev_segments],
            "required_caps": list(self.required_caps),
            "requested_caps": list(graph.caps),
            "warnings": [w.to_json() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What the verifier found: every finding, and the program when none is an error."""

    findings: tuple[Finding, ...]
    program: VerifiedProgram | None = None
    totals: Totals | None = None
    #: A folded program's one-turn view (:func:`qmk.qvm.fold.one_turn`), verified: what
    #: a consumer that reads it folded (:class:`FoldedProgram`) plans and places.
    turn: VerifiedProgram | None = None

    @property
    def ok(self) -> bool:
        """True when the graph verified (warnings allowed): folded, ``totals`` stand for
        a program that was not unrolled."""
        return self.program is not None or (
            self.totals is not None and not any(f.is_error for f in self.findings)
        )

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)


def is_clifford_node(spec: OpSpec, node: Node) -> bool:
    """True when a stabilizer simulation can carry the node out exactly."""
    if spec.clifford is Clifford.YES:
        return True
    if spec.clifford is Clifford.NO:
        return False
    angle = node.args.get(spec.args[0].name)
    if not is_finite_number(angle):
        return False
    turns = angle / (math.pi / 2)
    return abs(turns - round(turns)) < 1e-12


# --------------------------------------------------------------------------- checking


class _Findings:
    """Collects findings, at most MAX_FINDINGS_PER_CODE of each code."""

    def __init__(self, graph: Graph) -> None:
        self.nodes = graph.nodes
        self.items: list[Finding] = []
        self.per_code: Counter[str] = Counter()

    def add(
        self, name: str, message: str, index: int | None = None, *, fix: str | None = None
    ) -> None:
        code = BY_NAME[name]
        self.per_code[code.code] += 1
        if self.per_code[code.code] > MAX_FINDINGS_PER_CODE:
            return
        node = self.nodes[index] if index is not None else None
        hint = fix or code.fix
        self.items.append(
            Finding(
                code=code.code,
                name=name,
                severity=code.severity or Severity.ERROR,
                # a message that already says what to do (a profile's) is not told twice
                message=message if hint in message else f"{message}; {hint}",
                node_index=index,
                node_id=node.id if node is not None else None,
                op=node.op if node is not None else None,
            )
        )

    def finish(self) -> tuple[Finding, ...]:
        out = list(self.items)
        for code, count in self.per_code.items():
            if count > MAX_FINDINGS_PER_CODE:
                spec = CODES[code]
                out.append(
                    Finding(
                        code=code,
                        name=spec.name,
                        severity=spec.severity or Severity.ERROR,
                        message=f"{count - MAX_FINDINGS_PER_CODE} more {spec.name} findings "
                        "are not listed; fix the ones above and verify again",
                    )
                )
        return tuple(out)


def _check_value(
    spec: ArgSpec, value: Any, label: str, findings: _Findings, index: int | None, op: str
) -> None:
    """Check one argument value against its spec, reporting QV104/QV105/QV107/QV108."""
    kind = spec.type
    if kind is ArgType.NUMBER or kind is ArgType.INTEGER:
        ok = type(value) is int if kind is ArgType.INTEGER else is_finite_number(value)
        if not ok:
            expected = "an integer" if kind is ArgType.INTEGER else "a finite number"
            findings.add("arg-invalid", f"{label} must be {expected}, got {value!r}", index)
            return
        if spec.minimum is not None and value < spec.minimum:
            findings.add(
                "arg-invalid", f"{label} is {value}, below its minimum {spec.minimum}", index
            )
        if spec.maximum is not None and value > spec.maximum:
            findings.add(
                "arg-invalid", f"{label} is {value}, above its maximum {spec.maximum}", index
            )
    elif kind is ArgType.STRING or kind is ArgType.PAULI:
        if type(value) is not str:
            findings.add("arg-invalid", f"{label} must be a string, got {value!r}", index)
        elif spec.choices and value not in spec.choices:
            findings.add(
                "arg-invalid",
                f"{label} is {value!r}; {op} takes one of {', '.join(spec.choices)}",
                index,
            )
    elif kind is ArgType.PROFILE:
        if type(value) is not str:
            findings.add("arg-invalid", f"{label} must be a profile string, got {value!r}", index)
            return
        try:
            parse_profile(value)
        except ProfileError as exc:
            findings.add("profile-unknown" if exc.unknown else "profile-invalid", str(exc), index)
    elif kind is ArgType.NUMBERS or kind is ArgType.INTEGERS:
        if type(value) is not list:
            findings.add("arg-invalid", f"{label} must be a list, got {value!r}", index)
            return
        item = replace(spec, type=ArgType.NUMBER if kind is ArgType.NUMBERS else ArgType.INTEGER)
        for k, element in enumerate(value):
            _check_value(item, element, f"{label}[{k}]", findings, index, op)
    elif kind is ArgType.OBJECT:
        if type(value) is not dict:
            findings.add("arg-invalid", f"{label} must be an object, got {value!r}", index)
            return
        known = {field.name: field for field in spec.fields}
        for key, item in value.items():
            sub = known.get(key)
            if sub is None:
                findings.add(
                    "arg-unknown",
                    f"{label} has no field {key!r}; it takes {', '.join(known) or 'none'}",
                    index,
                )
            else:
                _check_value(sub, item, f"{label}.{key}", findings, index, op)


def _check_args(spec: OpSpec, node: Node, findings: _Findings, index: int) -> None:
    args = node.args
    for arg in spec.args:
        if arg.name not in args:
            if arg.required:
                findings.add(
                    "arg-missing",
                    f"{spec.name} needs argument {arg.name!r}",
                    index,
                    fix=f"add {arg.name} ({arg.description})",
                )
            continue
        value = args[arg.name]
        _check_value(arg, value, f"argument {arg.name!r}", findings, index, spec.name)
        if arg.equals_count_of is not None and type(value) is int:
            count = len(getattr(node, arg.equals_count_of))
            if value != count:
                findings.add(
                    "alloc-count-mismatch",
                    f"{arg.name} is {value} but the node lists {count} {arg.equals_count_of}",
                    index,
                )
    for key in args:
        if spec.arg(key) is None:
            takes = ", ".join(a.name for a in spec.args) or "no arguments"
            findings.add(
                "arg-unknown", f"{spec.name} has no argument {key!r}; it takes {takes}", index
            )


def _check_guard(guard: Guard, findings: _Findings, index: int) -> None:
    """A guard compares each event with 0 or 1 (QV104). The JSON reader refuses any other
    value; a graph built in memory (a front-end's, the columns' view) is checked here."""
    for term in guard.terms:
        if term.equals not in (0, 1):
            findings.add(
                "arg-invalid",
                f"the guard on event {term.event!r} compares with {term.equals!r}; "
                "a guard compares with 0 or 1",
                index,
            )


def _check_calc(node: Node, findings: _Findings, index: int) -> None:
    """Type a ``CALC`` node (QV111): its type, its operands' types against its inputs,
    its expression and the store of its value (an operand may read an event twice).
    The classical layer loads at a program's first ``CALC`` (a program of gates alone
    never loads it: the kernel's trusted core, issue 79)."""
    from qmk.qvm import classical

    args = node.args
    try:
        classical.check(
            args.get("type", ""),
            args.get("reads", ""),
            args.get("expr", ""),
            len(node.inputs),
            len(node.produces),
        )
    except classical.ClassicalError as exc:
        findings.add("classical-type", str(exc), index)


def _check_limits(
    graph: Graph, limits: Limits, findings: _Findings, stored: int | None = None
) -> bool:
    """Report graph-too-large; False when the graph is too large to walk at all.
    ``stored``: the rows a folded graph stores (its node count otherwise)."""
    over = []
    for limit, count, what in (
        (limits.max_nodes, len(graph.nodes) if stored is None else stored, "nodes"),
        (limits.max_qubits, len(graph.resources.vqs), "declared qubits"),
        (limits.max_channels, len(graph.resources.chs), "declared channels"),
        (limits.max_events, len(graph.resources.events), "declared events"),
    ):
        if limit is not None and count > limit:
            over.append(f"{count} {what} is over the limit of {limit}")
    for message in over:
        findings.add("graph-too-large", message)
    return not over


class _OpPlan:
    """What the verifier precomputes per op: expected operand shape and Clifford-ness."""

    __slots__ = (
        "arg_checks",
        "clifford",
        "count_args",
        "gate_qubits",
        "required_args",
        "shape",
        "spec",
    )

    def __init__(self, spec: OpSpec) -> None:
        self.spec = spec
        arities = [getattr(spec, kind) for kind in OPERAND_KINDS]
        exact = all(a.low == a.high for a in arities)
        # A node whose counts equal ``shape`` needs no per-kind check; variable
        # arities get a shape no node has, so they are always checked.
        self.shape = tuple(a.low for a in arities) if exact else (-1, -1, -1, -1)
        # A gate: a unitary on a fixed number of qubits (no channels, events, lifetimes
        # or fences); :func:`_walk` takes a faultless use of one on a shorter path.
        gate = (
            exact
            and spec.unitary
            and spec.category is not Category.ADMIN
            and spec.opens is None
            and spec.closes is None
            and spec.name != "FENCE_EPOCH"
            and self.shape[1:] == (0, 0, 0)
            and self.shape[0] > 0
        )
        self.gate_qubits = self.shape[0] if gate else -1
        self.clifford = {Clifford.YES: True, Clifford.NO: False}.get(spec.clifford)
        self.required_args = frozenset(a.name for a in spec.args if a.required)
        self.arg_checks = {a.name: _quick_check(a) for a in spec.args}
        self.count_args = tuple((a.name, a.equals_count_of) for a in spec.args if a.equals_count_of)

    def args_ok(self, node: Node) -> bool:
        """A quick yes when every argument is known, present when required and valid.

        A no sends the node to :func:`_check_args`, which says exactly what is wrong.
        """
        args = node.args
        checks = self.arg_checks
        if not self.required_args <= args.keys():
            return False
        for key, value in args.items():
            quick = checks.get(key)
            if quick is None or not quick(value):
                return False
        for name, kind in self.count_args:
            if name in args and args[name] != len(getattr(node, kind)):
                return False
        return True


def _quick_check(spec: ArgSpec) -> Callable[[Any], bool]:
    """A predicate that accepts exactly the values :func:`_check_value` finds no fault with."""
    if spec.type is ArgType.NUMBER and spec.minimum is None and spec.maximum is None:
        return is_finite_number
    if spec.type in (ArgType.STRING, ArgType.PAULI) and not spec.choices:
        return lambda value: type(value) is str
    if spec.type is ArgType.PROFILE:
        return _profile_ok

    def slow(value: Any) -> bool:
        probe = _Findings(Graph())
        _check_value(spec, value, "", probe, None, "")
        return not probe.items

    return slow


def _profile_ok(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        parse_profile(value)
    except ProfileError:
        return False
    return True


class _Lifetimes:
    """Where each handle of one kind (qubits or channels) is in its lifetime.

    A handle starts at an op that opens its kind (ALLOC_LQ, OPEN_CHAN), ends at
    one that closes it (FREE_LQ, CLOSE_CHAN), and may be started again after it
    ended. Every other use must fall inside a lifetime.

    A guarded node that starts or ends a lifetime leaves the handle in one state where
    its guard holds and another where it does not (:class:`~qmk.qvm.guards.Guarded`:
    :mod:`qmk.qvm.guards` follows it, imported at the first guarded node). A later node
    whose guard holds exactly there (all the same terms, or more), or exactly where it
    does not (one term of the other value), sees one state and is checked as any use.
    A node that may see either, and is wrong in one of them, is ``guarded-lifetime``
    (QV208). The verifier follows one guard per handle; ``qmk validate --prove`` follows
    every valuation (:mod:`qmk.qvm.prove`). So no program the verifier accepts uses a
    handle outside its lifetime, whatever the events' values.
    """

    __slots__ = ("ended", "findings", "guarded", "live", "nodes", "words")

    def __init__(self, findings: _Findings, nodes: Sequence[Node], **words: str) -> None:
        self.findings = findings
        self.nodes = nodes
        self.words = words
        self.live: dict[str, int] = {}  # live handle -> the node that started it
        self.ended: dict[str, int] = {}  # ended handle -> the node that ended it
        self.guarded: dict[str, Guarded] = {}  # handle a guarded node started or ended

    def touch(
        self, name: str, index: int, opens: bool, closes: bool, guard: Guard | None = None
    ) -> int:
        """Record a use at node ``index``: +1 when it starts a lifetime, -1 when it ends one
        (counting a handle live while it may be)."""
        if guard is not None or (self.guarded and name in self.guarded):
            from qmk.qvm.guards import guarded_touch  # (a program with guarded nodes)

            use = "opens" if opens else "closes" if closes else "uses"
            return guarded_touch(self, name, index, use, guard)
        words = self.words
        if opens:
            if name in self.live:
                where = node_at(self.nodes, self.live[name])
                self.findings.add(
                    words["reopen"],
                    f"{words['what']} {name!r} is {words['live']} since {where}",
                    index,
                )
                return 0
            self.live[name] = index
            self.ended.pop(name, None)
            return 1
        if name in self.live:
            if closes:
                del self.live[name]
                self.ended[name] = index
                return -1
            return 0
        if name in self.ended:
            where = node_at(self.nodes, self.ended[name])
            self.findings.add(
                words["reclose"] if closes else words["after_end"],
                f"{words['what']} {name!r} was {words['ended']} at {where}",
                index,
            )
        else:
            self.findings.add(
                words["before_start"],
                f"{words['what']} {name!r} has not been {words['started']}",
                index,
            )
        return 0

    def may_be_live(self) -> dict[str, int]:
        """The handles live at the end, or live on some side of a guard: where each
        started (or the guarded node)."""
        out = dict(self.live)
        for name, held in self.guarded.items():
            if held.may_be_live:
                out[name] = held.at
        return out


_QUBIT_WORDS = {
    "what": "qubit",
    "live": "live",
    "ended": "freed",
    "started": "allocated",
    "reopen": "double-alloc",
    "reclose": "double-free",
    "after_end": "use-after-free",
    "before_start": "use-before-alloc",
}
_CHANNEL_WORDS = {
    "what": "channel",
    "live": "open",
    "ended": "closed",
    "started": "opened",
    "reopen": "channel-double-open",
    "reclose": "channel-after-close",
    "after_end": "channel-after-close",
    "before_start": "channel-before-open",
}


class _Segments:
    """REV segments under construction: union of open segments, keyed by qubit."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}  # qubit -> segment key
        self.nodes: dict[int, list[int]] = {}
        self.qubits: dict[int, list[str]] = {}
        self.done: list[tuple[list[int], list[str], int | None]] = []
        self.next_key = 0

    def add(
        self, index: int, node: Node, unitary: bool, chan_qubits: Mapping[str, tuple[str, ...]]
    ) -> None:
        """Take a node that is not an admin op: a unitary one extends the segment of its
        qubits; any other closes the segments of the qubits it touches (its own and its
        channels')."""
        vqs = node.vqs
        if unitary:
            key = self.open.get(vqs[0]) if len(vqs) == 1 else None
            if key is not None:  # the common case: one qubit already in an open segment
                self.nodes[key].append(index)
            elif vqs:
                self.extend(index, vqs)
            return
        touched = vqs
        for c in node.chs:
            touched += chan_qubits.get(c, ())
        if any(q in self.open for q in touched):
            self.close(touched, index)

    def extend(self, index: int, qubits: Iterable[str]) -> None:
        qubits = tuple(qubits)
        keys = {self.open[q] for q in qubits if q in self.open}
        if not keys:
            key = self.next_key
            self.next_key += 1
            self.nodes[key], self.qubits[key] = [], []
        else:
            key = max(keys, key=lambda k: len(self.nodes[k]))
            for other in keys - {key}:  # merge: one segment now spans both qubit sets
                self.nodes[key].extend(self.nodes.pop(other))
                for q in self.qubits.pop(other):
                    self.qubits[key].append(q)
                    self.open[q] = key
        self.nodes[key].append(index)
        for q in qubits:
            if q not in self.open:
                self.open[q] = key
                self.qubits[key].append(q)

    def close(self, qubits: Iterable[str], by: int | None) -> None:
        for q in qubits:
            key = self.open.get(q)
            if key is None:
                continue
            members = self.qubits.pop(key)
            for member in members:
                del self.open[member]
            self.done.append((sorted(self.nodes.pop(key)), members, by))

    def finish(self) -> tuple[RevSegment, ...]:
        for key in list(self.nodes):
            self.close(self.qubits[key][:1], None)
        ordered = sorted(self.done, key=lambda seg: seg[0][0])
        return tuple(
            RevSegment(index=i, nodes=tuple(nodes), qubits=tuple(qubits), closed_by=by)
            for i, (nodes, qubits, by) in enumerate(ordered)
        )


_PLANS: Mapping[str, _OpPlan] = MappingProxyType({n: _OpPlan(spec) for n, spec in OPS.items()})


def check_flat(graph: Graph, limits: Limits, excused: frozenset[str] = frozenset()) -> Report:
    """:func:`qmk.qvm.verify.check` of a graph with no REPEAT or CALL row, and no
    blocks: the size limits, then the one pass (:func:`_walk`)."""
    findings = _Findings(graph)
    if not _check_limits(graph, limits, findings):
        return Report(findings=findings.finish())
    with gc_paused():
        return _walk(graph, limits, findings, excused=excused)


#: The call lane's step for a CALL row (:func:`qmk.qvm.folded._check_calls`): it takes
#: the row as one operation of its block, whose body was checked once.
CallStep = Callable[["_Walk", int, Node], None]


def _walk(
    graph: Graph,
    limits: Limits,
    findings: _Findings,
    *,
    gate_lane: bool = True,
    excused: frozenset[str] = frozenset(),
    call: CallStep | None = None,
) -> Report:
    """The single pass of :func:`check_flat` over the nodes, in list order.

    The declarations and names come first. Then each node goes through the steps of
    :class:`_Walk` (their bound methods looked up once: this loop runs per node), or a
    run of faultless gates through :func:`_gate_lane`. With ``gate_lane=False`` every
    node takes the full steps, for the same report; the tests compare the two. With
    ``call`` (the call lane, :func:`qmk.qvm.folded._check_calls`), a CALL row is one
    step, which ``call`` takes.
    """
    declared = _declared(graph.resources, findings)
    if limits.max_name_length is not None:
        _check_name_lengths(graph, limits.max_name_length, findings)
    walk = _Walk(graph, findings, declared=declared, max_operands=limits.max_operands)
    check_node, edges = walk.check_node, walk.edges
    segments, chan_qubits = walk.segments, walk.chan_qubits
    admin = Category.ADMIN
    gates = functools.partial(_gate_lane, walk, limits.max_operands, call)
    nodes = graph.nodes
    index, total = 0, len(nodes)
    while index < total:
        if gate_lane:
            index = gates(index)
        if index < total:
            node = nodes[index]
            if call is not None and node.op == CALL:
                call(walk, index, node)
                index += 1
                continue
            spec = check_node(index, node)
            edges(index, node, spec)
            if spec is not None and spec.category is not admin:
                segments.add(index, node, spec.unitary, chan_qubits)
            index += 1
    return walk.finish(excused)


_PLAN_OF: dict[str, _OpPlan] = dict(_PLANS)
_NODE_ID = operator.attrgetter("id")
_NODE_OP = operator.attrgetter("op")


def _gate_lane(walk: _Walk, max_operands: int | None, call: CallStep | None, start: int) -> int:
    """Take the faultless gates from node ``start`` on; the index of the first other node.

    A faultless gate is an op whose plan has ``gate_qubits``, on that many distinct live
    declared qubits, with a new id, valid arguments and no channels, events, guard or
    capabilities. It gets from here what :meth:`_Walk.check_node`, :meth:`_Walk.edges`
    and :meth:`_Segments.add` would do for it, with nothing to report. Most nodes of a
    big program take this lane, everything else the full steps. With ``call`` (the
    call lane), a CALL row stays in the lane, as the step ``call`` takes.
    """
    nodes = walk.graph.nodes
    ids, unique_ids, required, preds = walk.ids, walk.unique_ids, walk.required, walk.preds
    live, declared, last = walk.qubits.live, walk.decl_vqs, walk.last_vq
    segments = walk.segments
    open_segments, segment_nodes = segments.open, segments.nodes
    fence = walk.fence
    non_clifford = 0
    for index in range(start, len(nodes)):  # the index it stops at is returned
        node = nodes[index]
        plan = _PLAN_OF.get(node.op)
        vqs = node.vqs
        count = len(vqs)
        if not (
            plan is not None
            and plan.gate_qubits == count
            and node.guard is None
            and not (node.chs or node.inputs or node.produces or node.caps)
            and (max_operands is None or count <= max_operands)
            and (unique_ids or ids[node.id] == index)
            and (
                (vqs[0] in live and vqs[0] in declared)
                if count == 1
                else (
                    vqs[0] != vqs[1]
                    and vqs[0] in live
                    and vqs[1] in live
                    and vqs[0] in declared
                    and vqs[1] in declared
                )
                if count == 2
                else (len(set(vqs)) == count and all(q in live and q in declared for q in vqs))
            )
            and (not (node.args or plan.required_args) or plan.args_ok(node))
        ):
            if call is None or node.op != CALL:
                break
            call(walk, index, node)
            continue
        spec = plan.spec
        if spec.cap is not None and spec.cap not in required:
            required[spec.cap] = index
        clifford = plan.clifford
        if not (is_clifford_node(spec, node) if clifford is None else clifford):
            non_clifford += 1
        # The last node on each qubit (the chains restart at each fence, so all lie in
        # this epoch), sorted and distinct; the opening fence when there is none.
        if count == 1:
            q = vqs[0]
            prev = last.get(q)
            last[q] = index
            if prev is not None:
                preds.append((prev,))
            else:
                preds.append(() if fence is None else (fence,))
            key = open_segments.get(q)
        else:
            node_preds = []
            for q in vqs:
                prev = last.get(q)
                if prev is not None:
                    node_preds.append(prev)
                last[q] = index
            if len(node_preds) > 1:
                node_preds = sorted(set(node_preds))
            elif not node_preds and fence is not None:
                node_preds = [fence]
            preds.append(tuple(node_preds))
            key = open_segments.get(vqs[0])
            if key is not None and (
                open_segments.get(vqs[1]) != key
                if count == 2
                else not all(open_segments.get(q) == key for q in vqs[1:])
            ):
                key = None
        # A gate whose qubits all lie in one open REV segment joins it.
        if key is not None:
            segment_nodes[key].append(index)
        else:
            segments.extend(index, vqs)
    else:
        index = len(nodes)
    walk.non_clifford += non_clifford
    return index


class _Walk:
    """What :func:`check_flat`'s one pass has seen of the nodes so far, and its steps.

    :func:`_walk` takes each node through two steps, in this order (the order of its
    findings). :meth:`check_node` checks what the node says of itself: its id, op,
    operand counts, arguments and capabilities. :meth:`edges` follows the lifetimes of
    its qubits and channels, the events it reads and produces, its epoch and the nodes
    it waits for. Then a node that is not an admin op extends or closes REV segments
    (:meth:`_Segments.add`). :meth:`finish` reports what only the end can tell and
    builds the program.
    """

    __slots__ = (
        "backward",
        "chan_qubits",
        "channels",
        "decl_chs",
        "decl_events",
        "decl_vqs",
        "epoch_start",
        "epochs",
        "fence",
        "findings",
        "graph",
        "ids",
        "last_ch",
        "last_vq",
        "live",
        "max_operands",
        "non_clifford",
        "peak",
        "pending",
        "preds",
        "producer",
        "qubits",
        "required",
        "segments",
        "undeclared",
        "unique_ids",
        "unknown_caps",
    )

    def __init__(
        self,
        graph: Graph,
        findings: _Findings,
        *,
        declared: tuple[set[str], set[str], set[str]],
        max_operands: int | None,
    ) -> None:
        nodes = graph.nodes
        self.graph = graph
        self.findings = findings
        self.max_operands = max_operands
        self.decl_vqs, self.decl_chs, self.decl_events = declared
        # Each id -> its first node (what check_node's setdefault would find), built at
        # C speed; a node is a duplicate where its id's first node is another.
        every_id = list(map(_NODE_ID, nodes))
        self.ids: dict[str, int] = dict(
            zip(reversed(every_id), range(len(every_id) - 1, -1, -1), strict=True)
        )
        self.unique_ids = len(self.ids) == len(every_id)
        self.undeclared: set[tuple[str, str]] = set()
        self.qubits = _Lifetimes(findings, nodes, **_QUBIT_WORDS)
        self.channels = _Lifetimes(findings, nodes, **_CHANNEL_WORDS)
        self.chan_qubits: dict[str, tuple[str, ...]] = {}
        self.producer: dict[str, int] = {}
        self.pending: dict[str, list[int]] = {}  # event -> readers listed before any producer
        self.backward: list[tuple[int, int, str]] = []  # (reader, producer, event)
        self.last_vq: dict[str, int] = {}
        self.last_ch: dict[str, int] = {}
        self.preds: list[tuple[int, ...]] = []
        self.epoch_start = 0  # the current epoch's first node: it runs to the next fence
        self.epochs: list[Epoch] = []
        self.fence: int | None = None
        self.segments = _Segments()
        self.non_clifford = 0
        self.live = self.peak = 0
        self.required: dict[str, int] = {}  # capability -> first node needing it
        self.unknown_caps: dict[str, int | None] = {}

    def check_node(self, index: int, node: Node) -> OpSpec | None:
        """Check what the node says of itself; its op's spec, or None for an unknown op.

        Reports a repeated id, too many operands, an unknown op, wrong operand counts,
        faulty arguments and repeated operands; counts the node's capabilities and
        whether it is Clifford.
        """
        findings = self.findings
        first = self.ids[node.id]
        if first != index:
            where = node_at(self.graph.nodes, first)
            findings.add("duplicate-node-id", f"id {node.id!r} is also used by {where}", index)
        plan = _PLANS.get(node.op)
        vqs, chs, inputs = node.vqs, node.chs, node.inputs
        shape = (len(vqs), len(chs), len(inputs), len(node.produces))
        max_operands = self.max_operands
        if max_operands is not None and sum(shape) > max_operands:
            findings.add(
                "graph-too-large", f"the node has more than {max_operands} operands", index
            )
        spec = None
        if plan is None:
            from qmk.qvm.reports import report_unknown_op  # (what is wrong: said at length)

            report_unknown_op(node, findings, index)
        else:
            spec = plan.spec
            if shape != plan.shape:  # (a variable arity's shape is no node's)
                _report_operand_counts(spec, shape, findings, index)
            if (node.args or plan.required_args) and not plan.args_ok(node):
                _check_args(spec, node, findings, index)
            if node.guard is not None:
                _check_guard(node.guard, findings, index)
            if spec.cap is not None and spec.cap not in self.required:
                self.required[spec.cap] = index
            if plan.clifford is None:
                if not is_clifford_node(spec, node):
                    self.non_clifford += 1
            elif not plan.clifford:
                self.non_clifford += 1
            if spec.kind is Exec.CALC:
                _check_calc(node, findings, index)
        if node.caps:
            self._count_caps(node.caps, index)
        if (
            (shape[0] > 1 and len(set(vqs)) != shape[0])
            or (shape[1] > 1 and len(set(chs)) != shape[1])
            or (
                shape[2] > 1
                and len(set(inputs)) != shape[2]
                and spec is not None
                and spec.kind is not Exec.CALC
            )
        ):
            from qmk.qvm.reports import report_duplicate_operands

            report_duplicate_operands(node, findings, index)
        return spec

    def _count_caps(self, caps: tuple[str, ...], index: int) -> None:
        required, unknown = self.required, self.unknown_caps
        for cap in caps:
            if cap not in CAPABILITIES:
                unknown.setdefault(cap, index)
            elif cap not in required:
                required[cap] = index

    def edges(self, index: int, node: Node, spec: OpSpec | None) -> None:
        """Follow the node's qubits, channels and events, and record the nodes it waits for.

        Reports undeclared handles and lifetime faults (through :class:`_Lifetimes`) and
        events produced twice. A node waits for the last node on each of its qubits and
        channels and for the producer of each event it reads, all within its epoch. A
        reader listed before its producer waits in :attr:`pending`. A node with none of
        those waits for the fence that opened its epoch. A fence waits as
        :meth:`_close_epoch` says.
        """
        # This runs once per node: each kind's state is read only for a node that has
        # operands of that kind.
        opens = spec.opens if spec is not None else None
        closes = spec.closes if spec is not None else None
        node_preds: list[int] = []
        vqs = node.vqs
        if vqs:
            decl, last, qubits, live = self.decl_vqs, self.last_vq, self.qubits, self.live
            allocates, frees = opens == "vqs", closes == "vqs"
            plain, live_qubits = not (allocates or frees), qubits.live
            guard = node.guard
            for q in vqs:
                if q not in decl:
                    self.report_undeclared("vqs", q, index, "qubit")
                # a live qubit's plain unguarded use: no change
                if not plain or guard is not None or q not in live_qubits:
                    live += qubits.touch(q, index, allocates, frees, guard)
                prev = last.get(q)
                if prev is not None:
                    node_preds.append(prev)
                last[q] = index
            self.live = live
            if live > self.peak:
                self.peak = live
        if node.chs:
            self._channels(index, node, opens, closes, node_preds)
        guard = node.guard
        reads = node.inputs if guard is None else node.inputs + guard.events
        if reads:
            self._reads(index, reads, node_preds)
        if node.produces:
            self._produces(index, node.produces)
        if spec is not None and spec.name == "FENCE_EPOCH":
            node_preds = self._close_epoch(index)
        else:
            fence = self.fence
            # Every pred of a node in this epoch other than the opening fence lies inside
            # the epoch (handle chains restart at each fence), except producers of events
            # from earlier epochs, which the fence already orders.
            if node_preds:
                start = -1 if fence is None else fence
                node_preds = [p for p in node_preds if p > start]
            if len(node_preds) > 1:
                node_preds = sorted(set(node_preds))
            if not node_preds and fence is not None:
                node_preds = [fence]
        self.preds.append(tuple(node_preds))

    def _channels(
        self, index: int, node: Node, opens: str | None, closes: str | None, node_preds: list[int]
    ) -> None:
        decl, last, channels = self.decl_chs, self.last_ch, self.channels
        for c in node.chs:
            if c not in decl:
                self.report_undeclared("chs", c, index, "channel")
            if channels.touch(c, index, opens == "chs", closes == "chs", node.guard) > 0:
                self.chan_qubits[c] = node.vqs
            prev = last.get(c)
            if prev is not None:
                node_preds.append(prev)
            last[c] = index

    def _reads(self, index: int, events: tuple[str, ...], node_preds: list[int]) -> None:
        decl, producer = self.decl_events, self.producer
        for event in events:
            if event not in decl:
                self.report_undeclared("events", event, index, "event")
            source = producer.get(event)
            if source is None:
                self.pending.setdefault(event, []).append(index)
            else:
                node_preds.append(source)

    def _produces(self, index: int, events: tuple[str, ...]) -> None:
        decl, producer, pending = self.decl_events, self.producer, self.pending
        for event in events:
            if event not in decl:
                self.report_undeclared("events", event, index, "event")
            if event in producer:
                first = producer[event]
                where = "this node" if first == index else node_at(self.graph.nodes, first)
                self.findings.add(
                    "event-produced-twice", f"event {event!r} is also produced by {where}", index
                )
                continue
            producer[event] = index
            for reader in pending.pop(event, ()):
                self.backward.append((reader, index, event))

    def report_undeclared(self, kind: str, name: str, index: int, what: str) -> None:
        """Report a handle used and not declared, at its first use."""
        if (kind, name) not in self.undeclared:
            self.undeclared.add((kind, name))
            self.findings.add(
                "undeclared-handle", f"{what} {name!r} is not in resources.{kind}", index
            )

    def _close_epoch(self, index: int) -> list[int]:
        """Close the epoch at the fence at ``index``; the nodes the fence waits for.

        A fence waits for the epoch's last nodes (those nothing in the epoch waits for)
        and the previous fence; the handle chains restart after it.
        """
        # Every node between two fences is in the epoch, and what it waits for lies in the
        # epoch too (or is the opening fence, which no node of the epoch is).
        members = range(self.epoch_start, index)
        has_succ = set(itertools.chain.from_iterable(self.preds[self.epoch_start : index]))
        fence_preds = [n for n in members if n not in has_succ]
        if self.fence is not None:
            fence_preds.append(self.fence)
        self.epochs.append(Epoch(index=len(self.epochs), nodes=tuple(members), fence=index))
        self.epoch_start = index + 1
        self.last_vq.clear()
        self.last_ch.clear()
        self.fence = index
        return fence_preds

    def finish(self, excused: frozenset[str] = frozenset()) -> Report:
        """Report what only the end can tell; the report, with the program when it verified."""
        findings, nodes = self.findings, self.graph.nodes
        members = tuple(range(self.epoch_start, len(nodes)))
        self.epochs.append(Epoch(index=len(self.epochs), nodes=members, fence=None))
        for event, readers in self.pending.items():
            for reader in readers:
                findings.add("event-never-produced", f"event {event!r} is never produced", reader)
        if self.backward:
            from qmk.qvm.reports import report_backward_reads

            report_backward_reads(nodes, self.preds, self.backward, findings)
        for kind, lifetimes, code, did, not_done in (
            ("qubit", self.qubits, "qubit-leak", "allocated", "freed"),
            ("channel", self.channels, "channel-leak", "opened", "closed"),
        ):
            for name, index in lifetimes.may_be_live().items():
                at = node_at(nodes, index)
                findings.add(
                    code,
                    f"{kind} {name!r} may stay live: {at} changes it only where its guard holds"
                    if name in lifetimes.guarded
                    else f"{kind} {name!r} {did} at {at} is never {not_done}",
                )
        _report_caps(self.graph, self.required, self.unknown_caps, findings)
        found = findings.finish()
        if any(f.is_error and f.code not in excused for f in found):
            return Report(findings=found)
        program = VerifiedProgram(
            graph=self.graph,
            preds=Ragged.of(self.preds),
            epochs=tuple(self.epochs),
            rev_segments=self.segments.finish(),
            peak_live_qubits=self.peak,
            counts=_op_counts(nodes, self.non_clifford),
            required_caps=tuple(sorted(self.required)),
            warnings=found,
        )
        return Report(findings=found, program=program)


def _declared(resources: Resources, findings: _Findings) -> tuple[set[str], set[str], set[str]]:
    """The declared qubits, channels and events; reports each one declared twice."""
    declared = []
    for kind, handles, what in (
        ("vqs", resources.vqs, "qubit"),
        ("chs", resources.chs, "channel"),
        ("events", resources.events, "event"),
    ):
        declared.append(set(handles))
        for dup in dict.fromkeys(duplicates(handles)):
            findings.add("duplicate-declaration", f"resources.{kind} lists {what} {dup!r} twice")
    vqs, chs, events = declared
    return vqs, chs, events


def _check_name_lengths(graph: Graph, max_name: int, findings: _Findings) -> None:
    """Report the first node id or handle name longer than ``max_name``."""
    resources = graph.resources
    ids = map(_NODE_ID, graph.nodes)
    if (
        max(
            map(len, itertools.chain(ids, resources.vqs, resources.chs, resources.events)),
            default=0,
        )
        <= max_name
    ):
        return  # (the common case, counted at C speed)
    names = itertools.chain(
        (node.id for node in graph.nodes), resources.vqs, resources.chs, resources.events
    )
    too_long = next((name for name in names if len(name) > max_name), None)
    if too_long is not None:
        findings.add(
            "graph-too-large", f"name {too_long[:40]!r} is longer than {max_name} characters"
        )


def _report_operand_counts(
    spec: OpSpec, shape: tuple[int, ...], findings: _Findings, index: int
) -> None:
    for kind, count in zip(OPERAND_KINDS, shape, strict=True):
        arity = getattr(spec, kind)
        if not arity.admits(count):
            findings.add("operand-count", f"{spec.name} takes {arity} {kind}, got {count}", index)


def _report_caps(
    graph: Graph,
    required: Mapping[str, int],
    unknown_caps: dict[str, int | None],
    findings: _Findings,
) -> None:
    """Report capabilities the nodes need and the graph does not request, then unknown ones."""
    requested = set(graph.caps)
    for cap in graph.caps:
        if cap not in CAPABILITIES:
            unknown_caps.setdefault(cap, None)
    for cap, index in required.items():
        if cap not in requested:
            findings.add(
                "capability-missing",
                f"{graph.nodes[index].op} needs {cap}, which the graph's caps do not request",
                index,
            )
    for cap, first_use in unknown_caps.items():
        findings.add("capability-unknown", f"capability {cap!r} is not known to QMK", first_use)


def _op_counts(nodes: Sequence[Node], non_clifford: int) -> OpCounts:
    by_op = Counter(map(_NODE_OP, nodes))
    by_op.pop(CALL, None)  # (the call lane's rows: :func:`_totals` counts their blocks)
    return op_counts(by_op, non_clifford)


def op_counts(by_op: Mapping[str, int], non_clifford: int) -> OpCounts:
    """The :class:`OpCounts` of a program of ``by_op`` nodes of each op (in the order
    each op first comes), ``non_clifford`` of them beyond a stabilizer simulation."""
    totals: Counter[str] = Counter()
    for op, count in by_op.items():
        for tag in OPS[op].counts_as:
            totals[tag] += count
    return OpCounts(
        total=sum(by_op.values()),
        by_op=MappingProxyType(dict(by_op)),
        t_gates=totals["t"],
        rotations=totals["rotation"],
        ccz_like=totals["ccz"],
        measurements=totals["measurement"],
        magic_states=totals["magic_state"],
        non_clifford=non_clifford,
    )
