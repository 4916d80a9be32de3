"""A worker's small jobs give the same results as before its per-job overhead was cut
(issue 28, item 6): the same counts, the same shot bits (the seeded streams unchanged)
and the same result JSON, byte for byte but for ``wall_time_s`` and ``engine_reason``
(the router's estimates), for the programs and seeds of :data:`CASES`: Clifford
programs sampled in bulk, noiseless and with logical errors striking (flip masks), in one
chunk and in two, with feed-forward and a fence, wider than a byte of events, with an
output layout, and a trajectories run.

``data/small_jobs.json`` was written by this module's ``__main__`` on the code before
that change (commit 3df3aa3); it is never rewritten to make a test pass.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from qmk.execution.executor import execute
from qmk.execution.request import RunRequest, program_digest
from qmk.frontends import read_program
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.runner import attempt_outcome
from qmk.kernel.records.outcome import Done
from qmk.kernel.records.programs import verified
from qmk.kernel.records.stored import head_of
from qmk.qvm.asm import assemble
from qmk.qvm.files import read_graph
from support.workloads import ghz_asm

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("data") / "small_jobs.json"

#: Twelve qubits, twelve events (two bytes a packed row), a GHZ chain.
GHZ12 = ghz_asm(12, profile="logical:surface_code(d=3)")


#: The teleportation example at a quarter turn: Clifford, so sampled in bulk with its
#: feed-forward (COND_PAULI) and fences.
TELEPORT_CLIFFORD = (
    (ROOT / "examples" / "teleport_cond_pauli.qvm.asm")
    .read_text()
    .replace("theta = 1.0", "theta = 1.5707963267948966")
)


def _texts() -> dict[str, str]:
    """Each program's QVM JSON text, as a kernel holds it."""

    def asm(name: str) -> str:
        return json.dumps(read_graph(str(ROOT / "examples" / name)).to_json())

    return {
        "bell": asm("bell.qvm.asm"),
        "ghz": asm("ghz.qvm.asm"),
        "teleport": asm("teleport_cond_pauli.qvm.asm"),
        "teleport_clifford": json.dumps(assemble(TELEPORT_CLIFFORD).to_json()),
        "t_gate": asm("t_gate_injection.qvm.asm"),
        "ghz12": json.dumps(assemble(GHZ12).to_json()),
        "bell_qasm": json.dumps(read_program(str(ROOT / "examples" / "bell.qasm")).to_json()),
    }


#: (name, program, shots, seeds, request fields): the bench's job and its neighbours.
CASES: list[tuple[str, str, int, tuple[int, ...], dict[str, Any]]] = [
    ("bell-100", "bell", 100, (0, 1, 7, 123_456, 2**31 - 1), {}),
    ("bell-1", "bell", 1, (3,), {}),
    ("bell-1000", "bell", 1000, (5,), {}),
    ("bell-60000-two-chunks", "bell", 60_000, (11,), {}),
    ("bell-noiseless", "bell", 100, (2,), {"noise": False}),
    (
        "bell-struck",
        "bell",
        100,
        (0, 1, 2, 3),
        {"noise_model": "depolarizing(p=0.004)", "profile": "logical:surface_code(d=3)"},
    ),
    (
        "bell-struck-2000",
        "bell",
        2000,
        (9,),
        {"noise_model": "depolarizing(p=0.004)", "profile": "logical:surface_code(d=3)"},
    ),
    ("ghz-100", "ghz", 100, (4, 8), {}),
    ("ghz-struck", "ghz", 300, (6,), {"noise_model": "depolarizing(p=0.005)"}),
    ("teleport", "teleport", 200, (1, 2), {}),
    ("teleport-struck", "teleport", 500, (3,), {"noise_model": "depolarizing(p=0.004)"}),
    ("teleport-clifford", "teleport_clifford", 100, (1,), {}),
    (
        "teleport-clifford-struck",
        "teleport_clifford",
        1000,
        (2,),
        {"noise_model": "depolarizing(p=0.004)", "profile": "logical:surface_code(d=3)"},
    ),
    ("ghz12-dense", "ghz12", 200, (17,), {"noise_model": "depolarizing(p=0.009)"}),
    ("t-gate-trajectories", "t_gate", 100, (5,), {}),
    ("ghz12-struck", "ghz12", 400, (13,), {"noise_model": "depolarizing(p=0.003)"}),
    ("bell-qasm-layout", "bell_qasm", 100, (21,), {}),
]

#: What a result holds that is not a function of the program, seed and shots: the wall
#: time, and the router's reason (its cost models' estimates, the engines installed).
_WALL = re.compile(rb'"wall_time_s":[0-9.e+-]+')
_REASON = re.compile(rb'"engine_reason":"[^"]*"')


def _request(text: str, shots: int, seed: int, fields: dict[str, Any]) -> RunRequest:
    base: dict[str, Any] = {
        "qubit": "qubit_gate_ns_e3",
        "profile": "logical:surface_code(d=9)",
        **fields,
    }
    return RunRequest(program_digest=program_digest(text), shots=shots, seed=seed, **base)


def _outcome(text: str, request: RunRequest) -> dict[str, Any]:
    """What pins one run: its result JSON (wall time blanked), its meta, its counts and
    the SHA-256 of its shot bits in shot order."""
    attempt = Attempt(request=request, program=text, caps=("CAP_ALLOC", "CAP_MAGIC"))
    outcome = attempt_outcome(attempt)
    assert isinstance(outcome, Done), outcome
    data = _WALL.sub(b'"wall_time_s":0', outcome.result_json)
    data = _REASON.sub(b'"engine_reason":""', data).decode()
    meta = outcome.result_meta
    assert "head" not in meta  # the text holds it: the kernel reads it from there
    head = head_of(outcome.result_json, meta["counts_at"])  # as a read-back result does
    meta = {"head": {**head, "telemetry": {**head["telemetry"]}}, **meta}
    meta["head"]["telemetry"].update(wall_time_s=0, engine_reason="")
    result = execute(verified(text), request)
    bits = hashlib.sha256(result.bits.tobytes()).hexdigest()
    return {"json": data, "meta": meta, "counts": dict(result.counts), "bits_sha256": bits}


def _all() -> dict[str, Any]:
    texts = _texts()
    return {
        f"{name}/seed={seed}": _outcome(texts[program], _request(texts[program], shots, seed, f))
        for name, program, shots, seeds, f in CASES
        for seed in seeds
    }


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize(("name", "program", "shots", "seeds", "fields"), CASES)
def test_small_jobs_give_the_results_they_gave_before_the_overhead_was_cut(
    golden, name, program, shots, seeds, fields
):
    text = _texts()[program]
    for seed in seeds:
        got = _outcome(text, _request(text, shots, seed, fields))
        assert got == golden[f"{name}/seed={seed}"], f"{name} seed {seed}"


def test_the_golden_runs_include_logical_errors_that_struck():
    injected = [
        json.loads(case["json"])["telemetry"]["injected_logical_errors"]
        for case in json.loads(GOLDEN.read_text()).values()
    ]
    assert sum(1 for count in injected if count) >= 5


if __name__ == "__main__":  # written once, on the code before the change (see above)
    if "--write" not in sys.argv:
        raise SystemExit("pass --write to overwrite data/small_jobs.json")
    GOLDEN.write_text(json.dumps(_all(), indent=1, sort_keys=True) + "\n")
