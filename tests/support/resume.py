"""A run stopped where a test asks (at a fence, or before a micro-op) and resumed from the
state it saved, through the state's file format: what the checkpoint tests compare with a
run that never stopped."""

from __future__ import annotations

from typing import Any

from qmk.execution.checkpoint import ExecutionState
from qmk.execution.runs import run
from qmk.execution.trajectories import YIELD_NOW, Suspended
from qmk.qvm.graph import Graph


class StopAt:
    """A control that answers ``request`` at fence ``epoch`` (or, with ``op`` set, asks
    to stop now before the ``op``-th micro-op), and keeps what was saved."""

    def __init__(self, request: str, *, epoch: int = 0, op: int = 0) -> None:
        self.request, self.epoch, self.op = request, epoch, op
        self.saved: list[ExecutionState] = []
        self.ops = 0

    @property
    def urgent(self) -> bool:
        return self.op > 0

    def at_fence(self, epoch: int) -> str | None:
        if epoch == self.epoch and self.op == 0 and not self.saved:
            return self.request
        return None

    def at_op(self) -> str | None:
        self.ops += 1
        return YIELD_NOW if self.ops == self.op and not self.saved else None

    def after_segment(self) -> str | None:
        return None

    def save(self, state: ExecutionState) -> None:
        self.saved.append(ExecutionState.from_bytes(state.to_bytes()))  # the file format


def stopped_then_resumed(graph: Graph, control: StopAt, **options: Any) -> Any:
    """Run with ``control``; if it stopped, resume from its saved state."""
    try:
        result = run(graph, control=control, **options)
    except Suspended:
        (state,) = control.saved
        return run(graph, resume=state, **options)
    assert not control.saved  # it never reached the fence (or the micro-op) asked for
    return result
