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
...         return s["granted"], s["denied"]
...     finally:
...         await kernel.close()
>>> with tempfile.TemporaryDirectory() as d:
...     asyncio.run(demo(d))
(['CAP_ALLOC'], ['CAP_LINK'])

Each ``q_*`` method checks the session and its own arguments, then hands over to a part:

- :class:`~qmk.kernel.admit.admission.Admission` checks a submission (values, verification,
  capabilities, firewall, admission, quotas) and builds its job;
- :class:`~qmk.kernel.running.supervisor.Supervisor` queues, starts, times out and stops jobs on
  the worker pool, and counts epochs;
- :class:`~qmk.kernel.storage.commit.GroupCommit` makes writes durable, a burst at a time;
- sessions, channels and the audit log are their own modules' tables.

Everything runs on one asyncio event loop. The kernel's own task (started by
:meth:`Kernel.open`, ended by :meth:`Kernel.close`) holds a :class:`asyncio.TaskGroup`
that owns every task of the kernel: the committer, the dispatcher, the epoch ticker, one
task per job run and one per job deadline. A pool of another kind (``pool=``) may
complete futures in its own thread; those hop over with ``call_soon_threadsafe``. See
docs/kernel.md for the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from qmk import aio, defaults
from qmk.errors import (
    AuthError,
    CapabilityError,
    InvalidArgument,
    NotFoundError,
    QMKError,
    QuotaError,
    SessionError,
    UnavailableError,
)
from qmk.http.probe import hashed_tenants
from qmk.kernel.admit.admission import Admission
from qmk.kernel.admit.assist import AssistDesk
from qmk.kernel.admit.budget import CpuBudget
from qmk.kernel.admit.channels import STATES as CHANNEL_STATES
from qmk.kernel.admit.channels import ChannelTable, check_fidelity
from qmk.kernel.admit.faults import device_for
from qmk.kernel.clock import Clock, MachineClock, SystemClock
from qmk.kernel.config import KernelConfig, TenantConfig, config_warnings
from qmk.kernel.datafiles import CHECKPOINTS
from qmk.kernel.pools.workers import PoolFactory, kernel_pool
from qmk.kernel.records import jobs as J
from qmk.kernel.running.supervisor import Supervisor
from qmk.kernel.running.triggers import Triggers
from qmk.kernel.security.delegations import STATES as DELEGATION_STATES
from qmk.kernel.security.delegations import Delegation, DelegationTable, Retention, not_found
from qmk.kernel.security.keys import KeyChecker, is_hash
from qmk.kernel.security.seals import derive
from qmk.kernel.security.sessions import Session, Sessions, load_secret
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.billing import Outbox, invoice, usage_record
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.datadir import DataDir, open_data_dir
from qmk.kernel.storage.store import Store

_log = logging.getLogger("qmk.kernel")

T = TypeVar("T")

#: Failed negotiations within this many seconds after one that was audited in full are
#: audited as one summary line.
AUTH_AUDIT_WINDOW_S = 1.0


