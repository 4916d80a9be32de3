"""The verifier's findings that take more than a sentence to find or say: an unknown op
(with the closest name), an operand given twice, and an event read
before its producer (a dependency cycle, with its path, or a read listed too early).

:mod:`qmk.qvm.walk` imports this at the first such finding: a kernel whose programs
verify holds none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from qmk.errors import closest
from qmk.qvm.graph import duplicates, node_at
from qmk.qvm.ops import OPS, canonical_op

if TYPE_CHECKING:
    from qmk.qvm.graph import Node
    from qmk.qvm.walk import _Findings


def closest_op(name: str) -> str | None:
    """The known op name closest to ``name``, for the unknown op's 'did you mean' hint.

    >>> closest_op("APPLY_CY")
    'APPLY_Y'
    >>> closest_op("H"), closest_op("cx"), closest_op("apply_cnot")
    ('APPLY_H', 'APPLY_CNOT', 'APPLY_CNOT')
    """
    upper = name.upper()
    for candidate in (upper, f"APPLY_{upper}"):
        if canonical_op(candidate) is not None:
            return canonical_op(candidate)
    return closest(upper, OPS)


def report_unknown_op(node: Node, findings: _Findings, index: int) -> None:
    """An op not in the table, with the closest name there."""
    hint = closest_op(node.op)
    findings.add(
        "unknown-op",
        f"unknown op {node.op!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
        index,
    )


def report_duplicate_operands(node: Node, findings: _Findings, index: int) -> None:
    """Each qubit, channel or event given twice to one node."""
    for kind, values, what in (
        ("vqs", node.vqs, "qubit"),
        ("chs", node.chs, "channel"),
        ("inputs", node.inputs, "event"),
    ):
        for dup in dict.fromkeys(duplicates(values)):
            findings.add("duplicate-operand", f"{what} {dup!r} appears twice in {kind}", index)


def report_backward_reads(
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
                f"event {event!r} is produced later, at {node_at(nodes, source)}",
                reader,
            )
        else:
            chain = " -> ".join(repr(nodes[i].id) for i in path[:8])
            more = " -> ..." if len(path) > 8 else ""
            findings.add(
                "dependency-cycle",
                f"it reads event {event!r} of {node_at(nodes, source)}, which runs after it "
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


__all__ = [
    "report_backward_reads",
    "report_duplicate_operands",
    "report_unknown_op",
]
