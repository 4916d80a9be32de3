"""Channels and the entanglement firewall, through the in-process kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qmk.errors import CapabilityError, FirewallError, NotFoundError, QuotaError
from support.kernel import login, make_config, run_kernel, teleport_graph


async def open_channel(kernel: Any, alice: str, bob: str) -> str:
    proposal = await kernel.q_open_chan(session_id=alice, peer="bob", fidelity=1.0)
    assert proposal.state == "PENDING" and proposal.tenants == ["alice", "bob"]
    accepted = await kernel.q_open_chan(
        session_id=bob, peer="alice", channel_id=proposal.channel_id
    )
    assert accepted.state == "OPEN"
    return proposal.channel_id


def test_a_cross_tenant_cnot_is_rejected_naming_the_node(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        channel = await open_channel(kernel, alice, bob)
        graph = teleport_graph("bob", cnot_instead=True)
        with pytest.raises(FirewallError) as err:
            await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=1)
        assert "'alloc_b'" in err.value.message  # no channel bound: bob's qubits refused
        graph["resources"]["chs"] = ["link"]
        with pytest.raises(FirewallError) as err:
            await kernel.q_submit(
                session_id=alice,
                graph=graph,
                shots=10,
                seed=1,
                policy={"channels": {"link": channel}},
            )
        assert err.value.details["node"] == "entangle"
        assert "node #2 'entangle' (APPLY_CNOT)" in err.value.message

    run_kernel(tmp_path, body)


def test_open_chan_teleports_only_over_a_channel_both_tenants_opened(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        graph = teleport_graph("bob")
        with pytest.raises(FirewallError):
            await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=1)
        pending = await kernel.q_open_chan(session_id=alice, peer="bob")
        with pytest.raises(FirewallError) as err:
            await kernel.q_submit(
                session_id=alice,
                graph=graph,
                shots=10,
                seed=1,
                policy={"channels": {"link": pending.channel_id}},
            )
        assert "PENDING" in err.value.message
        accepted = await kernel.q_open_chan(
            session_id=bob, peer="alice", channel_id=pending.channel_id
        )
        assert accepted.state == "OPEN"
        job = await kernel.q_submit(
            session_id=alice,
            graph=graph,
            shots=200,
            seed=3,
            policy={"channels": {"link": pending.channel_id}, "noise": False},
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=20000)
        assert done.state == "COMPLETED", done.error
        # teleported |+i> measured in Y is always 0 (events x, z, m_b: m_b rightmost)
        assert all(key[2] == "0" for key in done.result["counts"])
        assert sum(done.result["counts"].values()) == 200
        closed = await kernel.q_close_chan(session_id=bob, channel_id=pending.channel_id)
        assert closed.state == "CLOSED"
        with pytest.raises(FirewallError):
            await kernel.q_submit(
                session_id=alice,
                graph=graph,
                shots=10,
                seed=1,
                policy={"channels": {"link": pending.channel_id}},
            )

    run_kernel(tmp_path, body)


def test_channels_need_cap_link_on_both_sides_and_stay_private(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice = await login(kernel, "alice")
        bob_no_link = await login(kernel, "bob", ["CAP_ALLOC"])
        carol = await login(kernel, "carol", ["CAP_ALLOC"])
        proposal = await kernel.q_open_chan(session_id=alice, peer="bob")
        with pytest.raises(CapabilityError) as err:
            await kernel.q_open_chan(
                session_id=bob_no_link, peer="alice", channel_id=proposal.channel_id
            )
        assert err.value.details["missing"] == ["CAP_LINK"]
        with pytest.raises(CapabilityError):
            await kernel.q_open_chan(session_id=carol, peer="alice")
        with pytest.raises(NotFoundError):
            await kernel.q_chan_status(session_id=carol, channel_id=proposal.channel_id)
        with pytest.raises(NotFoundError):
            await kernel.q_close_chan(session_id=carol, channel_id=proposal.channel_id)
        status = await kernel.q_chan_status(session_id=alice, channel_id=proposal.channel_id)
        assert status.state == "PENDING"
        await kernel.q_open_chan(session_id=alice, peer="bob")
        with pytest.raises(QuotaError):
            await kernel.q_open_chan(session_id=alice, peer="bob")  # max_channels = 2

    run_kernel(tmp_path, body)


def test_peer_qubits_count_against_the_peer_quota(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        channel = await open_channel(kernel, alice, bob)
        graph = teleport_graph("bob")
        graph["program"]["nodes"][1]["args"]["n"] = 5
        graph["program"]["nodes"][1]["vqs"] = ["b", "b1", "b2", "b3", "b4"]
        graph["program"]["nodes"][-1]["vqs"] += ["b1", "b2", "b3", "b4"]
        graph["resources"]["vqs"] += ["b1", "b2", "b3", "b4"]
        with pytest.raises(QuotaError) as err:
            await kernel.q_submit(
                session_id=alice,
                graph=graph,
                shots=10,
                seed=1,
                policy={"channels": {"link": channel}},
            )
        assert err.value.details["tenant"] == "bob"

    run_kernel(tmp_path, body)


def _config_with_max_channels(limit: int) -> Any:
    import msgspec

    config = make_config()
    tenants = {
        name: msgspec.structs.replace(tenant, max_channels=limit)
        for name, tenant in config.tenants.items()
    }
    return msgspec.structs.replace(config, tenants=tenants)


def test_a_tenant_with_one_channel_of_quota_can_accept_a_proposal(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        channel = await open_channel(kernel, alice, bob)  # bob accepts with max_channels = 1
        status = await kernel.q_chan_status(session_id=bob, channel_id=channel)
        assert status.state == "OPEN"
        with pytest.raises(QuotaError):  # the accepted channel is bob's one
            await kernel.q_open_chan(session_id=bob, peer="alice")

    run_kernel(tmp_path, body, config=_config_with_max_channels(1))


def test_accepting_a_proposal_over_the_quota_is_refused_and_leaves_it_pending(
    tmp_path: Path,
) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        await kernel.q_open_chan(session_id=bob, peer="alice")  # bob's one channel
        proposal = await kernel.q_open_chan(session_id=alice, peer="bob")
        with pytest.raises(QuotaError) as err:
            await kernel.q_open_chan(session_id=bob, peer="alice", channel_id=proposal.channel_id)
        assert err.value.details == {"limit": "max_channels", "value": 1}
        assert "'bob' already has 1 open or pending channels" in err.value.message
        status = await kernel.q_chan_status(session_id=bob, channel_id=proposal.channel_id)
        assert status.state == "PENDING"

    run_kernel(tmp_path, body, config=_config_with_max_channels(1))


def test_proposals_to_a_tenant_do_not_use_up_its_channel_quota(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        first = await kernel.q_open_chan(session_id=alice, peer="bob")
        await kernel.q_open_chan(session_id=alice, peer="bob")  # alice's quota (2) is full
        own = await kernel.q_open_chan(session_id=bob, peer="alice")
        assert own.state == "PENDING"
        accepted = await kernel.q_open_chan(
            session_id=bob, peer="alice", channel_id=first.channel_id
        )
        assert accepted.state == "OPEN"
        with pytest.raises(QuotaError):  # bob now holds two: its proposal and the accepted one
            await kernel.q_open_chan(session_id=bob, peer="alice")

    run_kernel(tmp_path, body)


def test_a_tenant_lists_its_channels_either_end_and_by_state(tmp_path: Path) -> None:
    from qmk.errors import InvalidArgument

    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        carol = await login(kernel, "carol")
        opened = await open_channel(kernel, alice, bob)
        pending = await kernel.q_open_chan(session_id=bob, peer="alice")
        mine = await kernel.q_list_channels(session_id=alice)
        assert [c.channel_id for c in mine.channels] == [pending.channel_id, opened]
        only_open = await kernel.q_list_channels(session_id=alice, state="OPEN")
        assert [c.channel_id for c in only_open.channels] == [opened]
        assert (await kernel.q_list_channels(session_id=carol)).channels == []
        with pytest.raises(InvalidArgument):
            await kernel.q_list_channels(session_id=alice, state="open")

    run_kernel(tmp_path, body)


def test_a_proposal_nobody_accepts_expires_and_frees_the_quota(tmp_path: Path) -> None:
    import msgspec

    from qmk.kernel.manual_clock import ManualClock

    clock = ManualClock()
    config = msgspec.structs.replace(_config_with_max_channels(1), channel_proposal_ttl_s=60.0)

    async def body(kernel: Any) -> None:
        alice = await login(kernel, "alice")
        proposal = await kernel.q_open_chan(session_id=alice, peer="bob")
        with pytest.raises(QuotaError):
            await kernel.q_open_chan(session_id=alice, peer="bob")
        clock.advance(59)
        await clock.tick()
        assert (await kernel.q_chan_status(session_id=alice, **_id(proposal))).state == ("PENDING")
        clock.advance(2)
        await clock.tick()
        assert (await kernel.q_chan_status(session_id=alice, **_id(proposal))).state == ("CLOSED")
        again = await kernel.q_open_chan(session_id=alice, peer="bob")
        assert again.state == "PENDING"

    run_kernel(tmp_path, body, config=config, clock=clock)


def _id(channel: dict[str, Any]) -> dict[str, str]:
    return {"channel_id": channel.channel_id}


def test_closing_a_channel_stops_the_running_job_bound_to_it(tmp_path: Path) -> None:
    from support.kernel import WorkerGate, wait_state

    async def body(kernel: Any) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        channel = await open_channel(kernel, alice, bob)
        job = await kernel.q_submit(
            session_id=alice,
            graph=teleport_graph("bob"),
            shots=10,
            seed=1,
            policy={"channels": {"link": channel}},
        )
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held at the gate
        await kernel.q_close_chan(session_id=bob, channel_id=channel)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=20000)
        assert done.state == "FAILED" and done.error.code == "QS1010"
        assert "closed while the job ran" in done.error.message

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate)
