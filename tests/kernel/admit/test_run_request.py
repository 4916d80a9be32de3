"""A kernel job's run request: built once at admission from the policy and the machine's
defaults, stored with the job, run by the worker, recorded as the attestation's fields and
read back by replay."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qmk import defaults
from qmk.abi.methods import METHODS
from qmk.engines.base import EngineError
from qmk.errors import InvalidArgument
from qmk.execution.request import Policy, RunRequest, program_digest
from qmk.execution.runs import build_request
from qmk.execution.target import TARGETS
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.records.stored import digest_counts
from qmk.kernel.security.attest import REQUEST_FIELDS
from qmk.kernel.security.replay import find_attestation, replay, request_of
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import Store
from qmk.qvm.graph import from_json
from qmk.qvm.verify import verify
from support.kernel import BELL, FENCED, login, make_config, run_kernel

GRAPH = FENCED.to_json()


def _submit(tmp_path: Path, policy: dict[str, Any]) -> tuple[str, dict[str, Any], RunRequest]:
    async def body(kernel: Kernel) -> tuple[str, dict[str, Any], RunRequest]:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=GRAPH, shots=400, seed=5, policy=policy)
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        stored = kernel.supervisor.job(job.job_id, "alice")
        return job.job_id, done, stored.request

    return run_kernel(tmp_path, body, workers=1)


def test_admission_builds_the_request_from_the_policy_and_the_machine(tmp_path: Path) -> None:
    config = make_config()
    job_id, done, request = _submit(
        tmp_path, {"priority": 4, "noise": False, "precision": "single"}
    )
    assert request.program_digest == program_digest(json.dumps(GRAPH, separators=(",", ":")))
    assert (request.shots, request.seed, request.noise) == (400, 5, False)
    assert request.precision == "single"
    assert request.qubit == config.machine.qubit and request.profile == config.machine.profile
    assert request.policy == Policy(
        priority=4, noise=False, precision="single", timeout_ms=request.policy.timeout_ms
    )
    store = Store(tmp_path / "data")  # what the database keeps is the same value
    try:
        again = store.load_job(job_id, "alice")
    finally:
        store.close()
    assert again is not None and again.request == request
    assert done.result["seed"] == 5


def test_the_attestation_is_the_request_the_worker_ran_and_replay_reads_it_back(
    tmp_path: Path,
) -> None:
    job_id, done, request = _submit(tmp_path, {"noise": True})
    record = find_attestation(tmp_path / "data", job_id)
    assert record is not None
    attested = request_of(record)
    assert attested.program_digest == request.program_digest
    assert (attested.shots, attested.seed, attested.policy) == (400, 5, request.policy)
    assert set(REQUEST_FIELDS) <= set(record)
    assert record["engine"] == done.result["engine"]  # the engine that ran it
    assert record["result_sha256"] == digest_counts(done.result["counts"])
    with sqlite3.connect(tmp_path / "data" / DB_FILE) as db:
        (graph,) = db.execute("SELECT graph FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert replay(graph, record, job_id).same


def test_a_misspelt_engine_in_a_policy_names_the_nearest(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_submit(
                session_id=alice, graph=BELL, shots=1, policy={"engine": "statevektor"}
            )
        assert caught.value.details["key"] == "policy.engine"
        assert "did you mean 'statevector'?" in caught.value.message

    run_kernel(tmp_path, body, workers=1)


def test_the_method_tables_policy_keys_are_the_policys_fields() -> None:
    submit = METHODS["q_submit"]
    (param,) = [p for p in submit.params if p.name == "policy"]
    policy, _, options = param.doc.partition("; and the target's options: ")
    documented = [key.strip() for key in policy.split(",")]
    assert sorted(documented) == sorted(Policy.__struct_fields__)
    # then every target's own options (TargetSpec.options), each named with its target
    named = re.findall(r"([a-z_, ]+) \(([a-z-]+)\)", options)
    assert {t: sorted(k.strip() for k in keys.split(",") if k.strip()) for keys, t in named} == {
        name: sorted(entry.options) for name, entry in TARGETS.items() if entry.options
    }


def test_a_job_that_names_no_seed_gets_a_63_bit_one_and_the_in_process_range(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        seeds = []
        for _ in range(2):  # both under 2**32 has probability 2**-62
            job = await kernel.q_submit(session_id=alice, graph=BELL, shots=1)
            seeds.append(job.seed)
        assert max(seeds) >= 2**32 and all(s < defaults.SEED_BOUND for s in seeds)
        for shots, seed in ((defaults.MAX_SHOTS + 1, 1), (1, 2**63)):
            with pytest.raises(InvalidArgument) as kernel_says:
                await kernel.q_submit(session_id=alice, graph=BELL, shots=shots, seed=seed)
            with pytest.raises(EngineError) as run_says:  # one check: in-process, QE105
                build_request(verify(from_json(BELL)), shots=shots, seed=seed)
            assert kernel_says.value.message == run_says.value.message

    run_kernel(tmp_path, body, workers=1)
