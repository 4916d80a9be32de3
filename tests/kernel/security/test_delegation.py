"""Capability delegation in the kernel: a tenant lends its own capabilities to another for
a while; the loan is granted at negotiation, checked at every call and again when a job
starts, ended at once by revocation or by its expiry on the kernel's clock, audited, and
kept across a restart. The recipient's quotas stay its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.abi import replies
from qmk.errors import CapabilityError, InvalidArgument, NotFoundError, QuotaError
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import BELL, KEYS, WorkerGate, ghz_graph, login, run_kernel, wait_state
from support.paths import EXAMPLES

MAGIC: dict[str, Any] = json.loads((EXAMPLES / "t_gate_injection.qvm.json").read_text())


def config(alice_caps: tuple[str, ...] | list[str] = ("CAP_ALLOC", "CAP_MAGIC")) -> KernelConfig:
    """alice holds CAP_MAGIC; bob and carol do not (bob runs one job at a time, on at most
    two logical qubits)."""
    return config_from_dict(
        {
            "machine": {"physical_qubits": 2_000_000},
            "kernel": {"worker_memory_mb": 1024, "max_delegation_s": 3600},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": list(alice_caps)},
                "bob": {
                    "key": KEYS["bob"],
                    "caps": ["CAP_ALLOC"],
                    "max_concurrent_jobs": 1,
                    "max_logical_qubits": 2,
                },
                "carol": {"key": KEYS["carol"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


async def session_of(kernel: Kernel, tenant: str) -> replies.Session:
    return await kernel.q_negotiate_caps(
        tenant=tenant, key=KEYS[tenant], requested=["CAP_ALLOC", "CAP_MAGIC"]
    )


def audit_lines(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_a_lent_capability_is_granted_used_and_revoked_for_open_sessions_too(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> replies.Delegation:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        before = await session_of(kernel, "bob")
        assert before.granted == ["CAP_ALLOC"] and before.denied == ["CAP_MAGIC"]
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=600
        )
        assert lent.state == "LIVE" and lent.expires_at == clock.now() + 600
        assert lent.from_tenant == "alice" and lent.to_tenant == "bob"
        bob = await session_of(kernel, "bob")
        assert bob.granted == ["CAP_ALLOC", "CAP_MAGIC"] and bob.delegated == ["CAP_MAGIC"]
        sid = bob.session_id
        job = await kernel.q_submit(session_id=sid, graph=MAGIC, shots=20, seed=5)
        assert job.tenant == "bob"  # the job, and its quotas, are bob's
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        ended = await kernel.q_revoke_delegation(session_id=alice, delegation_id=lent.delegation_id)
        assert ended.state == "REVOKED" and ended.revoked_by == "alice"
        with pytest.raises(CapabilityError) as refused:  # the same, already open, session
            await kernel.q_submit(session_id=sid, graph=MAGIC, shots=20, seed=5)
        assert refused.value.code == "QS1004" and refused.value.details["missing"] == ["CAP_MAGIC"]
        assert "CAP_MAGIC: the delegation that lent it to this session has ended" in str(
            refused.value
        )
        plain = await kernel.q_submit(session_id=sid, graph=BELL, shots=20, seed=5)
        assert plain.state == "QUEUED"  # the session itself goes on with its own caps
        again = await session_of(kernel, "bob")
        assert again.denied == ["CAP_MAGIC"] and again.delegated == []
        return lent

    lent = run_kernel(tmp_path, body, workers=1, config=config(), clock=clock)
    actions = [(r["action"], r.get("where")) for r in audit_lines(tmp_path, "deleg")]
    assert actions == [
        ("delegate", None),
        ("use", "negotiate"),
        ("use", "submit"),
        ("revoke", None),
    ]
    assert all(r["delegation_id"] == lent.delegation_id for r in audit_lines(tmp_path, "deleg"))


def test_a_delegation_expires_on_the_kernels_clock(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
        )
        sid = (await session_of(kernel, "bob")).session_id
        clock.advance(59.5)
        job = await kernel.q_submit(session_id=sid, graph=MAGIC, shots=5, seed=1)
        assert job.state == "QUEUED"
        clock.advance(0.5)  # exactly expires_at: over
        with pytest.raises(CapabilityError):
            await kernel.q_submit(session_id=sid, graph=MAGIC, shots=5, seed=1)
        assert (await session_of(kernel, "bob")).denied == ["CAP_MAGIC"]
        listed = await kernel.q_list_delegations(session_id=alice)
        assert [d.state for d in listed.delegations] == ["EXPIRED"]
        # revoking an ended delegation changes nothing and says how it ended
        ended = await kernel.q_revoke_delegation(session_id=alice, delegation_id=lent.delegation_id)
        assert ended.state == "EXPIRED" and ended.revoked_at is None

    run_kernel(tmp_path, body, workers=1, config=config(), clock=clock)


def test_a_queued_job_whose_delegation_ended_is_refused_at_execution(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> replies.Job:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=600
        )
        bob = (await session_of(kernel, "bob")).session_id
        first = await kernel.q_submit(session_id=bob, graph=BELL, shots=5, seed=1)
        await wait_state(kernel, bob, first.job_id, "RUNNING")  # held at the gate
        queued = await kernel.q_submit(session_id=bob, graph=MAGIC, shots=5, seed=1)
        assert queued.state == "QUEUED"  # bob runs one job at a time
        await kernel.q_revoke_delegation(session_id=alice, delegation_id=lent.delegation_id)
        gate.open()
        return await kernel.q_wait(session_id=bob, job_id=queued.job_id, timeout_ms=60_000)

    with WorkerGate(tmp_path) as gate:
        done = run_kernel(tmp_path, body, workers=1, config=config(), gate=gate)
    assert done.state == "FAILED" and done.error.code == "QS1004"
    assert "refused at execution" in done.error.message
    # a refusal at the start has its VALIDATING line, the decision on it, then FAILED
    lines = [r for r in audit_lines(tmp_path, "job") if r["job_id"] == done.job_id]
    assert [r["state"] for r in lines] == ["QUEUED", "VALIDATING", "FAILED"]
    assert lines[1]["decision"] == "deny" and "CAP_MAGIC" in lines[1]["required"]


def test_only_the_delegators_own_held_capabilities_can_be_lent(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        narrow = await login(kernel, "alice", ["CAP_ALLOC"])  # alice may, this session may not
        with pytest.raises(CapabilityError) as caught:
            await kernel.q_delegate_caps(
                session_id=narrow, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
            )
        assert caught.value.details["missing"] == ["CAP_MAGIC"]
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
        )
        bob = (await session_of(kernel, "bob")).session_id
        with pytest.raises(CapabilityError) as onward:  # lent, not bob's own: not lent on
            await kernel.q_delegate_caps(
                session_id=bob, to_tenant="carol", caps=["CAP_MAGIC"], expires_s=60
            )
        assert "cannot be lent on" in onward.value.message
        carol = await session_of(kernel, "carol")
        assert carol.denied == ["CAP_MAGIC"]

    run_kernel(tmp_path, body, workers=1, config=config())
    denials = [r for r in audit_lines(tmp_path, "cap") if r.get("where") == "delegate"]
    assert [r["decision"] for r in denials] == ["deny", "allow", "deny"]


@pytest.mark.parametrize(
    ("change", "error", "word"),
    [
        ({"expires_s": 0}, InvalidArgument, "expires_s"),
        ({"expires_s": 3601}, InvalidArgument, "max_delegation_s"),
        ({"expires_s": True}, InvalidArgument, "expires_s"),
        ({"caps": []}, InvalidArgument, "caps"),
        ({"to_tenant": "alice"}, InvalidArgument, "itself"),
        ({"to_tenant": "mallory"}, NotFoundError, "mallory"),
    ],
)
def test_bad_delegations_are_coded_refusals(
    tmp_path: Path, change: dict[str, Any], error: type[Exception], word: str
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        request = {"to_tenant": "bob", "caps": ["CAP_MAGIC"], "expires_s": 60, **change}
        with pytest.raises(error) as caught:  # type: ignore[call-overload]
            await kernel.q_delegate_caps(session_id=alice, **request)
        assert word in str(caught.value)
        assert (await kernel.q_list_delegations(session_id=alice)).delegations == []

    run_kernel(tmp_path, body, workers=1, config=config())


def test_a_delegation_is_seen_by_its_two_tenants_only_and_either_may_end_it(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
        )
        carol = await login(kernel, "carol", ["CAP_ALLOC"])
        with pytest.raises(NotFoundError):
            await kernel.q_revoke_delegation(session_id=carol, delegation_id=lent.delegation_id)
        assert (await kernel.q_list_delegations(session_id=carol)).delegations == []
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        received = await kernel.q_list_delegations(session_id=bob, state="LIVE")
        assert [d.delegation_id for d in received.delegations] == [lent.delegation_id]
        ended = await kernel.q_revoke_delegation(session_id=bob, delegation_id=lent.delegation_id)
        assert ended.revoked_by == "bob"
        assert (await kernel.q_list_delegations(session_id=alice, state="LIVE")).delegations == []
        with pytest.raises(InvalidArgument):
            await kernel.q_list_delegations(session_id=alice, state="ALIVE")

    run_kernel(tmp_path, body, workers=1, config=config())


def test_the_recipients_quotas_stay_its_own(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
        )
        bob = await session_of(kernel, "bob")
        assert bob.quota["max_logical_qubits"] == 2
        with pytest.raises(QuotaError):
            await kernel.q_submit(session_id=bob.session_id, graph=ghz_graph(3), shots=5, seed=1)

    run_kernel(tmp_path, body, workers=1, config=config())


def test_delegations_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()

    async def before(kernel: Kernel) -> tuple[str, str]:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        live = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=600
        )
        gone = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="carol", caps=["CAP_MAGIC"], expires_s=600
        )
        await kernel.q_revoke_delegation(session_id=alice, delegation_id=gone.delegation_id)
        return live.delegation_id, gone.delegation_id

    live, gone = run_kernel(tmp_path, before, workers=1, config=config(), clock=clock)
    clock = ManualClock(start=clock.now())  # the same time, on the next kernel's loop

    async def after(kernel: Kernel) -> None:
        assert (await session_of(kernel, "bob")).delegated == ["CAP_MAGIC"]
        assert (await session_of(kernel, "carol")).delegated == []
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        states = {
            d.delegation_id: d.state
            for d in (await kernel.q_list_delegations(session_id=alice)).delegations
        }
        assert states == {live: "LIVE", gone: "REVOKED"}
        clock.advance(600)
        assert (await session_of(kernel, "bob")).delegated == []

    run_kernel(tmp_path, after, workers=1, config=config(), clock=clock)


def test_a_delegation_lends_nothing_its_delegators_config_no_longer_allows(
    tmp_path: Path,
) -> None:
    async def before(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=600
        )

    run_kernel(tmp_path, before, workers=1, config=config())

    async def after(kernel: Kernel) -> None:
        assert (await session_of(kernel, "bob")).denied == ["CAP_MAGIC"]

    run_kernel(tmp_path, after, workers=1, config=config(alice_caps=["CAP_ALLOC"]))


def test_a_tenant_has_at_most_its_share_of_live_delegations(tmp_path: Path) -> None:
    from qmk import defaults

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        made = [
            await kernel.q_delegate_caps(
                session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
            )
            for _ in range(defaults.MAX_LIVE_DELEGATIONS)
        ]
        with pytest.raises(QuotaError) as caught:
            await kernel.q_delegate_caps(
                session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
            )
        assert caught.value.details["limit"] == "live_delegations"
        await kernel.q_revoke_delegation(session_id=alice, delegation_id=made[0].delegation_id)
        again = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="carol", caps=["CAP_MAGIC"], expires_s=60
        )
        assert again.state == "LIVE"

    run_kernel(tmp_path, body, workers=1, config=config())
