"""The assistant's loop: the model asks QMK's tools, and nothing it drafts reaches the user
unverified.

:func:`assist` sends the question (and the user's file) to the model with QMK's tools
(:data:`qmk.assist.tools.TOOLS`). Each reply is either tool calls, which QMK answers
with the tools' results (refusals included, as data), or an answer. An answer that
carries a program (a fenced code block, or the ``program`` of a structured step) is
validated by QMK first: a draft that passes is shown; one that fails goes back to the
model with the finding, at most ``max_retries`` times, and then the user gets the
finding and no program (``QI104``). A model that repeats a tool call it already made has
nothing new to ask: the loop ends there, with the answer built from what the tools
returned. Every step is reported to ``emit`` as an :class:`Event` as it happens (the
HTTP route streams them).

**Structured steps** (``Settings.structured``): each reply must be one call of the tool
``step`` (``action``: a tool's name or ``answer``; ``program``; ``text``), forced by the
request, so a small local model under a grammar cannot wander from the protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qmk.assist.backends import Reply, Settings, chat
from qmk.assist.errors import AssistError
from qmk.assist.tools import TOOLS, Context, call

SYSTEM = (
    "You are QMK's assistant for quantum programs. QMK is a quantum microkernel: it "
    "verifies programs (OpenQASM 2/3, QVM assembly, QIR), estimates their physical "
    "resources, plans code variants and runs them on simulated logical qubits. Use the "
    "tools for every fact about a program: never invent a count, a cost or a finding. "
    'The user\'s file, when there is one, is the program "file". When you write or fix a '
    "program, put it in one fenced code block (```qasm); QMK verifies it before the user "
    "sees it and sends you the finding if it fails."
)
#: The one tool of structured steps.
STEP_TOOL = "step"
#: A fenced code block: the draft of an answer.
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\n(.*?)```", re.S)


@dataclass(frozen=True, slots=True)
class Event:
    """One step of the loop, as the HTTP route streams it."""

    kind: str  # tool-call, tool-result, draft-refused, answer
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **self.data}


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the user gets: the text, a verified program (or None), the tool results.
    (Every draft refused is no answer: :class:`~qmk.assist.errors.AssistError` QI104.)"""

    status: str
    text: str
    program: str | None = None
    tool_results: tuple[Mapping[str, Any], ...] = field(default=())
    steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "text": self.text,
            "program": self.program,
            "tool_results": [dict(r) for r in self.tool_results],
            "steps": self.steps,
        }


def step_schema() -> dict[str, Any]:
    """The ``step`` tool of structured mode."""
    return {
        "type": "function",
        "function": {
            "name": STEP_TOOL,
            "description": "one step: call a QMK tool on a program, or answer",
            "parameters": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": [*TOOLS, "answer"]},
                    "program": {"type": "string"},
                    "text": {"type": "string"},
                },
                "required": ["action", "program", "text"],
            },
        },
    }


def _user_message(prompt: str, ctx: Context) -> str:
    if ctx.file_text is None:
        return prompt
    name = ctx.file_name or "file"
    return f'{prompt}\n\nThe user\'s file "{name}" (the program "file"):\n```\n{ctx.file_text}\n```'


