"""The machine scheduler's core: one machine's timeline in logical cycles, as a
discrete-event simulation over epochs and resource events.

The model (``docs/machine.md`` states it with its formulas):

- **Time** is machine time: logical cycles. The scheduler decides (who starts, who is
  preempted, who resumes) only at **epoch boundaries**, multiples of ``epoch_cycles``;
  between them jobs advance on their own. An arrival, an end or a stop at a fence makes
  the scheduler look at the next boundary; a boundary with nothing new is skipped, so
  the loop runs per event, never per cycle.
- **Placement.** A job holds ``footprint.tiles`` contiguous tiles of one module's line
  of job tiles (:class:`~qmk.kernel.machine.tiles.FreeTiles`: its free runs, first
  fit in ``O(log m)`` for ``m`` runs), from its start to its end. Among the pools
  that can hold it, the one with the most free tiles is chosen (ties: the lowest
  index).
- **Progress.** A running job works through its footprint's steps. A step of ``c``
  cycles, ``t`` T states and ``b`` Bell pairs a repetition runs at
  ``min(f / c, a_T / t, a_B / b)`` repetitions per cycle, where ``a_T`` and ``a_B`` are
  its shares of its module's T states and of the links' pairs, and ``f <= 1`` the
  decoder's throttle. Shares are max-min fair (water-filling): every job gets what it
  asks for, or an equal share of what is left. Between two events every rate is
  constant: the simulation is a fluid one, exact for the model.
- **Factories** deliver ``copies * states_per_run / duration_cycles`` states a cycle into
  a store of ``store`` states (full at cycle 0: an idle machine's factories have filled
  it). While the store holds states, jobs draw as fast as the module's routing carries
  them (``routing_lanes`` a cycle: a wait then is ``routing``); when it is empty, at the
  factories' rate (a wait is ``factory``).
- **Links** deliver ``bell_pairs_per_cycle`` pairs a cycle to all modules' jobs.
- **Decoder.** Each live data tile sends ``tile_bits_per_cycle`` syndrome bits a cycle,
  and each logical measurement as many again; when the sum passes
  ``decoder_bits_per_cycle``, every running job slows by ``f = capacity / demand``.
- **Waits** are what a job's time exceeds its private-machine cycles, by cause: ``queue``
  (arrival to start), ``factory``, ``routing``, ``link``, ``decoder``, ``preempted``.
- **Preemption** happens at a job's next fence: it stops there, its patches idle in
  place (tiles held) or moved to its module's storage tiles (``storage_move_cycles``
  each way, waits of ``preempted``; the tiles are freed). A stored job that resumes on
  another module migrates over the link: one Bell pair per logical qubit, at the link's
  share, plus its latency (a wait of ``link``).
- **Cancel.** A job cancelled at a cycle leaves the machine at that cycle (an event, so
  the boundary at that cycle sees it gone): its tiles, its storage room and its claims
  on the factories, links and decoder are freed, and it has no record. A job that ends
  at that very cycle ends first, with its record (the order below).
- **The canonical order.** Events at one machine time run in four classes: (1) the
  machine's own (a step's end, a factory store running dry, a capped T-state step's
  end), in the order they were set off; (2) jobs ending, in arrival order (the order
  they were submitted); (3) the outside world's, arrivals and cancels, in the order
  they came; (4) the boundary's decision. No class depends on when the caller pushed
  an outside event: a kernel's machine task may lag its clock, and a cancel stamped
  with a job's end cycle has the same outcome however far the machine had run when it
  came. Ends by arrival order also let a job's steps that draw on nothing shared run
  as one event (:meth:`Scheduler._run_whole`): its end keeps its place among the ends
  of its cycle. A job that ends the moment it is placed or resumed (nothing of it
  takes time) ends at once, at the boundary that placed it.

The scheduler keeps only the jobs that have not ended: a finished job's record is in
:attr:`Scheduler.done` until its reader takes it (:meth:`Scheduler.take_done`), and
each resource's utilization is a :class:`~qmk.kernel.machine.metrics.Gauge` (running
sums; its whole trace only for a run of a workload, ``history``).

Policies (:mod:`qmk.kernel.machine.policies`) decide at boundaries through this object's
public methods; the core knows none of them. The same arrivals and policy give the same
schedule on any machine: every tie is broken by arrival order (or by the canonical
order above), and float arithmetic runs in one order.

>>> from qmk.execution.footprint import Footprint, Step
>>> from qmk.kernel.machine.policies import policy
>>> from qmk.kernel.machine.spec import MachineSpec
>>> fp = Footprint(target="x", logical_qubits=2, block="fast", data_tiles=4,
...                routing_tiles=5, code_distance=9, steps=(Step(kind="idle", cycles=10),))
>>> sched = Scheduler(MachineSpec.simple(tiles=20), policy("fair-share"))
>>> for i in range(3):
...     sched.submit(JobSpec(id=f"j{i}", tenant="a", footprint=fp, arrival_cycle=0))
>>> [(r.id, r.start_cycle, r.end_cycle) for r in sched.run()]
[('j0', 0.0, 10.0), ('j1', 0.0, 10.0), ('j2', 10.0, 20.0)]
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.jobs import (
    DONE,
    QUEUED,
    RUNNING,
    STOPPED,
    STORED,
    Injected,
    Job,
    JobRecord,
    JobSpec,
    Timeline,
)
from qmk.kernel.machine.metrics import Gauge
from qmk.kernel.machine.policies.base import overrides
from qmk.kernel.machine.pools import Pool, PoolSpec
from qmk.kernel.machine.refusal import refuse_unplaceable
from qmk.kernel.machine.share import FactoryShare

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.machine.policies.base import Policy
    from qmk.kernel.machine.spec import MachineSpec

INF = math.inf
#: The classes of events at one machine time, in the order they run (the canonical
#: order, module docstring): the machine's own events (a step's end, a share's change),
#: in the order they were set off; jobs ending, in arrival order; the outside world's
#: events (arrivals, cancels), in the order they came; the boundary's decision.
_EVENT, _END, _OUTSIDE, _BOUNDARY = 0, 1, 2, 3


class _Tenant:
    __slots__ = ("held", "since", "used")

    def __init__(self) -> None:
        self.held = 0
        self.since = 0.0
        self.used = 0.0

    def at(self, now: float) -> float:
        return self.used + self.held * (now - self.since)

    def change(self, now: float, tiles: int) -> None:
        self.used = self.at(now)
        self.since = now
        self.held += tiles


class _Tenants(dict[str, _Tenant]):
    """Each tenant's tile-cycles, by name (one made at its first use)."""

    def __missing__(self, name: str) -> _Tenant:
        tenant = self[name] = _Tenant()
        return tenant


