"""The machine and its use as the syscalls see them: a job's or a tenant's telemetry, the
shared machine's status, the inventory with the tenant's quota and usage, a calibration
ingested, and the usage records with their invoice (``q_get_telemetry``,
``q_machine_status``, ``q_resource_query``, ``q_calibrate``, ``q_usage``).

The machine's speedup over ``exclusive`` runs the latest arrivals again under two
policies: it is computed in a thread, off the event loop, at most once every
``SPEEDUP_WINDOW_S`` of the kernel's clock, and every ask of a window shares it. So does
the whole answer of an ask with the speedup: each view of the machine (a tenant's, or an
operator's) is made once a window, and every ask of that view in the window gets it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import msgspec

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import CapabilityError, InvalidArgument, QMKError
from qmk.kernel.admit.channels import ChannelTable
from qmk.kernel.config import KernelConfig
from qmk.kernel.device import LogicalMachine
from qmk.kernel.running.supervisor import Supervisor
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.store import Store
from qmk.kernel.storage.usage_rows import UsageRows, invoice, usage_record

#: The largest magnitude of a usage window's bound: every integer to it is exact as a
#: float, and the store's integer columns hold it.
_TIME_BOUND = 2**53


class MachineDesk:
    """The machine's and usage's syscalls' work, each for a checked session (see the
    module docstring).

    Args:
        config: the kernel configuration (machine, tenants, epoch, billing).
        device: the machine (the device interface): its inventory, health, calibration.
        supervisor: the jobs, the resources they hold, the epoch, the shared machine.
        channels: the channel table (each tenant's count).
        pool: the worker pool (what its workers closed around them, if it says).
        store, audit, commits: the kernel's.
    """

    def __init__(
        self,
        config: KernelConfig,
        device: LogicalMachine,
        supervisor: Supervisor,
        channels: ChannelTable,
        pool: Any,
        *,
        store: Store,
        audit: AuditLog,
        commits: GroupCommit,
    ) -> None:
        self.config = config
        self.device = device
        self.supervisor = supervisor
        self.channels = channels
        self.pool = pool
        self.store = store
        self.audit = audit
        self.commits = commits
        #: the speedup computed last, when (the kernel's clock), and one under way
        self._speedup: tuple[float, float | None] | None = None
        self._speedup_running: asyncio.Future[float | None] | None = None
        #: the answers with the speedup by view (tenant, operator), and when their
        #: window ends (the kernel's clock)
        self._answers: dict[tuple[str, bool], replies.Machine] = {}
        self._answers_until = -math.inf

    def telemetry(self, session: Session, job_id: str | None) -> replies.Telemetry:
        """``q_get_telemetry``: a job's telemetry, or (``job_id`` null) the tenant's
        aggregate."""
        supervisor = self.supervisor
        if job_id is not None:
            job = supervisor.job(job_id, session.tenant)
            starts = supervisor.faults.of(job)
            return msgspec.structs.replace(
                supervisor.telemetry(job),
                device={"starts": starts},
                faults=[action for start in starts for action in start.get("faults", ())],
                earlier_outcomes=self.store.earlier_outcomes(job.job_id),
            )
        return replies.Telemetry(
            **self.store.tenant_stats(session.tenant),
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

    async def machine_status(self, session: Session, *, speedup: bool = False) -> replies.Machine:
        """``q_machine_status``: the shared machine now, as the session's tenant sees it
        (:meth:`~qmk.kernel.running.shared_machine.SharedMachine.status`; a key it adds
        is a field of :class:`~qmk.abi.replies.Machine` to add); ``speedup``: with the
        speedup of this window (:meth:`speedup`), and the rest as this window's first
        ask of the same view found it (module docstring)."""
        operator = self.config.tenants[session.tenant].operator
        if not speedup:
            return self._status(session.tenant, operator, None)
        figure = await self.speedup()
        now = self.supervisor.clock.now()
        if now >= self._answers_until:
            self._answers = {}
            self._answers_until = now + defaults.SPEEDUP_WINDOW_S
        view = (session.tenant, operator)
        answer = self._answers.get(view)
        if answer is None:
            answer = self._answers[view] = self._status(session.tenant, operator, figure)
        return answer

    def _status(self, tenant: str, operator: bool, figure: float | None) -> replies.Machine:
        status = self.supervisor.machine.status(tenant, operator=operator)
        status["speedup_vs_exclusive"] = figure
        return replies.Machine(**status)

    async def speedup(self) -> float | None:
        """The machine's speedup over ``exclusive`` (module docstring): known since the
        last arrival, or computed this window, or computed now in a thread, which every
        ask until it ends awaits."""
        running = self._speedup_running
        if running is not None:
            return await asyncio.shield(running)
        live = self.supervisor.machine.live
        known, figure = live.speedup_known()
        if known:
            return figure
        now = self.supervisor.clock.now()
        last = self._speedup
        if last is not None and now < last[0] + defaults.SPEEDUP_WINDOW_S:
            return last[1]
        running = asyncio.get_running_loop().run_in_executor(None, live.speedup_work())
        self._speedup_running = running
        running.add_done_callback(lambda done: self._speedup_done(now, done))
        return await asyncio.shield(running)

    def _speedup_done(self, at: float, done: asyncio.Future[float | None]) -> None:
        self._speedup_running = None
        if not done.cancelled() and done.exception() is None:
            self._speedup = (at, done.result())

    def resources(self, session: Session) -> replies.Resources:
        """``q_resource_query``: the machine's inventory and this tenant's quota and usage."""
        from qmk.qec.logical import logical_model

        machine = self.config.machine
        conf = self.config.tenants[session.tenant]
        model = logical_model(machine.profile, machine.qubit)
        supervisor = self.supervisor
        total = self.device.inventory().physical_qubits_up  # modules that are up
        return replies.Resources(
            machine={
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
            tenant=session.tenant,
            quota=conf.quota(),
            usage={
                "logical_qubits": supervisor.logical_in_use[session.tenant],
                "running_jobs": supervisor.running_jobs[session.tenant],
                "queued_jobs": supervisor.queue.count(session.tenant),
                "channels": self.channels.count(session.tenant),
            },
            device=self.device.to_json(
                supervisor.epoch, decoder_load=supervisor.placement.decoder_load
            ),
        )

    async def calibrate(
        self,
        session: Session,
        calibration: Mapping[str, Any] | None,
        qubit: Mapping[str, Any] | None,
    ) -> replies.Device:
        """``q_calibrate``: a calibration and/or custom qubit parameters for every job
        started from now on (tenants with ``operator = true`` only); the device then."""
        from qmk.qec.values import Calibration, QubitParams

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
            raise InvalidArgument(f"q_calibrate: {exc.message}", code=exc.code) from None
        self.audit.append(
            "device",
            action="calibrate",
            tenant=session.tenant,
            epoch=self.supervisor.epoch,
            calibration=None if fitted is None else fitted.to_json(),
            qubit=None if params is None else params.to_json(),
        )
        await self.commits.durable()
        return replies.Device(
            **self.device.to_json(
                self.supervisor.epoch, decoder_load=self.supervisor.placement.decoder_load
            )
        )

    def usage(
        self,
        session: Session,
        since: float | None,
        until: float | None,
        job_id: str | None,
        limit: int,
    ) -> replies.Usage:
        """``q_usage``: the tenant's usage records of jobs that ended in [since, until)
        (``job_id``: of that job only), newest first, their totals and the invoice of the
        totals at the price table's prices."""
        if job_id is not None:  # another tenant's job is not found, as everywhere
            self.supervisor.job(job_id, session.tenant)
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not -_TIME_BOUND <= value <= _TIME_BOUND
            ):
                raise InvalidArgument(
                    f"{name} must be a time in seconds since the epoch (within "
                    f"+-2^53) or null, got {value!r:.40}",
                    key=name,
                )
        if since is not None and until is not None and until < since:
            raise InvalidArgument(f"until ({until}) is before since ({since})", key="until")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be an integer 1..10000, got {limit!r}", key="limit")
        usage = UsageRows(self.store)
        count, totals = usage.totals(session.tenant, since, until, job_id)
        rows = usage.rows(session.tenant, since, until, job_id, limit)
        return replies.Usage(
            tenant=session.tenant,
            since=since,
            until=until,
            job_id=job_id,
            count=count,
            records=[usage_record(row) for row in rows],
            totals=totals.to_json(),
            invoice=invoice(totals, self.config.billing),
        )


__all__ = ["MachineDesk"]