class _Loop:
    """One question's state: the conversation, the calls made, the results."""

    def __init__(self, settings: Settings, ctx: Context, emit: Callable[[Event], None]) -> None:
        self.settings = settings
        self.ctx = ctx
        self.emit = emit
        self.messages: list[dict[str, Any]] = []
        self.results: list[Mapping[str, Any]] = []
        self.seen: dict[str, Mapping[str, Any]] = {}
        self.retries = 0

    def tool(self, name: str, args: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """The tool's result, and whether the model asked for it before."""
        key = json.dumps([name, args], sort_keys=True, default=str)
        if key in self.seen:
            return self.seen[key], True
        self.emit(Event("tool-call", {"tool": name, "arguments": dict(args)}))
        result = call(name, args, self.ctx)
        self.seen[key] = result
        self.results.append({"tool": name, "arguments": dict(args), "result": result})
        self.emit(Event("tool-result", {"tool": name, "result": result}))
        return result, False

    def draft(self, text: str, program: str, steps: int) -> Answer | None:
        """Validate a drafted program: the answer, or None after sending the finding back."""
        verdict = call("validate", {"program": program}, self.ctx)
        if verdict.get("ok"):
            answer = Answer(
                status="answered",
                text=text,
                program=program,
                tool_results=tuple(self.results),
                steps=steps,
            )
            self.emit(Event("answer", answer.to_json()))
            return answer
        finding = _finding(verdict)
        self.emit(Event("draft-refused", {"program": program, "finding": finding}))
        self.retries += 1
        if self.retries > self.settings.max_retries:
            raise AssistError.of(
                "unverified",
                f"the model's program failed validation {self.retries} times; the last "
                f"finding: {finding}",
                finding=finding,
            )
        self.messages.append(
            {
                "role": "user",
                "content": f"QMK's verifier refused that program: {finding}. Fix it and "
                "answer again.",
            }
        )
        return None


def _finding(verdict: Mapping[str, Any]) -> str:
    if "error" in verdict:
        return str(verdict["error"])
    errors = [f for f in verdict.get("findings", ()) if f.get("severity") == "error"]
    return "; ".join(f"{f['code']}: {f['message']}" for f in errors[:3]) or "refused"


def assist(
    prompt: str,
    *,
    settings: Settings,
    context: Context | None = None,
    emit: Callable[[Event], None] | None = None,
) -> Answer:
    """Answer ``prompt`` with the model and QMK's tools.

    Raises:
        AssistError: QI101 (not configured), QI102 (server), QI103 (no usable reply
            within ``max_steps``), QI104 (every draft refused, with the finding).
    """
    ctx = context or Context()
    loop = _Loop(settings, ctx, emit or (lambda event: None))
    loop.messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _user_message(prompt, ctx)},
    ]
    tools = [step_schema()] if settings.structured else [t.schema() for t in TOOLS.values()]
    force = STEP_TOOL if settings.structured else None
    for steps in range(1, settings.max_steps + 1):
        reply = chat(settings, loop.messages, tools, force=force)
        answer = (
            _structured(loop, reply, steps) if settings.structured else _free(loop, reply, steps)
        )
        if answer is not None:
            return answer
    raise AssistError.of(
        "bad-reply", f"no answer within {settings.max_steps} model replies (max_steps)"
    )


def _repeated(loop: _Loop, steps: int, text: str) -> Answer:
    """The answer when the model repeats a call: what the tools returned."""
    answer = Answer(
        status="answered",
        text=text or "QMK's tools answered; the model asked nothing new.",
        tool_results=tuple(loop.results),
        steps=steps,
    )
    loop.emit(Event("answer", answer.to_json()))
    return answer


def _free(loop: _Loop, reply: Reply, steps: int) -> Answer | None:
    if reply.calls:
        loop.messages.append(
            {
                "role": "assistant",
                "content": reply.content,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in reply.calls
                ],
            }
        )
        fresh = False
        for c in reply.calls:
            result, again = loop.tool(c.name, c.arguments)
            fresh = fresh or not again
            loop.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": c.id,
                    "name": c.name,
                    "content": json.dumps(result),
                }
            )
        return None if fresh else _repeated(loop, steps, reply.content)
    loop.messages.append({"role": "assistant", "content": reply.content})
    drafts = _FENCE.findall(reply.content)
    if drafts:
        return loop.draft(reply.content, drafts[-1], steps)
    answer = Answer(
        status="answered", text=reply.content, tool_results=tuple(loop.results), steps=steps
    )
    loop.emit(Event("answer", answer.to_json()))
    return answer


def _structured(loop: _Loop, reply: Reply, steps: int) -> Answer | None:
    step = next((c for c in reply.calls if c.name == STEP_TOOL), None)
    if step is None:
        loop.messages.append(
            {"role": "user", "content": f"Reply with one call of the tool {STEP_TOOL!r}."}
        )
        return None
    action = str(step.arguments.get("action", ""))
    program = str(step.arguments.get("program", ""))
    text = str(step.arguments.get("text", ""))
    loop.messages.append(
        {"role": "assistant", "content": json.dumps(dict(step.arguments), default=str)}
    )
    if action in TOOLS:
        result, again = loop.tool(action, {"program": program})
        if again:
            return _repeated(loop, steps, text)
        loop.messages.append(
            {"role": "user", "content": f"QMK's {action} returned: {json.dumps(result)}"}
        )
        return None
    if action == "answer":
        if program.strip() and program.strip() != "none":
            return loop.draft(text, program, steps)
        answer = Answer(status="answered", text=text, tool_results=tuple(loop.results), steps=steps)
        loop.emit(Event("answer", answer.to_json()))
        return answer
    loop.messages.append(
        {"role": "user", "content": f"Unknown action {action!r}: use one of {[*TOOLS, 'answer']}."}
    )
    return None
