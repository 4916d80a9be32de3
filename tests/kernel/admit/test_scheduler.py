"""The fair run queue, alone and inside a running kernel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qmk.kernel.admit.scheduler import FairQueue
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.fenced import GRAPH, SEED, SHOTS, uninterrupted
from support.kernel import BELL, WorkerGate, login, run_kernel, wait_run_queue, wait_state


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
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        bob = await login(kernel, "bob")
        carol = await login(kernel, "carol", ["CAP_ALLOC"])
        # hold the only worker so that the whole flood is queued before anything runs
        blocker = await kernel.q_submit(session_id=carol, graph=BELL, shots=1)
        await wait_state(kernel, carol, blocker.job_id, "RUNNING")
        flood_ids = [
            (await kernel.q_submit(session_id=alice, graph=BELL, shots=100, seed=i)).job_id
            for i in range(40)
        ]
        bob_ids = [
            (await kernel.q_submit(session_id=bob, graph=BELL, shots=100, seed=i)).job_id
            for i in range(4)
        ]
        await wait_run_queue(kernel, *flood_ids, *bob_ids)  # all off the shared machine
        await kernel.q_cancel(session_id=carol, job_id=blocker.job_id)
        gate.open()
        bob_started = [
            (await kernel.q_wait(session_id=bob, job_id=job_id, timeout_ms=60_000)).started_at
            for job_id in bob_ids
        ]
        started = []
        for job_id in flood_ids:
            job = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
            assert job.state == "COMPLETED"
            started.append(job.started_at)
        # turns alternate: bob's 4 jobs start among the first 8 or 9, not after alice's 40
        assert sum(1 for t in started if t < max(bob_started)) <= 5

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate)


def test_a_high_priority_job_preempts_a_low_priority_one_at_an_epoch(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        slow = await kernel.q_submit(
            session_id=alice,
            graph=GRAPH,
            shots=SHOTS,
            seed=SEED,
            policy={"priority": 1, "noise": False},
        )  # held at the gate on the only worker
        await wait_state(kernel, alice, slow.job_id, "RUNNING")
        urgent = await kernel.q_submit(  # gap 4 < rollback_gap: a yield at its next fence
            session_id=alice, graph=BELL, shots=100, seed=2, policy={"priority": 5}
        )
        await wait_run_queue(kernel, urgent.job_id)  # off the shared machine
        before = await kernel.q_get_telemetry(session_id=alice, job_id=slow.job_id)
        assert before.state == "RUNNING" and before.preemptions == 0  # no epoch yet
        await clock.tick()  # an epoch: the victim is asked to yield its worker
        gate.release(1)  # the victim starts, and yields at its first fence
        gate.release(1)  # for the urgent job, on the worker the victim gave back
        done = await kernel.q_wait(session_id=alice, job_id=urgent.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        victim = await kernel.q_get_telemetry(session_id=alice, job_id=slow.job_id)
        assert victim.preemptions == 1
        assert victim.state in ("QUEUED", "VALIDATING", "RUNNING")
        gate.open()
        final = await kernel.q_wait(session_id=alice, job_id=slow.job_id, timeout_ms=60_000)
        assert final.result["counts"] == uninterrupted()
        assert final.result["telemetry"]["preempted_at_epochs"] == [1]

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate, clock=clock)


def test_select_respects_the_limit() -> None:
    queue = FairQueue()
    flood(queue, "a", 3)
    assert len(queue.select(lambda job: True, 2)) == 2
    assert len(queue) == 1


class OneHeap:
    """The queue's order as one heap per tenant gives it: each tenant's best job the least
    (priority high first, deadline early first, seq, id) of its jobs still queued, the
    tenants served lowest usage first, a returning tenant level with those waiting (the
    queue as it was before its runs in key order became a line; the reference here)."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.usage: dict[str, float] = {}
        self.tenants: list[str] = []

    @staticmethod
    def key(job: FakeJob) -> tuple[Any, ...]:
        deadline = float("inf") if job.deadline is None else job.deadline
        return (-job.priority, deadline, job.seq, job.job_id)

    def head(self, tenant: str) -> FakeJob | None:
        mine = [job for job in self.jobs.values() if job.tenant == tenant]
        return min(mine, key=self.key, default=None)

    def push(self, job: FakeJob) -> None:
        if job.job_id in self.jobs:
            return
        if self.head(job.tenant) is None:
            waiting = [self.usage.get(t, 0.0) for t in self.tenants if self.head(t) is not None]
            floor = min(waiting) if waiting else max(self.usage.values(), default=0.0)
            self.usage[job.tenant] = max(self.usage.get(job.tenant, 0.0), floor)
        if job.tenant not in self.tenants:
            self.tenants.append(job.tenant)
        self.jobs[job.job_id] = job

    def select(self, can_run: Any, limit: int) -> list[FakeJob]:
        chosen: list[FakeJob] = []
        blocked: set[str] = set()
        while len(chosen) < limit:
            heads = [(t, h) for t in self.tenants if t not in blocked and (h := self.head(t))]
            if not heads:
                break
            tenant, job = min(heads, key=lambda th: (self.usage.get(th[0], 0.0), th[1].seq))
            if not can_run(job):
                blocked.add(tenant)
                continue
            del self.jobs[job.job_id]
            self.usage[tenant] = self.usage.get(tenant, 0.0) + 1.0
            chosen.append(job)
        return chosen


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("push"),
            st.sampled_from("abc"),
            st.sampled_from([5, 5, 5, 7, 3]),
            st.sampled_from([None, None, 1000.0, 2000.0]),
            st.booleans(),
        ),
        st.tuples(st.just("remove"), st.integers(0, 60)),
        st.tuples(st.just("again"), st.integers(0, 60)),
        st.tuples(st.just("select"), st.integers(1, 4), st.sampled_from(["", "a", "ab"])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_OPS)
def test_the_queue_serves_jobs_in_the_order_one_heap_a_tenant_gives(ops: list[Any]) -> None:
    queue, reference = FairQueue(), OneHeap()
    made: list[FakeJob] = []
    for op in ops:
        if op[0] == "push":  # a job of a new seq: most come in order, some out of it
            _, tenant, priority, deadline, late = op
            seq = len(made) if not late else -len(made)
            made.append(FakeJob(f"j{len(made)}", tenant, seq, priority, deadline))
            queue.push(made[-1])
            reference.push(made[-1])
        elif op[0] == "remove" and op[1] < len(made):
            job_id = made[op[1]].job_id
            assert (queue.remove(job_id) is None) == (reference.jobs.pop(job_id, None) is None)
        elif op[0] == "again" and op[1] < len(made):  # queued again (its key is its own)
            queue.push(made[op[1]])
            reference.push(made[op[1]])
        elif op[0] == "select":
            _, limit, blocked = op
            picked = queue.select(lambda job, b=blocked: job.tenant not in b, limit)
            expected = reference.select(lambda job, b=blocked: job.tenant not in b, limit)
            assert [j.job_id for j in picked] == [j.job_id for j in expected]
        assert len(queue) == len(reference.jobs)
        assert {t: queue.count(t) for t in "abc"} == {
            t: sum(j.tenant == t for j in reference.jobs.values()) for t in "abc"
        }
        best = queue.best()
        wanted = min(reference.jobs.values(), key=OneHeap.key, default=None)
        assert (best and best.job_id) == (wanted and wanted.job_id)
        assert queue.usage == reference.usage
