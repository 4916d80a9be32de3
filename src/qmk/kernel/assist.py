"""The kernel's side of the assistant (``q_assist``, ``POST /v1/assist``): per tenant,
audited, rate-limited, and off when the operator says so.

Each question is charged to the tenant's bucket (a burst of :data:`BURST`, then
``[assist] calls_per_minute``; an empty bucket is ``QS1006`` with ``retry_after_s``),
runs in a thread (the model's server is a network call: never on the event loop), and
writes audit lines of event ``assist``:
the question (its digest and length, not its text), each step (the tool and whether it
succeeded; a refused draft's finding code) and the outcome. The audit lines reach the
HTTP layer's live events, which is how ``POST /v1/assist`` streams the steps. The
``run`` tool is capped at ``[assist] max_shots`` shots on ideal qubits, within the
tenant's graph limits. ``[assist] enabled = false`` refuses every call (``QS1011``).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from qmk.errors import InvalidArgument, QuotaError, UnavailableError
from qmk.rate import Buckets

if TYPE_CHECKING:
    from qmk.kernel.audit import AuditLog
    from qmk.kernel.clock import Clock
    from qmk.kernel.config import KernelConfig

#: The longest question the kernel takes.
MAX_PROMPT = 8192
#: Questions a tenant may ask at once before its rate applies (at least).
BURST = 3.0


class AssistDesk:
    """Answers tenants' questions with the configured model and QMK's tools."""

    def __init__(self, config: KernelConfig, audit: AuditLog, clock: Clock) -> None:
        self.config = config
        self.audit = audit
        self.clock = clock
        per_s = config.assist.calls_per_minute / 60.0
        # a burst of a few questions, then calls_per_minute
        self.rates = Buckets(rate=per_s, burst=max(BURST, config.assist.calls_per_minute / 2))

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

    async def ask(
        self,
        tenant: str,
        prompt: str,
        program: str | None,
        assist_id: str | None,
        limits: Any,
    ) -> dict[str, Any]:
        """Answer ``prompt`` for ``tenant`` (charged first); the answer as JSON."""
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            raise InvalidArgument(f"prompt: 1 to {MAX_PROMPT} characters", key="prompt")
        if assist_id is not None and (not assist_id or len(assist_id) > 64):
            raise InvalidArgument("assist_id: 1 to 64 characters", key="assist_id")
        self.charge(tenant)
        assist_id = assist_id or uuid.uuid4().hex
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        line = {"tenant": tenant, "assist_id": assist_id}
        self.audit.append("assist", **line, step="ask", prompt_sha256=digest, chars=len(prompt))
        loop = asyncio.get_running_loop()

        def emit(event: Any) -> None:
            data = event.data
            fields: dict[str, Any] = {"step": event.kind}
            if "tool" in data:
                fields["tool"] = data["tool"]
            result = data.get("result")
            if isinstance(result, dict):
                fields["ok"] = bool(result.get("ok"))
                if result.get("code"):
                    fields["code"] = result["code"]
            if event.kind == "draft-refused":
                fields["finding"] = str(data.get("finding", ""))[:300]
            loop.call_soon_threadsafe(lambda: self.audit.append("assist", **line, **fields))

        try:
            answer = await asyncio.to_thread(self._answer, prompt, program, limits, emit)
        except Exception as exc:
            code = getattr(exc, "code", type(exc).__name__)
            self.audit.append("assist", **line, step="end", outcome="error", code=code)
            raise
        self.audit.append("assist", **line, step="end", outcome=answer["status"])
        return {"assist_id": assist_id, **answer}

    def _answer(self, prompt: str, program: str | None, limits: Any, emit: Any) -> dict[str, Any]:
        from qmk.assist.advice import advice
        from qmk.assist.backends import Settings
        from qmk.assist.loop import assist
        from qmk.assist.tools import Context

        table = self.config.assist
        ctx = Context(
            file_text=program, file_name="program", limits=limits, max_shots=table.max_shots
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
