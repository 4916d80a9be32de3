"""The verifier's path for folded programs: REPEAT rows, blocks and calls.

:func:`qmk.qvm.verify.check` sends a program here when it holds a REPEAT or CALL
row, or blocks (the first such program loads this module). Its one-turn view is
walked once as any flat program (:mod:`qmk.qvm.walk`), the REPEAT and block rules
checked (:mod:`qmk.qvm.foldcheck`), and the totals multiplied: nothing is unrolled
unless the caller asks for the unrolled program.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qmk.qvm.codes import BY_NAME, Severity
from qmk.qvm.graph import CALL, REPEAT, Graph, Node, gc_paused, node_at
from qmk.qvm.limits import Limits
from qmk.qvm.walk import (
    _NODE_OP,
    _PLAN_OF,
    Finding,
    OpCounts,
    Report,
    VerifiedProgram,
    _check_limits,
    _Findings,
    _Walk,
    _walk,
    check_flat,
    is_clifford_node,
    op_counts,
)

if TYPE_CHECKING:
    from qmk.qvm.fold import View


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """What a program with REPEAT rows does in all, found folded: the one-turn view's
    figures, each node counted as many times as it runs (nothing unrolled).

    Attributes:
        version: the graph's version.
        rows: the rows stored (REPEAT rows and bodies' rows included).
        nodes: the nodes of the unrolled program.
        repeats: the REPEAT rows (a block's counted at each call site).
        blocks: the blocks stored.
        qubits, channels, events: the declared handles.
        peak_live_qubits: most qubits live at once (a balanced body's turns all peak alike).
        epochs: the unrolled program's epochs (one more than the fences it runs).
        counts: op counts of the unrolled program.
        required_caps: capabilities the nodes need, sorted.
        requested_caps: capabilities the graph requests.
        warnings: the warnings found.
    """

    version: str
    rows: int
    nodes: int
    repeats: int
    blocks: int
    qubits: int
    channels: int
    events: int
    peak_live_qubits: int
    epochs: int
    counts: OpCounts
    required_caps: tuple[str, ...]
    requested_caps: tuple[str, ...]
    warnings: tuple[Finding, ...] = ()

    @property
    def is_clifford(self) -> bool:
        return self.counts.non_clifford == 0

    def summary(self) -> dict[str, Any]:
        """Plain JSON for ``qmk info`` of a folded program."""
        return {
            "version": self.version,
            "rows": self.rows,
            "nodes": self.nodes,
            "repeats": self.repeats,
            "blocks": self.blocks,
            "qubits": self.qubits,
            "channels": self.channels,
            "events": self.events,
            "peak_live_qubits": self.peak_live_qubits,
            "clifford": self.is_clifford,
            "counts": self.counts.to_json(),
            "epochs": self.epochs,
            "required_caps": list(self.required_caps),
            "requested_caps": list(self.requested_caps),
            "warnings": [w.to_json() for w in self.warnings],
        }


def check_folded(
    graph: Graph, limits: Limits, excused: frozenset[str], *, unroll: bool, turn: bool = True
) -> Report:
    """:func:`check` of a program with REPEAT rows: its one-turn view walked once, the
    REPEAT rules checked, the totals multiplied; the unrolled program verified only when
    ``unroll`` asks for it (within ``limits.max_unrolled_nodes``). A program with
    blocks is first tried on a shorter path: with no REPEAT row, its unrolling
    verified alone (:func:`_check_written_out`), unless neither ``unroll`` nor ``turn``
    asks for it; otherwise, without them, the call lane (:func:`_check_calls`). The
    folding's views and rules load here, at the first folded program."""
    from qmk.qvm.fold import one_turn, rows, unrolled_nodes, unrolled_size
    from qmk.qvm.fold import unroll as unroll_graph

    stored = rows(graph.nodes) + rows(graph.blocks)
    bound = unrolled_nodes(graph.nodes, graph.blocks, turns=False)
    if limits.max_nodes is not None and bound > limits.max_nodes >= stored:
        findings = _Findings(graph)
        findings.add(
            "graph-too-large",
            f"its calls bind {bound} rows in one turn (each call's block at its call site), "
            f"over the limit of {limits.max_nodes}",
        )
        return Report(findings=findings.finish())
    if graph.blocks and (unroll or turn) and REPEAT not in map(_NODE_OP, graph.nodes):
        report = _check_written_out(graph, limits, excused, unroll=unroll)
        if report is not None:
            return report
    elif graph.blocks and not (unroll or turn):
        report = _check_calls(graph, limits, excused, stored)
        if report is not None:
            return report
    view = one_turn(graph)
    flat = Graph(
        version=graph.version,
        nodes=view.nodes,
        resources=graph.resources,
        caps=graph.caps,
        description=graph.description,
        metadata=graph.metadata,
    )
    findings = _Findings(flat)
    if not _check_limits(flat, limits, findings, stored=stored):
        return Report(findings=findings.finish())
    extra = [*_check_repeats(view, findings), *_check_blocks(graph)]
    with gc_paused():
        walked = _walk(flat, limits, findings, excused=excused)
    found = tuple(_placed(f, view) for f in (*extra, *walked.findings))
    if walked.program is None or any(f.is_error and f.code not in excused for f in extra):
        return Report(findings=found)
    totals = _totals(graph, view, walked.program, found)
    if not unroll:
        return Report(findings=found, totals=totals, turn=walked.program)
    size, most = unrolled_size(graph), limits.max_unrolled_nodes
    if most is not None and size > most:
        code = BY_NAME["unrolled-too-large"]
        over = Finding(
            code=code.code,
            name=code.name,
            severity=Severity.ERROR,
            message=f"the program unrolls to {size} nodes, over the limit of {most} "
            f"(Limits.max_unrolled_nodes); {code.fix}",
        )
        return Report(findings=(*found, over), totals=totals, turn=walked.program)
    inner = check_flat(
        unroll_graph(graph, max_nodes=most),
        limits=replace(limits, max_nodes=most),
        excused=excused,
    )
    if inner.program is None:  # the rules above hold: a finding here is in the unrolling
        return Report(findings=(*found, *inner.findings), totals=totals, turn=walked.program)
    return Report(
        findings=found,
        program=replace(inner.program, folded=graph),
        totals=totals,
        turn=walked.program,
    )


def _check_written_out(
    graph: Graph, limits: Limits, excused: frozenset[str], *, unroll: bool
) -> Report | None:
    """:func:`check` of a program of calls without REPEAT rows, whose one-turn view is
    its unrolling (the same rows, the same ids): the block rules, then the unrolled
    program verified once, as any flat program, and given as the program (``unroll``)
    or as the verified one-turn view. A clean program's report, or None: any finding,
    or a block the call lane does not take, sends it to the full path, which says what
    is wrong where."""
    from qmk.qvm.fold import View, unrolled_size
    from qmk.qvm.fold import unroll as unroll_graph

    if _check_blocks(graph) or _effects(graph, limits.max_operands) is None:
        return None
    most = limits.max_unrolled_nodes
    if most is not None and unrolled_size(graph) > most:
        return None
    inner = check_flat(
        unroll_graph(graph, max_nodes=most), limits=replace(limits, max_nodes=most), excused=excused
    )
    if inner.program is None or inner.findings:
        return None
    no_span = View(nodes=(), multipliers=(), paths=(), spans=(), repeats=())
    totals = _totals(graph, no_span, inner.program, ())  # every node runs once
    if not unroll:
        return Report(findings=(), totals=totals, turn=inner.program)
    return Report(findings=(), program=replace(inner.program, folded=graph), totals=totals)


def _placed(finding: Finding, view: View) -> Finding:
    """``finding`` with the REPEAT rows around its node named."""
    index = finding.node_index
    if index is None or finding.repeat or not view.paths[index]:
        return finding
    return replace(finding, repeat=view.paths[index])


def _check_repeats(view: View, findings: _Findings) -> list[Finding]:
    """The REPEAT rules (:mod:`qmk.qvm.foldcheck`): a read of an event after the body
    that produces it, added to ``findings``; each row's own problems, returned."""
    from qmk.qvm.foldcheck import escapes, repeat_problems

    for name, message, index in escapes(view):
        findings.add(name, message, index)
    return [_row_finding(*problem) for problem in repeat_problems(view)]


def _check_blocks(graph: Graph) -> list[Finding]:
    """The block rules (:mod:`qmk.qvm.foldcheck`), as findings."""
    from qmk.qvm.foldcheck import block_problems

    return [_row_finding(*problem) for problem in block_problems(graph)]


def _row_finding(name: str, message: str, node: Node, repeat: tuple[str, ...] = ()) -> Finding:
    """The finding of a problem of a REPEAT, BLOCK or CALL row, or a block (no index:
    the row is not a node of the one-turn view)."""
    code = BY_NAME[name]
    return Finding(
        code=code.code,
        name=name,
        severity=code.severity or Severity.ERROR,
        message=f"{message}; {code.fix}",
        node_id=node.id,
        op=node.op,
        repeat=repeat,
    )


@dataclass(frozen=True, slots=True)
class _Effect:
    """What one call of a block does, found once for the block (:func:`_effects`).

    Attributes:
        touched: the positions of the formal qubits its body uses, in order of first use.
        by_op: how many nodes of each op one call runs (calls inside bound).
        non_clifford: how many of them a stabilizer simulation cannot carry out.
        caps: the capabilities its ops require, in order of first need.
        longest: the length of its longest bound id, less the call's own id and slash.
        every: whether ``touched`` is every formal, in order (a call's qubits as given).
    """

    touched: tuple[int, ...]
    by_op: Mapping[str, int]
    non_clifford: int
    caps: tuple[str, ...]
    longest: int
    every: bool


def _take_call(effects: Mapping[str, _Effect], walk: _Walk, index: int, node: Node) -> None:
    """Take a CALL row (one the block rules found well formed) as one operation:
    the qubits its block touches checked declared and live, and waited for as a
    gate's; its block's capabilities and non-Clifford nodes counted. Its body is
    not walked: :func:`_effects` checked it once. The call lane's
    :data:`~qmk.qvm.walk.CallStep`, once ``effects`` is bound."""
    effect = effects[node.args["block"]]
    if not walk.unique_ids and walk.ids[node.id] != index:
        where = node_at(walk.graph.nodes, walk.ids[node.id])
        walk.findings.add("duplicate-node-id", f"id {node.id!r} is also used by {where}", index)
    vqs = node.vqs
    actuals = vqs if effect.every else tuple([vqs[i] for i in effect.touched])
    live_qubits, declared, last = walk.qubits.live, walk.decl_vqs, walk.last_vq
    node_preds = []
    for q in actuals:
        if q not in live_qubits or q not in declared:
            if q not in declared:
                walk.report_undeclared("vqs", q, index, "qubit")
            if q not in live_qubits:
                walk.live += walk.qubits.touch(q, index, False, False, None)
        prev = last.get(q)
        if prev is not None:
            node_preds.append(prev)
        last[q] = index
    if len(node_preds) > 1:
        node_preds = sorted(set(node_preds))
    elif not node_preds and walk.fence is not None:
        node_preds = [walk.fence]
    walk.preds.append(tuple(node_preds))
    if effect.caps:
        required = walk.required
        for cap in effect.caps:
            required.setdefault(cap, index)
    walk.non_clifford += effect.non_clifford
    segments = walk.segments
    open_segments = segments.open
    key = open_segments.get(actuals[0])
    if key is not None and all([open_segments.get(q) == key for q in actuals[1:]]):
        segments.nodes[key].append(index)  # a call of gates joins its qubits' segment
    else:
        segments.extend(index, actuals)


def _effects(graph: Graph, max_operands: int | None) -> dict[str, _Effect] | None:
    """Each block's :class:`_Effect`, its body walked once under its formal qubits; None
    when a block's body holds a row the call lane does not take: anything but a faultless
    gate (as :func:`_gate_lane` takes one) or a call of such a block, or an id with a
    slash or repeated (bound ids must stay distinct). The block rules hold already (no
    recursion), so each block is found after those it calls."""
    table = {block.id: block for block in graph.blocks}
    done: dict[str, _Effect] = {}

    def effect(block: Node) -> _Effect | None:
        known = done.get(block.id)
        if known is not None:
            return known
        formals = {q: i for i, q in enumerate(block.vqs)}
        touched: dict[int, None] = {}
        by_op: Counter[str] = Counter()
        caps: dict[str, None] = {}
        non_clifford, longest = 0, 0
        ids = [row.id for row in block.body]
        if len(set(ids)) != len(ids) or any("/" in i for i in ids):
            return None
        for row in block.body:
            if row.op == CALL:
                inner = effect(table[row.args["block"]])
                if inner is None:
                    return None
                for i in inner.touched:
                    touched.setdefault(formals[row.vqs[i]])
                for op, count in inner.by_op.items():
                    by_op[op] += count
                caps.update(dict.fromkeys(inner.caps))
                non_clifford += inner.non_clifford
                longest = max(longest, len(row.id) + 1 + inner.longest)
                continue
            plan = _PLAN_OF.get(row.op)
            vqs = row.vqs
            if (
                plan is None
                or plan.gate_qubits != len(vqs)
                or row.guard is not None
                or row.chs
                or row.inputs
                or row.produces
                or row.caps
                or row.body
                or len(set(vqs)) != len(vqs)
                or (max_operands is not None and len(vqs) > max_operands)
                or ((row.args or plan.required_args) and not plan.args_ok(row))
            ):
                return None
            for q in vqs:
                touched.setdefault(formals[q])
            by_op[row.op] += 1
            spec = plan.spec
            if spec.cap is not None:
                caps.setdefault(spec.cap)
            clifford = plan.clifford
            if not (is_clifford_node(spec, row) if clifford is None else clifford):
                non_clifford += 1
            longest = max(longest, len(row.id))
        made = done[block.id] = _Effect(
            touched=tuple(touched),
            by_op=by_op,
            non_clifford=non_clifford,
            caps=tuple(caps),
            longest=longest,
            every=tuple(touched) == tuple(range(len(block.vqs))),
        )
        return made

    for block in graph.blocks:
        if effect(block) is None:
            return None
    return done


def _check_calls(
    graph: Graph, limits: Limits, excused: frozenset[str], stored: int
) -> Report | None:
    """The call lane of :func:`check_folded`: each block's body checked once
    (:func:`_effects`), then the one-turn view walked with each CALL row as one
    operation of its block's effect, the totals multiplied. It gives a clean program's
    report (totals, no turn) or None: any finding, or a block or id it does not take,
    sends the program to the full path, which binds every call and says what is wrong
    where."""
    if _check_blocks(graph):
        return None
    effects = _effects(graph, limits.max_operands)
    if effects is None:
        return None
    from qmk.qvm.fold import one_turn

    view = one_turn(graph, calls=False)
    nodes = view.nodes
    calls = [node for node in nodes if node.op == CALL]
    if any("/" in node.id for node in (*nodes, *view.repeats)):
        return None  # (an id a bound id could equal: the full path judges it)
    if limits.max_name_length is not None and calls:
        longest = max(len(c.id) + 1 + effects[c.args["block"]].longest for c in calls)
        if longest > limits.max_name_length:
            return None
    flat = Graph(
        version=graph.version,
        nodes=nodes,
        resources=graph.resources,
        caps=graph.caps,
        description=graph.description,
        metadata=graph.metadata,
    )
    findings = _Findings(flat)
    if not _check_limits(flat, limits, findings, stored=stored):
        return None
    if _check_repeats(view, findings):
        return None
    with gc_paused():
        call = functools.partial(_take_call, effects)
        walked = _walk(flat, limits, findings, excused=excused, call=call)
    if walked.findings or walked.program is None:
        return None
    return Report(findings=(), totals=_totals(graph, view, walked.program, (), effects))


def _totals(
    graph: Graph,
    view: View,
    walked: VerifiedProgram,
    found: tuple[Finding, ...],
    effects: Mapping[str, _Effect] | None = None,
) -> Totals:
    """The unrolled program's figures from its one-turn view, multiplied (the walk's
    own where every node runs once: no REPEAT row). With ``effects``, the view's CALL
    rows count as their blocks' nodes (:func:`_check_calls`)."""
    from qmk.qvm.fold import rows

    by_op: Counter[str] = Counter()
    non_clifford = 0
    calls: Counter[str] = Counter()
    for node, times in () if not view.spans else zip(view.nodes, view.multipliers, strict=True):
        if node.op == CALL:
            calls[node.args["block"]] += times
            continue
        by_op[node.op] += times
        plan = _PLAN_OF[node.op]
        clifford = plan.clifford
        if not (is_clifford_node(plan.spec, node) if clifford is None else clifford):
            non_clifford += times
    if effects is None:
        counts = op_counts(by_op, non_clifford) if view.spans else walked.counts
    else:
        if not view.spans:  # each node runs once: the walk counted all but the calls' ops
            by_op.update(walked.counts.by_op)
            calls.update(node.args["block"] for node in view.nodes if node.op == CALL)
        for name, times in calls.items():
            effect = effects[name]
            for op, count in effect.by_op.items():
                by_op[op] += count * times
            non_clifford += effect.non_clifford * times
        counts = op_counts(by_op, walked.counts.non_clifford if not view.spans else non_clifford)
    resources = graph.resources
    return Totals(
        version=graph.version,
        rows=rows(graph.nodes) + rows(graph.blocks),
        nodes=counts.total,
        repeats=len(view.spans),
        blocks=len(graph.blocks),
        qubits=len(resources.vqs),
        channels=len(resources.chs),
        events=len(resources.events),
        peak_live_qubits=walked.peak_live_qubits,
        epochs=1 + counts.by_op.get("FENCE_EPOCH", 0),
        counts=counts,
        required_caps=walked.required_caps,
        requested_caps=graph.caps,
        warnings=tuple(f for f in found if not f.is_error),
    )
