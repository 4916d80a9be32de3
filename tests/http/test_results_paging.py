"""A result read in pages over REST (``GET /v1/jobs/{job_id}/result``, the route of
``q_get_result``) against a real ``qmk serve --http``, and the whole result beside it."""

from __future__ import annotations

import json
from typing import Any

import httpx

from qmk.execution.runs import run
from qmk.qvm import graph as graph_io
from qmk.qvm.generate import uniform_graph
from support.http import bearer, session

SHOTS, SEED, N = 600, 21, 10


def wide(n: int) -> dict[str, Any]:
    """H on ``n`` qubits, each measured: many distinct keys."""
    return uniform_graph(n).to_json()


def test_a_results_counts_come_in_pages_that_add_up_to_the_whole(client: httpx.Client):
    sid = session(client)
    body = {"program": wide(N), "shots": SHOTS, "seed": SEED, "policy": {"noise": False}}
    job = client.post("/v1/jobs", json=body, headers=bearer(sid)).json()
    done = client.get(
        f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    ).json()
    assert done["state"] == "COMPLETED", done
    want = dict(
        run(graph_io.loads(json.dumps(wide(N))), shots=SHOTS, seed=SEED, noise=False).counts
    )
    assert done["result"]["counts"] == want
    seen: dict[str, int] = {}
    pages, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        reply = client.get(f"/v1/jobs/{job['job_id']}/result", params=params, headers=bearer(sid))
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert page["entries"] == len(want) and len(page["counts"]) <= 100
        assert page["summary"]["shots"] == SHOTS
        seen.update(page["counts"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == want and pages == -(-len(want) // 100)


def test_a_bad_cursor_is_422_and_a_job_without_a_result_is_409(client: httpx.Client):
    sid = session(client)
    body = {"program": wide(3), "shots": 10, "seed": 1, "policy": {"noise": False}}
    job = client.post("/v1/jobs", json=body, headers=bearer(sid)).json()
    client.get(f"/v1/jobs/{job['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid))
    bad = client.get(
        f"/v1/jobs/{job['job_id']}/result", params={"cursor": "3.0000"}, headers=bearer(sid)
    )
    assert bad.status_code == 422 and bad.json()["code"] == "QS1012", bad.text
    # a deadline long past: the job ends TIMED_OUT (QK302) before any worker answers
    late = {**body, "policy": {"noise": False, "deadline": 1.0}}
    ended = client.post("/v1/jobs", json=late, headers=bearer(sid)).json()
    reply = client.get(
        f"/v1/jobs/{ended['job_id']}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    ).json()
    assert reply["state"] == "TIMED_OUT" and reply["result"] is None, reply
    none = client.get(f"/v1/jobs/{ended['job_id']}/result", headers=bearer(sid))
    assert none.status_code == 409 and none.json()["code"] == "QS1009", none.text
