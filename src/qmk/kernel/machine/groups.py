"""Jobs a live machine's policy run decides as one group, without the event loop.

The common case of a kernel's small jobs: jobs whose steps draw on nothing shared
arrive at an idle machine, the next epoch boundary places them all, and they end
before anything else arrives. For such a **group**, what the scheduler's event loop
(:class:`~qmk.kernel.machine.core.Scheduler`) would do follows from the policy's
rules in a few lines: every member starts at the boundary the first arrival wakes
(``Scheduler._wake``), is placed in the pool :meth:`Scheduler.find` would choose
(nothing else holds tiles: the pools are free from their first tile), and ends where
its steps, run as one event, end (``Scheduler._run_whole``); its record is the one
``Scheduler._whole_done`` and ``_finish`` make. So :class:`Groups` keeps the group's
calls on the scheduler (its submits and the clock's moves) in a log instead of making
them, gives each member's record when the clock passes its end, in the canonical order
of ends (end, then arrival), and once the group has ended makes on the scheduler what
the group changed there, as the event loop would have left it: each tenant's
tile-cycles, the tiles gauge, the last decision, the event and job counters.

Anything else (a job that does not join: another tenant under fair-share, an arrival
while the group runs, a job that draws on a factory or a link; a cancel of a member;
any read of the scheduler's state: status, floorplan, :attr:`LiveMachine.sched`)
first makes the logged calls on the scheduler, in the order they came
(:meth:`Groups.settle`): the event loop then holds what it would have held, and the
records it makes again of members already given are dropped (they are the same). A
group's figures are the event loop's to the last bit; the tests compare the two on
many seeded workloads.

Which groups a policy decides as one (at a boundary where nothing else waits or runs,
each of the policies below places its queued jobs one by one in an order of its own):
one job alone under any policy; several under ``fair-share`` and ``partition`` when
they are one tenant's (arrival order), under ``backfill`` (arrival order), and under
``priority`` when they share a priority (arrival order; at most the jobs it looks at a
boundary). ``exclusive`` starts one job a boundary: its groups are of one.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.live import LiveMachine
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="gates", cycles=4),))
>>> live = LiveMachine(MachineSpec.simple(tiles=20, epoch_cycles=10), "fair-share")
>>> for i, at in enumerate((3, 5)):
...     live.admit(JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=at))
>>> [(r.id, r.start_cycle, r.end_cycle) for r in live.advance(20)]
[('j0', 10.0, 14.0), ('j1', 10.0, 14.0)]
>>> live._groups.decided_jobs  # neither went through the event loop
2
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qmk.kernel.machine.jobs import _NO_WAITS, JobRecord, JobSpec, Timeline
from qmk.kernel.machine.policies.backfill import Backfill
from qmk.kernel.machine.policies.exclusive import Exclusive
from qmk.kernel.machine.policies.fair_share import FairShare
from qmk.kernel.machine.policies.partition import Partition
from qmk.kernel.machine.policies.priority import DEPTH, Priority

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler

INF = math.inf

#: Per policy, who may join a group that holds ``first``: by tenant, by priority, any,
#: or none (the group is one job).
_JOINS: dict[type, str] = {
    Exclusive: "none",
    FairShare: "tenant",
    Partition: "tenant",
    Backfill: "any",
    Priority: "priority",
}

_ADVANCE = "advance"


class _Group:
    """Jobs placed at one boundary (module docstring): ``members`` are ``(spec,
    timeline, pool, end)`` in arrival order (the order the policy places them in)."""

    __slots__ = (
        "arrived",
        "boundary",
        "decided",
        "emitted",
        "first_end",
        "in_order",
        "last_end",
        "members",
        "now",
        "ops",
        "order",
        "used",
    )

    def __init__(self, boundary: float, now: float) -> None:
        self.boundary = boundary
        #: the scheduler's clock when the group began (its first submit)
        self.now = now
        self.members: list[tuple[JobSpec, Timeline, int, float]] = []
        #: the scheduler's calls not made: ("submit", spec, timeline) and
        #: (_ADVANCE, cycle), from the group's first submit to the next group's
        self.ops: list[tuple[Any, ...]] = []
        #: tiles placed from each pool's first tile, by pool index
        self.used: dict[int, int] = {}
        self.arrived = 0  # members whose arrival the clock has passed
        self.decided = False  # the clock has passed the boundary
        self.order: list[int] = []  # the members by end, then arrival, once decided
        self.emitted = 0  # records given
        self.first_end = INF
        self.last_end = -INF
        self.in_order = True  # the members' ends in arrival order (the order of ends)


class Groups:
    """The groups of a live machine's policy run, not yet made on its scheduler
    (module docstring).

    Args:
        sched: the policy's scheduler (a live kernel's: records, no history).
        logical_error_rate: a patch's per cycle (a record's idle error).
    """

    def __init__(self, sched: Scheduler, logical_error_rate: float) -> None:
        self.sched = sched
        self.rate = logical_error_rate
        joins = _JOINS.get(type(sched.policy))
        #: whether this scheduler's policy decides groups at all: one of the policies
        #: above, its hooks its own (none called), steps run whole (no decoder limit)
        self.enabled = (
            joins is not None
            and sched._whole
            and sched._records
            and sched._arrived is None
            and sched._ended_hook is None
        )
        self.joins = joins or "none"
        self.groups: list[_Group] = []
        #: members not ended, by id
        self.ids: dict[str, None] = {}
        #: the scheduler's clock as the event loop would have it, while groups wait
        self.now = 0.0
        #: jobs decided in groups and ended there (the event loop never ran them)
        self.decided_jobs = 0

    # ------------------------------------------------------------------ in

    def submit(self, spec: JobSpec, timeline: Timeline) -> bool:
        """Take ``spec``'s submit (checked, with its ``timeline``) into a group: whether
        it did (else the scheduler must take it, once :meth:`settle` made the groups'
        calls)."""
        first = timeline.first
        sched = self.sched
        if (
            first < 0
            or not (timeline.plain_after if sched._past_fences else timeline.plain_fenceless)[first]
        ):
            return False  # it draws on a factory or a link, or ends at once
        groups = self.groups
        if not groups:
            if sched._by_id or sched._heap or sched.done or spec.arrival_cycle < sched.now:
                return False  # the event loop holds something: it decides
            self.now = sched.now
            return self._begin(spec, timeline, sched._last_decision)
        if spec.arrival_cycle < self.now or spec.id in self.ids:
            return False  # the scheduler refuses it: it says why
        group = groups[-1]
        if not group.decided and spec.arrival_cycle <= group.boundary:
            return self._join(group, spec, timeline)
        if spec.arrival_cycle >= group.last_end:  # every group ended before it came
            return self._begin(spec, timeline, group.boundary)
        return False

    def _begin(self, spec: JobSpec, timeline: Timeline, decided: float) -> bool:
        """A group of ``spec`` (arriving where nothing is held), at the boundary its
        arrival wakes (``Scheduler._wake``; ``decided``: the last one decided)."""
        epoch = self.sched.machine.epoch_cycles
        at = float(math.ceil(float(spec.arrival_cycle) / epoch) * epoch)
        if at <= decided:
            at = decided + epoch
        group = _Group(at, self.now)
        if not self._join(group, spec, timeline):
            return False
        self.groups.append(group)
        return True

    def _join(self, group: _Group, spec: JobSpec, timeline: Timeline) -> bool:
        """``spec`` joins ``group`` if its policy places it with the others there, in
        arrival order (module docstring), and a pool can hold it then."""
        members = group.members
        if members:
            head = members[0][0]
            joins = self.joins
            if joins == "none":
                return False
            if joins == "tenant" and spec.tenant != head.tenant:
                return False
            if joins == "priority" and (spec.priority != head.priority or len(members) >= DEPTH):
                return False
        pool = self._pool(group, spec)
        if pool < 0:
            return False
        sched = self.sched
        need = spec.footprint.tiles
        group.used[pool] = group.used.get(pool, 0) + need
        end = timeline.run_from(timeline.first, group.boundary, sched._decoder_f)[1]
        members.append((spec, timeline, pool, end))
        if end < group.last_end:
            group.in_order = False  # it ends before one that came before it
        else:
            group.last_end = end
        if end < group.first_end:
            group.first_end = end
        group.ops.append(("submit", spec, timeline))
        self.ids[spec.id] = None
        if spec.arrival_cycle < sched.first_arrival:  # what its submit sets there
            sched.first_arrival = spec.arrival_cycle
            for gauge in sched.gauges.values():
                gauge.start(sched.first_arrival)
        return True

    def _pool(self, group: _Group, spec: JobSpec) -> int:
        """The pool :meth:`Scheduler.find` places ``spec`` in at the group's boundary
        after the members before it: of those it may use that can hold it, the one
        with the most free tiles (ties: the lowest index); -1: none can."""
        sched = self.sched
        pools = sched.pools
        allowed = sched._allowed
        need = spec.footprint.tiles
        used = group.used
        if allowed is None and len(pools) == 1:
            return 0 if pools[0].spec.length - used.get(0, 0) >= need else -1
        names = None if allowed is None else allowed(sched, spec)
        best, most = -1, -1
        for index in range(len(pools)) if names is None else names:
            free = pools[index].spec.length - used.get(index, 0)
            if free >= need and free > most:
                best, most = index, free
        return best

    # ------------------------------------------------------------------ time

    def advance(self, cycle: float) -> list[JobRecord]:
        """The clock moves to ``cycle``: the records of the members that ended by then
        (in the canonical order of ends); a group all of whose members ended is made
        on the scheduler (:meth:`_made`)."""
        groups = self.groups
        ops = groups[-1].ops
        if ops and ops[-1][0] == _ADVANCE:  # consecutive moves are one (the last)
            if cycle > ops[-1][1]:
                ops[-1] = (_ADVANCE, cycle)
        else:
            ops.append((_ADVANCE, cycle))
        if cycle != INF and cycle > self.now:
            self.now = cycle
        out: list[JobRecord] = []
        while groups:
            group = groups[0]
            members = group.members
            if not group.decided:
                arrived = group.arrived
                while arrived < len(members) and members[arrived][0].arrival_cycle <= cycle:
                    arrived += 1
                group.arrived = arrived
                if cycle < group.boundary:
                    break
                group.decided = True
                group.order = list(range(len(members))) if group.in_order else _by_end(members)
            order = group.order
            while group.emitted < len(order):
                spec, timeline, pool, end = members[order[group.emitted]]
                if end > cycle:
                    break
                out.append(self._record(spec, timeline, group.boundary, end, pool))
                del self.ids[spec.id]
                group.emitted += 1
            if group.emitted < len(order):
                break
            del groups[0]
            self._made(group)
            sched = self.sched
            if groups:
                sched.now = groups[0].now  # the next group's calls start there
            else:
                sched.now = max(self.now, group.last_end)
        return out

    def next_event(self) -> float:
        """The machine time of the event loop's next event (an arrival, the boundary,
        an end), as the scheduler would give it."""
        group = self.groups[0]
        if not group.decided:
            if group.arrived < len(group.members):
                return float(group.members[group.arrived][0].arrival_cycle)
            return group.boundary
        return group.members[group.order[group.emitted]][3]

    def next_end(self) -> float:
        """When the first member not yet given ends (the next record :meth:`advance`
        gives)."""
        group = self.groups[0]
        if not group.decided:
            return group.first_end
        return group.members[group.order[group.emitted]][3]

    def _record(
        self, spec: JobSpec, timeline: Timeline, start: float, end: float, pool: int
    ) -> JobRecord:
        """A member's record, as ``Scheduler._whole_done`` and ``_finish`` make it."""
        waits = _NO_WAITS.copy()
        waits["queue"] = start - spec.arrival_cycle
        waits_at: dict[int, float] = {}
        first = timeline.first
        if not timeline.exact_after[first]:
            for index, lost in timeline.walk(first, start, INF, self.sched._decoder_f)[0]:
                waits["decoder"] += lost
                waits_at[index] = waits_at.get(index, 0.0) + lost
        module = self.sched.pools[pool].module
        return JobRecord.made(spec, start, end, module, waits, waits_at, self.rate)

    def _made(self, group: _Group) -> None:
        """What ``group``'s submits, boundary and ends changed on the scheduler, made
        there: its counters, its last decision, each tenant's tile-cycles and the tiles
        gauge at the boundary and at each end (several changes at one time are one:
        the sums move by nothing between them)."""
        sched = self.sched
        members = group.members
        count = len(members)
        sched._count += count
        sched._seq += count + 1  # the arrivals and the boundary
        sched._last_decision = group.boundary
        self.decided_jobs += count
        tenants = sched._tenants
        gauge = sched.gauges["tiles"]
        at = group.boundary
        held = sched._held
        if count == 1:  # a job alone: placed, then ended
            spec, _, _, end = members[0]
            used, tiles = tenants[spec.tenant], spec.footprint.tiles
            used.change(at, tiles)
            gauge.set(at, held + tiles)
            used.change(end, -tiles)
            gauge.set(end, held)
            return
        placed: dict[str, int] = {}
        for spec, _, _, _ in members:
            placed[spec.tenant] = placed.get(spec.tenant, 0) + spec.footprint.tiles
        for tenant, tiles in placed.items():
            tenants[tenant].change(at, tiles)
            held += tiles
        gauge.set(at, held)
        order = group.order
        k = 0
        while k < count:
            at = members[order[k]][3]
            freed: dict[str, int] = {}
            while k < count and members[order[k]][3] == at:
                spec = members[order[k]][0]
                freed[spec.tenant] = freed.get(spec.tenant, 0) + spec.footprint.tiles
                k += 1
            for tenant, tiles in freed.items():
                tenants[tenant].change(at, -tiles)
                held -= tiles
            gauge.set(at, held)
        sched._held = held

    # ------------------------------------------------------------------ out

    def settle(self) -> None:
        """Make the groups' logged calls on the scheduler, in the order they came: it
        holds what the event loop would hold now; the records it makes again of the
        members already given are dropped."""
        groups, self.groups = self.groups, []
        if not groups:
            return
        self.ids.clear()
        sched = self.sched
        given = sum(group.emitted for group in groups)
        for group in groups:
            for op in group.ops:
                if op[0] == _ADVANCE:
                    sched.advance(op[1])
                else:
                    sched.submit(op[1], checked=True, timeline=op[2])
        again = sched.take_done()
        if len(again) != given:  # pragma: no cover - the replay is the same calls
            raise AssertionError(f"{len(again)} records made again, {given} given")


def _by_end(members: list[tuple[JobSpec, Timeline, int, float]]) -> list[int]:
    """The members' indices by end, then arrival (the canonical order of ends)."""
    ends = [member[3] for member in members]
    return sorted(range(len(ends)), key=lambda i: (ends[i], i))


__all__ = ["Groups"]
