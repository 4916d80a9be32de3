"""Live streams resumed from their cursor across a killed gateway and a killed kernel,
through real ``qmk serve --http --grpc`` and ``qmk gateway`` processes and real sockets.

A device job's stream parts share the seq of the audit line before them: each event's
cursor is the pair (SSE ``id: SEQ-SUB``, ``JobEvent.seq`` and ``sub``), and a stream
opened again with the last one gets exactly the events after it, compared with the
tenant's feed (``GET /v1/feed``, ``q_events``) walked from the same cursor. Jobs are
held in their worker by a :class:`~support.kernel.WorkerGate` while a gateway is killed,
so what a stream had heard by then never depends on the machine's speed. Every wait is
on an observable condition (a process gone, an answer, an event), bounded only against a
hang (:data:`GUARD_S`), except the restart's, which is the supervisor's promise.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmk.abi.probe import Cursor
from qmk.errors import QMKError
from qmk.grpc.client import Client as GrpcClient
from support.http import bearer, session
from support.kernel import BELL, TENANTS, WorkerGate
from support.served import GUARD_S, LoneGateway, Served, gateway_of

#: A killed gateway serves again within this (its supervisor keeps a spare ready; the
#: rest is a Python start on a loaded 2-core host).
RESTART_BOUND_S = 20.0
#: ada runs device jobs (the neutral-atom target), beside the usual tenants.
DEVICE_TENANTS = {
    **TENANTS,
    "ada": {
        "key": "ada-secret-key",
        "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"],
        "max_atoms": 6,
        "max_queued_jobs": 100,
    },
}
#: A GHZ job of 600 shots: 3 parts of measurements (256 records a part), and its pulses.
GHZ = {
    "profile": "benchmark_chain",
    "shots": 600,
    "seed": 5,
    "program": [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2], "param": 0.0},
        {"op": "Measure", "targets": [0, 1, 2]},
    ],
}
Event = dict[str, Any]


def _ada(http: httpx.Client) -> str:
    login = {"tenant": "ada", "key": "ada-secret-key", "requested": ["CAP_DEVICE_NA"]}
    reply = http.post("/v1/sessions", json=login)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["session_id"])


def _submit_streamed(http: httpx.Client, sid: str) -> str:
    body = {
        "program": GHZ,
        "shots": GHZ["shots"],
        "seed": GHZ["seed"],
        "target": "neutral-atom",
        "policy": {"stream": {"measurements": True, "pulses": True}},
    }
    reply = http.post("/v1/jobs", json=body, headers=bearer(sid))
    assert reply.status_code == 201, reply.text
    return str(reply.json()["job_id"])


def _sse(reply: httpx.Response) -> Iterator[Event]:
    """A stream's events as they come: ``{id, event, data}`` (``id`` a
    :class:`~qmk.abi.probe.Cursor`, None where the event has none; ``data`` decoded).
    A keep-alive (every 15 s of quiet) past :data:`GUARD_S` fails: the awaited event
    did not come."""
    deadline = time.monotonic() + GUARD_S
    event: Event = {"id": None}
    for line in reply.iter_lines():
        if line.startswith(":") and time.monotonic() > deadline:
            raise AssertionError(f"no awaited event within {GUARD_S} s")
        if not line:
            if "event" in event:
                yield event
            event = {"id": None}
            continue
        field, _, value = line.partition(": ")
        if field == "id":
            event["id"] = Cursor.parse(value)
        elif field == "data":
            event["data"] = json.loads(value)
        elif field == "event":
            event["event"] = value


def _until(events: Iterator[Event], done: Callable[[Event], bool], into: list[Event]) -> None:
    """Read ``events`` into ``into`` through the first that is ``done``."""
    for event in events:
        into.append(event)
        if done(event):
            return
    raise AssertionError(f"the stream ended first: {into[-3:]}")


def _job_state(job_id: str, state: str) -> Callable[[Event], bool]:
    def done(event: Event) -> bool:
        data = event.get("data") or {}
        return data.get("job_id") == job_id and data.get("state") == state

    return done


def _now(http: httpx.Client, sid: str) -> Cursor:
    """The tenant feed's cursor of now (``GET /v1/feed``: ``q_events`` from now)."""
    page = http.get("/v1/feed", params={"limit": 1}, headers=bearer(sid)).json()
    return Cursor(page["cursor"], page["cursor_sub"])


