"""A submit that waits (``q_submit`` with ``wait_ms``) against a real ``qmk serve``: the
JSON-RPC line, both Python clients and ``qmk submit --wait``, each one request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from qmk.client import AsyncClient, Client
from qmk.execution import runs
from support.cli import qmk
from support.kernel import BELL as BELL_GRAPH
from support.kernel import WorkerGate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BELL = str(EXAMPLES / "bell.qvm.asm")
ALICE = {"tenant": "alice", "key": "alice-secret-key"}


def _line(server: Any, message: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC request on a fresh connection, and its reply."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(server.socket))
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "closed"
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def test_both_clients_submit_and_get_the_finished_job_in_one_call(shared_server):
    expected = runs.run(BELL_GRAPH, shots=300, seed=21).counts
    with Client.connect(str(shared_server.socket), **ALICE) as client:
        done = client.q_submit(BELL_GRAPH, 300, 21, wait_ms=60000)
        assert done.state == "COMPLETED" and done.result is not None
        assert done.result["counts"] == expected
        assert client.q_wait(done.job_id, 0) == done

    async def from_async() -> Any:
        async with await AsyncClient.connect(str(shared_server.socket), **ALICE) as client:
            return await client.q_submit(BELL_GRAPH, 300, 22, wait_ms=60000)

    done = asyncio.run(from_async())
    assert done.state == "COMPLETED" and done.result is not None
    assert done.result["counts"] == runs.run(BELL_GRAPH, shots=300, seed=22).counts


@pytest.mark.parametrize(
    "wait_ms, code, param",
    [("soon", -32602, "wait_ms"), (1.5, -32602, "wait_ms"), (-1, 1012, None)],
)
def test_a_bad_wait_ms_on_the_wire_is_one_line_with_a_stable_code(
    shared_server, wait_ms, code, param
):
    with Client.connect(str(shared_server.socket), **ALICE) as client:
        session = client.session_id
        before = len(client.q_list_jobs().jobs)
        reply = _line(
            shared_server,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "q_submit",
                "params": {"session_id": session, "graph": BELL_GRAPH, "wait_ms": wait_ms},
            },
        )
        error = reply["error"]
        assert error["code"] == code and "\n" not in error["message"]
        assert "wait_ms" in error["message"]
        if param is not None:
            assert error["data"]["param"] == param
        assert len(client.q_list_jobs().jobs) == before  # nothing queued


def test_qmk_submit_wait_is_one_request_that_answers_the_finished_job(shared_server, monkeypatch):
    for name, value in shared_server.env("alice").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("QMK_CAPS", raising=False)
    called: list[str] = []
    send = Client._call

    def spy(self: Client, method: str, params: dict[str, Any]) -> Any:
        called.append(method)
        return send(self, method, params)

    monkeypatch.setattr(Client, "_call", spy)
    code, out, err = qmk("submit", BELL, "--shots", "300", "--seed", "11", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "COMPLETED"
    assert called.count("q_submit") == 1 and "q_wait" not in called


def test_every_job_a_submit_that_waits_answered_survives_a_kill_9(serve, tmp_path):
    # Its acceptance is committed with its answer, not alone: killed right after the
    # answers, the kernel keeps every job it answered, finished or not.
    with WorkerGate(tmp_path) as gate:
        server = serve("crash-wait", workers=2, hooks=gate.hooks())
        with Client.connect(str(server.socket), **ALICE) as client:
            gate.release(3)
            finished = [client.q_submit(BELL_GRAPH, 100, s, wait_ms=60_000) for s in (1, 2, 3)]
            held = client.q_submit(BELL_GRAPH, 100, 4, wait_ms=50)  # at the gate: as it stands
        server.kill()
    assert [job.state for job in finished] == ["COMPLETED"] * 3
    assert held.state in ("QUEUED", "VALIDATING", "RUNNING")
    server.start()
    with Client.connect(str(server.socket), **ALICE) as client:
        for seed, job in zip((1, 2, 3), finished, strict=True):
            again = client.q_wait(job.job_id, 0)
            assert again.state == "COMPLETED" and again.result == job.result
            assert again.result["counts"] == runs.run(BELL_GRAPH, shots=100, seed=seed).counts
        ended = client.q_wait(held.job_id, 60_000)  # recovered, and run to its end
        assert ended.state == "COMPLETED"
        assert ended.result["counts"] == runs.run(BELL_GRAPH, shots=100, seed=4).counts
    assert server.stop() == 0
