"""The assistant's loop against a real OpenAI-compatible server (llama-cpp-python) whose
tiny models the tests write: tool calls answered by QMK, verified drafts shown, refused
drafts never shown."""

from __future__ import annotations

import socket

import pytest

from qmk.assist.backends import Settings
from qmk.assist.errors import AssistError
from qmk.assist.loop import Event, assist
from qmk.assist.tools import Context
from support.tinyllm import BELL, BROKEN


def _settings(llama, model: str, **options) -> Settings:
    return Settings(url=llama.url, model=model, structured=True, **options)


def test_a_draft_that_validates_is_shown(llama):
    events: list[Event] = []
    answer = assist(
        "make a Bell pair", settings=_settings(llama, "drafts-bell"), emit=events.append
    )
    assert answer.program == BELL
    assert answer.text == "A Bell pair."
    assert [e.kind for e in events] == ["answer"]


def test_a_draft_that_fails_validation_is_never_shown(llama):
    events: list[Event] = []
    with pytest.raises(AssistError) as caught:
        assist(
            "make a Bell pair",
            settings=_settings(llama, "drafts-broken", max_retries=2),
            emit=events.append,
        )
    assert caught.value.code == "QI104"
    assert "QL107" in caught.value.details["finding"]  # the verifier's own finding
    refused = [e for e in events if e.kind == "draft-refused"]
    assert len(refused) == 3  # the first draft and two retries
    assert all(e.data["program"] == BROKEN for e in refused)
    assert not any(e.kind == "answer" for e in events)


def test_a_tool_call_is_answered_by_qmk_and_a_repeat_ends_the_loop(llama):
    events: list[Event] = []
    answer = assist("run a Bell pair", settings=_settings(llama, "runs-bell"), emit=events.append)
    assert [e.kind for e in events] == ["tool-call", "tool-result", "answer"]
    (run,) = answer.tool_results
    assert run["tool"] == "run"
    counts = run["result"]["counts"]
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1000  # QMK ran it
    assert answer.program is None  # the model drafted nothing to show


def test_the_users_file_is_what_the_estimate_tool_costs(llama, tmp_path):
    ctx = Context(file_text=BELL, file_name="bell.qasm")
    answer = assist("what will this cost?", settings=_settings(llama, "costs-file"), context=ctx)
    (estimate,) = answer.tool_results
    assert estimate["result"]["ok"] is True
    assert estimate["result"]["physicalQubits"] > 0


def test_free_tool_calling_verifies_a_fenced_draft(llama):
    settings = Settings(url=llama.url, model="writes-fenced", structured=False)
    answer = assist("make a Bell pair", settings=settings)
    assert answer.program == BELL
    assert answer.text.startswith("Here is a Bell pair")


def test_a_server_that_does_not_answer_is_QI102():
    with socket.socket() as probe:  # bound, never listening: a connection is refused (and
        probe.bind(("127.0.0.1", 0))  # held, so no other process takes the port meanwhile)
        settings = Settings(
            url=f"http://127.0.0.1:{probe.getsockname()[1]}", model="m", timeout_s=5
        )
        with pytest.raises(AssistError) as caught:
            assist("hello", settings=settings)
    assert caught.value.code == "QI102"


def test_an_http_error_is_QI102_naming_the_status(llama):
    settings = Settings(url=llama.url + "/no/such/path", model="drafts-bell", structured=True)
    with pytest.raises(AssistError) as caught:
        assist("hello", settings=settings)
    assert caught.value.code == "QI102"
    assert caught.value.details["status"] == 404


def test_the_ollama_api_carries_structured_steps_and_options(llama):
    from support.ollama_proxy import OllamaProxy

    with OllamaProxy(llama.url) as ollama:
        settings = Settings(
            url=ollama.url, model="drafts-bell", api="ollama", structured=True, seed=7
        )
        answer = assist("make a Bell pair", settings=settings)
    assert answer.program == BELL
    (request,) = ollama.requests
    assert request["format"]["properties"]["action"]["enum"][-1] == "answer"
    assert request["options"] == {"temperature": 0.0, "num_predict": 1024, "seed": 7}
    assert "tools" not in request  # a forced step travels as the format schema


def test_the_ollama_api_answers_free_tool_calling(llama):
    from support.ollama_proxy import OllamaProxy

    with OllamaProxy(llama.url) as ollama:
        settings = Settings(url=ollama.url, model="writes-fenced", api="ollama")
        answer = assist("make a Bell pair", settings=settings)
    assert answer.program == BELL
    assert {t["function"]["name"] for t in ollama.requests[0]["tools"]} == {
        "validate",
        "info",
        "estimate",
        "plan",
        "run",
    }
