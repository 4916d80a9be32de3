"""The kernel service in-process: real worker processes, real SQLite in tmp_path, no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

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
from qmk.execution import executor
from qmk.kernel.audit import verify
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import SYSCALLS, Kernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BELL = json.loads((EXAMPLES / "bell.qvm.json").read_text())


def make_config(**kernel: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, **kernel},
            "tenants": {
                "alice": {
                    "key": "alice-key",
                    "caps": ["CAP_ALLOC", "CAP_LINK", "CAP_MAGIC"],
                    "max_logical_qubits": 30,
                    "max_concurrent_jobs": 2,
                    "max_queued_jobs": 50,
                },
                "bob": {
                    "key": "bob-key",
                    "caps": ["CAP_ALLOC", "CAP_LINK"],
                    "max_logical_qubits": 4,
                    "max_queued_jobs": 50,
                },
                "carol": {"key": "carol-key", "caps": ["CAP_ALLOC"], "max_queued_jobs": 3},
            },
        }
    )


KEYS = {"alice": "alice-key", "bob": "bob-key", "carol": "carol-key"}


def run_kernel(
    tmp_path: Path,
    body: Callable[[Kernel], Awaitable[Any]],
    *,
    workers: int = 2,
    config: Any = None,
) -> Any:
    async def main() -> Any:
        kernel = await Kernel.open(config or make_config(), tmp_path / "data", workers=workers)
        try:
            return await body(kernel)
        finally:
            await kernel.close()

    return asyncio.run(main())


async def login(kernel: Kernel, tenant: str, caps: list[str] | None = None) -> str:
    reply = await kernel.q_negotiate_caps(
        tenant=tenant, key=KEYS[tenant], requested=caps or ["CAP_ALLOC", "CAP_LINK"]
    )
    return reply["session_id"]


def qubits(n: int) -> list[str]:
    return [f"q{i}" for i in range(n)]


def slow_graph(n: int = 22, rounds: int = 30) -> dict[str, Any]:
    """A statevector program that runs for seconds: T/H layers and CNOT ladders on n qubits."""
    q = qubits(n)
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": q}]
    for r in range(rounds):
        for i in range(n):
            nodes.append({"id": f"t{r}_{i}", "op": "APPLY_T", "vqs": [q[i]]})
            nodes.append({"id": f"h{r}_{i}", "op": "APPLY_H", "vqs": [q[i]]})
        for i in range(n - 1):
            nodes.append({"id": f"c{r}_{i}", "op": "APPLY_CNOT", "vqs": [q[i], q[i + 1]]})
    nodes.append({"id": "m", "op": "MEASURE_Z", "vqs": [q[0]], "produces": ["m"]})
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": q})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": q, "chs": [], "events": ["m"]},
        "caps": ["CAP_ALLOC"],
    }


def ghz_graph(n: int) -> dict[str, Any]:
    q = qubits(n)
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": q}]
    nodes.append({"id": "h", "op": "APPLY_H", "vqs": [q[0]]})
    nodes += [{"id": f"c{i}", "op": "APPLY_CNOT", "vqs": [q[i], q[i + 1]]} for i in range(n - 1)]
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": [q[i]], "produces": [f"m{i}"]} for i in range(n)
    ]
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": q})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": q, "chs": [], "events": [f"m{i}" for i in range(n)]},
        "caps": ["CAP_ALLOC"],
    }


def teleport_graph(peer: str, *, cnot_instead: bool = False) -> dict[str, Any]:
    """Teleport |+i> from the submitter's qubit to ``peer``'s qubit over channel ``link``."""
    alloc_b: dict[str, Any] = {
        "id": "alloc_b",
        "op": "ALLOC_LQ",
        "args": {"n": 1},
        "vqs": ["b"],
        "metadata": {"tenant": peer},
    }
    if cnot_instead:
        joint: dict[str, Any] = {"id": "entangle", "op": "APPLY_CNOT", "vqs": ["a", "b"]}
    else:
        joint = {
            "id": "open",
            "op": "OPEN_CHAN",
            "args": {"opts": {"fidelity": 1.0}},
            "vqs": ["a", "b"],
            "chs": ["link"],
        }
    nodes = [
        {"id": "alloc_a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["msg", "a"]},
        alloc_b,
        joint,
        {"id": "prep_h", "op": "APPLY_H", "vqs": ["msg"]},
        {"id": "prep_s", "op": "APPLY_S", "vqs": ["msg"]},
        {"id": "bell", "op": "MEASURE_BELL", "vqs": ["msg", "a"], "produces": ["x", "z"]},
        {"id": "fix_x", "op": "COND_PAULI", "args": {"mask": "X"}, "vqs": ["b"], "inputs": ["z"]},
        {"id": "fix_z", "op": "COND_PAULI", "args": {"mask": "Z"}, "vqs": ["b"], "inputs": ["x"]},
        {"id": "meas_b", "op": "MEASURE_Y", "vqs": ["b"], "produces": ["m_b"]},
        {"id": "free", "op": "FREE_LQ", "vqs": ["msg", "a", "b"]},
    ]
    if not cnot_instead:
        nodes.insert(6, {"id": "close", "op": "CLOSE_CHAN", "chs": ["link"]})
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {
            "vqs": ["msg", "a", "b"],
            "chs": [] if cnot_instead else ["link"],
            "events": ["x", "z", "m_b"],
        },
        "caps": ["CAP_ALLOC"] if cnot_instead else ["CAP_ALLOC", "CAP_LINK"],
    }


async def wait_state(kernel: Kernel, sid: str, job_id: str, state: str, limit: float = 10) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        job = await kernel.q_status(session_id=sid, job_id=job_id)
        if job["state"] == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"job never reached {state}")


# ----------------------------------------------------------------------------- basics


def test_kernel_offers_every_syscall_of_the_contract() -> None:
    assert len(SYSCALLS) == 14
    for name in SYSCALLS:
        assert asyncio.iscoroutinefunction(getattr(Kernel, name)), name


def test_completed_counts_equal_the_executor_for_the_same_graph_shots_and_seed(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        for graph, shots, seed in ((BELL, 1000, 7), (ghz_graph(3), 500, 11)):
            job = await kernel.q_submit(session_id=sid, graph=graph, shots=shots, seed=seed)
            assert job["state"] == "QUEUED" and job["job_id"].startswith("job_")
            done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
            assert done["state"] == "COMPLETED", done["error"]
            expected = executor.run(graph, shots=shots, seed=seed).to_json()
            assert done["result"]["counts"] == expected["counts"]
            assert done["result"]["events"] == expected["events"]
            assert done["result"]["engine"] == expected["engine"]

    run_kernel(tmp_path, body)


def test_a_null_seed_is_drawn_by_the_kernel_and_reported(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=None)
        done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
        seed = done["seed"]
        assert isinstance(seed, int) and done["result"]["seed"] == seed
        assert done["result"]["counts"] == executor.run(BELL, shots=200, seed=seed).counts

    run_kernel(tmp_path, body)


def test_q_wait_returns_the_unfinished_job_when_its_timeout_passes(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=slow_graph(), shots=1, seed=1)
        started = time.monotonic()
        waited = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=200)
        assert 0.15 < time.monotonic() - started < 2
        assert waited["state"] in ("QUEUED", "VALIDATING", "RUNNING")
        await kernel.q_cancel(session_id=sid, job_id=job["job_id"])

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
        assert reply["granted"] == ["CAP_ALLOC"] and reply["denied"] == ["CAP_LINK"]
        assert reply["quota"]["max_queued_jobs"] == 3
        assert reply["expires_at"] > time.time()

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

    async def expired(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        await asyncio.sleep(0.3)
        with pytest.raises(SessionExpired):
            await kernel.q_list_jobs(session_id=sid)

    run_kernel(tmp_path, expired, config=make_config(session_ttl_s=0.2))


def test_another_tenant_cannot_see_wait_on_or_cancel_a_job(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        job = await kernel.q_submit(session_id=alice, graph=slow_graph(), shots=1, seed=1)
        job_id = job["job_id"]
        for call in (kernel.q_status, kernel.q_cancel, kernel.q_checkpoint, kernel.q_replay):
            with pytest.raises(NotFoundError) as err:
                await call(session_id=bob, job_id=job_id)
            assert err.value.message == f"no job {job_id!r}"
        with pytest.raises(NotFoundError):
            await kernel.q_wait(session_id=bob, job_id=job_id, timeout_ms=10)
        with pytest.raises(NotFoundError):
            await kernel.q_get_telemetry(session_id=bob, job_id=job_id)
        assert (await kernel.q_list_jobs(session_id=bob))["jobs"] == []
        assert (await kernel.q_status(session_id=alice, job_id=job_id))["state"] != "CANCELLED"
        await kernel.q_cancel(session_id=alice, job_id=job_id)

    run_kernel(tmp_path, body)


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
        assert (await kernel.q_list_jobs(session_id=sid))["jobs"] == []

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
        slow = slow_graph()
        accepted = [
            await kernel.q_submit(session_id=carol, graph=slow, shots=1, seed=1)
            for _ in range(5)  # 2 start (2 workers), 3 wait: the queue is then full
        ]
        with pytest.raises(QuotaError) as err:
            for _ in range(3):
                accepted.append(await kernel.q_submit(session_id=carol, graph=slow, shots=1))
        assert err.value.details["limit"] == "max_queued_jobs"
        for job in accepted:
            await kernel.q_cancel(session_id=carol, job_id=job["job_id"])
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

    run_kernel(tmp_path, body, config=config)

    async def admission(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        with pytest.raises(AdmissionError) as err:
            await kernel.q_submit(session_id=sid, graph=ghz_graph(5), shots=10, seed=1)
        assert err.value.details["needed"] > err.value.details["total"] == 500

    run_kernel(tmp_path, admission, config=small)


# ----------------------------------------------------------------------------- cancel, limits


def test_cancel_of_a_running_job_frees_its_worker_within_one_second(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=slow_graph(), shots=1, seed=1, policy={"noise": False}
        )
        await wait_state(kernel, sid, job["job_id"], "RUNNING")
        await asyncio.sleep(0.3)  # well inside the simulation
        pids_before = set(kernel.pool.pids)
        started = time.monotonic()
        cancelled = await kernel.q_cancel(session_id=sid, job_id=job["job_id"])
        assert cancelled["state"] == "CANCELLED"
        small = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=3)
        done = await kernel.q_wait(session_id=sid, job_id=small["job_id"], timeout_ms=5000)
        elapsed = time.monotonic() - started
        assert done["state"] == "COMPLETED"
        assert elapsed < 1.0, elapsed
        while len(kernel.pool.pids) < 2:
            await asyncio.sleep(0.01)
        assert set(kernel.pool.pids) != pids_before  # the killed worker was replaced
        with pytest.raises(StateError):
            await kernel.q_cancel(session_id=sid, job_id=job["job_id"])

    run_kernel(tmp_path, body)


def test_a_job_past_its_timeout_is_timed_out_and_killed(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=slow_graph(), shots=1, seed=1, policy={"timeout_ms": 400}
        )
        done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=5000)
        assert done["state"] == "TIMED_OUT"
        assert "timeout" in done["error"]["message"]
        assert kernel.pool.busy() == 0

    run_kernel(tmp_path, body)


def test_a_job_over_the_worker_memory_cap_fails_with_memory_limit(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        big = slow_graph(25, 1)
        job = await kernel.q_submit(
            session_id=sid, graph=big, shots=1, seed=1, policy={"noise": False}
        )
        done = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
        assert done["state"] == "FAILED"
        assert done["error"]["message"].startswith("memory limit")
        after = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
        done = await kernel.q_wait(session_id=sid, job_id=after["job_id"], timeout_ms=5000)
        assert done["state"] == "COMPLETED"

    config = make_config(worker_memory_mb=400)
    run_kernel(tmp_path, body, config=config)


# ----------------------------------------------------------------------------- recovery

_CRASH_SCRIPT = """
import asyncio, json, sys
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel

