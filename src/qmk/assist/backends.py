"""The model servers the assistant talks to: Ollama's API and the OpenAI-compatible one.

One call, :func:`chat`, sends the conversation and the tools and returns a
:class:`Reply`: the text and the tool calls. The OpenAI-compatible chat API is what
llama.cpp's server, vLLM and Ollama (under ``/v1``) all speak; Ollama's own
``/api/chat`` is the other. Nothing is sent unless :class:`Settings` names a URL and a
model. ``structured`` asks for one call of a given tool per reply (OpenAI's named
``tool_choice``, which llama.cpp turns into a grammar over the tool's JSON Schema;
Ollama's ``format`` schema), which keeps small local models to well-formed steps.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmk import defaults
from qmk.assist.errors import AssistError

#: The APIs the assistant speaks.
APIS = ("openai", "ollama")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Where the model is and how to ask it.

    Attributes:
        url: the server (``http://127.0.0.1:11434`` for Ollama; for the OpenAI API its
            base, with or without ``/v1``); None: not configured.
        model: the model's name on that server.
        api: ``"openai"`` or ``"ollama"``.
        structured: one forced ``step`` tool call per reply (small local models).
        temperature, seed, max_tokens: sampling, sent with every request.
        max_steps: model replies per question, at most.
        max_retries: drafts sent back after a refusal, at most.
        timeout_s: per request.
    """

    url: str | None = None
    model: str | None = None
    api: str = "openai"
    structured: bool = False
    temperature: float = 0.0
    seed: int | None = 0
    max_tokens: int = 1024
    max_steps: int = defaults.ASSIST_MAX_STEPS
    max_retries: int = defaults.ASSIST_MAX_RETRIES
    timeout_s: float = defaults.ASSIST_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise AssistError.of("bad-option", f"api {self.api!r}: use one of {', '.join(APIS)}")
        for name, low, high in (("max_steps", 1, 50), ("max_retries", 0, 10)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise AssistError.of("bad-option", f"{name}: {low} to {high}, got {value!r}")

    @property
    def configured(self) -> bool:
        return bool(self.url) and bool(self.model)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for: an id (echoed back with the result), name, arguments."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's reply: its text and its tool calls (either may be empty)."""

    content: str
    calls: tuple[ToolCall, ...] = field(default=())


def chat(
    settings: Settings,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    *,
    force: str | None = None,
) -> Reply:
    """Ask the model. ``force``: the one tool it must call (structured steps).

    Raises:
        AssistError: ``QI101`` when not configured, ``QI102`` when the server does not
            answer, ``QI103`` when its answer is not a chat reply.
    """
    if not settings.configured:
        raise AssistError.of("not-configured", "no model is configured (url and model)")
    if settings.api == "ollama":
        return _ollama(settings, messages, tools, force)
    return _openai(settings, messages, tools, force)


def _post(settings: Settings, url: str, body: Mapping[str, Any]) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise AssistError.of(
            "backend-unreachable", f"{url}: HTTP {exc.code}: {detail}", status=exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AssistError.of("backend-unreachable", f"{url}: {reason}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise AssistError.of("bad-reply", f"{url}: the reply is not JSON") from None


def _arguments(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    return value if isinstance(value, Mapping) else {"_unparsed": str(raw)[:500]}


def _openai(
    settings: Settings,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    force: str | None,
) -> Reply:
    base = str(settings.url).rstrip("/")
    url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": list(messages),
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "stream": False,
    }
    if settings.seed is not None:
        body["seed"] = settings.seed
    if tools:
        body["tools"] = list(tools)
        if force is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": force}}
    data = _post(settings, url, body)
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise AssistError.of("bad-reply", f"{url}: no choices[0].message in the reply") from None
    calls = tuple(
        ToolCall(
            str(call.get("id") or f"call{k}"),
            str(call.get("function", {}).get("name", "")),
            _arguments(call.get("function", {}).get("arguments")),
        )
        for k, call in enumerate(message.get("tool_calls") or ())
    )
    return Reply(str(message.get("content") or ""), calls)


def _ollama(
    settings: Settings,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    force: str | None,
) -> Reply:
    url = str(settings.url).rstrip("/") + "/api/chat"
    options: dict[str, Any] = {"temperature": settings.temperature}
    options["num_predict"] = settings.max_tokens
    if settings.seed is not None:
        options["seed"] = settings.seed
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": list(messages),
        "stream": False,
        "options": options,
    }
    forced = next((t for t in tools if t["function"]["name"] == force), None)
    if forced is not None:
        # Ollama has no tool_choice: its structured output takes the tool's schema
        body["format"] = forced["function"]["parameters"]
    elif tools:
        body["tools"] = list(tools)
    data = _post(settings, url, body)
    message = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping):
        raise AssistError.of("bad-reply", f"{url}: no message in the reply")
    content = str(message.get("content") or "")
    if forced is not None:
        return Reply("", (ToolCall("call0", str(force), _arguments(content)),))
    calls = tuple(
        ToolCall(
            f"call{k}",
            str(call.get("function", {}).get("name", "")),
            _arguments(call.get("function", {}).get("arguments")),
        )
        for k, call in enumerate(message.get("tool_calls") or ())
    )
    return Reply(content, calls)