class _Ends(list[float]):
    """When jobs ended, in time order, until they are taken (a run without records)."""

    def take(self, until: float) -> int:
        """How many ended by ``until``, no longer kept."""
        if not self or self[-1] <= until:
            ended = len(self)
            self.clear()
        else:
            ended = bisect.bisect_right(self, until)
            del self[:ended]
        return ended


class _Unmeasured(Gauge):
    """A resource's use not measured: a run whose figures no one reads."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(width=1.0)

    def start(self, origin: float) -> None:
        pass

    def set(self, now: float, value: float) -> None:
        pass


class Scheduler:
    """One machine's schedule in machine time (module docstring).

    The event loop, the resource shares and the placements change the same
    jobs in one order at each event; split, each part would need the others' state.

    Args:
        machine: the machine.
        policy: who starts, who is preempted and who resumes at each boundary.
        tenants: each tenant's quota weight (fairness, partitions); a tenant not named
            has weight 1.
        history: keep every change of each resource's use (:attr:`gauges`' traces), for
            a run of a workload that ends; a live kernel's scheduler keeps none.
        records: keep each ended job's record and each resource's use (:attr:`done`,
            :attr:`gauges`); without, only when jobs ended (:meth:`take_ended`): a run
            whose count alone is read (a live kernel's shadow ``exclusive`` run).
        whole: a job's steps left that draw on nothing shared run as one event
            (:meth:`_run_whole`), on a machine without a decoder limit; every record,
            wait and figure is the one step by step (False: step by step, the
            reference a test compares with).
    """

    def __init__(
        self,
        machine: MachineSpec,
        policy: Policy,
        tenants: Mapping[str, float] | None = None,
        *,
        history: bool = True,
        records: bool = True,
        whole: bool = True,
    ) -> None:
        self.machine = machine
        self._records = records
        self._whole = whole and machine.decoder_bits_per_cycle is None
        #: when each job ended since take_ended took it, without records
        self.ends = _Ends()
        self.policy = policy
        #: the policy's hooks, None where it keeps Policy's (which do nothing)
        self._allowed = policy.allowed if overrides(policy, "allowed") else None
        self._arrived = policy.arrived if overrides(policy, "arrived") else None
        self._ended_hook = policy.ended if overrides(policy, "ended") else None
        self.weights = dict(tenants or {})
        self.now = 0.0
        self._heap: list[tuple[float, int, int, str, Any, int]] = []
        self._seq = 0
        self._count = 0
        #: the jobs that have not ended (or been cancelled), by id
        self._by_id: dict[str, Job] = {}
        #: each distinct footprint's timeline, while a job of it is here: id -> (the
        #: footprint, kept so its id stays its own; the timeline; jobs of it)
        self._timelines: dict[int, tuple[Footprint, Timeline, int]] = {}
        self.queue: dict[Job, None] = {}  # arrival order
        #: the queue by tenant and by priority, each in arrival order
        self.queue_of: dict[str, dict[Job, None]] = {}
        self.queue_at: dict[int, dict[Job, None]] = {}
        self.running: dict[Job, None] = {}  # start order (holding tiles, not stopped)
        self.stopped: dict[Job, None] = {}  # preempted: in place or in storage
        self.done: list[JobRecord] = []
        self._boundary_at: float | None = None
        self._last_decision = -INF
        self._modules = [FactoryShare.of(m) for m in machine.modules]
        specs = policy.pools(machine, self.weights) or [
            PoolSpec(module=m.index, offset=0, length=m.tiles) for m in machine.modules
        ]
        self.pools = [Pool(i, s) for i, s in enumerate(specs)]
        #: of every pool: the longest, and whether one's module has a factory
        self._largest = max((p.spec.length for p in self.pools), default=0)
        self._factories = any(self._modules[p.module].rate > 0 for p in self.pools)
        self._link_users: dict[Job, None] = {}
        self._link_consume = 0.0
        self._decoder_demand = 0.0
        self._decoder_f = 1.0
        #: no decoder limit: a step's measurements change no rate (:meth:`_step_done`)
        self._no_decoder = machine.decoder_bits_per_cycle is None
        self._tenants = _Tenants()
        self._held = 0
        self._holds: list[tuple[Pool, int, int]] = []
        #: each resource's use: tiles held, T states and Bell pairs drawn a cycle
        self.gauges = {
            name: Gauge(width=machine.epoch_cycles, keep=history) if records else _Unmeasured()
            for name in ("tiles", "factories", "links")
        }
        self.t_capacity = sum(m.rate for m in self._modules)
        self.first_arrival = INF
        #: a job's steps may run as one event past a fence: the policy never preempts
        self._past_fences = not policy.preempts
        policy.setup(self)

    # ------------------------------------------------------------------ arrivals and time

    def submit(
        self, spec: JobSpec, *, checked: bool = False, timeline: Timeline | None = None
    ) -> None:
        """A job arrives at ``spec.arrival_cycle`` (not before the clock); ``checked``:
        :meth:`check_placeable` (or a check it implies) passed already; ``timeline``:
        its footprint's, where the caller has it (else one is built, or shared with the
        jobs here of the same footprint object).

        Raises:
            MachineError: ``QK501 unplaceable``: no placement of the machine (under this
                policy) can ever hold it.
        """
        if spec.arrival_cycle < self.now:
            raise ValueError(f"job {spec.id} arrives at {spec.arrival_cycle}, before {self.now}")
        if spec.id in self._by_id:
            raise ValueError(f"job {spec.id} was submitted already")
        if not checked:
            self.check_placeable(spec)
        if timeline is None:  # one for the jobs here of its footprint object
            key = id(spec.footprint)
            held = self._timelines.get(key)
            timeline = Timeline(spec.footprint) if held is None else held[1]
            self._timelines[key] = (spec.footprint, timeline, 1 if held is None else held[2] + 1)
        job = Job(spec, timeline, self._count)
        self._count += 1
        self._by_id[spec.id] = job
        if spec.arrival_cycle < self.first_arrival:
            self.first_arrival = spec.arrival_cycle
            for gauge in self.gauges.values():
                gauge.start(self.first_arrival)
        self._push(float(spec.arrival_cycle), _OUTSIDE, "arrive", job, 0)

    def _forget(self, job: Job) -> None:
        """``job`` ended or was cancelled: nothing of it is kept (its record aside)."""
        job.state = DONE
        job.version += 1
        self._by_id.pop(job.id, None)
        key = id(job.spec.footprint)
        held = self._timelines.get(key)
        if held is not None and held[1] is job.tl:  # not one its submitter gave
            footprint, timeline, count = held
            if count > 1:
                self._timelines[key] = (footprint, timeline, count - 1)
            else:
                del self._timelines[key]

    def run(self) -> list[JobRecord]:
        """Advance until every submitted job has ended; the records, by end."""
        self.advance(INF)
        left = list(self._by_id.values())
        if left:
            raise MachineError.of(
                "unplaceable",
                f"job {left[0].id} (tenant {left[0].tenant}) never started under "
                f"{self.policy.name}: no placement came free for it",
                job=left[0].id,
            )
        return self.done

    def advance(self, until: float) -> None:
        """Process every event up to machine time ``until`` (the live kernel's clock)."""
        heap = self._heap
        while heap and heap[0][0] <= until:
            time, _, _, kind, obj, version = heapq.heappop(heap)
            self.now = time
            if kind == "step":
                if obj.version == version and obj.state == RUNNING:
                    self._step_done(obj)
            elif kind == "arrive":
                self._arrive(obj)
            elif kind == "whole":
                if obj.version == version and obj.state == RUNNING:
                    self._whole_done(obj)
            elif kind == "end":
                if obj.version == version and obj.state == RUNNING:
                    self._finish(obj)
            elif kind == "cancel":
                self._cancel(obj)
            elif kind == "capped-end":
                if obj.version == version:
                    obj.advance(time)
                    job = obj.next_finished()
                    if job is not None:
                        self._step_done(job)
            elif kind == "empty":
                if obj.version == version:
                    obj.empty(self)
            elif kind == "boundary":
                self._boundary(time)
        if until != INF and until > self.now:
            self.now = until

    def next_event(self) -> float:
        """The machine time of the next event (an arrival, a step's end, a boundary...;
        inf: none), up to which :meth:`advance` changes nothing."""
        return self._heap[0][0] if self._heap else INF

    def knows(self, job_id: str) -> bool:
        """Whether ``job_id`` is here and has not ended (an id not to submit again)."""
        return job_id in self._by_id

    def holding(self) -> int:
        """The jobs here that have not ended (queued, running, stopped, or not arrived)."""
        return len(self._by_id)

    def take_done(self) -> list[JobRecord]:
        """The records of the jobs that ended since the last call (they are kept no
        longer)."""
        done, self.done = self.done, []
        return done

    def take_ended(self, until: float = INF) -> int:
        """How many jobs ended since the last call (their records, if kept, are dropped);
        of a run without records, only those that ended by ``until``: the others are
        counted by a later call (a run its reader advanced ahead of the clock it reads
        at, :class:`~qmk.kernel.machine.live.LiveMachine`'s shadow)."""
        ended = self.ends.take(until) + len(self.done)
        self.done = []
        return ended

    def cancel(self, job_id: str, at: float) -> bool:
        """Cancel ``job_id`` at machine time ``at`` (not before the clock): at ``at`` it
        leaves the queue, or frees its tiles, its storage room and its claims on the
        factories, links and decoder (module docstring). Whether it was here, not ended
        (it may still end before ``at``: then it ends, with its record)."""
        job = self._by_id.get(job_id)
        if job is None:
            return False
        if at < self.now:
            raise ValueError(f"job {job_id} cancelled at {at}, before {self.now}")
        self._push(float(at), _OUTSIDE, "cancel", job, 0)
        return True

    def _cancel(self, job: Job) -> None:
        state = job.state
        if state == DONE:
            return  # it ended first, or an earlier cancel took it
        if state == QUEUED:
            if job in self.queue:
                self._dequeue(job)  # else: it has not arrived, and never will
        elif state == RUNNING:
            self._drop_claims(job)
            del self.running[job]
        else:  # stopped in place, or in storage
            del self.stopped[job]
        if job.stopping == "storage":  # the room promised for its move
            self._modules[job.module].storage_free += job.data_tiles
        elif job.storage_module >= 0:  # in storage, or on its way there
            self._modules[job.storage_module].storage_free += job.data_tiles
        job.stopping = None
        job.inject.clear()
        if job.pool >= 0:
            self._vacate(job)
        self._forget(job)
        if self._ended_hook is not None:
            self._ended_hook(self, job)
        self._wake()

    def _drop_claims(self, job: Job) -> None:
        """A running ``job`` stops drawing T states, Bell pairs and decoding now."""
        if job.t:
            self._modules[job.module].leave(self, job)
        else:
            self._settle(job)
        bits = job.m / job.c * self.machine.tile_bits_per_cycle if job.m and job.c else 0.0
        pairs = job.b
        job.t = job.b = job.m = 0
        job.c = 0
        job.version += 1  # its step's end no longer holds
        if pairs:
            self._link_users.pop(job, None)
            job.b_alloc = 0.0
            self._reshare_link()
        if bits:
            _decoder_add(self, -bits)

    def _push(self, time: float, klass: int, kind: str, obj: Any, version: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, klass, self._seq, kind, obj, version))

    def _arrive(self, job: Job) -> None:
        if job.state != QUEUED:
            return  # withdrawn before it arrived
        enqueue(self, job)
        if self._arrived is not None:
            self._arrived(self, job)
        self._wake()

    def _wake(self) -> None:
        """Look again at the next epoch boundary (the first not yet decided)."""
        if not (self.queue or self.stopped):
            return
        epoch = self.machine.epoch_cycles
        at = float(math.ceil(self.now / epoch) * epoch)
        if at <= self._last_decision:
            at = self._last_decision + epoch
        if self._boundary_at is not None and self._boundary_at <= at:
            return
        self._boundary_at = at
        self._push(float(at), _BOUNDARY, "boundary", None, 0)

    def _boundary(self, time: float) -> None:
        if self._boundary_at != time:
            return  # superseded by an earlier one
        self._boundary_at = None
        self._last_decision = time
        self.policy.decide(self)

    # ------------------------------------------------------------------ placement

    def allowed_pools(self, job: Job) -> list[Pool]:
        """The pools the policy lets ``job`` use (all, unless it says otherwise)."""
        names = None if self._allowed is None else self._allowed(self, job.spec)
        return self.pools if names is None else [self.pools[i] for i in names]

    def check_placeable(self, spec: JobSpec, timeline: Timeline | None = None) -> None:
        """Refuse ``spec`` if no placement of the machine (under this policy) can ever
        hold it (nothing changes); ``timeline``: its footprint's, where the caller has
        it (its totals are read there, not summed over the steps again).

        Raises:
            MachineError: ``QK501 unplaceable`` naming it.
        """
        fp = spec.footprint
        names = None if self._allowed is None else self._allowed(self, spec)
        if (
            names is None
            and timeline is not None
            and fp.data_tiles + fp.routing_tiles <= self._largest
            and (not timeline.t_total or self._factories)
            and (not timeline.b_total or self.machine.link.bell_pairs_per_cycle > 0)
        ):
            return  # every pool allowed: what the checks below find, in short
        refuse_unplaceable(self, spec, names)

    def find(self, job: Job, pools: Iterable[Pool] | None = None) -> tuple[Pool, int] | None:
        """Where ``job`` would be placed now: the allowed pool with the most free tiles
        that can hold it (ties: lowest index), first fit in it; None when none can."""
        best: tuple[Pool, int] | None = None
        need = job.tiles
        if pools is None:
            pools = self.pools if self._allowed is None else self.allowed_pools(job)
        for pool in pools:
            if pool.tree.largest < need:
                continue
            if best is None or pool.tree.free > best[0].tree.free:
                at = pool.tree.first_fit(need)
                if at is not None:
                    best = (pool, at)
        return best

    def place(self, job: Job, pools: Iterable[Pool] | None = None) -> bool:
        """Start a queued job (or resume a stored one) where :meth:`find` says; False
        when nothing can hold it now."""
        spot = self.find(job, pools)
        if spot is None:
            return False
        pool, at = spot
        if job.state == QUEUED:
            self._dequeue(job)
            self._occupy(job, pool, at)
            job.start = self.now
            job.waits["queue"] = self.now - job.arrival
            job.state = RUNNING
            self.running[job] = None
            self._enter(job)
            return True
        if job.state == STORED:
            self._unstore(job, pool, at)
            return True
        raise ValueError(f"job {job.id} is {job.state}: only queued or stored jobs are placed")

    def _dequeue(self, job: Job) -> None:
        del self.queue[job]
        of = self.queue_of[job.tenant]
        del of[job]
        if not of:
            del self.queue_of[job.tenant]
        at = self.queue_at[job.priority]
        del at[job]
        if not at:
            del self.queue_at[job.priority]

    def _occupy(self, job: Job, pool: Pool, at: int) -> None:
        pool.tree.take(at, job.tiles)
        pool.occupants[at] = job
        job.pool, job.pos, job.module = pool.index, at, pool.module
        self._tenants[job.tenant].change(self.now, job.tiles)
        self._held += job.tiles
        if self._records:
            self.gauges["tiles"].set(self.now, self._held)
        if not self._no_decoder:
            _decoder_add(self, job.data_tiles * self.machine.tile_bits_per_cycle)

    def _vacate(self, job: Job) -> None:
        pool = self.pools[job.pool]
        pool.tree.give(job.pos, job.tiles)
        del pool.occupants[job.pos]
        self._tenants[job.tenant].change(self.now, -job.tiles)
        self._held -= job.tiles
        if self._records:
            self.gauges["tiles"].set(self.now, self._held)
        if not self._no_decoder:
            _decoder_add(self, -job.data_tiles * self.machine.tile_bits_per_cycle)
        job.pool = -1

    def usage(self, tenant: str) -> float:
        """Tile-cycles ``tenant`` has held so far."""
        held = self._tenants.get(tenant)
        return 0.0 if held is None else held.at(self.now)

    def tenant_names(self) -> list[str]:
        """The tenants whose jobs have held tiles here."""
        return list(self._tenants)

    def held_tiles(self, tenant: str) -> int:
        held = self._tenants.get(tenant)
        return 0 if held is None else held.held

    def hold(self, pool: Pool, start: int, length: int) -> None:
        """Keep tiles ``start .. start+length-1`` of ``pool`` from placements until
        :meth:`release_holds` (a reservation for the head of a queue)."""
        self._holds += [(pool, at, size) for at, size in pool.hold(start, length)]

    def release_holds(self) -> None:
        for pool, start, length in self._holds:
            pool.tree.give(start, length)
        self._holds.clear()

    # ------------------------------------------------------------------ preemption

    def preempt(self, job: Job, *, storage: bool) -> bool:
        """Ask a running job to stop at its next fence: its patches stay in place, or move
        to its module's storage (room reserved now). False when it has no fence ahead,
        is already stopping, or storage has no room for its patches."""
        if job.state != RUNNING or job.stopping is not None or not job.has_fence_ahead():
            return False
        if job.chain_end >= 0:  # its steps past a fence run whole: its policy preempts none
            raise ValueError(f"job {job.id} runs its steps whole: {self.policy.name} preempts")
        if storage:
            module = self._modules[job.module]
            if module.storage_free < job.data_tiles:
                return False
            module.storage_free -= job.data_tiles
        job.stopping = "storage" if storage else "place"
        return True

    def unpreempt(self, job: Job) -> None:
        """Take back a stop not reached yet (its storage room is given back)."""
        if job.state == RUNNING and job.stopping is not None:
            if job.stopping == "storage":
                self._modules[job.module].storage_free += job.data_tiles
            job.stopping = None

    def resume(self, job: Job) -> bool:
        """Resume a stopped job: at once in place, or placed again from storage (on
        another module only where the link can carry its patches). False: no room."""
        if job.state == STOPPED:
            del self.stopped[job]
            job.wait("preempted", self.now - job.stop_at)
            job.state = RUNNING
            self.running[job] = None
            self._enter(job)
            return True
        if job.state == STORED:
            pools = self.allowed_pools(job)
            if self.machine.link.bell_pairs_per_cycle <= 0:
                pools = [p for p in pools if p.module == job.storage_module]
            return self.place(job, pools)
        return False

    def _unstore(self, job: Job, pool: Pool, at: int) -> None:
        del self.stopped[job]
        self._modules[job.storage_module].storage_free += job.data_tiles
        job.wait("preempted", self.now - job.stop_at)
        self._occupy(job, pool, at)
        move = self.machine.storage_move_cycles
        if pool.module != job.storage_module:
            pairs = job.spec.footprint.logical_qubits
            job.inject.append(Injected(self.machine.link.latency_cycles, pairs, "link", "migrate"))
        job.inject.append(Injected(move, 0, "preempted", "from-storage"))
        job.storage_module = -1
        job.state = RUNNING
        self.running[job] = None
        self._enter(job)

    def _stop(self, job: Job, *, stepped: bool = False) -> None:
        """``job`` reached the fence it was asked to stop at."""
        kind, job.stopping = job.stopping, None
        if kind == "storage":
            job.storage_module = job.module
            job.inject.append(
                Injected(self.machine.storage_move_cycles, 0, "preempted", "to-storage")
            )
            self._enter(job, stepped=stepped)
            return
        self._park(job, STOPPED)

    def _park(self, job: Job, state: str) -> None:
        del self.running[job]
        job.state = state
        job.stop_at = self.now
        job.version += 1
        self.stopped[job] = None
        self._wake()

    # ------------------------------------------------------------------ steps

    def _enter(self, job: Job, *, stepped: bool = False) -> None:
        """Load ``job``'s next step that takes time; stop at a fence it was asked to stop
        at; end the job after its last step (``stepped``: a step's end led here, and the
        job ends in the canonical order of ends, :meth:`_push_end`; else at once, at a
        boundary); then share the resources it draws on."""
        inject = job.inject
        while inject:
            step = inject[0]
            job.c, job.r, job.t, job.b, job.m = step.cycles, 1, 0, step.bell_pairs, 0
            job.forced = step.cause
            if step.cycles or step.bell_pairs:
                break
            self._injected_done(job)
            if job.state != RUNNING:
                return
        else:
            steps = job.tl.steps
            i = job.idx
            while True:
                if i >= len(steps):
                    job.idx = i
                    if stepped:
                        job.c = 0  # nothing left to rate (the decoder's re-rating)
                        job.version += 1
                        self._push_end(self.now, "end", job)
                    else:
                        self._finish(job)
                    return
                fence, c, r, t, b, m = steps[i]
                i += 1
                if fence:
                    if job.stopping is not None:
                        job.idx = i
                        self._stop(job, stepped=stepped)
                        return
                elif c or t or b:
                    break
            job.idx = i - 1
            job.c, job.r, job.t, job.b, job.m = c, r, t, b, m
            job.forced = None
        job.done = 0.0
        job.last = self.now
        job.t_alloc = job.b_alloc = 0.0
        job.cause = ""
        if job.m and job.c:
            _decoder_add(self, job.m / job.c * self.machine.tile_bits_per_cycle)
        if job.b:
            self._link_users[job] = None
            self._reshare_link()
        if job.t:
            self._modules[job.module].join(self, job, self._demand(job))
        elif (
            self._whole
            and job.forced is None
            and job.stopping is None
            and (job.tl.plain_after if self._past_fences else job.tl.plain_fenceless)[job.idx]
        ):
            self._run_whole(job)
        elif not job.b:
            self._set_rate(job, settled=True)  # nothing has passed since ``last``

    def _step_done(self, job: Job) -> None:
        """``job``'s current step ended now: leave its shares, go on to the next."""
        if not (job.t or job.b or job.inject) and (self._no_decoder or not job.m):
            # it drew on nothing shared (its rate its own): what settling it would do,
            # but only where a wait is left to record (a rate's rounding), then the next
            dt = self.now - job.last
            if dt > 0 and dt - job.rate * dt * job.c > 0:
                self._settle(job)
            job.last = self.now
            job.done = float(job.r)
            job.m = 0
            job.version += 1
            job.idx += 1
            self._enter(job, stepped=True)
            return
        if job.t:
            self._modules[job.module].leave(self, job)
        else:
            self._settle(job)
        job.done = float(job.r)
        if job.m and job.c:
            _decoder_add(self, -job.m / job.c * self.machine.tile_bits_per_cycle)
        if job.b:
            self._link_users.pop(job, None)
            job.b_alloc = 0.0
            self._reshare_link()
        job.t = job.b = job.m = 0
        job.version += 1
        if job.inject:
            self._injected_done(job)
            if job.state != RUNNING:
                return
        else:
            job.idx += 1
        self._enter(job, stepped=True)

    def _run_whole(self, job: Job) -> None:
        """Run ``job``'s steps from its current one on, which draw on nothing shared, as
        one event at the end their events give (:meth:`Timeline.run_from`): its end, in
        the canonical order of ends (:meth:`_push_end`), as step by step. Nothing else
        reads where it is meanwhile but :meth:`remaining` (:meth:`_whole_done`) and a
        preemption at a fence (there is none ahead, or the policy preempts none)."""
        job.rate = self._decoder_f / job.c
        job.cause = ""
        job.chain_end = job.tl.run_from(job.idx, self.now, self._decoder_f)[1]
        job.version += 1
        self._push_end(job.chain_end, "whole", job)

    def _whole_done(self, job: Job, until: float = INF) -> None:
        """``job``'s steps run whole ended now (or, ``until``: it goes on step by step
        from then, :meth:`remaining`): the waits their rounding left, as step by step
        (:meth:`_step_done`), where a record reads them; then its end (or the step
        running at ``until`` loaded as :meth:`_enter` loaded it, its end an event)."""
        tl = job.tl
        job.chain_end = -1.0
        if until == INF and (tl.exact_after[job.idx] or not self._records):
            running = None
        else:
            rounding, running = tl.walk(job.idx, job.last, until, self._decoder_f)
            for job.idx, lost in rounding:
                job.wait("decoder", lost)
        if running is None:
            job.idx = len(tl.steps)
            self._finish(job)
            return
        job.idx, job.last, end = running
        _, job.c, job.r, job.t, job.b, job.m = tl.steps[job.idx]
        job.done = 0.0
        job.rate = self._decoder_f / job.c
        job.version += 1
        self._push(end, _EVENT, "step", job, job.version)

    def _push_end(self, time: float, kind: str, job: Job) -> None:
        """``job`` ends at ``time``: after the machine's own events of that time, before
        the outside world's, and among the jobs ending then in arrival order (its seq in
        place of the push order: the canonical order of ends, module docstring)."""
        heapq.heappush(self._heap, (time, _END, job.seq, kind, job, job.version))

    def _injected_done(self, job: Job) -> None:
        step = job.inject.pop(0)
        job.forced = None
        if step.action == "to-storage":
            self._vacate(job)
            self._park(job, STORED)

    def _finish(self, job: Job) -> None:
        del self.running[job]
        job.end = self.now
        self._forget(job)
        self._vacate(job)
        if self._records:
            self.done.append(JobRecord.of(job, self.machine.logical_error_rate))
        else:
            self.ends.append(self.now)
        if self._ended_hook is not None:
            self._ended_hook(self, job)
        if self.queue or self.stopped:
            self._wake()

    # ------------------------------------------------------------------ rates and shares

    def _settle(self, job: Job) -> None:
        """Bring an uncapped ``job``'s progress and waits up to now at its current rate."""
        dt = self.now - job.last
        if dt <= 0:
            return
        progress = job.rate * dt
        job.done += progress
        job.t_used += progress * job.t
        job.b_used += progress * job.b
        if job.forced is not None:
            job.wait(job.forced, dt)
        else:
            lost = dt - progress * job.c
            if lost > 0:
                throttled = dt * (1.0 - self._decoder_f) if job.c else 0.0
                decoder = min(lost, throttled)
                job.wait("decoder", decoder)
                if lost - decoder > 0:
                    job.wait(job.cause or "decoder", lost - decoder)
        job.last = self.now

    def _set_rate(self, job: Job, *, settled: bool = False) -> None:
        """Settle ``job`` (unless ``settled``), set its rate (its cycles under the
        decoder's throttle, or its share of the link if less; an uncapped T user gets
        all the states it asks for), and schedule its step's end."""
        if not settled:
            self._settle(job)
        f = self._decoder_f
        rate = f / job.c if job.c else INF
        job.cause = "decoder" if f < 1.0 else ""
        if job.b:
            by_b = job.b_alloc / job.b
            if by_b < rate:
                rate, job.cause = by_b, "link"
        job.rate = rate
        job.version += 1
        if rate > 0 and rate != INF:
            left = job.r - job.done
            at = self.now + (left if left > 0.0 else 0.0) / rate
            near = round(at)  # _snap, inline
            self._push(
                float(near) if abs(at - near) < 1e-7 else at, _EVENT, "step", job, job.version
            )
        elif rate == INF:
            self._push(self.now, _EVENT, "step", job, job.version)

    def _demand(self, job: Job) -> float:
        """T states a cycle ``job`` would draw if the factories kept up."""
        rate = self._decoder_f / job.c if job.c else INF
        if job.b:
            rate = min(rate, job.b_alloc / job.b)
        return job.t * rate

    # the Host protocol of qmk.kernel.machine.share

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None:
        self._push(time, _EVENT, kind, obj, version)

    def rate_job(self, job: Job) -> None:
        self._set_rate(job)

    def settle_job(self, job: Job) -> None:
        self._settle(job)

    def trace_t(self, delta: float) -> None:
        self.gauges["factories"].add(self.now, delta)

    def _reshare_link(self) -> None:
        users = list(self._link_users)
        cap = self.machine.link.bell_pairs_per_cycle
        demands = [job.b * (self._decoder_f / job.c if job.c else INF) for job in users]
        shares = _water_fill(demands, cap)
        consume = 0.0
        for job, share in zip(users, shares, strict=True):
            if share != job.b_alloc:
                if job.t:  # its T demand follows its share of the link
                    module = self._modules[job.module]
                    module.leave(self, job)
                    job.b_alloc = share
                    module.join(self, job, self._demand(job))
                else:
                    self._settle(job)
                    job.b_alloc = share
                    self._set_rate(job)
            consume += share
        if consume != self._link_consume:
            self._link_consume = consume
            self.gauges["links"].set(self.now, consume)

    def storage_free(self, module: int) -> int:
        """Storage tiles of ``module`` not held or promised."""
        return self._modules[module].storage_free

    def factory_rate(self, module: int) -> float:
        """T states a cycle ``module``'s factories make."""
        return self._modules[module].rate

    def t_starved(self, module: int) -> bool:
        """Whether jobs of ``module`` now get fewer T states than they ask for."""
        return self._modules[module].starved

    def remaining(self, job: Job) -> float:
        """``job``'s private cycles left, its progress brought up to now."""
        if job.state == RUNNING:
            if job.chain_end >= 0:  # its steps run whole: step by step from here
                if job.chain_end <= self.now:
                    # placed now, its steps take no time: its end is an event at now,
                    # as step by step (ended here, it would leave its tiles mid-decision)
                    return 0.0
                self._whole_done(job, self.now)
            if job.capped:
                module = self._modules[job.module]
                module.advance(self.now)
                module.settle(self, job)
            else:
                self._settle(job)
        return job.remaining()


