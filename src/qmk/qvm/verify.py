"""The QVM verifier: every finding at once, or a verified program.

:func:`check` walks a graph once, in list order, and reports every finding (a
stable code from :mod:`qmk.qvm.codes`, a severity, the node and op, and a
sentence saying what to do). When no finding is an error it also returns the
:class:`VerifiedProgram`: the dependency DAG, the epochs, the REV segments, the
peak number of live qubits, op counts and the capabilities the program needs.
:func:`verify` is the same but raises :class:`~qmk.qvm.errors.VerificationError`.

>>> from qmk.qvm.graph import Graph, Node, Resources
>>> g = Graph(
...     nodes=(
...         Node(id="a", op="ALLOC_LQ", vqs=("q",)),
...         Node(id="h", op="APPLY_H", vqs=("q",)),
...         Node(id="m", op="MEASURE_Z", vqs=("q",), produces=("m",)),
...         Node(id="f", op="FREE_LQ", vqs=("q",)),
...         Node(id="x", op="APPLY_X", vqs=("q",)),
...     ),
...     resources=Resources(vqs=("q",), events=("m",)),
...     caps=("CAP_ALLOC",),
... )
>>> [(f.code, f.name, f.node_id) for f in check(g).findings]
[('QV202', 'use-after-free', 'x')]
>>> print(check(g).findings[0])  # doctest: +NORMALIZE_WHITESPACE
QV202 use-after-free at node #4 'x' (APPLY_X): qubit 'q' was freed at node #3 'f';
allocate it again first
>>> program = verify(Graph(nodes=g.nodes[:4], resources=g.resources, caps=g.caps))
>>> program.peak_live_qubits, program.counts.measurements, program.required_caps
(1, 1, ('CAP_ALLOC',))
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qmk.qvm.codes import BY_NAME, CODES, Severity
from qmk.qvm.errors import VerificationError
from qmk.qvm.graph import Graph, Node, gc_paused, is_finite_number
from qmk.qvm.limits import Limits
from qmk.qvm.ops import (
    CAPABILITIES,
    OPERAND_KINDS,
    OPS,
    ArgSpec,
    ArgType,
    Category,
    Clifford,
    OpSpec,
    closest_op,
)
from qmk.qvm.profiles import ProfileError, parse_profile

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
            for a finding about the whole graph.
        node_id: the node's id, or None.
        op: the node's op, or None.
    """

    code: str
    name: str
    severity: Severity
    message: str
    node_index: int | None = None
    node_id: str | None = None
    op: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = ""
        if self.node_index is not None:
            op = self.op if self.op is not None and self.op.isidentifier() else repr(self.op)
            where = f" at node #{self.node_index} {self.node_id!r} ({op})"
        return f"{self.code} {self.name}{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "node_index": self.node_index,
            "node_id": self.node_id,
            "op": self.op,
        }


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
    """A maximal run of unitary nodes on a set of qubits between irreversible nodes.

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

    def uncompute(self, graph: Graph) -> tuple[Node, ...]:
        """The nodes that undo this segment: reversed, each replaced by its inverse.

        Inverse nodes get ids ``<id>~inv``; guards are kept (an undo runs exactly
        when the original ran). Args named in ``inverse_negates`` are negated.
        """
        undo = []
        for index in reversed(self.nodes):
            node = graph.nodes[index]
            spec = OPS[node.op]
            assert spec.inverse is not None, f"{node.op} in a REV segment has no inverse"
            args = dict(node.args)
            for name in spec.inverse_negates:
                args[name] = -args[name]
            undo.append(
                Node(
                    id=f"{node.id}~inv",
                    op=spec.inverse,
                    args=args,
                    vqs=node.vqs,
                    chs=node.chs,
                    inputs=node.inputs,
                    caps=node.caps,
                    guard=node.guard,
                )
            )
        return tuple(undo)

    def to_json(self, graph: Graph) -> dict[str, Any]:
        ids = [graph.nodes[i].id for i in self.nodes]
        closed = None if self.closed_by is None else graph.nodes[self.closed_by].id
        return {"index": self.index, "nodes": ids, "qubits": list(self.qubits), "closed_by": closed}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedProgram:
    """A graph the verifier accepted, with what it learned about it.

    Attributes:
        graph: the graph.
        preds: for each node (by index), the nodes it must wait for: the
            previous node on each of its qubits and channels and the producers of
            the events it reads, within its epoch; the fence that opens its epoch
            when it has no such predecessor; and, for a fence, the nodes of its
            epoch that nothing else in the epoch waits for. Edges implied by
            these are left out. Every edge points backwards in list order, so
            list order is a topological order.
        epochs: the epochs, in order; there is one more epoch than fences.
        rev_segments: the REV segments, in order of their first node.
        peak_live_qubits: most qubits live at once, in list order.
        counts: op counts.
        required_caps: capabilities the nodes need, sorted.
        warnings: the warnings found (no errors: a verified program has none).
    """

    graph: Graph
    preds: tuple[tuple[int, ...], ...]
    epochs: tuple[Epoch, ...]
    rev_segments: tuple[RevSegment, ...]
    peak_live_qubits: int
    counts: OpCounts
    required_caps: tuple[str, ...]
    warnings: tuple[Finding, ...] = ()

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
    """What :func:`check` found: every finding, and the program when none is an error."""

    findings: tuple[Finding, ...]
    program: VerifiedProgram | None = None

    @property
    def ok(self) -> bool:
        """True when the graph verified (warnings allowed)."""
        return self.program is not None

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
        self.items.append(
            Finding(
                code=code.code,
                name=name,
                severity=code.severity or Severity.ERROR,
                message=f"{message}; {fix or code.fix}",
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


def _where(nodes: Sequence[Node], index: int) -> str:
    return f"node #{index} {nodes[index].id!r}"


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


def _duplicates(values: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    return [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]


def _check_limits(graph: Graph, limits: Limits, findings: _Findings) -> bool:
    """Report graph-too-large; False when the graph is too large to walk at all."""
    over = []
    for limit, count, what in (
        (limits.max_nodes, len(graph.nodes), "nodes"),
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

    __slots__ = ("arg_checks", "clifford", "count_args", "required_args", "shape", "spec")

    def __init__(self, spec: OpSpec) -> None:
        self.spec = spec
        arities = [getattr(spec, kind) for kind in OPERAND_KINDS]
        exact = all(a.low == a.high for a in arities)
        # A node whose counts equal ``shape`` needs no per-kind check; variable
        # arities get a shape no node has, so they are always checked.
        self.shape = tuple(a.low for a in arities) if exact else (-1, -1, -1, -1)
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
    """

    __slots__ = ("ended", "findings", "live", "nodes", "words")

    def __init__(self, findings: _Findings, nodes: Sequence[Node], **words: str) -> None:
        self.findings = findings
        self.nodes = nodes
        self.words = words
        self.live: dict[str, int] = {}  # live handle -> the node that started it
        self.ended: dict[str, int] = {}  # ended handle -> the node that ended it

    def touch(self, name: str, index: int, opens: bool, closes: bool) -> int:
        """Record a use at node ``index``: +1 when it starts a lifetime, -1 when it ends one."""
        words = self.words
        if opens:
            if name in self.live:
                where = _where(self.nodes, self.live[name])
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
            where = _where(self.nodes, self.ended[name])
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


