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
    ) -> replies.Session: ...

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
    ) -> replies.Job: ...

    async def q_status(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job: ...

    async def q_wait(
        self,
        *,
        session_id: str,
        job_id: str,
        timeout_ms: int = 30000,
    ) -> replies.Job: ...

    async def q_get_result(
        self,
        *,
        session_id: str,
        job_id: str,
        cursor: str | None = None,
        limit: int = 10000,
    ) -> replies.ResultPage: ...

    async def q_cancel(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job: ...

    async def q_checkpoint(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Checkpoint: ...

    async def q_restore(
        self,
        *,
        session_id: str,
        job_id: str,
        checkpoint_id: str | None = None,
    ) -> replies.Job: ...

    async def q_replay(
        self,
        *,
        session_id: str,
        job_id: str,
    ) -> replies.Job: ...

    async def q_open_chan(
        self,
        *,
        session_id: str,
        peer: str,
        channel_id: str | None = None,
        fidelity: float = 1.0,
    ) -> replies.Channel: ...

    async def q_close_chan(
        self,
        *,
        session_id: str,
        channel_id: str,
    ) -> replies.Channel: ...

    async def q_chan_status(
        self,
        *,
        session_id: str,
        channel_id: str,
    ) -> replies.Channel: ...

    async def q_list_channels(
        self,
        *,
        session_id: str,
        state: str | None = None,
    ) -> replies.ChannelList: ...

    async def q_get_telemetry(
        self,
        *,
        session_id: str,
        job_id: str | None = None,
    ) -> replies.Telemetry: ...

    async def q_resource_query(
        self,
        *,
        session_id: str,
    ) -> replies.Resources: ...

    async def q_machine_status(
        self,
        *,
        session_id: str,
        speedup: bool = False,
    ) -> replies.Machine: ...

    async def q_calibrate(
        self,
        *,
        session_id: str,
        calibration: Mapping[str, Any] | None = None,
        qubit: Mapping[str, Any] | None = None,
    ) -> replies.Device: ...

    async def q_delegate_caps(
        self,
        *,
        session_id: str,
        to_tenant: str,
        caps: Sequence[str],
        expires_s: float,
    ) -> replies.Delegation: ...

    async def q_revoke_delegation(
        self,
        *,
        session_id: str,
        delegation_id: str,
    ) -> replies.Delegation: ...

    async def q_list_delegations(
        self,
        *,
        session_id: str,
        state: str | None = None,
        limit: int = 100,
    ) -> replies.DelegationList: ...

    async def q_list_jobs(
        self,
        *,
        session_id: str,
        state: str | None = None,
        limit: int = 100,
    ) -> replies.JobList: ...

    async def q_assist(
        self,
        *,
        session_id: str,
        prompt: str,
        program: str | None = None,
        assist_id: str | None = None,
    ) -> replies.Assist: ...

    async def q_usage(
        self,
        *,
        session_id: str,
        since: float | None = None,
        until: float | None = None,
        job_id: str | None = None,
        limit: int = 100,
    ) -> replies.Usage: ...

    async def q_events(
        self,
        *,
        session_id: str,
        after: int | None = None,
        limit: int = 4096,
        wait_ms: int | None = None,
        after_sub: int = 0,
    ) -> replies.Events: ...

    async def q_audit(
        self,
        *,
        session_id: str,
        job_id: str | None = None,
        limit: int = 100,
    ) -> replies.AuditEntries: ...

    async def q_kernel_load(
        self,
        *,
        session_id: str,
    ) -> replies.KernelLoad: ...

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
    ) -> replies.Trigger: ...

    async def q_list_triggers(
        self,
        *,
        session_id: str,
        trigger_id: str | None = None,
        runs: int = 0,
    ) -> replies.TriggerList: ...

    async def q_delete_trigger(
        self,
        *,
        session_id: str,
        trigger_id: str,
    ) -> replies.Trigger: ...

    async def q_device_artifacts(
        self,
        *,
        session_id: str,
        job_id: str,
        name: str | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> replies.Artifacts: ...


__all__ = ["KernelSyscalls"]
