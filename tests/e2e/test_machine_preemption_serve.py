"""Through a real ``qmk serve``: another tenant's Bell job starts behind a long fence-less
job within the machine's fence bound, not after it.

The server is ``qmk serve`` itself (``python -m support.serve``) whose machine clock is
held at cycle 0 until both jobs are accepted (:class:`support.clocks.MachineClockGate`):
both arrive at cycle 0 in every run, on any computer. Then the clock runs at 2,000 cycles
a second; nothing below reads the wall clock.

The machine: one module of 50 job tiles and 40 storage tiles, epochs of 10 cycles, the
default policy, ``fence_cycles = 100``. alice's program has no fence: 500 layers of H
and CNOTs on 16 qubits (45 tiles, 32 of them data; 1,002 cycles alone). dave's Bell pair
takes 9 tiles: it does not fit beside hers. At cycle 0 alice's job starts (the tenants'
shares tie; her name first) and dave's is held out, so the machine asks hers to stop at
its next fence, which the kernel added at cycle 100. It moves to storage (1 cycle), dave's
starts at the next boundary, 110, and ends at 114; hers comes back at 120 (1 cycle out of
storage) and ends at 1,023: one preemption, 21 cycles of it, in her record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.qvm.asm import assemble
from support.clocks import HeldMachineServer, MachineClockGate
from support.kernel import TENANTS, config_toml, stop_all

QUBITS, LAYERS = 16, 500
FENCELESS = assemble(
    "\n".join(
        [
            ".caps CAP_ALLOC",
            "a: ALLOC_LQ " + ", ".join(f"vq:q{i}" for i in range(QUBITS)),
            *(
                line
                for layer in range(LAYERS)
                for line in (
                    *(f"h{layer}_{i}: APPLY_H vq:q{i}" for i in range(QUBITS)),
                    *(
                        f"c{layer}_{i}: APPLY_CNOT vq:q{i}, vq:q{i + 1}"
                        for i in range(0, QUBITS - 1, 2)
                    ),
                )
            ),
            *(f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(QUBITS)),
        ]
    )
).to_json()
BELL = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:a, vq:b\nh: APPLY_H vq:a\nc: APPLY_CNOT vq:a, vq:b\n"
    "ma: MEASURE_Z vq:a, out:ma\nmb: MEASURE_Z vq:b, out:mb"
).to_json()
FENCE_CYCLES, EPOCH_CYCLES = 100, 10
MACHINE = {"storage_tiles": 40, "epoch_cycles": EPOCH_CYCLES, "fence_cycles": FENCE_CYCLES}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HeldMachineServer]:
    config = tmp_path / "k.toml"
    config.write_text(config_toml(physical_qubits=16_000, machine=MACHINE))
    started = HeldMachineServer(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=2,
        log=tmp_path / "k.log",
        gate=MachineClockGate(tmp_path / "machine-clock", rate=2_000.0),
    )
    yield started.start()
    stop_all([started])
    assert started.gate is not None
    started.gate.close()


def client(server: HeldMachineServer, tenant: str) -> Client:
    return Client.connect(
        str(server.socket), tenant=tenant, key=TENANTS[tenant]["key"], caps=["CAP_ALLOC"]
    )


def test_a_bell_job_starts_behind_a_long_fenceless_job_of_another_tenant_at_its_next_fence(
    server: HeldMachineServer,
):
    assert server.gate is not None
    clients = {tenant: client(server, tenant) for tenant in ("alice", "dave")}
    try:
        programs = {"alice": FENCELESS, "dave": BELL}
        jobs = {
            tenant: c.q_submit(programs[tenant], shots=200, seed=7, policy={"noise": False})
            for tenant, c in clients.items()
        }
        server.gate.release()
        records: dict[str, Any] = {}
        for tenant, accepted in jobs.items():
            done = clients[tenant].q_wait(accepted.job_id, timeout_ms=120_000)
            assert done.state == "COMPLETED", done.error
            records[tenant] = (done.machine, done.result["counts"])
    finally:
        for c in clients.values():
            c.close()
    (alice, _), (dave, counts) = records["alice"], records["dave"]
    assert alice["arrival_cycle"] == dave["arrival_cycle"] == 0
    assert (alice["tiles"], dave["tiles"]) == (45, 9)
    # dave starts at the first boundary after alice's first added fence and her move out
    bound = FENCE_CYCLES + EPOCH_CYCLES
    assert (dave["start_cycle"], dave["end_cycle"]) == (110, 114) and dave["start_cycle"] <= bound
    assert dave["start_cycle"] < alice["end_cycle"] == 1023
    assert alice["preemptions"] == 1 and alice["wait_cycles"]["preempted"] == 21
    assert dave["preemptions"] == 0 and dave["wait_cycles"]["queue"] == 110
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 200  # a Bell pair
