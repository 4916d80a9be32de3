"""A model server that answers from a script: the OpenAI-compatible chat API on a real
loopback socket, for the kernel's side of the assistant (tests/assist/test_jobs.py).

The real model tests run llama-cpp-python on models the tests write
(:mod:`support.tinyllm`); these need a model that asks for one exact tool call (a run of
a program the test chose) and a model that takes as long as the test says, which a
script does exactly and at once. A model's name picks its script:

- ``calls:<key>``: the first reply asks for the tool call :attr:`ScriptedChat.calls`
  holds under ``<key>`` (``{"name", "arguments"}``); once the conversation holds a tool
  result, the reply is the text ``done`` (the loop's answer).
- ``prompt``: the tool call is the user's question itself, a JSON object ``{"name",
  "arguments"}`` (the file the kernel appends after it is left as it is); then ``done``
  as above. The door conformance suite's wire ``assist`` asks so, from any process:
  the script travels with the question.

``python -m support.chat_server`` serves one on its own (the bench's, so the prober's
process answers no model): it prints its URL and stops when its stdin closes.

Every request waits at :attr:`ScriptedChat.gate` (set: no wait) after it is counted in
:attr:`ScriptedChat.waiting`, so a test can hold models and know how many wait.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from support.json_server import json_server


class ScriptedChat:
    """The OpenAI chat API (``POST /v1/chat/completions``) answered from scripts."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = 0
        self._lock = threading.Condition()
        self.server, self.url = json_server("/v1/chat/completions", self.answer)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> ScriptedChat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, waiting: int, timeout: float = 60.0) -> None:
        """Return once ``waiting`` requests wait at the gate (the limit guards a hang)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.waiting >= waiting, timeout):
                raise AssertionError(f"{self.waiting} requests waited, not {waiting}")

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            self.waiting += 1
            self._lock.notify_all()
        try:
            self.gate.wait()
        finally:
            with self._lock:
                self.waiting -= 1
        model = str(body.get("model", ""))
        if any(m.get("role") == "tool" for m in body.get("messages", ())):
            return _message({"role": "assistant", "content": "done"})
        kind, _, key = model.partition(":")
        if kind == "prompt":
            call = _asked(body)
        elif kind == "calls" and key in self.calls:
            call = self.calls[key]
        else:
            call = None
        if call is None:
            return _message({"role": "assistant", "content": f"no script for {model!r}"})
        return _message(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call0",
                        "type": "function",
                        "function": {
                            "name": call["name"],
                            "arguments": json.dumps(call["arguments"]),
                        },
                    }
                ],
            }
        )


def _message(message: dict[str, Any]) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def _asked(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call a ``prompt`` conversation's question is (None: it is none)."""
    questions = [m for m in body.get("messages", ()) if m.get("role") == "user"]
    try:  # the question leads its message (the user's file may follow it)
        call, _ = json.JSONDecoder().raw_decode(questions[0]["content"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    return {"name": call["name"], "arguments": call.get("arguments") or {}}


def main() -> None:
    """Serve a :class:`ScriptedChat` until stdin closes; its URL is the first line out."""
    import sys

    chat = ScriptedChat().start()
    print(chat.url, flush=True)
    sys.stdin.read()
    chat.stop()


if __name__ == "__main__":
    main()
