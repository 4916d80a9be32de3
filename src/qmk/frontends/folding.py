"""A loop's one lowered pass kept as a REPEAT row: the fold every reader shares.

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
"""

from __future__ import annotations

import msgspec

from qmk.qvm.graph import REPEAT, Node
from qmk.qvm.ops import OPS, Exec

__all__ = ["fold_pass", "repeatable"]


def repeatable(node: Node) -> bool:
    """A row a REPEAT body may repeat as it is: an unguarded gate that reads and writes no
    event or channel, or a REPEAT row (itself made of such rows)."""
    if node.op == REPEAT:
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
