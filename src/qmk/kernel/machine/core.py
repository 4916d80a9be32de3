"""The machine scheduler's core: one machine's timeline in logical cycles, as a
discrete-event simulation over epochs and resource events.

The model (``docs/machine.md`` states it with its formulas):

- **Time** is machine time: logical cycles. The scheduler decides (who starts, who is
  preempted, who resumes) only at **epoch boundaries**, multiples of ``epoch_cycles``;
  between them jobs advance on their own. An arrival, an end or a stop at a fence makes
  the scheduler look at the next boundary; a boundary with nothing new is skipped, so
  the loop runs per event, never per cycle.
- **Placement.** A job holds ``footprint.tiles`` contiguous tiles of one tile range
  (:class:`~qmk.kernel.machine.tiles.TileRange`: its free runs, first fit in
  ``O(log m)``), from its start to its end. Among the ranges that can hold it, the one
  with the most free tiles is chosen (ties: the lowest index).
- **Progress.** A step of ``c`` cycles, ``t`` T states and ``b`` Bell pairs a
  repetition runs at ``min(f / c, a_T / t, a_B / b)`` repetitions a cycle. ``a_T`` and
  ``a_B`` are the job's shares of T states (:mod:`~qmk.kernel.machine.supply`: its bus
  segment, the store, the factories under the policy's rule) and of the links' pairs.
  ``f <= 1`` is its tenant's decoder throttle. Between two events every rate is constant:
  the simulation is a fluid one, exact for the model. :class:`~qmk.kernel.machine.rates.Rates`
  sets each running job's rate and records the waits it leaves; this module decides who
  runs.
- **Tenants share** the factories, the links and the decoder by their quota weights
  (weighted max-min), then a tenant's jobs max-min (unless the policy's supply rule is
  ``cost``: the factories' states to the job whose waiting costs most).
- **Waits** are what a job's time exceeds its private-machine cycles, by cause: ``queue``
  (arrival to start), ``factory``, ``routing``, ``link``, ``decoder``, ``preempted``.
  Every wait but ``queue`` idles the job's patches: its idle logical error.
- **Preemption** happens at a job's next fence: it stops there. Its patches idle in
  place (tiles held) or move to its module's storage tiles (``storage_move_cycles``
  each way, waits of ``preempted``; the tiles are freed). A stored job that resumes on
  another module migrates over the link: one Bell pair per logical qubit, at the link's
  share, plus its latency (a wait of ``link``).
- **Cancel.** A job cancelled at a cycle leaves the machine at that cycle: its tiles,
  its storage room and its claims on the factories, links and decoder are freed, and it
  has no record. A job that ends at that very cycle ends first, with its record.
- **The canonical order.** Events at one machine time run in four classes. (1) The
  machine's own (a step's end, a store running dry, a capped T-state step's end), in
  the order they were set off. (2) Jobs ending, in arrival order. (3) The outside
  world's, arrivals and cancels, in the order they came. (4) The boundary's decision.
  No class depends on when the caller pushed an outside event. Ends by arrival order
  also let a job's steps that draw on nothing shared run as one event
  (:meth:`Scheduler._run_whole`), a cache of the step-by-step run the scheduler keeps
  itself. A job that ends the moment it is placed ends at once, at that boundary.

Who is where lives in one value, :class:`~qmk.kernel.machine.state.MachineState`, which
only this module changes. Policies (:mod:`qmk.kernel.machine.policies`) read it and act
at boundaries through this object's public methods; the core knows none of them. The
same arrivals and policy give the same schedule on any machine: every tie is broken by
arrival order, and float arithmetic runs in one order.

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

import collections
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from qmk.kernel.errors import MachineError
from qmk.kernel.machine.jobs import Injected, JobRecord, JobSpec, MachineJob, Timeline
from qmk.kernel.machine.metrics import Gauge
from qmk.kernel.machine.rates import Rates
from qmk.kernel.machine.refusal import refuse_unplaceable
from qmk.kernel.machine.state import DONE, QUEUED, RUNNING, STOPPED, STORED, MachineState
from qmk.kernel.machine.supply import ModuleSupply
from qmk.kernel.machine.tiles import Floorplan, TileRange, TileRangeSpec

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.kernel.machine.policies.base import SchedulingPolicy
    from qmk.kernel.machine.spec import MachineSpec

INF = math.inf
#: The classes of events at one machine time, in the order they run (the canonical
#: order, module docstring).
_EVENT, _END, _OUTSIDE, _BOUNDARY = 0, 1, 2, 3


class Scheduler:
    """One machine's schedule in machine time (module docstring).

    Args:
        machine: the machine.
        policy: who starts, who is preempted and who resumes at each boundary, and how
            the factories' states are shared (its ``supply`` rule).
        tenants: each tenant's quota weight (shares of tiles, factories, links and the
            decoder); a tenant not named has weight 1.
        history: keep every change of each resource's use (:attr:`gauges`' traces), for
            a run of a workload that ends; a live kernel's scheduler keeps none.
        whole: a job's steps left that draw on nothing shared run as one event
            (:meth:`_run_whole`), on a machine without a decoder limit. Every record,
            wait and figure is the one step by step. False runs step by step: the
            reference a test compares with.
    """

    def __init__(
        self,
        machine: MachineSpec,
        policy: SchedulingPolicy,
        tenants: Mapping[str, float] | None = None,
        *,
        history: bool = True,
        whole: bool = True,
    ) -> None:
        self.machine = machine
        self._whole = whole and machine.decoder_bits_per_cycle is None
        self.policy = policy
        self.weights = dict(tenants or {})
        self.now = 0.0
        self.state = MachineState()
        self._heap: list[tuple[float, int, int, str, Any, int]] = []
        self._seq = 0
        self._count = 0
        #: each distinct footprint's timeline, while a job of it is here: id -> (the
        #: footprint, kept so its id stays its own; the timeline; jobs of it)
        self._timelines: dict[int, tuple[Footprint, Timeline, int]] = {}
        #: ended jobs' records, until the reader takes them (:meth:`take_done`)
        self.done: list[JobRecord] = []
        self._boundary_at: float | None = None
        self._last_decision = -INF
        #: a T state's error (the machine's, read at each end)
        self._t_error = machine.t_state_error
        self._supplies = [
            ModuleSupply.of(m, rule=policy.supply, weights=self.weights) for m in machine.modules
        ]
        specs = policy.ranges(machine, self.weights) or [
            TileRangeSpec(module=m.index, offset=0, length=m.tiles) for m in machine.modules
        ]
        #: where jobs sit (its ranges are :attr:`ranges`)
        self.floorplan = Floorplan(specs)
        self.ranges = self.floorplan.ranges
        #: whether a range's module has a factory
        self._factories = any(self._supplies[r.module].rate > 0 for r in self.ranges)
        #: each resource's use: tiles held, T states and Bell pairs drawn a cycle
        self.gauges = {
            name: Gauge(width=machine.epoch_cycles, keep=history)
            for name in ("tiles", "factories", "links")
        }
        #: running jobs' paces under their shares of the factories, links and decoder
        self.rates = Rates(machine, self._supplies, self.weights, self, self.state, self.gauges)
        self.t_capacity = sum(s.rate for s in self._supplies)
        self.first_arrival = INF
        #: whether the policy may preempt here; if not, a job's steps may run as one
        #: event past a fence
        self.preempts = policy.preempts_on(machine)
        self._past_fences = not self.preempts
        #: what the scheduler has done, by kind: its decisions, and the budget
        #: policies' fits, projections and reservations (a count of its work that
        #: the host's load does not move)
        self.work: collections.Counter[str] = collections.Counter()
        policy.setup(self)

    # ------------------------------------------------------------------ reading

    @property
    def queue(self) -> dict[MachineJob, None]:
        return self.state.queue

    @property
    def queue_of(self) -> dict[str, dict[MachineJob, None]]:
        return self.state.queue_of

    @property
    def queue_at(self) -> dict[int, dict[MachineJob, None]]:
        return self.state.queue_at

    @property
    def running(self) -> dict[MachineJob, None]:
        return self.state.running

    @property
    def stopped(self) -> dict[MachineJob, None]:
        return self.state.stopped

    def usage(self, tenant: str) -> float:
        """Tile-cycles ``tenant`` has held so far."""
        return self.state.usage(tenant, self.now)

    def tenant_names(self) -> list[str]:
        """The tenants whose jobs have held tiles here."""
        return self.state.tenants()

    def held_tiles(self, tenant: str) -> int:
        return self.state.held_tiles(tenant)

    def weight(self, tenant: str) -> float:
        return self.weights.get(tenant, 1.0)

    def knows(self, job_id: str) -> bool:
        """Whether ``job_id`` is here and has not ended (an id not to submit again)."""
        return job_id in self.state.by_id

    def holding(self) -> int:
        """The jobs here that have not ended (queued, running, stopped, or not arrived)."""
        return len(self.state.by_id)

    def next_event(self) -> float:
        """The machine time of the next event (an arrival, a step's end, a boundary...;
        inf: none), up to which :meth:`advance` changes nothing."""
        return self._heap[0][0] if self._heap else INF

    def supply(self, module: int) -> ModuleSupply:
        """``module``'s magic-state supply (read only: the core changes it)."""
        return self._supplies[module]

    def storage_free(self, module: int) -> int:
        """Storage tiles of ``module`` not held or promised."""
        return self._supplies[module].storage_free

    def factory_rate(self, module: int) -> float:
        """T states a cycle ``module``'s factories make."""
        return self._supplies[module].rate

    def t_starved(self, module: int) -> bool:
        """Whether jobs of ``module`` now get fewer T states than they ask for."""
        return self._supplies[module].starved

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
        if spec.id in self.state.by_id:
            raise ValueError(f"job {spec.id} was submitted already")
        if not checked:
            self.check_placeable(spec)
        if timeline is None:  # one for the jobs here of its footprint object
            key = id(spec.footprint)
            held = self._timelines.get(key)
            timeline = Timeline(spec.footprint) if held is None else held[1]
            self._timelines[key] = (spec.footprint, timeline, 1 if held is None else held[2] + 1)
        job = MachineJob(spec, timeline, self._count)
        self._count += 1
        self.state.admit(job)
        if spec.arrival_cycle < self.first_arrival:
            self.first_arrival = spec.arrival_cycle
            for gauge in self.gauges.values():
                gauge.start(self.first_arrival)
        self._push(float(spec.arrival_cycle), _OUTSIDE, "arrive", job, 0)

    def _forget(self, job: MachineJob) -> None:
        """``job`` ended or was cancelled: nothing of it is kept (its record aside)."""
        self.state.forget(job)
        key = id(job.spec.footprint)
        held = self._timelines.get(key)
        # the timeline it came with (its ``kind``'s: a placement elsewhere swaps
        # ``tl``), where it is the core's, not one its submitter gave
        if held is not None and id(held[1]) == job.kind[1]:
            footprint, timeline, count = held
            if count > 1:
                self._timelines[key] = (footprint, timeline, count - 1)
            else:
                del self._timelines[key]

    def run(self) -> list[JobRecord]:
        """Advance until every submitted job has ended; the records, by end."""
        self.advance(INF)
        left = list(self.state.by_id.values())
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
                    obj.empty(self.rates)
            elif kind == "boundary":
                self._boundary(time)
        if until != INF and until > self.now:
            self.now = until

    def take_done(self) -> list[JobRecord]:
        """The records of the jobs that ended since the last call (they are kept no
        longer)."""
        done, self.done = self.done, []
        return done

    def cancel(self, job_id: str, at: float) -> bool:
        """Cancel ``job_id`` at machine time ``at`` (not before the clock): at ``at`` it
        leaves the queue, or frees its tiles, its storage room and its claims on the
        factories, links and decoder (module docstring). Whether it was here, not ended
        (it may still end before ``at``: then it ends, with its record)."""
        job = self.state.by_id.get(job_id)
        if job is None:
            return False
        if at < self.now:
            raise ValueError(f"job {job_id} cancelled at {at}, before {self.now}")
        self._push(float(at), _OUTSIDE, "cancel", job, 0)
        return True

    def _cancel(self, job: MachineJob) -> None:
        state = job.state
        if state == DONE:
            return  # it ended first, or an earlier cancel took it
        if state == QUEUED:
            if job in self.state.queue:
                self.state.dequeue(job)  # else: it has not arrived, and never will
        elif state == RUNNING:
            self._drop_claims(job)
        if job.stopping == "storage":  # the room promised for its move
            self._supplies[job.module].storage_free += job.data_tiles
        elif job.storage_module >= 0:  # in storage, or on its way there
            self._supplies[job.storage_module].storage_free += job.data_tiles
        job.stopping = None
        job.inject.clear()
        if job.range >= 0:
            self._vacate(job)
        self._forget(job)
        self.policy.ended(self, job)
        self._wake()

    def _drop_claims(self, job: MachineJob) -> None:
        """A running ``job`` stops drawing T states, Bell pairs and decoding now."""
        rates = self.rates
        if job.t:
            rates.leave_supply(job)
        else:
            rates.settle(job)
        bits = self.machine.decoder_bits(job.m / job.c) if job.m and job.c else 0.0
        pairs = job.b
        job.t = job.b = job.m = 0
        job.c = 0
        job.version += 1  # its step's end no longer holds
        if pairs:
            rates.leave_link(job)
        if bits:
            rates.decoder_add(job.tenant, -bits)

    def _push(self, time: float, klass: int, kind: str, obj: Any, version: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, klass, self._seq, kind, obj, version))

    def push_event(self, time: float, kind: str, obj: object, version: int) -> None:
        """An event of the machine's own at ``time`` (a step's end, a store running dry),
        in the order such events are set off (:class:`~qmk.kernel.machine.rates.Clock`)."""
        self._push(time, _EVENT, kind, obj, version)

    def _arrive(self, job: MachineJob) -> None:
        if job.state != QUEUED:
            return  # withdrawn before it arrived
        self.state.enqueue(job)
        self.policy.arrived(self, job)
        self._wake()

    def look_again(self) -> None:
        """Decide again at the next epoch boundary though nothing arrives or ends: a job
        held by a verdict that changes with time alone (a budget's projection, as the
        running jobs draw their states) is looked at each epoch, so an unrelated arrival
        never moves its start."""
        self._wake()

    def _wake(self) -> None:
        """Look again at the next epoch boundary (the first not yet decided)."""
        if not self.state.waiting():
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
        self.work["decisions"] += 1
        self.policy.decide(self)

    # ------------------------------------------------------------------ placement

    def allowed_ranges(self, job: MachineJob) -> list[TileRange]:
        """The tile ranges the policy lets ``job`` use (all, unless it says otherwise)."""
        names = self.policy.allowed(self, job.spec)
        return self.ranges if names is None else [self.ranges[i] for i in names]

    def check_placeable(self, spec: JobSpec, timeline: Timeline | None = None) -> None:
        """Refuse ``spec`` if no placement of the machine (under this policy) can ever
        hold it (nothing changes); ``timeline``: its footprint's, where the caller has
        it (its totals are read there, not summed over the steps again).

        Raises:
            MachineError: ``QK501 unplaceable`` naming it.
        """
        fp = spec.footprint
        names = self.policy.allowed(self, spec)
        if (
            names is None
            and timeline is not None
            and fp.data_tiles + fp.routing_tiles <= self.floorplan.largest
            and (not timeline.t_total or self._factories)
            and (not timeline.b_total or self.machine.link.bell_pairs_per_cycle > 0)
        ):
            return  # every range allowed: what the checks below find, in short
        refuse_unplaceable(self, spec, names)

    def find(
        self, job: MachineJob, ranges: Iterable[TileRange] | None = None
    ) -> tuple[TileRange, int] | None:
        """Where ``job`` would be placed now (:meth:`Floorplan.find`, of the ranges the
        policy allows it unless ``ranges`` are given); None when none can hold it."""
        return self.floorplan.find(
            job.tiles, self.allowed_ranges(job) if ranges is None else ranges
        )

    def place(
        self,
        job: MachineJob,
        ranges: Iterable[TileRange] | None = None,
        *,
        spot: tuple[TileRange, int] | None = None,
    ) -> bool:
        """Start a queued job (or resume a stored one) where :meth:`find` says (``spot``:
        what it said, the floorplan unchanged since, as a budget's fit found it); False
        when nothing can hold it now."""
        if spot is None:
            spot = self.find(job, ranges)
        if spot is None:
            return False
        area, at = spot
        if job.state == QUEUED:
            self.state.dequeue(job)
            self._occupy(job, area, at)
            job.start = self.now
            job.waits["queue"] = self.now - job.arrival
            self.state.run(job)
            self._enter(job)
            return True
        if job.state == STORED:
            self._unstore(job, area, at)
            return True
        raise ValueError(f"job {job.id} is {job.state}: only queued or stored jobs are placed")

    def _occupy(self, job: MachineJob, area: TileRange, at: int) -> None:
        self.floorplan.take(job, area, at)
        self.state.tiles_changed(job.tenant, now=self.now, tiles=job.tiles)
        self.gauges["tiles"].set(self.now, self.state.held)
        if not self.rates.no_decoder:
            self.rates.decoder_add(job.tenant, self.machine.decoder_bits(job.data_tiles))

    def _vacate(self, job: MachineJob) -> None:
        self.floorplan.give(job)
        self.state.tiles_changed(job.tenant, now=self.now, tiles=-job.tiles)
        self.gauges["tiles"].set(self.now, self.state.held)
        if not self.rates.no_decoder:
            self.rates.decoder_add(job.tenant, -self.machine.decoder_bits(job.data_tiles))

    # ------------------------------------------------------------------ preemption

    def preempt(self, job: MachineJob, *, storage: bool) -> bool:
        """Ask a running job to stop at its next fence: its patches stay in place, or move
        to its module's storage (room reserved now). False when it has no fence ahead,
        is already stopping, or storage has no room for its patches."""
        if job.state != RUNNING or job.stopping is not None or not job.has_fence_ahead():
            return False
        if job.chain_end >= 0:  # its steps past a fence run whole: its policy preempts none
            raise ValueError(f"job {job.id} runs its steps whole: {self.policy.name} preempts")
        if storage:
            supply = self._supplies[job.module]
            if supply.storage_free < job.data_tiles:
                return False
            supply.storage_free -= job.data_tiles
        job.stopping = "storage" if storage else "place"
        return True

    def unpreempt(self, job: MachineJob) -> None:
        """Take back a stop not reached yet (its storage room is given back)."""
        if job.state == RUNNING and job.stopping is not None:
            if job.stopping == "storage":
                self._supplies[job.module].storage_free += job.data_tiles
            job.stopping = None

    def resume(self, job: MachineJob) -> bool:
        """Resume a stopped job: at once in place, or placed again from storage (on
        another module only where the link can carry its patches). False: no room."""
        if job.state == STOPPED:
            job.wait("preempted", self.now - job.stop_at)
            self.state.run(job)
            self._enter(job)
            return True
        if job.state == STORED:
            ranges = self.allowed_ranges(job)
            if self.machine.link.bell_pairs_per_cycle <= 0:
                ranges = [r for r in ranges if r.module == job.storage_module]
            return self.place(job, ranges)
        return False

    def _unstore(self, job: MachineJob, area: TileRange, at: int) -> None:
        self._supplies[job.storage_module].storage_free += job.data_tiles
        job.wait("preempted", self.now - job.stop_at)
        self._occupy(job, area, at)
        move = self.machine.storage_move_cycles
        if area.module != job.storage_module:
            pairs = job.spec.footprint.logical_qubits
            job.inject.append(Injected(self.machine.link.latency_cycles, pairs, "link", "migrate"))
        job.inject.append(Injected(move, 0, "preempted", "from-storage"))
        job.storage_module = -1
        self.state.run(job)
        self._enter(job)

    def _stop(self, job: MachineJob, *, stepped: bool = False) -> None:
        """``job`` reached the fence it was asked to stop at."""
        kind, job.stopping = job.stopping, None
        job.preemptions += 1
        if kind == "storage":
            job.storage_module = job.module
            job.inject.append(
                Injected(self.machine.storage_move_cycles, 0, "preempted", "to-storage")
            )
            self._enter(job, stepped=stepped)
            return
        self._park(job, STOPPED)

    def _park(self, job: MachineJob, state: str) -> None:
        self.state.park(job, state, self.now)
        self._wake()

    # ------------------------------------------------------------------ steps

    def _enter(self, job: MachineJob, *, stepped: bool = False) -> None:
        """Load ``job``'s next step that takes time, then share the resources it draws on.

        Stop at a fence it was asked to stop at. End the job after its last step:
        ``stepped`` says a step's end led here, and the job ends in the canonical order of
        ends (:meth:`_push_end`); else it ends at once, at a boundary."""
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
        rates = self.rates
        job.f = rates.throttle(job.tenant)
        if job.m and job.c:
            rates.decoder_add(job.tenant, self.machine.decoder_bits(job.m / job.c))
        if job.b:
            rates.use_link(job)
        if job.t:
            rates.join_supply(job)
        elif (
            self._whole
            and job.forced is None
            and job.stopping is None
            and (job.tl.plain_after if self._past_fences else job.tl.plain_fenceless)[job.idx]
        ):
            self._run_whole(job)
        elif not job.b:
            rates.set_rate(job, settled=True)  # nothing has passed since ``last``

    def _step_done(self, job: MachineJob) -> None:
        """``job``'s current step ended now: leave its shares, go on to the next."""
        rates = self.rates
        if not (job.t or job.b or job.inject) and (rates.no_decoder or not job.m):
            # it drew on nothing shared (its rate its own): what settling it would do,
            # but only where a wait is left to record (a rate's rounding), then the next
            dt = self.now - job.last
            if dt > 0 and dt - job.rate * dt * job.c > 0:
                rates.settle(job)
            job.last = self.now
            job.done = float(job.r)
            job.m = 0
            job.version += 1
            job.idx += 1
            self._enter(job, stepped=True)
            return
        if job.t and not (job.b or job.inject) and rates.no_decoder:
            following = self._next_draw(job)
            if following >= 0:
                _, c, _, t, _, _ = job.tl.steps[following]
                if c == job.c and t == job.t and not job.capped:
                    self._draw_on(job, following)
                else:
                    self._redraw(job, following)
                return
        if job.t:
            rates.leave_supply(job)
        else:
            rates.settle(job)
        job.done = float(job.r)
        if job.m and job.c:
            rates.decoder_add(job.tenant, -self.machine.decoder_bits(job.m / job.c))
        if job.b:
            rates.leave_link(job)
        job.t = job.b = job.m = 0
        job.version += 1
        if job.inject:
            self._injected_done(job)
            if job.state != RUNNING:
                return
        else:
            job.idx += 1
        self._enter(job, stepped=True)

    def _next_draw(self, job: MachineJob) -> int:
        """The index of ``job``'s next step that takes time where it draws T states and
        no Bell pairs, in cycles (past only fences it is not asked to stop at and steps
        that take no time); -1: none."""
        steps = job.tl.steps
        for i in range(job.idx + 1, len(steps)):
            fence, c, _r, t, b, _m = steps[i]
            if fence:
                if job.stopping is not None:
                    return -1
            elif c or t or b:
                return i if c and t and not b else -1
        return -1

    def _draw_on(self, job: MachineJob, index: int) -> None:
        """``job``'s T-drawing step ended now and the step at ``index`` draws as it did
        (:meth:`_same_draw_next`): it keeps its place in its module's supply, its want
        and its share, so no share of the factories changes; its progress is settled
        and the next step runs at the same rate (what leaving the supply and joining it
        again at once would give, without sharing the factories twice)."""
        self.rates.supplies[job.module].advance(self.now)
        self.rates.settle(job)
        job.idx = index
        _, job.c, job.r, job.t, job.b, job.m = job.tl.steps[index]
        job.done = 0.0
        job.last = self.now
        self.rates.set_rate(job, settled=True)

    def _redraw(self, job: MachineJob, index: int) -> None:
        """``job``'s T-drawing step ended now and the step at ``index`` draws T states
        too, at another want or while the factories cap it (:meth:`_next_draw`): it keeps
        its place on its bus segment and changes its want there, so the factories are
        shared once (leaving the supply and joining it again at once shares them twice,
        to the same end)."""
        supply = self.rates.supplies[job.module]
        supply.pause(self.rates, job)
        job.idx = index
        _, job.c, job.r, job.t, job.b, job.m = job.tl.steps[index]
        job.done = 0.0
        job.last = self.now
        job.t_alloc = 0.0
        job.cause = ""
        job.version += 1
        supply.rejoin(self.rates, job, self.rates.want(job))

    def _run_whole(self, job: MachineJob) -> None:
        """Run ``job``'s steps from its current one on, which draw on nothing shared, as
        one event at the end their events give (:meth:`Timeline.run_from`). Its end comes
        in the canonical order of ends (:meth:`_push_end`), as step by step. Nothing else
        reads where it is meanwhile but :meth:`remaining` (its end less now) and a
        preemption at a fence (there is none ahead, or the policy preempts none)."""
        job.rate = 1.0 / job.c
        job.cause = ""
        job.chain_end = job.tl.run_from(job.idx, self.now)[1]
        job.version += 1
        self._push_end(job.chain_end, "whole", job)

    def _whole_done(self, job: MachineJob) -> None:
        """``job``'s steps run whole ended now: record the waits their rounding left, as
        step by step (:meth:`_step_done`), then its end."""
        tl = job.tl
        job.chain_end = -1.0
        if not tl.exact_after[job.idx]:
            rounding, _ = tl.walk(job.idx, job.last)
            for job.idx, lost in rounding:
                job.wait("decoder", lost)
        job.idx = len(tl.steps)
        self._finish(job)

    def _push_end(self, time: float, kind: str, job: MachineJob) -> None:
        """``job`` ends at ``time``, after the machine's own events of that time and before
        the outside world's. Among the jobs ending then it goes in arrival order: its seq
        takes the place of the push order (the canonical order of ends, module docstring)."""
        heapq.heappush(self._heap, (time, _END, job.seq, kind, job, job.version))

    def _injected_done(self, job: MachineJob) -> None:
        step = job.inject.pop(0)
        job.forced = None
        if step.action == "to-storage":
            self._vacate(job)
            self._park(job, STORED)

    def _finish(self, job: MachineJob) -> None:
        job.end = self.now
        self._forget(job)
        self._vacate(job)
        machine = self.machine
        self.done.append(JobRecord.of(job, machine.logical_error_rate, self._t_error))
        self.policy.ended(self, job)
        if self.state.waiting():
            self._wake()

    def remaining(self, job: MachineJob) -> float:
        """``job``'s private cycles left at now, read without settling anything: a
        reading (a reservation's, aging's) changes nothing of the schedule, so a policy
        may read, skip or keep it as it likes. A running job's progress is what settling
        it would give (:meth:`Rates.progress`); one whose steps run whole runs at full
        rate to its end."""
        if job.state == RUNNING:
            if job.chain_end >= 0:  # its steps run whole: each cycle a private one
                left = job.chain_end - self.now
                return left if left > 0.0 else 0.0
            return job.remaining(self.rates.progress(job))
        return job.remaining()
