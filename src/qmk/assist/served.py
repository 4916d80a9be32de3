"""The assistant's process under a kernel: one question answered in a worker of the
kernel's assistant pool, never in the kernel's own process.

The kernel (:mod:`qmk.kernel.admit.assist`) admits, rates and audits the question, then
hands :func:`answer` to its assistant pool (:func:`~qmk.kernel.pools.networked.assistant_pool`).
Here the model's loop runs, with its network calls. The tools' program work (reading,
lowering, verifying, estimating) does not: the process that holds the network never
reads a program. Each tool call goes to the kernel over the task's line
(:meth:`~qmk.kernel.pools.worker.TaskLink.ask`), as plain data:

- ``{"tool": {"name", "args"}}``: the kernel checks the tenant's CPU budget, runs the
  call in its planner process (:func:`qmk.assist.tools.planned`: confined, no network),
  charges its CPU, and for ``run`` submits the program as the caller's job and waits
  for it. The answer is ``{"result": ...}`` or ``{"error": ...}``, a coded refusal
  raised here (the tool's result then says it, as any refusal);
- ``{"audit": fields}`` (a note): a step, for the kernel's audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from qmk.assist.advice import advice
from qmk.assist.backends import Settings
from qmk.assist.loop import assist
from qmk.assist.tools import Context
from qmk.errors import QMKError


class Line(Protocol):
    """The task's line to the kernel, as the pool gives it."""

    def ask(self, payload: Any) -> Any:
        """Send ``payload`` and wait for the kernel's answer."""

    def notify(self, payload: Any) -> None:
        """Send ``payload``; no answer."""


def answer(line: Line, question: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``question`` (its ``prompt``, ``program``, ``limits``, ``max_shots``
    and the ``settings`` of the model), as plain data: the fields of
    :class:`~qmk.abi.replies.Assist` but its id. ``line`` is the task's line to the
    kernel (the pool passes it: :func:`~qmk.kernel.pools.workers.linked`).

    Raises:
        QMKError: the model cannot answer (``QI1xx``), or the kernel refused a check.
    """
    kernel = _Kernel(line.ask, line.notify)
    prompt: str = question["prompt"]
    ctx = Context(
        file_text=question["program"],
        file_name="program",
        limits=question["limits"],
        max_shots=question["max_shots"],
        remote=kernel.tool,
    )
    settings = Settings(**question["settings"])
    if not settings.configured:
        return {
            "status": "advice",
            "text": "no model is configured ([assist] url and model): QMK's own advice",
            "program": None,
            "tool_results": [],
            "steps": 0,
            "advice": advice(prompt, ctx),
        }
    reply = assist(prompt, settings=settings, context=ctx, emit=kernel.emit)
    return {**reply.to_json(), "advice": []}


class _Kernel:
    """The kernel as the tools reach it from here: ``ask`` sends a note and waits for
    the kernel's answer, ``tell`` sends a note (see the module docstring)."""

    def __init__(self, ask: Callable[[Any], Any], tell: Callable[[Any], None]) -> None:
        self.ask, self.tell = ask, tell

    def tool(self, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Tool ``name`` with ``args``, run by the kernel in its planner process (``run``:
        as the caller's job): its result, or the kernel's coded refusal raised."""
        reply = self.ask({"tool": {"name": name, "args": dict(args)}})
        _raise(reply)
        result: dict[str, Any] = reply["result"]
        return result

    def emit(self, event: Any) -> None:
        """A step of the model's loop, for the kernel's audit log."""
        self.tell({"audit": audit_fields(event)})


def _raise(reply: dict[str, Any]) -> None:
    """Raise the kernel's coded refusal that ``reply`` carries, if it carries one."""
    error = reply.get("error")
    if error is not None:
        raise QMKError.from_json(error)


def audit_fields(event: Any) -> dict[str, Any]:
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


__all__ = ["answer", "audit_fields"]
