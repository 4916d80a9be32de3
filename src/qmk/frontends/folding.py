"""A loop's one lowered pass kept as a REPEAT row, and a call's rows as a CALL row of a
block: the folds every reader shares.

A reader that knows a loop's passes are alike (its body never reads the loop's
variable and holds nothing that stops the loop early) lowers the first pass as ever
and calls :func:`fold_pass`. The rows it wrote become the body of one ``REPEAT`` row
of the loop's count (:mod:`qmk.qvm.fold`) when every one is a plain gate or a REPEAT
row of them; otherwise nothing changes and the reader unrolls the other passes.
OpenQASM 3 (:mod:`~qmk.frontends.qasm_fold`), Qiskit and Cirq read loops this way.

>>> from qmk.qvm.graph import Node
>>> nodes = [Node(id="n0", op="ALLOC_LQ", vqs=("q",)), Node(id="n1", op="APPLY_T", vqs=("q",))]
>>> fold_pass(nodes, 1, 1000, 1)
True
>>> [(n.id, n.op, n.args) for n in nodes][1], [n.id for n in nodes[1].body]
(('loop1', 'REPEAT', {'count': 1000}), ['loop1.0'])

A reader that lowers a call of a gate or subroutine definition writes its rows as ever
and calls :func:`call_pass`: the rows become one ``CALL`` row of a block (made at the
first call of its key, its formals ``a0``, ``a1``...) when they are plain gates, REPEAT
or CALL rows on the call's qubits only; a later call of the key is checked row for row
against the block, bound.

>>> blocks = {}
>>> nodes = [Node(id="n0", op="APPLY_T", vqs=("q1",)), Node(id="n1", op="APPLY_H", vqs=("q0",))]
>>> call_pass(nodes, 0, ("q0", "q1"), ("g",), blocks)
True
>>> [(n.op, n.args, n.vqs) for n in nodes], [(n.op, n.vqs) for n in blocks[("g",)].body]
([('CALL', {'block': 'g'}, ('q0', 'q1'))], [('APPLY_T', ('a1',)), ('APPLY_H', ('a0',))])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import msgspec

from qmk.qvm.graph import BLOCK, CALL, REPEAT, Node
from qmk.qvm.ops import OPS, Exec

__all__ = ["call_pass", "fold_pass", "repeatable"]


def repeatable(node: Node) -> bool:
    """A row a REPEAT body (or a block) may repeat as it is: an unguarded gate that reads
    and writes no event or channel, or a REPEAT or CALL row (itself made of such rows)."""
    if node.op in (REPEAT, CALL):
        return True
    spec = OPS.get(node.op)
    return (
        spec is not None
        and spec.kind is Exec.GATE
        and not (node.produces or node.inputs or node.chs or node.caps)
        and node.guard is None
    )


def fold_pass(nodes: list[Node], before: int, count: int, number: int) -> bool:
    """Make ``nodes[before:]`` (one pass's rows) the body of a REPEAT row of ``count``
    turns, in place, when every row is :func:`repeatable`; False (nothing changed) otherwise.

    The row is ``loop{number}`` and its body's rows ``loop{number}.{k}``: a builder names
    its nodes by their position, which folding changes.
    """
    body = nodes[before:]
    if not body or not all(map(repeatable, body)):
        return False
    rows = tuple(
        msgspec.structs.replace(node, id=f"loop{number}.{k}") for k, node in enumerate(body)
    )
    del nodes[before:]
    nodes.append(Node(id=f"loop{number}", op=REPEAT, args={"count": count}, body=rows))
    return True


def call_pass(
    nodes: list[Node],
    before: int,
    actuals: Sequence[str],
    key: tuple[Hashable, ...],
    blocks: dict[tuple[Hashable, ...], Node],
    metadata: Mapping[str, Any] | None = None,
) -> bool:
    """Make ``nodes[before:]`` (one call's rows, on qubits ``actuals`` in the
    definition's order) one CALL row, in place, of the block of ``key`` in ``blocks``
    (made here at its first call, named ``key[0]``, or that with a number where the name
    is taken); False (nothing changed) when a row is not :func:`repeatable`, touches
    another qubit, or differs from the block's at a later call.

    The CALL row takes the first row's id, and ``metadata`` (the call's source line);
    the block's rows keep none (they stand for every call).
    """
    rows = nodes[before:]
    if not rows or len(set(actuals)) != len(actuals) or not all(map(repeatable, rows)):
        return False
    formals = {q: f"a{k}" for k, q in enumerate(actuals)}
    body = _formal_rows(rows, formals, "b")
    if body is None:
        return False
    block = blocks.get(key)
    if block is None:
        taken = {b.id for b in blocks.values()}
        name, number = str(key[0]), 1
        while name in taken:
            number += 1
            name = f"{key[0]}_{number}"
        block = Node(id=name, op=BLOCK, vqs=tuple(formals.values()), body=body)
        blocks[key] = block
    elif block.body != body:
        return False
    call = Node(
        id=rows[0].id,
        op=CALL,
        args={"block": block.id},
        vqs=tuple(actuals),
        metadata=metadata,
    )
    del nodes[before:]
    nodes.append(call)
    return True


def _formal_rows(
    rows: Sequence[Node], formals: Mapping[str, str], prefix: str
) -> tuple[Node, ...] | None:
    """``rows`` on the formals ``formals`` names, their ids ``PREFIX{k}`` (a body's
    ``PREFIX{k}.{j}``); None where a row touches another qubit."""
    out: list[Node] = []
    for k, row in enumerate(rows):
        if any(q not in formals for q in row.vqs):
            return None
        row_id = f"{prefix}{k}"
        body = _formal_rows(row.body, formals, f"{row_id}.") if row.body else ()
        if body is None:
            return None
        vqs = tuple(formals[q] for q in row.vqs)
        out.append(msgspec.structs.replace(row, id=row_id, vqs=vqs, body=body, metadata=None))
    return tuple(out)
