"""Checkpoints, preemption and rollback inside a running kernel: a running job saves its
execution state at its next fence, yields its worker there when preempted (or at once,
rolling back its open REV segment, when the preemptor is much more urgent), and resumes
from the saved state with exactly the counts of a run that never stopped.

Every test holds its job at a pause gate (at fences, or micro-op by micro-op), so what
happens does not depend on the machine's speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qmk.execution.runs import run
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.fenced import GRAPH, SEED, SHOTS, uninterrupted
from support.kernel import (
    BELL,
    WorkerGate,
    ghz_graph,
    login,
    run_kernel,
    wait_run_queue,
    wait_state,
)


async def submit(kernel: Kernel, session: str, **policy: Any) -> str:
    job = await kernel.q_submit(
        session_id=session,
        graph=GRAPH,
        shots=SHOTS,
        seed=SEED,
        policy={"noise": False, **policy},
    )
    return str(job.job_id)


def test_a_checkpoint_of_a_running_job_is_its_state_at_the_next_fence(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job_id = await submit(kernel, alice)
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        assert checkpoint.saved is True and checkpoint.program_epoch == 1
        files = list((tmp_path / "data" / "checkpoints" / job_id).glob("*.qmkstate"))
        assert [f.stem for f in files] == [checkpoint.checkpoint_id]
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED" and done.result["counts"] == uninterrupted()
        assert done.result["telemetry"]["checkpoints"] == 1
        # a restore of that checkpoint resumes at fence 1, with the same counts
        await kernel.q_restore(
            session_id=alice, job_id=job_id, checkpoint_id=checkpoint.checkpoint_id
        )
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.result["counts"] == uninterrupted()
        assert again.result["telemetry"]["resumed_from_epoch"] == 1

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, workers=1, pause=pause)


def test_preemption_stops_a_job_at_its_next_fence_and_it_resumes_there(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        slow = await submit(kernel, alice, priority=1)
        await wait_state(kernel, alice, slow, "RUNNING")  # held at its first fence
        urgent = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=100, seed=2, policy={"priority": 5}
        )
        await wait_run_queue(kernel, urgent.job_id)  # off the shared machine
        await clock.tick()  # gap 4: >= preempt_gap, < rollback_gap: yield at the fence
        done = await kernel.q_wait(session_id=alice, job_id=urgent.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        victim = await kernel.q_get_telemetry(session_id=alice, job_id=slow)
        assert victim.preemptions == 1 and victim.state in ("QUEUED", "RUNNING"), victim
        pause.open()
        final = await kernel.q_wait(session_id=alice, job_id=slow, timeout_ms=60_000)
        assert final.state == "COMPLETED" and final.result["counts"] == uninterrupted()
        telemetry = final.result["telemetry"]
        assert telemetry["preempted_at_epochs"] == [1] and telemetry["resumed_from_epoch"] == 1
        assert telemetry["rollbacks"] == 0

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, workers=1, pause=pause, clock=clock)


def test_a_much_more_urgent_job_rolls_the_victims_rev_segment_back(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        slow = await submit(kernel, alice, priority=1)
        await wait_state(kernel, alice, slow, "RUNNING")  # on its worker
        # answered at its first fence, where the pause gate then holds it (RUNNING alone
        # does not say it came there: a stop-now before it would be met after its first
        # segment of gates)
        held = await kernel.q_checkpoint(session_id=alice, job_id=slow)
        assert held.saved is True and held.program_epoch == 1
        pause.step(4)  # past the fence, RY, RZ, CNOT: held before RX, inside the segment
        urgent = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=100, seed=2, policy={"priority": 9}
        )
        await wait_run_queue(kernel, urgent.job_id)  # off the shared machine
        await clock.tick()  # gap 8 >= rollback_gap: stop now
        done = await kernel.q_wait(session_id=alice, job_id=urgent.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        pause.open()
        final = await kernel.q_wait(session_id=alice, job_id=slow, timeout_ms=60_000)
        assert final.state == "COMPLETED" and final.result["counts"] == uninterrupted()
        telemetry = final.result["telemetry"]
        assert (telemetry["rollbacks"], telemetry["rollback_gates"]) == (1, 3)
        assert telemetry["resumed_from_epoch"] == 1  # the segment began at fence 1

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_kernel(tmp_path, body, workers=1, pause=pause, clock=clock)
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").open()]
    [preempt] = [line for line in lines if line.get("event") == "preempt"]
    assert preempt["request"] == "yield-now"


def test_a_job_without_a_fence_stops_at_once_and_runs_again_to_the_same_counts(
    tmp_path: Path,
) -> None:
    # it has no state to save but its start: its worker is stopped at once (a request to
    # yield would wait for a pause point it never reaches) and it runs again from there
    clock = ManualClock()
    plain = ghz_graph(3)  # no fence
    alone = dict(run(plain, shots=SHOTS, seed=SEED, noise=False).counts)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        victim = await kernel.q_submit(
            session_id=alice,
            graph=plain,
            shots=SHOTS,
            seed=SEED,
            policy={"noise": False, "priority": 1},
        )
        await wait_state(kernel, alice, victim.job_id, "RUNNING")  # held in its worker
        urgent = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=100, seed=2, policy={"priority": 5}
        )
        await wait_run_queue(kernel, urgent.job_id)  # off the shared machine
        await clock.tick()  # gap 4: a fenced victim would be asked to yield at its fence
        stopped = await kernel.q_status(session_id=alice, job_id=victim.job_id)
        assert stopped.state == "QUEUED"
        await wait_state(kernel, alice, urgent.job_id, "RUNNING")
        gate.release()
        done = await kernel.q_wait(session_id=alice, job_id=urgent.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        gate.release()  # the victim, again from its start
        final = await kernel.q_wait(session_id=alice, job_id=victim.job_id, timeout_ms=60_000)
        assert final.state == "COMPLETED" and final.result["counts"] == alone
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=victim.job_id)
        assert telemetry.preemptions == 1

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate, clock=clock)
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").open()]
    [preempt] = [line for line in lines if line.get("event") == "preempt"]
    assert preempt["request"] == "stop"


def test_one_urgent_job_preempts_one_victim_however_long_it_takes_to_yield(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> list[int]:
        alice = await login(kernel, "alice")
        victims = [await submit(kernel, alice, priority=1) for _ in range(2)]
        for victim in victims:
            await wait_state(kernel, alice, victim, "RUNNING")  # both held in their workers
        urgent = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=100, seed=2, policy={"priority": 5}
        )
        await wait_run_queue(kernel, urgent.job_id)  # off the shared machine
        for _ in range(3):  # the first victim cannot reach its fence while held
            await clock.tick()
        gate.open()
        for job_id in (urgent.job_id, *victims):
            done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            if job_id != urgent.job_id:
                assert done.result["counts"] == uninterrupted()
        return [
            (await kernel.q_get_telemetry(session_id=alice, job_id=v)).preemptions for v in victims
        ]

    with WorkerGate(tmp_path) as gate:
        preemptions = run_kernel(tmp_path, body, workers=2, gate=gate, clock=clock)
    assert sorted(preemptions) == [0, 1]
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").open()]
    [preempt] = [line for line in lines if line.get("event") == "preempt"]  # one victim
    assert preempt["request"] == "yield"


def test_a_checkpoint_of_a_job_without_a_fence_records_its_start(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job.job_id)
        assert checkpoint.saved is False and checkpoint.program_epoch is None

    run_kernel(tmp_path, body, workers=1)
