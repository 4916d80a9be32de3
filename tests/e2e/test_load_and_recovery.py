"""A real ``qmk serve`` under load: concurrent clients, a kill -9 and restart, the audit log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

from qmk.client import AsyncClient, Client
from qmk.execution.runs import run
from qmk.qvm.files import read_graph
from support.kernel import WorkerGate
from support.paths import EXAMPLES

#: Small programs of every kind the kernel runs: Clifford (stim batch), non-Clifford with
#: feed-forward (trajectories), magic-state injection.
PROGRAMS = ("bell", "ghz", "teleport_cond_pauli", "t_gate_injection", "rev_segment")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


@cache
def graph(name: str) -> dict[str, Any]:
    return read_graph(str(EXAMPLES / f"{name}.qvm.json")).to_json()


@cache
def expected_counts(name: str, shots: int, seed: int) -> dict[str, int]:
    """What ``qmk run --json`` gives for the same program, shots and seed."""
    return run(graph(name), shots=shots, seed=seed).to_json()["counts"]


def job_spec(client: int, index: int) -> tuple[str, int, int]:
    """(program, shots, seed) of job ``index`` of client ``client``: all distinct."""
    return PROGRAMS[(client + index) % len(PROGRAMS)], 40 + index, 1000 * client + index


async def one_client(socket: Path, tenant: str, key: str, client: int, jobs: int) -> list[Any]:
    async with await AsyncClient.connect(str(socket), tenant=tenant, key=key) as conn:
        submitted = []
        for index in range(jobs):
            name, shots, seed = job_spec(client, index)
            job = await conn.q_submit(graph(name), shots, seed)
            assert job.state in {"QUEUED", "VALIDATING", "RUNNING", "COMPLETED"}
            submitted.append((job.job_id, name, shots, seed))
        finals = await asyncio.gather(
            *(conn.q_wait(job_id, timeout_ms=60_000) for job_id, *_ in submitted)
        )
        listed = await conn.q_list_jobs(None, 1000)
    return [submitted, finals, listed]


def test_eight_concurrent_clients_with_fifty_jobs_each_all_complete_correctly(shared_server):
    tenants = [("alice", "alice-secret-key"), ("dave", "dave-secret-key")]

    async def main() -> list[list[Any]]:
        return await asyncio.gather(
            *(
                one_client(shared_server.socket, *tenants[client % 2], client, 50)
                for client in range(8)
            )
        )

    started = time.perf_counter()
    outcomes = asyncio.run(main())
    elapsed = time.perf_counter() - started
    seen: set[str] = set()
    for submitted, finals, _ in outcomes:
        assert len(submitted) == 50 and len(finals) == 50
        for (job_id, name, shots, seed), job in zip(submitted, finals, strict=True):
            assert job.job_id == job_id
            assert job.state == "COMPLETED", job
            assert job.result["counts"] == expected_counts(name, shots, seed)
            assert job.seed == seed and job.shots == shots
            seen.add(job_id)
    assert len(seen) == 400  # every job id distinct, none lost
    by_tenant: dict[int, set[str]] = {0: set(), 1: set()}
    for client, (submitted, _, listed) in enumerate(outcomes):
        by_tenant[client % 2].update(job_id for job_id, *_ in submitted)
        listed_ids = {job.job_id for job in listed.jobs}
        assert {job_id for job_id, *_ in submitted} <= listed_ids
    for client, (_, _, listed) in enumerate(outcomes):  # nobody lists the other tenant's jobs
        assert not {job.job_id for job in listed.jobs} & by_tenant[1 - client % 2]
    print(f"400 jobs through 8 clients in {elapsed:.2f} s")


def test_kill_9_under_load_then_restart_loses_no_accepted_job(serve, tmp_path):
    # The workers hold every job at a gate and 10 are let through before the kill, so at
    # the kill 10 jobs are COMPLETED, two held on the workers and the rest QUEUED, on any
    # machine: the restart must keep the first and finish the others.
    with WorkerGate(tmp_path) as gate:
        server = serve("crash", workers=2, hooks=gate.hooks())
        accepted: list[tuple[str, str, int, int]] = []
        address = str(server.socket)
        with Client.connect(address, tenant="alice", key="alice-secret-key") as client:
            for index in range(60):
                name, shots, seed = job_spec(3, index)
                accepted.append(
                    (client.q_submit(graph(name), shots, seed).job_id, name, shots, seed)
                )
            gate.release(10)
            limit = time.monotonic() + 60  # only guards against a hang
            while (states := [client.q_status(j).state for j, *_ in accepted]).count(
                "COMPLETED"
            ) < 10:
                assert time.monotonic() < limit, states
                time.sleep(0.01)
        server.kill()
    print("states at the kill:", {state: states.count(state) for state in set(states)})
    # one tenant, one priority: jobs start in order, so the 10 are among the first 12
    assert states[:12].count("COMPLETED") == 10 and set(states[12:]) == {"QUEUED"}
    assert server.socket.exists()  # a crash leaves the socket file behind
    server.start()  # same data dir, same socket path, no gate: the stale socket is replaced
    with Client.connect(str(server.socket), tenant="alice", key="alice-secret-key") as client:
        finals = [client.q_wait(job_id, timeout_ms=60_000) for job_id, *_ in accepted]
    completed = 0
    for (job_id, name, shots, seed), job in zip(accepted, finals, strict=True):
        assert job.job_id == job_id and job.state in FINAL, job
        if job.state == "COMPLETED":
            completed += 1
            assert job.result["counts"] == expected_counts(name, shots, seed)
    assert completed == len(accepted), (states, [job.state for job in finals])
    assert server.stop() == 0
    assert not server.socket.exists()

    # The audit log of that whole history (crash included) verifies, and an edit does not.
    verify = [sys.executable, "-m", "qmk", "audit", "verify", str(server.data_dir)]
    ok = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "audit log ok" in ok.stdout
    log = server.data_dir / "audit.log"
    lines = log.read_bytes().split(b"\n")
    middle = next(i for i in range(len(lines) // 2, len(lines)) if b"alice" in lines[i])
    lines[middle] = lines[middle].replace(b"alice", b"alicf", 1)
    log.write_bytes(b"\n".join(lines))
    tampered = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert tampered.returncode == 1
    assert f"line {middle + 1}" in tampered.stderr
    missing = subprocess.run(
        [*verify[:-1], str(server.data_dir / "nope")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and missing.stderr.startswith("QW010 ")
