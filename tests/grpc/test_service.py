"""``qmk.v1.Kernel`` on a real ``qmk serve --grpc`` socket: every rpc answers as the
JSON-RPC socket of the same kernel does, sessions travel as bearer metadata, refusals are
gRPC status codes that carry QMK's code, jobs stream their events, and the standard
health and reflection services are on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qmk.abi.errors import InvalidParams, ParseError
from qmk.abi.methods import METHODS
from qmk.abi.proto import SERVICE_NAME, schema
from qmk.client import Client as JsonRpcClient
from qmk.errors import (
    AuthError,
    CapabilityError,
    InvalidArgument,
    NotFoundError,
    QMKError,
    SessionError,
    StateError,
)
from qmk.execution.runs import run
from qmk.frontends import read_program
from qmk.grpc.client import Client
from qmk.grpc.schema import messages
from support.grpc_kernel import connect
from support.http import SCRAPER, HttpServer
from support.kernel import TENANTS
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call gives: its result, or the code and class of the QMK error it raises."""
    try:
        return call()
    except QMKError as exc:
        return (type(exc).__name__, exc.code)


@pytest.fixture(scope="module")
def twins(server: HttpServer, target: str) -> Any:
    """Alice over gRPC and over JSON-RPC (the same kernel), and dave over gRPC."""
    key = TENANTS["alice"]["key"]
    over_rpc = JsonRpcClient.connect(
        str(server.socket), tenant="alice", key=key, caps=TENANTS["alice"]["caps"]
    )
    over_grpc, dave = connect(target), connect(target, "dave")
    yield over_grpc, over_rpc, dave
    over_rpc.close()
    over_grpc.close()
    dave.close()


