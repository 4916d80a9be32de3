"""Fences before terminal measurements are pause points in a real ``qmk serve``: a program
of gates and ``FENCE_EPOCH``s whose only measurements come last (every QASM or Qiskit
circuit's shape) yields its worker to an urgent job, answers ``q_checkpoint`` with a
saved state while it runs, and survives a ``kill -9`` of the kernel by resuming from its
checkpoint; every time with the counts of a run that never stopped.

Each job is held at its fences by a pause gate (``tests/support/pools.py``), so what
happens never depends on the machine's speed."""

from __future__ import annotations

import json
import time
from typing import Any

from qmk.client import Client
from qmk.execution.runs import run
from support.fenced import until_running
from support.kernel import BELL, FENCED_CLIFFORD, GATES_THEN_MEASURE, WorkerGate

PROGRAM = GATES_THEN_MEASURE
GRAPH = PROGRAM.to_json()
SHOTS, SEED = 2000, 41
ALICE: dict[str, Any] = {"tenant": "alice", "key": "alice-secret-key"}


def uninterrupted() -> dict[str, int]:
    """What every kernel run of PROGRAM must give: the in-process run, never stopped."""
    return dict(run(PROGRAM, shots=SHOTS, seed=SEED, noise=False).counts)


def test_an_urgent_job_preempts_it_at_a_fence_and_it_resumes_with_the_same_counts(serve, tmp_path):
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("preempt", workers=1, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ALICE) as client:
            slow = client.q_submit(GRAPH, SHOTS, SEED, policy={"noise": False, "priority": 1})
            job_id = slow.job_id
            # on its worker before the urgent one comes (released by the shared machine
            # first: an urgent job released with it would simply run first, nothing to
            # preempt); the pause gate holds it at its first fence until the yield comes
            until_running(client, job_id)
            urgent = client.q_submit(BELL, 100, 2, policy={"priority": 5})
            done = client.q_wait(urgent.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done
            victim = client.q_get_telemetry(job_id)
            assert victim.preemptions == 1, victim
            pause.open()
            final = client.q_wait(job_id, timeout_ms=60_000)
    assert final.state == "COMPLETED", final
    assert final.result["counts"] == uninterrupted()
    telemetry = final.result["telemetry"]
    assert telemetry["preempted_at_epochs"] == [1]
    assert telemetry["resumed_from_epoch"] == 1


def _until_asked(server: Any, job_id: str, request: str, limit_s: float = 120.0) -> None:
    """Return once the kernel's audit log says it asked ``job_id`` to yield with
    ``request`` (its preempt line, written after the request was sent to the job)."""
    deadline = time.monotonic() + limit_s
    log = server.data_dir / "audit.log"
    wanted = {"event": "preempt", "job_id": job_id, "request": request}
    while True:
        text = log.read_text() if log.exists() else ""
        lines = text[: text.rfind("\n") + 1].splitlines()  # whole lines only
        asked = [json.loads(line) for line in lines if '"preempt"' in line]
        if any(wanted.items() <= line.items() for line in asked):
            return
        assert time.monotonic() < deadline, f"no {request} for {job_id} in {limit_s} s"
        time.sleep(0.02)


def test_a_much_more_urgent_job_stops_it_at_once_and_rolls_its_rev_segment_back(serve, tmp_path):
    # rollback was never reached on a real server: a yield-now was met at the next fence
    with WorkerGate(tmp_path) as gate:
        server = serve("rollback", workers=1, hooks=gate.hooks())
        with Client.connect(str(server.socket), **ALICE) as client:
            slow = client.q_submit(GRAPH, SHOTS, SEED, policy={"noise": False, "priority": 1})
            job_id = slow.job_id
            until_running(client, job_id)  # in its worker, held before its first micro-op
            urgent = client.q_submit(BELL, 100, 2, policy={"priority": 9})
            # gap 8 >= rollback_gap 6: the kernel asks it to stop now; the request waits
            # in the job's link until the job runs
            _until_asked(server, job_id, "yield-now")
            gate.open()
            done = client.q_wait(urgent.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done
            final = client.q_wait(job_id, timeout_ms=60_000)
    assert final.state == "COMPLETED", final
    assert final.result["counts"] == uninterrupted()
    telemetry = final.result["telemetry"]
    # stopped after its first segment (H, T, RY), which was rolled back: saved and resumed
    # at its start, before fence 1
    assert (telemetry["rollbacks"], telemetry["rollback_gates"]) == (1, 3), telemetry
    assert telemetry["preempted_at_epochs"] == [0] and telemetry["resumed_from_epoch"] == 0


def test_q_checkpoint_saves_its_state_while_it_runs_and_a_kill_9_resumes_from_it(serve, tmp_path):
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("crash", workers=1, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ALICE) as client:
            job_id = client.q_submit(GRAPH, SHOTS, SEED, policy={"noise": False}).job_id
            until_running(client, job_id)
            first = client.q_checkpoint(job_id)  # held at fence 1: saved there, now
            assert first.saved is True and first.program_epoch == 1, first
            pause.release()  # on to fence 2, held again (unless the request is first)
            second = client.q_checkpoint(job_id)
            assert second.saved is True and second.program_epoch in (1, 2), second
            assert client.q_status(job_id).state == "RUNNING"
        server.kill()
    server.start()  # the same data dir, no pause gate
    with Client.connect(str(server.socket), **ALICE) as client:
        done = client.q_wait(job_id, timeout_ms=60_000)
        telemetry = client.q_get_telemetry(job_id)
    assert done.state == "COMPLETED", done
    assert done.result["counts"] == uninterrupted()
    # from its latest checkpoint, not from the start
    assert done.result["telemetry"]["resumed_from_epoch"] == second.program_epoch
    assert done.result["telemetry"]["checkpoints"] == 2
    assert telemetry.attempts == 2
    assert server.stop() == 0


#: A Clifford program with fences: sampled in bulk by stim (``stim-batch``), in chunks.
CLIFFORD = FENCED_CLIFFORD


def test_a_stim_batch_job_pauses_between_chunks_and_resumes_after_a_kill_9(serve, tmp_path):
    from qmk.execution.batch import CHUNK_SHOTS

    shots = CHUNK_SHOTS + 3  # two chunks: one pause point
    whole = run(CLIFFORD, shots=shots, seed=SEED)  # logical noise on, as the kernel's
    assert whole.telemetry.mode == "stim-batch"
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("batch", workers=1, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ALICE) as client:
            job_id = client.q_submit(CLIFFORD.to_json(), shots, SEED).job_id
            until_running(client, job_id)
            checkpoint = client.q_checkpoint(job_id)  # held after its first chunk
            assert checkpoint.saved is True and checkpoint.program_epoch == 2, checkpoint
        server.kill()
    server.start()
    with Client.connect(str(server.socket), **ALICE) as client:
        done = client.q_wait(job_id, timeout_ms=60_000)
    assert done.state == "COMPLETED", done
    assert done.result["telemetry"]["mode"] == "stim-batch"
    assert done.result["counts"] == whole.counts
    assert done.result["telemetry"]["resumed_from_epoch"] == 2
    assert server.stop() == 0
