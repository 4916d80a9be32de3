"""The door's limits as a client of ``qmk serve --http`` meets them, whichever process
serves the REST API (``--gateway inline``: the kernel's own; ``--gateway process``: a
gateway, one more client of the kernel's socket).

Every server here is a real ``qmk serve`` (jobs held in their worker by a
:class:`~support.kernel.WorkerGate` where a stream must stay open); waits are bounded only
against a hang (:data:`GUARD_S`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmk.abi.probe import Cursor
from qmk.client import Client
from support.http import bearer, session
from support.kernel import BELL, TENANTS, WorkerGate
from support.served import GUARD_S, Served

MODES = ("inline", "process")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _login(client: httpx.Client, tenant: str, key: str) -> httpx.Response:
    return client.post("/v1/sessions", json={"tenant": tenant, "key": key})


# --------------------------------------------------------------------------- streams


def test_a_sessions_second_sse_stream_on_a_held_job_is_429_at_a_limit_of_one(
    tmp_path: Path, mode: str
) -> None:
    with WorkerGate(tmp_path) as gate:
        served = Served(tmp_path, mode, server={"max_streams_per_session": 1}, gate=gate)
        try:
            key = TENANTS["alice"]["key"]
            with Client.connect(str(served.socket), tenant="alice", key=key) as kernel:
                job = kernel.q_submit(BELL, 10, 1).job_id  # held in its worker
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as http, ExitStack() as open_:
                sid, other = session(http), session(http)
                events = f"/v1/jobs/{job}/events"
                first = open_.enter_context(http.stream("GET", events, headers=bearer(sid)))
                assert first.status_code == 200
                lines = first.iter_lines()  # kept: a dropped iterator closes its connection
                assert next(lines) == "event: state"  # the stream is live
                second = open_.enter_context(http.stream("GET", events, headers=bearer(sid)))
                assert second.status_code == 429  # a stream let through would not end
                body = json.loads(second.read())
                assert body["details"] == {
                    "reason": "too-many-streams",
                    "scope": "session",
                    "limit": 1,
                }
                # the control: another session of the tenant is not held to this one's cap
                elsewhere = open_.enter_context(http.stream("GET", events, headers=bearer(other)))
                assert elsewhere.status_code == 200
        finally:
            gate.open()
            served.stop()


# --------------------------------------------------------------------------- logins


def _from(address: str, url: str) -> httpx.Client:
    """A client whose connections come from ``address`` (a loopback address of its
    own: another peer to the gateway's door)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, timeout=GUARD_S, transport=transport)


def test_one_clients_wrong_keys_through_a_gateway_hold_back_only_that_tenants_logins(
    tmp_path: Path,
) -> None:
    limits = {"failed_logins_per_peer": 3, "failed_login_rate_per_peer": 0.001}
    served = Served(tmp_path, "process", server=limits)
    try:
        with _from("127.0.0.2", served.url) as guesser, _from("127.0.0.3", served.url) as other:
            for _ in range(3):
                assert _login(guesser, "alice", "a-guess").status_code == 401
            held = _login(guesser, "alice", TENANTS["alice"]["key"])  # at the gateway's door
            assert held.status_code == 429, held.text
            assert held.json()["details"]["reason"] == "too-many-failed-logins"
            # another client, another tenant: the kernel counted the gateway's failures
            # at alice's name only
            bob = _login(other, "bob", TENANTS["bob"]["key"])
            assert bob.status_code == 201, bob.text
            # alice's name through this gateway waits (the kernel's refusal: it names
            # the gateway's process as the peer, not the client's address)
            alice = _login(other, "alice", TENANTS["alice"]["key"])
            assert alice.status_code == 429, alice.text
            assert "(pid " in alice.json()["detail"], alice.text
        # a peer of its own at the kernel is not held back, even as alice
        key = TENANTS["alice"]["key"]
        with Client.connect(str(served.socket), tenant="alice", key=key) as direct:
            assert direct.session_id
    finally:
        served.stop()


# --------------------------------------------------------------------------- resuming


def _sse(reply: httpx.Response) -> Iterator[dict[str, Any]]:
    """A stream's events as they come: ``{id, event, data}`` (``id`` None where the
    event has none)."""
    event: dict[str, Any] = {"id": None}
    for line in reply.iter_lines():
        if not line:
            if "event" in event:
                yield event
            event = {"id": None}
            continue
        field, _, value = line.partition(": ")
        event[field] = Cursor.parse(value) if field == "id" else value
    if "event" in event:
        yield event


def test_an_sse_stream_resumes_past_its_last_event_id_with_no_event_twice(
    tmp_path: Path, mode: str
) -> None:
    with WorkerGate(tmp_path) as gate:
        served = Served(tmp_path, mode, gate=gate)
        try:
            key = TENANTS["alice"]["key"]
            with Client.connect(str(served.socket), tenant="alice", key=key) as kernel:
                kernel.q_submit(BELL, 10, 1)  # held in the one worker
                job = kernel.q_submit(BELL, 10, 2).job_id  # queued behind it
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as http:
                sid = session(http)
                events = f"/v1/jobs/{job}/events"
                with http.stream("GET", events, headers=bearer(sid)) as first:
                    heard = _sse(first)
                    now = next(heard)
                    assert (now["event"], now["id"]) == ("state", None)  # the state now
                    assert '"QUEUED"' in now["data"]
                    gate.release()  # the first job ends: this one runs, held in turn
                    running = next(heard)
                    assert running["event"] == "state" and '"RUNNING"' in running["data"]
                    cursor = running["id"]
                    assert isinstance(cursor, Cursor) and cursor.sub == 0  # a line
                gate.release()  # it completes while no one watches
                kernel_wait = httpx.get(
                    f"{served.url}/v1/jobs/{job}/wait",
                    params={"timeout_ms": 60_000},
                    headers=bearer(sid),
                    timeout=GUARD_S,
                )
                assert kernel_wait.json()["state"] == "COMPLETED", kernel_wait.text
                resumed_headers = {**bearer(sid), "Last-Event-ID": str(cursor)}
                with http.stream("GET", events, headers=resumed_headers) as again:
                    resumed = list(_sse(again))
                with http.stream("GET", events, headers=bearer(sid)) as fresh:
                    anew = list(_sse(fresh))
                bad = http.get(events, headers={**bearer(sid), "Last-Event-ID": "x1"})
        finally:
            gate.open()
            served.stop()
    assert resumed[0]["id"] is not None, resumed  # no state-now event first
    names = [e["event"] for e in resumed]
    assert names[-1] == "result" and "state" in names, resumed
    ids = [e["id"] for e in resumed if e["id"] is not None]  # a COMPLETED line is two events
    assert ids and min(ids) > cursor and ids == sorted(ids), resumed
    told = [(e["event"], e["id"]) for e in resumed]
    assert len(set(told)) == len(told), resumed
    states = [e["data"] for e in resumed if e["event"] == "state"]
    assert not any('"RUNNING"' in data for data in states), resumed  # nothing heard twice
    assert any(e["event"] == "state" and '"COMPLETED"' in e["data"] for e in resumed)
    # the control: a stream with no cursor starts with the state now, and no id
    assert (anew[0]["event"], anew[0]["id"]) == ("state", None) and anew[-1]["event"] == "result"
    assert bad.status_code == 400 and bad.json()["code"] == "QR32600", bad.text
    assert bad.json()["details"]["header"] == "Last-Event-ID", bad.text
    assert "\n" not in bad.json()["detail"], bad.text


def test_a_grpc_watch_job_resumes_past_its_after_with_no_event_twice(
    tmp_path: Path, mode: str
) -> None:
    from qmk.grpc.client import Client as GrpcClient

    key = TENANTS["alice"]["key"]
    with WorkerGate(tmp_path) as gate:
        served = Served(tmp_path, mode, gate=gate, grpc=True)
        try:
            with Client.connect(str(served.socket), tenant="alice", key=key) as kernel:
                kernel.q_submit(BELL, 10, 1)  # held in the one worker
                job = kernel.q_submit(BELL, 10, 2).job_id  # queued behind it
                address = served.grpc.removeprefix("grpc://")
                with GrpcClient(address, session_id=kernel.session_id) as alice:
                    heard = alice.watch_job(job)
                    now = next(heard)
                    assert (now.event, now.HasField("seq")) == ("state", False)
                    assert now.state == "QUEUED"
                    gate.release()  # the first job ends: this one runs, held in turn
                    running = next(heard)
                    assert (running.event, running.state) == ("state", "RUNNING")
                    cursor = running.seq
                    assert (running.HasField("sub"), running.sub) == (True, 0)  # a line
                    heard.close()
                    gate.release()  # it completes while no one watches
                    assert kernel.q_wait(job, 60_000).state == "COMPLETED"
                    resumed = list(alice.watch_job(job, after=cursor))
                    anew = list(alice.watch_job(job))
        finally:
            gate.open()
            served.stop()
    assert resumed[0].HasField("seq") and resumed[-1].event == "result", resumed
    told = [(e.event, e.seq) for e in resumed if e.HasField("seq")]
    assert told and min(seq for _, seq in told) > cursor and len(set(told)) == len(told)
    assert [e.state for e in resumed if e.event == "state"] == ["COMPLETED"]
    # the control: a watch with no cursor starts with the state now
    assert (anew[0].event, anew[0].HasField("seq")) == ("state", False)
