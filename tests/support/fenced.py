"""The fenced job that the checkpoint, preemption and recovery tests run, in in-process
kernels and real servers alike: its graph (:data:`~support.kernel.FENCED`: three fences,
where a run saves its state, yields and resumes), its shots and seed, and the counts every
run of it must give however often it stopped (:func:`uninterrupted`)."""

from __future__ import annotations

from qmk.execution.executor import run
from support.kernel import FENCED

GRAPH = FENCED.to_json()
SHOTS, SEED = 500, 17


def uninterrupted() -> dict[str, int]:
    """What every kernel run of FENCED must give: the in-process run, never stopped."""
    return dict(run(FENCED, shots=SHOTS, seed=SEED, noise=False).counts)
