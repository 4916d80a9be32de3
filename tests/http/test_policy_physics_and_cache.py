"""The REST API passes a submit's policy through as JSON-RPC does: per-job physics
(``policy.noise_model``) reaches the run, and an identical submit is answered from the
result cache in its own reply (``201`` with state COMPLETED), against a real
``qmk serve --http``."""

from __future__ import annotations

from typing import Any

import httpx

from qmk.execution.runs import run
from qmk.frontends import read_program
from qmk.qec.noise import parse_noise_model
from support.http import bearer, session
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()
MODEL = "depolarizing(p=4e-3)"


def _submit(client: httpx.Client, sid: str, **body: Any) -> dict[str, Any]:
    reply = client.post("/v1/jobs", json=body, headers=bearer(sid))
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def test_a_rest_submit_runs_with_its_noise_model_and_an_identical_one_is_a_cache_hit(
    client: httpx.Client,
) -> None:
    sid = session(client)
    body = {"program": BELL_QASM, "shots": 700, "seed": 8, "policy": {"noise_model": MODEL}}
    job = _submit(client, sid, **body)
    done = client.get(
        f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    ).json()
    assert done["state"] == "COMPLETED", done
    assert done["result"]["telemetry"]["noise_model"] == "depolarizing(p=0.004)"
    local = run(
        read_program(str(EXAMPLES / "bell.qasm")),
        shots=700,
        seed=8,
        noise=parse_noise_model(MODEL),
    )
    assert done["result"]["counts"] == dict(local.counts)
    again = _submit(client, sid, **body)
    assert again["state"] == "COMPLETED" and again["cached_from"] == job["job_id"]
    assert again["result"]["counts"] == done["result"]["counts"]
    fresh = _submit(client, sid, **{**body, "policy": {"noise_model": MODEL, "cache": False}})
    assert "cached_from" not in fresh
    ran = client.get(
        f"/v1/jobs/{fresh['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    ).json()
    assert ran["state"] == "COMPLETED" and ran["result"]["telemetry"]["cache_hit"] is False
    assert ran["result"]["counts"] == done["result"]["counts"]
