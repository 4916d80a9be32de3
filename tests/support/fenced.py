"""The fenced job that the checkpoint, preemption and recovery tests run, in in-process
kernels and real servers alike: its graph (:data:`~support.kernel.FENCED`: three fences,
where a run saves its state, yields and resumes), its shots and seed, and the counts every
run of it must give however often it stopped (:func:`uninterrupted`)."""

from __future__ import annotations

import time
from typing import Any

from qmk.execution.runs import run
from support.kernel import FENCED

GRAPH = FENCED.to_json()
SHOTS, SEED = 500, 17


def uninterrupted() -> dict[str, int]:
    """What every kernel run of FENCED must give: the in-process run, never stopped."""
    return dict(run(FENCED, shots=SHOTS, seed=SEED, noise=False).counts)


def until_running(client: Any, job_id: str, limit_s: float = 120.0) -> None:
    """Return once ``client`` sees job ``job_id`` RUNNING (on a worker: a ``q_checkpoint``
    then waits for its fence; asked while the job still waits for its schedule on the
    shared machine or for a worker, it answers at once with where the job would start
    again, ``saved`` false). Fails after ``limit_s``, or if the job ends first."""
    deadline = time.monotonic() + limit_s
    while (state := client.q_status(job_id).state) != "RUNNING":
        assert state in ("QUEUED", "VALIDATING"), f"job {job_id} is {state}, never RUNNING"
        assert time.monotonic() < deadline, f"job {job_id} not RUNNING after {limit_s} s"
        time.sleep(0.01)
