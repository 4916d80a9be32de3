"""Pause points between chunks of shots, for runs that sample their shots chunk by chunk.

A ``stim-batch`` run (:mod:`qmk.execution.batch`) and a neutral-atom device job
(:mod:`qmk.devices.neutral_atom.shots`) sample their shots in chunks; between two chunks
they ask their control (:class:`~qmk.execution.trajectories.Control`) whether to save
and go on or save and stop, as a trajectories run asks at its fences. The state they save
(:class:`~qmk.execution.branches.ExecutionState`) holds the bits of the chunks done, the
number of chunks done (``group``), the run's progress and what else the run adds up
(``extra``); a resume goes on with the next chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.engines import EngineError
from qmk.execution.branches import ExecutionState, Progress

if TYPE_CHECKING:
    from qmk.execution.trajectories import Control

#: The keys of a saved progress that are :class:`Progress`'s own (the rest is ``extra``).
_PROGRESS_KEYS = frozenset(Progress().to_json())


def pause_between_chunks(
    control: Control,
    *,
    epoch: int,
    done: int,
    bits: np.ndarray | Callable[[], np.ndarray],
    progress: Progress,
    key: str,
    engine: str,
    extra: Mapping[str, Any],
) -> None:
    """Ask ``control`` at the pause point after ``done`` chunks (reported as ``epoch``):
    save the state for each request, and stop after saving unless it is a checkpoint.
    ``bits`` are the bits of the shots so far, or what makes them (a new array, only
    when a state is saved: a run that keeps its rows packed unpacks them then).

    Raises:
        Suspended: the control asked the run to stop; its state was saved first.
    """
    from qmk.execution.trajectories import CHECKPOINT, Suspended

    while (request := control.at_fence(epoch)) is not None:
        stopping = request != CHECKPOINT
        progress.checkpoints += 1
        if stopping:
            assert progress.preempted_at_epochs is not None
            progress.preempted_at_epochs.append(epoch)
        state = ExecutionState(
            key=key,
            engine=engine,
            epoch=epoch,
            group=done,
            bits=bits() if callable(bits) else bits.copy(),
            leaves=(),
            branches=(),
            progress={**progress.to_json(), **extra},
        )
        control.save(state)
        if stopping:
            raise Suspended(state)


def resume_chunks(
    state: ExecutionState, key: str, *, shape: tuple[int, ...], chunks: int, what: str
) -> tuple[np.ndarray, int, Progress, dict[str, Any]]:
    """``(bits, chunks done, progress, extra)`` of a state :func:`pause_between_chunks`
    saved for the run whose digest is ``key``; its bits' shape starts with ``shape``.

    Raises:
        EngineError: ``QE106 checkpoint-mismatch`` for a state of another run (``what``
            names what must be the same), or of a shape that does not fit.
    """
    if state.key != key:
        raise EngineError.of(
            "checkpoint-mismatch", f"the checkpoint is of another {what}: resume it with the same"
        )
    if (
        state.branches
        or state.leaves
        or state.bits.shape[: len(shape)] != shape
        or not 0 < state.group < chunks
    ):
        raise EngineError.of("checkpoint-mismatch", "the checkpoint's shape does not fit the run")
    saved = state.progress
    progress = Progress(
        simulations=int(saved["simulations"]),
        checkpoints=int(saved["checkpoints"]),
        preempted_at_epochs=[int(e) for e in saved["preempted_at_epochs"]],
        resumed_from_epoch=state.epoch,
    )
    extra = {k: v for k, v in saved.items() if k not in _PROGRESS_KEYS}
    return state.bits.copy(), state.group, progress, extra


__all__ = ["pause_between_chunks", "resume_chunks"]
