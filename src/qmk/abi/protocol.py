"""The qSyscall methods as a Protocol: what a kernel serving them provides.

GENERATED from :data:`qmk.abi.methods.METHODS` by ``python -m qmk.abi.codegen --write``
(:mod:`qmk.abi.codegen`): do not edit; change the table and regenerate.

The server calls every method with every param by keyword, defaults filled in
from the table. :class:`qmk.kernel.service.Kernel` satisfies the Protocol, which
mypy checks in :mod:`qmk.kernel._contract`: a param, type or default that drifts
from the table fails ``make lint`` (default values are compared by
``tests/abi/test_codegen.py``: mypy checks that a default exists, not its value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from qmk.abi import replies


class KernelSyscalls(Protocol):
    """Every qSyscall method as the coroutine a kernel provides for it."""

    async def q_negotiate_caps(
        self,
        *,
        tenant: str,
        key: str,
        requested: Sequence[str] = (),
    ) -> replies.Session:
        """Open a session: authenticate the tenant and grant requested ∩ allowed caps (its own, and
        those a live delegation lends it: delegated).

        Returns: Session {session_id, tenant, granted, denied, delegated, quota, expires_at}.

        Args:
            tenant: string; the tenant's name in the kernel config
            key: string; the tenant's shared secret
            requested: array of string; capabilities wanted, e.g. CAP_ALLOC (default [])
        """

    async def q_submit(
        self,
        *,
        session_id: str,
        graph: Mapping[str, Any],
        shots: int = 1024,
        seed: int | None = None,
        policy: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        target: str = "logical",
        wait_ms: int | None = None,
        traceparent: str | None = None,
    ) -> replies.Job:
        """Verify, admit and queue a program on a target; refusals come back at once; with wait_ms,
        the job once final (or as it is when wait_ms passes), as q_wait answers it: one request for
        a small job.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            graph: object; the program: QVM JSON, or for target neutral-atom a device job in the
                wire form (docs/neutral-atom.md), for target stim a stim circuit as {"stim": TEXT}
                (docs/frontends.md)
            shots: integer; shots to run (default 1024)
            seed: integer | null; seed; null: the kernel draws one (default null)
            policy: object | null; priority, deadline, timeout_ms, engine, noise, qubit, profile,
                precision, noise_model, calibration, cache, channels, error_budget; and the target's
                options: block (lattice-surgery), preset, backend, strict_timing, stream, routing,
                configuration (neutral-atom), detectors, decode, decoder (stim) (default null)
            idempotency_key: string | null; 1-128 characters: a submit again with the same key
                returns the same job (default null)
            target: string; what runs it: logical (the gate-level machine), lattice-surgery,
                neutral-atom (a program, or a device job's wire form as its graph) or stim
                (docs/kernel.md) (default "logical")
            wait_ms: integer | null; wait up to this many ms for the job to be final and answer it
                as q_wait does (0..31536000000); null: answer once queued (default null)
            traceparent: string | null; the W3C traceparent of the caller's span: the job's worker
                records its spans (qmk.worker and below) and the kernel gives them in the tenant's
                feed (q_events, event spans) before the job's final state; null: untraced (default
                null)
        """

    async def q_status(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job:
        """A job's state, and its result once COMPLETED.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
        """

    async def q_wait(
        self,
        *,
        session_id: str,
        job_id: str,
        timeout_ms: int = 30000,
    ) -> replies.Job:
        """Wait until the job is final or timeout_ms passes; returns it either way.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
            timeout_ms: integer; longest wait in ms (default 30000)
        """

    async def q_get_result(
        self,
        *,
        session_id: str,
        job_id: str,
        cursor: str | None = None,
        limit: int = 10000,
    ) -> replies.ResultPage:
        """A COMPLETED job's counts in pages, in stored order, with the rest of its result.

        Returns: ResultPage {job_id, state, entries, cursor, next_cursor, counts, summary}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
            cursor: string | null; next_cursor of the page before; null: the first page (default
                null)
            limit: integer; counts entries in the page (1..100000) (default 10000)
        """

    async def q_cancel(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job:
        """Cancel a queued or running job (its worker is killed).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
        """

    async def q_checkpoint(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Checkpoint:
        """Checkpoint a job at its next fence.

        Returns: Checkpoint {checkpoint_id, job_id, epoch, program_epoch, state, created_at, saved}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
        """

    async def q_restore(
        self,
        *,
        session_id: str,
        job_id: str,
        checkpoint_id: str | None = None,
    ) -> replies.Job:
        """Re-queue a job from a checkpoint (null: its latest).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
            checkpoint_id: string | null; the checkpoint; null: latest (default null)
        """

    async def q_replay(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job:
        """Submit a new job with the same graph, shots, seed and policy.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
        """

    async def q_open_chan(
        self,
        *,
        session_id: str,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
    ) -> replies.Channel:
        """Propose a channel to a peer tenant, or accept the peer's proposal.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            session_id: string; the session from q_negotiate_caps
            peer: string; the other tenant
            channel_id: string | null; null: propose; the peer's channel id: accept (default null)
            fidelity: number; Bell-pair fidelity (default 1.0)
        """

    async def q_close_chan(
        self,
        *,
        session_id: str,
        channel_id: str,
    ) -> replies.Channel:
        """Close a channel.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            session_id: string; the session from q_negotiate_caps
            channel_id: string; a channel this tenant is part of
        """

    async def q_chan_status(
        self,
        *,
        session_id: str,
        channel_id: str,
    ) -> replies.Channel:
        """A channel's state.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            session_id: string; the session from q_negotiate_caps
            channel_id: string; a channel this tenant is part of
        """

    async def q_list_channels(
        self,
        *,
        session_id: str,
        state: str | None = None,
    ) -> replies.ChannelList:
        """This tenant's channels (proposed, accepted, or proposed to it), newest first.

        Returns: ChannelList {channels}.

        Args:
            session_id: string; the session from q_negotiate_caps
            state: string | null; only channels in this state (default null)
        """

    async def q_get_telemetry(
        self,
        *,
        session_id: str,
        job_id: str | None = None,
    ) -> replies.Telemetry:
        """A job's telemetry, or with null the tenant's aggregate.

        Returns: Telemetry {job_id?, state?, attempts?, preemptions?, physical_qubits?,
            logical_qubits?, queued_s?, run_s?, telemetry?, teleportation?, earlier_outcomes?,
            machine?, tenant?, jobs?, jobs_by_state?, shots_submitted?, shots_completed?,
            logical_cycles?, injected_logical_errors?, running?, queued?, logical_qubits_in_use?,
            epoch?, device?, faults?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string | null; a job; null: the whole tenant (default null)
        """

    async def q_resource_query(
        self,
        *,
        session_id: str,
    ) -> replies.Resources:
        """The machine's qubit inventory and the tenant's quota and usage.

        Returns: Resources {machine, tenant, quota, usage, device}.

        Args:
            session_id: string; the session from q_negotiate_caps
        """

    async def q_machine_status(
        self,
        *,
        session_id: str,
        speedup: bool = False,
    ) -> replies.Machine:
        """The shared machine now (docs/machine.md): its floorplan with every tenant's jobs in
        place, and how busy its tiles, factories and links were, so far and over time. It gives
        tenants' shares, Jain's index, throughput, slowdowns and the idle logical error jobs were
        given; asked, the speedup over exclusive. The caller's jobs show by id; another tenant's by
        a label, not its name, unless the caller is an operator.

        Returns: Machine {policy, clock_cycle, now_cycle, epoch_cycles, jobs, utilization,
            utilization_over_time, tenant_shares, jain_fairness, throughput_jobs_per_s,
            mean_slowdown, p95_slowdown, mean_idle_logical_error, max_idle_logical_error,
            over_budget, speedup_vs_exclusive, floorplan, machine}.

        Args:
            session_id: string; the session from q_negotiate_caps
            speedup: boolean; also compute the speedup over exclusive: the latest arrivals run again
                under exclusive and the policy (costs a simulation) (default false)
        """

    async def q_calibrate(
        self,
        *,
        session_id: str,
        calibration: Mapping[str, Any] | None = None,
        qubit: Mapping[str, Any] | None = None,
    ) -> replies.Device:
        """Ingest a calibration or custom qubit parameters into the machine (operators).

        Returns: Device {kind, inventory, capabilities, health, faults, noise_model,
            calibrations_ingested, logical_model}.

        Args:
            session_id: string; the session from q_negotiate_caps
            calibration: object | null; a fit from qmk qec calibrate --output (default null)
            qubit: object | null; qubit parameters (QRE's JSON form) (default null)
        """

    async def q_delegate_caps(
        self,
        *,
        session_id: str,
        to_tenant: str,
        caps: Sequence[str],
        expires_s: float,
    ) -> replies.Delegation:
        """Lend capabilities this session holds from the tenant's own config to another tenant,
        until expires_s pass or it is revoked; the recipient's q_negotiate_caps may then grant them
        (its quotas stay its own).

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            session_id: string; the session from q_negotiate_caps
            to_tenant: string; the tenant that may be granted them
            caps: array of string; capabilities to lend, e.g. CAP_MAGIC
            expires_s: number; seconds it lasts (> 0, at most [kernel] max_delegation_s)
        """

    async def q_revoke_delegation(
        self,
        *,
        session_id: str,
        delegation_id: str,
    ) -> replies.Delegation:
        """End a delegation at once (either tenant may), for sessions already open too; its jobs not
        yet started are refused at execution.

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            session_id: string; the session from q_negotiate_caps
            delegation_id: string; a delegation this tenant made or received
        """

    async def q_list_delegations(
        self,
        *,
        session_id: str,
        state: str | None = None,
        limit: int = 100,
    ) -> replies.DelegationList:
        """The delegations this tenant made or received, newest first.

        Returns: DelegationList {delegations}.

        Args:
            session_id: string; the session from q_negotiate_caps
            state: string | null; only those in this state (LIVE, REVOKED, EXPIRED) (default null)
            limit: integer; at most this many (default 100)
        """

    async def q_list_jobs(
        self,
        *,
        session_id: str,
        state: str | None = None,
        limit: int = 100,
    ) -> replies.JobList:
        """This tenant's jobs, newest first, without results.

        Returns: JobList {jobs}.

        Args:
            session_id: string; the session from q_negotiate_caps
            state: string | null; only jobs in this state (default null)
            limit: integer; at most this many (default 100)
        """

    async def q_assist(
        self,
        *,
        session_id: str,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
    ) -> replies.Assist:
        """Ask the assistant (the model in [assist]) about a program; it works through QMK's tools
        and shows only programs that validate; each step is an audit line (event assist); with no
        model configured, QMK's own advice.

        Returns: Assist {assist_id, status, text, program, tool_results, steps, advice}.

        Args:
            session_id: string; the session from q_negotiate_caps
            prompt: string; the question
            program: string | null; the program it is about (default null)
            assist_id: string | null; an id for the audit lines (the REST route streams them by it)
                (default null)
        """

    async def q_usage(
        self,
        *,
        session_id: str,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = 100,
    ) -> replies.Usage:
        """The tenant's usage records (one per job end: shots, logical-qubit seconds, physical-qubit
        cycles, device seconds, result bytes), newest first, their totals and the invoice at the
        price table's prices.

        Returns: Usage {tenant, since, until, job_id, count, records, totals, invoice}.

        Args:
            session_id: string; the session from q_negotiate_caps
            since: number | null; only jobs that ended at or after this time (s since the epoch)
                (default null)
            until: number | null; only jobs that ended before this time (s since the epoch) (default
                null)
            job_id: string | null; only this job's records (a restored job ends more than once)
                (default null)
            limit: integer; at most this many records (the totals count them all) (default 100)
        """

    async def q_events(
        self,
        *,
        session_id: str,
        after: int | None = None,
        limit: int = 4096,
        wait_ms: int | None = None,
        after_sub: int = 0,
    ) -> replies.Events:
        """The tenant's own audit records (its jobs' transitions, capability decisions, channels,
        checkpoints) after a cursor, oldest first: the event feed of GET /v1/events; with wait_ms,
        wait for the first.

        Returns: Events {tenant, events, cursor, cursor_sub, dropped}.

        Args:
            session_id: string; the session from q_negotiate_caps
            after: integer | null; the cursor of the reply before (an audit seq); null: from now,
                none given (default null)
            limit: integer; at most this many records (1..4096) (default 4096)
            wait_ms: integer | null; wait up to this many ms for a record after the cursor
                (0..31536000000); null: answer at once (default null)
            after_sub: integer; with after, the records after that audit line already given: the
                reply's cursor_sub (a device job's stream parts follow the line before them,
                numbered sub 1, 2, ...); 0: none (default 0)
        """

    async def q_audit(
        self,
        *,
        session_id: str,
        job_id: str | None = None,
        limit: int = 100,
    ) -> replies.AuditEntries:
        """The tenant's recent audit records, oldest first (GET /v1/audit).

        Returns: AuditEntries {tenant, entries}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string | null; only this job's records (default null)
            limit: integer; at most this many, the newest (1..1000) (default 100)
        """

    async def q_kernel_load(
        self,
        *,
        session_id: str,
    ) -> replies.KernelLoad:
        """The kernel's load (jobs, queue, workers, audit chain, disk, machine) and its job
        counters, for /metrics; the session needs CAP_OBSERVE (operators).

        Returns: KernelLoad {tenants, snapshot, tally}.

        Args:
            session_id: string; the session from q_negotiate_caps
        """

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
        """A workflow the kernel runs as this tenant's jobs on a schedule or on an event (a job of
        the tenant ending, a calibration); durable, a missed schedule runs once.

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            name: string; a name for people (1-100 characters)
            workflow: object; a workflow file's data, each step's program text in source
            on: string; schedule, job or calibration
            every_s: number | null; a schedule's interval in seconds (>= 1) (default null)
            cron: string | null; a schedule: cron's five fields, in UTC (default null)
            states: array of string | null; a job trigger's end states ([COMPLETED]) (default null)
        """

    async def q_list_triggers(
        self,
        *,
        session_id: str,
        trigger_id: str | None = None,
        runs: int = 0,
    ) -> replies.TriggerList:
        """This tenant's triggers, oldest first, each with its next and last run (and its newest
        runs: why each started, its jobs, how it ended).

        Returns: TriggerList {triggers}.

        Args:
            session_id: string; the session from q_negotiate_caps
            trigger_id: string | null; only this trigger (default null)
            runs: integer; each with its newest N runs, 0-100 (the newest 100 are kept) (default 0)
        """

    async def q_delete_trigger(
        self,
        *,
        session_id: str,
        trigger_id: str,
    ) -> replies.Trigger:
        """Delete a trigger and its runs' records (its jobs submitted run on).

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            trigger_id: string; a trigger of this tenant
        """

    async def q_device_artifacts(
        self,
        *,
        session_id: str,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> replies.Artifacts:
        """A device job's artifacts (streamed measurements, pulse log, snapshots): the list, or with
        name a page of one's records.

        Returns: Artifacts {job_id, state, stored_at?, expires_at?, artifacts?, dropped?, name?,
            kind?, total?, offset?, records?, next_offset?}.

        Args:
            session_id: string; the session from q_negotiate_caps
            job_id: string; a job of this tenant
            name: string | null; an artifact's name; null: the list (default null)
            offset: integer; the first record of the page (default 0)
            limit: integer; records in the page (1..10000) (default 1000)
        """


__all__ = ["KernelSyscalls"]