async def main():
    config = config_from_dict(json.loads(sys.argv[2]))
    kernel = await Kernel.open(config, sys.argv[1], workers=1)
    s = await kernel.q_negotiate_caps(tenant="alice", key="alice-key", requested=["CAP_ALLOC"])
    ids = []
    for i, graph in enumerate(json.loads(sys.argv[3])):
        job = await kernel.q_submit(session_id=s["session_id"], graph=graph, shots=300, seed=i)
        ids.append(job["job_id"])
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
    graphs = [slow_graph(20, 2)] + [BELL, ghz_graph(3)] * 4
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_SCRIPT, str(data), json.dumps(raw), json.dumps(graphs)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        ids = json.loads(proc.stdout.readline())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the kernel and its workers, all at once
        proc.wait()
    assert len(ids) == len(graphs)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        for i, (job_id, graph) in enumerate(zip(ids, graphs, strict=True)):
            done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=30000)
            assert done["state"] == "COMPLETED", done
            if i:
                expected = executor.run(graph, shots=300, seed=i).counts
                assert done["result"]["counts"] == expected

    run_kernel(tmp_path, body, config=config_from_dict(raw))
    assert verify(data).ok


def test_jobs_left_queued_by_close_run_after_reopen(tmp_path: Path) -> None:
    async def first(kernel: Kernel) -> list[str]:
        sid = await login(kernel, "alice")
        ids = [
            (await kernel.q_submit(session_id=sid, graph=slow_graph(), shots=1, seed=1))["job_id"]
        ]
        ids += [
            (await kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=s))["job_id"]
            for s in range(3)
        ]
        return ids

    ids = run_kernel(tmp_path, first, workers=1)

    async def second(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        await kernel.q_cancel(session_id=sid, job_id=ids[0])
        for seed, job_id in enumerate(ids[1:]):
            done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=20000)
            assert done["state"] == "COMPLETED"
            assert done["result"]["counts"] == executor.run(BELL, shots=50, seed=seed).counts
        with pytest.raises(UnavailableError):
            await kernel.close()
            await kernel.q_list_jobs(session_id=sid)

    run_kernel(tmp_path, second, workers=1)


