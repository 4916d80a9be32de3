"""Every qSyscall method as a typed Python method of the clients.

GENERATED from :data:`qmk.abi.methods.METHODS` by ``python -m qmk.abi.codegen --write``
(:mod:`qmk.abi.codegen`): do not edit; change the table and regenerate.

:class:`SyscallMethods` is the blocking clients' (:class:`qmk.client.Client`, the
gRPC client), :class:`AsyncSyscallMethods` :class:`qmk.client.AsyncClient`'s: the
same methods, whose replies are typed (:mod:`qmk.abi.replies`). Each client
implements ``_call`` over its transport, giving the reply's JSON object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qmk.abi import replies
from qmk.abi.methods import SupportsJson


class SyscallMethods:
    """One method per qSyscall method; a subclass sends the call in :meth:`_call`.

    Params are checked against the table before anything is sent; ``session_id``
    None means the client's own session. Each method gives the method's reply
    struct (:mod:`qmk.abi.replies`), decoded from the JSON object of the reply:
    the method table, one method a row, rendered from it.
    """

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        """Send ``method`` with ``params``; the reply's JSON object."""
        raise NotImplementedError

    def q_negotiate_caps(
        self,
        tenant: str,
        key: str,
        requested: Sequence[str] = [],
    ) -> replies.Session:
        """Open a session: authenticate the tenant and grant requested ∩ allowed caps (its own, and
        those a live delegation lends it: delegated).

        Returns: Session {session_id, tenant, granted, denied, delegated, quota, expires_at}.

        Args:
            tenant: string; the tenant's name in the kernel config
            key: string; the tenant's shared secret
            requested: array of string; capabilities wanted, e.g. CAP_ALLOC (default [])
        """
        reply = self._call(
            "q_negotiate_caps", {"tenant": tenant, "key": key, "requested": requested}
        )
        return replies.Session.from_json(reply)

    def q_submit(
        self,
        graph: Mapping[str, Any] | SupportsJson,
        shots: int = 1024,
        seed: int | None = None,
        policy: Mapping[str, Any] | SupportsJson | None = None,
        idempotency_key: str | None = None,
        target: str = "logical",
        wait_ms: int | None = None,
        traceparent: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Verify, admit and queue a program on a target; refusals come back at once; with wait_ms,
        the job once final (or as it is when wait_ms passes), as q_wait answers it: one request for
        a small job.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
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
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_submit",
            {
                "session_id": session_id,
                "graph": graph,
                "shots": shots,
                "seed": seed,
                "policy": policy,
                "idempotency_key": idempotency_key,
                "target": target,
                "wait_ms": wait_ms,
                "traceparent": traceparent,
            },
        )
        return replies.Job.from_json(reply)

    def q_status(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """A job's state, and its result once COMPLETED.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_status", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    def q_wait(
        self,
        job_id: str,
        timeout_ms: int = 30000,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Wait until the job is final or timeout_ms passes; returns it either way.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            timeout_ms: integer; longest wait in ms (default 30000)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_wait", {"session_id": session_id, "job_id": job_id, "timeout_ms": timeout_ms}
        )
        return replies.Job.from_json(reply)

    def q_get_result(
        self,
        job_id: str,
        cursor: str | None = None,
        limit: int = 10000,
        *,
        session_id: str | None = None,
    ) -> replies.ResultPage:
        """A COMPLETED job's counts in pages, in stored order, with the rest of its result.

        Returns: ResultPage {job_id, state, entries, cursor, next_cursor, counts, summary}.

        Args:
            job_id: string; a job of this tenant
            cursor: string | null; next_cursor of the page before; null: the first page (default
                null)
            limit: integer; counts entries in the page (1..100000) (default 10000)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_get_result",
            {
                "session_id": session_id,
                "job_id": job_id,
                "cursor": cursor,
                "limit": limit,
            },
        )
        return replies.ResultPage.from_json(reply)

    def q_cancel(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Cancel a queued or running job (its worker is killed).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_cancel", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    def q_checkpoint(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Checkpoint:
        """Checkpoint a job at its next fence.

        Returns: Checkpoint {checkpoint_id, job_id, epoch, program_epoch, state, created_at, saved}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_checkpoint", {"session_id": session_id, "job_id": job_id})
        return replies.Checkpoint.from_json(reply)

    def q_restore(
        self,
        job_id: str,
        checkpoint_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Re-queue a job from a checkpoint (null: its latest).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            checkpoint_id: string | null; the checkpoint; null: latest (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_restore",
            {
                "session_id": session_id,
                "job_id": job_id,
                "checkpoint_id": checkpoint_id,
            },
        )
        return replies.Job.from_json(reply)

    def q_replay(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Submit a new job with the same graph, shots, seed and policy.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_replay", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    def q_open_chan(
        self,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """Propose a channel to a peer tenant, or accept the peer's proposal.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            peer: string; the other tenant
            channel_id: string | null; null: propose; the peer's channel id: accept (default null)
            fidelity: number; Bell-pair fidelity (default 1.0)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_open_chan",
            {
                "session_id": session_id,
                "peer": peer,
                "channel_id": channel_id,
                "fidelity": fidelity,
            },
        )
        return replies.Channel.from_json(reply)

    def q_close_chan(
        self,
        channel_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """Close a channel.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            channel_id: string; a channel this tenant is part of
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_close_chan", {"session_id": session_id, "channel_id": channel_id})
        return replies.Channel.from_json(reply)

    def q_chan_status(
        self,
        channel_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """A channel's state.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            channel_id: string; a channel this tenant is part of
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_chan_status", {"session_id": session_id, "channel_id": channel_id})
        return replies.Channel.from_json(reply)

    def q_list_channels(
        self,
        state: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.ChannelList:
        """This tenant's channels (proposed, accepted, or proposed to it), newest first.

        Returns: ChannelList {channels}.

        Args:
            state: string | null; only channels in this state (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_list_channels", {"session_id": session_id, "state": state})
        return replies.ChannelList.from_json(reply)

    def q_get_telemetry(
        self,
        job_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Telemetry:
        """A job's telemetry, or with null the tenant's aggregate.

        Returns: Telemetry {job_id?, state?, attempts?, preemptions?, physical_qubits?,
            logical_qubits?, queued_s?, run_s?, telemetry?, teleportation?, earlier_outcomes?,
            machine?, tenant?, jobs?, jobs_by_state?, shots_submitted?, shots_completed?,
            logical_cycles?, injected_logical_errors?, running?, queued?, logical_qubits_in_use?,
            epoch?, device?, faults?}.

        Args:
            job_id: string | null; a job; null: the whole tenant (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_get_telemetry", {"session_id": session_id, "job_id": job_id})
        return replies.Telemetry.from_json(reply)

    def q_resource_query(
        self,
        *,
        session_id: str | None = None,
    ) -> replies.Resources:
        """The machine's qubit inventory and the tenant's quota and usage.

        Returns: Resources {machine, tenant, quota, usage, device}.

        Args:
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_resource_query", {"session_id": session_id})
        return replies.Resources.from_json(reply)

    def q_machine_status(
        self,
        speedup: bool = False,
        *,
        session_id: str | None = None,
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
            speedup: boolean; also compute the speedup over exclusive: the latest arrivals run again
                under exclusive and the policy (costs a simulation) (default false)
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_machine_status", {"session_id": session_id, "speedup": speedup})
        return replies.Machine.from_json(reply)

    def q_calibrate(
        self,
        calibration: Mapping[str, Any] | SupportsJson | None = None,
        qubit: Mapping[str, Any] | SupportsJson | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Device:
        """Ingest a calibration or custom qubit parameters into the machine (operators).

        Returns: Device {kind, inventory, capabilities, health, faults, noise_model,
            calibrations_ingested, logical_model}.

        Args:
            calibration: object | null; a fit from qmk qec calibrate --output (default null)
            qubit: object | null; qubit parameters (QRE's JSON form) (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_calibrate", {"session_id": session_id, "calibration": calibration, "qubit": qubit}
        )
        return replies.Device.from_json(reply)

    def q_delegate_caps(
        self,
        to_tenant: str,
        caps: Sequence[str],
        expires_s: float,
        *,
        session_id: str | None = None,
    ) -> replies.Delegation:
        """Lend capabilities this session holds from the tenant's own config to another tenant,
        until expires_s pass or it is revoked; the recipient's q_negotiate_caps may then grant them
        (its quotas stay its own).

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            to_tenant: string; the tenant that may be granted them
            caps: array of string; capabilities to lend, e.g. CAP_MAGIC
            expires_s: number; seconds it lasts (> 0, at most [kernel] max_delegation_s)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_delegate_caps",
            {
                "session_id": session_id,
                "to_tenant": to_tenant,
                "caps": caps,
                "expires_s": expires_s,
            },
        )
        return replies.Delegation.from_json(reply)

    def q_revoke_delegation(
        self,
        delegation_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Delegation:
        """End a delegation at once (either tenant may), for sessions already open too; its jobs not
        yet started are refused at execution.

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            delegation_id: string; a delegation this tenant made or received
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_revoke_delegation", {"session_id": session_id, "delegation_id": delegation_id}
        )
        return replies.Delegation.from_json(reply)

    def q_list_delegations(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.DelegationList:
        """The delegations this tenant made or received, newest first.

        Returns: DelegationList {delegations}.

        Args:
            state: string | null; only those in this state (LIVE, REVOKED, EXPIRED) (default null)
            limit: integer; at most this many (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_list_delegations", {"session_id": session_id, "state": state, "limit": limit}
        )
        return replies.DelegationList.from_json(reply)

    def q_list_jobs(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.JobList:
        """This tenant's jobs, newest first, without results.

        Returns: JobList {jobs}.

        Args:
            state: string | null; only jobs in this state (default null)
            limit: integer; at most this many (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_list_jobs", {"session_id": session_id, "state": state, "limit": limit}
        )
        return replies.JobList.from_json(reply)

    def q_assist(
        self,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Assist:
        """Ask the assistant (the model in [assist]) about a program; it works through QMK's tools
        and shows only programs that validate; each step is an audit line (event assist); with no
        model configured, QMK's own advice.

        Returns: Assist {assist_id, status, text, program, tool_results, steps, advice}.

        Args:
            prompt: string; the question
            program: string | null; the program it is about (default null)
            assist_id: string | null; an id for the audit lines (the REST route streams them by it)
                (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_assist",
            {
                "session_id": session_id,
                "prompt": prompt,
                "program": program,
                "assist_id": assist_id,
            },
        )
        return replies.Assist.from_json(reply)

    def q_usage(
        self,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.Usage:
        """The tenant's usage records (one per job end: shots, logical-qubit seconds, physical-qubit
        cycles, device seconds, result bytes), newest first, their totals and the invoice at the
        price table's prices.

        Returns: Usage {tenant, since, until, job_id, count, records, totals, invoice}.

        Args:
            since: number | null; only jobs that ended at or after this time (s since the epoch)
                (default null)
            until: number | null; only jobs that ended before this time (s since the epoch) (default
                null)
            job_id: string | null; only this job's records (a restored job ends more than once)
                (default null)
            limit: integer; at most this many records (the totals count them all) (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_usage",
            {
                "session_id": session_id,
                "since": since,
                "until": until,
                "job_id": job_id,
                "limit": limit,
            },
        )
        return replies.Usage.from_json(reply)

    def q_events(
        self,
        after: int | None = None,
        limit: int = 4096,
        wait_ms: int | None = None,
        after_sub: int = 0,
        *,
        session_id: str | None = None,
    ) -> replies.Events:
        """The tenant's own audit records (its jobs' transitions, capability decisions, channels,
        checkpoints) after a cursor, oldest first: the event feed of GET /v1/events; with wait_ms,
        wait for the first.

        Returns: Events {tenant, events, cursor, cursor_sub, dropped}.

        Args:
            after: integer | null; the cursor of the reply before (an audit seq); null: from now,
                none given (default null)
            limit: integer; at most this many records (1..4096) (default 4096)
            wait_ms: integer | null; wait up to this many ms for a record after the cursor
                (0..31536000000); null: answer at once (default null)
            after_sub: integer; with after, the records after that audit line already given: the
                reply's cursor_sub (a device job's stream parts follow the line before them,
                numbered sub 1, 2, ...); 0: none (default 0)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_events",
            {
                "session_id": session_id,
                "after": after,
                "limit": limit,
                "wait_ms": wait_ms,
                "after_sub": after_sub,
            },
        )
        return replies.Events.from_json(reply)

    def q_audit(
        self,
        job_id: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.AuditEntries:
        """The tenant's recent audit records, oldest first (GET /v1/audit).

        Returns: AuditEntries {tenant, entries}.

        Args:
            job_id: string | null; only this job's records (default null)
            limit: integer; at most this many, the newest (1..1000) (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_audit", {"session_id": session_id, "job_id": job_id, "limit": limit})
        return replies.AuditEntries.from_json(reply)

    def q_kernel_load(
        self,
        *,
        session_id: str | None = None,
    ) -> replies.KernelLoad:
        """The kernel's load (jobs, queue, workers, audit chain, disk, machine) and its job
        counters, for /metrics; the session needs CAP_OBSERVE (operators).

        Returns: KernelLoad {tenants, snapshot, tally}.

        Args:
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_kernel_load", {"session_id": session_id})
        return replies.KernelLoad.from_json(reply)

    def q_create_trigger(
        self,
        name: str,
        workflow: Mapping[str, Any] | SupportsJson,
        on: str,
        every_s: float | None = None,
        cron: str | None = None,
        states: Sequence[str] | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Trigger:
        """A workflow the kernel runs as this tenant's jobs on a schedule or on an event (a job of
        the tenant ending, a calibration); durable, a missed schedule runs once.

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            name: string; a name for people (1-100 characters)
            workflow: object; a workflow file's data, each step's program text in source
            on: string; schedule, job or calibration
            every_s: number | null; a schedule's interval in seconds (>= 1) (default null)
            cron: string | null; a schedule: cron's five fields, in UTC (default null)
            states: array of string | null; a job trigger's end states ([COMPLETED]) (default null)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_create_trigger",
            {
                "session_id": session_id,
                "name": name,
                "workflow": workflow,
                "on": on,
                "every_s": every_s,
                "cron": cron,
                "states": states,
            },
        )
        return replies.Trigger.from_json(reply)

    def q_list_triggers(
        self,
        trigger_id: str | None = None,
        runs: int = 0,
        *,
        session_id: str | None = None,
    ) -> replies.TriggerList:
        """This tenant's triggers, oldest first, each with its next and last run (and its newest
        runs: why each started, its jobs, how it ended).

        Returns: TriggerList {triggers}.

        Args:
            trigger_id: string | null; only this trigger (default null)
            runs: integer; each with its newest N runs, 0-100 (the newest 100 are kept) (default 0)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_list_triggers", {"session_id": session_id, "trigger_id": trigger_id, "runs": runs}
        )
        return replies.TriggerList.from_json(reply)

    def q_delete_trigger(
        self,
        trigger_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Trigger:
        """Delete a trigger and its runs' records (its jobs submitted run on).

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            trigger_id: string; a trigger of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = self._call("q_delete_trigger", {"session_id": session_id, "trigger_id": trigger_id})
        return replies.Trigger.from_json(reply)

    def q_device_artifacts(
        self,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
        *,
        session_id: str | None = None,
    ) -> replies.Artifacts:
        """A device job's artifacts (streamed measurements, pulse log, snapshots): the list, or with
        name a page of one's records.

        Returns: Artifacts {job_id, state, stored_at?, expires_at?, artifacts?, dropped?, name?,
            kind?, total?, offset?, records?, next_offset?}.

        Args:
            job_id: string; a job of this tenant
            name: string | null; an artifact's name; null: the list (default null)
            offset: integer; the first record of the page (default 0)
            limit: integer; records in the page (1..10000) (default 1000)
            session_id: the session to use; None: the client's own
        """
        reply = self._call(
            "q_device_artifacts",
            {
                "session_id": session_id,
                "job_id": job_id,
                "name": name,
                "offset": offset,
                "limit": limit,
            },
        )
        return replies.Artifacts.from_json(reply)


class AsyncSyscallMethods:
    """One coroutine per qSyscall method; a subclass sends the call in
    :meth:`_call`.

    Params are checked against the table before anything is sent; ``session_id``
    None means the client's own session. Each method gives the method's reply
    struct (:mod:`qmk.abi.replies`), decoded from the JSON object of the reply:
    the method table, one method a row, rendered from it.
    """

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        """Send ``method`` with ``params``; the reply's JSON object."""
        raise NotImplementedError

    async def q_negotiate_caps(
        self,
        tenant: str,
        key: str,
        requested: Sequence[str] = [],
    ) -> replies.Session:
        """Open a session: authenticate the tenant and grant requested ∩ allowed caps (its own, and
        those a live delegation lends it: delegated).

        Returns: Session {session_id, tenant, granted, denied, delegated, quota, expires_at}.

        Args:
            tenant: string; the tenant's name in the kernel config
            key: string; the tenant's shared secret
            requested: array of string; capabilities wanted, e.g. CAP_ALLOC (default [])
        """
        reply = await self._call(
            "q_negotiate_caps", {"tenant": tenant, "key": key, "requested": requested}
        )
        return replies.Session.from_json(reply)

    async def q_submit(
        self,
        graph: Mapping[str, Any] | SupportsJson,
        shots: int = 1024,
        seed: int | None = None,
        policy: Mapping[str, Any] | SupportsJson | None = None,
        idempotency_key: str | None = None,
        target: str = "logical",
        wait_ms: int | None = None,
        traceparent: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Verify, admit and queue a program on a target; refusals come back at once; with wait_ms,
        the job once final (or as it is when wait_ms passes), as q_wait answers it: one request for
        a small job.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
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
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_submit",
            {
                "session_id": session_id,
                "graph": graph,
                "shots": shots,
                "seed": seed,
                "policy": policy,
                "idempotency_key": idempotency_key,
                "target": target,
                "wait_ms": wait_ms,
                "traceparent": traceparent,
            },
        )
        return replies.Job.from_json(reply)

    async def q_status(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """A job's state, and its result once COMPLETED.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_status", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    async def q_wait(
        self,
        job_id: str,
        timeout_ms: int = 30000,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Wait until the job is final or timeout_ms passes; returns it either way.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            timeout_ms: integer; longest wait in ms (default 30000)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_wait", {"session_id": session_id, "job_id": job_id, "timeout_ms": timeout_ms}
        )
        return replies.Job.from_json(reply)

    async def q_get_result(
        self,
        job_id: str,
        cursor: str | None = None,
        limit: int = 10000,
        *,
        session_id: str | None = None,
    ) -> replies.ResultPage:
        """A COMPLETED job's counts in pages, in stored order, with the rest of its result.

        Returns: ResultPage {job_id, state, entries, cursor, next_cursor, counts, summary}.

        Args:
            job_id: string; a job of this tenant
            cursor: string | null; next_cursor of the page before; null: the first page (default
                null)
            limit: integer; counts entries in the page (1..100000) (default 10000)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_get_result",
            {
                "session_id": session_id,
                "job_id": job_id,
                "cursor": cursor,
                "limit": limit,
            },
        )
        return replies.ResultPage.from_json(reply)

    async def q_cancel(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Cancel a queued or running job (its worker is killed).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_cancel", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    async def q_checkpoint(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Checkpoint:
        """Checkpoint a job at its next fence.

        Returns: Checkpoint {checkpoint_id, job_id, epoch, program_epoch, state, created_at, saved}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_checkpoint", {"session_id": session_id, "job_id": job_id})
        return replies.Checkpoint.from_json(reply)

    async def q_restore(
        self,
        job_id: str,
        checkpoint_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Re-queue a job from a checkpoint (null: its latest).

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            checkpoint_id: string | null; the checkpoint; null: latest (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_restore",
            {
                "session_id": session_id,
                "job_id": job_id,
                "checkpoint_id": checkpoint_id,
            },
        )
        return replies.Job.from_json(reply)

    async def q_replay(
        self,
        job_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Job:
        """Submit a new job with the same graph, shots, seed and policy.

        Returns: Job {job_id, state, tenant, shots, seed, priority, created_at, started_at,
            finished_at, error, result?, cached_from?, machine?, result_expired_at?, result_error?,
            warnings?}.

        Args:
            job_id: string; a job of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_replay", {"session_id": session_id, "job_id": job_id})
        return replies.Job.from_json(reply)

    async def q_open_chan(
        self,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """Propose a channel to a peer tenant, or accept the peer's proposal.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            peer: string; the other tenant
            channel_id: string | null; null: propose; the peer's channel id: accept (default null)
            fidelity: number; Bell-pair fidelity (default 1.0)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_open_chan",
            {
                "session_id": session_id,
                "peer": peer,
                "channel_id": channel_id,
                "fidelity": fidelity,
            },
        )
        return replies.Channel.from_json(reply)

    async def q_close_chan(
        self,
        channel_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """Close a channel.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            channel_id: string; a channel this tenant is part of
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_close_chan", {"session_id": session_id, "channel_id": channel_id}
        )
        return replies.Channel.from_json(reply)

    async def q_chan_status(
        self,
        channel_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Channel:
        """A channel's state.

        Returns: Channel {channel_id, state, tenants, fidelity, created_at, opened_at, closed_at}.

        Args:
            channel_id: string; a channel this tenant is part of
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_chan_status", {"session_id": session_id, "channel_id": channel_id}
        )
        return replies.Channel.from_json(reply)

    async def q_list_channels(
        self,
        state: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.ChannelList:
        """This tenant's channels (proposed, accepted, or proposed to it), newest first.

        Returns: ChannelList {channels}.

        Args:
            state: string | null; only channels in this state (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_list_channels", {"session_id": session_id, "state": state})
        return replies.ChannelList.from_json(reply)

    async def q_get_telemetry(
        self,
        job_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Telemetry:
        """A job's telemetry, or with null the tenant's aggregate.

        Returns: Telemetry {job_id?, state?, attempts?, preemptions?, physical_qubits?,
            logical_qubits?, queued_s?, run_s?, telemetry?, teleportation?, earlier_outcomes?,
            machine?, tenant?, jobs?, jobs_by_state?, shots_submitted?, shots_completed?,
            logical_cycles?, injected_logical_errors?, running?, queued?, logical_qubits_in_use?,
            epoch?, device?, faults?}.

        Args:
            job_id: string | null; a job; null: the whole tenant (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_get_telemetry", {"session_id": session_id, "job_id": job_id})
        return replies.Telemetry.from_json(reply)

    async def q_resource_query(
        self,
        *,
        session_id: str | None = None,
    ) -> replies.Resources:
        """The machine's qubit inventory and the tenant's quota and usage.

        Returns: Resources {machine, tenant, quota, usage, device}.

        Args:
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_resource_query", {"session_id": session_id})
        return replies.Resources.from_json(reply)

    async def q_machine_status(
        self,
        speedup: bool = False,
        *,
        session_id: str | None = None,
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
            speedup: boolean; also compute the speedup over exclusive: the latest arrivals run again
                under exclusive and the policy (costs a simulation) (default false)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_machine_status", {"session_id": session_id, "speedup": speedup})
        return replies.Machine.from_json(reply)

    async def q_calibrate(
        self,
        calibration: Mapping[str, Any] | SupportsJson | None = None,
        qubit: Mapping[str, Any] | SupportsJson | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Device:
        """Ingest a calibration or custom qubit parameters into the machine (operators).

        Returns: Device {kind, inventory, capabilities, health, faults, noise_model,
            calibrations_ingested, logical_model}.

        Args:
            calibration: object | null; a fit from qmk qec calibrate --output (default null)
            qubit: object | null; qubit parameters (QRE's JSON form) (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_calibrate", {"session_id": session_id, "calibration": calibration, "qubit": qubit}
        )
        return replies.Device.from_json(reply)

    async def q_delegate_caps(
        self,
        to_tenant: str,
        caps: Sequence[str],
        expires_s: float,
        *,
        session_id: str | None = None,
    ) -> replies.Delegation:
        """Lend capabilities this session holds from the tenant's own config to another tenant,
        until expires_s pass or it is revoked; the recipient's q_negotiate_caps may then grant them
        (its quotas stay its own).

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            to_tenant: string; the tenant that may be granted them
            caps: array of string; capabilities to lend, e.g. CAP_MAGIC
            expires_s: number; seconds it lasts (> 0, at most [kernel] max_delegation_s)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_delegate_caps",
            {
                "session_id": session_id,
                "to_tenant": to_tenant,
                "caps": caps,
                "expires_s": expires_s,
            },
        )
        return replies.Delegation.from_json(reply)

    async def q_revoke_delegation(
        self,
        delegation_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Delegation:
        """End a delegation at once (either tenant may), for sessions already open too; its jobs not
        yet started are refused at execution.

        Returns: Delegation {delegation_id, from_tenant, to_tenant, caps, state, created_at,
            expires_at, revoked_at, revoked_by}.

        Args:
            delegation_id: string; a delegation this tenant made or received
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_revoke_delegation", {"session_id": session_id, "delegation_id": delegation_id}
        )
        return replies.Delegation.from_json(reply)

    async def q_list_delegations(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.DelegationList:
        """The delegations this tenant made or received, newest first.

        Returns: DelegationList {delegations}.

        Args:
            state: string | null; only those in this state (LIVE, REVOKED, EXPIRED) (default null)
            limit: integer; at most this many (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_list_delegations", {"session_id": session_id, "state": state, "limit": limit}
        )
        return replies.DelegationList.from_json(reply)

    async def q_list_jobs(
        self,
        state: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.JobList:
        """This tenant's jobs, newest first, without results.

        Returns: JobList {jobs}.

        Args:
            state: string | null; only jobs in this state (default null)
            limit: integer; at most this many (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_list_jobs", {"session_id": session_id, "state": state, "limit": limit}
        )
        return replies.JobList.from_json(reply)

    async def q_assist(
        self,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Assist:
        """Ask the assistant (the model in [assist]) about a program; it works through QMK's tools
        and shows only programs that validate; each step is an audit line (event assist); with no
        model configured, QMK's own advice.

        Returns: Assist {assist_id, status, text, program, tool_results, steps, advice}.

        Args:
            prompt: string; the question
            program: string | null; the program it is about (default null)
            assist_id: string | null; an id for the audit lines (the REST route streams them by it)
                (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_assist",
            {
                "session_id": session_id,
                "prompt": prompt,
                "program": program,
                "assist_id": assist_id,
            },
        )
        return replies.Assist.from_json(reply)

    async def q_usage(
        self,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.Usage:
        """The tenant's usage records (one per job end: shots, logical-qubit seconds, physical-qubit
        cycles, device seconds, result bytes), newest first, their totals and the invoice at the
        price table's prices.

        Returns: Usage {tenant, since, until, job_id, count, records, totals, invoice}.

        Args:
            since: number | null; only jobs that ended at or after this time (s since the epoch)
                (default null)
            until: number | null; only jobs that ended before this time (s since the epoch) (default
                null)
            job_id: string | null; only this job's records (a restored job ends more than once)
                (default null)
            limit: integer; at most this many records (the totals count them all) (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_usage",
            {
                "session_id": session_id,
                "since": since,
                "until": until,
                "job_id": job_id,
                "limit": limit,
            },
        )
        return replies.Usage.from_json(reply)

    async def q_events(
        self,
        after: int | None = None,
        limit: int = 4096,
        wait_ms: int | None = None,
        after_sub: int = 0,
        *,
        session_id: str | None = None,
    ) -> replies.Events:
        """The tenant's own audit records (its jobs' transitions, capability decisions, channels,
        checkpoints) after a cursor, oldest first: the event feed of GET /v1/events; with wait_ms,
        wait for the first.

        Returns: Events {tenant, events, cursor, cursor_sub, dropped}.

        Args:
            after: integer | null; the cursor of the reply before (an audit seq); null: from now,
                none given (default null)
            limit: integer; at most this many records (1..4096) (default 4096)
            wait_ms: integer | null; wait up to this many ms for a record after the cursor
                (0..31536000000); null: answer at once (default null)
            after_sub: integer; with after, the records after that audit line already given: the
                reply's cursor_sub (a device job's stream parts follow the line before them,
                numbered sub 1, 2, ...); 0: none (default 0)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_events",
            {
                "session_id": session_id,
                "after": after,
                "limit": limit,
                "wait_ms": wait_ms,
                "after_sub": after_sub,
            },
        )
        return replies.Events.from_json(reply)

    async def q_audit(
        self,
        job_id: str | None = None,
        limit: int = 100,
        *,
        session_id: str | None = None,
    ) -> replies.AuditEntries:
        """The tenant's recent audit records, oldest first (GET /v1/audit).

        Returns: AuditEntries {tenant, entries}.

        Args:
            job_id: string | null; only this job's records (default null)
            limit: integer; at most this many, the newest (1..1000) (default 100)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_audit", {"session_id": session_id, "job_id": job_id, "limit": limit}
        )
        return replies.AuditEntries.from_json(reply)

    async def q_kernel_load(
        self,
        *,
        session_id: str | None = None,
    ) -> replies.KernelLoad:
        """The kernel's load (jobs, queue, workers, audit chain, disk, machine) and its job
        counters, for /metrics; the session needs CAP_OBSERVE (operators).

        Returns: KernelLoad {tenants, snapshot, tally}.

        Args:
            session_id: the session to use; None: the client's own
        """
        reply = await self._call("q_kernel_load", {"session_id": session_id})
        return replies.KernelLoad.from_json(reply)

    async def q_create_trigger(
        self,
        name: str,
        workflow: Mapping[str, Any] | SupportsJson,
        on: str,
        every_s: float | None = None,
        cron: str | None = None,
        states: Sequence[str] | None = None,
        *,
        session_id: str | None = None,
    ) -> replies.Trigger:
        """A workflow the kernel runs as this tenant's jobs on a schedule or on an event (a job of
        the tenant ending, a calibration); durable, a missed schedule runs once.

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            name: string; a name for people (1-100 characters)
            workflow: object; a workflow file's data, each step's program text in source
            on: string; schedule, job or calibration
            every_s: number | null; a schedule's interval in seconds (>= 1) (default null)
            cron: string | null; a schedule: cron's five fields, in UTC (default null)
            states: array of string | null; a job trigger's end states ([COMPLETED]) (default null)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_create_trigger",
            {
                "session_id": session_id,
                "name": name,
                "workflow": workflow,
                "on": on,
                "every_s": every_s,
                "cron": cron,
                "states": states,
            },
        )
        return replies.Trigger.from_json(reply)

    async def q_list_triggers(
        self,
        trigger_id: str | None = None,
        runs: int = 0,
        *,
        session_id: str | None = None,
    ) -> replies.TriggerList:
        """This tenant's triggers, oldest first, each with its next and last run (and its newest
        runs: why each started, its jobs, how it ended).

        Returns: TriggerList {triggers}.

        Args:
            trigger_id: string | null; only this trigger (default null)
            runs: integer; each with its newest N runs, 0-100 (the newest 100 are kept) (default 0)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_list_triggers", {"session_id": session_id, "trigger_id": trigger_id, "runs": runs}
        )
        return replies.TriggerList.from_json(reply)

    async def q_delete_trigger(
        self,
        trigger_id: str,
        *,
        session_id: str | None = None,
    ) -> replies.Trigger:
        """Delete a trigger and its runs' records (its jobs submitted run on).

        Returns: Trigger {trigger_id, tenant, name, on, every_s, cron, states, workflow, steps,
            jobs, caps, state, created_at, next_run_at, last_run, runs?}.

        Args:
            trigger_id: string; a trigger of this tenant
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_delete_trigger", {"session_id": session_id, "trigger_id": trigger_id}
        )
        return replies.Trigger.from_json(reply)

    async def q_device_artifacts(
        self,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
        *,
        session_id: str | None = None,
    ) -> replies.Artifacts:
        """A device job's artifacts (streamed measurements, pulse log, snapshots): the list, or with
        name a page of one's records.

        Returns: Artifacts {job_id, state, stored_at?, expires_at?, artifacts?, dropped?, name?,
            kind?, total?, offset?, records?, next_offset?}.

        Args:
            job_id: string; a job of this tenant
            name: string | null; an artifact's name; null: the list (default null)
            offset: integer; the first record of the page (default 0)
            limit: integer; records in the page (1..10000) (default 1000)
            session_id: the session to use; None: the client's own
        """
        reply = await self._call(
            "q_device_artifacts",
            {
                "session_id": session_id,
                "job_id": job_id,
                "name": name,
                "offset": offset,
                "limit": limit,
            },
        )
        return replies.Artifacts.from_json(reply)


__all__ = ["AsyncSyscallMethods", "SyscallMethods"]
