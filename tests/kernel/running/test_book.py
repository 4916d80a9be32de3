"""The book's memory of finished jobs: bounded in jobs and in bytes, programs counted."""

from __future__ import annotations

from qmk.execution.request import RunRequest
from qmk.kernel.records.jobs import Job, parse_policy
from qmk.kernel.running import book


def test_a_finished_jobs_bytes_count_its_programs_text_not_only_its_result() -> None:
    # a big program without a result must not slip past FINISHED_CACHE_BYTES: 4,096 of
    # 1 MB programs would be 4 GB
    text = '{"version": "0.2", "nodes": []}' + " " * 1_000_000
    job = Job(
        job_id="job_1",
        tenant="alice",
        graph=text,
        request=RunRequest(
            program_digest="ab" * 32,
            shots=1,
            seed=1,
            policy=parse_policy(None, default_timeout_s=60),
        ),
        caps=(),
        required_caps=(),
        physical_qubits=0,
        qubits={},
    )
    assert book._result_bytes(job) >= len(text)
    assert book.FINISHED_CACHE_SIZE * 256 < book.FINISHED_CACHE_BYTES  # small jobs: count
