"""A plan's micro-ops written a node at a time: the reference that the plan's column
builder (``trajectories.NoiselessOps``) and a shot group's spliced micro-ops
(``trajectories.Observed.with_errors``) are checked against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qmk.execution.microcode import Ops, Writer
from qmk.execution.plan import BASIS_OF, Plan, gate_of
from qmk.execution.trajectories import _step_ops


def node_ops(
    plan: Plan, errors: Mapping[int, Sequence[tuple[bool, str, str]]] | None = None
) -> tuple[Ops, list[tuple[int, int]]]:
    """The plan's micro-ops made node by node (a gate's by :func:`gate_of`, a
    measurement's by its basis and event, any other step's by the builder's own writer of
    them), with the Pauli ``errors`` (by step: ``(before, qubit, pauli)``) before or after
    their steps; and each step's ``(start, end)`` among them."""
    errors = errors or {}
    writer = Writer()
    ev = {name: i for i, name in enumerate(plan.events)}
    bounds: list[tuple[int, int]] = []
    fences = 0

    def paulis(step: int, before: bool) -> None:
        for when, qubit, pauli in errors.get(step, ()):
            if when is before:
                writer.add("gate", (qubit,), gate=pauli.lower())

    for index, (node, kind) in enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)):
        paulis(index, True)
        start = len(writer)
        if kind == "gate":
            writer.add("gate", node.vqs, node.guard, *gate_of(node))
        elif kind == "measure":
            event = ev.get(node.produces[0], -1)
            writer.add("meas", node.vqs, node.guard, basis=BASIS_OF[node.op], event=event)
        else:
            fences = _step_ops(index, node, kind, ev, fences, writer.add)
        bounds.append((start, len(writer)))
        paulis(index, False)
    return writer.done(), bounds
