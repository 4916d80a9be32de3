"""A job record as the kernel stores one, for tests of the store and its readers."""

from __future__ import annotations

from qmk.execution.request import Policy, RunRequest, program_digest
from qmk.kernel.records.jobs import Job


def make_job(job_id: str, seq: int, tenant: str = "alice") -> Job:
    """A QUEUED job ``job_id`` of ``tenant`` with sequence number ``seq`` (an empty
    program, 100 shots, seed 7, a policy with a channel)."""
    graph = '{"version":"0.2","program":{"nodes":[]}}'
    return Job(
        job_id=job_id,
        tenant=tenant,
        graph=graph,
        request=RunRequest(
            program_digest=program_digest(graph),
            shots=100,
            seed=7,
            policy=Policy(priority=3, timeout_ms=1500, channels={"link": "ch_x"}),
        ),
        caps=("CAP_ALLOC",),
        required_caps=("CAP_ALLOC",),
        physical_qubits=324,
        qubits={tenant: 2},
        created_at=1000.0 + seq,
        seq=seq,
    )
