"""A job out on a Dask cluster and its attempts, and the parts a big job splits into.

A job of at least ``split_shots`` shots goes out as parts (:mod:`qmk.execution.parts`:
part ``k`` of ``n`` runs its share of the shot groups), dealt over the workers, their
counts merged: the same counts as one run, bit for bit. A split job's program travels
inside each part's call, or past :data:`STASH_BYTES` (pickled) is put once on one worker
(the first part's) and fetched from there by the other parts' workers.
:class:`SplitParts` decides how many parts a job goes out as, carries its program to
them, and merges their outcomes; :class:`OutJob` and :class:`Launch` are the records of a
job out and of each of its attempts, which the jobs' side (:mod:`.dask_jobs`) keeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from qmk.execution.targets import spec as target_spec
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.dask_cluster import ASK_S, ClusterLink, KnownWorker
from qmk.kernel.pools.dask_protocol import Raised, Returned, Stash
from qmk.kernel.records.outcome import Ran, decode, encode

#: A job with at least this many shots is split over the workers (0: never).
SPLIT_SHOTS = 100_000
#: A split job's spec longer than this (pickled bytes) leaves the kernel once: it is put
#: on one worker, and its parts' workers fetch it from there.
STASH_BYTES = 1 << 20


@dataclass(eq=False)
class Launch:
    """One attempt of a job (all of it, or a part): one call to one worker."""

    token: str
    part: int | None
    worker: KnownWorker | None = None  # where its call is out now
    notes: int = 0  # notes received
    early: list[Any] = field(default_factory=list)  # requests before its call went out


@dataclass(eq=False)
class OutJob:
    """A job the pool holds: its future, what it runs, and its attempts."""

    future: Future[Any]
    fn: Callable[..., Any]
    spec: Any
    parts: int  # 0: not split
    listener: Callable[[Any], None] | None = None
    launches: dict[str, Launch] = field(default_factory=dict)
    results: dict[int, Any] = field(default_factory=dict)
    spans: list[Any] = field(default_factory=list)  # the parts' worker spans (traced jobs)
    latest: str | None = None  # the kernel's file of its latest saved state
    restarts: int = 0
    waiting: dict[str, Returned | Raised] = field(default_factory=dict)  # answers short of notes
    packed: bytes | None = None  # a split job's spec, pickled once
    stash: asyncio.Task[Stash] | None = None  # its put on a worker (a big one)


class PutFailed(Exception):
    """A split job's program could not be put on the worker at ``address``."""

    def __init__(self, address: str, message: str) -> None:
        super().__init__(message)
        self.address = address


class SplitParts:
    """The parts of big jobs (see the module docstring).

    Args:
        cluster: the cluster (its workers, its client, how many jobs run at once).
        spawn: makes a task of the pool's (a put of a program on a worker).
        split_shots: split jobs of at least this many shots over the workers (0: never).
    """

    def __init__(
        self,
        cluster: ClusterLink,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        split_shots: int,
    ) -> None:
        self.cluster = cluster
        self._spawn = spawn
        self.split_shots = split_shots
        #: How many jobs went out split into parts.
        self.split_jobs = 0
        #: Put a split job's spec on one worker from this size on (tests lower it).
        self.stash_bytes = STASH_BYTES
        #: How many specs the pool put on a worker for their parts to fetch.
        self.stashed = 0

    def count(self, attempt: Any) -> int:
        """How many parts ``attempt`` goes out as (0: whole): an attempt of ``split_shots``
        or more shots, on a target whose shots split (``TargetSpec.parts``), that resumes
        from no state."""
        if (
            not self.split_shots
            or not isinstance(attempt, Attempt)
            or not target_spec(attempt.request.target).parts
            or attempt.resume
            or attempt.request.shots < self.split_shots
        ):
            return 0
        parts = min(self.cluster.max_workers, attempt.request.shots // self.split_shots)
        return parts if parts > 1 else 0

    async def spec_for(self, job: OutJob, worker: KnownWorker) -> Any:
        """A split job's spec as its part's call carries it: itself, or, past
        ``stash_bytes``, a :class:`Stash` of it, put once on ``worker`` (the first part's;
        the others wait for that put, then fetch it from there).

        Raises:
            PutFailed: the worker that was to hold it did not take it.
        """
        if job.packed is None:
            job.packed = pickle.dumps(job.spec, protocol=pickle.HIGHEST_PROTOCOL)
        if len(job.packed) <= self.stash_bytes:
            return job.spec
        task = job.stash
        if task is None or (
            task.done()
            and (
                task.cancelled()
                or task.exception() is not None
                or task.result().address not in self.cluster.workers
            )
        ):
            task = job.stash = self._spawn(self._put(job.packed, worker.address))
        return await asyncio.shield(task)

    async def _put(self, packed: bytes, address: str) -> Stash:
        digest = hashlib.sha256(packed).hexdigest()
        try:
            await asyncio.wait_for(
                self.cluster.client.rpc(address).qmk_put(digest=digest, data=packed), ASK_S * 12
            )
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            message = f"cannot put the job's program on {address}: {exc!r}"
            raise PutFailed(address, message) from None
        self.stashed += 1
        return Stash(digest=digest, address=address)

    @staticmethod
    def take(job: OutJob, part: int, value: Any) -> tuple[bool, Any]:
        """Part ``part``'s outcome ``value`` (plain data, :mod:`qmk.kernel.records.outcome`):
        (whether ``job`` has ended, its outcome then). A part that failed (or stopped)
        ends the job with its outcome; the last part's ends it with the parts' counts
        merged."""
        try:
            ran = decode(value)
        except ValueError:  # msgspec.ValidationError: no outcome
            ran = None
        if not isinstance(ran, Ran):
            return True, value  # a part failed (or stopped): the job did
        job.results[part] = ran.result
        job.spans.extend(ran.spans)
        if len(job.results) < job.parts:
            return False, None
        from qmk.execution.parts import merge_json

        merged = merge_json([job.results[k] for k in range(job.parts)])
        return True, encode(Ran(result=merged, spans=job.spans))


__all__ = ["SPLIT_SHOTS", "STASH_BYTES", "Launch", "OutJob", "PutFailed", "SplitParts"]
