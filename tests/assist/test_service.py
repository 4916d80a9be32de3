"""The kernel's and the HTTP wire's side of the assistant (src/qmk/kernel/admit/assist.py and
POST /v1/assist): per tenant, audited, rate-limited, off when the operator says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qmk.errors import QuotaError, UnavailableError
from qmk.kernel.admit.assist import BURST
from qmk.kernel.config import config_from_dict
from support.kernel import KEYS, login, make_config, run_kernel
from support.tinyllm import BELL


def _config(assist: dict[str, Any]) -> Any:
    base = make_config()
    data = {
        "machine": {"physical_qubits": 200_000},
        "kernel": {"worker_memory_mb": 1024},
        "tenants": {
            name: {"key": KEYS[name], "caps": list(t.caps)} for name, t in base.tenants.items()
        },
        "assist": assist,
    }
    return config_from_dict(data)


def _assist_lines(kernel: Any, assist_id: str) -> list[dict[str, Any]]:
    kernel.audit.flush()  # the group commit writes queued lines in batches
    lines = [json.loads(line) for line in kernel.audit.path.read_text().splitlines()]
    return [
        line
        for line in lines
        if line.get("event") == "assist" and line.get("assist_id") == assist_id
    ]


def test_a_question_is_answered_audited_step_by_step_and_never_stores_its_text(llama, tmp_path):
    config = _config({"url": llama.url, "model": "runs-bell", "structured": True})

    async def body(kernel: Any) -> Any:
        session = await login(kernel, "alice")
        answer = await kernel.q_assist(session_id=session, prompt="run a Bell pair", assist_id="a1")
        return answer, _assist_lines(kernel, "a1")

    answer, lines = run_kernel(tmp_path, body, config=config)
    assert answer.assist_id == "a1"
    assert answer.tool_results[0]["result"]["counts"]
    assert [line["step"] for line in lines] == ["ask", "tool-call", "tool-result", "answer", "end"]
    assert all(line["tenant"] == "alice" for line in lines)
    assert lines[0]["chars"] == len("run a Bell pair")
    assert "run a Bell pair" not in json.dumps(lines)  # a digest, not the question


def test_the_tenants_rate_refuses_with_retry_after(llama, tmp_path):
    config = _config(
        {"url": llama.url, "model": "drafts-bell", "structured": True, "calls_per_minute": 1}
    )

    async def body(kernel: Any) -> Any:
        session = await login(kernel, "alice")
        for _ in range(int(BURST)):
            await kernel.q_assist(session_id=session, prompt="make a Bell pair")
        with pytest.raises(QuotaError) as caught:
            await kernel.q_assist(session_id=session, prompt="again")
        other = await login(kernel, "bob")  # another tenant has its own bucket
        answered = await kernel.q_assist(session_id=other, prompt="make a Bell pair")
        return caught.value, answered

    refusal, answered = run_kernel(tmp_path, body, config=config)
    assert refusal.details["retry_after_s"] > 0
    assert answered.program == BELL


def test_the_operator_can_turn_the_assistant_off(tmp_path):
    config = _config({"enabled": False, "url": "http://127.0.0.1:9", "model": "m"})

    async def body(kernel: Any) -> Any:
        session = await login(kernel, "alice")
        with pytest.raises(UnavailableError) as caught:
            await kernel.q_assist(session_id=session, prompt="hello")
        return caught.value

    assert run_kernel(tmp_path, body, config=config).code == "QS1011"


def test_with_no_model_the_kernel_gives_its_own_advice(tmp_path):
    async def body(kernel: Any) -> Any:
        session = await login(kernel, "alice")
        return await kernel.q_assist(
            session_id=session, prompt="what will this cost?", program=BELL
        )

    answer = run_kernel(tmp_path, body, config=_config({}))
    assert answer.status == "advice"
    assert any(line.startswith("estimate:") for line in answer.advice)


def test_post_v1_assist_streams_the_steps_then_the_answer(llama, tmp_path):
    pytest.importorskip("httpx")
    import httpx

    from support.http import HttpServer, session

    server = HttpServer(
        tmp_path, tables={"assist": {"url": llama.url, "model": "runs-bell", "structured": True}}
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            headers = {"Authorization": f"Bearer {session(http)}"}
            reply = http.post("/v1/assist", json={"prompt": "run a Bell pair"}, headers=headers)
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            events = _sse(reply.text)
            junk = http.post(
                "/v1/assist", json={"prompt": "x"}, headers={"Authorization": "Bearer junk"}
            )
    finally:
        assert server.stop() == 0, server.output()
    kinds = [name for name, _ in events]
    assert kinds == ["step"] * 5 + ["result"]
    assert [data["step"] for _, data in events[:5]] == [
        "ask",
        "tool-call",
        "tool-result",
        "answer",
        "end",
    ]
    result = events[-1][1]
    assert result["tool_results"][0]["tool"] == "run"
    assert junk.status_code == 401  # the session is checked before the body is read


def _sse(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
        if data is not None:
            out.append((name, data))
    return out


def test_qmk_assist_with_a_socket_asks_the_kernels_assistant(tmp_path):
    pytest.importorskip("httpx")
    from support.cli import qmk
    from support.http import HttpServer
    from support.kernel import TENANTS

    server = HttpServer(tmp_path).start()  # no [assist] model: the kernel's own advice
    where = ("--socket", str(server.socket), "--tenant", "alice", "--key", TENANTS["alice"]["key"])
    try:
        status, out, err = qmk("assist", "what does QS1006 mean?", *where, "--json")
        shown = qmk("assist", "what does QS1006 mean?", *where)
    finally:
        assert server.stop() == 0, server.output()
    assert (status, err) == (0, "")
    reply = json.loads(out)
    assert reply["status"] == "advice" and reply["advice"][0].startswith("QS1006 ")
    lines = [*reply["advice"], *([reply["text"].rstrip()] if reply["text"] else [])]
    assert shown == (0, "".join(f"{line}\n" for line in lines), "")  # for people
