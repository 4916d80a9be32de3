"""The jobs a Dask pool has out: each attempt one call to one worker, killed, restarted
after a lost worker, its notes taken in order, its outcome taken once.

A job is one call of the worker's ``qmk_run`` handler (a split job's, one a part:
:mod:`.dask_parts`), from the kernel's client to the worker the cluster picks
(:mod:`.dask_cluster`) and back. Cancel, timeout, deadline and preemption call the
worker's ``qmk_kill``: the child is SIGKILLed at once, and the kernel's future fails with
:class:`~qmk.kernel.pools.pool.WorkerKilled` without waiting.

A worker that dies mid-job (its call fails, or the scheduler no longer lists it) has its
job started again on another worker, up to :data:`MAX_RESTARTS` times. It starts from
the job's latest checkpoint if it saved one, else from its start. Each attempt has a
token of its own, the one before is killed wherever it may still run, and only the
current attempt's outcome is taken: one result. When the scheduler goes away the
attempts out wait for it (neither counts as a restart).

A running job's notes (Dask events) pass the scheduler: a checkpoint's state, sent with
its note, is written into the kernel's data directory, and an outcome waits up to
:data:`NOTES_WAIT_S` for the notes its job sent before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.dask_cluster import ClusterLink, KnownWorker
from qmk.kernel.pools.dask_parts import Launch, OutJob, PutFailed, SplitParts
from qmk.kernel.pools.dask_protocol import ANSWERS, Again, Lost, Raised, Returned
from qmk.kernel.pools.pool import (
    TaskError,
    WorkerCpuLimit,
    WorkerDied,
    WorkerKilled,
    WorkerMemoryError,
)

_log = logging.getLogger("qmk.kernel.dask")

#: The pool clears its notes from the scheduler's event log after this many.
NOTES_KEPT = 256
#: How many times a job is started again after its Dask worker died.
MAX_RESTARTS = 3
#: How long an outcome waits for the checkpoint notes its job sent before it (they pass
#: the scheduler; a scheduler that went away meanwhile lost them).
NOTES_WAIT_S = 10.0


class DaskJobs:
    """The jobs out on a Dask cluster (see the module docstring).

    The futures' table is shared with the callers' threads (under a lock); the rest is
    the pool's loop's alone.

    Args:
        cluster: the cluster the jobs go out to.
        parts: the parts of big jobs.
        spawn: makes a task of the pool's (it owns them all, and ends them at close).
        soon: calls a function on the pool's loop (now, on its thread).
        options: the job processes' limits and pool, sent with each call.
        prefix: the pool's own part of its attempts' tokens.
    """

    def __init__(
        self,
        cluster: ClusterLink,
        parts: SplitParts,
        *,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        soon: Callable[..., None],
        options: Mapping[str, Any],
        prefix: str,
    ) -> None:
        self.cluster = cluster
        self.parts = parts
        self._spawn = spawn
        self._soon = soon
        self.options = options
        self._prefix = prefix
        self._lock = threading.Lock()
        self._jobs: dict[Future[Any], OutJob] = {}
        self._shutdown = False
        #: Clear the notes from the scheduler's event log after this many (tests lower it).
        self.notes_kept = NOTES_KEPT
        #: Write a job's saved states into its checkpoint folder (the kernel's data
        #: directory); False in the Dask bridge, which cannot reach it: a note then
        #: carries the state's bytes (``state``) for the kernel to write, and a restart
        #: takes the state kept here.
        self.write_states = True
        #: The latest state of each job not written (``write_states`` False), by path.
        self._states: dict[str, bytes] = {}
        # the rest is the pool's loop's alone
        self._by_token: dict[str, tuple[OutJob, Launch]] = {}
        #: Of the pool's tasks, those that send kills (its close waits for them).
        self.kills: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._notes = 0

    def open(self) -> None:
        """On the pool's loop, before the cluster's notes come: their queue."""
        self._note_queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()

    # ------------------------------------------------------------------ the callers' side

    def submit(self, fn: Callable[..., Any], spec: Any) -> Future[Any]:
        """Send ``fn(spec)`` out; its future (it never waits for the cluster).

        Raises:
            RuntimeError: the pool was shut down.
        """
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        job = OutJob(future=future, fn=fn, spec=spec, parts=self.parts.count(spec))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            self._jobs[future] = job
        self._soon(self._launch, job)
        return future

    def cancel(self, future: Future[Any], reason: str) -> bool:
        """Stop ``future``'s job: its processes on the workers are SIGKILLed, and the
        future fails at once with :class:`WorkerKilled`. False when it had finished."""
        with self._lock:
            job = self._jobs.pop(future, None)
        if job is None:
            return False
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        with contextlib.suppress(RuntimeError):  # the loop has stopped: nothing runs
            self._soon(self._drop, job, reason)
        return True

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each checkpoint note of ``future``'s job."""
        with self._lock:
            job = self._jobs.get(future)
            if job is not None:
                job.listener = listener

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running job; False for a job the pool does
        not hold, or a split one."""
        with self._lock:
            job = self._jobs.get(future)
            if job is None or job.parts:
                return False
        self._soon(self._request, job, payload)
        return True

    def shut(self, cancel_futures: bool) -> bool:
        """Take no job from now on, and with ``cancel_futures`` kill those out; False
        when that was done already."""
        with self._lock:
            if self._shutdown:
                return False
            self._shutdown = True
            jobs = list(self._jobs.values()) if cancel_futures else []
        for job in jobs:
            self.cancel(job.future, "shutdown")
        return True

    def keep_state(self, path: str, data: bytes) -> None:
        """Hold the state file ``path``'s bytes for the attempt that resumes from it (the
        Dask bridge's: the kernel sends them, as the bridge cannot read its data dir)."""
        self._states[str(path)] = data

    def busy(self) -> int:
        """How many jobs the pool holds now."""
        with self._lock:
            return len(self._jobs)

    # ------------------------------------------------------------------ attempts

    def _launch(self, job: OutJob) -> None:
        if job.future.done():
            return
        if not job.parts:
            self._start(job, None)
            return
        self.parts.split_jobs += 1
        for k in range(job.parts):
            self._start(job, k)

    def _start(self, job: OutJob, part: int | None) -> None:
        """One attempt of ``job`` (all of it, or ``part``), under a token of its own."""
        launch = Launch(token=f"qmk-{self._prefix}-{next(self._ids)}", part=part)
        job.launches[launch.token] = launch
        self._by_token[launch.token] = (job, launch)
        self._spawn(self._go(job, launch))

    def _current(self, job: OutJob, launch: Launch) -> bool:
        return not job.future.done() and self._by_token.get(launch.token, (None, None))[1] is launch

    async def _go(self, job: OutJob, launch: Launch) -> None:
        """Send the attempt to a worker and take its outcome; start it again elsewhere if
        the worker is lost on the way."""
        resume = None
        if launch.part is None and isinstance(job.spec, Attempt):
            path = job.latest or job.spec.resume
            if path:
                resume = self._states.get(str(path)) or await asyncio.to_thread(_read, str(path))
        worker = await self.cluster.pick(lambda: self._current(job, launch))
        if worker is None:
            return
        launch.worker = worker
        worker.out += 1  # now: the next part's pick sees it, while this one gets ready
        try:
            await self._send(job, launch, worker, resume)
        finally:
            worker.out -= 1
            launch.worker = None

    async def _send(self, job: OutJob, launch: Launch, worker: KnownWorker, resume: Any) -> None:
        early, launch.early = launch.early, []
        try:
            spec = await self.parts.spec_for(job, worker) if job.parts else job.spec
            part = None if launch.part is None else [launch.part, job.parts]
            call = (launch.token, job.fn, spec, part, resume, self.options, early or None)
            blob = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        except PutFailed as exc:  # the worker that was to hold the spec is gone
            lost = self.cluster.workers.get(exc.address)
            if lost is not None:
                self.cluster.lose(lost, str(exc))
            await self._again(job, launch, worker, str(exc))
            return
        except Exception as exc:  # a function or spec that does not pickle
            self._fail(job, WorkerDied(f"cannot send the job to its worker: {exc!r}"))
            return
        rpc = self.cluster.client.rpc(worker.address)
        answer = asyncio.ensure_future(rpc.qmk_run(call=blob))
        answer.add_done_callback(_retrieved)
        try:
            await asyncio.wait((answer, worker.gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut = not answer.done()
            if cut:  # the scheduler dropped the worker first (or the pool closes)
                answer.cancel()  # asked: the task ends at its next turn
        if cut or answer.cancelled():
            why = str(worker.gone.result()) if worker.gone.done() else "the call was cancelled"
            await self._again(job, launch, worker, why, kill=True)
            return
        error = answer.exception()
        if isinstance(error, OSError):  # CommClosedError too: the worker is unreachable
            self.cluster.lose(worker, f"{type(error).__name__}: {error}")
            why = f"its Dask worker was lost ({error})"
            await self._again(job, launch, worker, why, kill=True)
            return
        if error is not None:
            if self._current(job, launch):
                self._fail(job, WorkerDied(f"cannot send the job to its worker: {error!r}"))
            return
        await self._answered(job, launch, worker, answer.result())

    async def _answered(self, job: OutJob, launch: Launch, worker: KnownWorker, reply: Any) -> None:
        """The worker's reply to the attempt's call: its outcome taken, or the attempt
        started again (a worker still starting, closed under it, or unable to fetch the
        spec)."""
        if not isinstance(reply, bytes):  # no handler answered: a worker still starting
            self.cluster.lose(worker, "it has no qmk handlers")
            await self._again(job, launch, worker, None)
            return
        answer = pickle.loads(reply)
        if not isinstance(answer, ANSWERS):  # a worker of another QMK's version
            if self._current(job, launch):
                message = f"its Dask worker's answer is not one of this QMK: {str(answer)[:200]}"
                self._fail(job, WorkerDied(message))
        elif isinstance(answer, Lost):  # its worker closed under it
            self.cluster.lose(worker, answer.why)
            await self._again(job, launch, worker, answer.why)
        elif isinstance(answer, Again):  # it could not fetch the spec: put it anew
            job.stash = None
            await self._again(job, launch, worker, answer.why)
        elif self._current(job, launch):
            self._outcome(job, launch, answer)

    async def _again(
        self,
        job: OutJob,
        launch: Launch,
        worker: KnownWorker,
        why: str | None,
        *,
        kill: bool = False,
    ) -> None:
        """Start ``launch`` again as a new attempt: from the job's latest state if it
        saved one. ``why`` counts as a restart unless the scheduler is gone too (then the
        workers went with it: the attempt waits for it) or is None (nothing ran). With
        ``kill`` the old attempt may still run at ``worker`` (only its call was lost):
        it is killed there."""
        if not self._current(job, launch):
            return
        del job.launches[launch.token]
        del self._by_token[launch.token]
        if kill:
            self._kill_at(worker.address, [launch.token], "started again elsewhere")
        if why is not None and await self.cluster.scheduler_answers():
            job.restarts += 1
            if job.restarts > MAX_RESTARTS:
                self._fail(
                    job, WorkerDied(f"{why} {job.restarts} times", {"restarts": job.restarts})
                )
                return
            _log.warning("job task %s: %s; started again (%d)", launch.token, why, job.restarts)
        self._start(job, launch.part)

    def _kill_at(self, address: str, tokens: list[str], reason: str) -> None:
        """SIGKILL the attempts of ``tokens`` on the worker at ``address`` (if it lives)."""
        call = self.cluster.client.rpc(address).qmk_kill(tokens=tokens, reason=reason)
        task = self._spawn(_quietly(call))
        self.kills.add(task)
        task.add_done_callback(self.kills.discard)

    def _drop(self, job: OutJob, reason: str) -> None:
        """Take ``job``'s attempts out of the tables; kill those out on workers."""
        launches = list(job.launches.values())
        job.launches.clear()
        job.waiting.clear()
        by_worker: dict[str, list[str]] = {}
        for launch in launches:
            self._by_token.pop(launch.token, None)
            if launch.worker is not None:
                by_worker.setdefault(launch.worker.address, []).append(launch.token)
        for address, tokens in by_worker.items():
            self._kill_at(address, tokens, reason)

    def _request(self, job: OutJob, payload: Any) -> None:
        for launch in job.launches.values():  # one (a split job takes none)
            if launch.worker is None:
                launch.early.append(payload)  # it goes with the call
                continue
            call = self.cluster.client.rpc(launch.worker.address).qmk_request(
                token=launch.token, payload=pickle.dumps(payload)
            )
            self._spawn(_quietly(call))

    # ------------------------------------------------------------------ outcomes

    def _outcome(self, job: OutJob, launch: Launch, answer: Returned | Raised) -> None:
        if launch.notes < answer.notes:  # its notes are still on their way: they go first
            job.waiting[launch.token] = answer
            self.cluster.loop.call_later(NOTES_WAIT_S, self._notes_late, job, launch)
            return
        del job.launches[launch.token]
        del self._by_token[launch.token]
        if isinstance(answer, Raised):
            self._fail(job, _error(answer.kind, answer.message, answer.data))
            return
        value = answer.value  # the job's outcome, as plain data (qmk.kernel.records.outcome)
        if launch.part is None:
            self._finish(job, value)
            return
        ended, value = self.parts.take(job, launch.part, value)
        if ended:
            self._finish(job, value)

    def _notes_late(self, job: OutJob, launch: Launch) -> None:
        """An outcome waited NOTES_WAIT_S for notes that never came: it goes on."""
        waiting = job.waiting.pop(launch.token, None)
        if waiting is not None and self._current(job, launch):
            _log.warning(
                "job task %s: %d checkpoint notes lost", launch.token, waiting.notes - launch.notes
            )
            launch.notes = waiting.notes
            self._outcome(job, launch, waiting)

    def _finish(self, job: OutJob, value: Any) -> None:
        if self._forget(job):
            job.future.set_result(value)

    def _fail(self, job: OutJob, error: BaseException) -> None:
        if self._forget(job):
            job.future.set_exception(error)

    def _forget(self, job: OutJob) -> bool:
        """Take ``job`` out of the tables (its other attempts killed); False if it was out."""
        with self._lock:
            if self._jobs.pop(job.future, None) is None:
                return False
        self._states.pop(str(job.latest), None)
        self._states.pop(str(getattr(job.spec, "resume", None)), None)
        self._drop(job, "the job ended")
        return True

    # ------------------------------------------------------------------ notes

    def on_note(self, event: Any) -> None:
        """The client's handler of a note (on the pool's loop): taken in order."""
        _, message = event
        if isinstance(message, Mapping):
            self._note_queue.put_nowait(message)

    async def take_notes(self) -> None:
        """The notes' task: each note taken in the order the scheduler passed them on."""
        while True:
            await self._note(await self._note_queue.get())

    async def _note(self, message: Mapping[str, Any]) -> None:
        self._notes += 1
        if self._notes % self.notes_kept == 0:  # the scheduler keeps the events it passed on
            from qmk.kernel.pools.dask_worker import truncate_notes

            await _quietly(self.cluster.client.run_on_scheduler(truncate_notes))  # in order
        token = str(message.get("token"))
        found = self._by_token.get(token)
        if found is None:
            return
        job, launch = found
        note = dict(message.get("note") or {})
        data = message.get("data")
        target = job.spec.checkpoint_dir if isinstance(job.spec, Attempt) else None
        if data is not None and target is not None and note.get("path"):
            path = Path(str(target)) / Path(str(note["path"])).name
            if self.write_states:
                await asyncio.to_thread(_write, path, data)
            else:  # the kernel writes it (the Dask bridge's pool)
                note["state"] = data
                self._states.pop(str(job.latest), None)
                self._states[str(path)] = data
            note["path"] = str(path)
            job.latest = str(path)
        launch.notes += 1
        if job.listener is not None and self._current(job, launch):
            job.listener(note)
        waiting = job.waiting.get(token)
        if waiting is not None and launch.notes >= waiting.notes:
            del job.waiting[token]
            if self._current(job, launch):
                self._outcome(job, launch, waiting)


def _retrieved(call: asyncio.Future[Any]) -> None:
    """A call's failure is read where it matters; this keeps asyncio from logging one
    that ended after its attempt did (cancelled, its worker lost)."""
    if not call.cancelled():
        call.exception()


async def _quietly(call: Awaitable[Any]) -> None:
    """A call whose failure says nothing (its worker gone, the scheduler away)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call, 10)


def _error(kind: str, message: str, data: dict[str, Any]) -> TaskError:
    cls: type[TaskError] = {
        "memory": WorkerMemoryError,
        "cpu": WorkerCpuLimit,
        "killed": WorkerKilled,
        "died": WorkerDied,
    }.get(kind, TaskError)
    return cls(message, data)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes) -> None:
    """Write a state file atomically, 0600 in 0700 folders (as the executor's
    ``write_state`` does)."""
    from qmk.execution.checkpoint import private_dirs

    private_dirs(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


__all__ = ["MAX_RESTARTS", "NOTES_KEPT", "DaskJobs"]
