"""Program work off the event loop, and each tenant's CPU budget for it (issue 32, item 5).

A big submit's planning, and a replay's or a restore's reading and verifying of a stored
graph, run in a thread (:class:`qmk.kernel.admit.budget.CpuBudget`): the proof is a gate in
that work, which holds it while another tenant's ``q_status`` is answered. The gate
passes work it finds on the event loop's own thread (holding it there would hold the
test too), and the test then fails on that. Their CPU is charged to the tenant: past its
``cpu_burst_s`` a submit, replay or restore is ``QS1006`` with ``retry_after_s``, on a
clock the test moves (nothing waits).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import qmk.execution.plan as plan_module
import qmk.kernel.admit.admission as admission_module
from qmk.abi import replies
from qmk.errors import QuotaError
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.records.programs import verified_nodes
from qmk.kernel.service import Kernel
from qmk.qvm.graph import compact_text
from support.kernel import KEYS, alice_and_bob, chain_graph, login, run_kernel
from support.offloop import Gate, held_while_other_answered

#: Nodes of a graph that is big enough to be planned and verified off the loop.
BIG = admission_module.OFFLOAD_NODES + 500


def test_a_big_submit_is_planned_in_the_planner_process_not_the_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def in_the_kernel(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_plan ran in the kernel's process")

    async def body(kernel: Kernel) -> None:
        # the kernel's process may not plan; the planner process (forked from the
        # forkserver, which never saw this patch) does
        monkeypatch.setattr(plan_module, "build_plan", in_the_kernel)
        alice, bob = await login(kernel, "alice", ["CAP_ALLOC"]), await login(kernel, "bob")
        bobs = await kernel.q_submit(session_id=bob, graph=chain_graph(5), shots=1, seed=1)
        submit = asyncio.ensure_future(
            kernel.q_submit(session_id=alice, graph=chain_graph(BIG), shots=1, seed=1)
        )
        status = await kernel.q_status(session_id=bob, job_id=bobs.job_id)
        accepted = await submit
        assert status.job_id == bobs.job_id
        assert accepted.state == "QUEUED", accepted

    run_kernel(tmp_path, body, workers=1, config=alice_and_bob(verify_nodes_per_s=1e9))


@pytest.mark.parametrize("syscall", ["q_replay", "q_restore"])
def test_a_big_replay_or_restore_is_verified_off_the_loop_while_another_tenant_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syscall: str
) -> None:
    async def body(kernel: Kernel) -> None:
        gate = Gate(threading.get_ident())
        alice, bob = await login(kernel, "alice", ["CAP_ALLOC"]), await login(kernel, "bob")
        bobs = await kernel.q_submit(session_id=bob, graph=chain_graph(5), shots=1, seed=1)
        job = await kernel.q_submit(session_id=alice, graph=chain_graph(BIG), shots=1, seed=1)
        monkeypatch.setattr(admission_module, "verified", gate.wrap(admission_module.verified))
        call = getattr(kernel, syscall)(session_id=alice, job_id=job.job_id)
        status, _ = await held_while_other_answered(
            gate, call, lambda: kernel.q_status(session_id=bob, job_id=bobs.job_id)
        )
        assert status.job_id == bobs.job_id
        assert gate.on_loop == 0

    run_kernel(tmp_path, body, workers=1, config=alice_and_bob(verify_nodes_per_s=1e9))


def test_past_its_cpu_budget_a_tenants_submit_replay_and_restore_say_when_to_retry(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice", ["CAP_ALLOC"]), await login(kernel, "bob")
        # the bucket holds a nanosecond: the first submit runs and spends more than that
        job = await kernel.q_submit(session_id=alice, graph=chain_graph(50), shots=1, seed=1)
        refusals = []
        for call in (
            kernel.q_submit(session_id=alice, graph=chain_graph(50, flips=2), shots=1, seed=1),
            kernel.q_replay(session_id=alice, job_id=job.job_id),
            kernel.q_restore(session_id=alice, job_id=job.job_id),
        ):
            with pytest.raises(QuotaError) as caught:
                await call
            refusals.append(caught.value)
        for refusal in refusals:
            assert refusal.code == "QS1006"
            assert refusal.details["limit"] == "cpu_s_per_s"
            assert refusal.details["retry_after_s"] > 0
            assert "retry in" in refusal.message
        # bob's budget is his own
        assert (
            await kernel.q_submit(session_id=bob, graph=chain_graph(50), shots=1, seed=1)
        ).job_id
        clock.advance(max(r.details["retry_after_s"] for r in refusals))
        again = await kernel.q_submit(
            session_id=alice, graph=chain_graph(50, flips=2), shots=1, seed=1
        )
        assert again.job_id

    run_kernel(
        tmp_path,
        body,
        workers=1,
        config=alice_and_bob(cpu_burst_s=1e-9, cpu_s_per_s=1.0),
        clock=clock,
    )


def test_the_cpu_budget_is_a_tenant_quota_shown_to_the_tenant(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> replies.Resources:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        return await kernel.q_resource_query(session_id=alice)

    reply = run_kernel(tmp_path, body, workers=1, config=alice_and_bob(cpu_s_per_s=0.25))
    assert reply.quota["cpu_s_per_s"] == 0.25
    assert reply.quota["cpu_burst_s"] > 0


def test_a_replay_takes_its_graphs_nodes_from_the_verification_rate_before_reading(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=chain_graph(600), shots=1, seed=1)
        with pytest.raises(QuotaError) as caught:  # 600 of the bucket's 1000 nodes taken
            await kernel.q_replay(session_id=alice, job_id=job.job_id)
        assert caught.value.details == {
            "limit": "verify_nodes_per_s",
            "value": 500.0,
            "needed": 600,
            "retry_after_s": 0.4,
        }
        clock.advance(0.5)  # past the 0.4 s it named
        assert (await kernel.q_replay(session_id=alice, job_id=job.job_id)).job_id

    small = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "max_graph_nodes": 1000},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "verify_nodes_per_s": 500}
            },
        }
    )
    run_kernel(tmp_path, body, workers=1, config=small, clock=clock)


def test_a_replay_of_a_kept_program_takes_its_nodes_without_reading_its_text_again(
    tmp_path: Path,
) -> None:
    # the text of a 99,990-node graph was counted on the event loop at each replay, even
    # one refused at once by the verification rate: milliseconds of the loop a request
    class Watched(str):
        """A stored graph's text that counts the times it is read for its nodes."""

        counted = 0

        def count(self, *args: Any) -> int:
            Watched.counted += 1
            return super().count(*args)

    async def body(kernel: Kernel) -> tuple[int, int, int]:
        text = Watched(compact_text(chain_graph(600)))
        first = await kernel.admission.read("alice", text)  # counted, kept
        counted = Watched.counted
        await kernel.admission.read("alice", text)
        return counted, Watched.counted, len(first.program.graph.nodes)

    first, after, nodes = run_kernel(tmp_path, body, workers=1, config=alice_and_bob())
    assert first <= 1 and after == first  # (none at all if an earlier test kept it)
    assert nodes == verified_nodes(compact_text(chain_graph(600)))
