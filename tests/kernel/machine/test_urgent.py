"""A tenant's urgent job before its own less urgent ones, in machine time
(qmk.kernel.machine.policies.urgent): hand schedules under ``fidelity`` and ``fair-share``.

The machine: one module of 20 job tiles and 20 storage tiles, epochs of 10 cycles,
storage moves of 1 cycle, ``preempt_gap`` 3. Tenant a's long job (16 tiles, 8 of them
data) runs 1,000 cycles of gates with no fence of its own; the machine takes it with a
fence every 100 cycles (``footprints.placed_for``). Its urgent job (8 tiles, 5 cycles)
arrives at cycle 333 and does not fit beside it.
"""

from __future__ import annotations

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.machine.footprints import placed_for
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.simulate import PolicyRun, simulate
from qmk.kernel.machine.spec import MachineSpec

MACHINE = MachineSpec.simple(tiles=20, storage_tiles=20, epoch_cycles=10, preempt_gap=3)


def footprint(data: int, cycles: int) -> Footprint:
    return Footprint(
        target="x",
        logical_qubits=data,
        block="fast",
        data_tiles=data,
        routing_tiles=data,
        code_distance=9,
        steps=(Step(kind="gates", cycles=1, repeat=cycles),),
    )


def schedule(policy: str, priority: int) -> dict[str, dict[str, object]]:
    long = placed_for(footprint(8, 1000), MACHINE, 100)
    assert long.fences == 9
    jobs = [
        JobSpec(id="long", tenant="a", footprint=long, arrival_cycle=0, priority=0),
        JobSpec(
            id="urgent",
            tenant="a",
            footprint=footprint(4, 5),
            arrival_cycle=333,
            priority=priority,
        ),
    ]
    run = simulate(MACHINE, jobs, [policy])[policy]
    assert isinstance(run, PolicyRun)
    return {record.id: record.machine_json() for record in run.records}


@pytest.mark.parametrize("policy", ["fidelity", "fair-share"])
def test_an_urgent_job_moves_its_tenants_long_job_to_storage_at_its_next_fence(policy: str):
    # asked at the boundary of 340, the long job stops at its fence of 400 and moves to
    # storage (1 cycle); the urgent job starts at the boundary of 410 and ends at 415;
    # the long job is back at 420, 1 cycle out of storage: one stop, 21 cycles
    out = schedule(policy, priority=5)
    long, urgent = out["long"], out["urgent"]
    assert (urgent["start_cycle"], urgent["end_cycle"]) == (410, 415)
    assert urgent["wait_cycles"]["queue"] == 77 and urgent["preemptions"] == 0
    assert long["preemptions"] == 1 and long["wait_cycles"]["preempted"] == 21
    assert long["end_cycle"] == 1021


@pytest.mark.parametrize("policy", ["fidelity", "fair-share"])
def test_a_job_within_preempt_gap_of_its_tenants_long_job_waits_for_its_end(policy: str):
    out = schedule(policy, priority=2)
    long, urgent = out["long"], out["urgent"]
    assert long["preemptions"] == 0 and long["end_cycle"] == 1000
    assert urgent["start_cycle"] == 1000
