"""Delegations' limits (src/qmk/kernel/security/delegations.py): the calls that write audit lines
are within the tenant's audit rate at the door before anything is written, and an ended
delegation is deleted ``delegation_keep_s`` after it ended, on the kernel's clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import NotFoundError, QuotaError
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import KEYS, login, run_kernel


def config(**kernel: Any) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "max_delegation_s": 3600, **kernel},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC", "CAP_MAGIC"]},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC", "CAP_MAGIC"]},
                "carol": {"key": KEYS["carol"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def audit_lines(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_create_and_revoke_pairs_stop_at_the_tenants_audit_rate_before_any_audit_line(
    tmp_path: Path,
) -> None:
    from qmk.abi.door import Door
    from qmk.abi.limits import ServerConfig
    from qmk.kernel.observe import KernelObserver

    clock = ManualClock()  # no refill unless the test moves time

    async def body(kernel: Kernel) -> Any:
        limits = ServerConfig(
            tcp=("127.0.0.1", 0), audit_burst_per_tenant=41, audit_rate_per_tenant=2.0
        )
        door = Door(kernel, limits, probe=KernelObserver(kernel), clock=clock)
        visitor = door.visitor("test", "ip 10.0.0.9")
        login = {"key": KEYS["alice"], "requested": ["CAP_ALLOC", "CAP_MAGIC"]}
        alice = await door.call(visitor, "q_negotiate_caps", {"tenant": "alice", **login})
        lend = {"to_tenant": "carol", "caps": ["CAP_MAGIC"], "expires_s": 60}
        made = 0
        with pytest.raises(QuotaError) as refused:
            while made < 1000:  # the red team's create/revoke pairs
                lent = await door.call(
                    visitor, "q_delegate_caps", {"session_id": alice.session_id, **lend}
                )
                made += 1
                await door.call(
                    visitor,
                    "q_revoke_delegation",
                    {"session_id": alice.session_id, "delegation_id": lent.delegation_id},
                )
                made += 1
        kernel.audit.flush()
        seq = kernel.audit.seq
        with pytest.raises(QuotaError):  # a refused call writes nothing
            await door.call(visitor, "q_delegate_caps", {"session_id": alice.session_id, **lend})
        kernel.audit.flush()
        return made, refused.value, kernel.audit.seq == seq

    made, refused, unchanged = run_kernel(tmp_path, body, config=config(), clock=clock)
    assert made == 40  # the burst of 41, less the login
    assert refused.code == "QS1006" and refused.details["reason"] == "audit-rate"
    assert refused.details["retry_after_s"] == pytest.approx(0.5)
    assert unchanged


def test_an_ended_delegation_is_deleted_its_keep_time_after_it_ended(tmp_path: Path) -> None:
    clock = ManualClock()
    keep = 3600.0

    async def body(kernel: Kernel) -> Any:
        async def alice() -> str:  # a fresh session: time moves past a session's life
            return await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])

        sid = await alice()
        revoked = await kernel.q_delegate_caps(
            session_id=sid, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=3600
        )
        await kernel.q_revoke_delegation(session_id=sid, delegation_id=revoked.delegation_id)
        expiring = await kernel.q_delegate_caps(
            session_id=sid, to_tenant="carol", caps=["CAP_MAGIC"], expires_s=600
        )
        clock.advance(keep - 1)  # revoked keep - 1 s ago: kept, still listed
        await clock.tick()
        kept = await kernel.q_list_delegations(session_id=await alice())
        clock.advance(60)  # the revoked one ended keep + 59 s ago (sweeps: once a minute)
        await clock.tick()
        sid = await alice()
        after_one = await kernel.q_list_delegations(session_id=sid)
        with pytest.raises(NotFoundError):
            await kernel.q_revoke_delegation(session_id=sid, delegation_id=revoked.delegation_id)
        live = await kernel.q_delegate_caps(
            session_id=sid, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=3600
        )
        clock.advance(600)  # the expired one ended keep + 59 s ago too
        await clock.tick()
        after_two = await kernel.q_list_delegations(session_id=await alice())
        return revoked, expiring, live, kept, after_one, after_two

    revoked, expiring, live, kept, after_one, after_two = run_kernel(
        tmp_path, body, config=config(delegation_keep_s=keep), clock=clock
    )

    def ids(listing: dict[str, Any]) -> set[str]:
        return {d.delegation_id for d in listing.delegations}

    assert ids(kept) == {revoked.delegation_id, expiring.delegation_id}
    assert ids(after_one) == {expiring.delegation_id}
    assert ids(after_two) == {live.delegation_id}  # the live one stays
    sweeps = [r for r in audit_lines(tmp_path, "deleg") if r.get("action") == "expire"]
    assert [r["delegations"] for r in sweeps] == [1, 1]


def test_ended_delegations_past_their_keep_time_are_deleted_when_the_kernel_opens(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    async def lend(kernel: Kernel) -> str:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        lent = await kernel.q_delegate_caps(
            session_id=alice, to_tenant="bob", caps=["CAP_MAGIC"], expires_s=60
        )
        return str(lent.delegation_id)

    async def look(kernel: Kernel) -> Any:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        return await kernel.q_list_delegations(session_id=alice)

    run_kernel(tmp_path, lend, config=config(delegation_keep_s=100), clock=clock)
    later = ManualClock(start=clock.now() + 161)  # expired at 60, kept 100 s: gone
    listed = run_kernel(tmp_path, look, config=config(delegation_keep_s=100), clock=later)
    assert listed.delegations == []


def test_delegation_churn_past_a_tenants_share_of_a_window_is_one_counted_summary_line(
    tmp_path: Path,
) -> None:
    """A tenant's delegation lines (its delegations, revocations, their capability
    decisions and uses) are written in full up to its share of each window, then counted
    into one summary line when the window ends: churn grows the log by a bounded number
    of lines a window, every event is counted once, another tenant's share is its own,
    and the chain verifies."""
    from qmk.kernel.security.delegations import AUDIT_WINDOW_S, LINES_PER_WINDOW
    from qmk.kernel.storage.audit_verify import verify

    clock = ManualClock()
    pairs = 300  # each a delegation (its decision line and its own) and a revocation

    async def churn(kernel: Kernel, sid: str, to_tenant: str, count: int) -> None:
        for _ in range(count):
            lent = await kernel.q_delegate_caps(
                session_id=sid, to_tenant=to_tenant, caps=["CAP_MAGIC"], expires_s=600
            )
            await kernel.q_revoke_delegation(session_id=sid, delegation_id=lent.delegation_id)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        bob = await login(kernel, "bob", ["CAP_ALLOC", "CAP_MAGIC"])
        await churn(kernel, alice, "carol", pairs)
        await churn(kernel, bob, "carol", 5)  # bob's share is his own: in full
        clock.advance(AUDIT_WINDOW_S)  # the window ends: its summary at the next sweep
        await clock.tick()
        await churn(kernel, alice, "bob", pairs)  # a second window, summed at the close

    run_kernel(tmp_path, body, config=config(), clock=clock)
    lines = audit_lines(tmp_path, "deleg") + audit_lines(tmp_path, "cap")
    alices = [r for r in lines if r.get("tenant") == "alice" and r.get("where") != "negotiate"]
    summaries = [r for r in alices if r.get("action") == "summary"]
    full = [r for r in alices if r.get("action") != "summary"]
    assert len(summaries) == 2 and len(full) == 2 * LINES_PER_WINDOW
    events = 3 * pairs  # per window: a decision, a delegation and a revocation a pair
    for summary in summaries:
        assert summary["lines"] + LINES_PER_WINDOW == events
        assert sum(summary["kinds"].values()) == summary["lines"]
        assert summary["window_s"] == AUDIT_WINDOW_S
        assert summary["first_id"].startswith("dlg_") and summary["last_id"].startswith("dlg_")
    assert summaries[0]["to_tenants"] == ["carol"] and summaries[1]["to_tenants"] == ["bob"]
    assert summaries[0]["caps"] == ["CAP_MAGIC"]
    bobs = [r for r in lines if r.get("tenant") == "bob" and r.get("where") != "negotiate"]
    assert len(bobs) == 15 and not [r for r in bobs if r.get("action") == "summary"]
    assert verify(tmp_path / "data").ok
