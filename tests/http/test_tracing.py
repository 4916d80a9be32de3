"""A job's trace through a real ``qmk serve --http --trace jsonl:PATH``, HTTP served by
its gateway process: from the HTTP request down to the epochs its worker process ran,
in one connected tree. The gateway passes its submit span's ``traceparent`` with
``q_submit``; the kernel gives the worker's spans back in the tenant's feed, and the
gateway's follower exports them under its ``qmk.run`` span (docs/http.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qmk.execution import run
from support.http import HttpServer, bearer, session
from support.kernel import FENCED

SHOTS, SEED = 300, 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """The module's server, serving HTTP from its gateway process (module docstring)."""
    started = HttpServer(tmp_path_factory.mktemp("qmk-http"))
    yield started.start()
    assert started.stop() == 0, started.output()


def _trace(server: HttpServer, trace_id: str, job_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # the result span is written as the job ends
        spans = [s for s in server.spans() if s["trace_id"] == trace_id]
        if any(s["name"] == "qmk.result" for s in spans):
            break
        time.sleep(0.05)
    return spans


@pytest.mark.parametrize(
    "trace_id, seed, waited",
    [("ef" * 16, SEED, False), ("ab" * 16, SEED + 1, True)],
    ids=["submit-then-wait", "submit-that-waits"],
)
def test_one_job_is_one_tree_from_the_request_to_the_epochs_in_its_worker(
    client: httpx.Client, server: HttpServer, trace_id: str, seed: int, waited: bool
):
    sid = session(client)
    parent = "00-" + trace_id + "-" + "12" * 8 + "-01"
    body = {"program": FENCED.to_json(), "shots": SHOTS, "seed": seed}
    if waited:  # one request: the job comes back finished, its tree the same
        body["wait_ms"] = 60000
    job = client.post("/v1/jobs", json=body, headers={**bearer(sid), "traceparent": parent})
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    if waited:
        done = job.json()
    else:
        done = client.get(
            f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
        ).json()
    assert done["state"] == "COMPLETED"
    spans = _trace(server, trace_id, job_id)
    by_id = {s["span_id"]: s for s in spans}

    def path_up(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent_span_id"] in by_id:
            span = by_id[span["parent_span_id"]]
            names.append(span["name"])
        assert span["parent_span_id"] == "12" * 8  # the client's span: the tree's root
        return names

    epochs = [s for s in spans if s["name"] == "qmk.epoch"]
    assert epochs
    for epoch in epochs:
        assert path_up(epoch) == [
            "qmk.group",
            "qmk.shots",
            "qmk.worker",
            "qmk.run",
            "qsyscall q_submit",
            "POST /v1/jobs",
        ]
    for name in ("qmk.worker.verify", "qmk.engine.choice", "qmk.shots"):
        (span,) = [s for s in spans if s["name"] == name]
        assert path_up(span)[:2] == ["qmk.worker", "qmk.run"], name
    (worker,) = [s for s in spans if s["name"] == "qmk.worker"]
    (run_span,) = [s for s in spans if s["name"] == "qmk.run"]
    assert run_span["start_time_unix_nano"] <= worker["start_time_unix_nano"]
    assert worker["end_time_unix_nano"] <= run_span["end_time_unix_nano"]
    assert worker["attributes"]["qmk.job_id"] == job_id
    assert worker["attributes"]["qmk.shots"] == SHOTS
    (shots,) = [s for s in spans if s["name"] == "qmk.shots"]
    groups = [s for s in spans if s["name"] == "qmk.group"]
    epochs_run = done["result"]["telemetry"]["epochs"]
    assert shots["attributes"]["qmk.epochs"] == epochs_run == 4
    assert len(epochs) == epochs_run * len(groups)
    # tracing changes nothing of the run: the counts are the in-process run's
    assert done["result"]["counts"] == dict(run(FENCED, shots=SHOTS, seed=seed).counts)
