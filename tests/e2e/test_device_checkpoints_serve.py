"""A long neutral-atom device job in a real ``qmk serve`` pauses between its chunks of
shots: ``q_checkpoint`` saves its state while it runs, a ``kill -9`` of the kernel is
survived by resuming from that checkpoint, and an urgent job preempts it there; every
time with the in-process emulator's counts at the same seed.

Each job is held at its pause points by a pause gate (``tests/support/pools.py``), so
what happens never depends on the machine's speed."""

from __future__ import annotations

from typing import Any

from qmk.client import Client
from qmk.devices.neutral_atom.circuit import lower
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.shots import CHUNK_SHOTS, CHUNK_WORK, chunk_shots, shot_work
from qmk.devices.neutral_atom.validate import validate_job
from support.fenced import until_running
from support.kernel import BELL, WorkerGate
from support.neutral_atom import device_submit, noisy_snake, wide_ghz

CAPS = ["CAP_ALLOC", "CAP_DEVICE_NA"]
TENANTS = {
    "ada": {
        "key": "ada-secret-key",
        "caps": CAPS,
        "max_atoms": 16,
        "max_concurrent_jobs": 2,
        "max_queued_jobs": 10,
    },
}
ADA: dict[str, Any] = {"tenant": "ada", "key": "ada-secret-key", "caps": CAPS}

#: Three chunks of shots on a lossy chain (several loss groups): two pause points at least.
JOB = {
    "job_id": "long-ghz",
    "profile": "lossy_chain",
    "shots": 2 * CHUNK_SHOTS + 11,
    "seed": 23,
    "program": [
        {"op": "AllocArray", "n_qubits": 4},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "ApplyGate", "name": "CX", "targets": [2, 3]},
        {"op": "Measure", "targets": [0, 1, 2, 3]},
    ],
}


def checkpoint_held_after_its_first_chunk(client: Client, job_id: str) -> None:
    """Once ``job_id`` runs, checkpoint it while the pause gate holds it after its first
    chunk: the checkpoint is that chunk's, and the job runs on."""
    until_running(client, job_id)
    checkpoint = client.q_checkpoint(job_id)
    assert checkpoint.saved is True and checkpoint.program_epoch == 1, checkpoint
    assert client.q_status(job_id).state == "RUNNING"


def test_a_device_job_checkpointed_before_a_kill_9_resumes_from_it(serve, tmp_path):
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("device-crash", workers=1, tenants=TENANTS, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ADA) as client:
            job_id = device_submit(client.q_submit, job=JOB).job_id
            checkpoint_held_after_its_first_chunk(client, job_id)
        server.kill()
    server.start()  # the same data dir, no pause gate
    with Client.connect(str(server.socket), **ADA) as client:
        done = client.q_wait(job_id, timeout_ms=120_000)
        telemetry = client.q_get_telemetry(job_id)
    assert done.state == "COMPLETED", done
    assert done.result["counts"] == run_job(JOB).counts()
    assert done.result["telemetry"]["resumed_from_epoch"] == 1  # not from the start
    assert telemetry.attempts == 2
    assert server.stop() == 0


def test_an_urgent_job_preempts_a_device_job_between_chunks_and_it_resumes(serve, tmp_path):
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("device-preempt", workers=1, tenants=TENANTS, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ADA) as client:
            job_id = device_submit(client.q_submit, job=JOB, policy={"priority": 1}).job_id
            urgent = client.q_submit(BELL, 100, 2, policy={"priority": 5})
            done = client.q_wait(urgent.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done
            assert client.q_get_telemetry(job_id).preemptions == 1
            pause.open()
            final = client.q_wait(job_id, timeout_ms=120_000)
    assert final.state == "COMPLETED", final
    assert final.result["counts"] == run_job(JOB).counts()
    assert final.result["telemetry"]["preempted_at_epochs"] == [1]
    assert final.result["telemetry"]["resumed_from_epoch"] == 1


#: Sixteen atoms on the statevector with gate noise, dephasing and damping: its shots, fewer
#: than the stabilizer draws at once, were one chunk of a minute, and so was the wait of
#: a q_checkpoint.
WIDE = wide_ghz(2100, seed=31)


def test_q_checkpoint_of_a_wide_statevector_job_is_answered_within_its_chunk(serve, tmp_path):
    assert WIDE["shots"] < CHUNK_SHOTS
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("device-wide", workers=1, tenants=TENANTS, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ADA) as client:
            job = client.q_submit(WIDE, WIDE["shots"], WIDE["seed"], target="neutral-atom")
            job_id = job.job_id
            checkpoint_held_after_its_first_chunk(client, job_id)
            pause.open()
            done = client.q_wait(job_id, timeout_ms=300_000)
    assert done.state == "COMPLETED", done
    assert done.result["counts"] == run_job(WIDE).counts()
    assert done.result["telemetry"]["checkpoints"] == 1


#: The issue's job: ten atoms, noisy and non-Clifford (stacked trajectories), 20,000 shots;
#: a q_checkpoint of it waited 33.5 s for the end of its one chunk of 4,096 shots.
TEN = noisy_snake(10, 20_000, seed=41)


def test_q_checkpoint_of_a_noisy_ten_atom_job_is_taken_between_chunks_within_the_work_bound(
    serve, tmp_path
):
    parsed = parse_job(TEN)
    circuit = lower(parsed, validate_job(parsed))
    size = chunk_shots("state-vector", circuit)
    assert size * shot_work("state-vector", circuit) <= CHUNK_WORK  # about a second here
    assert TEN["shots"] > size
    with WorkerGate(tmp_path, "pause-gate") as pause:
        server = serve("device-ten", workers=1, tenants=TENANTS, hooks=pause.pause_hooks())
        with Client.connect(str(server.socket), **ADA) as client:
            job_id = device_submit(client.q_submit, job=TEN).job_id
            checkpoint_held_after_its_first_chunk(client, job_id)
            pause.open()
            done = client.q_wait(job_id, timeout_ms=300_000)
    assert done.state == "COMPLETED", done
    assert done.result["counts"] == run_job(TEN).counts()
    assert done.result["telemetry"]["mode"] == "stacked"
    assert done.result["telemetry"]["checkpoints"] == 1