class Kernel:
    """A running kernel: sessions, jobs, channels, a scheduler and a worker pool.

    Build one with :meth:`open`; stop it with :meth:`close`.

    It is the syscall facade, one ``q_*`` method per row of the qSyscall
    method table (mypy holds it to the table through :mod:`qmk.kernel._contract`), each
    a session check and a hand-over to the admission or the supervisor; it is as long as
    the table.
    """

    def __init__(
        self,
        config: KernelConfig,
        data_dir: Path,
        pool: Any,
        clock: Clock,
        *,
        machine_clock: MachineClock | None = None,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.pool = pool
        self.clock = clock
        self.secret = load_secret(data_dir)
        self.store = Store(
            data_dir, synchronous=config.synchronous, seal_key=derive(self.secret, "result")
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
        self._hashed_keys = any(is_hash(t.stored_key) for t in config.tenants.values())
        self.channels = ChannelTable(self.store.load_channels(), self.store.load_channel)
        #: The live capability delegations (:mod:`qmk.kernel.security.delegations`).
        self.delegations = DelegationTable(
            Delegation.from_row(row) for row in self.store.live_delegations(clock.now())
        )
        #: The retention of ended delegations.
        self.delegation_retention = Retention(
            self.store.delete_ended_delegations, self.audit.append, config.delegation_keep_s
        )
        self.commits = GroupCommit(self.store, self.audit)
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
        )
        self.assist = AssistDesk(config, self.audit, clock, self.admission.cpu)
        self.admission.artifacts = self.supervisor.artifacts
        self.admission.machine_holds = self.supervisor.machine.holds
        # a job's caps are checked again when it starts: those lent count while lent
        self.supervisor.lent_caps = self._lent
        self.supervisor.sweeps.append(self.delegation_retention.expire)
        self.supervisor.state_key = derive(self.secret, "state")
        #: The workflow triggers (:mod:`qmk.kernel.running.triggers`): their loop is a task of
        #: the kernel's group; they hear jobs end and calibrations on the audit log.
        self.triggers = Triggers(
            store=self.store,
            audit=self.audit,
            commits=self.commits,
            clock=clock,
            host=_TriggerHost(self),
        )
        self.audit.listeners.append(self.triggers.heard)
        # another tenant's name on the shared machine: the label /metrics gives it
        self.supervisor.machine.label = hashed_tenants(self.key_for("metrics"))
        self._host: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self.started_at = clock.now()
        #: The locked data directory (set by :meth:`open`).
        self.data: DataDir | None = None
        #: Failed negotiations counted, not yet audited (see :meth:`_auth_failed`).
        self._auth_window_end = -math.inf
        self._auth_more = 0
        self._auth_tenants: set[str] = set()

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
                :class:`~qmk.kernel.clock.ManualClock`).
            machine_clock: the shared machine's clock (default: ``[machine]
                cycles_per_s`` from the kernel's start; tests pass a
                :class:`~qmk.kernel.clock.ManualMachineClock` to fix arrivals).
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
            kernel = cls._start(
                config, Path(data_dir), workers, pool, clock, pool_factory, machine_clock
            )
        except BaseException:
            directory.close()
            raise
        kernel.data = directory
        kernel.store.set_verified_head(directory.checked, derive(kernel.secret, "audit-head"))
        recovered = kernel.supervisor.recover()
        kernel.triggers.load()
        kernel.delegation_retention.expire(kernel.clock.now(), force=True)
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
    def _start(
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
        confined workers, unless ``pool`` is given)."""
        loop = asyncio.get_running_loop()
        if pool is None:
            make = pool_factory or kernel_pool
            pool = make(config, data_dir, workers=workers, loop=loop)
        return cls(config, data_dir, pool, clock or SystemClock(), machine_clock=machine_clock)

    async def _run(self, started: asyncio.Future[None]) -> None:
        """The kernel's own task: its group owns every task of the kernel until close."""
        async with aio.TaskGroup() as group:
            group.create_task(self.commits.run(), name="qmk-committer")
            billing = self.config.billing
            if billing.webhook_url is not None:
                ledger = self.supervisor.ledger
                outbox = Outbox(billing, self.store, self.commits, self.clock, ledger.wake)
                group.create_task(outbox.run(), name="qmk-billing-outbox")
            self.supervisor.start(group)
            group.create_task(self.triggers.run(), name="qmk-triggers")
            started.set_result(None)

    def _host_done(self, host: asyncio.Task[None]) -> None:
        if self._closing or host.cancelled() or host.exception() is None:
            return
        self._failure = host.exception()
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
        self.supervisor.stop_starting()
        self._flush_auth_failures()
        if self._host is not None:
            self._host.cancel()  # its group cancels every task of the kernel
            await asyncio.wait([self._host])
        await self.supervisor.close()
        self.admission.cpu.close()
        self.assist.close()
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

    def _auth_failed(self, tenant: str) -> None:
        """Audit a failed negotiation: the first of each window of
        :data:`AUTH_AUDIT_WINDOW_S` in full, the rest of the window as one summary line
        (so unauthenticated clients cannot grow the audit log at their request rate)."""
        now = self.clock.now()
        if now >= self._auth_window_end:
            self._flush_auth_failures()
            self._auth_window_end = now + AUTH_AUDIT_WINDOW_S
            self.audit.append("cap", where="negotiate", tenant=tenant, decision="auth")
            self.commits.dirty()
            return
        self._auth_more += 1
        if len(self._auth_tenants) < 8:
            self._auth_tenants.add(tenant)

    def _flush_auth_failures(self) -> None:
        """Write the summary of the failed negotiations counted since the last full line."""
        if self._auth_more:
            self.audit.append(
                "cap",
                where="negotiate",
                decision="auth",
                failures=self._auth_more,
                tenants=sorted(self._auth_tenants),
                window_s=AUTH_AUDIT_WINDOW_S,
            )
            self.commits.dirty()
        self._auth_more = 0
        self._auth_tenants = set()

    def tenant_of(self, session_id: str) -> str:
        """The tenant of a valid session (an in-process call of the HTTP layer, which
        checks the bearer before it reads a request's body).

        Raises:
            SessionError, AuthError: as every syscall's session check.
        """
        return self._session(session_id).tenant

    def line_budget(self, session_id: str) -> tuple[CpuBudget, str] | None:
        """The CPU budget and tenant that a big request line naming ``session_id`` is
        weighed against and its decoding charged to (the JSON-RPC core asks before
        decoding it); None for no live session (the call itself then says why)."""
        try:
            session = self._session(session_id)
        except QMKError:
            return None
        return self.admission.cpu, session.tenant

    def _session(self, session_id: str) -> Session:
        self._check_open()
        session = self.sessions.check(session_id, now=self.clock.now())
        conf = self.config.tenants.get(session.tenant)
        if conf is None:
            raise AuthError("the session's tenant is no longer configured")
        revoked = sorted(set(session.caps) - set(conf.caps) - set(session.delegated))
        if revoked:  # the config took capabilities away since the session was granted
            raise SessionError(
                f"the session holds {', '.join(revoked)}, which tenant {session.tenant!r} no "
                "longer has; open a new session",
                revoked=revoked,
            )
        if session.delegated:  # of those lent, only what a live delegation still lends
            lent = self._lent(session.tenant)
            caps = tuple(c for c in session.caps if c in conf.caps or c in lent)
            if caps != session.caps:
                return dataclasses.replace(session, caps=caps)
        return session

    def _own_caps(self, tenant: str) -> tuple[str, ...] | None:
        """A tenant's configured capabilities (None: no such tenant any more)."""
        conf = self.config.tenants.get(tenant)
        return None if conf is None else conf.caps

    def _lent(self, tenant: str) -> frozenset[str]:
        """The capabilities live delegations lend ``tenant`` now."""
        return self.delegations.lent(tenant, self.clock.now(), own_caps=self._own_caps)

    def _audit_use(self, session: Session, caps: Sequence[str], **where: Any) -> None:
        """An audit line per delegation that lends ``session`` one of ``caps`` it uses
        beyond its own (at a grant, a submit)."""
        conf = self.config.tenants[session.tenant]
        used = [c for c in caps if c in session.delegated and c not in conf.caps]
        if not used:
            return
        lenders = self.delegations.lenders(
            session.tenant, used, self.clock.now(), own_caps=self._own_caps
        )
        by_delegation: dict[str, list[str]] = {}
        for cap, ids in lenders.items():
            for delegation_id in ids:
                by_delegation.setdefault(delegation_id, []).append(cap)
        for delegation_id, lent in by_delegation.items():
            self.audit.append(
                "deleg",
                action="use",
                delegation_id=delegation_id,
                tenant=session.tenant,
                session=session.sid,
                caps=lent,
                **where,
            )
        self.commits.dirty()

    # ------------------------------------------------------------------ syscalls

    async def q_negotiate_caps(
        self, *, tenant: str, key: str, requested: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Open a session: grant ``requested`` ∩ the tenant's allowed capabilities (its own,
        and those a live delegation lends it: ``delegated``)."""
        self._check_open()
        conf = self.config.tenants.get(tenant) if isinstance(tenant, str) else None
        if not await self._key_ok(tenant, conf, key) or conf is None:
            self._auth_failed(str(tenant)[:64])
            raise AuthError("unknown tenant or wrong key")
        self._check_open()
        if not isinstance(requested, list | tuple) or not all(
            isinstance(c, str) for c in requested
        ):
            raise InvalidArgument("requested must be a list of capability names", key="requested")
        lent = self._lent(tenant)
        wanted = list(dict.fromkeys(requested))
        granted = [c for c in wanted if c in conf.caps or c in lent]
        denied = [c for c in wanted if c not in granted]
        delegated = [c for c in granted if c not in conf.caps]
        now = self.clock.now()
        token = self.sessions.issue(tenant, granted, now=now, delegated=delegated)
        session = self.sessions.check(token, now=now)
        self.store.insert_session(session.sid, tenant, granted, session.expires_at)
        self.audit.append(
            "cap",
            where="negotiate",
            tenant=tenant,
            session=session.sid,
            granted=granted,
            denied=denied,
            decision="grant",
            **({"delegated": delegated} if delegated else {}),
        )
        self._audit_use(session, delegated, where="negotiate")
        await self.commits.durable()
        return {
            "session_id": token,
            "tenant": tenant,
            "granted": granted,
            "denied": denied,
            "delegated": delegated,
            "quota": conf.quota(),
            "expires_at": session.expires_at,
        }

    async def _key_ok(self, tenant: object, conf: TenantConfig | None, key: object) -> bool:
        """Whether ``key`` is ``conf``'s tenant's key: a hash is checked by scrypt in a
        thread (once per key: :class:`~qmk.kernel.security.keys.KeyChecker` remembers it); an
        unknown tenant costs what a hashed tenant's wrong key does."""
        stored = None if conf is None else conf.stored_key
        given = key if isinstance(key, str) and len(key) <= MAX_KEY_CHARS else ""
        name = tenant if isinstance(tenant, str) else ""
        if stored is not None and self.keys.remembered(name, stored, given):
            return True
        slow = (stored is None and self._hashed_keys) or (stored is not None and is_hash(stored))
        if slow:
            return await self.keys.check_soon(name, stored, given)  # its own threads
        return hmac.compare_digest(given.encode(), (stored or "x" * 32).encode()) and (
            stored is not None
        )

    def revoke_session(self, session_id: str) -> None:
        """Refuse ``session_id`` from now on (an in-process admin call, not a syscall)."""
        session = self.sessions.check(session_id, now=self.clock.now())
        self.sessions.revoke(session.sid)
        self.store.revoke_session(session.sid)
        self.audit.append("cap", where="revoke", tenant=session.tenant, session=session.sid)
        self.commits.dirty()

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
    ) -> dict[str, Any]:
        """Accept a job: verify, check caps, firewall, admission and quotas; queue it.

        ``target`` names what runs it (:mod:`qmk.execution.target`): the logical machine,
        lattice surgery, or the neutral-atom device (``graph`` its wire-form job; the
        submit's shots and seed replace the job's own). A submit with an
        ``idempotency_key`` the tenant used before returns that job (as it is now) and
        queues nothing: a client may retry a submit whose reply it lost.
        """
        session = self._session(session_id)
        return await self.submit_as(
            session, graph, shots, seed, policy, idempotency_key=idempotency_key, target=target
        )

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
    ) -> dict[str, Any]:
        """:meth:`q_submit` with a checked ``session`` (a trigger's run has one of its
        owner's, :class:`_TriggerHost`)."""
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 128:
                raise InvalidArgument(
                    "idempotency_key must be a string of 1-128 characters or null",
                    key="idempotency_key",
                )
            known = self.store.job_id_for_key(session.tenant, idempotency_key)
            if known is not None:
                return self.supervisor.job(known, session.tenant).to_json()
        self._check_disk()
        self.admission.cpu.check(session.tenant, "a submit")
        # a big QVM graph: read and verified off the loop
        prepared = await self.admission.prepare(session.tenant, graph, target=target)
        self._check_open()
        job = await self.admission.admit(
            session, graph, shots, seed, policy, target=target, prepared=prepared
        )
        self._audit_use(session, job.required_caps, where="submit", job_id=job.job_id)
        accepted = await self.supervisor.accept(job, idempotency_key=idempotency_key)
        if job.warnings:  # the accepted answer says an option changed nothing
            accepted["warnings"] = list(job.warnings)
        return accepted

    def _check_disk(self) -> None:
        """Refuse work while the data directory's disk is below its reserve."""
        reserve = self.config.min_free_disk_mb
        if not reserve:
            return
        try:
            stats = os.statvfs(self.data_dir)
        except OSError:
            return  # not knowable here: the commit itself will say
        free_mb = stats.f_bavail * stats.f_frsize / 2**20
        if free_mb < reserve:
            raise UnavailableError(
                f"the data directory's disk has {free_mb:.0f} MiB free, below the reserve of "
                f"{reserve} MiB (kernel.min_free_disk_mb): nothing was kept; retry later"
            )

    async def q_device_submit(
        self,
        *,
        session_id: str,
        job: Any,
        device: str | None = None,
        shots: int | None = None,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Deprecated for one release: :meth:`q_submit` with ``target="neutral-atom"``,
        which it calls. ``device`` is the policy's ``preset`` (in place of the job's
        ``profile``); ``shots`` and ``seed`` null take the job's own (one shot when it
        gives none; a seed drawn when it gives none)."""
        wire = job if isinstance(job, Mapping) else {}
        if shots is None:
            shots = wire.get("shots", 1)
        if seed is None:
            seed = wire.get("seed")
        if device is not None:
            if policy is not None and not isinstance(policy, Mapping):
                raise InvalidArgument("policy must be an object or null", key="policy")
            policy = {**(policy or {}), "preset": device}
        return await self.q_submit(
            session_id=session_id,
            graph=job,
            shots=shots,
            seed=seed,
            policy=policy,
            target="neutral-atom",
        )

    async def q_status(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """The job, with its result once COMPLETED."""
        session = self._session(session_id)
        return self.supervisor.job(job_id, session.tenant).to_json()

    async def q_wait(
        self, *, session_id: str, job_id: str, timeout_ms: int = defaults.WAIT_TIMEOUT_MS
    ) -> dict[str, Any]:
        """Wait until the job is final or ``timeout_ms`` passes; return it either way."""
        session = self._session(session_id)
        if (
            isinstance(timeout_ms, bool)
            or not isinstance(timeout_ms, int)
            or not 0 <= timeout_ms <= defaults.MAX_TIMEOUT_MS
        ):
            shown = repr(timeout_ms)
            if len(shown) > 40:  # a huge integer (or a long value): its size, not its digits
                shown = f"{shown[:40]}... ({len(shown)} characters)"
            raise InvalidArgument(
                f"timeout_ms must be an integer 0..{defaults.MAX_TIMEOUT_MS}, got {shown}"
            )
        job = self.supervisor.job(job_id, session.tenant)
        return await self.supervisor.wait(job, timeout_ms / 1000)

    async def q_get_result(
        self,
        *,
        session_id: str,
        job_id: str,
        cursor: str | None = None,
        limit: int = defaults.RESULT_PAGE_ENTRIES,
    ) -> dict[str, Any]:
        """A page of a COMPLETED job's counts (:meth:`~qmk.kernel.storage.results.Results.page`)."""
        session = self._session(session_id)
        job = self.supervisor.job(job_id, session.tenant)
        return self.supervisor.results.page(job, cursor, limit)

    async def q_device_artifacts(
        self,
        *,
        session_id: str,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """A device job's artifacts (:mod:`~qmk.kernel.storage.artifacts`): the list, or with
        ``name`` a page of that artifact's records."""
        session = self._session(session_id)
        job = self.supervisor.job(job_id, session.tenant)
        store = self.supervisor.artifacts
        if name is None:
            return {"state": job.state, **store.listing(job.job_id)}
        if not isinstance(name, str):
            raise InvalidArgument(f"name must be a string or null, got {name!r}", key="name")
        return {"state": job.state, **store.read(job.job_id, name, offset, limit)}

    async def q_cancel(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """Cancel a job: dequeue it, or kill its worker. A final job is a StateError."""
        session = self._session(session_id)
        return await self.supervisor.cancel(self.supervisor.job(job_id, session.tenant))

    async def q_checkpoint(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """Record a checkpoint of the job at the current epoch (see docs/kernel.md)."""
        session = self._session(session_id)
        return await self.supervisor.checkpoint(self.supervisor.job(job_id, session.tenant))

    async def q_restore(
        self, *, session_id: str, job_id: str, checkpoint_id: str | None = None
    ) -> dict[str, Any]:
        """Re-queue the job from a checkpoint (the latest when ``checkpoint_id`` is null)."""
        session = self._session(session_id)
        self.admission.cpu.check(session.tenant, "a restore")
        job = self.supervisor.job(job_id, session.tenant)
        if checkpoint_id is not None and not isinstance(checkpoint_id, str):
            raise InvalidArgument("checkpoint_id must be a string or null")
        await self.admission.readmit(session, job)  # the same checks as a submit's
        return await self.supervisor.restore(job, checkpoint_id)

    async def q_replay(self, *, session_id: str, job_id: str) -> dict[str, Any]:
        """A new job with the same graph, shots, seed and policy (so the same counts), run
        again: a replay checks that the run reproduces, so the result cache never answers
        it (``cache: false``)."""
        session = self._session(session_id)
        self.admission.cpu.check(session.tenant, "a replay")
        old = self.supervisor.job(job_id, session.tenant)
        request = old.request
        policy = {**old.policy.to_json(), **request.target_options, "cache": False}
        prepared = await self.admission.prepare_stored(
            session.tenant, old.graph, target=request.target
        )
        self._check_open()
        job = await self.admission.admit(
            session,
            None if prepared is not None else json.loads(old.graph),
            old.shots,
            old.seed,
            policy,
            target=request.target,
            prepared=prepared,
        )
        if request.machine is not None:  # the same waits on the shared machine, too
            job.request = msgspec.structs.replace(job.request, machine=request.machine)
        return await self.supervisor.accept(job)

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
        self.commits.dirty()
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
            channel = self.channels.propose(
                session.tenant, peer, fidelity, conf.max_channels, now=self.clock.now()
            )
        else:
            channel = self.channels.accept(
                session.tenant, peer, channel_id, fidelity, conf.max_channels
            )
        self.store.save_channel(channel.to_row())
        self.audit.append(
            "chan", channel_id=channel.channel_id, tenant=session.tenant, state=channel.state
        )
        await self.commits.durable()
        return channel.to_json()

    async def q_close_chan(self, *, session_id: str, channel_id: str) -> dict[str, Any]:
        """Close a channel (either end)."""
        session = self._session(session_id)
        channel = self.channels.close(session.tenant, channel_id)
        self.store.save_channel(channel.to_row())
        self.audit.append("chan", channel_id=channel_id, tenant=session.tenant, state="CLOSED")
        self.supervisor.channel_closed(channel_id)  # running jobs bound to it stop
        await self.commits.durable()
        return channel.to_json()

    async def q_chan_status(self, *, session_id: str, channel_id: str) -> dict[str, Any]:
        """A channel of this tenant."""
        session = self._session(session_id)
        return self.channels.get(channel_id, session.tenant).to_json()

    async def q_list_channels(self, *, session_id: str, state: str | None = None) -> dict[str, Any]:
        """This tenant's channels (either end), newest first."""
        session = self._session(session_id)
        if state is not None and state not in CHANNEL_STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(CHANNEL_STATES)} or null, got {state!r}",
                key="state",
            )
        return {"channels": [c.to_json() for c in self.channels.of(session.tenant, state)]}

    async def q_get_telemetry(
        self, *, session_id: str, job_id: str | None = None
    ) -> dict[str, Any]:
        """A job's telemetry, or (``job_id`` null) the tenant's aggregate."""
        session = self._session(session_id)
        supervisor = self.supervisor
        if job_id is not None:
            job = supervisor.job(job_id, session.tenant)
            reply = supervisor.telemetry(job)
            starts = supervisor.faults.of(job)
            reply["device"] = {"starts": starts}
            reply["faults"] = [action for start in starts for action in start.get("faults", ())]
            reply["earlier_outcomes"] = self.store.earlier_outcomes(job.job_id)
            return reply
        stats = self.store.tenant_stats(session.tenant)
        stats.update(
            tenant=session.tenant,
            running=supervisor.running_jobs[session.tenant],
            queued=supervisor.queue.count(session.tenant),
            logical_qubits_in_use=supervisor.logical_in_use[session.tenant],
            epoch=supervisor.epoch,
            device=self.device.health(
                supervisor.epoch, decoder_load=supervisor.placement.decoder_load
            ).to_json(),
            faults=list(supervisor.faults.log),
        )
        return stats

    async def q_machine_status(self, *, session_id: str) -> dict[str, Any]:
        """The shared machine now, as the session's tenant sees it
        (:meth:`~qmk.kernel.running.shared_machine.SharedMachine.status`)."""
        session = self._session(session_id)
        operator = self.config.tenants[session.tenant].operator
        return self.supervisor.machine.status(session.tenant, operator=operator)

    async def q_resource_query(self, *, session_id: str) -> dict[str, Any]:
        """The machine's inventory and this tenant's quota and usage."""
        from qmk.qec.logical import logical_model

        session = self._session(session_id)
        machine = self.config.machine
        conf = self.config.tenants[session.tenant]
        model = logical_model(machine.profile, machine.qubit)
        supervisor = self.supervisor
        total = self.device.inventory().physical_qubits_up  # modules that are up
        return {
            "machine": {
                "physical_qubits_total": total,
                "physical_qubits_in_use": supervisor.physical_in_use,
                "physical_qubits_free": total - supervisor.physical_in_use,
                "profile": machine.profile,
                "qubit": machine.qubit,
                "logical_model": model.to_json(),
                "workers": supervisor.workers,
                # what the workers closed around them (qmk.kernel.pools.sandbox); None: unknown
                "worker_isolation": getattr(self.pool, "confinement", None),
                "epoch": supervisor.epoch,
                "epoch_ms": self.config.epoch_ms,
            },
            "tenant": session.tenant,
            "quota": conf.quota(),
            "usage": {
                "logical_qubits": supervisor.logical_in_use[session.tenant],
                "running_jobs": supervisor.running_jobs[session.tenant],
                "queued_jobs": supervisor.queue.count(session.tenant),
                "channels": self.channels.count(session.tenant),
            },
            "device": self.device.to_json(
                supervisor.epoch, decoder_load=supervisor.placement.decoder_load
            ),
        }

    async def q_calibrate(
        self,
        *,
        session_id: str,
        calibration: Mapping[str, Any] | None = None,
        qubit: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Ingest a calibration and/or custom qubit parameters for every job started from
        now on (tenants with ``operator = true`` only); the device as it is then."""
        from qmk.qec.logical import Calibration
        from qmk.qec.params import QubitParams

        session = self._session(session_id)
        allowed = self.config.tenants[session.tenant].operator
        self.audit.append(
            "cap",
            where="calibrate",
            tenant=session.tenant,
            session=session.sid,
            decision="allow" if allowed else "deny",
        )
        if not allowed:
            self.commits.dirty()
            raise CapabilityError(
                f"q_calibrate is for operators; tenant {session.tenant!r} is not one "
                "(operator = true in its [tenants] table)",
                missing=["operator"],
            )
        if calibration is None and qubit is None:
            raise InvalidArgument("q_calibrate needs calibration or qubit (or both)")
        try:
            fitted = None if calibration is None else Calibration.from_json(calibration)
            params = None if qubit is None else QubitParams.from_json(qubit)
            self.device.calibrate(calibration=fitted, qubit=params)
        except QMKError as exc:
            raise InvalidArgument(f"q_calibrate: {exc}", code=exc.code) from None
        self.audit.append(
            "device",
            action="calibrate",
            tenant=session.tenant,
            epoch=self.supervisor.epoch,
            calibration=None if fitted is None else fitted.to_json(),
            qubit=None if params is None else params.to_json(),
        )
        await self.commits.durable()
        return self.device.to_json(
            self.supervisor.epoch, decoder_load=self.supervisor.placement.decoder_load
        )

    async def q_delegate_caps(
        self, *, session_id: str, to_tenant: str, caps: Sequence[str], expires_s: float
    ) -> dict[str, Any]:
        """Lend ``caps`` (the session's, of its tenant's own config) to ``to_tenant`` for
        ``expires_s`` seconds: its negotiations may grant them while the loan is live."""
        session = self._session(session_id)
        now = self.clock.now()
        if not isinstance(to_tenant, str) or to_tenant not in self.config.tenants:
            raise NotFoundError(f"no tenant {str(to_tenant)[:64]!r}", tenant=str(to_tenant)[:64])
        if to_tenant == session.tenant:
            raise InvalidArgument("a tenant cannot delegate to itself", key="to_tenant")
        if (
            not isinstance(caps, list | tuple)
            or not caps
            or not all(isinstance(c, str) for c in caps)
            or len(caps) > 64
        ):
            raise InvalidArgument("caps must be a non-empty list of capability names", key="caps")
        limit = self.config.max_delegation_s
        if (
            isinstance(expires_s, bool)
            or not isinstance(expires_s, int | float)
            or not 0 < expires_s <= limit
        ):
            raise InvalidArgument(
                f"expires_s must be a number of seconds in (0, {limit:g}] "
                f"([kernel] max_delegation_s), got {str(expires_s)[:40]}",
                key="expires_s",
            )
        wanted = list(dict.fromkeys(caps))
        own = self.config.tenants[session.tenant].caps
        missing = [c for c in wanted if c not in session.caps or c not in own]
        self.audit.append(
            "cap",
            where="delegate",
            tenant=session.tenant,
            session=session.sid,
            required=wanted,
            decision="deny" if missing else "allow",
            **({"missing": missing} if missing else {}),
        )
        if missing:
            self.commits.dirty()
            lent = [c for c in missing if c in session.caps]
            why = (
                f"{', '.join(lent)} {'is' if len(lent) == 1 else 'are'} lent to this tenant, "
                "not its own, and cannot be lent on"
                if lent
                else f"this session does not hold {', '.join(missing)}"
            )
            raise CapabilityError(f"cannot delegate: {why}", missing=missing)
        if self.delegations.live_from(session.tenant, now) >= defaults.MAX_LIVE_DELEGATIONS:
            raise QuotaError(
                f"tenant {session.tenant!r} has {defaults.MAX_LIVE_DELEGATIONS} live delegations "
                "already; revoke one first",
                limit="live_delegations",
                value=defaults.MAX_LIVE_DELEGATIONS,
            )
        delegation = Delegation(
            delegation_id=J.new_id("dlg"),
            from_tenant=session.tenant,
            to_tenant=to_tenant,
            caps=tuple(wanted),
            created_at=now,
            expires_at=now + float(expires_s),
            session=session.sid,
        )
        self.delegations.add(delegation)
        self.store.save_delegation(delegation.to_row())
        self.audit.append(
            "deleg",
            action="delegate",
            delegation_id=delegation.delegation_id,
            tenant=session.tenant,
            session=session.sid,
            to_tenant=to_tenant,
            caps=wanted,
            expires_at=delegation.expires_at,
        )
        await self.commits.durable()
        return delegation.to_json(now)

    def _delegation(self, delegation_id: object, tenant: str) -> Delegation:
        """A delegation ``tenant`` made or received, live or ended (else not found)."""
        if not isinstance(delegation_id, str) or len(delegation_id) > 128:
            raise not_found(delegation_id)
        held = self.delegations.get(delegation_id)
        if held is None:
            row = self.store.load_delegation(delegation_id)
            held = None if row is None else Delegation.from_row(row)
        if held is None or not held.involves(tenant):
            raise not_found(delegation_id)
        return held

    async def q_revoke_delegation(self, *, session_id: str, delegation_id: str) -> dict[str, Any]:
        """End a delegation now (either end may); one that ended already is returned as
        it is."""
        session = self._session(session_id)
        now = self.clock.now()
        delegation = self._delegation(delegation_id, session.tenant)
        if delegation.state(now) != "LIVE":
            return delegation.to_json(now)
        ended = delegation.revoked(now, by=session.tenant)
        self.delegations.drop(delegation.delegation_id)
        self.store.save_delegation(ended.to_row())
        self.audit.append(
            "deleg",
            action="revoke",
            delegation_id=delegation.delegation_id,
            tenant=session.tenant,
            session=session.sid,
            from_tenant=delegation.from_tenant,
            to_tenant=delegation.to_tenant,
            caps=list(delegation.caps),
        )
        await self.commits.durable()
        return ended.to_json(now)

    async def q_list_delegations(
        self, *, session_id: str, state: str | None = None, limit: int = defaults.JOBS_LIMIT
    ) -> dict[str, Any]:
        """The delegations this tenant made or received, newest first."""
        session = self._session(session_id)
        if state is not None and state not in DELEGATION_STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(DELEGATION_STATES)} or null, got "
                f"{str(state)[:40]!r}",
                key="state",
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        now = self.clock.now()
        found = []
        # ended ones are filtered after the query, so a state filter reads a wider window
        rows = self.store.list_delegations(session.tenant, limit if state is None else 10_000)
        for row in rows:
            delegation = Delegation.from_row(row)
            if state is None or delegation.state(now) == state:
                found.append(delegation.to_json(now))
            if len(found) == limit:
                break
        return {"delegations": found}

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

    async def q_assist(
        self,
        *,
        session_id: str,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask the assistant ([assist]); its steps are audit lines of event ``assist``,
        its tools' work is the session's (``run``: a job of this session)."""
        from qmk.qvm.limits import Limits

        session = self._session(session_id)
        limits = Limits(max_nodes=self.config.max_graph_nodes)

        async def direct(name: str, params: dict[str, Any]) -> Any:
            return await getattr(self, name)(**params)

        return await self.assist.ask(
            session.tenant, prompt, program, assist_id, limits, session_id=session_id, direct=direct
        )

    async def q_usage(
        self,
        *,
        session_id: str,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = defaults.JOBS_LIMIT,
    ) -> dict[str, Any]:
        """The tenant's usage records of jobs that ended in [since, until) (``job_id``:
        of that job only), newest first, their totals and the invoice of the totals at
        the price table's prices."""
        session = self._session(session_id)
        if job_id is not None:  # another tenant's job is not found, as everywhere
            self.supervisor.job(job_id, session.tenant)
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise InvalidArgument(
                    f"{name} must be a time in seconds since the epoch or null", key=name
                )
        if since is not None and until is not None and until < since:
            raise InvalidArgument(f"until ({until}) is before since ({since})", key="until")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        count, totals = self.store.usage_totals(session.tenant, since, until, job_id)
        rows = self.store.usage_rows(session.tenant, since, until, job_id, limit)
        return {
            "tenant": session.tenant,
            "since": since,
            "until": until,
            "job_id": job_id,
            "count": count,
            "records": [usage_record(row) for row in rows],
            "totals": totals.to_json(),
            "invoice": invoice(totals, self.config.billing),
        }

    # ------------------------------------------------------------------ triggers

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
    ) -> dict[str, Any]:
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
    ) -> dict[str, Any]:
        """This tenant's triggers (or one), each with its next and last run and its newest
        ``runs`` runs."""
        session = self._session(session_id)
        return self.triggers.listed(session.tenant, trigger_id, runs)

    async def q_delete_trigger(self, *, session_id: str, trigger_id: str) -> dict[str, Any]:
        """Delete a trigger (its run going on ends; its jobs run on)."""
        session = self._session(session_id)
        return await self.triggers.delete(session, trigger_id)


