"""The kernel service: one coroutine per qSyscall, a thin facade over the kernel's parts.

>>> import asyncio, tempfile
>>> from qmk.kernel.config import config_from_dict
>>> cfg = config_from_dict({"machine": {"physical_qubits": 10_000},
...     "tenants": {"alice": {"key": "k-alice", "caps": ["CAP_ALLOC"]}}})
>>> async def demo(data_dir):
...     kernel = await Kernel.open(cfg, data_dir, workers=1)
...     try:
...         s = await kernel.q_negotiate_caps(tenant="alice", key="k-alice",
...                                           requested=["CAP_ALLOC", "CAP_LINK"])
...         return s.granted, s.denied
...     finally:
...         await kernel.close()
>>> with tempfile.TemporaryDirectory() as d:
...     asyncio.run(demo(d))
(['CAP_ALLOC'], ['CAP_LINK'])

Each ``q_*`` method checks the session, then hands over to a desk of
:mod:`qmk.kernel.syscalls` (sessions, delegations, jobs, channels, the machine and usage),
which checks its own arguments and does the work with the kernel's parts:

- :class:`~qmk.kernel.admit.admission.Admission` checks a submission (values, verification,
  capabilities, firewall, admission, quotas) and builds its job;
- :class:`~qmk.kernel.running.supervisor.Supervisor` queues, starts, times out and stops jobs on
  the worker pool, and counts epochs;
- :class:`~qmk.kernel.storage.commit.GroupCommit` makes writes durable, a burst at a time;
- sessions, channels and the audit log are their own modules' tables.

Everything runs on one asyncio event loop. The kernel's own task (started by
:meth:`Kernel.open`, ended by :meth:`Kernel.close`) holds a :class:`asyncio.TaskGroup`
that owns every task of the kernel: the committer, the dispatcher, the epoch ticker, one
task per job deadline (the runs' timeouts are one timer of the clock, cancelled at close). A pool
of another kind (``pool=``) may complete futures in its own thread; those hop over with
``call_soon_threadsafe``. See docs/kernel.md for the model.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import qmk.abi.replies as replies
from qmk import aio, defaults
from qmk.abi.probe import hashed_tenants
from qmk.errors import UnavailableError
from qmk.kernel.admit.admission import Admission
from qmk.kernel.admit.channels import ChannelTable
from qmk.kernel.admit.faults import device_for
from qmk.kernel.admit.planner import Planner
from qmk.kernel.clock import Clock, MachineClock, SystemClock
from qmk.kernel.config import KernelConfig, config_warnings
from qmk.kernel.datafiles import CHECKPOINTS
from qmk.kernel.machine.spec import MachineSpec
from qmk.kernel.observe import KernelObserver
from qmk.kernel.pools.workers import PoolFactory, kernel_pool, linked, planner_pool
from qmk.kernel.running.supervisor import Supervisor
from qmk.kernel.security.keys import KeyChecker
from qmk.kernel.security.seals import derive
from qmk.kernel.security.sessions import Session, Sessions, load_secret
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.datadir import DataDir, open_data_dir
from qmk.kernel.storage.reserve import DiskReserve
from qmk.kernel.storage.store import Store
from qmk.kernel.syscalls.jobs import JobDesk
from qmk.kernel.syscalls.loans import Loans
from qmk.kernel.syscalls.sessions import SessionDesk
from qmk.kernel.syscalls.traces import FeedTraces

_log = logging.getLogger("qmk.kernel")

T = TypeVar("T")


if TYPE_CHECKING:  # made where first used (Kernel.assist, .triggers, .machine_desk, ...)
    from qmk.kernel.admit.assist import AssistDesk, Call
    from qmk.kernel.running.triggers import Triggers
    from qmk.kernel.storage.outbox import Outbox
    from qmk.kernel.syscalls.channels import ChannelDesk
    from qmk.kernel.syscalls.delegations import DelegationDesk
    from qmk.kernel.syscalls.feed import FeedDesk
    from qmk.kernel.syscalls.machine import MachineDesk


def _delegation_desk(kernel: Kernel) -> DelegationDesk:
    """``kernel``'s delegations' desk, made at its first ask (:meth:`Loans.made`): its
    module loads then."""
    from qmk.kernel.syscalls.delegations import DelegationDesk

    return DelegationDesk(
        kernel.config,
        reserve=kernel.reserve,
        store=kernel.store,
        audit=kernel.audit,
        commits=kernel.commits,
        clock=kernel.clock,
    )


class Kernel:
    """A running kernel: sessions, jobs, channels, a scheduler and a worker pool.

    Build one with :meth:`open`; stop it with :meth:`close`.

    It is the syscall facade, one ``q_*`` method per row of the qSyscall
    method table (mypy holds it to the table through :mod:`qmk.kernel._contract`), each
    a session check and a hand-over to the part that does the work: the desks of
    :mod:`qmk.kernel.syscalls` (sessions, delegations, jobs, channels, the machine and
    usage), the assistant's desk or the triggers. It builds the parts, opens and closes.
    """

    def __init__(
        self,
        config: KernelConfig,
        data_dir: Path,
        pool: Any,
        clock: Clock,
        *,
        machine_clock: MachineClock | None = None,
        planner: Planner | None = None,
        machine: MachineSpec | None = None,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.pool = pool
        self.clock = clock
        self.secret = load_secret(data_dir)
        self.store = Store(
            data_dir,
            synchronous=config.synchronous,
            seal_key=derive(self.secret, "result"),
            checkpoints_apart=True,
            disk_reserve_bytes=config.min_free_disk_mb * 2**20,
        )
        self.audit = AuditLog(data_dir, self.secret)
        self.sessions = Sessions(
            self.secret, ttl_s=config.session_ttl_s, revoked=self.store.revoked_sessions()
        )
        #: The configuration's coded warnings (a plain-text key: QK402); ``qmk serve``
        #: logs them once it listens.
        self.warnings: list[dict[str, str]] = config_warnings(config)
        #: Checks the keys of negotiations (scrypt hashes off the loop, remembered).
        self.keys = KeyChecker(self.secret)
        self.channels = ChannelTable(self.store.load_channels(), self.store.load_channel)
        self.commits = GroupCommit(self.store, self.audit)
        #: The disk's reserve, which no tenant's request takes (:mod:`~qmk.kernel.storage.reserve`).
        self.reserve = DiskReserve(data_dir, config.min_free_disk_mb)
        #: The machine (the device interface, docs/devices.md): the simulated logical one.
        self.device = device_for(config)
        self.supervisor = Supervisor(
            config,
            store=self.store,
            audit=self.audit,
            commits=self.commits,
            channels=self.channels,
            pool=pool,
            clock=clock,
            device=self.device,
            checkpoint_dir=data_dir / CHECKPOINTS,
            machine_clock=machine_clock,
            machine=machine,
        )
        watch_queue = getattr(pool, "watch_queue", None)
        if watch_queue is not None:  # a pool on a cluster that scales: it sees the queue
            watch_queue(self.supervisor.queue_depth, self.supervisor.resize)
        self.admission = Admission(
            config,
            channels=self.channels,
            queue=self.supervisor.queue,
            audit=self.audit,
            commits=self.commits,
            clock=clock,
            device=self.device,
            results=self.supervisor.results,
            planner=planner or Planner(functools.partial(planner_pool, config, data_dir)),
        )
        #: How the assistant's tools make their syscalls (``qmk serve`` sets it: through
        #: its door; the assistant's desk takes it as its ``calls`` when first made);
        #: None: straight to the kernel.
        self.assist_calls: Call | None = None
        self._assist: AssistDesk | None = None
        #: How many times ``qmk serve``'s supervisor replaced each user-mode server that
        #: ended, by server (``qmk serve`` sets it where it supervises some; read at each
        #: ``q_kernel_load``); None: none is supervised here.
        self.server_restarts: Callable[[], Mapping[str, int]] | None = None
        self.admission.artifacts = self.supervisor.book.stored_artifacts
        self.admission.quotas.machine_holds = self.supervisor.machine.holds
        self.admission.quotas.machine = self.supervisor.machine.spec
        # the syscalls' work by concern (qmk.kernel.syscalls)
        #: What delegations lend a tenant now, and their use audited: nothing until their
        #: desk is made (:meth:`Loans.made`: a delegation held, or a delegation syscall).
        self.loans = Loans(functools.partial(_delegation_desk, self), self.supervisor.sweeps)
        #: Negotiations and every syscall's session check.
        self.session_desk = SessionDesk(
            config,
            self.sessions,
            self.keys,
            self.loans,
            check_open=self._check_open,
            reserve=self.reserve,
            store=self.store,
            audit=self.audit,
            commits=self.commits,
            clock=clock,
        )
        #: Every syscall's session check (:meth:`SessionDesk.check`, the desk's own
        #: method: no call of a method of this class between).
        self._session: Callable[[str], Session] = self.session_desk.check
        #: Jobs: submitted, found, waited for, stopped, restored, replayed, listed.
        self.job_desk = JobDesk(
            config,
            self.reserve,
            store=self.store,
            admission=self.admission,
            supervisor=self.supervisor,
            delegations=self.loans,
            check_open=self._check_open,
        )
        #: Channels between tenants, and the machine's desk (its telemetry, status and
        #: calibration, usage): made at their first syscall (:attr:`channel_desk`,
        #: :attr:`machine_desk`), so a kernel of plain jobs never loads their modules.
        self._channel_desk: ChannelDesk | None = None
        self._machine_desk: MachineDesk | None = None
        # a job's caps are checked again when it starts: those lent count while lent
        self.supervisor.lent_caps = self.loans.lent
        if self.store.has_delegations():  # else made at the first delegation syscall
            self.loans.made()  # its live loans lend from now on
        self.supervisor.state_key = derive(self.secret, "state")
        self._triggers: Triggers | None = None  # made when there are any (Kernel.triggers)
        #: The billing webhook's outbox, made as the kernel runs where a webhook is set.
        self.outbox: Outbox | None = None
        #: The kernel's task group while it runs (a trigger table made then starts in it).
        self._group: aio.TaskGroup | None = None
        # another tenant's name on the shared machine: the label /metrics gives it
        self.supervisor.machine.label = hashed_tenants(self.key_for("metrics"))
        #: The one probe of this kernel (every listener's: the door's and the feed's).
        self.observer = KernelObserver(self)
        #: The event feed, the audit read and the load, for processes of their own:
        #: made at the first of their syscalls, or where ``qmk serve`` keeps the feed
        #: from its start (:attr:`feed_desk`).
        self._feed_desk: FeedDesk | None = None
        #: The workers' spans of submits that carried a traceparent, told to the feed
        #: while no tracer of this process takes them (KernelObserver.trace_workers).
        self.feed_traces = FeedTraces(self.audit)
        self.job_desk.traces = self.supervisor.traces = self.feed_traces
        self._host: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self.started_at = clock.now()
        #: The locked data directory (set by :meth:`open`).
        self.data: DataDir | None = None

    def key_for(self, purpose: str) -> bytes:
        """A key of this kernel's for one use, derived from its secret
        (:func:`qmk.kernel.security.seals.derive`): e.g. ``"metrics"``, the HTTP layer's hashes
        of tenant names."""
        return derive(self.secret, purpose)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        config: KernelConfig,
        data_dir: str | os.PathLike[str],
        *,
        workers: int = 2,
        pool: Any = None,
        pool_factory: PoolFactory | None = None,
        clock: Clock | None = None,
        machine_clock: MachineClock | None = None,
        recover: bool = False,
        repair_perms: bool = False,
    ) -> Kernel:
        """Open (or create) ``data_dir``, recover unfinished jobs, start scheduling.

        The directory is locked and checked first (:mod:`qmk.kernel.storage.datadir`).

        Args:
            config: the kernel configuration.
            data_dir: the data directory (database, audit log, secret).
            workers: worker processes of the default pool.
            pool: an executor to use instead (``submit``/``shutdown``/``cancel``).
            pool_factory: makes the default pool in place of
                :func:`~qmk.kernel.pools.workers.kernel_pool`, called as it is, on the
                kernel's loop once the data directory is locked: e.g.
                ``functools.partial(kernel_pool, pool_class=...)`` for a
                :class:`~qmk.kernel.pools.pool.WorkerPool` subclass. Unused with ``pool``.
            clock: the kernel's clock (default: the system's; tests pass a
                :class:`~qmk.kernel.manual_clock.ManualClock`).
            machine_clock: the shared machine's clock (default: ``[machine]
                cycles_per_s`` from the kernel's start; tests pass a
                :class:`~qmk.kernel.manual_clock.ManualMachineClock` to fix arrivals).
            recover: start on a damaged directory, recording what was wrong.
            repair_perms: take away the bits that let other users into the directory's
                files (recorded in the ``open`` audit line) instead of refusing.

        Raises:
            DataDirError: the directory is in use, damaged (without ``recover``) or unusable.
            ExposureError: ``QK121 lax-permissions`` (without ``repair_perms``).
        """
        loop = asyncio.get_running_loop()
        directory = open_data_dir(data_dir, recover=recover, repair_perms=repair_perms)
        if directory.repaired_perms:
            _log.warning(
                "QK121 lax-permissions: repaired %d paths of %s: %s",
                len(directory.repaired_perms),
                data_dir,
                ", ".join(directory.repaired_perms[:5]),
            )
        try:
            kernel = await cls._start(
                config, Path(data_dir), workers, pool, clock, pool_factory, machine_clock
            )
        except BaseException:
            directory.close()
            raise
        kernel.data = directory
        kernel.store.set_verified_head(directory.checked, derive(kernel.secret, "audit-head"))
        recovered = kernel.supervisor.recover()
        if kernel.store.has_triggers():  # else made at the first trigger syscall
            kernel.triggers  # noqa: B018 (made and loaded: its runs left RUNNING end now)
        kernel.loans.expire(kernel.clock.now())
        kernel.audit.append("kernel", action="open", recovered=recovered, **directory.open_record())
        kernel.commits.commit()
        started: asyncio.Future[None] = loop.create_future()
        kernel._host = loop.create_task(kernel._run(started), name="qmk-kernel")
        kernel._host.add_done_callback(kernel._host_done)
        await asyncio.wait([started, kernel._host], return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            kernel._host.result()  # it failed before it started: raise why
        return kernel

    @classmethod
    async def _start(
        cls,
        config: KernelConfig,
        data_dir: Path,
        workers: int,
        pool: Any,
        clock: Any,
        pool_factory: PoolFactory | None = None,
        machine_clock: MachineClock | None = None,
    ) -> Kernel:
        """The kernel on ``data_dir`` (locked and checked already), with its pool (made
        now by ``pool_factory``, by default :func:`~qmk.kernel.pools.workers.kernel_pool`:
        confined workers, unless ``pool`` is given) and its planner process, which
        derives its shared machine (the estimator's patch and factories: issue 79)."""
        loop = asyncio.get_running_loop()
        made = pool is None
        if pool is None:
            make = pool_factory or kernel_pool
            pool = make(config, data_dir, workers=workers, loop=loop)
        planner = Planner(functools.partial(planner_pool, config, data_dir))
        try:
            machine = await planner.machine(config)
        except BaseException:
            planner.close()
            if made:
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        return cls(
            config,
            data_dir,
            pool,
            clock or SystemClock(),
            machine_clock=machine_clock,
            planner=planner,
            machine=machine,
        )

    async def _run(self, started: asyncio.Future[None]) -> None:
        """The kernel's own task: its group owns every task of the kernel until close."""
        async with aio.TaskGroup() as group:
            group.create_task(self.commits.run(), name="qmk-committer")
            billing = self.config.billing
            if billing.webhook_url is not None:
                from qmk.kernel.pools.networked import webhook_pool
                from qmk.kernel.storage.outbox import Outbox  # made where a webhook is set

                ledger = self.supervisor.ledger
                start = functools.partial(webhook_pool, self.config, self.data_dir)
                post = functools.partial(linked, "qmk.abi.webhook:deliver")
                outbox = self.outbox = Outbox(
                    billing, self.store, self.commits, self.clock, ledger.wake, start, post
                )
                group.create_task(outbox.run(), name="qmk-billing-outbox")
            self.supervisor.start(group)
            self._group = group
            if self._triggers is not None:
                group.create_task(self._triggers.run(), name="qmk-triggers")
            started.set_result(None)

    def _host_done(self, host: asyncio.Task[None]) -> None:
        if host.cancelled():
            return
        # read here in every case: an error left unread is logged when the task is
        # collected, at whatever moment that is (in the middle of another parse, once)
        failure = host.exception()
        if failure is None:
            return
        if self._closing:
            _log.warning("the kernel's host stopped on an error as it closed", exc_info=failure)
            return
        self._failure = failure
        _log.error("the kernel stopped on an internal error", exc_info=self._failure)
        # requests that wait for a commit get an answer: there is no committer any more
        self.commits.abort(UnavailableError("the kernel stopped on an internal error"))

    async def close(self) -> None:
        """Stop accepting requests, stop the workers, flush and close. Idempotent.

        Jobs still QUEUED or RUNNING stay so in the database and are re-queued by the
        next :meth:`open` of the same data directory.
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._feed_desk is not None:
            self._feed_desk.close()
        self.supervisor.stop_starting()
        self.session_desk.flush_auth_failures()
        self.loans.flush(self.clock.now())
        if self._host is not None:
            self._host.cancel()  # its group cancels every task of the kernel
            await asyncio.wait([self._host])
        await self.supervisor.close()
        self.admission.cpu.close()
        self.admission.planner.close()
        if self._assist is not None:
            self._assist.close()
        self.keys.close()
        self.audit.append("kernel", action="close", epoch=self.supervisor.epoch)
        self.commits.commit()
        self.audit.close()
        self.store.close()
        if self.data is not None:
            self.data.close()
        self._closed.set()

    async def __aenter__(self) -> Kernel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closing:
            raise UnavailableError("the kernel is shutting down; retry against the next one")
        if self._failure is not None:
            raise UnavailableError("the kernel stopped on an internal error; see its log")

    def tenant_of(self, session_id: str) -> str:
        """The tenant of a valid session (an in-process call of the HTTP layer, which
        checks the bearer before it reads a request's body).

        Raises:
            SessionError, AuthError: as every syscall's session check.
        """
        return self._session(session_id).tenant

    def revoke_session(self, session_id: str) -> None:
        """Refuse ``session_id`` from now on (an in-process admin call, not a syscall)."""
        self.session_desk.revoke(session_id)

    async def submit_as(
        self,
        session: Session,
        graph: Any,
        shots: int = defaults.SHOTS,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        target: str = defaults.TARGET,
    ) -> replies.Job:
        """:meth:`q_submit` with a checked ``session`` (a trigger's run has one of its
        owner's, :class:`_TriggerHost`)."""
        return await self.job_desk.submit(
            session, graph, shots, seed, policy, idempotency_key=idempotency_key, target=target
        )

    # ------------------------------------------------------------------ syscalls: sessions

    async def q_negotiate_caps(
        self, *, tenant: str, key: str, requested: Sequence[str] = ()
    ) -> replies.Session:
        """Open a session: grant ``requested`` ∩ the tenant's allowed capabilities (its own,
        and those a live delegation lends it: ``delegated``)."""
        return await self.session_desk.negotiate(tenant, key, requested)

    async def q_delegate_caps(
        self, *, session_id: str, to_tenant: str, caps: Sequence[str], expires_s: float
    ) -> replies.Delegation:
        """Lend ``caps`` (the session's, of its tenant's own config) to ``to_tenant`` for
        ``expires_s`` seconds: its negotiations may grant them while the loan is live."""
        session = self._session(session_id)
        return await self.loans.made().delegate(session, to_tenant, caps, expires_s)

    async def q_revoke_delegation(
        self, *, session_id: str, delegation_id: str
    ) -> replies.Delegation:
        """End a delegation now (either end may); one that ended already is returned as
        it is."""
        session = self._session(session_id)
        return await self.loans.made().revoke(session, delegation_id)

    async def q_list_delegations(
        self, *, session_id: str, state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> replies.DelegationList:
        """The delegations this tenant made or received, newest first."""
        return self.loans.made().listed(self._session(session_id), state, limit)

    # ------------------------------------------------------------------ syscalls: jobs

    async def q_submit(
        self,
        *,
        session_id: str,
        graph: Any,
        shots: int = defaults.SHOTS,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        target: str = defaults.TARGET,
        wait_ms: int | None = None,
        traceparent: str | None = None,
    ) -> replies.Job:
        """Accept a job: verify, check caps, firewall, admission and quotas; queue it.

        ``target`` names what runs it (:mod:`qmk.execution.target`): the logical machine,
        lattice surgery, or the neutral-atom device (``graph`` its wire-form job; the
        submit's shots and seed replace the job's own). A submit with an
        ``idempotency_key`` the tenant used before returns that job (as it is now) and
        queues nothing: a client may retry a submit whose reply it lost. With
        ``wait_ms`` the answer is the job once final, or as it is when ``wait_ms`` has
        passed, as :meth:`q_wait` answers it: a small job is one request. With
        ``traceparent``, the spans of its worker go to the tenant's feed
        (:class:`~qmk.kernel.syscalls.traces.FeedTraces`).
        """
        session = self._session(session_id)
        return await self.job_desk.submit(
            session,
            graph,
            shots,
            seed,
            policy,
            idempotency_key=idempotency_key,
            target=target,
            wait_ms=wait_ms,
            traceparent=traceparent,
        )

    async def q_status(self, *, session_id: str, job_id: str) -> replies.Job:
        """The job, with its result once COMPLETED."""
        return self.job_desk.status(self._session(session_id), job_id)

    async def q_wait(
        self, *, session_id: str, job_id: str, timeout_ms: int = defaults.WAIT_TIMEOUT_MS
    ) -> replies.Job:
        """Wait until the job is final or ``timeout_ms`` passes; return it either way."""
        return await self.job_desk.wait(self._session(session_id), job_id, timeout_ms)

    async def q_get_result(
        self,
        *,
        session_id: str,
        job_id: str,
        cursor: str | None = None,
        limit: int = defaults.RESULT_PAGE_ENTRIES,
    ) -> replies.ResultPage:
        """A page of a COMPLETED job's counts (:meth:`~qmk.kernel.storage.results.Results.page`)."""
        return self.job_desk.result(self._session(session_id), job_id, cursor, limit)

    async def q_device_artifacts(
        self,
        *,
        session_id: str,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> replies.Artifacts:
        """A device job's artifacts (:mod:`~qmk.kernel.storage.artifacts`): the list, or with
        ``name`` a page of that artifact's records."""
        return self.job_desk.artifacts(self._session(session_id), job_id, name, offset, limit)

    async def q_cancel(self, *, session_id: str, job_id: str) -> replies.Job:
        """Cancel a job: dequeue it, or kill its worker. A final job is a StateError."""
        return await self.job_desk.cancel(self._session(session_id), job_id)

    async def q_checkpoint(self, *, session_id: str, job_id: str) -> replies.Checkpoint:
        """Record a checkpoint of the job at the current epoch (see docs/kernel.md)."""
        return await self.job_desk.checkpoint(self._session(session_id), job_id)

    async def q_restore(
        self, *, session_id: str, job_id: str, checkpoint_id: str | None = None
    ) -> replies.Job:
        """Re-queue the job from a checkpoint (the latest when ``checkpoint_id`` is null)."""
        return await self.job_desk.restore(self._session(session_id), job_id, checkpoint_id)

    async def q_replay(self, *, session_id: str, job_id: str) -> replies.Job:
        """A new job with the same graph, shots, seed and policy (so the same counts), run
        again: a replay checks that the run reproduces, so the result cache never answers
        it (``cache: false``)."""
        return await self.job_desk.replay(self._session(session_id), job_id)

    async def q_list_jobs(
        self, *, session_id: str, state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> replies.JobList:
        """The tenant's jobs, newest first, without results."""
        return self.job_desk.listed(self._session(session_id), state, limit)

    # ------------------------------------------------------------------ syscalls: channels

    async def q_open_chan(
        self,
        *,
        session_id: str,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
    ) -> replies.Channel:
        """Propose a channel to ``peer`` (``channel_id`` null) or accept its proposal."""
        session = self._session(session_id)
        return await self.channel_desk.open(session, peer, channel_id, fidelity)

    async def q_close_chan(self, *, session_id: str, channel_id: str) -> replies.Channel:
        """Close a channel (either end)."""
        return await self.channel_desk.close(self._session(session_id), channel_id)

    async def q_chan_status(self, *, session_id: str, channel_id: str) -> replies.Channel:
        """A channel of this tenant."""
        return self.channel_desk.status(self._session(session_id), channel_id)

    async def q_list_channels(
        self, *, session_id: str, state: str | None = None
    ) -> replies.ChannelList:
        """This tenant's channels (either end), newest first."""
        return self.channel_desk.listed(self._session(session_id), state)

    # ------------------------------------------------------------------ syscalls: the machine

    async def q_get_telemetry(
        self, *, session_id: str, job_id: str | None = None
    ) -> replies.Telemetry:
        """A job's telemetry, or (``job_id`` null) the tenant's aggregate."""
        return self.machine_desk.telemetry(self._session(session_id), job_id)

    async def q_machine_status(self, *, session_id: str, speedup: bool = False) -> replies.Machine:
        """The shared machine now, as the session's tenant sees it
        (:meth:`~qmk.kernel.running.shared_machine.SharedMachine.status`); ``speedup``:
        with the speedup over ``exclusive`` of its latest arrivals."""
        return await self.machine_desk.machine_status(self._session(session_id), speedup=speedup)

    async def q_resource_query(self, *, session_id: str) -> replies.Resources:
        """The machine's inventory and this tenant's quota and usage."""
        return self.machine_desk.resources(self._session(session_id))

    async def q_calibrate(
        self,
        *,
        session_id: str,
        calibration: Mapping[str, Any] | None = None,
        qubit: Mapping[str, Any] | None = None,
    ) -> replies.Device:
        """Ingest a calibration and/or custom qubit parameters for every job started from
        now on (tenants with ``operator = true`` only); the device as it is then."""
        return await self.machine_desk.calibrate(self._session(session_id), calibration, qubit)

    async def q_usage(
        self,
        *,
        session_id: str,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = defaults.JOBS_LIMIT,
    ) -> replies.Usage:
        """The tenant's usage records of jobs that ended in [since, until) (``job_id``:
        of that job only), newest first, their totals and the invoice of the totals at
        the price table's prices."""
        session = self._session(session_id)
        return self.machine_desk.usage(session, since, until, job_id, limit)

    # ------------------------------------------------------------------ syscalls: observing

    async def q_events(
        self,
        *,
        session_id: str,
        after: int | None = None,
        limit: int = defaults.EVENTS_LIMIT,
        wait_ms: int | None = None,
        after_sub: int = 0,
    ) -> replies.Events:
        """The tenant's own records after the cursor ``(after, after_sub)`` (``after``
        null: from now), oldest first; with ``wait_ms``, waiting that long for the first."""
        session = self._session(session_id)
        return await self.feed_desk.events(session, after, limit, wait_ms, after_sub)

    async def q_audit(
        self, *, session_id: str, job_id: str | None = None, limit: int = defaults.AUDIT_LIMIT
    ) -> replies.AuditEntries:
        """The tenant's last ``limit`` audit records (``job_id``'s only), oldest first."""
        session = self._session(session_id)

        def job_of(job_id: str) -> Any:
            return self.supervisor.job(job_id, session.tenant)

        return await self.feed_desk.audit(session, job_id, limit, job_of)

    async def q_kernel_load(self, *, session_id: str) -> replies.KernelLoad:
        """The kernel's load and job counters (the session needs ``CAP_OBSERVE``)."""
        return self.feed_desk.load(self._session(session_id))

    @property
    def feed_desk(self) -> FeedDesk:
        """The feed's desk (``q_events``, ``q_audit``, ``q_kernel_load``), made at the
        first of its syscalls, or where ``qmk serve`` keeps the feed from its start."""
        if self._feed_desk is None:
            from qmk.kernel.syscalls.feed import FeedDesk

            desk = FeedDesk(self.config, self.observer, self.key_for("metrics"))
            self._feed_desk = self.observer.feed = desk
        return self._feed_desk

    @property
    def channel_desk(self) -> ChannelDesk:
        """The channels' desk, made at the first channel syscall."""
        if self._channel_desk is None:
            from qmk.kernel.syscalls.channels import ChannelDesk

            self._channel_desk = ChannelDesk(
                self.config,
                self.channels,
                self.supervisor,
                store=self.store,
                audit=self.audit,
                commits=self.commits,
                clock=self.clock,
            )
        return self._channel_desk

    @property
    def machine_desk(self) -> MachineDesk:
        """The machine's desk (a job's telemetry, the machine's status and calibration,
        usage), made at the first of its syscalls."""
        if self._machine_desk is None:
            from qmk.kernel.syscalls.machine import MachineDesk

            self._machine_desk = MachineDesk(
                self.config,
                self.device,
                self.supervisor,
                self.channels,
                self.pool,
                store=self.store,
                audit=self.audit,
                commits=self.commits,
            )
        return self._machine_desk

    # ------------------------------------------------------------------ syscalls: the assistant

    @property
    def assist(self) -> AssistDesk:
        """The assistant's desk, made at the first question: its module loads then, so a
        kernel nobody asks never holds it."""
        if self._assist is None:
            from qmk.kernel.admit.assist import AssistDesk
            from qmk.kernel.pools.networked import assistant_pool

            start = functools.partial(assistant_pool, self.config, self.data_dir)
            answer = functools.partial(linked, "qmk.assist.served:answer")
            tool = functools.partial(linked, "qmk.assist.tools:planned")
            desk = AssistDesk(
                self.config,
                self.audit,
                self.clock,
                self.admission.cpu,
                start,
                answer,
                plan=self.admission.planner.run,
                tool=tool,
            )
            desk.calls = self.assist_calls
            self._assist = desk
        return self._assist

    async def q_assist(
        self,
        *,
        session_id: str,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
    ) -> replies.Assist:
        """Ask the assistant ([assist]); its steps are audit lines of event ``assist``,
        its tools' work is the session's (``run``: a job of this session)."""
        from qmk.qvm.limits import Limits

        session = self._session(session_id)
        # REPEAT rows: stored rows within the cap, and (run unrolled) their unrolling too
        cap = self.config.max_graph_nodes
        limits = Limits(max_nodes=cap, max_unrolled_nodes=cap)

        async def direct(name: str, params: dict[str, Any]) -> Any:
            return await getattr(self, name)(**params)

        answer = await self.assist.ask(
            session.tenant, prompt, program, assist_id, limits, session_id=session_id, direct=direct
        )
        await self.commits.durable()  # its steps' lines kept, so streamed, before the answer
        return answer

    # ------------------------------------------------------------------ triggers

    @property
    def triggers(self) -> Triggers:
        """The workflow triggers (:mod:`qmk.kernel.running.triggers`), made at open where
        the store holds any, else at the first trigger syscall: a kernel that holds none
        never loads their module. Made, they are read from the store (a run left RUNNING
        is INTERRUPTED), hear jobs end and calibrations on the audit log, and their loop
        is a task of the kernel's group."""
        if self._triggers is None:
            from qmk.kernel.running.triggers import Triggers
            from qmk.kernel.syscalls.triggers import TriggerHost

            lower = functools.partial(linked, "qmk.workflows.runner:lowered")
            host = TriggerHost(
                self.config,
                self._check_open,
                self.submit_as,
                self.supervisor,
                self.admission,
                lower,
            )
            triggers = Triggers(
                store=self.store,
                audit=self.audit,
                commits=self.commits,
                clock=self.clock,
                host=host,
            )
            triggers.load()
            self.audit.head_listeners.append(triggers.heard)  # reads a line's head alone
            self._triggers = triggers
            if self._group is not None:
                self._group.create_task(triggers.run(), name="qmk-triggers")
        return self._triggers

    async def q_create_trigger(
        self,
        *,
        session_id: str,
        name: str,
        workflow: Mapping[str, Any],
        on: str,
        every_s: float | None = None,
        cron: str | None = None,
        states: Sequence[str] | None = None,
    ) -> replies.Trigger:
        """A workflow the kernel runs as this tenant's jobs on a schedule or on events
        (:mod:`qmk.kernel.running.triggers`)."""
        session = self._session(session_id)
        self.admission.cpu.check(session.tenant, "a trigger's workflow")
        return await self.triggers.create(
            session,
            name=name,
            workflow=workflow,
            on=on,
            every_s=every_s,
            cron=cron,
            states=states,
        )

    async def q_list_triggers(
        self, *, session_id: str, trigger_id: str | None = None, runs: int = 0
    ) -> replies.TriggerList:
        """This tenant's triggers (or one), each with its next and last run and its newest
        ``runs`` runs."""
        session = self._session(session_id)
        return self.triggers.listed(session.tenant, trigger_id, runs)

    async def q_delete_trigger(self, *, session_id: str, trigger_id: str) -> replies.Trigger:
        """Delete a trigger (its run going on ends; its jobs run on)."""
        session = self._session(session_id)
        return await self.triggers.delete(session, trigger_id)


__all__ = ["Kernel"]
