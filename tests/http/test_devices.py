"""A neutral-atom device job over REST (``POST /v1/jobs`` to the target ``neutral-atom``),
with the emulator's counts."""

from __future__ import annotations

from typing import Any

import httpx

from support.http import HttpServer, bearer

TENANTS = {
    "ada": {"key": "ada-secret-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 6},
    "bob": {"key": "bob-secret-key", "caps": ["CAP_ALLOC"]},
}
JOB = {
    "job_id": "ghz3",
    "profile": "benchmark_chain",
    "shots": 300,
    "seed": 5,
    "program": [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2], "param": 0.0},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
}


def device(job: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A ``POST /v1/jobs`` body that submits ``job`` to the device, at its own shots and seed."""
    return {
        "program": job,
        "shots": job["shots"],
        "seed": job["seed"],
        "target": "neutral-atom",
        **more,
    }


def test_a_device_job_over_rest_gives_the_emulators_counts(tmp_path):
    from qmk.devices.neutral_atom.emulator import run_job

    server = HttpServer(tmp_path, workers=1, tenants=TENANTS).start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            login = {"tenant": "ada", "key": "ada-secret-key", "requested": ["CAP_DEVICE_NA"]}
            sid = http.post("/v1/sessions", json=login).json()["session_id"]
            accepted = http.post("/v1/jobs", json=device(JOB), headers=bearer(sid))
            assert accepted.status_code == 201, accepted.text
            job_id = accepted.json()["job_id"]
            assert accepted.headers["location"] == f"/v1/jobs/{job_id}"
            done = http.get(
                f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 120000}, headers=bearer(sid)
            ).json()
            assert done["state"] == "COMPLETED", done["error"]
            assert done["result"]["counts"] == run_job(JOB).counts()
            too_big = dict(JOB, program=[{"op": "AllocArray", "n_qubits": 8}, *JOB["program"][1:]])
            quota = http.post("/v1/jobs", json=device(too_big), headers=bearer(sid))
            assert quota.status_code == 429 and quota.json()["code"] == "QS1006"
            bob = {"tenant": "bob", "key": "bob-secret-key", "requested": ["CAP_ALLOC"]}
            other = http.post("/v1/sessions", json=bob).json()["session_id"]
            refused = http.post("/v1/jobs", json=device(JOB), headers=bearer(other))
            assert refused.status_code == 403 and refused.json()["code"] == "QS1004"
    finally:
        assert server.stop() == 0, server.output()


def test_a_streamed_device_job_sends_its_shots_over_sse_and_keeps_them_as_artifacts(tmp_path):
    import json

    # inline: the tenant's stream of a gateway process reads q_events, whose cursor (an
    # audit line) passes a device job's stream parts, which carry the line before them
    server = HttpServer(tmp_path, workers=1, tenants=TENANTS, extra=("--gateway", "inline"))
    server.start()
    seen: list[tuple[str, dict]] = []
    try:
        with (
            httpx.Client(base_url=server.url, timeout=120) as http,
            httpx.Client(base_url=server.url, timeout=120) as watcher,
        ):
            login = {"tenant": "ada", "key": "ada-secret-key", "requested": ["CAP_DEVICE_NA"]}
            sid = http.post("/v1/sessions", json=login).json()["session_id"]
            with watcher.stream("GET", "/v1/events", headers=bearer(sid)) as reply:
                lines = reply.iter_lines()
                assert next(lines) == "event: hello"
                body = device(JOB, policy={"stream": {"measurements": True, "pulses": True}})
                accepted = http.post("/v1/jobs", json=body, headers=bearer(sid))
                assert accepted.status_code == 201, accepted.text
                job_id = accepted.json()["job_id"]
                name = ""
                for line in lines:
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        seen.append((name, json.loads(line[6:])))
                        if seen[-1][1].get("state") in ("COMPLETED", "FAILED"):
                            break
            listing = http.get(f"/v1/jobs/{job_id}/artifacts", headers=bearer(sid)).json()
            page = http.get(
                f"/v1/jobs/{job_id}/artifacts",
                params={"name": "measurements", "limit": 10000},
                headers=bearer(sid),
            ).json()
    finally:
        assert server.stop() == 0, server.output()
    assert seen[-1][1]["state"] == "COMPLETED"
    parts = [d["record"] for n, d in seen if n == "stream" and d["job_id"] == job_id]
    shots = [r for p in parts if p["artifact"] == "measurements" for r in p["records"]]
    assert [r["shot"] for r in shots] == list(range(JOB["shots"]))
    assert any(p["artifact"] == "pulses" for p in parts)
    assert [a["name"] for a in listing["artifacts"]] == ["measurements", "pulses"]
    assert page["records"] == shots and page["next_offset"] is None
