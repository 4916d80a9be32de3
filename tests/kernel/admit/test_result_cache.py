"""The result cache: a submit whose run equals a completed job's run of the same tenant is
answered from that job's stored result, at once and with no worker; another tenant's,
``cache: false``, a drawn seed and an expired source run for real. Real in-process
kernels; the worker gate proves that nothing ran (a held worker would hold the job)."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from qmk.execution.request import MachineRun, RunRequest, run_key
from qmk.kernel.admit import cache as cache_module
from qmk.kernel.admit.cache import KeyFilter, cache_key
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.records.encoded import encode_result
from qmk.kernel.records.stored import with_telemetry
from qmk.kernel.security.replay import find_attestation, replay, request_of
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import Store
from support.kernel import WorkerGate, admit, ghz_graph, login, make_config, run_kernel

SHOTS, SEED = 500, 21
GRAPH = ghz_graph(3)
GRAPH_TEXT = json.dumps(GRAPH, separators=(",", ":"), ensure_ascii=False)


async def submit(kernel: Kernel, sid: str, **options: Any) -> dict[str, Any]:
    options = {"shots": SHOTS, "seed": SEED, **options}
    return (await kernel.q_submit(session_id=sid, graph=GRAPH, **options)).to_json()


async def done(kernel: Kernel, sid: str, job_id: str) -> dict[str, Any]:
    return (await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000)).to_json()


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_an_identical_submit_is_answered_from_the_stored_result_without_a_worker(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)
        gate.release(1)  # the first job's run; the gate holds any other
        first = await done(kernel, sid, first["job_id"])
        second = await submit(kernel, sid)  # answered in the submit's own reply
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=second["job_id"])
        return first, second, telemetry.to_json()

    with WorkerGate(tmp_path) as gate:
        first, second, telemetry = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert second["state"] == "COMPLETED" and second["job_id"] != first["job_id"]
    assert second["result"]["counts"] == first["result"]["counts"]
    assert second["cached_from"] == first["job_id"] and "cached_from" not in first
    assert second["result"]["telemetry"]["cache_hit"] is True
    assert second["result"]["telemetry"]["cached_from"] == first["job_id"]
    assert first["result"]["telemetry"]["cache_hit"] is False
    assert telemetry["attempts"] == 0 and telemetry["run_s"] is None
    lines = audit(tmp_path)
    states = [r["state"] for r in lines if r["event"] == "job" and r["job_id"] == second["job_id"]]
    assert states == ["QUEUED", "COMPLETED"]  # never RUNNING
    completed = [r for r in lines if r.get("state") == "COMPLETED"]
    assert completed[-1]["cached_from"] == first["job_id"]
    # attested as a cache hit, and replay of the cached job proves the same counts
    record = find_attestation(tmp_path / "data", second["job_id"])
    assert record is not None and record["cache_hit"] is True
    assert record["cached_from"] == first["job_id"]
    source = find_attestation(tmp_path / "data", first["job_id"])
    assert source is not None and source["cache_hit"] is False
    assert record["result_sha256"] == source["result_sha256"]
    assert replay(GRAPH_TEXT, record, second["job_id"]).same


def test_a_job_whose_run_text_left_the_memo_while_it_queued_is_indexed_under_its_runs_key(
    tmp_path: Path,
) -> None:
    # other runs push a queued job's run text out of the memo of run texts; its end
    # indexes the key its acceptance made, which is the digest of the run it ran
    async def body(kernel: Kernel) -> tuple[dict[str, Any], dict[str, Any]]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)  # its worker holds it at the gate
        cache_module._TEXTS.clear()  # as other runs' texts do before it ends
        gate.release(1)
        first = await done(kernel, sid, first["job_id"])
        second = await submit(kernel, sid)  # answered under the key its run was indexed
        return first, second

    with WorkerGate(tmp_path) as gate:
        first, second = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert second["state"] == "COMPLETED" and second["cached_from"] == first["job_id"]
    record = find_attestation(tmp_path / "data", first["job_id"])
    assert record is not None
    ran = request_of(record)
    db = sqlite3.connect(tmp_path / "data" / DB_FILE)
    (stored,) = db.execute("SELECT cache_key FROM jobs WHERE job_id = ?", (first["job_id"],))
    db.close()
    assert stored[0] == hashlib.sha256(f"alice\n{run_key(ran)}".encode()).hexdigest()


def test_another_tenant_cache_false_and_other_runs_are_not_answered_from_the_cache(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> list[dict[str, Any]]:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        first = await submit(kernel, alice)
        gate.release(1)
        await done(kernel, alice, first["job_id"])
        others = [
            (bob, await submit(kernel, bob)),  # another tenant
            (alice, await submit(kernel, alice, policy={"cache": False})),
            (alice, await submit(kernel, alice, seed=SEED + 1)),
            (alice, await submit(kernel, alice, shots=SHOTS + 1)),
            (alice, await submit(kernel, alice, policy={"noise": False})),
            (alice, await submit(kernel, alice, policy={"noise_model": "depolarizing(p=2e-3)"})),
        ]
        assert all(job["state"] == "QUEUED" for _, job in others)  # held: they run
        gate.release(len(others))
        return [await done(kernel, sid, job["job_id"]) for sid, job in others]

    with WorkerGate(tmp_path) as gate:
        ran = run_kernel(tmp_path, body, workers=1, gate=gate)
    for job in ran:
        assert job["state"] == "COMPLETED" and job["result"]["telemetry"]["cache_hit"] is False
        assert "cached_from" not in job


def test_a_job_with_cache_false_answers_no_later_submit(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> dict[str, Any]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid, policy={"cache": False})
        gate.release(1)
        await done(kernel, sid, first["job_id"])
        second = await submit(kernel, sid)
        assert second["state"] == "QUEUED"
        gate.release(1)
        return await done(kernel, sid, second["job_id"])

    with WorkerGate(tmp_path) as gate:
        second = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert second["result"]["telemetry"]["cache_hit"] is False


def test_a_seed_the_kernel_draws_never_looks_up_the_cache(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> tuple[bool, bool, dict[str, Any]]:
        sid = await login(kernel, "alice")
        session = kernel.sessions.check(sid, now=kernel.clock.now())
        drawn = await admit(kernel.admission, session, GRAPH, SHOTS, None, None)
        given = await admit(kernel.admission, session, GRAPH, SHOTS, SEED, None)
        # a drawn seed's job is a source all the same: a submit naming its seed hits it
        first = await submit(kernel, sid, seed=None)
        gate.release(1)
        first = await done(kernel, sid, first["job_id"])
        again = await submit(kernel, sid, seed=first["seed"])
        return drawn.cache_lookup, given.cache_lookup, {"first": first, "again": again}

    with WorkerGate(tmp_path) as gate:
        drawn, given, jobs = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert drawn is False and given is True
    assert jobs["again"]["cached_from"] == jobs["first"]["job_id"]


def test_a_source_whose_result_expired_answers_nothing(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> list[str]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)
        gate.release(1)
        first = await done(kernel, sid, first["job_id"])
        clock.advance(99)
        kept = await submit(kernel, sid)  # within result_keep_s: answered
        assert kept["cached_from"] == first["job_id"]
        clock.advance(2)  # past result_keep_s, before any sweep: no longer answered
        late = await submit(kernel, sid)
        assert late["state"] == "QUEUED"
        gate.release(1)
        await done(kernel, sid, late["job_id"])
        await clock.tick()  # the sweep deletes the first result
        status = await kernel.q_status(session_id=sid, job_id=first["job_id"])
        assert status.result is None and status.result_error.code == "QK306"
        # the late job ran: it is the source now
        again = await submit(kernel, sid)
        return [late["job_id"], again.get("cached_from")]

    with WorkerGate(tmp_path) as gate:
        late, source = run_kernel(
            tmp_path, body, workers=1, gate=gate, clock=clock, config=make_config(result_keep_s=100)
        )
    assert source == late


def test_the_cache_survives_a_restart_of_the_kernel(tmp_path: Path) -> None:
    async def first_run(kernel: Kernel) -> dict[str, Any]:
        sid = await login(kernel, "alice")
        job = await submit(kernel, sid)
        return await done(kernel, sid, job["job_id"])

    async def second_run(kernel: Kernel) -> dict[str, Any]:
        sid = await login(kernel, "alice")
        return await submit(kernel, sid)

    first = run_kernel(tmp_path, first_run, workers=1)
    with WorkerGate(tmp_path) as gate:  # closed: a run would hold the submit's job
        second = run_kernel(tmp_path, second_run, workers=1, gate=gate)
    assert second["state"] == "COMPLETED" and second["cached_from"] == first["job_id"]
    assert second["result"]["counts"] == first["result"]["counts"]


def test_the_lookup_is_an_index_search_not_a_scan(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    assert store.cache_source("alice", "ab" * 32, 0.0) is None
    store.db.set_trace_callback(None)
    (query,) = [s for s in statements if "cache_key" in s]
    plan = " ".join(str(row) for row in store.db.execute(f"EXPLAIN QUERY PLAN {query}"))
    store.close()
    assert "jobs_cache" in plan and "SCAN jobs" not in plan, plan
    db = sqlite3.connect(tmp_path / "data" / DB_FILE)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    db.close()
    assert "jobs_cache" in names


def test_a_run_no_job_has_had_is_not_looked_up_in_the_store_and_a_repeat_is(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> tuple[list[str], list[str], dict[str, Any]]:
        sid = await login(kernel, "alice")
        db = kernel.supervisor.store.db
        first: list[str] = []
        db.set_trace_callback(first.append)
        job = await submit(kernel, sid)
        db.set_trace_callback(None)
        await done(kernel, sid, job["job_id"])
        again: list[str] = []
        db.set_trace_callback(again.append)
        repeat = await submit(kernel, sid)
        db.set_trace_callback(None)
        return first, again, repeat

    first, again, repeat = run_kernel(tmp_path, body, workers=1)
    assert not [s for s in first if "cache_key=" in s and s.startswith("SELECT")]
    assert [s for s in again if "cache_key=" in s and s.startswith("SELECT")]
    assert repeat["state"] == "COMPLETED" and repeat["cached_from"]


def test_the_key_filter_holds_every_key_added_and_few_others() -> None:
    rng = random.Random(5)  # the filter's answers are a function of the keys: no flake
    keys = KeyFilter()
    added = [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(100_000)]
    for key in added:
        keys.add(key)
    assert all(keys.may_hold(key) for key in added)
    others = [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(20_000)]
    false = sum(keys.may_hold(key) for key in others)
    assert false < 20_000 / 500  # ~ (1 - e^(-2n/m))^2 = 1/1,800 at n = 1e5, m = 2^23


def test_the_key_is_the_tenants_and_changes_with_every_field_that_decides_a_result() -> None:
    base = RunRequest(program_digest="ab" * 32, shots=10, seed=1)
    same = RunRequest(program_digest="ab" * 32, shots=10, seed=1, trace_context="00-x")
    assert cache_key("alice", base) == cache_key("alice", same)
    assert cache_key("alice", base) != cache_key("bob", base)
    changed = [
        {"shots": 11},
        {"seed": 2},
        {"program_digest": "cd" * 32},
        {"engine": "statevector"},
        {"precision": "single"},
        {"noise": False},
        {"noise_model": "depolarizing(p=0.001)"},
        {"profile": "logical:surface_code(d=5)"},
    ]
    for change in changed:
        other = RunRequest.from_json({**base.to_json(), **_json_names(change)})
        assert cache_key("alice", other) != cache_key("alice", base), change


def test_the_key_is_the_digest_of_the_tenant_and_the_runs_run_key_for_every_seed() -> None:
    # the stored keys (jobs.cache_key) are this digest: a key made another way must be
    # the same text, whatever the seed and whatever else the run holds
    def stored(tenant: str, request: RunRequest) -> str:
        return hashlib.sha256(f"{tenant}\n{run_key(request)}".encode()).hexdigest()

    idle = MachineRun(
        arrival_cycle=0, start_cycle=5, end_cycle=9, tiles=4, module=0, idle={"a": 3.0}
    )
    runs = [
        RunRequest(program_digest="ab" * 32, shots=10, seed=1),
        RunRequest(program_digest="ab" * 32, shots=10, seed=1, target_options={"seed": 1}),
        RunRequest(program_digest="ab" * 32, shots=10, seed=1, engine_options={"seed": 7}),
        RunRequest(program_digest="cd" * 32, shots=3, seed=1, noise=True, machine=idle),
        RunRequest(program_digest="cd" * 32, shots=3, seed=1, noise=False, machine=idle),
        RunRequest(program_digest="ef" * 32, shots=3, seed=1, target="lattice-surgery"),
    ]
    for run in runs:
        for seed in (0, 1, 9, 10, 1_234_567, 2**63 - 1, 2**63 - 1, 0):
            request = replace(run, seed=seed)
            for tenant in ("alice", "bob"):
                assert cache_key(tenant, request) == stored(tenant, request), (run, seed)


def _json_names(change: dict[str, Any]) -> dict[str, Any]:
    return {("engine_requested" if k == "engine" else k): v for k, v in change.items()}


def test_telemetry_added_to_a_stored_result_keeps_its_counts_and_pages() -> None:
    counts = {format(i, "012b"): i + 1 for i in range(3000)}
    stored = encode_result({"counts": counts, "shots": 7, "telemetry": {"engine": "x"}})
    marked = with_telemetry(stored, cache_hit=True, cached_from="job_a")
    assert marked["counts"] == counts and marked.counts_sha256 == stored.counts_sha256
    assert marked["telemetry"] == {"engine": "x", "cache_hit": True, "cached_from": "job_a"}
    assert json.loads(marked.data) == {**json.loads(stored.data), "telemetry": marked["telemetry"]}
    assert marked.page(1500, 700) == stored.page(1500, 700)


def test_metrics_count_the_cache_hits_by_tenant_and_no_run_for_them(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    from qmk.kernel.config import config_from_dict
    from support.kernel import KEYS, OPS, scrape

    async def body(kernel: Kernel) -> str:
        ops = await login(kernel, "ops", OPS["caps"])
        await scrape(kernel, ops)  # the kernel counts jobs' ends from a first scrape on
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)
        await done(kernel, sid, first["job_id"])
        for _ in range(2):
            assert (await submit(kernel, sid))["cached_from"] == first["job_id"]
        return await scrape(kernel, ops)

    alice = {"key": KEYS["alice"], "caps": ["CAP_ALLOC", "CAP_LINK"]}
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"alice": alice, "ops": OPS},
        }
    )
    text = run_kernel(tmp_path, body, workers=1, config=config)
    assert 'qmk_result_cache_hits_total{tenant="alice"} 2.0' in text
    assert 'qmk_jobs_finished_total{state="COMPLETED",tenant="alice"} 3.0' in text
    # one engine choice and one run: the hits ran nothing
    assert 'qmk_engine_choice_total{engine="stabilizer"} 1.0' in text
    assert 'qmk_job_run_seconds_count{state="COMPLETED"} 1.0' in text


def test_a_job_past_its_deadline_is_timed_out_not_answered(tmp_path: Path) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> tuple[dict[str, Any], dict[str, Any]]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)
        await done(kernel, sid, first["job_id"])
        soon = await submit(kernel, sid, policy={"deadline": 2000.0})
        late = await submit(kernel, sid, policy={"deadline": 10.0})
        return soon, await done(kernel, sid, late["job_id"])

    soon, late = run_kernel(tmp_path, body, workers=1, clock=clock)
    assert soon["state"] == "COMPLETED" and "cached_from" in soon
    assert late["state"] == "TIMED_OUT" and late["error"]["code"] == "QK302"


def test_q_replay_runs_the_job_again_and_is_never_answered_from_the_cache(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> tuple[dict[str, Any], dict[str, Any], int]:
        sid = await login(kernel, "alice")
        first = await submit(kernel, sid)
        gate.release(1)
        first = await done(kernel, sid, first["job_id"])
        again = await kernel.q_replay(session_id=sid, job_id=first["job_id"])
        held = again.state  # the gate holds its run: not answered in the reply
        gate.release(1)
        return first, await done(kernel, sid, again.job_id), held

    with WorkerGate(tmp_path) as gate:
        first, again, held = run_kernel(tmp_path, body, workers=1, gate=gate)
    assert held != "COMPLETED"
    assert again["result"]["counts"] == first["result"]["counts"]
    assert again["result"]["telemetry"]["cache_hit"] is False and "cached_from" not in again
