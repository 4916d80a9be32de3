"""A real ``qmk serve`` killed with ``kill -9`` after a job's checkpoint: after a restart
the job resumes from that checkpoint (telemetry says so) and gives the counts of a run
that never stopped, on the engine that saved it even where the restarted kernel's router
now picks another."""

from __future__ import annotations

import pytest

from qmk.client import Client
from qmk.execution.runs import run
from support.fenced import GRAPH, SEED, SHOTS, uninterrupted, until_running
from support.kernel import WorkerGate
from support.workloads import ry_brickwork


def test_a_job_checkpointed_before_a_kill_9_resumes_from_it_after_a_restart(serve, tmp_path):
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("crash", workers=1, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
            job_id = client.q_submit(GRAPH, SHOTS, SEED, policy={"noise": False}).job_id
            until_running(client, job_id)
            # the job is held at its first fence: the checkpoint is saved there, now
            checkpoint = client.q_checkpoint(job_id)
            assert checkpoint.saved is True and checkpoint.program_epoch == 1
            assert client.q_status(job_id).state == "RUNNING"
        server.kill()
    server.start()  # same data dir, no pause gate
    with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
        done = client.q_wait(job_id, timeout_ms=60_000)
        telemetry = client.q_get_telemetry(job_id)
    assert done.state == "COMPLETED", done
    assert done.result["counts"] == uninterrupted()
    assert done.result["telemetry"]["resumed_from_epoch"] == 1
    assert telemetry.attempts == 2
    assert server.stop() == 0


def test_after_a_restart_that_changes_the_routers_choice_a_job_resumes_on_the_saved_engine(
    serve, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    # started with a state allowance of 64 KiB (no 12-qubit statevector in double
    # precision fits), the kernel runs this job as an MPS and checkpoints it at its fence;
    # restarted with the default allowance, its router picks another engine for the
    # program, and the job goes on as the MPS from its checkpoint
    graph = ry_brickwork(12, 8, fence_after=1)
    shots, seed, policy = 300, 23, {"noise": False}
    small = {"QMK_MAX_STATE_BYTES": str(2**16)}
    with monkeypatch.context() as allowance:
        allowance.setenv("QMK_MAX_STATE_BYTES", small["QMK_MAX_STATE_BYTES"])
        whole = run(graph, shots=shots, seed=seed, **policy)  # as the first start runs it
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("rerouted", workers=1, env=small, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
            job_id = client.q_submit(graph.to_json(), shots, seed, policy=policy).job_id
            until_running(client, job_id)
            assert client.q_checkpoint(job_id).saved is True  # held at its fence
        server.kill()
    server.start()  # the default allowance
    with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
        done = client.q_wait(job_id, timeout_ms=60_000)
        fresh = client.q_submit(graph.to_json(), shots, seed + 1, policy=policy).job_id
        fresh = client.q_wait(fresh, timeout_ms=60_000)
    assert fresh.state == "COMPLETED", fresh.error
    assert fresh.result["telemetry"]["engine"] != whole.engine, "the router must now differ"
    assert done.state == "COMPLETED", done
    telemetry = done.result["telemetry"]
    assert telemetry["engine"] == whole.engine and telemetry["resumed_from_epoch"] == 1
    assert telemetry["engine_reason"].startswith("resumes where its checkpoint left off")
    assert done.result["counts"] == dict(whole.counts)
    assert server.stop() == 0
