"""The kernel's side of the assistant (``q_assist``, ``POST /v1/assist``): per tenant,
audited, rate-limited, bounded, off when the operator says so, answered out of the
kernel's process, and its tools run as the caller's own work.

Each question is charged to the tenant's bucket (a burst of :data:`BURST`, then
``[assist] calls_per_minute``; an empty bucket is ``QS1006`` with ``retry_after_s``).
At most ``[assist] max_concurrent`` questions are answered at once
(another is ``QS1011``, at once), and at most :func:`per_tenant` of them for one tenant
(``QS1006``, ``limit: "concurrent_questions"``).

**The kernel admits the question; an assistant process answers it.** The model's loop
(a network call that may take minutes) and its replies run in a worker of the kernel's
assistant pool (:func:`~qmk.kernel.pools.networked.assistant_pool`: one worker per
question at once, confined as the job workers are but for the network, and capped at
their memory), in :func:`qmk.assist.served.answer`. The kernel never loads
:mod:`qmk.assist`; a process that dies, or runs past its memory or CPU cap, costs its
question an ``unavailable``, and the pool starts another.

**The tools are the caller's work, never the kernel's, and never the networked
process's.** Each tool call comes over the question's task line, and the desk answers on
the kernel's loop (:meth:`AssistDesk._heard`). The tenant's ``cpu_s_per_s`` budget is
checked first. The call then runs whole in the kernel's planner process
(:func:`qmk.assist.tools.planned`, confined with no network: the process that reads a
program text cannot send it anywhere), with OpenQASM's loops capped at
``max_graph_nodes`` before they unroll. Its CPU there is charged to the tenant
(:class:`~qmk.kernel.admit.budget.CpuBudget`). ``run``'s program, lowered there, is a job
of the caller: submitted with the caller's session, through the door under ``qmk
serve`` (:attr:`AssistDesk.calls`) (``q_submit``: its capabilities, quotas, qubit
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
import contextlib
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import qmk.abi.replies as replies
from qmk import defaults
from qmk.errors import InvalidArgument, QMKError, QuotaError, UnavailableError
from qmk.rate import Buckets

if TYPE_CHECKING:
    from qmk.kernel.admit.budget import CpuBudget
    from qmk.kernel.clock import Clock
    from qmk.kernel.config import KernelConfig
    from qmk.kernel.storage.audit import AuditLog

#: The longest question the kernel takes.
MAX_PROMPT = 8192
#: Questions a tenant may ask at once before its rate applies (at least).
BURST = 3.0
#: A syscall of the caller's session: ``syscall("q_submit", graph=..., ...)``.
Syscall = Callable[..., Awaitable[replies.Job]]
#: A syscall as a wire makes it: ``await call(name, params)`` (the params hold the
#: session).
Call = Callable[[str, dict[str, Any]], Awaitable[Any]]
#: Runs a function in the kernel's planner process, its answer plain data:
#: ``await plan(function, *args, what=...)`` (:meth:`~qmk.kernel.admit.planner.Planner.run`).
Plan = Callable[..., Awaitable[Any]]


class Pool(Protocol):
    """The assistant's pool as the desk drives it (a
    :class:`~qmk.kernel.pools.pool.WorkerPool`, this layer's neighbour): an executor
    that hears a running task's notes and sends it requests."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a worker."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the workers."""

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener`` called with each note of ``future``'s task."""

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running task."""


def per_tenant(max_concurrent: int) -> int:
    """The questions one tenant may have answered at once: half the kernel's, at least
    one, so that one tenant never holds every thread.

    >>> per_tenant(4), per_tenant(1), per_tenant(5)
    (2, 1, 3)
    """
    return max(1, (max_concurrent + 1) // 2)


class AssistDesk:
    """Admits tenants' questions, and has the assistant's processes answer them with the
    configured model and QMK's tools.

    Args:
        config: the kernel configuration (its ``[assist]`` table).
        audit: the audit log.
        clock: the kernel's clock (the rate's buckets refill on it).
        cpu: the tenants' CPU budget (the tools' program work is charged to it).
        start: makes the assistant pool on the kernel's loop, at the first question
            (:func:`~qmk.kernel.pools.networked.assistant_pool`).
        answer: the task that answers a question there, given the question
            (:func:`qmk.assist.served.answer`, through
            :func:`~qmk.kernel.pools.workers.linked`).
        plan: runs a function in the kernel's planner process (the tools' calls).
        tool: the planner's task for one tool call, given the call and the question's
            program, limits and shot cap (:func:`qmk.assist.tools.planned`, through
            :func:`~qmk.kernel.pools.workers.linked`).
    """

    def __init__(
        self,
        config: KernelConfig,
        audit: AuditLog,
        clock: Clock,
        cpu: CpuBudget,
        start: Callable[[asyncio.AbstractEventLoop], Pool],
        answer: Callable[[dict[str, Any]], dict[str, Any]],
        plan: Plan,
        tool: Callable[..., dict[str, Any]],
    ) -> None:
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
        self._start, self._answer = start, answer
        self._plan, self._tool = plan, tool
        self._pool: Pool | None = None
        self._asking: dict[str, int] = {}
        self._runs: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """End the assistant's processes (a question in one ends unanswered)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

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

        Raises:
            UnavailableError: the assistant's process died or ran past its caps.
            QMKError: the model could not answer (``QI1xx``), or a refusal of the desk.
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
        call = self.calls or direct

        async def syscall(name: str, **params: Any) -> replies.Job:
            reply: replies.Job = await call(name, {"session_id": session_id, **params})
            return reply

        table = self.config.assist
        question = {
            "prompt": prompt,
            "program": program,
            "limits": limits,
            "max_shots": table.max_shots,
            "settings": {
                "url": table.url,
                "model": table.model,
                "api": table.api,
                "structured": table.structured,
                "max_steps": table.max_steps,
                "max_retries": table.max_retries,
                "timeout_s": table.timeout_s,
            },
        }
        if self._pool is None:
            self._pool = self._start(asyncio.get_running_loop())
        pool = self._pool
        self._asking[tenant] = self._asking.get(tenant, 0) + 1
        try:
            future = pool.submit(self._answer, question)
            heard = functools.partial(self._heard, pool, future, tenant, line, syscall, question)
            pool.listen(future, heard)
            answer = await _answered(future)
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

    def _heard(
        self,
        pool: Pool,
        future: Future[Any],
        tenant: str,
        line: dict[str, str],
        syscall: Syscall,
        question: dict[str, Any],
        note: Any,
    ) -> None:
        """A note of a question's process, on the kernel's loop (the module docstring):
        a step to audit, or a tool call to run."""
        if not isinstance(note, dict):
            return
        if "audit" in note:
            self.audit.append("assist", **line, **note["audit"])
        elif "tool" in note:
            call = self._call(pool, future, tenant, syscall, question, note["tool"])
            task = asyncio.ensure_future(call)
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _call(
        self,
        pool: Pool,
        future: Future[Any],
        tenant: str,
        syscall: Syscall,
        question: dict[str, Any],
        call: dict[str, Any],
    ) -> None:
        """A tool call of a question's process, and its answer sent back: run in the
        planner process once the tenant's CPU budget allows, its CPU charged (``run``'s
        once its job's submit has answered, as the door charges a wire's program text)."""
        try:
            self.cpu.check(tenant, "reading program text")  # as the door says it
            answer = await self._plan(
                self._tool,
                call["name"],
                call["args"],
                question["program"],
                question["limits"],
                question["max_shots"],
                what="the assistant's tool",
            )
            spent = float(answer["cpu_s"])
            if "run" in answer:
                result = await self._job(tenant, syscall, answer["run"], spent)
            else:
                self.cpu.spend(tenant, spent)
                result = answer["result"]
        except QMKError as exc:
            pool.request(future, {"error": exc.to_json()})
        else:
            pool.request(future, {"result": result})

    async def _job(
        self, tenant: str, syscall: Syscall, run: dict[str, Any], spent: float
    ) -> dict[str, Any]:
        """``run``'s program (lowered in the planner process, ``spent`` CPU seconds there)
        as the caller's job: its result, or a coded refusal raised. The reading is
        charged once the submit has answered."""
        wait_s = self.config.assist.timeout_s
        try:
            job = await syscall(
                "q_submit",
                graph=run["graph"],
                shots=run["shots"],
                seed=run["seed"],
                policy={"noise": False},
            )
        finally:
            self.cpu.spend(tenant, spent)
        job_id = job.job_id
        wait_ms = min(int(wait_s * 1000), defaults.MAX_TIMEOUT_MS)
        done = await syscall("q_wait", job_id=job_id, timeout_ms=wait_ms)
        state = done.state
        if state not in defaults.FINAL_JOB_STATES:
            with contextlib.suppress(QMKError):  # it may have ended just now
                await syscall("q_cancel", job_id=job_id)
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


async def _answered(future: Future[Any]) -> dict[str, Any]:
    """The answer of a question's process; its coded error raised as it is, a process
    that did not answer (died, killed, past its caps) as ``unavailable``."""
    try:
        answer: dict[str, Any] = await asyncio.wrap_future(future)
    except Exception as exc:
        # the pool's TaskError (qmk.kernel.pools, this layer's neighbour) says why by its
        # kind; "error" is the answer's own, with its code where it was a QMKError
        kind = getattr(exc, "kind", None)
        if kind is None:
            raise
        error = getattr(exc, "data", {}).get("error")
        if kind == "error" and isinstance(error, dict):
            raise QMKError.from_json(error) from None
        raise UnavailableError(
            f"the assistant's process did not answer ({kind}: {exc}); ask again",
            reason=f"assistant-{kind}",
        ) from None
    return answer


__all__ = ["BURST", "MAX_PROMPT", "AssistDesk", "Call", "Syscall", "per_tenant"]
