"""The kernel service: one coroutine per qSyscall, over the store, scheduler and worker pool.

>>> import asyncio, tempfile
>>> from qmk.kernel.config import config_from_dict
>>> cfg = config_from_dict({"machine": {"physical_qubits": 10_000},
...     "tenants": {"alice": {"key": "k-alice", "caps": ["CAP_ALLOC"]}}})
>>> async def demo(data_dir):
...     kernel = await Kernel.open(cfg, data_dir, workers=1)
...     try:
...         s = await kernel.q_negotiate_caps(tenant="alice", key="k-alice",
...                                           requested=["CAP_ALLOC", "CAP_LINK"])
...         return s["granted"], s["denied"]
...     finally:
...         await kernel.close()
>>> with tempfile.TemporaryDirectory() as d:
...     asyncio.run(demo(d))
(['CAP_ALLOC'], ['CAP_LINK'])

Everything runs on one asyncio event loop: no locks, no other thread. The default
worker pool is driven by this loop (its pipes are watched with ``add_reader``), so a
worker's result arrives as a loop callback; a pool of another kind (``pool=``) may
complete futures in its own thread, and those hop over with ``call_soon_threadsafe``.
Writes share SQLite commits (and audit-log writes): a syscall that changes state
commits at the end of its loop turn and replies only after that commit; writes no
request waits for (jobs starting and finishing) are committed within
:data:`GROUP_COMMIT_S`. See docs/kernel.md for the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.errors import (
    AdmissionError,
    AuthError,
    CapabilityError,
    FirewallError,
    InvalidArgument,
    NotFoundError,
    ProgramError,
    QMKError,
    QuotaError,
    StateError,
    UnavailableError,
)
from qmk.kernel import jobs as J
from qmk.kernel.audit import AuditLog
from qmk.kernel.channels import ChannelTable, check_fidelity, check_firewall
from qmk.kernel.config import KernelConfig
from qmk.kernel.errors import JobError, error_json
from qmk.kernel.jobs import Job, parse_policy, run_job, verified
from qmk.kernel.scheduler import FairQueue
from qmk.kernel.sessions import Session, Sessions, load_secret
from qmk.kernel.store import Store
from qmk.kernel.workers import TaskError, WorkerKilled, WorkerMemoryError, WorkerPool
from qmk.qvm.codes import BY_NAME

#: Most shots one job may ask for.
MAX_SHOTS = 10_000_000
#: Most times a job is preempted before it runs to the end regardless.
MAX_PREEMPTIONS = 3
#: Most verifier findings copied into a ProgramError.
MAX_FINDINGS = 50
#: How many (graph, options) -> physical-qubit answers the kernel keeps.
PLAN_CACHE_SIZE = 256
#: How many recently finished jobs stay in memory (q_status/q_wait skip the database).
FINISHED_CACHE_SIZE = 1024
#: Longest a write that no request waits for (a job starting or finishing) stays
#: uncommitted; a request that needs durability commits at once and takes it along.
GROUP_COMMIT_S = 0.002
#: The code of a submitted graph that is not a plain JSON object, as of an unreadable file.
_UNREADABLE = BY_NAME["unreadable-file"].code


@dataclass(slots=True, kw_only=True)
class _Running:
    future: Future[Any]
    timer: asyncio.TimerHandle | None
    attempt: int


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


class Kernel:
    """A running kernel: sessions, jobs, channels, a scheduler and a worker pool.

    Build one with :meth:`open`; stop it with :meth:`close`.
    """

    def __init__(self, config: KernelConfig, data_dir: Path, pool: Any) -> None:
        self.config = config
        self.data_dir = data_dir
        self.pool = pool
        self.workers: int = getattr(pool, "max_workers", 1)
        self.store = Store(data_dir, synchronous=config.synchronous)
        self.secret = load_secret(data_dir)
        self.audit = AuditLog(data_dir, self.secret)
        self.sessions = Sessions(
            self.secret, ttl_s=config.session_ttl_s, revoked=self.store.revoked_sessions()
        )
        self.channels = ChannelTable(self.store.load_channels(), self.store.load_channel)
        self.queue = FairQueue()
        self.jobs: dict[str, Job] = {}  # every job not yet final
        self._finished: OrderedDict[str, Job] = OrderedDict()  # recently final, newest last
        self.running: dict[str, _Running] = {}
        self.epoch = 0
        self.physical_in_use = 0
        self.logical_in_use: Counter[str] = Counter()
        self.running_jobs: Counter[str] = Counter()
        self._events: dict[str, asyncio.Event] = {}
        self._plans: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._firewalled: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._commit_future: asyncio.Future[None] | None = None
        self._commit_handle: asyncio.Handle | None = None
        self._commit_urgent = False
        self._kick_scheduled = False
        self._closing = False
        self._closed = False
        self._seq = self.store.next_seq()
        self._tick_task: asyncio.Task[None] | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        config: KernelConfig,
        data_dir: str | os.PathLike[str],
        *,
        workers: int = 2,
        pool: Any = None,
    ) -> Kernel:
        """Open (or create) ``data_dir``, recover unfinished jobs, start scheduling.

        Args:
            config: the kernel configuration.
            data_dir: the data directory (database, audit log, secret).
            workers: worker processes of the default pool.
            pool: an executor to use instead (``submit``/``shutdown``/``cancel``).
        """
        if pool is None:
            pool = WorkerPool(
                workers, memory_mb=config.worker_memory_mb, loop=asyncio.get_running_loop()
            )
        kernel = cls(config, Path(data_dir), pool)
        kernel._recover()
        kernel._tick_task = asyncio.get_running_loop().create_task(kernel._ticker())
        kernel._kick()
        return kernel

    async def close(self) -> None:
        """Stop accepting requests, stop the workers, flush and close. Idempotent.

        Jobs still QUEUED or RUNNING stay so in the database and are re-queued by the
        next :meth:`open` of the same data directory.
        """
        if self._closing:
            while not self._closed:
                await asyncio.sleep(0.01)
            return
        self._closing = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        for timer in self._timers.values():
            timer.cancel()
        for run in self.running.values():
            if run.timer is not None:
                run.timer.cancel()
        self.running.clear()
        if getattr(self.pool, "loop", None) is self._loop:
            self.pool.shutdown(True, cancel_futures=True)  # driven by this loop: no thread
        else:
            await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
        for event in self._events.values():
            event.set()
        self.audit.append("kernel", action="close", epoch=self.epoch)
        self._flush()
        self.audit.close()
        self.store.close()
        self._closed = True

    async def __aenter__(self) -> Kernel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _recover(self) -> None:
        recovered = 0
        for job in self.store.active_jobs():
            previous = job.state
            if previous != J.QUEUED:
                checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, None)
                job.checkpoint_id = None if checkpoint is None else checkpoint["checkpoint_id"]
                self._transition(job, J.QUEUED, reason=f"recovered from {previous}")
            self.jobs[job.job_id] = job
            self.queue.push(job)
            self._arm_deadline(job)
            recovered += 1
        self.audit.append("kernel", action="open", recovered=recovered)
        self._flush()

    # ------------------------------------------------------------------ commits

    def _flush(self) -> None:
        self._commit_future = None
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        head = self.audit.flush()
        self.store.commit(head)

    def _dirty(self, *, urgent: bool = True) -> asyncio.Future[None]:
        """The future of the commit that will hold the writes made so far.

        An urgent commit runs at the end of this loop turn; otherwise within
        :data:`GROUP_COMMIT_S`, sooner when an urgent one comes along.
        """
        future = self._commit_future
        if future is None:
            future = self._commit_future = self._loop.create_future()
            if urgent:
                self._commit_handle = self._loop.call_soon(self._commit_now, future)
            else:
                self._commit_handle = self._loop.call_later(
                    GROUP_COMMIT_S, self._commit_now, future
                )
            self._commit_urgent = urgent
        elif urgent and not self._commit_urgent:
            assert self._commit_handle is not None
            self._commit_handle.cancel()
            self._commit_handle = self._loop.call_soon(self._commit_now, future)
            self._commit_urgent = True
        return future

    def _commit_now(self, future: asyncio.Future[None]) -> None:
        self._commit_handle = None
        if self._closed:
            if not future.done():
                future.set_result(None)
            return
        try:
            self._flush()
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(None)

    async def _durable(self) -> None:
        await asyncio.shield(self._dirty())

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closing:
            raise UnavailableError("the kernel is shutting down; retry against the next one")

    def _session(self, session_id: str) -> Session:
        self._check_open()
        session = self.sessions.check(session_id)
        if session.tenant not in self.config.tenants:
            raise AuthError("the session's tenant is no longer configured")
        return session

    def _job(self, job_id: object, tenant: str) -> Job:
        if not isinstance(job_id, str) or len(job_id) > 200:
            raise NotFoundError(f"no job {job_id!r}", job_id=str(job_id))
        job = self.jobs.get(job_id) or self._finished.get(job_id)
        if job is not None and job.tenant == tenant:
            return job
        job = self.store.load_job(job_id, tenant)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}", job_id=job_id)
        return job

    def _transition(self, job: Job, state: str, **fields: Any) -> None:
        """Move ``job`` to ``state``: database row and audit line, committed lazily.

        A syscall that reports the transition awaits :meth:`_durable` before replying.
        """
        job.state = state
        self.store.save_job(job)
        self.audit.append("job", job_id=job.job_id, tenant=job.tenant, state=state, **fields)
        self._dirty(urgent=False)

    def _finish(self, job: Job, state: str, error: dict[str, Any] | None = None) -> None:
        job.finished_at = time.time()
        job.error = error
        reason = None if error is None else error["message"]
        self._transition(job, state, **({"reason": reason} if reason else {}))
        self.jobs.pop(job.job_id, None)
        self._finished[job.job_id] = job
        self._finished.move_to_end(job.job_id)
        if len(self._finished) > FINISHED_CACHE_SIZE:
            self._finished.popitem(last=False)
        self.queue.remove(job.job_id)
        timer = self._timers.pop(job.job_id, None)
        if timer is not None:
            timer.cancel()
        event = self._events.pop(job.job_id, None)
        if event is not None:
            event.set()
        self._kick()

    def _arm_deadline(self, job: Job) -> None:
        if job.deadline is None:
            return
        delay = max(0.0, job.deadline - time.time())
        self._timers[job.job_id] = self._loop.call_later(delay, self._deadline_passed, job.job_id)

    def _deadline_passed(self, job_id: str) -> None:
        self._timers.pop(job_id, None)
        job = self.jobs.get(job_id)
        if job is None or job.final:
            return
        self._stop(job)
        self._finish(
            job,
            J.TIMED_OUT,
            error_json(JobError.of("deadline", "the job's deadline passed before it finished")),
        )

    def _release(self, job: Job) -> None:
        self.physical_in_use -= job.physical_qubits
        for tenant, count in job.qubits.items():
            self.logical_in_use[tenant] -= count
        self.running_jobs[job.tenant] -= 1

    def _stop(self, job: Job, reason: str = "cancelled") -> None:
        """Take ``job`` off the queue or its worker (killing it) and free its resources."""
        if self.queue.remove(job.job_id) is not None:
            return
        run = self.running.pop(job.job_id, None)
        if run is None:
            return
        if run.timer is not None:
            run.timer.cancel()
        self.pool.cancel(run.future, reason)
        self._release(job)

    # ------------------------------------------------------------------ scheduling

    def _kick(self) -> None:
        if not self._kick_scheduled and not self._closing:
            self._kick_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _quota(self, tenant: str) -> Any:
        return self.config.tenants.get(tenant)

    def _fits(self, job: Job) -> bool:
        tenant = self._quota(job.tenant)
        if tenant is None or self.running_jobs[job.tenant] >= tenant.max_concurrent_jobs:
            return False
        if self.physical_in_use + job.physical_qubits > self.config.machine.physical_qubits:
            return False
        for name, count in job.qubits.items():
            quota = self._quota(name)
            if quota is None or self.logical_in_use[name] + count > quota.max_logical_qubits:
                return False
        return True

    def _dispatch(self) -> None:
        self._kick_scheduled = False
        if self._closing:
            return
        free = self.workers - len(self.running)
        if free <= 0 or not len(self.queue):
            return
        for job in self.queue.select(self._fits_and_reserve, free):
            self._start(job)

    def _fits_and_reserve(self, job: Job) -> bool:
        if not self._fits(job):
            return False
        self.physical_in_use += job.physical_qubits
        for tenant, count in job.qubits.items():
            self.logical_in_use[tenant] += count
        self.running_jobs[job.tenant] += 1
        return True

    def _start(self, job: Job) -> None:
        """VALIDATING (capabilities and channels checked again), then RUNNING on a worker.

        Both transitions happen in one loop turn, so only RUNNING (or the refusal) reaches
        the database; the audit log records both.
        """
        job.state = J.VALIDATING
        missing = sorted(set(job.required_caps) - set(job.caps))
        refusal = None
        if missing:
            refusal = error_json(CapabilityError(f"refused at execution: the job lacks {missing}"))
        for name, channel_id in job.policy.channels.items():
            try:
                channel = self.channels.get(channel_id, job.tenant)
            except NotFoundError:
                channel = None
            if channel is None or channel.state != "OPEN":
                refusal = error_json(
                    FirewallError(f"channel {name!r} ({channel_id}) is no longer OPEN")
                )
        self.audit.append(
            "job",
            job_id=job.job_id,
            tenant=job.tenant,
            state=J.VALIDATING,
            epoch=self.epoch,
            required=list(job.required_caps),
            decision="deny" if refusal else "allow",
        )
        if refusal is not None:
            self._release(job)
            self._finish(job, J.FAILED, refusal)
            return
        job.attempts += 1
        job.started_at = time.time()
        job.epoch = self.epoch
        self._transition(job, J.RUNNING, attempt=job.attempts, epoch=self.epoch)
        spec = {
            "graph": job.graph,
            "shots": job.shots,
            "seed": job.seed,
            "caps": list(job.caps),
            "engine": job.policy.engine,
            "noise": job.policy.noise,
            "qubit": job.policy.qubit or self.config.machine.qubit,
            "profile": job.policy.profile or self.config.machine.profile,
        }
        future = self.pool.submit(run_job, spec)
        timeout = job.policy.timeout_s
        timer = self._loop.call_later(timeout, self._timed_out, job.job_id, job.attempts)
        self.running[job.job_id] = _Running(future=future, timer=timer, attempt=job.attempts)
        attempt = job.attempts

        def done(finished: Future[Any]) -> None:
            # on this loop's thread for a loop-driven pool, else in the pool's thread
            # (after close() the loop may be gone)
            if threading.get_ident() == self._thread_id:
                self._loop.call_soon(self._worker_done, job, attempt, finished)
                return
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._worker_done, job, attempt, finished)

        future.add_done_callback(done)

    def _timed_out(self, job_id: str, attempt: int) -> None:
        job = self.jobs.get(job_id)
        run = self.running.get(job_id)
        if job is None or run is None or run.attempt != attempt:
            return
        run.timer = None
        self._stop(job, "timeout")
        self._finish(
            job,
            J.TIMED_OUT,
            error_json(
                JobError.of(
                    "timeout", f"the job ran past its timeout of {job.policy.timeout_s:g} s"
                )
            ),
        )

    def _worker_done(self, job: Job, attempt: int, future: Future[Any]) -> None:
        run = self.running.get(job.job_id)
        if run is None or run.attempt != attempt or run.future is not future or self._closing:
            return  # cancelled, timed out or preempted: already handled
        del self.running[job.job_id]
        if run.timer is not None:
            run.timer.cancel()
        self._release(job)
        try:
            outcome = future.result()
        except WorkerMemoryError as exc:
            failure = JobError.of("memory-limit", f"memory limit: {exc}")
            self._finish(job, J.FAILED, error_json(failure))
            return
        except WorkerKilled:
            return
        except TaskError as exc:
            failure = JobError.of("worker-failed", f"{exc.kind}: {exc.message}")
            self._finish(job, J.FAILED, error_json(failure))
            return
        except BaseException as exc:
            self._finish(job, J.FAILED, error_json(JobError.of("worker-failed", repr(exc))))
            return
        if outcome.get("ok"):
            job.result = outcome["result"]
            self._finish(job, J.COMPLETED)
        else:
            self._finish(job, J.FAILED, outcome["error"])

    async def _ticker(self) -> None:
        period = self.config.epoch_ms / 1000
        while True:
            await asyncio.sleep(period)
            self.epoch += 1
            if len(self.queue) and len(self.running) >= self.workers:
                self._preempt()
            self._kick()

    def _preempt(self) -> None:
        """At an epoch fence: let a much more urgent queued job take a worker."""
        gap = self.config.preempt_gap
        if gap <= 0:
            return
        best = self.queue.best()
        if best is None:
            return
        victims = [
            self.jobs[job_id]
            for job_id in self.running
            if job_id in self.jobs
            and self.jobs[job_id].priority + gap <= best.priority
            and self.jobs[job_id].preemptions < MAX_PREEMPTIONS
        ]
        if not victims:
            return
        victim = min(victims, key=lambda j: (j.priority, -(j.started_at or 0.0)))
        self._stop(victim, "preempted")
        victim.preemptions += 1
        self._checkpoint(victim)
        self._transition(
            victim, J.QUEUED, reason=f"preempted at epoch {self.epoch} by {best.job_id}"
        )
        self.queue.push(victim)

    def _checkpoint(self, job: Job) -> dict[str, Any]:
        checkpoint_id = _new_id("ckpt")
        now = time.time()
        self.store.insert_checkpoint(checkpoint_id, job, self.epoch, now)
        job.checkpoint_id = checkpoint_id
        self.audit.append(
            "checkpoint",
            job_id=job.job_id,
            tenant=job.tenant,
            checkpoint_id=checkpoint_id,
            epoch=self.epoch,
        )
        self._dirty()
        return {
            "checkpoint_id": checkpoint_id,
            "job_id": job.job_id,
            "epoch": self.epoch,
            "state": job.state,
            "created_at": now,
        }

    # ------------------------------------------------------------------ syscalls

    async def q_negotiate_caps(
        self, *, tenant: str, key: str, requested: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Open a session: grant ``requested`` ∩ the tenant's allowed capabilities."""
        self._check_open()
        conf = self.config.tenants.get(tenant) if isinstance(tenant, str) else None
        expected = conf.key if conf is not None else "x" * 32
        given = key if isinstance(key, str) else ""
        if not hmac.compare_digest(given.encode(), expected.encode()) or conf is None:
            self.audit.append("cap", where="negotiate", tenant=str(tenant)[:64], decision="auth")
            self._dirty()
            raise AuthError("unknown tenant or wrong key")
        if not isinstance(requested, list | tuple) or not all(
            isinstance(c, str) for c in requested
        ):
            raise InvalidArgument("requested must be a list of capability names", key="requested")
        granted = [c for c in dict.fromkeys(requested) if c in conf.caps]
        denied = [c for c in dict.fromkeys(requested) if c not in conf.caps]
        token = self.sessions.issue(tenant, granted)
        session = self.sessions.check(token)
        self.store.insert_session(session.sid, tenant, granted, session.expires_at)
        self.audit.append(
            "cap",
            where="negotiate",
            tenant=tenant,
            session=session.sid,
            granted=granted,
            denied=denied,
            decision="grant",
        )
        await self._durable()
        return {
            "session_id": token,
            "tenant": tenant,
            "granted": granted,
            "denied": denied,
            "quota": conf.quota(),
            "expires_at": session.expires_at,
        }

    def revoke_session(self, session_id: str) -> None:
        """Refuse ``session_id`` from now on (an in-process admin call, not a syscall)."""
        session = self.sessions.check(session_id)
        self.sessions.revoke(session.sid)
        self.store.revoke_session(session.sid)
        self.audit.append("cap", where="revoke", tenant=session.tenant, session=session.sid)
        self._dirty()

    def _admit(
        self,
        session: Session,
        graph: Any,
        shots: Any,
        seed: Any,
        policy: Any,
    ) -> Job:
        """Check a submission and build its job (not yet stored)."""
        tenant = session.tenant
        conf = self.config.tenants[tenant]
        if isinstance(shots, bool) or not isinstance(shots, int) or not 1 <= shots <= MAX_SHOTS:
            raise InvalidArgument(f"shots must be an integer 1..{MAX_SHOTS}, got {shots!r}")
        if seed is None:
            seed = secrets.randbits(32)
        elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise InvalidArgument(f"seed must be an integer 0..2**63-1 or null, got {seed!r}")
        parsed = parse_policy(policy, default_timeout_s=self.config.job_timeout_s)
        if not isinstance(graph, Mapping):
            raise ProgramError("graph must be a QVM JSON object", code=_UNREADABLE)
        try:
            text = json.dumps(graph, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ProgramError(f"graph is not plain JSON: {exc}", code=_UNREADABLE) from None
        program = self._verify(text)
        missing = sorted(set(program.required_caps) - set(session.caps))
        self.audit.append(
            "cap",
            where="submit",
            tenant=tenant,
            session=session.sid,
            required=list(program.required_caps),
            decision="deny" if missing else "allow",
            **({"missing": missing} if missing else {}),
        )
        if missing:
            self._dirty()
            raise CapabilityError(
                f"the program needs {', '.join(missing)}, which this session was not granted",
                missing=missing,
            )
        qubits = self._firewall(text, program, tenant, parsed.channels)
        physical = self._physical_qubits(text, program, parsed)
        total = self.config.machine.physical_qubits
        if physical > total:
            raise AdmissionError(
                f"the job needs {physical} physical qubits at its peak; the machine has {total}",
                needed=physical,
                total=total,
            )
        for name, count in qubits.items():
            limit = self.config.tenants[name].max_logical_qubits
            if count > limit:
                raise QuotaError(
                    f"the job holds {count} logical qubits of tenant {name!r} at once; its "
                    f"max_logical_qubits is {limit}",
                    limit="max_logical_qubits",
                    tenant=name,
                    needed=count,
                    value=limit,
                )
        if self.queue.count(tenant) >= conf.max_queued_jobs:
            raise QuotaError(
                f"tenant {tenant!r} already has {conf.max_queued_jobs} queued jobs "
                "(max_queued_jobs); wait for some to start",
                limit="max_queued_jobs",
                value=conf.max_queued_jobs,
            )
        job = Job(
            job_id=_new_id("job"),
            tenant=tenant,
            graph=text,
            shots=shots,
            seed=seed,
            policy=parsed,
            caps=session.caps,
            required_caps=program.required_caps,
            physical_qubits=physical,
            qubits={name: count for name, count in qubits.items() if count},
            created_at=time.time(),
            seq=self._seq,
        )
        self._seq += 1
        return job

    def _verify(self, text: str) -> Any:
        from qmk.qvm.errors import VerificationError

        try:
            return verified(text)
        except VerificationError as exc:
            findings = [f.to_json() for f in exc.findings[:MAX_FINDINGS]]
            first = exc.findings[0] if exc.findings else None
            raise ProgramError(
                f"the graph does not verify: {first}" if first else "the graph does not verify",
                code=exc.code,
                findings=findings,
            ) from None
        except QMKError as exc:
            raise ProgramError(exc.message, code=exc.code) from None

    def _firewall(
        self, text: str, program: Any, tenant: str, bindings: Mapping[str, str]
    ) -> dict[str, int]:
        """:func:`check_firewall`'s answer; cached by (graph text, tenant) when no channel
        is bound (the answer then depends on nothing else: the tenant table is fixed)."""
        if bindings:
            return check_firewall(
                program.graph, tenant, bindings, self.channels, self.config.tenants
            )
        key = (text, tenant)
        qubits = self._firewalled.get(key)
        if qubits is not None:
            self._firewalled.move_to_end(key)
            return dict(qubits)
        qubits = check_firewall(program.graph, tenant, {}, self.channels, self.config.tenants)
        self._firewalled[key] = dict(qubits)
        if len(self._firewalled) > PLAN_CACHE_SIZE:
            self._firewalled.popitem(last=False)
        return qubits

    def _physical_qubits(self, text: str, program: Any, policy: Any) -> int:
        """Peak physical qubits of the program under ``policy`` (cached by graph text)."""
        from qmk.execution.executor import choose_engine
        from qmk.execution.plan import build_plan

        qubit = policy.qubit or self.config.machine.qubit
        profile = policy.profile or self.config.machine.profile
        key = (text, policy.noise, qubit, profile, policy.engine)
        physical = self._plans.get(key)
        if physical is not None:
            self._plans.move_to_end(key)
            return physical
        try:
            plan = build_plan(program, noise=policy.noise, qubit=qubit, default_profile=profile)
            choose_engine(plan, policy.engine)
        except QMKError as exc:
            raise ProgramError(exc.message, code=exc.code) from None
        physical = self._plans[key] = plan.peak_physical_qubits
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return physical

    async def q_submit(
        self,
        *,
        session_id: str,
        graph: Any,
        shots: int = defaults.SHOTS,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Accept a job: verify, check caps, firewall, admission and quotas; queue it."""
        session = self._session(session_id)
        job = self._admit(session, graph, shots, seed, policy)
        return await self._accept(job)

    async def _accept(self, job: Job) -> dict[str, Any]:
        self.store.insert_job(job)
        self.audit.append(
            "job", job_id=job.job_id, tenant=job.tenant, state=J.QUEUED, seed=job.seed
        )
        self.jobs[job.job_id] = job
        self.queue.push(job)
        self._arm_deadline(job)
        await self._durable()
        self._kick()
        return job.to_json()

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """The job, with its result once COMPLETED."""
        session = self._session(session_id)
        return self._job(job_id, session.tenant).to_json()

    async def q_wait(
        self, *, session_id: str, job_id: str, timeout_ms: int = defaults.WAIT_TIMEOUT_MS
    ) -> dict[str, Any]:
        """Wait until the job is final or ``timeout_ms`` passes; return it either way."""
        session = self._session(session_id)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
            raise InvalidArgument(f"timeout_ms must be an integer >= 0, got {timeout_ms!r}")
        job = self._job(job_id, session.tenant)
        if job.final or timeout_ms == 0:
            return job.to_json()
        event = self._events.get(job.job_id)
        if event is None:
            event = self._events[job.job_id] = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_ms / 1000)
        return job.to_json()

    async def q_cancel(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """Cancel a job: dequeue it, or kill its worker. A final job is a StateError."""
        session = self._session(session_id)
        job = self._job(job_id, session.tenant)
        if job.final:
            raise StateError(f"job {job_id!r} is already {job.state}", state=job.state)
        self._stop(job, "cancelled")
        cancelled = JobError.of("cancelled", "cancelled by its tenant")
        self._finish(job, J.CANCELLED, error_json(cancelled))
        await self._durable()
        return job.to_json()

    async def q_checkpoint(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """Record a checkpoint of the job at the current epoch (see docs/kernel.md)."""
        session = self._session(session_id)
        job = self._job(job_id, session.tenant)
        checkpoint = self._checkpoint(job)
        if job.final:
            self.store.save_job(job)
        await self._durable()
        return checkpoint

    async def q_restore(
        self, *, session_id: str, job_id: str, checkpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Re-queue the job from a checkpoint (the latest when ``checkpoint_id`` is null)."""
        session = self._session(session_id)
        job = self._job(job_id, session.tenant)
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise InvalidArgument("checkpoint_id must be a string or null")
        checkpoint = self.store.load_checkpoint(job.job_id, job.tenant, checkpoint_id)
        if checkpoint is None:
            if checkpoint_id is None:
                raise StateError(f"job {job_id!r} has no checkpoint", job_id=job_id)
            raise NotFoundError(f"no checkpoint {checkpoint_id!r}", checkpoint_id=checkpoint_id)
        if not job.final:
            self._stop(job, "restored")
        job.result = None
        job.error = None
        job.finished_at = None
        job.started_at = None
        job.checkpoint_id = checkpoint["checkpoint_id"]
        self.jobs[job.job_id] = job
        self._transition(job, J.QUEUED, restored_from=checkpoint["checkpoint_id"])
        self.queue.push(job)
        if job.job_id not in self._timers:
            self._arm_deadline(job)
        await self._durable()
        self._kick()
        return job.to_json()

    async def q_replay(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """A new job with the same graph, shots, seed and policy (so the same counts)."""
        session = self._session(session_id)
        old = self._job(job_id, session.tenant)
        policy = old.policy.to_json()
        job = self._admit(session, json.loads(old.graph), old.shots, old.seed, policy)
        return await self._accept(job)

    def _chan_session(self, session: Session) -> None:
        decision = "CAP_LINK" in session.caps
        self.audit.append(
            "cap",
            where="channel",
            tenant=session.tenant,
            session=session.sid,
            required=["CAP_LINK"],
            decision="allow" if decision else "deny",
        )
        self._dirty()
        if not decision:
            raise CapabilityError(
                "channels need CAP_LINK, which this session was not granted", missing=["CAP_LINK"]
            )

    async def q_open_chan(
        self,
        *,
        session_id: str,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
    ) -> dict[str, Any]:
        """Propose a channel to ``peer`` (``channel_id`` null) or accept its proposal."""
        session = self._session(session_id)
        self._chan_session(session)
        fidelity = check_fidelity(fidelity)
        if not isinstance(peer, str) or peer not in self.config.tenants:
            raise NotFoundError(f"no tenant {peer!r}", peer=str(peer))
        if peer == session.tenant:
            raise InvalidArgument("a channel joins two different tenants", key="peer")
        conf = self.config.tenants[session.tenant]
        if channel_id is None:
            channel = self.channels.propose(session.tenant, peer, fidelity, conf.max_channels)
        else:
            channel = self.channels.accept(
                session.tenant, peer, channel_id, fidelity, conf.max_channels
            )
        self.store.save_channel(channel.to_row())
        self.audit.append(
            "chan", channel_id=channel.channel_id, tenant=session.tenant, state=channel.state
        )
        await self._durable()
        return channel.to_json()

    async def q_close_chan(self, *, session_id: str, channel_id: str) -> dict[str, Any]:
        """Close a channel (either end)."""
        session = self._session(session_id)
        channel = self.channels.close(session.tenant, channel_id)
        self.store.save_channel(channel.to_row())
        self.audit.append("chan", channel_id=channel_id, tenant=session.tenant, state="CLOSED")
        await self._durable()
        return channel.to_json()

    async def q_chan_status(self, *, session_id: str, channel_id: str) -> dict[str, Any]:
        """A channel of this tenant."""
        session = self._session(session_id)
        return self.channels.get(channel_id, session.tenant).to_json()

    async def q_get_telemetry(
        self, *, session_id: str, job_id: str | None = None
    ) -> dict[str, Any]:
        """A job's telemetry, or (``job_id`` null) the tenant's aggregate."""
        session = self._session(session_id)
        if job_id is not None:
            job = self._job(job_id, session.tenant)
            return {
                "job_id": job.job_id,
                "state": job.state,
                "attempts": job.attempts,
                "preemptions": job.preemptions,
                "epoch": job.epoch,
                "physical_qubits": job.physical_qubits,
                "logical_qubits": dict(job.qubits),
                "queued_s": None
                if job.started_at is None
                else round(job.started_at - job.created_at, 6),
                "run_s": None
                if job.started_at is None or job.finished_at is None
                else round(job.finished_at - job.started_at, 6),
                "telemetry": None if job.result is None else job.result.get("telemetry"),
            }
        stats = self.store.tenant_stats(session.tenant)
        stats.update(
            tenant=session.tenant,
            running=self.running_jobs[session.tenant],
            queued=self.queue.count(session.tenant),
            logical_qubits_in_use=self.logical_in_use[session.tenant],
            epoch=self.epoch,
        )
        return stats

    async def q_resource_query(self, *, session_id: str) -> dict[str, Any]:
        """The machine's inventory and this tenant's quota and usage."""
        from qmk.qec.logical import logical_model

        session = self._session(session_id)
        machine = self.config.machine
        conf = self.config.tenants[session.tenant]
        model = logical_model(machine.profile, machine.qubit)
        return {
            "machine": {
                "physical_qubits_total": machine.physical_qubits,
                "physical_qubits_in_use": self.physical_in_use,
                "physical_qubits_free": machine.physical_qubits - self.physical_in_use,
                "profile": machine.profile,
                "qubit": machine.qubit,
                "logical_model": model.to_json(),
                "workers": self.workers,
                "epoch": self.epoch,
                "epoch_ms": self.config.epoch_ms,
            },
            "tenant": session.tenant,
            "quota": conf.quota(),
            "usage": {
                "logical_qubits": self.logical_in_use[session.tenant],
                "running_jobs": self.running_jobs[session.tenant],
                "queued_jobs": self.queue.count(session.tenant),
                "channels": self.channels.count(session.tenant),
            },
        }

    async def q_list_jobs(
        self, *, session_id: str, state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> dict[str, Any]:
        """The tenant's jobs, newest first, without results."""
        session = self._session(session_id)
        if state is not None and state not in J.STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(J.STATES)} or null, got {state!r}", key="state"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        jobs = self.store.list_jobs(session.tenant, state, limit)
        return {"jobs": [job.to_json(result=False) for job in jobs]}


#: The syscalls, by wire name.
SYSCALLS: tuple[str, ...] = (
    "q_negotiate_caps",
    "q_submit",
    "q_status",
    "q_wait",
    "q_cancel",
    "q_checkpoint",
    "q_restore",
    "q_replay",
    "q_open_chan",
    "q_close_chan",
    "q_chan_status",
    "q_get_telemetry",
    "q_resource_query",
    "q_list_jobs",
)

__all__ = ["SYSCALLS", "Kernel"]