class _TriggerHost:
    """What a trigger's run needs of the kernel (:class:`qmk.kernel.running.triggers.Host`)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def session_for(self, tenant: str, caps: Sequence[str], label: str) -> Session:
        """A session of ``tenant`` with those of ``caps`` its config grants now."""
        conf = self.kernel.config.tenants.get(tenant)
        if conf is None:
            raise AuthError(f"the trigger's tenant {tenant!r} is no longer configured")
        return Session(
            session_id="",
            sid=f"trigger-{label}",
            tenant=tenant,
            caps=tuple(c for c in caps if c in conf.caps),
            expires_at=math.inf,
        )

    async def submit(
        self,
        session: Session,
        graph: Mapping[str, Any],
        shots: int,
        seed: int | None,
        policy: Mapping[str, Any],
    ) -> dict[str, Any]:
        self.kernel._check_open()
        return await self.kernel.submit_as(session, dict(graph), shots, seed, dict(policy))

    async def wait(self, job_id: str, tenant: str, timeout_s: float) -> dict[str, Any]:
        supervisor = self.kernel.supervisor
        return await supervisor.wait(supervisor.job(job_id, tenant), timeout_s)

    async def lower(self, tenant: str, work: Callable[[], T]) -> T:
        return await self.kernel.admission.cpu.run(tenant, work)


#: The longest key a negotiation checks (a longer one is wrong without a hash's work).
MAX_KEY_CHARS = 4096

#: The syscalls, by wire name.
SYSCALLS: tuple[str, ...] = (
    "q_negotiate_caps",
    "q_submit",
    "q_device_submit",
    "q_status",
    "q_wait",
    "q_get_result",
    "q_cancel",
    "q_checkpoint",
    "q_restore",
    "q_replay",
    "q_open_chan",
    "q_close_chan",
    "q_chan_status",
    "q_list_channels",
    "q_get_telemetry",
    "q_resource_query",
    "q_machine_status",
    "q_calibrate",
    "q_delegate_caps",
    "q_revoke_delegation",
    "q_list_delegations",
    "q_list_jobs",
    "q_assist",
    "q_usage",
    "q_create_trigger",
    "q_list_triggers",
    "q_delete_trigger",
    "q_device_artifacts",
)

__all__ = ["SYSCALLS", "Kernel"]
