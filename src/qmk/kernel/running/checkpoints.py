"""The checkpoints of a kernel's jobs: recorded, asked of running jobs, and found again.

A checkpoint is a row of the store (:meth:`~qmk.kernel.storage.store.Store.insert_checkpoint`)
and an audit line. It holds an execution state when a running job saved one at a fence
(its file under ``DATA_DIR/checkpoints/<job_id>/``, the program's fence, and the physics
it was saved under: :meth:`~qmk.execution.request.RunRequest.physics`), or none when it
marks where a job would start again from its beginning.

:class:`Checkpoints` is the supervisor's book of them. It records them
(:meth:`~Checkpoints.record`). It keeps the ``q_checkpoint`` calls that wait for a
running job's next fence (:meth:`~Checkpoints.wait_for`, answered by
:meth:`~Checkpoints.saved` or, when the attempt ends first,
:meth:`~Checkpoints.attempt_ended`). It remembers which running jobs were asked to yield
their worker, and finds the state a start resumes from (:meth:`~Checkpoints.resume_from`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import qmk.abi.replies as replies
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig
from qmk.kernel.records.jobs import Job, new_id
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.retention import prune_job
from qmk.kernel.storage.store import Store


class Checkpoints:
    """The checkpoints of one kernel's jobs (see the module docstring).

    Args:
        config: the kernel configuration (``checkpoints_per_job``).
        store, audit, commits, clock: the kernel's.
        directory: where running jobs save their execution states (None: they save none).
        epoch: the kernel's epoch now (each checkpoint records it).
        pool: the worker pool (running jobs can be asked to save when it has ``request``).
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
        clock: Clock,
        directory: Path | None,
        epoch: Callable[[], int],
        pool: Any,
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.commits = commits
        self.clock = clock
        self.directory = directory
        self._epoch = epoch
        self._pool = pool
        #: Whether running jobs save execution states (a directory for them, and a pool
        #: that can talk to running tasks).
        self.requestable = directory is not None and hasattr(pool, "request")
        #: q_checkpoint calls waiting for a running job's fence: checkpoint id -> future
        #: (None when the attempt ended first), and the ids of each job.
        self._waits: dict[str, asyncio.Future[replies.Checkpoint | None]] = {}
        self._waits_of: dict[str, set[str]] = {}
        #: Running jobs asked to yield their worker: job id -> the checkpoint id asked for.
        self.yielding: dict[str, str] = {}

    def record(self, job: Job, checkpoint_id: str, note: Mapping[str, Any]) -> replies.Checkpoint:
        """Record checkpoint ``checkpoint_id`` of ``job``: the state file ``note["path"]``
        saved at the program's fence ``note["epoch"]`` under ``note["physics"]``, or (no
        path) the job's start. Its reply to ``q_checkpoint``."""
        now = self.clock.now()
        epoch = self._epoch()
        path = note.get("path")
        program_epoch = None if path is None else int(note["epoch"])
        self.store.insert_checkpoint(
            checkpoint_id,
            job,
            epoch,
            now,
            path=None if path is None else str(path),
            program_epoch=program_epoch,
            physics=None if path is None else note.get("physics"),
        )
        if path is not None and self.directory is not None:
            keep = self.config.checkpoints_per_job
            prune_job(self.store, self.audit, self.directory, job, keep)
        job.checkpoint_id = checkpoint_id
        extra = {} if "bytes" not in note else {"bytes": note["bytes"], "stopped": note["stopped"]}
        self.audit.append(
            "checkpoint",
            job_id=job.job_id,
            tenant=job.tenant,
            checkpoint_id=checkpoint_id,
            epoch=epoch,
            program_epoch=program_epoch,
            **extra,
        )
        self.commits.dirty()
        return replies.Checkpoint(
            checkpoint_id=checkpoint_id,
            job_id=job.job_id,
            epoch=epoch,
            state=job.state,
            created_at=now,
            saved=path is not None,
            program_epoch=program_epoch,
        )

    def of_restart(self, job: Job) -> replies.Checkpoint:
        """Record a checkpoint of where ``job`` would start again: its latest saved
        execution state if it is not final and has one, else its start."""
        note: dict[str, Any] = {}
        if not job.final and (saved := self.saved_state(job)) is not None:
            note = {
                "path": saved["path"],
                "epoch": saved["program_epoch"],
                "physics": saved["physics"],
            }
        return self.record(job, new_id("ckpt"), note)

    async def wait_for(self, job: Job, future: Any) -> replies.Checkpoint | None:
        """Ask the running attempt of ``job`` (its pool ``future``) to save its state at
        its next fence, and wait for that checkpoint; None when the pool would not pass
        the request or the attempt ended first."""
        if not self.requestable or job.job_id in self.yielding:
            return None
        checkpoint_id = new_id("ckpt")
        waiter: asyncio.Future[replies.Checkpoint | None] = (
            asyncio.get_running_loop().create_future()
        )
        if not self._pool.request(future, {"op": "checkpoint", "checkpoint_id": checkpoint_id}):
            return None
        self._waits[checkpoint_id] = waiter
        self._waits_of.setdefault(job.job_id, set()).add(checkpoint_id)
        return await waiter

    def ask_to_yield(self, job: Job, future: Any, *, now: bool) -> str | None:
        """Ask the running attempt of ``job`` to save its state and stop: at its next
        fence, or at once (``now``: rolling back its open REV segment). The request's op,
        or None when the pool would not pass it."""
        if not self.requestable:
            return None
        op = "yield-now" if now else "yield"
        request = {"op": op, "checkpoint_id": new_id("ckpt")}
        if not self._pool.request(future, request):
            return None
        self.yielding[job.job_id] = request["checkpoint_id"]
        return op

    def saved(self, job: Job, note: Mapping[str, Any]) -> None:
        """A running attempt of ``job`` saved its state (its worker's ``note``, with the
        physics it runs under): record it and answer the q_checkpoint waiting for it."""
        checkpoint_id = str(note.get("checkpoint_id"))
        record = self.record(job, checkpoint_id, note)
        self.store.save_job(job)
        waiter = self._waits.pop(checkpoint_id, None)
        self._waits_of.get(job.job_id, set()).discard(checkpoint_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(record)

    def attempt_ended(self, job: Job) -> None:
        """The job left its worker: q_checkpoint calls still waiting get None."""
        self.yielding.pop(job.job_id, None)
        for checkpoint_id in self._waits_of.pop(job.job_id, set()):
            waiter = self._waits.pop(checkpoint_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def saved_state(self, job: Job) -> dict[str, Any] | None:
        """The checkpoint ``job`` would start again from, if it holds an execution state."""
        if job.checkpoint_id is None:
            return None
        checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, job.checkpoint_id)
        return None if checkpoint is None or checkpoint["path"] is None else checkpoint

    def resume_from(self, job: Job) -> dict[str, Any] | None:
        """The checkpoint whose execution state a start of ``job`` resumes from (None: its
        start)."""
        return None if self.directory is None else self.saved_state(job)


__all__ = ["Checkpoints"]
