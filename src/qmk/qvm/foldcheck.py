"""The verifier's rules of REPEAT rows and blocks, where a folded program is checked.

:func:`qmk.qvm.folded.check_folded` walks a program's one-turn view as any flat
program; these are the rules only folded programs have (docs/qvm.md, "Bounded
repetition", "Blocks"). That module imports them, and the folding's views
(:mod:`qmk.qvm.fold`): a kernel that verifies flat programs holds neither.
Each rule gives its problems as plain values; the verifier makes them findings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from qmk.qvm.graph import BLOCK, CALL, REPEAT, Graph, Node
from qmk.qvm.ops import OPS

if TYPE_CHECKING:
    from qmk.qvm.fold import Span, View

#: A problem of a row (a REPEAT, BLOCK or CALL row, or a block): its finding's name, the
#: message, the row, and the REPEAT rows around it (outermost first).
RowProblem = tuple[str, str, Node, tuple[str, ...]]


def repeat_problems(view: View) -> list[RowProblem]:
    """The REPEAT rules (docs/qvm.md, "Bounded repetition") of each row: well formed, its
    body balanced in the lifetimes it changes. Each problem with the REPEAT rows around
    the row."""
    out: list[RowProblem] = []

    def add(name: str, message: str, node: Node, repeat: tuple[str, ...]) -> None:
        out.append((name, message, node, repeat))

    ids = {node.id for node in view.nodes}
    for row, span in zip(view.repeats, view.spans, strict=True):
        problem = _repeat_problem(row, span, ids)
        ids.add(row.id)
        if problem:
            add("repeat-invalid", problem, row, span.path[:-1])
        for name, message in _unbalanced(view, span):
            add(name, message, row, span.path[:-1])
    return out


def _repeat_problem(row: Node, span: Span, ids: set[str]) -> str | None:
    """What is wrong with a REPEAT row itself, if anything."""
    if span.count < 1:
        return f"its count is {row.args.get('count')!r}, not a whole number >= 1"
    if set(row.args) != {"count"}:
        return f"its args are {sorted(row.args)}; a REPEAT row takes count only"
    if span.start == span.end:
        return "its body has no operation"
    if row.vqs or row.chs or row.inputs or row.produces or row.caps or row.guard is not None:
        return "a REPEAT row takes no operands, guard or capabilities: its body's rows do"
    if row.id in ids:
        return f"its id {row.id!r} is also another row's id"
    return None


def _unbalanced(view: View, span: Span) -> list[tuple[str, str]]:
    """The handles the body's own rows (not nested bodies') leave otherwise than they
    found them (``repeat-unbalanced``), and its guarded lifetime changes
    (``repeat-invalid``), as (finding name, message)."""
    first: dict[tuple[str, str], str] = {}
    last: dict[tuple[str, str], tuple[str, Node]] = {}
    problems: list[tuple[str, str]] = []
    for index in range(span.start, span.end):
        if view.paths[index] != span.path:
            continue
        node = view.nodes[index]
        spec = OPS.get(node.op)
        if spec is None or (spec.opens is None and spec.closes is None):
            continue
        kind, change = (spec.opens, "start") if spec.opens else (spec.closes, "end")
        assert kind is not None
        if node.guard is not None:
            problems.append(
                ("repeat-invalid", f"node {node.id!r} ({node.op}) changes a lifetime under a guard")
            )
        for handle in getattr(node, kind):
            first.setdefault((kind, handle), change)
            last[(kind, handle)] = (change, node)
    for (kind, handle), change in first.items():
        end, node = last[(kind, handle)]
        if change == end:
            what = "qubit" if kind == "vqs" else "channel"
            did = {"start": "starts", "end": "ends"}[change]
            problems.append(
                (
                    "repeat-unbalanced",
                    f"its body {did} the lifetime of {what} {handle!r} "
                    f"(last at node {node.id!r}, {node.op}) and does not "
                    f"{'end' if change == 'start' else 'start'} it again",
                )
            )
    return problems


def escapes(view: View) -> list[tuple[str, str, int]]:
    """Each read, after a body, of an event the body produces (QV702): its finding's
    name, message and index in the one-turn view."""
    found: list[tuple[str, str, int]] = []
    if not view.spans:
        return found  # (no body: a program of calls alone, whose blocks produce no event)
    innermost = {span.path: span for span in view.spans}
    scope: dict[str, Span] = {}
    for index, node in enumerate(view.nodes):
        path = view.paths[index]
        for event in (*node.inputs, *node.guard_events):
            span = scope.get(event)
            if span is not None and not span.start <= index < span.end:
                found.append(
                    (
                        "repeat-event-escapes",
                        f"event {event!r} is produced in each turn of REPEAT {span.id!r}, "
                        "which ended before this node",
                        index,
                    )
                )
        if path:
            for event in node.produces:
                scope[event] = innermost[path]
    return found


def block_problems(graph: Graph) -> list[RowProblem]:
    """The block rules (docs/qvm.md, "Blocks"): each block checked once, each CALL row
    once where it is stored, and no block that calls itself, directly or not. The
    operations of a block's body are checked once under its formals (the call lane,
    :func:`_effects`), or where each call binds them (the one-turn view)."""
    out: list[RowProblem] = []

    def add(name: str, message: str, node: Node) -> None:
        out.append((name, message, node, ()))

    table: dict[str, Node] = {}
    for block in graph.blocks:
        problem = _block_problem(block, table)
        table.setdefault(block.id, block)
        if problem:
            add("block-invalid", problem, block)
    calls: dict[str, set[str]] = {}
    stack: list[tuple[str | None, Sequence[Node]]] = [(None, graph.nodes)]
    stack += [(block.id, block.body) for block in graph.blocks]
    while stack:
        owner, level = stack.pop()
        for row in level:
            if row.body and row.op == REPEAT:
                stack.append((owner, row.body))
            if row.op != CALL:
                continue
            args, vqs = row.args, row.vqs
            name = args.get("block")
            callee = table.get(name) if type(name) is str and len(args) == 1 else None
            if (
                callee is not None
                and len(vqs) == len(callee.vqs)
                and len(set(vqs)) == len(vqs)
                and not (row.chs or row.inputs or row.produces or row.caps or row.body)
                and row.guard is None
            ):
                if owner is not None:
                    calls.setdefault(owner, set()).add(callee.id)
                continue  # (the common case: a well-formed call, checked at C speed)
            problem = _call_problem(row, table)
            if problem:
                add("call-invalid", problem, row)
            elif owner is not None:
                calls.setdefault(owner, set()).add(row.args["block"])
    for name in _recursive(calls):
        add(
            "block-recursive",
            f"block {name!r} calls itself (directly or through others)",
            table[name],
        )
    return out


def _block_problem(block: Node, table: Mapping[str, Node]) -> str | None:
    """What is wrong with a block, if anything: its shape, and each row of its body
    (nested REPEAT bodies too) on its formal qubits only, with no lifetime change,
    event, channel or guard (a call binds qubits alone)."""
    if block.id in table:
        return f"its name {block.id!r} is also another block's"
    if block.args or block.chs or block.inputs or block.produces or block.caps or block.guard:
        return "a block takes a name, its formal qubits (vqs) and a body only"
    if len(set(block.vqs)) != len(block.vqs):
        return "its formal qubits are not distinct"
    if not block.body:
        return "its body has no row"
    formals = set(block.vqs)
    stack: list[Node] = list(block.body)
    while stack:
        row = stack.pop()
        stack.extend(row.body if row.op == REPEAT else ())
        spec = OPS.get(row.op)
        if row.op == BLOCK:
            return f"row {row.id!r} is a block inside a block: blocks are program.blocks' rows"
        if spec is not None and (spec.opens or spec.closes):
            return f"row {row.id!r} ({row.op}) changes a lifetime: a block uses its formals only"
        if row.chs or row.inputs or row.produces or row.guard is not None:
            return (
                f"row {row.id!r} ({row.op}) uses a channel or an event: a block binds qubits only"
            )
        stray = [q for q in row.vqs if q not in formals]
        if stray:
            return (
                f"row {row.id!r} ({row.op}) uses {stray[0]!r}, which is none of its formal qubits"
            )
    return None


def _call_problem(row: Node, table: Mapping[str, Node]) -> str | None:
    """What is wrong with a CALL row, if anything: its block, its operands' count and
    distinctness, its shape."""
    name = row.args.get("block")
    if set(row.args) != {"block"} or type(name) is not str:
        return 'a CALL row\'s args are {"block": NAME}'
    block = table.get(name)
    if block is None:
        return f"it calls {name!r}, which is no block of program.blocks"
    if len(row.vqs) != len(block.vqs):
        return f"block {name!r} takes {len(block.vqs)} qubit(s), the call gives {len(row.vqs)}"
    if len(set(row.vqs)) != len(row.vqs):
        return "its qubits are not distinct"
    if row.chs or row.inputs or row.produces or row.caps or row.guard is not None or row.body:
        return "a CALL row takes a block and qubits only: no channel, event, guard or capability"
    return None


def _recursive(calls: Mapping[str, set[str]]) -> list[str]:
    """The blocks that reach themselves in the call graph ``calls``, sorted."""
    found = []
    for name in sorted(calls):
        seen: set[str] = set()
        stack = list(calls[name])
        while stack:
            nxt = stack.pop()
            if nxt == name:
                found.append(name)
                break
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(calls.get(nxt, ()))
    return found


__all__ = ["RowProblem", "block_problems", "escapes", "repeat_problems"]
