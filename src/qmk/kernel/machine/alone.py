"""A job alone on the empty machine: the denominator of its slowdown, and the least idle
error any schedule can give it.

Alone, a job starts at once and every shared resource is its own (the factories' store
full, as an idle machine leaves it). So its run alone is the fastest the machine can
run it, and its idle error there the least. A job whose budget its run alone passes is
refused (``QK505 over-budget``), since no policy could keep it within.

``exclusive`` runs one job at a time, so where each job's run alone *shifts* (run from
any later whole cycle, it is the same run moved there, to the bit), its makespan is a
scan over the arrivals (:func:`exclusive_makespan`), no event loop: the speedups'
denominator at the cost of one run alone per distinct footprint.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2, routing_tiles=2,
...                code_distance=9, steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=4),))
>>> slow = MachineSpec.simple(tiles=10, factory_rate=(1, 2), logical_error_rate=1e-3)
>>> record = run_alone(slow, JobSpec(id="j", tenant="a", footprint=fp, arrival_cycle=0))
>>> record.end_cycle - record.start_cycle, record.wait_cycles["factory"]
(8.0, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobRecord, JobSpec
from qmk.kernel.machine.policies.exclusive import Exclusive

if TYPE_CHECKING:
    from qmk.kernel.machine.spec import MachineSpec


def run_alone(machine: MachineSpec, spec: JobSpec) -> JobRecord:
    """``spec``'s record alone on the empty machine (arriving at cycle 0)."""
    sched = Scheduler(machine, Exclusive())
    sched.submit(JobSpec(id=spec.id, tenant=spec.tenant, footprint=spec.footprint, arrival_cycle=0))
    (record,) = sched.run()
    return record


#: Times below this are whole numbers of cycles exactly (float sums of them exact).
_EXACT = float(2**52)


def shifting_run(machine: MachineSpec, spec: JobSpec) -> tuple[JobRecord, bool]:
    """``spec``'s record alone on the empty machine, and whether that run *shifts*: each
    of its events falls on a whole cycle and each module's factory store is full again
    at its end. Then its run from any later whole cycle on the machine left as an
    idle machine leaves it, factories' stores full, computes the same differences of
    times, so it is this run moved there, to the bit."""
    sched = Scheduler(machine, Exclusive())
    sched.submit(JobSpec(id=spec.id, tenant=spec.tenant, footprint=spec.footprint, arrival_cycle=0))
    whole = True
    while (at := sched.next_event()) != math.inf:
        whole = whole and at.is_integer() and at < _EXACT
        sched.advance(at)
    (record,) = sched.run()
    end = record.end_cycle
    for module in machine.modules:
        supply = sched.supply(module.index)
        level = supply.store + (supply.rate - supply.consume) * (end - supply.last)
        whole = whole and min(supply.store_cap, level) >= supply.store_cap
    return record, whole


def exclusive_makespan(
    machine: MachineSpec, jobs: Sequence[JobSpec], runtimes: Mapping[int, float]
) -> float:
    """``exclusive``'s makespan of ``jobs`` without its event loop: each job, in arrival
    order, starts at the first epoch boundary at or after its arrival and the previous
    job's end (after the previous start, where that job took no time), and runs its
    runtime alone (``runtimes``, by footprint id: runs that shift, :func:`shifting_run`).
    The first boundary is the scheduler's rule (:meth:`Scheduler._wake`), so this is the
    event loop's makespan, to the bit.

    >>> from qmk.execution.footprint import Footprint, Step
    >>> from qmk.kernel.machine.spec import MachineSpec
    >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
    ...                routing_tiles=2, code_distance=9, steps=(Step(kind="idle", cycles=150),))
    >>> jobs = [JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=i) for i in range(2)]
    >>> exclusive_makespan(MachineSpec.simple(tiles=10, epoch_cycles=100), jobs, {id(fp): 150.0})
    350.0
    """
    if not jobs:
        return 0.0
    epoch = machine.epoch_cycles
    free = last = -math.inf
    for spec in sorted(jobs, key=lambda s: s.arrival_cycle):
        at = float(math.ceil(max(spec.arrival_cycle, free) / epoch) * epoch)
        if at <= last:
            at = last + epoch
        last = at
        free = at + runtimes[id(spec.footprint)]
    return float(free - min(spec.arrival_cycle for spec in jobs))


def runtime_alone(machine: MachineSpec, spec: JobSpec) -> float:
    """``spec``'s cycles from start to end alone on the empty machine."""
    record = run_alone(machine, spec)
    return record.end_cycle - record.start_cycle


#: Each cause a job alone can wait on: why it waits, and the knob that fixes it (the
#: kernel's config keys; a workload's ``machine:`` reads the same). ``QK505`` names the
#: one its run alone waited on most.
BINDS = {
    "factory": (
        "its T states come slower than it uses them",
        "faster factories ([machine.factory] protocol, copies; [machine] factory_share)",
    ),
    "routing": (
        "the routing bus beside it carries its T states slower than it uses them",
        "more bus lanes ([machine] routing_lanes, routing_segments)",
    ),
    "link": (
        "the links between modules give its Bell pairs slower than it uses them",
        "faster links ([machine.links] bell_pairs_per_cycle)",
    ),
    "decoder": (
        "the decoder decodes fewer syndrome bits than it sends",
        "a faster decoder ([machine] decoder_bits_per_cycle)",
    ),
}


def binding(waits: dict[str, float]) -> str:
    """The cause of :data:`BINDS` ``waits`` (a record's ``wait_cycles``) hold most
    cycles of; the first in :data:`BINDS`' order on a tie.

    >>> binding({"factory": 2.0, "routing": 10.0}), binding({})
    ('routing', 'factory')
    """
    return max(BINDS, key=lambda cause: waits.get(cause, 0.0))


def refuse_over_budget(spec: JobSpec, alone: JobRecord) -> None:
    """Refuse ``spec`` if its run alone (``alone``) passes its error budget.

    Raises:
        MachineError: ``QK505 over-budget`` naming the job, its budget, its least idle
            error, the resource its run alone waited on most (``binds``: a cause of
            :data:`BINDS`) and the knob that fixes it.
    """
    budget = spec.error_budget
    if budget is None or alone.idle_logical_error <= budget:
        return
    cause = binding(alone.wait_cycles)
    why, fix = BINDS[cause]
    raise MachineError.of(
        "over-budget",
        f"job {spec.id} (tenant {spec.tenant}): its idle logical error alone on the empty "
        f"machine is {alone.idle_logical_error:.3g}, past its error budget {budget:g}: no "
        f"schedule can meet it ({why}: {alone.wait_cycles.get(cause, 0.0):.0f} of its "
        f"cycles alone wait on {cause}); raise its error_budget or give the machine {fix}",
        job=spec.id,
        error_budget=budget,
        idle_logical_error=alone.idle_logical_error,
        binds=cause,
    )