def _decoder_add(sched: Scheduler, bits: float) -> None:
    """Change ``sched``'s decoder's demand by ``bits`` a cycle; re-rate every job when
    its throttle changes."""
    capacity = sched.machine.decoder_bits_per_cycle
    if capacity is None:
        return
    sched._decoder_demand += bits
    live = sched._decoder_demand
    f = 1.0 if live <= capacity else capacity / live
    if f == sched._decoder_f:
        return
    for job in sched.running:
        if not job.t:
            sched._settle(job)
    for module in sched._modules:
        module.advance(sched.now)
        for job in list(module.capped):
            module.settle(sched, job)
    sched._decoder_f = f
    sched._reshare_link()
    for module in sched._modules:
        module.regroup(sched, {job: sched._demand(job) for job in module.users()})
    for job in sched.running:
        if not job.t and not job.b and job.c:
            sched._set_rate(job)


def enqueue(sched: Scheduler, job: Job) -> None:
    """``job`` joins ``sched``'s queue (and its queues by tenant and by priority), last."""
    sched.queue[job] = None
    of = sched.queue_of.get(job.tenant)
    if of is None:
        of = sched.queue_of[job.tenant] = {}
    of[job] = None
    at = sched.queue_at.get(job.priority)
    if at is None:
        at = sched.queue_at[job.priority] = {}
    at[job] = None


def _water_fill(demands: list[float], capacity: float) -> list[float]:
    """Max-min fair shares of ``capacity``: each gets its demand, or an equal share of
    what the smaller demands leave.

    >>> _water_fill([1.0, 5.0, 5.0], 7.0)
    [1.0, 3.0, 3.0]
    >>> _water_fill([1.0, 2.0], 7.0)
    [1.0, 2.0]
    """
    total = sum(demands)
    if total <= capacity:
        return list(demands)
    order = sorted(range(len(demands)), key=lambda i: demands[i])
    shares = [0.0] * len(demands)
    left, count = capacity, len(demands)
    for rank, i in enumerate(order):
        level = left / (count - rank)
        share = min(demands[i], level)
        shares[i] = share
        left -= share
    return shares


def runtime_alone(machine: MachineSpec, spec: JobSpec) -> float:
    """``spec``'s cycles from start to end alone on the empty machine (its store full):
    the denominator of its slowdown."""
    from qmk.kernel.machine.policies import policy

    sched = Scheduler(machine, policy("exclusive"))
    sched.submit(JobSpec(id=spec.id, tenant=spec.tenant, footprint=spec.footprint, arrival_cycle=0))
    (record,) = sched.run()
    return record.end_cycle - record.start_cycle