def test_every_rpc_answers_what_the_json_rpc_socket_answers(twins: Any):
    g, r, dave = twins
    called: set[str] = {"q_negotiate_caps"}  # the clients' connect did
    assert g.core.session is not None and g.core.session.tenant == "alice"
    assert set(g.core.session.granted) == set(TENANTS["alice"]["caps"])

    def both(method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        called.add(method)
        return (
            _outcome(lambda: getattr(g, method)(*args, **kwargs)),
            _outcome(lambda: getattr(r, method)(*args, **kwargs)),
        )

    graph = read_program(str(EXAMPLES / "bell.qasm")).to_json()
    # Two seeds: a second submit of the same program and seed is the result cache's to
    # answer (COMPLETED) once the first has ended, which a loaded host may let happen.
    called.add("q_submit")
    a = _outcome(lambda: g.q_submit(graph, shots=300, seed=9))
    b = _outcome(lambda: r.q_submit(graph, shots=300, seed=10))
    assert a.state == b.state == "QUEUED" and a.tenant == b.tenant == "alice"
    job_id, other_id = a.job_id, b.job_id
    a, b = both("q_wait", job_id, 60000)
    assert a == b and a.state == "COMPLETED"  # the same job, read over both wires
    local = run(read_program(str(EXAMPLES / "bell.qasm")), shots=300, seed=9)
    assert a.result["counts"] == dict(local.counts)
    other_local = run(read_program(str(EXAMPLES / "bell.qasm")), shots=300, seed=10)
    assert r.q_wait(other_id, 60000).result["counts"] == dict(other_local.counts)
    for method in ("q_status", "q_get_telemetry", "q_get_result"):
        a, b = both(method, job_id)
        assert a == b, method
    a, b = both("q_list_jobs", "COMPLETED", 5)
    assert a == b and job_id in [j.job_id for j in a.jobs]
    a, b = both("q_resource_query")
    moving = {"epoch", "physical_qubits_in_use", "physical_qubits_free"}  # ticks between calls
    stable = [{k: v for k, v in r.machine.items() if k not in moving} for r in (a, b)]
    assert a.tenant == b.tenant and stable[0] == stable[1]
    checkpoint, _ = both("q_checkpoint", job_id)
    assert checkpoint.job_id == job_id
    replayed, other = both("q_replay", job_id)
    assert replayed.state == other.state == "QUEUED"
    assert g.q_wait(replayed.job_id, 60000).result["counts"] == dict(local.counts)
    r.q_wait(other.job_id, 60000)
    a, _ = both("q_restore", job_id, checkpoint.checkpoint_id)
    assert a.state == "QUEUED"
    assert g.q_wait(job_id, 60000).result["counts"] == dict(local.counts)
    assert both("q_cancel", job_id) == (("StateError", "QS1009"),) * 2  # it is final

    a, b = both("q_open_chan", "dave", None, 0.99)
    assert a.state == b.state and a.tenants == b.tenants
    assert dave.q_open_chan("alice", a.channel_id).state == "OPEN"
    assert both("q_chan_status", a.channel_id)[0].state == "OPEN"
    listed, _ = both("q_list_channels", "OPEN")
    assert a.channel_id in [c.channel_id for c in listed.channels]
    closed, _ = both("q_close_chan", a.channel_id)
    assert closed.state == "CLOSED"

    empty = both("q_delegate_caps", "dave", [], 60.0)  # an empty repeated field is []
    assert empty[0] == empty[1] and isinstance(empty[0], tuple), empty
    lent, other = both("q_delegate_caps", "dave", ["CAP_MAGIC"], 60.0)
    assert lent.state == other.state == "LIVE" and lent.caps == ["CAP_MAGIC"]
    made, _ = both("q_list_delegations", "LIVE")
    assert lent.delegation_id in [d.delegation_id for d in made.delegations]
    revoked, _ = both("q_revoke_delegation", lent.delegation_id)
    assert revoked.state == "REVOKED"

    a, b = both("q_calibrate", None, {"name": "qubit_gate_ns_e3"})
    assert a == b == ("CapabilityError", "QS1004")  # alice is no operator
    a, b = both("q_submit", {"program": []}, target="neutral-atom")  # a device job
    assert a == b and a[1].startswith("QS")
    # no model is configured: QMK's own advice, the same on both wires (ids differ)
    a, b = both("q_assist", "what does QS1006 mean?", None, "same-id")
    assert a == b and a.status == "advice" and a.advice[0].startswith("QS1006 ")
    a, b = both("q_device_artifacts", job_id)  # not a device job: the same answer
    assert a == b
    a, b = both("q_usage", None, None, job_id)
    assert a == b and a.count >= 1 and a.records[0]["job_id"] == job_id
    a, b = both("q_audit", job_id, 5)
    assert a == b and a.entries[-1]["job_id"] == job_id
    a, b = both("q_events", None, 10, None)  # from now: nothing yet
    assert a.events == b.events == [] and a.tenant == "alice"
    a, b = both("q_events", a.cursor - 3, 3, None)  # the same records, oldest first
    assert a.events == b.events and len(a.events) <= 3
    a, b = both("q_kernel_load")  # alice holds no CAP_OBSERVE
    assert a == b == ("CapabilityError", "QS1004")
    a, b = both("q_machine_status")  # the machine moves on between the two: its shape
    assert a.policy == b.policy and set(a.fields()) == set(b.fields()) and a.machine == b.machine
    assert a.jobs["done"] >= 2 and b.clock_cycle >= a.clock_cycle
    flow = {"name": "bell", "steps": [{"name": "b", "source": BELL_QASM, "shots": 10, "seed": 1}]}
    a, b = both("q_create_trigger", "nightly", flow, "schedule", None, "0 3 * * *")
    assert a.state == b.state == "ACTIVE" and a.cron == b.cron == "0 3 * * *"
    assert a.next_run_at == b.next_run_at and a.jobs == b.jobs == 1
    listed, other = both("q_list_triggers", a.trigger_id, 5)
    assert listed == other and listed.triggers[0].runs == []
    gone, again = both("q_delete_trigger", a.trigger_id)
    assert gone.state == "DELETED" and again == ("NotFoundError", "QS1005")
    assert r.q_delete_trigger(b.trigger_id).state == "DELETED"
    assert called == set(METHODS)


def test_the_typed_answers_carry_session_job_state_and_counts(target: str, alice: Any):
    session = alice.rpc("NegotiateCaps", tenant="bob", key=TENANTS["bob"]["key"])
    assert session.tenant == "bob" and session.session_id.startswith("s1.")
    assert list(session.granted) == [] and json.loads(session.json)["tenant"] == "bob"
    job = alice.submit(BELL_QASM, shots=200, seed=4)  # OpenQASM: no format needed
    assert job.state == "QUEUED" and job.shots == 200 and job.seed == 4
    done = alice.rpc("Wait", job_id=job.job_id, timeout_ms=60000)
    local = run(read_program(str(EXAMPLES / "bell.qasm")), shots=200, seed=4)
    assert done.state == "COMPLETED" and dict(done.counts) == dict(local.counts)
    assert json.loads(done.json)["result"]["counts"] == dict(done.counts)
    status = alice.rpc("Status", job_id=job.job_id)
    assert dict(status.counts) == dict(done.counts) and status.HasField("finished_at")


def test_a_submit_that_waits_answers_over_grpc_what_it_answers_over_json_rpc(
    twins: Any, alice: Any
):
    g, r, _ = twins
    graph = read_program(str(EXAMPLES / "bell.qasm")).to_json()
    local = dict(run(read_program(str(EXAMPLES / "bell.qasm")), shots=300, seed=12).counts)
    over_grpc = g.q_submit(graph, 300, 12, wait_ms=60000)
    over_rpc = r.q_submit(graph, 300, 12, wait_ms=60000)
    for done in (over_grpc, over_rpc):
        assert done.state == "COMPLETED" and done.result["counts"] == local
    assert over_grpc == g.q_wait(over_grpc.job_id, 0)
    typed = alice.submit(BELL_QASM, shots=300, seed=12, wait_ms=60000)  # the Job message
    assert typed.state == "COMPLETED" and dict(typed.counts) == local
    with pytest.raises(InvalidArgument) as refused:
        g.q_submit(graph, 300, 12, wait_ms=-1)
    assert "wait_ms must be an integer" in refused.value.message


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        ("bell.qasm", None),
        ("bell.qasm", "qasm2"),
        ("bell.ll", "qir"),
        ("bell.ll", None),
        ("bell.qvm.asm", "qvm-asm"),
        ("bell.qvm.json", None),
        ("bell.qvm.json", "qvm-json"),
    ],
)
def test_a_program_in_any_format_gives_the_counts_qmk_run_gives(
    alice: Any, source: str, fmt: str | None
):
    text = (EXAMPLES / source).read_text()
    job = alice.submit(text, format=fmt, shots=250, seed=6)
    done = alice.rpc("Wait", job_id=job.job_id, timeout_ms=60000)
    local = run(read_program(str(EXAMPLES / source)), shots=250, seed=6)
    assert done.state == "COMPLETED" and dict(done.counts) == dict(local.counts)