def check(graph: Graph, *, limits: Limits | None = None) -> Report:
    """Verify ``graph`` and report every finding at once.

    Args:
        graph: the graph, as :func:`qmk.qvm.graph.loads` or the assembler gives it.
        limits: size limits (defaults: :class:`~qmk.qvm.limits.Limits`).

    Returns:
        A :class:`Report`: all findings, and the verified program when none is
        an error.
    """
    limits = limits or Limits()
    findings = _Findings(graph)
    if not _check_limits(graph, limits, findings):
        return Report(findings=findings.finish())
    with gc_paused():
        return _walk(graph, limits, findings)


def _walk(graph: Graph, limits: Limits, findings: _Findings) -> Report:
    """The single pass of :func:`check` over the nodes, in list order."""
    nodes = graph.nodes
    resources = graph.resources
    declared: dict[str, set[str]] = {}
    for kind, handles, what in (
        ("vqs", resources.vqs, "qubit"),
        ("chs", resources.chs, "channel"),
        ("events", resources.events, "event"),
    ):
        declared[kind] = set(handles)
        for dup in dict.fromkeys(_duplicates(handles)):
            findings.add("duplicate-declaration", f"resources.{kind} lists {what} {dup!r} twice")
    decl_vqs, decl_chs, decl_events = declared["vqs"], declared["chs"], declared["events"]
    max_name = limits.max_name_length
    max_operands = limits.max_operands

    ids: dict[str, int] = {}
    undeclared: set[tuple[str, str]] = set()
    qubits = _Lifetimes(findings, nodes, **_QUBIT_WORDS)
    channels = _Lifetimes(findings, nodes, **_CHANNEL_WORDS)
    chan_qubits: dict[str, tuple[str, ...]] = {}
    producer: dict[str, int] = {}
    pending: dict[str, list[int]] = {}  # event -> readers listed before any producer
    backward: list[tuple[int, int, str]] = []  # (reader, producer, event)
    last_vq: dict[str, int] = {}
    last_ch: dict[str, int] = {}
    preds: list[tuple[int, ...]] = []
    has_succ: set[int] = set()
    epoch_nodes: list[int] = []
    epochs: list[Epoch] = []
    fence: int | None = None
    segments = _Segments()
    non_clifford = 0
    live = peak = 0
    required: dict[str, int] = {}  # capability -> first node needing it
    unknown_caps: dict[str, int | None] = {}

    def undeclared_handle(kind: str, name: str, index: int, what: str) -> None:
        if (kind, name) not in undeclared:
            undeclared.add((kind, name))
            findings.add("undeclared-handle", f"{what} {name!r} is not in resources.{kind}", index)

    plans = _PLANS
    if max_name is not None:
        names = itertools.chain(
            (node.id for node in nodes), resources.vqs, resources.chs, resources.events
        )
        too_long = next((name for name in names if len(name) > max_name), None)
        if too_long is not None:
            findings.add(
                "graph-too-large", f"name {too_long[:40]!r} is longer than {max_name} characters"
            )

    for index, node in enumerate(nodes):
        if node.id in ids:
            findings.add(
                "duplicate-node-id",
                f"id {node.id!r} is also used by {_where(nodes, ids[node.id])}",
                index,
            )
        else:
            ids[node.id] = index
        plan = plans.get(node.op)
        vqs, chs, inputs, produces = node.vqs, node.chs, node.inputs, node.produces
        shape = (len(vqs), len(chs), len(inputs), len(produces))
        if max_operands is not None and sum(shape) > max_operands:
            findings.add(
                "graph-too-large", f"the node has more than {max_operands} operands", index
            )
        if plan is None:
            spec = None
            hint = closest_op(node.op)
            findings.add(
                "unknown-op",
                f"unknown op {node.op!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                index,
            )
        else:
            spec = plan.spec
            if shape != plan.shape:
                for kind, count in zip(OPERAND_KINDS, shape, strict=True):
                    arity = getattr(spec, kind)
                    if not arity.admits(count):
                        findings.add(
                            "operand-count",
                            f"{spec.name} takes {arity} {kind}, got {count}",
                            index,
                        )
            if (node.args or plan.required_args) and not plan.args_ok(node):
                _check_args(spec, node, findings, index)
            if spec.cap is not None and spec.cap not in required:
                required[spec.cap] = index
            if plan.clifford is None:
                if not is_clifford_node(spec, node):
                    non_clifford += 1
            elif not plan.clifford:
                non_clifford += 1
        for cap in node.caps:
            if cap not in CAPABILITIES:
                unknown_caps.setdefault(cap, index)
            elif cap not in required:
                required[cap] = index
        if (
            (shape[0] > 1 and len(set(vqs)) != shape[0])
            or (shape[1] > 1 and len(set(chs)) != shape[1])
            or (shape[2] > 1 and len(set(inputs)) != shape[2])
        ):
            for kind, values, what in (
                ("vqs", vqs, "qubit"),
                ("chs", chs, "channel"),
                ("inputs", inputs, "event"),
            ):
                for dup in dict.fromkeys(_duplicates(values)):
                    findings.add(
                        "duplicate-operand", f"{what} {dup!r} appears twice in {kind}", index
                    )

        # DAG edges: previous node on each handle, and producers of read events.
        node_preds: list[int] = []
        opens = spec.opens if spec is not None else None
        closes = spec.closes if spec is not None else None
        for q in vqs:
            if q not in decl_vqs:
                undeclared_handle("vqs", q, index, "qubit")
            live += qubits.touch(q, index, opens == "vqs", closes == "vqs")
            prev = last_vq.get(q)
            if prev is not None:
                node_preds.append(prev)
            last_vq[q] = index
        if live > peak:
            peak = live
        for c in chs:
            if c not in decl_chs:
                undeclared_handle("chs", c, index, "channel")
            if channels.touch(c, index, opens == "chs", closes == "chs") > 0:
                chan_qubits[c] = vqs
            prev = last_ch.get(c)
            if prev is not None:
                node_preds.append(prev)
            last_ch[c] = index
        guard = node.guard
        for event in inputs if guard is None else inputs + guard.events:
            if event not in decl_events:
                undeclared_handle("events", event, index, "event")
            source = producer.get(event)
            if source is None:
                pending.setdefault(event, []).append(index)
            else:
                node_preds.append(source)
        for event in produces:
            if event not in decl_events:
                undeclared_handle("events", event, index, "event")
            if event in producer:
                first = producer[event]
                where = "this node" if first == index else _where(nodes, first)
                findings.add(
                    "event-produced-twice", f"event {event!r} is also produced by {where}", index
                )
                continue
            producer[event] = index
            for reader in pending.pop(event, ()):
                backward.append((reader, index, event))

        # Epochs: a fence waits for the epoch's last nodes; the next epoch waits for the fence.
        is_fence = spec is not None and spec.name == "FENCE_EPOCH"
        # Every pred of a node in this epoch other than the opening fence lies inside
        # the epoch (handle chains restart at each fence), except producers of events
        # from earlier epochs, which the fence already orders.
        start = -1 if fence is None else fence
        if is_fence:
            node_preds = [n for n in epoch_nodes if n not in has_succ]
            if fence is not None:
                node_preds.append(fence)
            epochs.append(Epoch(index=len(epochs), nodes=tuple(epoch_nodes), fence=index))
            epoch_nodes = []
            has_succ = set()
            last_vq.clear()
            last_ch.clear()
        else:
            if node_preds:
                node_preds = [p for p in node_preds if p > start]
            if len(node_preds) > 1:
                node_preds = sorted(set(node_preds))
            if node_preds:
                has_succ.update(node_preds)
            elif fence is not None:
                node_preds = [fence]
            epoch_nodes.append(index)
        preds.append(tuple(node_preds))
        if is_fence:
            fence = index

        # REV segments.
        if spec is not None and spec.category is not Category.ADMIN:
            if spec.unitary:
                key = segments.open.get(vqs[0]) if len(vqs) == 1 else None
                if key is not None:  # the common case: one qubit already in an open segment
                    segments.nodes[key].append(index)
                elif vqs:
                    segments.extend(index, vqs)
            else:
                touched = vqs
                for c in chs:
                    touched += chan_qubits.get(c, ())
                if any(q in segments.open for q in touched):
                    segments.close(touched, index)

    epochs.append(Epoch(index=len(epochs), nodes=tuple(epoch_nodes), fence=None))

    for event, readers in pending.items():
        for reader in readers:
            findings.add("event-never-produced", f"event {event!r} is never produced", reader)
    if backward:
        _report_backward_reads(nodes, preds, backward, findings)
    for q, index in qubits.live.items():
        findings.add(
            "qubit-leak", f"qubit {q!r} allocated at {_where(nodes, index)} is never freed"
        )
    for c, index in channels.live.items():
        findings.add(
            "channel-leak", f"channel {c!r} opened at {_where(nodes, index)} is never closed"
        )
    requested = set(graph.caps)
    for cap in graph.caps:
        if cap not in CAPABILITIES:
            unknown_caps.setdefault(cap, None)
    for cap, index in required.items():
        if cap not in requested:
            findings.add(
                "capability-missing",
                f"{nodes[index].op} needs {cap}, which the graph's caps do not request",
                index,
            )
    for cap, first_use in unknown_caps.items():
        findings.add("capability-unknown", f"capability {cap!r} is not known to QMK", first_use)

    found = findings.finish()
    if any(f.is_error for f in found):
        return Report(findings=found)
    by_op = Counter(node.op for node in nodes)
    totals: Counter[str] = Counter()
    for op, count in by_op.items():
        for tag in OPS[op].counts_as:
            totals[tag] += count
    counts = OpCounts(
        total=len(nodes),
        by_op=MappingProxyType(dict(by_op)),
        t_gates=totals["t"],
        rotations=totals["rotation"],
        ccz_like=totals["ccz"],
        measurements=totals["measurement"],
        magic_states=totals["magic_state"],
        non_clifford=non_clifford,
    )
    program = VerifiedProgram(
        graph=graph,
        preds=tuple(preds),
        epochs=tuple(epochs),
        rev_segments=segments.finish(),
        peak_live_qubits=peak,
        counts=counts,
        required_caps=tuple(sorted(required)),
        warnings=found,
    )
    return Report(findings=found, program=program)


