"""A neutral-atom device job through a real ``qmk serve`` and the Python client: ``q_submit``
to the target ``neutral-atom``, a tenant without ``CAP_DEVICE_NA`` is refused
with its code, a quota is refused with its limit, and a job completes with the in-process
emulator's counts at the same seed."""

from __future__ import annotations

import pytest

from qmk.client import Client
from qmk.devices.neutral_atom.emulator import run_job
from qmk.errors import CapabilityError, QuotaError
from support.neutral_atom import device_submit

TENANTS = {
    "ada": {"key": "ada-secret-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 6},
    "bob": {"key": "bob-secret-key", "caps": ["CAP_ALLOC"]},
}

JOB = {
    "job_id": "ghz4",
    "profile": "benchmark_chain",
    "shots": 400,
    "seed": 12,
    "program": [
        {"op": "AllocArray", "n_qubits": 4},
        {"op": "ApplyGate", "name": "H", "targets": [0], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2], "param": 0.0},
        {"op": "ApplyGate", "name": "CX", "targets": [2, 3], "param": 0.0},
        {"op": "Measure", "targets": [0, 1, 2, 3]},
    ],
}


def test_device_jobs_through_a_real_server(serve):
    server = serve("device", tenants=TENANTS)
    socket = str(server.socket)
    with Client.connect(
        socket, tenant="ada", key="ada-secret-key", caps=["CAP_ALLOC", "CAP_DEVICE_NA"]
    ) as client:
        accepted = device_submit(client.q_submit, job=JOB)
        done = client.q_wait(job_id=accepted.job_id, timeout_ms=120_000)
        telemetry = client.q_get_telemetry(job_id=accepted.job_id)
        too_big = dict(JOB, program=[{"op": "AllocArray", "n_qubits": 8}, *JOB["program"][1:]])
        with pytest.raises(QuotaError) as quota:
            device_submit(client.q_submit, job=too_big)
    assert done.state == "COMPLETED", done.error
    assert done.result["counts"] == run_job(JOB).counts()
    assert telemetry.telemetry["atoms"] == 4
    assert quota.value.code == "QS1006" and quota.value.details["limit"] == "max_atoms"
    bob = Client.connect(socket, tenant="bob", key="bob-secret-key", caps=["CAP_ALLOC"])
    with bob as client, pytest.raises(CapabilityError) as refused:
        device_submit(client.q_submit, job=JOB)
    assert refused.value.code == "QS1004"
