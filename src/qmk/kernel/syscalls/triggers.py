"""The triggers' host: what a trigger's run needs of the kernel
(:class:`qmk.kernel.running.triggers.Host`).

The kernel makes it with its triggers (:attr:`qmk.kernel.service.Kernel.triggers`), at
open where the store holds a trigger, else at the first trigger syscall: a kernel that
holds none never loads this module.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qmk.errors import AuthError, QMKError
from qmk.kernel.security.sessions import Session

if TYPE_CHECKING:
    import qmk.abi.replies as replies
    from qmk.kernel.admit.admission import Admission
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.running.supervisor import Supervisor
    from qmk.workflows.spec import Workflow


class TriggerHost:
    """What a trigger's run needs of the kernel: sessions of its tenant, submits, waits,
    and its programs lowered in the kernel's planner process.

    Args:
        config: the kernel's config (its tenants and their capabilities).
        check_open: raises ``UnavailableError`` while the kernel stops.
        submit: ``q_submit`` with a session (:meth:`qmk.kernel.service.Kernel.submit_as`).
        supervisor: the kernel's jobs (waited on).
        admission: its planner process and the tenants' CPU budgets.
        lower: what the planner runs to lower a workflow (a worker function's link).
    """

    def __init__(
        self,
        config: KernelConfig,
        check_open: Callable[[], None],
        submit: Callable[..., Awaitable[replies.Job]],
        supervisor: Supervisor,
        admission: Admission,
        lower: Callable[..., Any],
    ) -> None:
        self._config = config
        self._check_open = check_open
        self._submit = submit
        self._supervisor = supervisor
        self._admission = admission
        self._lower = lower

    def session_for(self, tenant: str, caps: Sequence[str], label: str) -> Session:
        """A session of ``tenant`` with those of ``caps`` its config grants now."""
        conf = self._config.tenants.get(tenant)
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
    ) -> replies.Job:
        self._check_open()
        return await self._submit(session, dict(graph), shots, seed, dict(policy))

    async def wait(self, job_id: str, tenant: str, timeout_s: float) -> replies.Job:
        supervisor = self._supervisor
        return await supervisor.wait(supervisor.job(job_id, tenant), timeout_s)

    async def lowered(self, tenant: str, flow: Workflow) -> dict[Any, Any]:
        answer = await self._admission.planner.run(self._lower, flow, what="this workflow")
        self._admission.cpu.spend(tenant, float(answer["cpu_s"]))
        if "error" in answer:
            raise QMKError.from_json(answer["error"])
        cache: dict[Any, Any] = answer["cache"]
        return cache


__all__ = ["TriggerHost"]
