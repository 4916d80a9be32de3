"""Issue 27: the engine a real ``qmk serve`` picks fits its workers (the default 2 GiB
``RLIMIT_AS``, confined): issue 27's 10-qubit, ~3,822-node noisy program completes on the
router's choice, and on ``aer-statevector`` named by the job twice in one worker, whose
second job used to fail with ``QE102 ... holds at most 0 qubits here``."""

from __future__ import annotations

from typing import Any

import pytest

from qmk import defaults
from qmk._front import read
from qmk.client import Client
from qmk.engines.registry import availability
from support.capped import noisy_program
from support.kernel import TENANTS

KEY = TENANTS["alice"]["key"]


def _submit(server: Any, policy: dict[str, Any] | None, seed: int = 5) -> dict[str, Any]:
    graph = read(noisy_program()).to_json()
    # its T gates outrun the test machine's factories: alone it idles to ~0.04 of logical
    # error, past the default budget, which is not what this test is about
    policy = {**(policy or {}), "error_budget": 0.1}
    with Client.connect(str(server.socket), tenant="alice", key=KEY) as alice:
        job = alice.q_submit(graph, 64, seed, policy)
        final = alice.q_wait(job.job_id, 600_000)
        telemetry = alice.q_get_telemetry(job.job_id)
    return {"final": final, "telemetry": telemetry}


def test_the_routers_choice_for_the_noisy_program_completes_in_a_served_worker(serve):
    server = serve(workers=1)
    done = _submit(server, None)
    assert done["final"].state == defaults.COMPLETED, done["final"]
    assert done["telemetry"].telemetry["engine_reason"].startswith("cheapest of ")


def test_aer_named_by_the_job_runs_in_a_served_worker_under_the_default_cap(serve):
    found = availability(defaults.AER_STATEVECTOR)
    if not found.available:
        pytest.skip(f"aer-statevector: {found.reason}")
    server = serve(workers=1)
    # twice in one worker: the second finds Aer's package imported (it was charged twice)
    for seed in (5, 6):
        done = _submit(server, {"engine": defaults.AER_STATEVECTOR}, seed)
        assert done["final"].state == defaults.COMPLETED, done["final"]
        assert done["telemetry"].telemetry["engine"] == defaults.AER_STATEVECTOR
