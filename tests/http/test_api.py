"""The REST API against a real ``qmk serve --http`` on a real socket, driven by plain httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from qmk.abi.methods import METHODS
from qmk.execution.runs import run
from qmk.frontends import read_program
from qmk.http.client import RestClient
from qmk.http.routes import OTHER_ROUTES, SYSCALL_ROUTES
from support.http import HttpServer, bearer, session
from support.kernel import TENANTS
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()


def _problem(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status and body["code"] == code, body
    assert {"type", "title", "detail", "instance", "name"} <= set(body)
    return body


def _submit(client: httpx.Client, sid: str, **body: Any) -> dict[str, Any]:
    reply = client.post("/v1/jobs", json=body, headers=bearer(sid))
    assert reply.status_code == 201, reply.text
    assert reply.headers["location"] == f"/v1/jobs/{reply.json()['job_id']}"
    return reply.json()


def _wait(client: httpx.Client, sid: str, job_id: str) -> dict[str, Any]:
    reply = client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid))
    assert reply.status_code == 200, reply.text
    job = reply.json()
    assert job["state"] == "COMPLETED", job
    return job


def test_the_openapi_document_validates_and_holds_every_route(client: httpx.Client):
    validator = pytest.importorskip("openapi_spec_validator")
    document = client.get("/openapi.json").json()
    validator.validate(document)
    operations = {
        (verb.upper(), path): op
        for path, ops in document["paths"].items()
        for verb, op in ops.items()
    }
    for route in SYSCALL_ROUTES:
        assert (route.method, route.path) in operations
    for other in OTHER_ROUTES:
        if other.tag is not None:
            assert (other.method, other.path) in operations
    described = {op["operationId"].removesuffix("_tenant") for op in operations.values()}
    assert set(METHODS) <= described, "every qSyscall has a route"
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/v1/jobs/{job_id}/wait" in page.text


def test_a_plain_httpx_client_drives_a_full_job(client: httpx.Client):
    sid = session(client)
    job = _submit(client, sid, program=BELL_QASM, shots=500, seed=11)
    assert job["state"] == "QUEUED" and job["tenant"] == "alice"
    done = _wait(client, sid, job["job_id"])
    local = run(read_program(str(EXAMPLES / "bell.qasm")), shots=500, seed=11)
    assert done["result"]["counts"] == dict(local.counts)
    assert set(done["result"]["counts"]) == {"00", "11"}
    got = client.get(f"/v1/jobs/{job['job_id']}", headers=bearer(sid)).json()
    assert got["result"]["counts"] == done["result"]["counts"]
    listed = client.get("/v1/jobs", params={"state": "COMPLETED"}, headers=bearer(sid)).json()
    assert job["job_id"] in [j["job_id"] for j in listed["jobs"]]
    assert all(j["state"] == "COMPLETED" for j in listed["jobs"])
    telemetry = client.get(f"/v1/jobs/{job['job_id']}/telemetry", headers=bearer(sid)).json()
    assert telemetry["telemetry"]["shots"] == 500
    checkpoint = client.post(f"/v1/jobs/{job['job_id']}/checkpoints", headers=bearer(sid))
    assert checkpoint.status_code == 201 and checkpoint.json()["job_id"] == job["job_id"]
    replay = client.post(f"/v1/jobs/{job['job_id']}/replay", headers=bearer(sid))
    assert replay.status_code == 201
    again = _wait(client, sid, replay.json()["job_id"])
    assert again["result"]["counts"] == done["result"]["counts"]
    restored = client.post(
        f"/v1/jobs/{job['job_id']}/restore",
        json={"checkpoint_id": checkpoint.json()["checkpoint_id"]},
        headers=bearer(sid),
    )
    assert restored.status_code == 200 and restored.json()["state"] == "QUEUED"
    assert _wait(client, sid, job["job_id"])["result"]["counts"] == done["result"]["counts"]
    final = client.delete(f"/v1/jobs/{job['job_id']}", headers=bearer(sid))
    _problem(final, 409, "QS1009")  # a final job cannot be cancelled


@pytest.mark.parametrize(
    ("source", "fmt", "as_json"),
    [
        ("bell.qasm", "qasm2", False),
        ("bell.ll", "qir", False),
        ("bell.qvm.asm", "qvm-asm", False),
        ("bell.qvm.json", None, True),
        ("bell.qvm.json", "qvm-json", False),
    ],
)
def test_a_program_in_any_format_gives_the_counts_qmk_run_gives(
    client: httpx.Client, source: str, fmt: str | None, as_json: bool
):
    sid = session(client)
    text = (EXAMPLES / source).read_text()
    body: dict[str, Any] = {"program": json.loads(text) if as_json else text, "shots": 300}
    body["seed"] = 5
    if fmt is not None:
        body["format"] = fmt
    job = _wait(client, sid, _submit(client, sid, **body)["job_id"])
    local = run(read_program(str(EXAMPLES / source)), shots=300, seed=5)
    assert job["result"]["counts"] == dict(local.counts)


def test_openqasm_3_text_is_lowered(client: httpx.Client):
    sid = session(client)
    program = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
        "h q[0];\ncx q[0], q[1];\nc = measure q;\n"
    )
    job = _wait(client, sid, _submit(client, sid, program=program, shots=200, seed=2)["job_id"])
    assert set(job["result"]["counts"]) == {"00", "11"}


def test_a_missing_or_bad_session_is_401_with_a_bearer_challenge(client: httpx.Client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eA=="}):
        reply = client.get("/v1/jobs", headers=headers)
        body = _problem(reply, 401, "QS1002")
        assert body["rpc_code"] == 1002
        assert reply.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/v1/sessions", json={"tenant": "alice", "key": "wrong"})
    _problem(wrong, 401, "QS1001")


def test_another_tenants_job_is_404_never_403(client: httpx.Client):
    alice, bob = session(client), session(client, "bob", ["CAP_ALLOC"])
    job = _submit(client, alice, program=BELL_QASM, shots=10, seed=1)
    for method, path in (
        ("GET", f"/v1/jobs/{job['job_id']}"),
        ("DELETE", f"/v1/jobs/{job['job_id']}"),
        ("GET", f"/v1/jobs/{job['job_id']}/wait"),
        ("GET", f"/v1/jobs/{job['job_id']}/events"),
        ("GET", f"/v1/jobs/{job['job_id']}/telemetry"),
        ("POST", f"/v1/jobs/{job['job_id']}/replay"),
        ("GET", "/v1/audit?job_id=" + job["job_id"]),
    ):
        reply = client.request(method, path, headers=bearer(bob))
        body = _problem(reply, 404, "QS1005")
        assert body["detail"] == f"no job {job['job_id']!r}"
    unknown = client.get("/v1/jobs/job_doesnotexist", headers=bearer(bob))
    assert _problem(unknown, 404, "QS1005")["detail"] == "no job 'job_doesnotexist'"


def test_bad_input_is_refused_with_its_code(client: httpx.Client):
    sid = session(client)
    auth = bearer(sid)
    _problem(
        client.post("/v1/jobs", json={"program": BELL_QASM, "shot": 3}, headers=auth),
        422,
        "QR32602",
    )
    _problem(
        client.post("/v1/jobs", json={"program": BELL_QASM, "shots": "3"}, headers=auth),
        422,
        "QR32602",
    )
    _problem(client.post("/v1/jobs", json={"shots": 3}, headers=auth), 422, "QR32602")
    _problem(
        client.post("/v1/jobs", json={"program": "h q;", "format": "cobol"}, headers=auth),
        422,
        "QR32602",
    )
    _problem(client.post("/v1/jobs", json={"program": "h q;"}, headers=auth), 422, "QR32602")
    lowered = client.post(
        "/v1/jobs", json={"program": "OPENQASM 2.0;\nnonsense;", "format": "qasm2"}, headers=auth
    )
    assert lowered.status_code == 422 and lowered.json()["code"].startswith("QL")
    _problem(
        client.post("/v1/jobs", json={"program": BELL_QASM, "shots": 0}, headers=auth),
        422,
        "QS1012",
    )
    _problem(client.get("/v1/jobs", params={"limit": "many"}, headers=auth), 422, "QR32602")
    _problem(client.get("/v1/jobs", params={"colour": "red"}, headers=auth), 422, "QR32602")
    _problem(client.get("/v1/jobs", params={"state": "DREAMING"}, headers=auth), 422, "QS1012")
    raw = {**auth, "content-type": "application/json"}
    _problem(client.post("/v1/jobs", content=b"{not json", headers=raw), 400, "QR32700")
    _problem(client.post("/v1/jobs", content=b"[" * 100 + b"]" * 100, headers=raw), 400, "QR32600")
    text = {**auth, "content-type": "text/plain"}
    _problem(client.post("/v1/jobs", content=b"{}", headers=text), 415, "QR32600")
    _problem(client.put("/v1/jobs", headers=auth), 405, "QR32601")
    _problem(client.get("/v1/nothing-here"), 404, "QR32601")


@pytest.mark.parametrize(
    ("field", "text"),
    [("shots", "100000000000000000000"), ("shots", "1e400"), ("seed", "-1180591620717411303424")],
)
def test_a_number_past_every_range_is_out_of_range_not_the_wrong_type(
    client: httpx.Client, field: str, text: str
):
    # shots: 10^20 read "must be integer, got number": it decoded as an infinity
    auth = bearer(session(client))
    body = b'{"program": %s, "%s": %s}' % (
        json.dumps(BELL_QASM).encode(),
        field.encode(),
        text.encode(),
    )
    reply = client.post(
        "/v1/jobs", content=body, headers={**auth, "content-type": "application/json"}
    )
    problem = _problem(reply, 422, "QS1012")
    assert problem["details"]["param"] == field, problem
    assert "out of range" in problem["detail"] and "2**64" in problem["detail"], problem
    assert "\n" not in problem["detail"]


def test_request_bodies_past_the_limits_are_413(client: httpx.Client):
    big = {"tenant": "alice", "key": "x" * 70_000}  # over the unauthenticated 64 KiB
    body = _problem(client.post("/v1/sessions", json=big), 413, "QR32600")
    assert body["details"]["limit"] == 64 * 1024
    sid = session(client)
    huge = b'{"program": "' + b"x" * (17 * 2**20) + b'"}'
    headers = {**bearer(sid), "content-type": "application/json"}
    _problem(client.post("/v1/jobs", content=huge, headers=headers), 413, "QR32600")


def test_a_capability_the_session_lacks_is_403(client: httpx.Client):
    bob = session(client, "bob", ["CAP_ALLOC"])
    magic = json.loads((EXAMPLES / "t_gate_injection.qvm.json").read_text())
    body = _problem(
        client.post("/v1/jobs", json={"program": magic}, headers=bearer(bob)), 403, "QS1004"
    )
    assert body["details"]["missing"]
    calibrate = client.post("/v1/calibration", json={"qubit": {}}, headers=bearer(bob))
    _problem(calibrate, 403, "QS1004")


def test_channels_resources_and_telemetry_have_their_routes(client: httpx.Client):
    alice, dave = session(client), session(client, "dave")
    proposed = client.post(
        "/v1/channels", json={"peer": "dave", "fidelity": 0.99}, headers=bearer(alice)
    )
    assert proposed.status_code == 201, proposed.text
    channel_id = proposed.json()["channel_id"]
    accepted = client.post(
        "/v1/channels", json={"peer": "alice", "channel_id": channel_id}, headers=bearer(dave)
    )
    assert accepted.json()["state"] == "OPEN"
    status = client.get(f"/v1/channels/{channel_id}", headers=bearer(alice)).json()
    assert status["state"] == "OPEN"
    listed = client.get("/v1/channels", params={"state": "OPEN"}, headers=bearer(dave)).json()
    assert channel_id in [c["channel_id"] for c in listed["channels"]]
    closed = client.delete(f"/v1/channels/{channel_id}", headers=bearer(alice))
    assert closed.json()["state"] == "CLOSED"
    resources = client.get("/v1/resources", headers=bearer(alice)).json()
    assert resources["tenant"] == "alice" and resources["machine"]["physical_qubits_total"] > 0
    aggregate = client.get("/v1/telemetry", headers=bearer(alice)).json()
    assert aggregate["tenant"] == "alice"


def test_a_device_job_is_a_job_of_the_neutral_atom_target(client: httpx.Client):
    bob = session(client, "bob", ["CAP_ALLOC"])
    body = {"program": {"program": []}, "target": "neutral-atom"}
    _problem(client.post("/v1/jobs", json=body, headers=bearer(bob)), 403, "QS1004")
    # the route of the syscall it had before is gone: its answer names the one to call
    gone = client.post("/v1/devices/jobs", json={"job": {}}, headers=bearer(bob))
    problem = _problem(gone, 404, "QR32601")
    assert problem["details"]["closest"] == "POST /v1/jobs" and "q_submit" in problem["detail"]


def test_a_graphql_post_without_its_version_prefix_is_told_of_v1_graphql(client: httpx.Client):
    problem = _problem(
        client.post("/graphql", json={"query": "{ jobs { jobId } }"}), 404, "QR32601"
    )
    assert problem["details"]["closest"] == "POST /v1/graphql", problem
    assert "GraphQL" in problem["detail"], problem


def test_an_idempotency_key_header_returns_the_same_job(client: httpx.Client):
    sid = session(client)
    headers = {**bearer(sid), "Idempotency-Key": "http-test-key-1"}
    first = client.post("/v1/jobs", json={"program": BELL_QASM, "shots": 10}, headers=headers)
    again = client.post("/v1/jobs", json={"program": BELL_QASM, "shots": 10}, headers=headers)
    assert first.json()["job_id"] == again.json()["job_id"]


def test_the_server_stops_on_sigterm_with_exit_0(tmp_path):
    server = HttpServer(tmp_path, workers=1).start()
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
    assert server.stop() == 0, server.output()
    assert not server.socket.exists()


def test_a_post_of_a_job_with_wait_ms_answers_it_finished_and_refuses_a_bad_wait(
    client: httpx.Client, server: HttpServer
):
    sid = session(client)
    done = _submit(client, sid, program=BELL_QASM, shots=200, seed=5, wait_ms=60000)
    assert done["state"] == "COMPLETED", done
    expected = run(read_program(str(EXAMPLES / "bell.qasm")), shots=200, seed=5).counts
    assert done["result"]["counts"] == expected
    assert _wait(client, sid, done["job_id"]) == done  # as GET .../wait answers it
    auth = bearer(sid)
    bad = _problem(
        client.post("/v1/jobs", json={"program": BELL_QASM, "wait_ms": -1}, headers=auth),
        422,
        "QS1012",
    )
    assert bad["detail"].startswith("wait_ms must be an integer 0..") and "\n" not in bad["detail"]
    _problem(
        client.post("/v1/jobs", json={"program": BELL_QASM, "wait_ms": "1s"}, headers=auth),
        422,
        "QR32602",
    )
    with RestClient(server.url, tenant="alice", key=TENANTS["alice"]["key"]) as rest:
        typed = rest.submit(BELL_QASM, shots=200, seed=5, wait_ms=60000)
    assert typed.state == "COMPLETED" and typed.result is not None
    assert typed.result["counts"] == expected
