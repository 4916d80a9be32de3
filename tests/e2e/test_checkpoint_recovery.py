"""A real ``qmk serve`` killed with ``kill -9`` after a job's checkpoint: after a restart
the job resumes from that checkpoint (telemetry says so) and gives the counts of a run
that never stopped."""

from __future__ import annotations

from qmk.client import Client
from support.kernel import WorkerGate


def test_a_job_checkpointed_before_a_kill_9_resumes_from_it_after_a_restart(serve, tmp_path):
    from kernel.test_checkpoints import GRAPH, SEED, SHOTS, uninterrupted

    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("crash", workers=1, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
            job_id = client.q_submit(GRAPH, SHOTS, SEED, policy={"noise": False})["job_id"]
            # the job is held at its first fence: the checkpoint is saved there, now
            checkpoint = client.q_checkpoint(job_id)
            assert checkpoint["saved"] is True and checkpoint["program_epoch"] == 1
            assert client.q_status(job_id)["state"] == "RUNNING"
        server.kill()
    server.start()  # same data dir, no pause gate
    with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
        done = client.q_wait(job_id, timeout_ms=60_000)
        telemetry = client.q_get_telemetry(job_id)
    assert done["state"] == "COMPLETED", done
    assert done["result"]["counts"] == uninterrupted()
    assert done["result"]["telemetry"]["resumed_from_epoch"] == 1
    assert telemetry["attempts"] == 2
    assert server.stop() == 0
