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

    # the default gateway process: its tenant stream reads the kernel's q_events, whose
    # cursor (seq, sub) resumes after each stream part (docs/http.md)
    server = HttpServer(tmp_path, workers=1, tenants=TENANTS).start()
    seen: list[tuple[str, dict, str]] = []
    try:
        with (
            httpx.Client(base_url=server.url, timeout=120) as http,
            httpx.Client(base_url=server.url, timeout=120) as watcher,
        ):
            login = {"tenant": "ada", "key": "ada-secret-key", "requested": ["CAP_DEVICE_NA"]}
            sid = http.post("/v1/sessions", json=login).json()["session_id"]
            now = http.get("/v1/feed", params={"limit": 1}, headers=bearer(sid)).json()
            with watcher.stream("GET", "/v1/events", headers=bearer(sid)) as reply:
                lines = reply.iter_lines()
                assert next(lines) == "event: hello"
                body = device(JOB, policy={"stream": {"measurements": True, "pulses": True}})
                accepted = http.post("/v1/jobs", json=body, headers=bearer(sid))
                assert accepted.status_code == 201, accepted.text
                job_id = accepted.json()["job_id"]
                name, event_id = "hello", ""  # its data line is next
                for line in lines:
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        seen.append((name, json.loads(line[6:]), event_id))
                        event_id = ""
                        if seen[-1][1].get("state") in ("COMPLETED", "FAILED"):
                            break
            walked, cursor = [], (now["cursor"], now["cursor_sub"])
            while True:  # the feed one record a page, each resumed after the one before
                page = http.get(
                    "/v1/feed",
                    params={"after": cursor[0], "after_sub": cursor[1], "limit": 1},
                    headers=bearer(sid),
                ).json()
                if not page["events"]:
                    break
                walked += page["events"]
                cursor = (page["cursor"], page["cursor_sub"])
            listing = http.get(f"/v1/jobs/{job_id}/artifacts", headers=bearer(sid)).json()
            page = http.get(
                f"/v1/jobs/{job_id}/artifacts",
                params={"name": "measurements", "limit": 10000},
                headers=bearer(sid),
            ).json()
    finally:
        assert server.stop() == 0, server.output()
    assert seen[0] == ("hello", {"tenant": "ada"}, "")
    seen = seen[1:]
    assert seen[-1][1]["state"] == "COMPLETED"
    streamed = [(d, i) for n, d, i in seen if n == "stream" and d["job_id"] == job_id]
    parts = [d["record"] for d, _ in streamed]
    shots = [r for p in parts if p["artifact"] == "measurements" for r in p["records"]]
    assert [r["shot"] for r in shots] == list(range(JOB["shots"]))
    assert any(p["artifact"] == "pulses" for p in parts)
    cursors = [(e["seq"], e["sub"]) for e in walked]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    # the server traces (--trace): the job's worker spans are a record of the feed
    # too, for the gateway's tracer; the tenant's stream leaves them out
    walked = [e for e in walked if e["event"] != "spans"]
    # the stream is the feed's records, as a cursor walks them one at a time (each
    # resumed after the one before: the feed's cursor is the record's seq and sub)
    assert seen == [
        (e["event"], {k: v for k, v in e.items() if k != "sub"}, str(e["seq"]))
        for e in walked[: len(seen)]
    ]
    # each part's cursor: the seq of the line before it (its SSE id) and its sub
    subs = [e["sub"] for e in walked[: len(seen)] if e["event"] == "stream"]
    assert len(subs) == len(streamed) and all(sub >= 1 for sub in subs)
    assert [a["name"] for a in listing["artifacts"]] == ["measurements", "pulses"]
    assert page["records"] == shots and page["next_offset"] is None
