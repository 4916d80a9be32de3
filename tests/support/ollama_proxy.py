"""Ollama's ``/api/chat`` in front of an OpenAI-compatible server, for the assistant's
Ollama backend: the request and reply shapes of Ollama's API documentation, answered by
the real llama-cpp-python server and its model behind it.

- ``format`` (a JSON Schema, Ollama's structured outputs) becomes a forced tool whose
  parameters are that schema, and the call's arguments come back as the message's
  ``content`` (a JSON text), as Ollama returns structured output;
- ``tools`` pass through, and tool calls come back with ``arguments`` as an object
  (Ollama's form, where OpenAI's is a JSON string);
- ``options.temperature``, ``options.seed`` and ``options.num_predict`` map to the
  OpenAI fields.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from support.json_server import json_server


class OllamaProxy:
    """A real HTTP server on loopback that speaks Ollama's chat API."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[dict[str, Any]] = []

        def answer(body: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(body)
            return self.chat(body)

        self.server, self.url = json_server("/api/chat", answer)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OllamaProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        options = body.get("options", {})
        openai: dict[str, Any] = {
            "model": body["model"],
            "messages": body["messages"],
            "temperature": options.get("temperature", 0.8),
            "max_tokens": options.get("num_predict", 512),
            "stream": False,
        }
        if "seed" in options:
            openai["seed"] = options["seed"]
        schema = body.get("format")
        if isinstance(schema, dict):
            openai["tools"] = [
                {"type": "function", "function": {"name": "structured", "parameters": schema}}
            ]
            openai["tool_choice"] = {"type": "function", "function": {"name": "structured"}}
        elif body.get("tools"):
            openai["tools"] = body["tools"]
        request = urllib.request.Request(
            self.upstream + "/v1/chat/completions",
            data=json.dumps(openai).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            message = json.loads(response.read())["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if isinstance(schema, dict):
            content = calls[0]["function"]["arguments"] if calls else message.get("content", "")
            return {
                "model": body["model"],
                "message": {"role": "assistant", "content": content},
                "done": True,
            }
        out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if calls:
            out["tool_calls"] = [
                {
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    }
                }
                for c in calls
            ]
        return {"model": body["model"], "message": out, "done": True}
