"""The kernel service in-process: real worker processes, real SQLite in tmp_path, no mocks."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET

from qmk import aio
from qmk.errors import (
    AdmissionError,
    AuthError,
    CapabilityError,
    InvalidArgument,
    NotFoundError,
    ProgramError,
    QuotaError,
    SessionError,
    SessionExpired,
    StateError,
    UnavailableError,
)
from qmk.execution import executor, runs
from qmk.kernel.config import config_from_dict
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit_verify import verify
from support.children import die_with_us
from support.kernel import (
    BELL,
    WorkerGate,
    ghz_graph,
    login,
    make_config,
    run_kernel,
    slow_graph,
    support_env,
    wait_state,
)
from support.paths import EXAMPLES

# ----------------------------------------------------------------------------- basics


def test_kernel_offers_every_syscall_of_the_contract() -> None:
    from qmk.abi.methods import METHODS

    # the table is the one list: the kernel's syscalls are its methods, no more, no fewer
    syscalls = {name for name in dir(Kernel) if name.startswith("q_")}
    assert syscalls == set(METHODS)
    for name in syscalls:
        assert asyncio.iscoroutinefunction(getattr(Kernel, name)), name


def test_completed_counts_equal_the_executor_for_the_same_graph_shots_and_seed(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        for graph, shots, seed in ((BELL, 1000, 7), (ghz_graph(3), 500, 11)):
            job = await kernel.q_submit(session_id=sid, graph=graph, shots=shots, seed=seed)
            assert job.state == "QUEUED" and job.job_id.startswith("job_")
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=20000)
            assert done.state == "COMPLETED", done.error
            expected = runs.run(graph, shots=shots, seed=seed).to_json()
            assert done.result["counts"] == expected["counts"]
            assert done.result["events"] == expected["events"]
            assert done.result["engine"] == expected["engine"]

    run_kernel(tmp_path, body)


def test_a_null_seed_is_drawn_by_the_kernel_and_reported(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=None)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=20000)
        seed = done.seed
        assert isinstance(seed, int) and done.result["seed"] == seed
        assert done.result["counts"] == runs.run(BELL, shots=200, seed=seed).counts

    run_kernel(tmp_path, body)


def test_q_wait_returns_the_unfinished_job_when_its_timeout_passes(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)  # held
        async with aio.TaskGroup() as group:
            waiting = group.create_task(
                kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=250)
            )
            await asyncio.sleep(0)  # it waits now
            clock.advance(0.125)
            await asyncio.sleep(0)
            assert not waiting.done()  # half its time: still waiting
            clock.advance(0.125)
        assert waiting.result().state in ("QUEUED", "VALIDATING", "RUNNING")
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate, clock=clock)


def _with_set_policy(**args: object) -> dict[str, object]:
    graph = ghz_graph(2)
    graph["program"]["nodes"].insert(0, {"id": "hints", "op": "SET_POLICY", "args": args})
    return graph


def test_set_policy_in_the_program_sets_priority_deadline_and_code_distance(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        graph = _with_set_policy(priority=8, deadline=50, code_distance=5)
        job = await kernel.q_submit(session_id=sid, graph=graph, shots=10, seed=1)
        assert job.priority == 8
        policy = kernel.supervisor.job(job.job_id, "alice").policy
        assert policy.deadline == 1000.0 + 50 * kernel.config.epoch_ms / 1000
        assert policy.profile == "logical:surface_code(d=5)"
        explicit = await kernel.q_submit(
            session_id=sid, graph=graph, shots=10, seed=1, policy={"priority": 2}
        )
        assert explicit.priority == 2  # the submit's policy wins
        with pytest.raises(InvalidArgument) as err:
            await kernel.q_submit(session_id=sid, graph=_with_set_policy(priority=12), shots=1)
        assert err.value.details["node"] == "hints"
        with pytest.raises(ProgramError) as refused:  # beyond the machine's code
            await kernel.q_submit(session_id=sid, graph=_with_set_policy(code_distance=51), shots=1)
        assert "allows distances up to 50" in refused.value.message
        gate.open()
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.result["telemetry"]["profiles"] == ["logical:surface_code(d=5)"]
        await kernel.q_wait(session_id=sid, job_id=explicit.job_id, timeout_ms=60_000)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate, clock=clock)


def test_policy_profile_auto_is_a_coded_warning_when_every_qubit_names_a_profile(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        named = ghz_graph(2)
        for node in named["program"]["nodes"]:
            if node["op"] == "ALLOC_LQ":
                node["args"]["profile"] = "logical:surface_code(d=7)"
        auto = {"profile": "auto"}
        job = await kernel.q_submit(session_id=sid, graph=named, shots=10, seed=1, policy=auto)
        [notice] = job.warnings
        assert (notice.code, notice.name) == ("QC130", "profile-auto-unused")
        chosen = await kernel.q_submit(
            session_id=sid, graph=ghz_graph(2), shots=10, seed=1, policy=auto
        )
        assert chosen.warnings is UNSET
        plain = await kernel.q_submit(session_id=sid, graph=named, shots=10, seed=1)
        assert plain.warnings is UNSET
        for submitted in (job, chosen, plain):
            done = await kernel.q_wait(session_id=sid, job_id=submitted.job_id, timeout_ms=60_000)
            named_only = submitted is not chosen  # the qubits kept their own profile
            if named_only:
                assert done.result["telemetry"]["profiles"] == ["logical:surface_code(d=7)"]

    run_kernel(tmp_path, body)


def test_a_policy_profile_no_qubit_takes_is_a_coded_warning_qc131(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        named = ghz_graph(2)
        for node in named["program"]["nodes"]:
            if node["op"] == "ALLOC_LQ":
                node["args"]["profile"] = "logical:surface_code(d=7)"
        given = {"profile": "logical:surface_code(d=5)"}
        job = await kernel.q_submit(session_id=sid, graph=named, shots=10, seed=1, policy=given)
        [notice] = job.warnings
        assert (notice.code, notice.name) == ("QC131", "profile-unused")
        assert "logical:surface_code(d=5) applied to none" in notice.message
        taken = await kernel.q_submit(
            session_id=sid, graph=ghz_graph(2), shots=10, seed=1, policy=given
        )
        assert taken.warnings is UNSET
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.result["telemetry"]["profiles"] == ["logical:surface_code(d=7)"]
        await kernel.q_wait(session_id=sid, job_id=taken.job_id, timeout_ms=60_000)

    run_kernel(tmp_path, body)


# ----------------------------------------------------------------------------- sessions


def test_wrong_key_and_unknown_tenant_get_the_same_auth_error(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        with pytest.raises(AuthError) as wrong:
            await kernel.q_negotiate_caps(tenant="alice", key="nope", requested=[])
        with pytest.raises(AuthError) as unknown:
            await kernel.q_negotiate_caps(tenant="mallory", key="nope", requested=[])
        assert wrong.value.message == unknown.value.message

    run_kernel(tmp_path, body)


def test_negotiation_grants_the_intersection_and_reports_quota(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        reply = await kernel.q_negotiate_caps(
            tenant="carol", key="carol-key", requested=["CAP_ALLOC", "CAP_LINK"]
        )
        assert reply.granted == ["CAP_ALLOC"] and reply.denied == ["CAP_LINK"]
        assert reply.quota["max_queued_jobs"] == 3
        assert reply.expires_at > time.time()

    run_kernel(tmp_path, body)


def test_forged_expired_and_revoked_sessions_are_refused(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        head, payload, mac = sid.split(".")
        forged = f"{head}.{payload}.{'A' * len(mac)}"
        with pytest.raises(SessionError) as err:
            await kernel.q_list_jobs(session_id=forged)
        assert not isinstance(err.value, SessionExpired)
        with pytest.raises(SessionError):
            await kernel.q_list_jobs(session_id="not-a-token")
        kernel.revoke_session(sid)
        with pytest.raises(SessionError):
            await kernel.q_list_jobs(session_id=sid)

    run_kernel(tmp_path, body)

    clock = ManualClock()

    async def expired(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        clock.advance(0.125)
        await kernel.q_list_jobs(session_id=sid)  # alive until its time-to-live is over
        clock.advance(0.125)
        with pytest.raises(SessionExpired):
            await kernel.q_list_jobs(session_id=sid)

    run_kernel(tmp_path, expired, config=make_config(session_ttl_s=0.25), clock=clock)


def test_another_tenant_cannot_see_wait_on_or_cancel_a_job(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=1, seed=1)  # held
        job_id = job.job_id
        for call in (kernel.q_status, kernel.q_cancel, kernel.q_checkpoint, kernel.q_replay):
            with pytest.raises(NotFoundError) as err:
                await call(session_id=bob, job_id=job_id)
            assert err.value.message == f"no job {job_id!r}"
        with pytest.raises(NotFoundError):
            await kernel.q_wait(session_id=bob, job_id=job_id, timeout_ms=10)
        with pytest.raises(NotFoundError):
            await kernel.q_get_telemetry(session_id=bob, job_id=job_id)
        assert (await kernel.q_list_jobs(session_id=bob)).jobs == []
        assert (await kernel.q_status(session_id=alice, job_id=job_id)).state != "CANCELLED"
        await kernel.q_cancel(session_id=alice, job_id=job_id)

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate)


# ----------------------------------------------------------------------------- admission


def test_a_missing_capability_is_refused_at_submit_listing_it(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        magic = executor.load_program(EXAMPLES / "t_gate_injection.qvm.json")
        assert "CAP_MAGIC" in magic.required_caps
        with pytest.raises(CapabilityError) as err:
            await kernel.q_submit(session_id=sid, graph=magic.graph.to_json(), shots=10, seed=1)
        assert err.value.details["missing"] == ["CAP_MAGIC"]
        assert err.value.rpc_code == 1004
        assert (await kernel.q_list_jobs(session_id=sid)).jobs == []

    run_kernel(tmp_path, body)


def test_quota_and_admission_errors_are_answered_at_submit(tmp_path: Path) -> None:
    config = make_config()
    small = config_from_dict(
        {
            "machine": {"physical_qubits": 500},
            "tenants": {"alice": {"key": "alice-key", "caps": ["CAP_ALLOC"]}},
        }
    )

    async def body(kernel: Kernel) -> None:
        bob = await login(kernel, "bob")
        with pytest.raises(QuotaError) as err:
            await kernel.q_submit(session_id=bob, graph=ghz_graph(5), shots=10, seed=1)
        assert err.value.details["limit"] == "max_logical_qubits"
        carol = await login(kernel, "carol", ["CAP_ALLOC"])
        accepted = [
            await kernel.q_submit(session_id=carol, graph=BELL, shots=1, seed=1)
            for _ in range(2)  # both start (2 workers) and are held at the gate
        ]
        for job in accepted:  # waited for, not left to the loop's order of turns
            await wait_state(kernel, carol, job.job_id, "RUNNING")
        accepted += [
            await kernel.q_submit(session_id=carol, graph=BELL, shots=1, seed=1)
            for _ in range(3)  # 3 wait: the queue is full
        ]
        with pytest.raises(QuotaError) as err:
            await kernel.q_submit(session_id=carol, graph=BELL, shots=1)
        assert err.value.details["limit"] == "max_queued_jobs"
        for job in accepted:
            await kernel.q_cancel(session_id=carol, job_id=job.job_id)
        with pytest.raises(InvalidArgument):
            await kernel.q_submit(session_id=bob, graph=BELL, shots=0)
        with pytest.raises(InvalidArgument):
            await kernel.q_submit(session_id=bob, graph=BELL, policy={"colour": "red"})
        with pytest.raises(ProgramError) as err:
            await kernel.q_submit(session_id=bob, graph={"version": "0.2"})
        with pytest.raises(ProgramError) as err:
            broken = json.loads(json.dumps(BELL))
            broken["program"]["nodes"].append({"id": "x", "op": "APPLY_X", "vqs": ["q0"]})
            await kernel.q_submit(session_id=bob, graph=broken)
        assert err.value.details["findings"]

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, config=config, gate=gate)

    async def admission(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        with pytest.raises(AdmissionError) as err:
            await kernel.q_submit(session_id=sid, graph=ghz_graph(5), shots=10, seed=1)
        assert err.value.details["needed"] > err.value.details["total"] == 500

    run_kernel(tmp_path, admission, config=small)


# ----------------------------------------------------------------------------- cancel, limits


def test_cancel_of_a_running_job_kills_its_worker_and_frees_it_for_the_next_job(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=1)  # held
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        (held,) = kernel.pool.pids
        cancelled = await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        assert cancelled.state == "CANCELLED"
        assert held not in kernel.pool.pids  # killed at once, not left to finish
        gate.open()  # from now on every job runs
        small = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=3)
        done = await kernel.q_wait(session_id=sid, job_id=small.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"  # on the one worker: the replacement
        assert done.result["counts"] == runs.run(BELL, shots=100, seed=3).counts
        with pytest.raises(ProcessLookupError):
            os.kill(held, 0)  # the held worker is gone (and reaped)
        with pytest.raises(StateError):
            await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        assert (await kernel.q_status(session_id=sid, job_id=job.job_id)).result is None

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate)


def test_a_job_past_its_timeout_is_timed_out_and_killed(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=1, policy={"timeout_ms": 500}
        )  # held at the gate: it would never end on its own
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        clock.advance(0.25)
        await asyncio.sleep(0)
        assert (await kernel.q_status(session_id=sid, job_id=job.job_id)).state == "RUNNING"
        clock.advance(0.25)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=5000)
        assert done.state == "TIMED_OUT"
        assert "timeout" in done.error.message
        assert kernel.pool.busy() == 0

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate, clock=clock)


def test_each_running_job_times_out_at_its_own_timeout_a_shorter_one_started_later_first(
    tmp_path: Path,
) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        long = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=1, policy={"timeout_ms": 10_000}
        )  # both held at the gate: neither would end on its own
        await wait_state(kernel, sid, long.job_id, "RUNNING")
        short = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=2, policy={"timeout_ms": 1_000}
        )
        await wait_state(kernel, sid, short.job_id, "RUNNING")
        clock.advance(1)
        done = await kernel.q_wait(session_id=sid, job_id=short.job_id, timeout_ms=5000)
        assert done.state == "TIMED_OUT"
        status = await kernel.q_status(session_id=sid, job_id=long.job_id)
        assert status.state == "RUNNING"
        clock.advance(8.5)
        await asyncio.sleep(0)
        status = await kernel.q_status(session_id=sid, job_id=long.job_id)
        assert status.state == "RUNNING"  # 9.5 s: not yet
        clock.advance(0.5)
        done = await kernel.q_wait(session_id=sid, job_id=long.job_id, timeout_ms=5000)
        assert done.state == "TIMED_OUT" and "10 s" in done.error.message
        assert kernel.pool.busy() == 0

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=2, gate=gate, clock=clock)


def test_a_deadline_times_out_a_running_and_a_queued_job_at_its_time(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        at = clock.now() + 10
        first = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=1, policy={"deadline": at}
        )  # held on the only worker
        await wait_state(kernel, sid, first.job_id, "RUNNING")
        (held,) = kernel.pool.pids
        second = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=2, policy={"deadline": at + 5}
        )  # queued behind it
        clock.advance(8)
        await asyncio.sleep(0)
        states = [
            (await kernel.q_status(session_id=sid, job_id=job.job_id)).state
            for job in (first, second)
        ]
        assert states == ["RUNNING", "QUEUED"]  # neither deadline has come
        clock.advance(2)
        done = await kernel.q_wait(session_id=sid, job_id=first.job_id, timeout_ms=1000)
        assert done.state == "TIMED_OUT" and done.error.code == "QK302"
        assert held not in kernel.pool.pids  # its worker was killed
        clock.advance(5)  # the second one's deadline: it was queued or held by then
        done = await kernel.q_wait(session_id=sid, job_id=second.job_id, timeout_ms=1000)
        assert done.state == "TIMED_OUT" and done.error.code == "QK302"

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate, clock=clock)


def test_a_state_too_big_for_a_workers_memory_is_refused_at_submit(tmp_path: Path) -> None:
    """The memory model answers at submit (a worker's cap, kernel.worker_memory_mb), so a
    job the engine it names could never hold is not queued, started and failed later.
    (Unnamed, the router takes mps, which holds this low-entanglement state.)"""
    from qmk.errors import AdmissionError

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        big = slow_graph(25, 1)
        with pytest.raises(AdmissionError) as caught:
            await kernel.q_submit(
                session_id=sid,
                graph=big,
                shots=1,
                seed=1,
                policy={"noise": False, "engine": "statevector"},
            )
        assert "kernel.worker_memory_mb" in caught.value.message
        after = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
        done = await kernel.q_wait(session_id=sid, job_id=after.job_id, timeout_ms=5000)
        assert done.state == "COMPLETED"

    config = make_config(worker_memory_mb=400)
    run_kernel(tmp_path, body, config=config)


# ----------------------------------------------------------------------------- recovery

_CRASH_SCRIPT = """
import asyncio, json, sys
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel
from support.pools import Hooks

async def main():
    config = config_from_dict(json.loads(sys.argv[2]))
    gated = Hooks(gate=sys.argv[4]).factory()  # the tests' pool, held at the gate
    kernel = await Kernel.open(config, sys.argv[1], workers=1, pool_factory=gated)
    s = await kernel.q_negotiate_caps(tenant="alice", key="alice-key", requested=["CAP_ALLOC"])
    ids = []
    for i, graph in enumerate(json.loads(sys.argv[3])):
        job = await kernel.q_submit(session_id=s.session_id, graph=graph, shots=300, seed=i)
        ids.append(job.job_id)
    print(json.dumps(ids), flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_every_accepted_job_finishes_after_a_kill_9_and_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    raw = {
        "machine": {"physical_qubits": 200_000},
        "tenants": {"alice": {"key": "alice-key", "caps": ["CAP_ALLOC"], "max_queued_jobs": 50}},
    }
    graphs = [ghz_graph(3)] + [BELL, ghz_graph(3)] * 4
    with WorkerGate(tmp_path) as gate:  # the crashing kernel's jobs never get past it
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CRASH_SCRIPT,
                str(data),
                json.dumps(raw),
                json.dumps(graphs),
                str(gate.path),
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_us(),
            env=support_env(),
        )
        try:
            assert proc.stdout is not None
            ids = json.loads(proc.stdout.readline())
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel and its workers, all at once
            proc.wait()
    assert len(ids) == len(graphs)
    db = sqlite3.connect(f"file:{data / DB_FILE}?mode=ro", uri=True)
    try:
        states = [row[0] for row in db.execute("SELECT state FROM jobs")]
    finally:
        db.close()
    assert len(states) == len(ids) and set(states) <= {"QUEUED", "RUNNING"}  # none finished

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        for i, (job_id, graph) in enumerate(zip(ids, graphs, strict=True)):
            done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED", done
            expected = runs.run(graph, shots=300, seed=i).counts
            assert done.result["counts"] == expected

    run_kernel(tmp_path, body, config=config_from_dict(raw))
    assert verify(data).ok


def test_jobs_left_queued_by_close_run_after_reopen(tmp_path: Path) -> None:
    async def first(kernel: Kernel) -> list[str]:
        sid = await login(kernel, "alice")
        ids = [(await kernel.q_submit(session_id=sid, graph=ghz_graph(4), shots=1, seed=1)).job_id]
        ids += [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=s)).job_id
            for s in range(3)
        ]
        await wait_state(kernel, sid, ids[0], "RUNNING")  # held on the one worker at close
        return ids

    with WorkerGate(tmp_path) as gate:
        ids = run_kernel(tmp_path, first, workers=1, gate=gate)

    async def second(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        await kernel.q_cancel(session_id=sid, job_id=ids[0])  # recovered, held again
        gate.open()
        for seed, job_id in enumerate(ids[1:]):
            done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            assert done.result["counts"] == runs.run(BELL, shots=50, seed=seed).counts
        with pytest.raises(UnavailableError):
            await kernel.close()
            await kernel.q_list_jobs(session_id=sid)

    with WorkerGate(tmp_path / "data") as gate:
        run_kernel(tmp_path, second, workers=1, gate=gate)


# ----------------------------------------------------------------------------- checkpoints


def test_restore_and_replay_give_the_same_counts(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=ghz_graph(4), shots=400, seed=5)
        first = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=20000)
        with pytest.raises(StateError):
            await kernel.q_restore(session_id=sid, job_id=job.job_id)
        checkpoint = await kernel.q_checkpoint(session_id=sid, job_id=job.job_id)
        assert checkpoint.job_id == job.job_id and checkpoint.epoch >= 0
        restored = await kernel.q_restore(
            session_id=sid, job_id=job.job_id, checkpoint_id=checkpoint.checkpoint_id
        )
        assert restored.state == "QUEUED" and restored.result is None
        again = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=20000)
        assert again.result["counts"] == first.result["counts"]
        replay = await kernel.q_replay(session_id=sid, job_id=job.job_id)
        assert replay.job_id != job.job_id and replay.seed == 5
        third = await kernel.q_wait(session_id=sid, job_id=replay.job_id, timeout_ms=20000)
        assert third.result["counts"] == first.result["counts"]
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=job.job_id)
        assert telemetry.attempts == 2 and telemetry.telemetry["shots"] == 400
        overall = await kernel.q_get_telemetry(session_id=sid)
        assert overall.jobs_by_state == {"COMPLETED": 2}
        assert overall.shots_completed == 800
        with pytest.raises(NotFoundError):
            await kernel.q_restore(session_id=sid, job_id=job.job_id, checkpoint_id="ckpt_x")

    run_kernel(tmp_path, body)