def _feed(http: httpx.Client, sid: str, after: Cursor, through: Cursor) -> list[Event]:
    """The tenant's records after ``after`` through ``through``, framed as
    ``GET /v1/events`` frames them (``id`` the cursor; no ``sub`` in the data; a
    worker's ``spans`` left out)."""
    found: list[Event] = []
    while after < through:
        params = {"after": after.seq, "after_sub": after.sub}
        page = http.get("/v1/feed", params=params, headers=bearer(sid)).json()
        assert page["events"], (after, through)
        for record in page["events"]:
            cursor = Cursor(record["seq"], record.pop("sub"))
            if cursor <= through and record["event"] != "spans":
                found.append({"id": cursor, "event": record["event"], "data": record})
        after = Cursor(page["cursor"], page["cursor_sub"])
    return found


def _records(events: list[Event]) -> list[Event]:
    """The events that are records (those with an id)."""
    return [e for e in events if e["id"] is not None]


def _told(events: list[Event]) -> list[tuple[str, Cursor | None]]:
    """``(event, id)`` of the records and the result: what a watch gives whatever the
    machine's speed (a ``progress`` every 2 s of quiet is left out)."""
    return [(e["event"], e["id"]) for e in events if e["id"] is not None or e["event"] == "result"]


def _served_again(answers: Callable[[], object], since: float) -> float:
    """The seconds from ``since`` until ``answers()`` returns (a new connection each try:
    the old ones died with their gateway)."""
    while time.monotonic() - since < RESTART_BOUND_S:
        try:
            answers()
            return time.monotonic() - since
        except (httpx.TransportError, QMKError):
            time.sleep(0.02)
    raise AssertionError(f"no gateway answered {RESTART_BOUND_S} s after the kill")


def _resume_sse(url: str, path: str, sid: str, last: Cursor, done: Callable[[Event], bool]) -> Any:
    """``path``'s stream opened with ``Last-Event-ID: last``, read through ``done``."""

    def open_() -> list[Event]:
        headers = {**bearer(sid), "Last-Event-ID": str(last)}
        with (
            httpx.Client(base_url=url, timeout=GUARD_S) as http,
            http.stream("GET", path, headers=headers) as reply,
        ):
            assert reply.status_code == 200, reply.read()
            told: list[Event] = []
            _until(_sse(reply), done, told)
            return told

    return open_


def _grpc_events(events: Any) -> list[Event]:
    """``JobEvent`` messages as the SSE events they mirror (``id`` their cursor)."""
    return [
        {
            "id": Cursor(e.seq, e.sub) if e.HasField("seq") else None,
            "event": e.event,
            "data": json.loads(e.json),
        }
        for e in events
    ]