def test_a_policy_travels_as_a_struct(alice: Any):
    job = alice.submit(BELL_QASM, shots=10, seed=1, policy={"priority": 7, "engine": "stabilizer"})
    assert json.loads(job.json)["priority"] == 7
    done = json.loads(alice.rpc("Wait", job_id=job.job_id, timeout_ms=60000).json)
    assert done["result"]["engine"] == "stabilizer"


# --------------------------------------------------------------------------- refusals


def _raw(target: str, rpc: str, metadata: tuple[tuple[str, str], ...] = (), **fields: Any):
    """Call ``rpc`` with a plain gRPC channel; the ``grpc.RpcError`` it fails with."""
    found = next(r for r in schema().rpcs if r.name == rpc)
    classes = messages()
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(
            f"/{SERVICE_NAME}/{rpc}",
            request_serializer=classes[found.request].SerializeToString,
            response_deserializer=classes[found.reply].FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub(classes[found.request](**fields), metadata=metadata, timeout=60)
    return caught.value


def _bearer(session_id: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {session_id}"),)


def test_a_removed_rpc_is_unimplemented_naming_the_rpc_to_call(target: str):
    with grpc.insecure_channel(target) as channel:  # DeviceSubmit, of q_device_submit
        stub = channel.unary_unary(f"/{SERVICE_NAME}/DeviceSubmit")
        with pytest.raises(grpc.RpcError) as caught:
            stub(b"", timeout=60)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "did you mean Submit (q_submit" in caught.value.details()
    carried = dict(caught.value.trailing_metadata())["qmk-error"]
    assert json.loads(carried)["details"]["closest"] == "Submit"


def test_a_missing_malformed_or_unknown_session_is_unauthenticated(target: str):
    for metadata in ((), (("authorization", "Basic abc"),), _bearer("not-a-session")):
        error = _raw(target, "Status", metadata, job_id="job_x")
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, metadata
        assert error.details().startswith("QS1002 invalid-session: "), error.details()
    error = _raw(target, "NegotiateCaps", tenant="alice", key="wrong")
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details().startswith("QS1001 auth-failed: ")


def test_a_message_that_does_not_parse_is_refused_after_the_session_is_checked(
    target: str, alice: Any
):
    garbage = b"\xff\xff\xff"  # field 31 with a varint that never ends
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(f"/{SERVICE_NAME}/Status")
        with pytest.raises(grpc.RpcError) as unsigned:
            stub(garbage, metadata=_bearer("not-a-session"), timeout=60)
        with pytest.raises(grpc.RpcError) as signed:
            stub(garbage, metadata=_bearer(alice.session_id), timeout=60)
    assert unsigned.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert signed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    refused = "QR32602 invalid-params: the request message is no StatusRequest"
    assert signed.value.details().startswith(refused)


def test_refusals_map_to_status_codes_and_the_client_raises_the_same_error(target: str, alice: Any):
    sid = alice.session_id
    bob = connect(target, "bob")
    job = alice.submit(BELL_QASM, shots=5, seed=1).job_id
    alice.q_wait(job, 60000)
    cases = [
        ("Status", {"job_id": "job_nope"}, sid, grpc.StatusCode.NOT_FOUND, NotFoundError),
        ("Status", {"job_id": job}, bob.session_id, grpc.StatusCode.NOT_FOUND, NotFoundError),
        ("Cancel", {"job_id": job}, sid, grpc.StatusCode.FAILED_PRECONDITION, StateError),
        ("Wait", {"job_id": job, "timeout_ms": -1}, sid, grpc.StatusCode.INVALID_ARGUMENT,
         InvalidArgument),
        ("Submit", {"shots": 3}, sid, grpc.StatusCode.INVALID_ARGUMENT, InvalidParams),
        ("Submit", {"program": BELL_QASM, "format": "cobol"}, sid,
         grpc.StatusCode.INVALID_ARGUMENT, InvalidParams),
        ("Submit", {"program": "qreg q[1];"}, sid, grpc.StatusCode.INVALID_ARGUMENT,
         InvalidParams),
        ("Submit", {"program": "{not json", "format": "qvm-json"}, sid,
         grpc.StatusCode.INVALID_ARGUMENT, ParseError),
        ("Calibrate", {}, sid, grpc.StatusCode.PERMISSION_DENIED, CapabilityError),
        ("Status", {"job_id": job}, "s1.forged", grpc.StatusCode.UNAUTHENTICATED, SessionError),
    ]  # fmt: skip
    for rpc, fields, session, status, kind in cases:
        error = _raw(target, rpc, _bearer(session), **fields)
        assert error.code() is status, (rpc, fields, error.details())
        trailing = dict(error.trailing_metadata())
        carried = json.loads(trailing["qmk-error"])
        assert error.details().startswith(f"{carried['code']} {carried['name']}: ")
        with pytest.raises(kind) as raised:
            alice.rpc(rpc, session_id=session, **fields)
        assert raised.value.code == carried["code"] and str(raised.value) == error.details()
    bob.close()


def test_a_program_that_does_not_lower_is_invalid_argument_with_the_front_ends_code(
    target: str, alice: Any
):
    bad = "OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n"
    error = _raw(target, "Submit", _bearer(alice.session_id), program=bad)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details()[:2] in ("QL", "QF", "QA"), error.details()
    with pytest.raises(QMKError) as raised:
        alice.submit(bad)
    assert str(raised.value) == error.details()


def test_capabilities_the_session_lacks_are_permission_denied(target: str):
    bob = connect(target, "bob")
    magic = (EXAMPLES / "t_gate_injection.qvm.json").read_text()
    with pytest.raises(CapabilityError) as raised:
        bob.submit(magic, format="qvm-json")
    assert raised.value.details["missing"]
    bob.close()
    with pytest.raises(AuthError):
        Client.connect(target, tenant="mallory", key="guess", caps=["CAP_ALLOC"])


# --------------------------------------------------------------------------- WatchJob


def test_watch_job_streams_states_then_the_result(alice: Any):
    job = alice.submit(BELL_QASM, shots=100, seed=8)
    events = list(alice.watch_job(job.job_id))
    assert events[0].event == "state" and events[-1].event == "result"
    assert all(e.job_id == job.job_id for e in events)
    final = json.loads(events[-1].json)
    assert events[-1].state == final["state"] == "COMPLETED"
    local = run(read_program(str(EXAMPLES / "bell.qasm")), shots=100, seed=8)
    assert final["result"]["counts"] == dict(local.counts)
    states = [e.state for e in events if e.event == "state"]
    assert states[-1] == "COMPLETED" and len(set(states)) == len(states)  # no state twice
    again = list(alice.watch_job(job.job_id))  # a final job: its state, then its result
    assert [e.event for e in again] == ["state", "result"]


def test_watch_job_refuses_another_tenants_job_and_no_session(target: str, alice: Any):
    job = alice.submit(BELL_QASM, shots=5, seed=2).job_id
    bob = connect(target, "bob")
    with pytest.raises(NotFoundError):
        list(bob.watch_job(job))
    bob.close()
    with pytest.raises(SessionError):
        list(alice.watch_job(job, session_id="s1.forged"))


# --------------------------------------------------------------------------- health, reflection


def test_the_health_service_says_serving(target: str):
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="nope.v1.X"), timeout=30)
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service_and_a_generic_client_can_call_it(target: str):
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE_NAME)
        assert [m.name for m in service.methods] == [r.name for r in schema().rpcs]
        # what grpcurl does: messages from the reflected descriptors, no stubs of ours
        method = service.methods_by_name["NegotiateCaps"]
        request = message_factory.GetMessageClass(method.input_type)
        reply = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{SERVICE_NAME}/NegotiateCaps",
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )
        answer = call(request(tenant="alice", key=TENANTS["alice"]["key"]), timeout=30)
        assert answer.tenant == "alice" and answer.session_id


def test_grpc_calls_are_traced_by_their_gateway_and_timed_by_it_alone(
    server: HttpServer, alice: Any
):
    import time

    import httpx

    job = alice.submit(BELL_QASM, shots=5, seed=4).job_id
    deadline = time.monotonic() + 60  # a hang guard: the exporter writes spans as they end
    while True:
        spans = [s for s in server.spans() if s["name"] == "qsyscall q_submit"]
        if any(s["attributes"].get("qmk.job_id") == job for s in spans):
            break
        assert time.monotonic() < deadline, [s["attributes"] for s in spans]
        time.sleep(0.05)
    # each gateway times the calls it serves: the HTTP gateway's page has its own only
    text = httpx.get(f"{server.url}/metrics", auth=SCRAPER, timeout=60).text
    assert 'transport="http"' in text and 'transport="grpc"' not in text