def test_a_restore_queues_within_the_tenants_max_queued_jobs(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        carol = await login(kernel, "carol", ["CAP_ALLOC"])  # max_queued_jobs = 3
        first = await kernel.q_submit(session_id=carol, graph=BELL, shots=10, seed=1)
        gate.release(1)
        await kernel.q_wait(session_id=carol, job_id=first.job_id, timeout_ms=60_000)
        await kernel.q_checkpoint(session_id=carol, job_id=first.job_id)
        running = await kernel.q_submit(session_id=carol, graph=BELL, shots=1)
        await wait_state(kernel, carol, running.job_id, "RUNNING")  # held at the gate
        waiting = [await kernel.q_submit(session_id=carol, graph=BELL, shots=1) for _ in range(3)]
        held = [running, *waiting]
        # one runs, three wait: the queue is full
        with pytest.raises(QuotaError) as err:
            await kernel.q_restore(session_id=carol, job_id=first.job_id)
        assert err.value.details["limit"] == "max_queued_jobs"
        for job in held:
            await kernel.q_cancel(session_id=carol, job_id=job.job_id)
        restored = await kernel.q_restore(session_id=carol, job_id=first.job_id)
        assert restored.state == "QUEUED"
        gate.open()
        done = await kernel.q_wait(session_id=carol, job_id=first.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, workers=1, gate=gate)


def test_resource_query_reports_inventory_quota_and_usage(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=slow_graph(22, 1), shots=1, seed=1)
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        info = await kernel.q_resource_query(session_id=sid)
        machine = info.machine
        assert machine["physical_qubits_total"] == 200_000
        per_logical = machine["logical_model"]["physical_qubits_per_logical"]
        assert machine["physical_qubits_in_use"] >= 22 * per_logical
        assert info.usage["logical_qubits"] == 22 and info.usage["running_jobs"] == 1
        assert info.quota["max_logical_qubits"] == 30
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        info = await kernel.q_resource_query(session_id=sid)
        assert info.machine["physical_qubits_in_use"] == 0
        listed = await kernel.q_list_jobs(session_id=sid, state="CANCELLED")
        assert [j.job_id for j in listed.jobs] == [job.job_id]
        assert listed.jobs[0].result is UNSET

    with WorkerGate(tmp_path) as gate:  # the job stays RUNNING (held) until cancelled
        run_kernel(tmp_path, body, gate=gate)


class RefusingPool:
    """A pool of another kind (``Kernel.open(pool=...)``) whose cluster went away."""

    max_workers = 1

    def submit(self, fn: object, /, *args: object) -> Future[object]:
        raise RuntimeError("the cluster is gone")

    def cancel(self, future: Future[object], reason: str = "cancelled") -> bool:
        return False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def test_a_pool_that_refuses_work_fails_the_job_and_the_kernel_keeps_serving(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        kernel = await Kernel.open(make_config(), tmp_path / "data", pool=RefusingPool())
        try:
            sid = await login(kernel, "alice")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "FAILED" and done.error.code == "QK202"
            assert "the cluster is gone" in done.error.message
            assert (await kernel.q_list_jobs(session_id=sid)).jobs[0].state == "FAILED"
        finally:
            await kernel.close()

    asyncio.run(main())


def test_an_error_the_host_ends_on_as_the_kernel_closes_is_read_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task's error left unread is logged when the task is collected, at whatever
    moment that is: once, a full test run's collection landed inside an ``ast.parse``
    of another test, and the traceback's own parse broke it (Python 3.11). So the
    kernel reads its host's error even as it closes, and logs it there."""
    unread: list[dict[str, Any]] = []

    async def body(kernel: Kernel) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: unread.append(context))

        async def fails() -> None:
            raise sqlite3.OperationalError("attempt to write a readonly database")

        host = asyncio.ensure_future(fails())
        await asyncio.wait([host])
        await kernel.close()
        kernel._host_done(host)  # the host's done callback, on a host that failed closing
        del host
        gc.collect()

    caplog.set_level(logging.WARNING)
    run_kernel(tmp_path, body)
    assert unread == []
    assert "the kernel's host stopped on an error as it closed" in caplog.text
