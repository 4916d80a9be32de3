"""GraphQL (``POST /v1/graphql``) and ``GET /v1/usage`` against a real ``qmk serve --http``:
the same bearer session and tenant isolation as REST, the query limits, coded errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("strawberry")

from qmk.http.graphql import GraphQL, Limits
from qmk.kernel.service import Kernel
from support.http import bearer, session
from support.kernel import BELL, login, run_kernel

JOB_FIELDS = "job_id state tenant shots seed created_at finished_at"


def _gql(
    client: httpx.Client, sid: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    reply = client.post(
        "/v1/graphql", json={"query": query, "variables": variables}, headers=bearer(sid)
    )
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def _completed_job(client: httpx.Client, sid: str, seed: int) -> dict[str, Any]:
    made = client.post(
        "/v1/jobs", json={"program": BELL, "shots": 50, "seed": seed}, headers=bearer(sid)
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    done = client.get(
        f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 60000}, headers=bearer(sid)
    ).json()
    assert done["state"] == "COMPLETED", done
    return dict(done)


def _codes(answer: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in answer.get("errors") or []]


def test_graphql_reads_the_tenants_jobs_telemetry_usage_and_channels(client: httpx.Client):
    alice, dave = session(client), session(client, "dave")
    job = _completed_job(client, alice, seed=11)
    proposed = client.post("/v1/channels", json={"peer": "dave"}, headers=bearer(alice)).json()
    answer = _gql(
        client,
        alice,
        f"""query($id: ID!) {{
            jobs(limit: 10) {{ {JOB_FIELDS} }}
            job(job_id: $id) {{ job_id state result telemetry usage {{ usage_id shots }} }}
            usage(job_id: $id) {{ count totals invoice records {{ job_id state shots }} }}
            channels {{ channel_id state tenants }}
            telemetry
            machine
        }}""",
        {"id": job["job_id"]},
    )
    assert "errors" not in answer, answer
    data = answer["data"]
    # the job's schedule on the shared machine, and the machine now, as REST has them
    assert data["job"]["telemetry"]["machine"] == job["machine"]
    assert (
        data["machine"]["policy"]
        == client.get("/v1/machine", headers=bearer(alice)).json()["policy"]
    )
    listed = {j["job_id"]: j for j in data["jobs"]}
    assert listed[job["job_id"]]["state"] == "COMPLETED"
    assert listed[job["job_id"]]["shots"] == 50 and listed[job["job_id"]]["seed"] == 11
    assert all(j["tenant"] == "alice" for j in data["jobs"])
    one = data["job"]
    assert one["result"]["counts"] == job["result"]["counts"]  # what REST answers
    assert one["telemetry"]["job_id"] == job["job_id"]
    assert one["usage"] == [{"usage_id": f"{job['job_id']}.1", "shots": 50}]
    rest = client.get("/v1/usage", params={"job_id": job["job_id"]}, headers=bearer(alice))
    assert rest.status_code == 200 and rest.headers["x-qmk-tenant"] == "alice"
    assert data["usage"]["totals"] == rest.json()["totals"]
    assert data["usage"]["invoice"] == rest.json()["invoice"]
    assert data["usage"]["records"] == [
        {"job_id": job["job_id"], "state": "COMPLETED", "shots": 50}
    ]
    assert proposed["channel_id"] in [c["channel_id"] for c in data["channels"]]
    assert data["telemetry"]["tenant"] == "alice"
    # the peer of the channel sees it too
    peer = _gql(client, dave, "{ channels { channel_id tenants } }")["data"]["channels"]
    assert proposed["channel_id"] in [c["channel_id"] for c in peer]


def test_a_tenant_cannot_see_another_tenants_jobs_usage_or_channels(client: httpx.Client):
    alice, bob = session(client), session(client, "bob")
    job = _completed_job(client, alice, seed=12)
    channel = client.post("/v1/channels", json={"peer": "dave"}, headers=bearer(alice)).json()
    listed = _gql(client, bob, f"{{ jobs(limit: 1000) {{ {JOB_FIELDS} }} }}")
    assert job["job_id"] not in [j["job_id"] for j in listed["data"]["jobs"]]
    assert all(j["tenant"] == "bob" for j in listed["data"]["jobs"])
    for query in (
        "query($id: ID!) { job(job_id: $id) { job_id state } }",
        "query($id: ID!) { a: job(job_id: $id) { result } }",
        "query($id: ID!) { usage(job_id: $id) { count } }",
    ):
        answer = _gql(client, bob, query, {"id": job["job_id"]})
        assert answer["data"] is None and _codes(answer) == ["QS1005"], answer
        assert job["job_id"] in answer["errors"][0]["message"]  # as REST says: not found
    hidden = _gql(
        client,
        bob,
        "query($id: ID!) { channel(channel_id: $id) { state } }",
        {"id": channel["channel_id"]},
    )
    assert _codes(hidden) == ["QS1005"]
    assert channel["channel_id"] not in json.dumps(_gql(client, bob, "{ channels { channel_id } }"))
    usage = _gql(client, bob, "{ usage { count records { job_id } } }")["data"]["usage"]
    assert job["job_id"] not in [r["job_id"] for r in usage["records"]]
    rest = client.get("/v1/usage", headers=bearer(bob)).json()
    assert rest["tenant"] == "bob" and job["job_id"] not in json.dumps(rest)


def test_graphql_needs_the_bearer_session_as_every_route_does(client: httpx.Client):
    for headers in ({}, {"Authorization": "Bearer s1.forged.token"}):
        reply = client.post("/v1/graphql", json={"query": "{ jobs { job_id } }"}, headers=headers)
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "QS1002"


def test_bad_requests_are_coded_and_queries_over_the_limits_are_refused_whole(
    client: httpx.Client,
):
    sid = session(client)
    for body, param in (
        ({"query": 7}, "query"),
        ({"query": "{ jobs { job_id } }", "variables": [1]}, "variables"),
        ({"query": "{ jobs { job_id } }", "colour": "red"}, "colour"),
    ):
        reply = client.post("/v1/graphql", json=body, headers=bearer(sid))
        assert reply.status_code == 422 and reply.json()["code"] == "QR32602", reply.text
        assert param in reply.json()["detail"]
    syntax = _gql(client, sid, "{ jobs { job_id ")
    assert syntax["data"] is None and _codes(syntax) == ["QR32602"]
    # read-only: there is no mutation
    assert _codes(_gql(client, sid, 'mutation { cancel(job_id: "x") }')) == ["QR32602"]
    costly = _gql(client, sid, "{ jobs(limit: 10000) { job_id telemetry result } }")
    assert costly["data"] is None and _codes(costly) == ["QR32602"]
    assert "costs" in costly["errors"][0]["message"]
    # a limit given as a variable counts as the largest it may be
    hidden = _gql(client, sid, "query($n: Int!) { jobs(limit: $n) { telemetry } }", {"n": 1})
    assert _codes(hidden) == ["QR32602"]
    aliases = " ".join(f"a{i}: telemetry" for i in range(40))
    assert _codes(_gql(client, sid, f"{{ {aliases} }}")) == ["QR32602"]
    # a bad argument is the syscall's own refusal
    bad = _gql(client, sid, "{ jobs(limit: 0) { job_id } }")
    assert _codes(bad) == ["QS1012"]


def test_the_schema_is_served_as_sdl(client: httpx.Client):
    reply = client.get("/v1/graphql/schema")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert "type Query" in reply.text and "type UsageRecord" in reply.text
    assert "Mutation" not in reply.text


def test_a_query_deeper_than_the_limit_is_refused_before_any_field_runs(tmp_path: Path):
    graphql = GraphQL(Limits(max_depth=1))  # usage (0) > records (1) > shots (2)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        calls: list[str] = []

        async def call(name: str, params: dict[str, Any]) -> Any:
            calls.append(name)
            return await getattr(kernel, name)(**params)

        deep = await graphql.execute(call, sid, "{ usage { records { shots } } }", None, None)
        assert (
            deep["data"] is None
            and "exceeds maximum operation depth" in (deep["errors"][0]["message"])
        )
        assert calls == []  # refused whole: nothing ran
        shallow = await graphql.execute(call, sid, "{ usage { count } }", None, None)
        assert shallow == {"data": {"usage": {"count": 0}}} and calls == ["q_usage"]

    run_kernel(tmp_path, body)


def test_rest_usage_takes_its_window_and_refuses_unknown_params(client: httpx.Client):
    sid = session(client, "carol")
    job = _completed_job(client, sid, seed=13)
    reply = client.get(
        "/v1/usage", params={"since": job["finished_at"], "limit": 5}, headers=bearer(sid)
    )
    assert reply.status_code == 200, reply.text
    assert [r["job_id"] for r in reply.json()["records"]] == [job["job_id"]]
    later = client.get(
        "/v1/usage", params={"since": job["finished_at"] + 1}, headers=bearer(sid)
    ).json()
    assert later["count"] == 0
    unknown = client.get("/v1/usage", params={"colour": "red"}, headers=bearer(sid))
    assert unknown.status_code == 422 and unknown.json()["code"] == "QR32602"


def test_graphqls_usage_record_has_every_usage_quantity():
    from qmk.http.graphql import UsageRecord
    from qmk.kernel.records.usage import FIELDS

    fields = set(UsageRecord.__dataclass_fields__)
    assert fields == {"usage_id", "job_id", "state", "ended_at", *FIELDS}