def test_a_tenant_stream_broken_by_a_killed_http_gateway_resumes_exactly_and_grpc_goes_on(
    tmp_path: Path,
) -> None:
    with WorkerGate(tmp_path) as gate:
        served = Served(tmp_path, gate=gate, grpc=True, tenants=DEVICE_TENANTS)
        try:
            address = served.grpc.removeprefix("grpc://")
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as http:
                sid = _ada(http)
                start = _now(http, sid)
                before: list[Event] = []
                with http.stream("GET", "/v1/events", headers=bearer(sid)) as stream:
                    heard = _sse(stream)
                    assert next(heard)["event"] == "hello"
                    job_id = _submit_streamed(http, sid)
                    _until(heard, _job_state(job_id, "RUNNING"), before)  # held in its worker
                    with GrpcClient(address, session_id=sid) as over_grpc:
                        watch = over_grpc.watch_job(job_id)
                        now = next(watch)  # the other wire's stream is live
                        assert (now.event, now.state) == ("state", "RUNNING")
                        gateway = gateway_of(served.proc.pid, "http")
                        os.kill(gateway, signal.SIGKILL)
                        killed_at = time.monotonic()
                        with pytest.raises(httpx.TransportError):
                            for event in heard:  # nothing more for the tenant: the job is held
                                before.append(event)
                        gate.release()  # it runs while no HTTP gateway serves
                        grpc_told = _grpc_events([now, *watch])
            served_again_s = _served_again(lambda: httpx.get(f"{served.url}/healthz"), killed_at)
            last = _records(before)[-1]["id"]
            resumed = _resume_sse(
                served.url, "/v1/events", sid, last, _job_state(job_id, "COMPLETED")
            )()
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as http:
                feed = _feed(http, sid, start, resumed[-1]["id"])
                parts = [e["id"] for e in feed if e["event"] == "stream"]
                middle = parts[len(parts) // 2]  # a part with parts of its line before it
                tail = _resume_sse(
                    served.url, "/v1/events", sid, middle, _job_state(job_id, "COMPLETED")
                )()
                job_tail = _resume_sse(
                    served.url,
                    f"/v1/jobs/{job_id}/events",
                    sid,
                    middle,
                    lambda e: e["event"] == "result",
                )()
            with GrpcClient(address, session_id=sid) as over_grpc:
                grpc_tail = _grpc_events(
                    over_grpc.watch_job(job_id, after=middle.seq, after_sub=middle.sub)
                )
        finally:
            gate.open()
            served.stop()
    assert served_again_s < RESTART_BOUND_S
    # the resumed stream: exactly the records after its last id, then live
    assert resumed[0]["event"] == "hello"
    told = [*_records(before), *resumed[1:]]
    assert told == feed, "the stream before the kill and after it are not the feed"
    assert len(parts) >= 4 and middle.sub >= 2
    assert sum(1 for e in resumed if e["event"] == "stream") == len(parts)  # all after it
    # resumed after a part: the parts of its line after it, and the rest
    assert tail[1:] == [e for e in feed if e["id"] > middle]
    # the other wire did not notice: the whole job, unbroken, to its result
    assert grpc_told[-1]["event"] == "result" and grpc_told[-1]["data"]["state"] == "COMPLETED"
    job_records = [e for e in feed if e["data"].get("job_id") == job_id]
    heard_after = [e["id"] for e in _records(grpc_told) if e["id"] > _records(before)[-1]["id"]]
    assert sorted(set(heard_after)) == [e["id"] for e in job_records if e["id"] > last]
    # a job's watch resumed after the same part: SSE and gRPC give the same events
    assert job_tail[-1]["event"] == "result" and grpc_tail[-1]["event"] == "result"
    assert _told(job_tail) == _told(grpc_tail)
    assert [e["id"] for e in job_tail if e["event"] == "stream"] == [p for p in parts if p > middle]


def test_a_watch_job_broken_by_a_killed_grpc_gateway_resumes_exactly_and_sse_goes_on(
    tmp_path: Path,
) -> None:
    with WorkerGate(tmp_path) as gate:
        served = Served(tmp_path, gate=gate, grpc=True, tenants=DEVICE_TENANTS)
        try:
            address = served.grpc.removeprefix("grpc://")
            with httpx.Client(base_url=served.url, timeout=GUARD_S) as http:
                sid = _ada(http)
                start = _now(http, sid)
                job_id = _submit_streamed(http, sid)
                path = f"/v1/jobs/{job_id}/events"
                headers = {**bearer(sid), "Last-Event-ID": str(start)}
                sse_told: list[Event] = []
                with http.stream("GET", path, headers=headers) as stream:
                    heard = _sse(stream)
                    _until(heard, _job_state(job_id, "RUNNING"), sse_told)  # held
                    before: list[Any] = []
                    with GrpcClient(address, session_id=sid) as over_grpc:
                        watch = over_grpc.watch_job(job_id, after=start.seq, after_sub=start.sub)
                        for event in watch:
                            before.append(event)
                            if event.state == "RUNNING":
                                break
                        gateway = gateway_of(served.proc.pid, "grpc")
                        os.kill(gateway, signal.SIGKILL)
                        killed_at = time.monotonic()
                        with pytest.raises(QMKError):
                            before.extend(watch)
                    gate.release()  # it runs while no gRPC gateway serves
                    _until(heard, lambda e: e["event"] == "result", sse_told)  # SSE goes on
            last = _records(_grpc_events(before))[-1]["id"]

            def status() -> object:
                with GrpcClient(address, session_id=sid) as again:
                    return again.q_status(job_id)

            served_again_s = _served_again(status, killed_at)
            with GrpcClient(address, session_id=sid) as again:
                watch = again.watch_job(job_id, after=last.seq, after_sub=last.sub)
                resumed = _grpc_events(watch)
        finally:
            gate.open()
            served.stop()
    assert served_again_s < RESTART_BOUND_S
    grpc_told = [*_grpc_events(before), *resumed]
    # the gRPC watch before the kill and after it is the SSE watch, record for record
    assert _told(grpc_told) == _told(sse_told)
    assert [e["data"] for e in _records(grpc_told)] == [e["data"] for e in _records(sse_told)]
    assert sum(1 for e in resumed if e["event"] == "stream") >= 4
    assert resumed[-1]["event"] == "result" and resumed[-1]["data"]["state"] == "COMPLETED"
    assert all(e["id"] is None or e["id"] > last for e in resumed)


def test_lone_gateways_answer_503_while_the_kernel_is_killed_and_streams_resume_after_it(
    tmp_path: Path,
) -> None:
    kernel = Served(tmp_path, kernel_only=True)
    gateways: list[LoneGateway] = []
    try:
        gateways = [LoneGateway(tmp_path, wire, kernel.socket) for wire in ("http", "grpc")]
        http_url, grpc_address = gateways[0].url, gateways[1].url.removeprefix("grpc://")
        with httpx.Client(base_url=http_url, timeout=GUARD_S) as http:
            sid = session(http)
            start = _now(http, sid)
            before: list[Event] = []
            with http.stream("GET", "/v1/events", headers=bearer(sid)) as stream:
                heard = _sse(stream)
                assert next(heard)["event"] == "hello"
                first = http.post(
                    "/v1/jobs", json={"program": BELL, "shots": 20, "seed": 3}, headers=bearer(sid)
                )
                assert first.status_code == 201, first.text
                _until(heard, _job_state(first.json()["job_id"], "COMPLETED"), before)
                last = _records(before)[-1]["id"]
                fed = _feed(http, sid, start, last)  # the control: the stream is the feed
                accepted = http.post(
                    "/v1/jobs", json={"program": BELL, "shots": 20, "seed": 4}, headers=bearer(sid)
                )
                assert accepted.status_code == 201, accepted.text  # in flight at the kill
                os.kill(kernel.proc.pid, signal.SIGKILL)
                assert kernel.proc.wait(GUARD_S) == -signal.SIGKILL
                ended: list[Event] = []
                _until(heard, lambda e: e["event"] == "error", ended)  # the stream says why
            away = http.get(f"/v1/jobs/{accepted.json()['job_id']}", headers=bearer(sid))
            with (
                GrpcClient(grpc_address, session_id=sid) as over_grpc,
                pytest.raises(QMKError) as grpc_away,
            ):
                over_grpc.q_status(accepted.json()["job_id"])
            kernel = Served(tmp_path, kernel_only=True)  # the same data dir and socket
            done = http.get(
                f"/v1/jobs/{accepted.json()['job_id']}/wait",
                params={"timeout_ms": 60_000},
                headers=bearer(sid),
            )
            later = http.post(
                "/v1/jobs", json={"program": BELL, "shots": 20, "seed": 5}, headers=bearer(sid)
            )
            assert later.status_code == 201, later.text
            later_id = later.json()["job_id"]
            resumed = _resume_sse(
                http_url, "/v1/events", sid, last, _job_state(later_id, "COMPLETED")
            )()
            feed = _feed(http, sid, last, resumed[-1]["id"])
            with GrpcClient(grpc_address, session_id=sid) as over_grpc:
                watched = _grpc_events(
                    over_grpc.watch_job(later_id, after=last.seq, after_sub=last.sub)
                )
    finally:
        for gateway in gateways:
            gateway.stop()
        kernel.stop()
    assert _records(before) == fed
    problem = ended[-1]["data"]
    assert problem["code"] == "QS1011" and problem["details"]["reason"] == "kernel-away"
    assert away.status_code == 503, away.text
    assert away.headers["retry-after"] == "1", away.headers
    assert away.json()["details"]["reason"] == "kernel-away" and "\n" not in away.json()["detail"]
    assert grpc_away.value.code == "QS1011" and grpc_away.value.details["reason"] == "kernel-away"
    # no accepted job is lost: the one in flight at the kill ends after the restart
    assert done.status_code == 200 and done.json()["state"] == "COMPLETED", done.text
    # the tenant's stream resumed past its last id after the restart: exactly the feed
    assert resumed[0]["event"] == "hello" and resumed[1:] == feed
    assert any(_job_state(accepted.json()["job_id"], "COMPLETED")(e) for e in feed)
    # a job's gRPC watch resumed past the same cursor: that job's records of the feed
    later_records = [e["id"] for e in feed if e["data"].get("job_id") == later_id]
    assert sorted({e["id"] for e in _records(watched)}) == later_records
    assert watched[-1]["event"] == "result" and watched[-1]["data"]["state"] == "COMPLETED"


@pytest.mark.parametrize("mode", ["inline", "process"])
def test_a_tenant_stream_left_after_a_stream_part_resumes_past_it_exactly(
    tmp_path: Path, mode: str
) -> None:
    """Whichever process serves the REST API (the kernel's own hub inline, the kernel's
    feed through a gateway), ``GET /v1/events`` resumed after a part gives the parts of
    its line after it and the rest: the feed after that cursor."""
    served = Served(tmp_path, mode, tenants=DEVICE_TENANTS)
    try:
        with httpx.Client(base_url=served.url, timeout=GUARD_S) as http:
            sid = _ada(http)
            start = _now(http, sid)
            before: list[Event] = []
            with http.stream("GET", "/v1/events", headers=bearer(sid)) as stream:
                heard = _sse(stream)
                assert next(heard)["event"] == "hello"
                job_id = _submit_streamed(http, sid)
                _until(heard, lambda e: e["id"] is not None and e["id"].sub >= 2, before)
            last = before[-1]["id"]  # a part, with a part of its line before it
            done = http.get(
                f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 120_000}, headers=bearer(sid)
            )
            assert done.json()["state"] == "COMPLETED", done.text
            resumed = _resume_sse(
                served.url, "/v1/events", sid, last, _job_state(job_id, "COMPLETED")
            )()
            feed = _feed(http, sid, start, resumed[-1]["id"])
            bad = http.get("/v1/events", headers={**bearer(sid), "Last-Event-ID": "12-x"})
    finally:
        served.stop()
    assert before[-1]["event"] == "stream"
    assert [*before, *resumed[1:]] == feed
    assert bad.status_code == 400 and bad.json()["code"] == "QR32600", bad.text
    assert bad.json()["details"] == {"header": "Last-Event-ID"}, bad.text
