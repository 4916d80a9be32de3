"""A job alone on the empty machine: the denominator of its slowdown, and the least
whole logical error any schedule can give it.

Alone, a job starts at once and every shared resource is its own (the factories' store
full, as an idle machine leaves it). So its run alone is the fastest the machine can
run it, and its error there the least. A job whose budget its run alone passes at every
placement the kernel may give it is refused (``QK505 over-budget``), since no policy
could keep it within, naming the resource that binds (:data:`BINDS`).

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

import msgspec

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.core import Scheduler
from qmk.kernel.machine.jobs import JobRecord, JobSpec, idle_error, whole_error
from qmk.kernel.machine.placement import Placement, placements
from qmk.kernel.machine.policies.exclusive import Exclusive
from qmk.kernel.machine.spec import DISTANCE_STEPS

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


#: Each resource that can keep a job past its budget: why, and the knob that fixes it
#: (the kernel's config keys; a workload's ``machine:`` reads the same). ``QK505`` names
#: the one that binds (:func:`refuse_over_budget`): ``memory`` where the job's own
#: memory and gate error passes its budget at every placement, else the cause its run
#: alone waited on most.
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
    "memory": (
        "its own memory and gate error passes it at every block and code distance the "
        "machine offers, before any wait",
        f"a larger code distance ([machine] profile; the kernel places a job up to "
        f"{DISTANCE_STEPS} steps of two above it, where its tiles fit) or qubits of lower "
        "error ([machine] qubit)",
    ),
}

#: The causes of waits, in :data:`BINDS`' order.
_WAITS = ("factory", "routing", "link", "decoder")


def binding(waits: dict[str, float]) -> str:
    """The cause of waits ``waits`` (a record's ``wait_cycles``) hold most cycles of;
    the first in :data:`BINDS`' order on a tie.

    >>> binding({"factory": 2.0, "routing": 10.0}), binding({})
    ('routing', 'factory')
    """
    return max(_WAITS, key=lambda cause: waits.get(cause, 0.0))


def _alone_at(machine: MachineSpec, spec: JobSpec, place: Placement) -> tuple[JobRecord, float]:
    """``spec`` alone at ``place``: its record and its whole error there."""
    record = run_alone(machine, msgspec.structs.replace(spec, footprint=place.footprint))
    idle = sum(v for k, v in record.wait_cycles.items() if k != "queue")
    added = idle_error(place.rate, place.footprint.logical_qubits, idle)
    return record, whole_error(place.own, added)


def refuse_over_budget(spec: JobSpec, alone: JobRecord, machine: MachineSpec | None = None) -> None:
    """Refuse ``spec`` if no placement keeps its whole logical error within its
    budget, even alone on the empty machine (``alone``: its run there as it came).

    Its run as it came is checked first. Where it passes, and ``machine`` is given, so
    is each placement the kernel may choose (:mod:`~qmk.kernel.machine.placement`)
    whose own error is within the budget, alone. The refusal names what binds
    (:data:`BINDS`): ``memory`` where no placement's own error is within, else the
    cause its run alone waited on most at the placement of least whole error.

    Raises:
        MachineError: ``QK505 over-budget`` naming the job, its budget, its least whole
            error, where, what binds (``binds``) and the knob that fixes it.
    """
    budget = spec.error_budget
    if budget is None or alone.total_logical_error <= budget:
        return
    best: tuple[float, str, JobRecord, float] = (
        alone.total_logical_error,
        f"{alone.block or 'its block'}/d={alone.code_distance}",
        alone,
        alone.own_logical_error,
    )
    least = (alone.own_logical_error, best[1])
    if machine is not None:
        largest = max((m.tiles for m in machine.modules), default=0)
        options = [p for p in placements(spec.footprint, machine) if p.footprint.tiles <= largest]
        fewest = min(options, key=lambda p: p.own, default=None)
        if fewest is not None:
            least = (fewest.own, fewest.label)
        for place in options:
            if place.own > budget or place.own >= best[0]:
                continue
            record, total = _alone_at(machine, spec, place)
            if total <= budget:
                return
            if total < best[0]:
                best = (total, place.label, record, place.own)
    total, where, record, own = best
    if least[0] > budget:
        total, where, own = least[0], least[1], least[0]  # (at least: before any wait)
        cause, detail = "memory", f"its own error is {own:.3g} at best, at {where}"
    else:
        cause = binding(record.wait_cycles)
        detail = f"{record.wait_cycles.get(cause, 0.0):.0f} of its cycles alone wait on {cause}"
    why, fix = BINDS[cause]
    raise MachineError.of(
        "over-budget",
        f"job {spec.id} (tenant {spec.tenant}): its whole logical error alone on the empty "
        f"machine is {total:.3g} at best ({where}: own {own:.3g}), past its error budget "
        f"{budget:g}: no schedule can meet it ({why}: {detail}); raise its error_budget "
        f"or give the machine {fix}",
        job=spec.id,
        error_budget=budget,
        idle_logical_error=alone.idle_logical_error,
        own_logical_error=own,
        total_logical_error=total,
        binds=cause,
    )