def _report_backward_reads(
    nodes: Sequence[Node],
    preds: Sequence[tuple[int, ...]],
    backward: Sequence[tuple[int, int, str]],
    findings: _Findings,
) -> None:
    """Report readers listed before their producer: a cycle when the producer depends on them.

    The reader must run after the producer (it reads its event), so when the
    producer is also reachable from the reader along the forward edges the two
    wait for each other: a dependency cycle. Otherwise the reader is simply
    listed too early.
    """
    succs: list[list[int]] | None = None
    for reader, source, event in backward:
        if succs is None:
            succs = [[] for _ in preds]
            for node, node_preds in enumerate(preds):
                for pred in node_preds:
                    succs[pred].append(node)
        path = _forward_path(succs, reader, source)
        if path is None:
            findings.add(
                "event-read-before-produced",
                f"event {event!r} is produced later, at {_where(nodes, source)}",
                reader,
            )
        else:
            chain = " -> ".join(repr(nodes[i].id) for i in path[:8])
            more = " -> ..." if len(path) > 8 else ""
            findings.add(
                "dependency-cycle",
                f"it reads event {event!r} of {_where(nodes, source)}, which runs after it "
                f"({chain}{more} -> back)",
                reader,
            )


def _forward_path(succs: Sequence[Sequence[int]], start: int, goal: int) -> list[int] | None:
    """A path start -> goal along forward edges (all indices <= goal), or None."""
    parent: dict[int, int] = {start: start}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(parent[path[-1]])
            return path[::-1]
        for nxt in succs[node]:
            if nxt <= goal and nxt not in parent:
                parent[nxt] = node
                frontier.append(nxt)
    return None


def verify(graph: Graph, *, limits: Limits | None = None) -> VerifiedProgram:
    """Verify ``graph``, returning the verified program.

    Raises:
        VerificationError: with every finding, when any finding is an error.
    """
    report = check(graph, limits=limits)
    if report.program is None:
        raise VerificationError(report.findings)
    return report.program


__all__ = [
    "Epoch",
    "Finding",
    "OpCounts",
    "Report",
    "RevSegment",
    "VerifiedProgram",
    "check",
    "is_clifford_node",
    "verify",
]