# ----------------------------------------------------------------------------- checkpoints


def test_restore_and_replay_give_the_same_counts(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=ghz_graph(4), shots=400, seed=5)
        first = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
        with pytest.raises(StateError):
            await kernel.q_restore(session_id=sid, job_id=job["job_id"])
        checkpoint = await kernel.q_checkpoint(session_id=sid, job_id=job["job_id"])
        assert checkpoint["job_id"] == job["job_id"] and checkpoint["epoch"] >= 0
        restored = await kernel.q_restore(
            session_id=sid, job_id=job["job_id"], checkpoint_id=checkpoint["checkpoint_id"]
        )
        assert restored["state"] == "QUEUED" and restored["result"] is None
        again = await kernel.q_wait(session_id=sid, job_id=job["job_id"], timeout_ms=20000)
        assert again["result"]["counts"] == first["result"]["counts"]
        replay = await kernel.q_replay(session_id=sid, job_id=job["job_id"])
        assert replay["job_id"] != job["job_id"] and replay["seed"] == 5
        third = await kernel.q_wait(session_id=sid, job_id=replay["job_id"], timeout_ms=20000)
        assert third["result"]["counts"] == first["result"]["counts"]
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=job["job_id"])
        assert telemetry["attempts"] == 2 and telemetry["telemetry"]["shots"] == 400
        overall = await kernel.q_get_telemetry(session_id=sid)
        assert overall["jobs_by_state"] == {"COMPLETED": 2}
        assert overall["shots_completed"] == 800
        with pytest.raises(NotFoundError):
            await kernel.q_restore(session_id=sid, job_id=job["job_id"], checkpoint_id="ckpt_x")

    run_kernel(tmp_path, body)


def test_resource_query_reports_inventory_quota_and_usage(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=slow_graph(), shots=1, seed=1)
        await wait_state(kernel, sid, job["job_id"], "RUNNING")
        info = await kernel.q_resource_query(session_id=sid)
        machine = info["machine"]
        assert machine["physical_qubits_total"] == 200_000
        per_logical = machine["logical_model"]["physical_qubits_per_logical"]
        assert machine["physical_qubits_in_use"] >= 22 * per_logical
        assert info["usage"]["logical_qubits"] == 22 and info["usage"]["running_jobs"] == 1
        assert info["quota"]["max_logical_qubits"] == 30
        await kernel.q_cancel(session_id=sid, job_id=job["job_id"])
        info = await kernel.q_resource_query(session_id=sid)
        assert info["machine"]["physical_qubits_in_use"] == 0
        listed = await kernel.q_list_jobs(session_id=sid, state="CANCELLED")
        assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
        assert "result" not in listed["jobs"][0]

    run_kernel(tmp_path, body)
