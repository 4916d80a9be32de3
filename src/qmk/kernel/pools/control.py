"""The executor's control in a kernel worker: the kernel's checkpoint and yield requests,
answered at the run's pause points (:class:`WorkerControl`): every fence of a
``trajectories`` run, and the boundaries between chunks of shots of a ``stim-batch`` run
(:mod:`qmk.execution.batch`) and of a neutral-atom device job
(:mod:`qmk.devices.neutral_atom.shots`), where ``epoch`` is what the run reports there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from qmk.kernel.datafiles import STATE_SUFFIX
from qmk.kernel.records.jobs import new_id

#: How many micro-ops a running job goes between looks for an urgent request.
LOOK_EVERY = 64
#: The least time between two looks after segments of gates (s): a look is a system
#: call, a segment of one gate on a few qubits a few microseconds.
SEGMENT_LOOK_S = 0.001


class WorkerControl:
    """The executor's :class:`~qmk.execution.trajectories.Control` in a kernel worker.

    The kernel sends requests down the task's line (:class:`~qmk.kernel.pools.worker.TaskLink`):
    ``{"op": "checkpoint" | "yield" | "yield-now", "checkpoint_id": ...}``. At each fence
    the run reaches, the control answers them:

    - a ``checkpoint`` saves the state into ``directory`` as ``<checkpoint_id>.qmkstate``
      and the run goes on;
    - a ``yield`` saves it and the run stops;
    - a ``yield-now`` stops the run at once, rolling back its open REV segment. It is
      seen between fences too: the control looks at the pipe after a segment of gates
      the engine applied, at most every :data:`SEGMENT_LOOK_S`, and every
      :data:`LOOK_EVERY` micro-ops.

    Each save is reported to the kernel as a note ``{"checkpoint_id", "epoch", "path",
    "bytes", "stopped", "progress"}``. With ``every_ops`` (the kernel's drift policy),
    the run also saves its state, unasked, at each fence it reaches after at least that
    many micro-ops since its last save (every shot group passes every fence: this bounds
    the saves by the work done).

    A subclass may hold the run where it looks: at each fence (:meth:`at_fence`), and
    before a micro-op where :meth:`looks` says so (:meth:`at_op`), taking the requests
    that come meanwhile with :meth:`take`. The tests' pause gate does, to hold a job at
    a fence or step it micro-op by micro-op (``tests/support/pools.py``); it reaches a
    job through :func:`~qmk.kernel.pools.attempt.run_job`'s ``control``.
    """

    def __init__(self, link: Any, directory: str, *, every_ops: int = 0) -> None:
        self.link = link
        self.directory = directory
        self.every_ops = every_ops
        self._since = 0  # micro-ops since the last save
        self.waiting: list[dict[str, Any]] = []
        self.now: dict[str, Any] | None = None
        self.answering: list[dict[str, Any]] = []
        self._countdown = LOOK_EVERY
        self._looked = -math.inf  # when it last looked after a segment (monotonic s)
        #: The key each saved state is sealed with (:func:`qmk.kernel.security.seals.seal_state`;
        #: set by :func:`~qmk.kernel.pools.attempt.run_job`); None: saved unsealed.
        self.state_key: bytes | None = None

    @property
    def urgent(self) -> bool:
        """Read before every micro-op: whether to call :meth:`at_op` (:meth:`looks`)."""
        self._since += 1
        return self.looks()

    def looks(self) -> bool:
        """Whether the run looks at its link before this micro-op: at every
        :data:`LOOK_EVERY`-th, and then only when something waits in the pipe."""
        self._countdown -= 1
        if self._countdown > 0:
            return False
        self._countdown = LOOK_EVERY
        return bool(self.link.pending())

    def take(self, requests: Sequence[Any]) -> None:
        """Keep the kernel's ``requests`` for the next place the run answers them (a
        ``yield-now`` for the next micro-op)."""
        for request in requests:
            if not isinstance(request, dict):
                continue
            if request.get("op") == "yield-now":
                self.now = request
            else:
                self.waiting.append(request)

    def at_op(self) -> str | None:
        """Between micro-ops: :data:`~qmk.execution.trajectories.YIELD_NOW` when the
        kernel asked the run to stop at once, else None."""
        self.take(self.link.requests())
        return self.stop_now()

    def after_segment(self) -> str | None:
        """After a segment of gates: :data:`YIELD_NOW` when a stop-now request waits in the
        link, else None; other requests wait for a fence. It looks after the run's first
        segment, then at most every :data:`SEGMENT_LOOK_S`."""
        now = time.monotonic()
        if now - self._looked < SEGMENT_LOOK_S:
            return None
        self._looked = now
        if not self.link.pending():
            return None
        self.take(self.link.requests())
        return self.stop_now()

    def stop_now(self) -> str | None:
        """:data:`YIELD_NOW` when a stop-now request came (it answers the waiting ones too)."""
        from qmk.execution.trajectories import YIELD_NOW

        if self.now is None:
            return None
        self.answering = [self.now, *self.waiting]
        return YIELD_NOW

    def at_fence(self, epoch: int) -> str | None:
        from qmk.execution.trajectories import CHECKPOINT, YIELD

        self.take(self.link.requests())
        if (stop := self.stop_now()) is not None:
            return stop
        if not self.waiting:
            if not self.every_ops or self._since < self.every_ops:
                return None
            self.waiting = [{"op": "checkpoint", "checkpoint_id": new_id("ckpt")}]
        self.answering, self.waiting = self.waiting, []
        if any(r.get("op") == "yield" for r in self.answering):
            return YIELD
        return CHECKPOINT

    def _seal(self, data: bytes) -> bytes:
        from qmk.kernel.security.seals import seal_state

        return data if self.state_key is None else seal_state(self.state_key, data)

    def save(self, state: Any) -> None:
        import os

        from qmk.execution.checkpoint import write_state

        stopped = any(r.get("op") != "checkpoint" for r in self.answering)
        for request in self.answering:
            checkpoint_id = str(request.get("checkpoint_id"))
            path = os.path.join(self.directory, f"{checkpoint_id}{STATE_SUFFIX}")
            size = write_state(path, state, seal=self._seal)
            self.link.notify(
                {
                    "checkpoint_id": checkpoint_id,
                    "epoch": state.epoch,
                    "path": path,
                    "bytes": size,
                    "stopped": stopped,
                    "progress": dict(state.progress),
                }
            )
        self.answering = []
        self.now = None
        self._since = 0


__all__ = ["LOOK_EVERY", "SEGMENT_LOOK_S", "WorkerControl"]
