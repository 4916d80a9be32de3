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

The issue's goal, at the kernel's defaults: a machine of Majorana qubits
(``qubit_maj_ns_e4``, 18 us a logical cycle, a module of 50 job tiles) whose clock runs in
real time, with the default ``fence_cycles`` (10,000) and ``epoch_cycles`` (100). alice's
fence-less program runs 60,002 cycles alone (1.08 s): a REPEAT of 30,000 H-S pairs on one
of her 16 qubits. dave's Bell pair starts at 10,100 (0.18 s of machine time): her first
added fence, the move to storage, the next boundary. Only a generous bound reads the wall
clock (his job done within a minute of the release).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.qvm.asm import assemble
from support.cli import qmk
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
LONG = assemble(
    "\n".join(
        [
            ".caps CAP_ALLOC",
            "a: ALLOC_LQ " + ", ".join(f"vq:q{i}" for i in range(QUBITS)),
            "r: REPEAT 30000 {",
            "  h: APPLY_H vq:q0",
            "  s: APPLY_S vq:q0",
            "}",
            *(f"m{i}: MEASURE_Z vq:q{i}, out:m{i}" for i in range(QUBITS)),
        ]
    )
).to_json()
FENCE_CYCLES, EPOCH_CYCLES = 100, 10
#: Alice's long job's own logical error is past the default budget (0.01) at every
#: placement this small machine offers: a budget it can keep, so that it runs.
BUDGET = 0.5
MACHINE = {
    "storage_tiles": 40,
    "epoch_cycles": EPOCH_CYCLES,
    "fence_cycles": FENCE_CYCLES,
    "error_budget": BUDGET,
}


def held_server(tmp_path: Path, machine: dict[str, Any], rate: float) -> HeldMachineServer:
    config = tmp_path / "k.toml"
    config.write_text(config_toml(physical_qubits=16_000, machine=machine))
    return HeldMachineServer(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=2,
        log=tmp_path / "k.log",
        gate=MachineClockGate(tmp_path / "machine-clock", rate=rate),
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HeldMachineServer]:
    started = held_server(tmp_path, MACHINE, 2_000.0)
    yield started.start()
    stop_all([started])
    assert started.gate is not None
    started.gate.close()


def client(server: HeldMachineServer, tenant: str) -> Client:
    return Client.connect(
        str(server.socket), tenant=tenant, key=TENANTS[tenant]["key"], caps=["CAP_ALLOC"]
    )


def test_a_bell_job_starts_behind_a_long_fenceless_job_of_another_tenant_at_its_next_fence(
    server: HeldMachineServer, monkeypatch: pytest.MonkeyPatch
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
    # qmk status says it: her stop at a fence, its cycles, the idle error they added
    # (the machine's figure; with noise off it changes no count)
    for name, value in server.env("alice").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    code, text, err = qmk("status", jobs["alice"].job_id)
    assert code == 0, err
    assert (
        "  machine: cycles 0 arrived, 0 started, 1023 ended; 45 tiles on module 0; "
        "waited preempted 21; preempted 1 time; idle error 0.000101\n"
    ) in text


#: The Majorana machine's logical cycle (qubit_maj_ns_e4, distance 9), in seconds.
MAJ_CYCLE_S = 18_000e-9


@pytest.fixture
def real_time_server(tmp_path: Path) -> Iterator[HeldMachineServer]:
    machine = {"qubit": "qubit_maj_ns_e4", "storage_tiles": 40, "error_budget": BUDGET}
    started = held_server(tmp_path, machine, 1 / MAJ_CYCLE_S)
    yield started.start()
    stop_all([started])
    assert started.gate is not None
    started.gate.close()


def test_at_the_defaults_a_bell_job_starts_within_a_second_behind_a_long_fenceless_job(
    real_time_server: HeldMachineServer,
):
    server = real_time_server
    assert server.gate is not None
    clients = {tenant: client(server, tenant) for tenant in ("alice", "dave")}
    try:
        programs = {"alice": LONG, "dave": BELL}
        jobs = {
            tenant: c.q_submit(programs[tenant], shots=100, seed=7, policy={"noise": False})
            for tenant, c in clients.items()
        }
        server.gate.release()
        released = time.monotonic()
        bell = clients["dave"].q_wait(jobs["dave"].job_id, timeout_ms=120_000)
        bell_wall = time.monotonic() - released
        long = clients["alice"].q_wait(jobs["alice"].job_id, timeout_ms=120_000)
    finally:
        for c in clients.values():
            c.close()
    assert bell.state == long.state == "COMPLETED", (bell.error, long.error)
    dave, alice = bell.machine, long.machine
    assert alice["arrival_cycle"] == dave["arrival_cycle"] == 0
    assert (alice["tiles"], dave["tiles"]) == (45, 9)
    # her job alone runs 60,002 cycles: over a second of machine time in real time
    assert 60_002 * MAJ_CYCLE_S > 1.0
    # dave's Bell pair starts at her first added fence (10,000), her move out (1 cycle),
    # the next boundary: 10,100 cycles, 0.18 s of machine time
    assert (dave["start_cycle"], dave["end_cycle"]) == (10_100, 10_104)
    assert dave["start_cycle"] * MAJ_CYCLE_S < 1.0
    # hers back at the boundary after his end (10,200) and 1 cycle out of storage: one
    # stop, 201 cycles, in her record
    assert alice["preemptions"] == 1 and alice["wait_cycles"]["preempted"] == 201
    assert alice["end_cycle"] == 60_002 + 201
    # the wall clock, generously (the machine's 0.18 s, a worker's start and run)
    assert bell_wall < 60.0
    assert set(bell.result["counts"]) <= {"00", "11"}
