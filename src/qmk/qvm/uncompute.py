"""The uncompute of a REV segment: the nodes that undo it, without measuring anything.

The verifier finds the segments (:attr:`qmk.qvm.walk.VerifiedProgram.rev_segments`);
undoing one is a rewrite a program's author or a pass asks for, not a check, so the
verifier (and the kernel, which runs it) never loads this.

>>> from qmk.qvm.asm import assemble
>>> from qmk.qvm.verify import verify
>>> graph = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q
... h: APPLY_H vq:q
... r: APPLY_RZ vq:q, theta=0.5
... m: MEASURE_Z vq:q, out:m
... ''')
>>> [(n.id, n.op, dict(n.args)) for n in uncompute(verify(graph).rev_segments[0], graph)]
[('r~inv', 'APPLY_RZ', {'theta': -0.5}), ('h~inv', 'APPLY_H', {})]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmk.qvm.graph import Node
from qmk.qvm.ops import OPS

if TYPE_CHECKING:
    from qmk.qvm.graph import Graph
    from qmk.qvm.walk import RevSegment


def uncompute(segment: RevSegment, graph: Graph) -> tuple[Node, ...]:
    """The nodes that undo ``segment`` of ``graph``: reversed, each replaced by its inverse.

    Inverse nodes get ids ``<id>~inv``; guards are kept (an undo runs exactly when the
    original ran). Args named in ``inverse_negates`` are negated.
    """
    undo = []
    for index in reversed(segment.nodes):
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
