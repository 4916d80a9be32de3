"""The fair run queue, alone and inside a running kernel."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk.kernel.scheduler import FairQueue

# the kernel helpers (config, login, graphs) live in test_service.py; load them from there
_spec = importlib.util.spec_from_file_location(
    "kernel_service_tests", Path(__file__).with_name("test_service.py")
)
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)


@dataclass
class FakeJob:
    """A plain record with the fields the queue reads (not a stand-in for kernel code)."""

    job_id: str
    tenant: str
    seq: int
    priority: int = 5
    deadline: float | None = None


def flood(queue: FairQueue, tenant: str, count: int, start: int = 0, **kw: Any) -> None:
    for i in range(count):
        queue.push(FakeJob(f"{tenant}{i}", tenant, start + i, **kw))


def test_a_flooding_tenant_gets_one_turn_per_round() -> None:
    queue = FairQueue()
    flood(queue, "a", 100)
    flood(queue, "b", 3, start=100)
    flood(queue, "c", 3, start=200)
    order = [job.tenant for job in queue.select(lambda job: True, 9)]
    assert order == ["a", "b", "c"] * 3
    assert queue.count("a") == 97 and queue.count("b") == 0


def test_priority_then_deadline_then_age_orders_a_tenants_jobs() -> None:
    queue = FairQueue()
    queue.push(FakeJob("old", "a", 1))
    queue.push(FakeJob("urgent", "a", 2, priority=9))
    queue.push(FakeJob("due_late", "a", 3, priority=7, deadline=2000.0))
    queue.push(FakeJob("due_soon", "a", 4, priority=7, deadline=1000.0))
    picked = [job.job_id for job in queue.select(lambda job: True, 4)]
    assert picked == ["urgent", "due_soon", "due_late", "old"]


def test_an_idle_tenant_does_not_bank_credit() -> None:
    queue = FairQueue()
    flood(queue, "a", 50)
    queue.select(lambda job: True, 20)  # a alone: usage 20
    flood(queue, "b", 50, start=100)  # b arrives late: starts level with a, not at 0
    order = [job.tenant for job in queue.select(lambda job: True, 10)]
    assert order.count("a") == 5 and order.count("b") == 5


def test_a_tenant_that_cannot_run_does_not_block_others() -> None:
    queue = FairQueue()
    flood(queue, "a", 5)
    flood(queue, "b", 5, start=10)
    picked = queue.select(lambda job: job.tenant == "b", 3)
    assert [job.tenant for job in picked] == ["b", "b", "b"]
    assert queue.count("a") == 5
    assert queue.remove("a0") is not None and queue.remove("a0") is None
    assert queue.best().job_id == "a1"


def test_a_flooding_tenant_cannot_starve_another_in_the_kernel(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice = await _helpers.login(kernel, "alice")
        bob = await _helpers.login(kernel, "bob")
        carol = await _helpers.login(kernel, "carol", ["CAP_ALLOC"])
        # hold the only worker so that the whole flood is queued before anything runs
        blocker = await kernel.q_submit(session_id=carol, graph=_helpers.slow_graph(), shots=1)
        await _helpers.wait_state(kernel, carol, blocker["job_id"], "RUNNING")
        graph = _helpers.BELL
        flood_ids = [
            (await kernel.q_submit(session_id=alice, graph=graph, shots=100, seed=i))["job_id"]
            for i in range(40)
        ]
        bob_ids = [
            (await kernel.q_submit(session_id=bob, graph=graph, shots=100, seed=i))["job_id"]
            for i in range(4)
        ]
        await kernel.q_cancel(session_id=carol, job_id=blocker["job_id"])
        bob_started = [
            (await kernel.q_wait(session_id=bob, job_id=job_id, timeout_ms=30000))["started_at"]
            for job_id in bob_ids
        ]
        started = []
        for job_id in flood_ids:
            job = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=30000)
            assert job["state"] == "COMPLETED"
            started.append(job["started_at"])
        # turns alternate: bob's 4 jobs start among the first 8 or 9, not after alice's 40
        assert sum(1 for t in started if t < max(bob_started)) <= 5

    _helpers.run_kernel(tmp_path, body, workers=1)


def test_a_high_priority_job_preempts_a_low_priority_one_at_an_epoch(tmp_path: Path) -> None:
    async def body(kernel: Any) -> None:
        alice = await _helpers.login(kernel, "alice")
        slow = await kernel.q_submit(
            session_id=alice,
            graph=_helpers.slow_graph(20, 6),
            shots=1,
            seed=1,
            policy={"priority": 1, "noise": False},
        )
        await _helpers.wait_state(kernel, alice, slow["job_id"], "RUNNING")
        urgent = await kernel.q_submit(
            session_id=alice, graph=_helpers.BELL, shots=100, seed=2, policy={"priority": 9}
        )
        done = await kernel.q_wait(session_id=alice, job_id=urgent["job_id"], timeout_ms=5000)
        assert done["state"] == "COMPLETED"
        victim = await kernel.q_get_telemetry(session_id=alice, job_id=slow["job_id"])
        assert victim["preemptions"] == 1
        assert victim["state"] in ("QUEUED", "VALIDATING", "RUNNING")
        await kernel.q_cancel(session_id=alice, job_id=slow["job_id"])

    _helpers.run_kernel(tmp_path, body, workers=1)


def test_select_respects_the_limit() -> None:
    queue = FairQueue()
    flood(queue, "a", 3)
    assert len(queue.select(lambda job: True, 2)) == 2
    assert len(queue) == 1
