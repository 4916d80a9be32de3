"""The kernel's side of the assistant (``q_assist``, ``POST /v1/assist``): per tenant,
audited, rate-limited, bounded, off when the operator says so, and its tools run as the
caller's own work.

Each question is charged to the tenant's bucket (a burst of :data:`BURST`, then
``[assist] calls_per_minute``; an empty bucket is ``QS1006`` with ``retry_after_s``).
At most ``[assist] max_concurrent`` questions are answered at once in the kernel
(another is ``QS1011``, at once), and at most :func:`per_tenant` of them for one tenant
(``QS1006``, ``limit: "concurrent_questions"``). Each runs in a thread of the desk's own
pool, one per question it may answer (the model's server is a network call that may take
minutes: never on the event loop, and never in the loop's default pool, which the key
checks of logins use).

**The tools are the caller's work, never the kernel's.** The model's tool calls (and
the advice given with no model) do their program work (reading, lowering, verifying,
estimating, planning) in the tenant's CPU-budget threads, charged to its
``cpu_s_per_s`` budget (:class:`~qmk.kernel.admit.budget.CpuBudget`), with OpenQASM's loops
capped at ``max_graph_nodes`` before they unroll. ``run`` is a job of the caller: it is
submitted with the caller's session, through the door under ``qmk serve``
(:attr:`AssistDesk.calls`) (``q_submit``: its capabilities, quotas, qubit
limits, verification rate and CPU budget), ideal (``policy.noise`` false), at most
``[assist] max_shots`` shots, run in the worker pool, metered (a usage row), listed with
the tenant's jobs, and waited for at most ``[assist] timeout_s`` (then cancelled). A
refusal goes back to the model as data, with its code.

Audit lines of event ``assist``: the question (its digest and length, not its text),
each step (the tool, whether it succeeded, a ``run``'s ``job_id``; a refused draft's
finding code) and the outcome. The audit lines reach the HTTP layer's live events,
which is how ``POST /v1/assist`` streams the steps. ``[assist] enabled = false``
refuses every call (``QS1011``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import InvalidArgument, QMKError, QuotaError, UnavailableError
from qmk.rate import Buckets

if TYPE_CHECKING:
    from qmk.kernel.admit.budget import CpuBudget
    from qmk.kernel.clock import Clock
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.storage.audit import AuditLog

T = TypeVar("T")

#: The longest question the kernel takes.
MAX_PROMPT = 8192
#: Questions a tenant may ask at once before its rate applies (at least).
BURST = 3.0
#: A syscall of the caller's session: ``syscall("q_submit", graph=..., ...)``.
Syscall = Callable[..., Awaitable[replies.Job]]
#: A syscall as a wire makes it: ``await call(name, params)`` (the params hold the
#: session).
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


def per_tenant(max_concurrent: int) -> int:
    """The questions one tenant may have answered at once: half the kernel's, at least
    one, so that one tenant never holds every thread.

    >>> per_tenant(4), per_tenant(1), per_tenant(5)
    (2, 1, 3)
    """
    return max(1, (max_concurrent + 1) // 2)


class AssistDesk:
    """Answers tenants' questions with the configured model and QMK's tools.

    Args:
        config: the kernel configuration (its ``[assist]`` table).
        audit: the audit log.
        clock: the kernel's clock (the rate's buckets refill on it).
        cpu: the tenants' CPU budget and its threads (the tools' program work).
    """

    def __init__(self, config: KernelConfig, audit: AuditLog, clock: Clock, cpu: CpuBudget) -> None:
        self.config = config
        self.audit = audit
        self.clock = clock
        self.cpu = cpu
        per_s = config.assist.calls_per_minute / 60.0
        # a burst of a few questions, then calls_per_minute
        self.rates = Buckets(rate=per_s, burst=max(BURST, config.assist.calls_per_minute / 2))
        self.max_concurrent = config.assist.max_concurrent
        #: How the tools make their syscalls (``run``'s submit, wait and cancel): through
        #: the door ``qmk serve`` puts before the kernel, as a caller of the wire
        #: ``assist``, so its guards, metrics and traces apply to them as to any wire's
        #: calls; None: straight to the kernel (an in-process kernel, with no door).
        self.calls: Call | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.max_concurrent, thread_name_prefix="qmk-assist"
        )
        self._asking: dict[str, int] = {}

    def close(self) -> None:
        """Let the threads end (a question in one ends at its model's timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def charge(self, tenant: str) -> None:
        """Take one call from ``tenant``'s bucket.

        Raises:
            UnavailableError: the operator turned the assistant off.
            QuotaError: the bucket is empty (``retry_after_s``).
        """
        table = self.config.assist
        if not table.enabled:
            raise UnavailableError(
                "the operator turned the assistant off ([assist] enabled = false)"
            )
        wait = self.rates.take(tenant, self.clock.now())
        if wait:
            raise QuotaError(
                f"tenant {tenant!r} asks the assistant faster than [assist] "
                f"calls_per_minute ({table.calls_per_minute:g}): retry in {wait:.3g} s",
                limit="calls_per_minute",
                value=table.calls_per_minute,
                retry_after_s=round(wait, 3),
            )

    def _admit(self, tenant: str) -> None:
        """Count a question of ``tenant`` in, within the caps (before its rate is charged).

        Raises:
            QuotaError: ``tenant`` has :func:`per_tenant` of them already.
            UnavailableError: ``max_concurrent`` questions are being answered.
        """
        if not self.config.assist.enabled:
            return  # charge() says so
        mine, most = self._asking.get(tenant, 0), per_tenant(self.max_concurrent)
        if mine >= most:
            raise QuotaError(
                f"tenant {tenant!r} has {mine} questions being answered, the most one tenant "
                f"may ({most}, half of [assist] max_concurrent); wait for an answer",
                limit="concurrent_questions",
                value=most,
            )
        total = sum(self._asking.values())
        if total >= self.max_concurrent:
            raise UnavailableError(
                f"the assistant answers {total} questions already ([assist] max_concurrent "
                f"{self.max_concurrent}); retry when one is answered",
                limit="max_concurrent",
                value=self.max_concurrent,
            )

    async def ask(
        self,
        tenant: str,
        prompt: str,
        program: str | None,
        assist_id: str | None,
        limits: Any,
        *,
        session_id: str,
        direct: Call,
    ) -> replies.Assist:
        """Answer ``prompt`` for ``tenant`` (charged first).

        The tools' syscalls (``run``'s jobs) are made with the caller's ``session_id``,
        through :attr:`calls` where a door is set, else ``direct`` (the kernel's own).
        """
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            raise InvalidArgument(f"prompt: 1 to {MAX_PROMPT} characters", key="prompt")
        if assist_id is not None and (not assist_id or len(assist_id) > 64):
            raise InvalidArgument("assist_id: 1 to 64 characters", key="assist_id")
        self._admit(tenant)
        self.charge(tenant)
        assist_id = assist_id or uuid.uuid4().hex
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        line = {"tenant": tenant, "assist_id": assist_id}
        self.audit.append("assist", **line, step="ask", prompt_sha256=digest, chars=len(prompt))
        loop = asyncio.get_running_loop()

        def emit(event: Any) -> None:
            fields = _audit_fields(event)
            loop.call_soon_threadsafe(lambda: self.audit.append("assist", **line, **fields))

        call = self.calls or direct

        async def syscall(name: str, **params: Any) -> replies.Job:
            reply: replies.Job = await call(name, {"session_id": session_id, **params})
            return reply

        tools = _KernelTools(self, loop, tenant, syscall)
        self._asking[tenant] = self._asking.get(tenant, 0) + 1
        try:
            answer = await loop.run_in_executor(
                self._pool, self._answer, prompt, program, limits, emit, tools
            )
        except Exception as exc:
            code = getattr(exc, "code", type(exc).__name__)
            self.audit.append("assist", **line, step="end", outcome="error", code=code)
            raise
        finally:
            self._asking[tenant] -= 1
            if not self._asking[tenant]:
                del self._asking[tenant]
        self.audit.append("assist", **line, step="end", outcome=answer["status"])
        return replies.Assist(assist_id=assist_id, **answer)

    def _answer(
        self, prompt: str, program: str | None, limits: Any, emit: Any, tools: _KernelTools
    ) -> dict[str, Any]:
        from qmk.assist.advice import advice
        from qmk.assist.backends import Settings
        from qmk.assist.loop import assist
        from qmk.assist.tools import Context

        table = self.config.assist
        ctx = Context(
            file_text=program,
            file_name="program",
            limits=limits,
            max_shots=table.max_shots,
            compute=tools.compute,
            runner=tools.run,
        )
        settings = Settings(
            url=table.url,
            model=table.model,
            api=table.api,
            structured=table.structured,
            max_steps=table.max_steps,
            max_retries=table.max_retries,
            timeout_s=table.timeout_s,
        )
        if not settings.configured:
            return {
                "status": "advice",
                "text": "no model is configured ([assist] url and model): QMK's own advice",
                "program": None,
                "tool_results": [],
                "steps": 0,
                "advice": advice(prompt, ctx),
            }
        answer = assist(prompt, settings=settings, context=ctx, emit=emit)
        return {**answer.to_json(), "advice": []}


def _audit_fields(event: Any) -> dict[str, Any]:
    """What an assist audit line records of a step: the tool, whether it succeeded, its
    code and job, a refused draft's finding (never the program or the question)."""
    data = event.data
    fields: dict[str, Any] = {"step": event.kind}
    if "tool" in data:
        fields["tool"] = data["tool"]
    result = data.get("result")
    if isinstance(result, dict):
        fields["ok"] = bool(result.get("ok"))
        if result.get("code"):
            fields["code"] = result["code"]
        if isinstance(result.get("job_id"), str):
            fields["job_id"] = result["job_id"]
    if event.kind == "draft-refused":
        fields["finding"] = str(data.get("finding", ""))[:300]
    return fields


class _KernelTools:
    """The tools' work as the caller's, from a question's thread: program work in the
    tenant's CPU-budget threads, ``run`` as the caller's job; each handed to the
    kernel's loop and waited for in the question's thread."""

    def __init__(
        self,
        desk: AssistDesk,
        loop: asyncio.AbstractEventLoop,
        tenant: str,
        syscall: Syscall,
    ) -> None:
        self.desk, self.loop, self.tenant, self.syscall = desk, loop, tenant, syscall

    def _on_loop(self, work: Coroutine[Any, Any, T], limit_s: float) -> T:
        try:
            future = asyncio.run_coroutine_threadsafe(work, self.loop)
        except RuntimeError:  # the kernel's loop is closed
            work.close()
            raise UnavailableError("the kernel is closing: the tool was not run") from None
        try:
            return future.result(limit_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise UnavailableError(f"the tool did not end within {limit_s:g} s") from None
        except concurrent.futures.CancelledError:
            raise UnavailableError("the kernel is closing: the tool was stopped") from None

    def compute(self, work: Callable[[], T]) -> T:
        """``work()`` in the tenant's CPU-budget threads, charged to it (refused at once
        while the budget is spent: ``QS1006``, ``limit: "cpu_s_per_s"``)."""
        cpu, tenant = self.desk.cpu, self.tenant

        async def charged() -> T:
            cpu.check(tenant, "the assistant's tool")
            return await cpu.run(tenant, work)

        return self._on_loop(charged(), self.desk.config.assist.timeout_s)

    def run(self, lower: Callable[[], dict[str, Any]], shots: Any, seed: Any) -> dict[str, Any]:
        """``run``'s program as the caller's job (``q_submit`` checks the shots and
        seed; a seed None is drawn): its result, or a coded refusal."""
        wait_s = self.desk.config.assist.timeout_s
        return self._on_loop(self._job(lower, shots, seed, wait_s), wait_s + 30.0)

    async def _submit(
        self, lower: Callable[[], dict[str, Any]], shots: Any, seed: Any
    ) -> replies.Job:
        """The program read (``lower``) in the tenant's CPU-budget threads (refused at
        once while the budget is spent), then submitted; the reading is charged once
        the submit has answered, as the door charges a wire's program text, so the
        submit's own budget check never refuses it for its own reading."""
        cpu, tenant = self.desk.cpu, self.tenant
        cpu.check(tenant, "reading program text")
        graph, spent = await cpu.measure(tenant, lower)
        try:
            return await self.syscall(
                "q_submit", graph=graph, shots=shots, seed=seed, policy={"noise": False}
            )
        finally:
            cpu.spend(tenant, spent)

    async def _job(
        self, lower: Callable[[], dict[str, Any]], shots: Any, seed: Any, wait_s: float
    ) -> dict[str, Any]:
        job = await self._submit(lower, shots, seed)
        job_id = job.job_id
        wait_ms = min(int(wait_s * 1000), defaults.MAX_TIMEOUT_MS)
        done = await self.syscall("q_wait", job_id=job_id, timeout_ms=wait_ms)
        state = done.state
        if state not in defaults.FINAL_JOB_STATES:
            with contextlib.suppress(QMKError):  # it may have ended just now
                await self.syscall("q_cancel", job_id=job_id)
            late = UnavailableError(
                f"job {job_id} did not end within {wait_s:g} s ([assist] timeout_s); "
                "it was cancelled"
            )
            return {"ok": False, "code": late.code, "error": str(late), "job_id": job_id}
        if state != defaults.COMPLETED:
            error = done.error
            return {
                "ok": False,
                "code": state if error is None else error.code,
                "error": f"job {job_id} ended {state}" if error is None else error.message,
                "job_id": job_id,
                "state": state,
            }
        result = done.result
        assert isinstance(result, Mapping), "a COMPLETED job's answer holds its result"
        return {
            "ok": True,
            "job_id": job_id,
            "shots": done.shots,
            "seed": done.seed,
            "counts": dict(result["counts"]),
            "engine": result.get("engine"),
        }


__all__ = ["BURST", "MAX_PROMPT", "AssistDesk", "Call", "Syscall", "per_tenant"]
