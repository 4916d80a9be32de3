"""Live events, Prometheus metrics, OpenTelemetry spans and JSON logs of a real server."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from typing import Any

import httpx
import pytest

from qmk.client import Client
from support.http import SCRAPER, HttpServer, bearer, session
from support.kernel import TENANTS, config_toml
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The module's server (2 workers); its /metrics answer support.http's ``ops``."""
    started = HttpServer(tmp_path_factory.mktemp("qmk-http")).start()
    yield started
    assert started.stop() == 0, started.output()


def _events(reply: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The Server-Sent Events of a stream that ends, as (event, data)."""
    events, name, data = [], "message", ""
    for line in reply.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif not line and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def _done(client: httpx.Client, sid: str, **body: Any) -> dict[str, Any]:
    job = client.post("/v1/jobs", json=body, headers=bearer(sid)).json()
    reply = client.get(
        f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    )
    return reply.json()


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the exposition format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found


def test_a_jobs_event_stream_gives_its_states_then_its_result(client: httpx.Client):
    sid = session(client)
    job = client.post(
        "/v1/jobs", json={"program": BELL_QASM, "shots": 100, "seed": 4}, headers=bearer(sid)
    ).json()
    with client.stream("GET", f"/v1/jobs/{job['job_id']}/events", headers=bearer(sid)) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = _events(reply)
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "result"
    assert events[-1][1]["state"] == "COMPLETED"
    assert set(events[-1][1]["result"]["counts"]) == {"00", "11"}
    states = [data["state"] for name, data in events if name == "state"]
    assert states[-1] == "COMPLETED"
    assert states == sorted(states, key=["QUEUED", "VALIDATING", "RUNNING", "COMPLETED"].index)
    done = (
        next(
            i
            for i, (name, data) in enumerate(events)
            if name == "state" and "seq" in data and data["state"] == "COMPLETED"
        )
        if len(states) > 1
        else None
    )
    if done is not None:  # the stream saw the line that completed it: its attestation first
        name, progress = events[done - 1]
        assert name == "progress" and progress["epochs"] == 1 and progress["engine"]


def test_the_tenant_stream_sees_only_its_own_jobs(client: httpx.Client, server: HttpServer):
    alice, bob = session(client), session(client, "bob", ["CAP_ALLOC"])
    seen: list[tuple[str, dict[str, Any]]] = []
    with (
        httpx.Client(base_url=server.url, timeout=60) as watcher,
        watcher.stream("GET", "/v1/events", headers=bearer(bob)) as reply,
    ):
        lines = reply.iter_lines()
        assert next(lines) == "event: hello"
        client.post("/v1/jobs", json={"program": BELL_QASM, "shots": 5}, headers=bearer(alice))
        mine = client.post(
            "/v1/jobs", json={"program": BELL_QASM, "shots": 5}, headers=bearer(bob)
        ).json()
        name = ""
        for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                seen.append((name, json.loads(line[6:])))
                if seen[-1][1].get("state") == "COMPLETED":
                    break
    assert seen and all(data.get("tenant") in ("bob", None) for _, data in seen[1:])
    assert any(data.get("job_id") == mine["job_id"] for name, data in seen if name == "job")


def test_metrics_count_jobs_engines_latency_and_the_audit_chain(
    client: httpx.Client, server: HttpServer
):
    sid = session(client)
    _done(client, sid, program=BELL_QASM, shots=50, seed=1)
    with Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]) as rpc:
        rpc.q_list_jobs(None, 1)  # one syscall over JSON-RPC
    reply = client.get("/metrics", auth=SCRAPER)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert _samples(text, "qmk_jobs_finished_total")['{state="COMPLETED",tenant="alice"}'] >= 1
    assert _samples(text, "qmk_engine_choice_total")['{engine="stabilizer"}'] >= 1
    assert _samples(text, "qmk_job_queue_seconds_count")['{tenant="alice"}'] >= 1
    assert _samples(text, "qmk_job_run_seconds_count")['{state="COMPLETED"}'] >= 1
    rpc_counts = _samples(text, "qmk_rpc_seconds_count")
    assert rpc_counts['{method="q_submit",transport="http"}'] >= 1
    # the gateway times the syscalls it served; the JSON-RPC call went to the kernel
    assert {key.rpartition("transport=")[2] for key in rpc_counts} == {'"http"}'}
    assert _samples(text, "qmk_audit_chain_length")[""] >= 5
    assert _samples(text, "qmk_workers")[""] == 2
    assert 0 <= _samples(text, "qmk_worker_utilisation")[""] <= 1
    assert _samples(text, "qmk_http_requests_total")['{route="/v1/jobs",status="201"}'] >= 1
    for name in ("qmk_jobs", "qmk_queue_depth", "qmk_logical_errors_injected_total"):
        assert f"# HELP {name.removesuffix('_total')}" in text


def test_a_jobs_spans_run_submit_verify_admit_queue_run_result_in_one_trace(
    client: httpx.Client, server: HttpServer
):
    sid = session(client)
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    job = client.post(
        "/v1/jobs",
        json={"program": BELL_QASM, "shots": 50, "seed": 2},
        headers={**bearer(sid), "traceparent": parent},
    )
    assert job.headers["traceparent"].startswith("00-" + "ab" * 16)
    job_id = job.json()["job_id"]
    client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the result span is written as the job ends
        spans = [s for s in server.spans() if s["trace_id"] == "ab" * 16]
        if any(s["name"] == "qmk.result" for s in spans):
            break
        time.sleep(0.05)
    by_name = {s["name"]: s for s in spans}
    for name in (
        "POST /v1/jobs",
        "qsyscall q_submit",
        "qmk.verify",
        "qmk.admit",
        "qmk.queue",
        "qmk.run",
        "qmk.result",
    ):
        assert name in by_name, (name, sorted(by_name))
    assert by_name["POST /v1/jobs"]["parent_span_id"] == "cd" * 8
    submit = by_name["qsyscall q_submit"]
    assert submit["parent_span_id"] == by_name["POST /v1/jobs"]["span_id"]
    for name in ("qmk.verify", "qmk.admit", "qmk.queue", "qmk.run", "qmk.result"):
        assert by_name[name]["parent_span_id"] == submit["span_id"], name
    order = ["qmk.verify", "qmk.admit", "qmk.queue", "qmk.run", "qmk.result"]
    starts = [by_name[name]["start_time_unix_nano"] for name in order]
    assert starts == sorted(starts)
    assert by_name["qmk.queue"]["end_time_unix_nano"] <= by_name["qmk.run"]["start_time_unix_nano"]
    run_span = by_name["qmk.run"]
    assert run_span["attributes"]["qmk.job_id"] == job_id
    assert [e["name"] for e in run_span["events"]] == ["epoch"]  # the Bell program has one
    result = by_name["qmk.result"]["attributes"]
    assert result["qmk.state"] == "COMPLETED" and result["qmk.engine"] == "stabilizer"


def test_log_lines_are_json_with_job_id_tenant_and_trace_id(
    client: httpx.Client, server: HttpServer
):
    sid = session(client)
    job = _done(client, sid, program=BELL_QASM, shots=20, seed=3)
    deadline = time.monotonic() + 30  # a hang guard: the gateway writes them as it reads them
    while True:
        lines = [line for line in server.logs() if line.get("job_id") == job["job_id"]]
        states = [line["state"] for line in lines if line["logger"] == "qmk.http.jobs"]
        if states and states[-1] == "COMPLETED":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert states[0] == "QUEUED" and states[-1] == "COMPLETED"
    traces = {line["trace_id"] for line in lines if line["logger"] == "qmk.http.jobs"}
    assert len(traces) == 1 and None not in traces
    access = [line for line in lines if line["logger"] == "qmk.http.access"]
    assert access and all(line["tenant"] == "alice" for line in access if "tenant" in line)
    assert any(line["trace_id"] in traces for line in access)


def test_every_job_of_one_session_is_followed_to_its_end_in_the_log(
    client: httpx.Client, server: HttpServer
):
    sid = session(client)
    jobs = [
        client.post(
            "/v1/jobs", json={"program": BELL_QASM, "shots": 5, "seed": s}, headers=bearer(sid)
        ).json()["job_id"]
        for s in range(4)
    ]
    for job_id in jobs:
        client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid))
    deadline = time.monotonic() + 30  # a hang guard: the lines come as the gateway reads them
    while True:
        states = {
            job_id: [
                line["state"]
                for line in server.logs()
                if line["logger"] == "qmk.http.jobs" and line.get("job_id") == job_id
            ]
            for job_id in jobs
        }
        if all(found and found[-1] == "COMPLETED" for found in states.values()):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert all(found[0] == "QUEUED" for found in states.values()), states


def test_audit_entries_of_a_job_are_the_tenants_own(client: httpx.Client):
    sid = session(client)
    job = _done(client, sid, program=BELL_QASM, shots=20, seed=3)
    entries = client.get("/v1/audit", params={"job_id": job["job_id"]}, headers=bearer(sid)).json()
    events = [(e["event"], e.get("state")) for e in entries["entries"]]
    assert ("job", "QUEUED") in events and events[-1] == ("job", "COMPLETED")
    assert ("attest", None) not in events  # the attestation is on the COMPLETED line
    attest = entries["entries"][-1]
    assert attest["epochs"][0]["ops"]["APPLY_H"] == 1


def test_https_with_a_certificate_and_key(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate to test with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = HttpServer(tmp_path, workers=1, extra=("--tls-cert", str(cert), "--tls-key", str(key)))
    server.start()
    try:
        assert server.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.url, verify=trust) as secure:
            assert secure.get("/healthz").json() == {"status": "ok"}
            sid = session(secure)
            assert secure.get("/v1/jobs", headers=bearer(sid)).status_code == 200
    finally:
        assert server.stop() == 0, server.output()


def test_a_tls_file_that_does_not_load_is_one_coded_line(tmp_path):
    from support.cli import qmk

    (tmp_path / "k.toml").write_text(config_toml())
    status, _, err = qmk(
        "serve", "--socket", str(tmp_path / "s.sock"), "--data-dir", str(tmp_path / "d"),
        "--config", str(tmp_path / "k.toml"), "--http", "127.0.0.1:0",
        "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "missing.key"),
    )  # fmt: skip
    assert status == 2 and err.startswith("QW011 bad-option: --tls-cert"), err
