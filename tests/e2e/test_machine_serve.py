"""A real ``qmk serve`` operates the shared machine: two tenants' jobs share one factory.

The server is ``qmk serve`` itself (``python -m support.serve``, on the tests' pool) whose
machine clock is held at cycle 0 until the test has had every job accepted
(:class:`support.clocks.MachineClockGate`): the arrivals are the same in every run, on
any computer, and no sleep races the machine. Then the clock runs (10^4 cycles a
second) and the jobs end in machine time, and then in their workers.

The machine: one factory copy of 1 T state a cycle, no store, epochs of 10 cycles. Each
job: 2 H cycles, 20 T cycles, 1 H cycle and a measurement (24 cycles alone).
Under ``fair-share`` both start at 0 and share the factory (half a state a cycle each):
both end at 44, after 20 cycles of ``factory`` waits. Under ``exclusive`` alice's runs
0-24 and dave's 30-54 (a queue wait of 30). The same arrivals give the same counts (noise
off) and makespans of 44 and 54.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.qvm.asm import assemble
from support.cli import qmk
from support.clocks import HeldMachineServer, MachineClockGate
from support.kernel import TENANTS, ServerProcess, config_toml, stop_all

T_HEAVY = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:q\nh: APPLY_H vq:q\n"
    + "\n".join(f"t{i}: APPLY_{'T' if i % 2 else 'TDG'} vq:q" for i in range(20))
    + "\nh2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m"
).to_json()
MACHINE = {
    "epoch_cycles": 10,
    "factory": {"copies": 1, "states_per_run": 1, "duration_cycles": 1, "store": 0},
}


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Any]:
    started: list[HeldMachineServer] = []

    def start(name: str, policy: str) -> HeldMachineServer:
        root = tmp_path / name
        root.mkdir()
        config = root / "k.toml"
        config.write_text(
            config_toml(physical_qubits=200_000, machine={**MACHINE, "policy": policy})
        )
        server = HeldMachineServer(
            socket=root / "k.sock",
            data_dir=root / "data",
            config=config,
            workers=2,
            log=root / "k.log",
            gate=MachineClockGate(root / "machine-clock", rate=10_000.0),
        )
        started.append(server)
        return server.start()

    yield start
    stop_all(started)
    for server in started:
        assert server.gate is not None
        server.gate.close()


def client(server: ServerProcess, tenant: str) -> Client:
    return Client.connect(
        str(server.socket), tenant=tenant, key=TENANTS[tenant]["key"], caps=["CAP_ALLOC"]
    )


def two_tenants(server: HeldMachineServer) -> dict[str, Any]:
    """alice's and dave's jobs, accepted while the machine's clock is held, then run."""
    assert server.gate is not None
    clients = {tenant: client(server, tenant) for tenant in ("alice", "dave")}
    try:
        jobs = {
            tenant: c.q_submit(T_HEAVY, shots=300, seed=seed, policy={"noise": False}).job_id
            for seed, (tenant, c) in enumerate(clients.items(), start=5)
        }
        queued = {t: clients[t].q_status(j).state for t, j in jobs.items()}
        server.gate.release()
        out: dict[str, Any] = {"queued": queued}
        for tenant, job_id in jobs.items():
            done = clients[tenant].q_wait(job_id, timeout_ms=120_000)
            assert done.state == "COMPLETED", done.error
            out[tenant] = {
                "job_id": job_id,
                "counts": done.result["counts"],
                "machine": clients[tenant].q_get_telemetry(job_id).machine,
            }
        return out
    finally:
        for c in clients.values():
            c.close()


def makespan(out: dict[str, Any]) -> int:
    machines = [out[t]["machine"] for t in ("alice", "dave")]
    return max(m["end_cycle"] for m in machines) - min(m["arrival_cycle"] for m in machines)


def test_two_tenants_jobs_show_the_shared_factorys_waits_and_policies_differ_only_in_time(
    held,
):
    shared = two_tenants(held("shared", "fair-share"))
    alone = two_tenants(held("alone", "exclusive"))
    assert shared["queued"] == alone["queued"] == {"alice": "QUEUED", "dave": "QUEUED"}
    for tenant in ("alice", "dave"):
        machine = shared[tenant]["machine"]
        assert machine["arrival_cycle"] == 0  # the same arrivals in both runs
        assert (machine["start_cycle"], machine["end_cycle"]) == (0, 44)
        assert machine["wait_cycles"]["factory"] == 20  # the shared factory, half each
        assert set(machine) >= {"tiles", "module", "idle_logical_error", "wait_cycles"}
        assert set(machine["wait_cycles"]) == {
            "queue",
            "factory",
            "routing",
            "link",
            "decoder",
            "preempted",
        }
        assert shared[tenant]["counts"] == alone[tenant]["counts"]  # noise off: the same
    assert alone["dave"]["machine"]["wait_cycles"]["queue"] == 30
    assert alone["dave"]["machine"]["wait_cycles"]["factory"] == 0
    assert (makespan(shared), makespan(alone)) == (44, 54)


def test_qmk_machine_status_shows_the_tenants_shares_and_only_the_callers_job_ids(
    held, monkeypatch: pytest.MonkeyPatch
):
    server = held("status", "fair-share")
    out = two_tenants(server)
    for name, value in server.env("alice").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("QMK_CAPS", "CAP_ALLOC")
    code, text, err = qmk("machine", "status", "--json")
    assert code == 0, err
    status = json.loads(text)
    assert status["policy"] == "fair-share" and status["jobs"]["done"] == 2
    shares = status["tenant_shares"]
    others = sorted(set(shares) - {"alice"})  # by label: alice reads no other's name
    assert shares["alice"] == pytest.approx(0.5)
    assert sorted(shares[t] for t in others) == pytest.approx([0.0, 0.0, 0.5])
    assert len(shares) == len(TENANTS)  # every tenant, those that ran nothing at 0
    assert not any(name in text for name in TENANTS if name != "alice")
    # Jain's index over the four tenants' equal quotas: x = (2, 2, 0, 0), J = 16 / (4 * 8)
    assert len(TENANTS) == 4 and status["jain_fairness"] == pytest.approx(0.5)
    # so far: the machine has been idle since the jobs ended at 44, its clock runs on
    assert 0 < status["utilization"]["factories"] <= 1 and status["now_cycle"] >= 44
    assert status["utilization_over_time"]["factories"][0][1] > 0
    assert out["dave"]["job_id"] not in text
    code, text, err = qmk("machine", "status")
    assert code == 0 and "fair-share" in text and "alice 50.0%" in text, err
