"""Tenants, sessions, capabilities, quotas, admission and cancel, through a real ``qmk serve``."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

import pytest

from qmk.client import Client
from qmk.errors import (
    AdmissionError,
    AuthError,
    CapabilityError,
    FirewallError,
    NotFoundError,
    QuotaError,
    SessionError,
    SessionExpired,
)
from qmk.qvm.asm import assemble
from qmk.qvm.files import read_graph
from support.kernel import TENANTS, WorkerGate
from support.paths import EXAMPLES

KEYS = {"alice": "alice-secret-key", "bob": "bob-secret-key", "carol": "carol-secret-key"}


def example(name: str) -> dict[str, Any]:
    return read_graph(str(EXAMPLES / f"{name}.qvm.json")).to_json()


def wide_program(qubits: int, layers: int) -> dict[str, Any]:
    """``qubits`` qubits (no profile: the machine default), ``layers`` of H, T and a CNOT
    chain, then measure all: a wide non-Clifford statevector job."""
    names = [f"q{i}" for i in range(qubits)]
    lines = [
        ".version 0.2",
        ".caps CAP_ALLOC",
        ".vqs " + " ".join(names),
        ".events " + " ".join(f"m{i}" for i in range(qubits)),
        f"alloc: ALLOC_LQ {', '.join('vq:' + q for q in names)}, n={qubits}",
    ]
    k = 0
    for _ in range(layers):
        for q in names:
            lines += [f"g{k}: APPLY_H vq:{q}", f"g{k + 1}: APPLY_T vq:{q}"]
            k += 2
        for a, b in itertools.pairwise(names):
            lines.append(f"g{k}: APPLY_CNOT vq:{a}, vq:{b}")
            k += 1
    lines += [f"m{i}: MEASURE_Z vq:{q}, out:m{i}" for i, q in enumerate(names)]
    lines.append(f"free: FREE_LQ {', '.join('vq:' + q for q in names)}")
    return assemble("\n".join(lines) + "\n").to_json()


def connect(server: Any, tenant: str, **options: Any) -> Client:
    return Client.connect(str(server.socket), tenant=tenant, key=KEYS[tenant], **options)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- isolation


def test_another_tenants_job_is_not_found_exactly_like_an_unknown_one(shared_server):
    with connect(shared_server, "alice") as alice, connect(shared_server, "bob") as bob:
        job = alice.q_submit(example("bell"), 100, 5)
        job_id = job.job_id
        unknown = job_id[:-4] + ("AAAA" if not job_id.endswith("AAAA") else "BBBB")
        for call in (bob.q_status, bob.q_wait, bob.q_cancel, bob.q_get_telemetry):
            with pytest.raises(NotFoundError) as theirs:
                call(job_id)
            with pytest.raises(NotFoundError) as nobodys:
                call(unknown)
            assert theirs.value.rpc_code == 1005
            assert theirs.value.message.replace(job_id, "ID") == nobodys.value.message.replace(
                unknown, "ID"
            )
        assert job_id not in {j.job_id for j in bob.q_list_jobs().jobs}
        final = alice.q_wait(job_id, 30_000)
        assert final.state == "COMPLETED"  # bob's cancel did not touch it


def test_forged_and_other_tenant_session_ids_are_rejected(shared_server):
    with connect(shared_server, "alice") as alice, connect(shared_server, "bob") as bob:
        job_id = alice.q_submit(example("bell"), 10, 1).job_id
        token = alice.session_id
        assert token is not None
        prefix, payload, mac = token.split(".")
        claims = json.loads(_unb64(payload))
        as_bob = f"{prefix}.{_b64(json.dumps({**claims, 't': 'bob'}).encode())}.{mac}"
        more_caps = f"{prefix}.{_b64(json.dumps({**claims, 'e': claims['e'] + 1e6}).encode())}"
        forged = [
            "not-a-session",
            "s1.e30.AAAA",
            as_bob,  # alice's signature on a payload that claims tenant bob
            f"{more_caps}.{mac}",  # a longer life under the old signature
            f"{prefix}.{payload}.{_b64(b'x' * 32)}",  # a made-up signature
            "s1." + "A" * 5000,
        ]
        for session_id in forged:
            with pytest.raises(SessionError) as caught:
                bob.q_status(job_id, session_id=session_id)
            assert type(caught.value) is SessionError and caught.value.rpc_code == 1002
        # bob's own, valid session does not reach alice's job either
        with pytest.raises(NotFoundError):
            alice.q_status(job_id, session_id=bob.session_id)


def test_wrong_key_and_unknown_tenant_are_the_same_auth_error(shared_server):
    address = str(shared_server.socket)
    with pytest.raises(AuthError) as wrong_key:
        Client.connect(address, tenant="alice", key="guess")
    with pytest.raises(AuthError) as unknown:
        Client.connect(address, tenant="mallory", key="guess")
    assert wrong_key.value.rpc_code == unknown.value.rpc_code == 1001
    assert wrong_key.value.message == unknown.value.message


def test_a_missing_capability_is_refused_at_submit_with_code_1004_and_the_missing_caps(
    shared_server,
):
    with connect(shared_server, "bob") as bob:
        assert bob.core.session is not None
        assert bob.core.session.granted == ["CAP_ALLOC"]
        assert "CAP_LINK" in bob.core.session.denied
        with pytest.raises(CapabilityError) as caught:
            bob.q_submit(example("linked_modules"), 10, 1)
        assert caught.value.rpc_code == 1004
        assert caught.value.details["missing"] == ["CAP_LINK"]
    with connect(shared_server, "alice", caps=["CAP_ALLOC"]) as alice:  # allowed, not asked
        with pytest.raises(CapabilityError) as caught:
            alice.q_submit(example("t_gate_injection"), 10, 1)
        assert caught.value.details["missing"] == ["CAP_MAGIC"]


def test_a_tenant_cannot_entangle_its_qubits_with_another_tenants(shared_server):
    program = assemble(
        ".version 0.2\n.caps CAP_ALLOC\n.vqs mine theirs\n.events m\n"
        "a: ALLOC_LQ vq:mine, n=1\n"
        'b: ALLOC_LQ vq:theirs, n=1 meta {"tenant": "alice"}\n'
        "x: APPLY_CNOT vq:mine, vq:theirs\n"
        "m: MEASURE_Z vq:mine, out:m\n"
        "f: FREE_LQ vq:mine, vq:theirs\n"
    ).to_json()
    with connect(shared_server, "bob") as bob, pytest.raises(FirewallError) as caught:
        bob.q_submit(program, 10, 1)
    assert caught.value.rpc_code == 1010
    assert "'b'" in caught.value.message and "alice" in caught.value.message  # names the node


# --------------------------------------------------------------------------- limits


def test_expiry_quotas_admission_and_cancel_on_a_small_machine(serve, tmp_path):
    # 38,720 physical qubits at d=9: 239 logical qubits' patches (162 each), and a
    # floorplan of one T factory (9,680 qubits) and 165 job tiles, which holds the long
    # job (22 patches and their routing: 59 tiles) with a factory for its T gates; one
    # worker, whose jobs wait at a gate until the test opens it; sessions live
    # one second.
    with WorkerGate(tmp_path) as gate:
        server = serve(
            "small",
            workers=1,
            physical_qubits=38_720,
            kernel={"session_ttl_s": 1.0},
            # alice may hold 240 logical qubits: the machine, not her quota (checked
            # first, from the verified program), refuses her 240-qubit job below
            tenants={**TENANTS, "alice": {**TENANTS["alice"], "max_logical_qubits": 240}},
            hooks=gate.hooks(),
        )
        alice = connect(server, "alice")
        stale_session = alice.session_id
        assert alice.core.session is not None
        stale_expires = alice.core.session.expires_at
        carol = connect(server, "carol")
        try:
            long_job = alice.q_submit(wide_program(22, 1), 10, 1, {"noise": False})  # held
            limit = time.monotonic() + 60  # only guards against a hang
            while alice.q_status(long_job.job_id).state != "RUNNING":
                assert time.monotonic() < limit, "the long job never started"
                time.sleep(0.01)

            # admission: 240 logical qubits need 38,880 physical qubits; the machine has
            # 38,720
            with pytest.raises(AdmissionError) as caught:
                alice.q_submit(wide_program(240, 1), 10, 1)
            assert caught.value.rpc_code == 1007 and caught.value.details["total"] == 38_720

            # quota: carol may hold 2 logical qubits; GHZ needs 5
            with pytest.raises(QuotaError) as caught:
                carol.q_submit(example("ghz"), 10, 1)
            assert caught.value.details["limit"] == "max_logical_qubits"

            # quota: carol may queue 2 jobs; the only worker is held, so they stay queued
            with pytest.raises(QuotaError) as caught:
                for attempt in range(5):
                    carol.q_submit(example("bell"), 10, attempt)
            assert caught.value.rpc_code == 1006
            assert caught.value.details["limit"] == "max_queued_jobs"
            assert attempt == 2  # two of carol's jobs wait, the third is refused

            # cancel kills the held job's worker; the replacement runs the next jobs
            assert alice.q_cancel(long_job.job_id).state == "CANCELLED"
            gate.open()
            small = alice.q_submit(example("bell"), 10, 2)
            done = alice.q_wait(small.job_id, 60_000)
            assert done.state == "COMPLETED"
            assert alice.q_status(long_job.job_id).state == "CANCELLED"

            # expiry: the first session is over; an explicit stale id is refused...
            while time.time() <= stale_expires:
                time.sleep(max(0.01, stale_expires - time.time()))
            with pytest.raises(SessionExpired) as caught:
                alice.q_status(small.job_id, session_id=stale_session)
            assert caught.value.rpc_code == 1003
            # ...and the client renews its own session once, transparently
            assert alice.q_status(small.job_id).state == "COMPLETED"
            assert alice.session_id != stale_session
        finally:
            alice.close()
            carol.close()
