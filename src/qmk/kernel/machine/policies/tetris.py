"""``tetris``: multi-resource packing as Grandl et al. publish it, the baseline of cluster
schedulers.

Grandl, Ananthanarayanan, Kandula, Rao and Akella, "Multi-resource Packing for Cluster
Schedulers" (SIGCOMM 2014), the heuristics of its section 3. A job here is one of the
paper's tasks (it runs whole, on one module), and its own job. Each term is the paper's:

- **Demands and fit** (packing for makespan). A job's demand vector is its peak use of
  each resource: its tiles; its factories' T states a cycle, the most any of its steps
  asks (``t / c``); the same states on the bus stretch beside it; the links' Bell pairs
  a cycle; the decoder's syndrome bits a cycle (its data tiles' and its peak
  measurements'). What is *free* is a resource's capacity less the peak demands of the
  jobs placed on it, as Tetris allocates peak demands. A job is considered only where
  its demand fits every resource (a demand past a whole resource asks the whole of it,
  so a job that alone asks more than the machine has still runs alone).
- **Alignment** (packing for makespan): ``a = sum over resources of (demand_r / C_r)
  (free_r / C_r)``, the dot product of the demand and the free resources, both
  normalized by capacity.
- **Remaining work** (average job completion time: shortest remaining time first over
  many resources): a job's work is its private cycles times its normalized demands
  summed, ``W = T sum_r demand_r / C_r``, and ``p = -W``: less work scores higher. The
  score is ``a + e p``, ``e = m a_bar / W_bar`` over the candidates of the decision
  (both terms of one size; ``m`` is :data:`REMAINING_WEIGHT`).
- **Fairness knob** (fairness): of the tenants with waiting jobs, only the
  ``ceil((1 - f) n)`` furthest from their fair share are considered (at least one):
  ``f = 0`` packs best, ``f -> 1`` is the most fair. Distance from fair share is the
  tenant's dominant share of the allocated resources over its quota weight (DRF, the
  fairness the paper pairs the knob with).

Tetris knows no error budgets.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.kernel.machine.policies.base import SchedulingPolicy

if TYPE_CHECKING:
    from qmk.kernel.machine.core import Scheduler
    from qmk.kernel.machine.jobs import MachineJob, Timeline
    from qmk.kernel.machine.supply import Bus
    from qmk.kernel.machine.tiles import TileRange

#: Queued jobs scored per decision (in arrival order).
DEPTH = 100
#: The multiplier ``m`` of the remaining-work term's weight (``e = m a_bar / W_bar``).
REMAINING_WEIGHT = 1.0
#: Timelines whose peaks are kept.
PEAKS = 256
#: The resources of a demand vector, in its order.
RESOURCES = ("tiles", "factories", "bus", "links", "decoder")


@dataclass(frozen=True, slots=True)
class Peak:
    """A job's peak demands that do not depend on where it sits: T states, Bell pairs and
    measurements a cycle, the most any step asks."""

    t_rate: float
    b_rate: float
    m_rate: float


def peak(tl: Timeline) -> Peak:
    """The most T states, Bell pairs and measurements a cycle any step of ``tl`` asks."""
    t = b = m = 0.0
    for _, c, _, ts, bs, ms in tl.steps:
        if c:
            t, b, m = max(t, ts / c), max(b, bs / c), max(m, ms / c)
        else:  # a step of no time draws what it needs at once: as much as there is
            t = math.inf if ts else t
            b = math.inf if bs else b
    return Peak(t, b, m)


def fits(vector: tuple[float, ...], free: tuple[float, ...], caps: tuple[float, ...]) -> bool:
    """Whether a demand fits what is free of every resource (to float residue of the
    allocations added and taken back)."""
    return all(d - f <= 1e-9 * c for d, f, c in zip(vector, free, caps, strict=True))


def machine_capacities(sched: Scheduler) -> tuple[float, ...]:
    """Each resource's capacity over the whole machine (a tenant's dominant share's
    denominators)."""
    machine = sched.machine
    lanes = (
        sum(m.routing_lanes for m in machine.modules)
        if all(m.routing_lanes > 0 for m in machine.modules)
        else 0
    )
    return (
        float(sum(r.spec.length for r in sched.ranges)),
        sched.t_capacity,
        float(lanes),
        machine.link.bell_pairs_per_cycle,
        machine.decoder_bits_per_cycle or 0.0,
    )


@dataclass(frozen=True, slots=True)
class Spot:
    """Where a job fits every resource: its tile range, bus stretch and demand vector
    there, and the tiles of the range its run must lie in (None: anywhere first fit
    puts it)."""

    area: TileRange
    segment: int
    vector: tuple[float, ...]
    window: tuple[int, int] | None


def _window(bus: Bus, segment: int, area: TileRange, tiles: int) -> tuple[int, int] | None:
    """The tiles of ``area`` a run of ``tiles`` must lie in for its middle tile to be
    beside bus ``segment`` (``[lo, hi)``; None: none of its runs can be)."""
    first = -(-segment * bus.tiles // bus.segments)  # the least middle in the segment
    past = (
        bus.tiles if segment == bus.segments - 1 else -(-(segment + 1) * bus.tiles // bus.segments)
    )
    offset, half = area.spec.offset, tiles // 2
    lo = max(0, first - half - offset)
    last_start = min(area.spec.length - tiles, past - 1 - half - offset)
    if last_start < lo:
        return None
    return lo, last_start + tiles


def _fits_in(sched: Scheduler, area: TileRange, window: tuple[int, int], tiles: int) -> bool:
    """Whether a free run of ``tiles`` lies within ``window`` of ``area``."""
    lo, hi = window
    sched.floorplan.hold(area, 0, lo)
    sched.floorplan.hold(area, hi, area.spec.length - hi)
    try:
        return area.tree.first_fit(tiles) is not None
    finally:
        sched.floorplan.release_holds()


class Tetris(SchedulingPolicy):
    """Multi-resource packing (Grandl et al., SIGCOMM 2014): alignment plus remaining work.

    Args:
        fairness: the knob ``f`` in ``[0, 1)`` (module docstring); 0 considers every
            tenant.
    """

    name = "tetris"

    def __init__(self, fairness: float = 0.0) -> None:
        if not 0.0 <= fairness < 1.0:
            raise ValueError(f"tetris fairness knob f is {fairness}: it lies in [0, 1)")
        self.fairness = fairness
        #: each placed job's demand vector and where it draws: (module, bus segment)
        self._placed: dict[MachineJob, tuple[tuple[float, ...], int, int]] = {}
        #: each timeline's peaks by its id, the timeline held so the id stays its own
        #: (at most :data:`PEAKS` of them: a live kernel's timelines come and go)
        self._peaks: dict[int, tuple[Timeline, Peak]] = {}
        #: allocated peak demands: tiles, factories and bus by module (and segment),
        #: links and decoder machine-wide
        self._tiles: dict[int, float] = {}
        self._factories: dict[int, float] = {}
        self._bus: dict[tuple[int, int], float] = {}
        self._links = 0.0
        self._decoder = 0.0
        self._by_tenant: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ demands

    def capacities(self, sched: Scheduler, module: int) -> tuple[float, ...]:
        """``C_r`` of each resource for a job on ``module`` (0: not limited, not scored)."""
        tiles = sum(r.spec.length for r in sched.ranges if r.module == module)
        bus = sched.supply(module).bus.cap
        decoder = sched.machine.decoder_bits_per_cycle
        return (
            float(tiles),
            sched.factory_rate(module),
            0.0 if math.isinf(bus) else bus,
            sched.machine.link.bell_pairs_per_cycle,
            decoder or 0.0,
        )

    def demand(self, sched: Scheduler, job: MachineJob, module: int) -> tuple[float, ...]:
        """``job``'s peak demand of each resource on ``module``, none past its capacity."""
        held = self._peaks.get(id(job.tl))
        if held is None:
            if len(self._peaks) >= PEAKS:
                self._peaks.clear()
            held = self._peaks[id(job.tl)] = (job.tl, peak(job.tl))
        found = held[1]
        caps = self.capacities(sched, module)
        bits = sched.machine.decoder_bits(job.data_tiles + found.m_rate)
        asks = (float(job.tiles), found.t_rate, found.t_rate, found.b_rate, bits)
        return tuple(min(a, c) for a, c in zip(asks, caps, strict=True))

    def free(self, sched: Scheduler, module: int, segment: int) -> tuple[float, ...]:
        """What is not allocated of each resource to a job on ``module`` beside bus
        ``segment``."""
        caps = self.capacities(sched, module)
        used = (
            self._tiles.get(module, 0.0),
            self._factories.get(module, 0.0),
            self._bus.get((module, segment), 0.0),
            self._links,
            self._decoder,
        )
        return tuple(max(0.0, c - u) for c, u in zip(caps, used, strict=True))

    # ------------------------------------------------------------------ deciding

    def decide(self, sched: Scheduler) -> None:
        while sched.queue:
            best = self._best(sched)
            if best is None:
                return
            job, spot = best
            if spot.window is not None:  # a bus stretch other than first fit's
                lo, hi = spot.window
                sched.floorplan.hold(spot.area, 0, lo)
                sched.floorplan.hold(spot.area, hi, spot.area.spec.length - hi)
            try:
                placed = sched.place(job, [spot.area])
            finally:
                sched.floorplan.release_holds()
            if not placed:  # where() found its tiles free a moment ago
                raise RuntimeError(f"tetris: job {job.id} fit but could not be placed")
            self._allocate(job, spot.vector, spot.area.module, spot.segment, +1)

    def _best(self, sched: Scheduler) -> tuple[MachineJob, Spot] | None:
        """The candidate of highest score ``a + e p`` (ties: the earliest arrival). Jobs
        of one footprint score alike, so only the earliest of each is weighed (the
        averages count every one)."""
        tenants = self.considered(sched)
        kinds: dict[int, list[Any]] = {}  # timeline id -> [earliest job, count]
        for job in itertools.islice((j for j in sched.queue if j.tenant in tenants), DEPTH):
            kind = kinds.get(id(job.tl))
            if kind is None:
                kinds[id(job.tl)] = [job, 1]
            else:
                kind[1] += 1
        scored = []
        for job, count in kinds.values():
            spot = self.where(sched, job)
            if spot is None:
                continue
            module = spot.area.module
            vector, caps = spot.vector, self.capacities(sched, module)
            free = self.free(sched, module, spot.segment)
            align = sum(d * f / (c * c) for d, f, c in zip(vector, free, caps, strict=True) if c)
            work = job.tl.private_cycles * sum(
                d / c for d, c in zip(vector, caps, strict=True) if c
            )
            scored.append((align, work, job, spot, count))
        if not scored:
            return None
        n = sum(s[4] for s in scored)
        a_bar = sum(s[0] * s[4] for s in scored) / n
        w_bar = sum(s[1] * s[4] for s in scored) / n
        e = REMAINING_WEIGHT * a_bar / w_bar if w_bar > 0 else 0.0
        top = max(scored, key=lambda s: (s[0] - e * s[1], -s[2].seq))
        return top[2], top[3]

    def where(self, sched: Scheduler, job: MachineJob) -> Spot | None:
        """Where ``job`` fits every resource now: the core's first fit if it does there,
        else the first tile range, then bus stretch, whose free resources hold its
        demand and whose tiles hold it with its middle tile beside that stretch (the
        paper's machines are here the modules and their bus stretches); None: nowhere."""
        first = sched.find(job)
        if first is None:
            return None
        area, at = first
        bus = sched.supply(area.module).bus
        segment = bus.segment_of(area.spec.offset + at, job.tiles)
        vector = self.demand(sched, job, area.module)
        caps = self.capacities(sched, area.module)
        if fits(vector, self.free(sched, area.module, segment), caps):
            return Spot(area, segment, vector, None)
        for area in sched.allowed_ranges(job):
            if area.tree.largest < job.tiles:
                continue
            module = area.module
            vector = self.demand(sched, job, module)
            caps = self.capacities(sched, module)
            bus = sched.supply(module).bus
            for segment in range(bus.segments):
                if not fits(vector, self.free(sched, module, segment), caps):
                    continue
                window = _window(bus, segment, area, job.tiles)
                if window is not None and _fits_in(sched, area, window, job.tiles):
                    return Spot(area, segment, vector, window)
        return None

    def considered(self, sched: Scheduler) -> set[str]:
        """The tenants whose jobs may start now: the ``ceil((1 - f) n)`` of the ``n``
        with waiting jobs furthest from their fair share (lowest dominant share over
        quota weight; ties: the oldest waiting job first)."""
        waiting = [(next(iter(q)).seq, t) for t, q in sched.queue_of.items() if q]
        if self.fairness == 0.0 or len(waiting) <= 1:
            return {t for _, t in waiting}
        keep = max(1, math.ceil((1.0 - self.fairness) * len(waiting)))
        total = machine_capacities(sched)

        def dominant(tenant: str) -> float:
            held = self._by_tenant.get(tenant)
            if held is None:
                return 0.0
            shares = [h / c for h, c in zip(held, total, strict=True) if c]
            return max(shares, default=0.0) / sched.weight(tenant)

        order = sorted((dominant(t), oldest, t) for oldest, t in waiting)
        return {t for _, _, t in order[:keep]}

    # ------------------------------------------------------------------ bookkeeping

    def _allocate(
        self, job: MachineJob, vector: tuple[float, ...], module: int, segment: int, sign: int
    ) -> None:
        tiles, factories, bus, links, decoder = (sign * v for v in vector)
        self._tiles[module] = self._tiles.get(module, 0.0) + tiles
        self._factories[module] = self._factories.get(module, 0.0) + factories
        self._bus[module, segment] = self._bus.get((module, segment), 0.0) + bus
        self._links += links
        self._decoder += decoder
        held = self._by_tenant.setdefault(job.tenant, [0.0] * len(RESOURCES))
        for i, v in enumerate(vector):
            held[i] += sign * v
        if sign > 0:
            self._placed[job] = (vector, module, segment)

    def ended(self, sched: Scheduler, job: MachineJob) -> None:
        placed = self._placed.pop(job, None)
        if placed is not None:
            vector, module, segment = placed
            self._allocate(job, vector, module, segment, -1)
