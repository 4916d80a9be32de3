"""A job as the machine scheduler holds it: what it asks for, where it is, what it waited.

- :class:`JobSpec` is what arrives (a footprint, a tenant, an arrival in machine time);
- :class:`Timeline` is its footprint's steps as flat arrays the event loop reads;
- :class:`MachineJob` is the scheduler's mutable record of one job;
- :class:`JobRecord` is what a finished job reports (the ``machine`` record: arrival,
  start, end, tiles, module, waits by cause; its code distance and block, its own
  logical error over its run, the idle logical error its waits added, and the two
  together).

>>> from qmk.execution.footprint import Footprint, Step
>>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
...                routing_tiles=2, code_distance=9,
...                steps=(Step(kind="idle", cycles=5), Step(kind="fence", cycles=0),
...                       Step(kind="rotation", cycles=1, t_states=1, repeat=4)))
>>> tl = Timeline.of(fp)
>>> tl.private_cycles, tl.after, tl.next_fence
(9, (4, 4, 0), (1, 1, 3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec

from qmk.execution.footprint import Footprint  # at run time: a JobSpec decodes by its type
from qmk.execution.request import MachineRun

#: The causes a job's waits are recorded by, in the order reports list them.
WAIT_CAUSES = ("queue", "factory", "routing", "link", "decoder", "preempted")

#: Below it a whole float plus a whole number of cycles is exact (2**52: the spans' sums
#: stay below 2**53).
_EXACT = float(2**52)

QUEUED = "queued"
_NO_WAITS = dict.fromkeys(WAIT_CAUSES, 0.0)  # a new job's waits: copied, never changed


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A job that arrives at the machine.

    Attributes:
        id: the job's name (unique in a run).
        tenant: whose it is.
        footprint: what it needs of the machine.
        arrival_cycle: when it arrives, in logical cycles of machine time.
        priority: higher first (``priority`` policy).
        program: what it runs, for people (a file, a generator).
        shots: the shots it asks for (reported; the schedule is one run's).
        runtime_alone_cycles: its run alone on the empty machine, where its submitter
            computed it (its record carries it: its slowdown's denominator).
        error_budget: the idle logical error it may be given at most (None: no bound):
            policies that know budgets admit it only when it stays within.
    """

    id: str
    tenant: str
    footprint: Footprint
    arrival_cycle: int
    priority: int = 0
    program: str = ""
    shots: int = 0
    runtime_alone_cycles: float | None = None
    error_budget: float | None = None


class Timeline:
    """A footprint's steps as flat arrays (one per distinct footprint, shared by its jobs).

    Attributes:
        cycles, repeat, t_states, bell_pairs, measurements: per step.
        fence: per step, whether it is a fence.
        steps: per step, ``(fence, cycles, repeat, t_states, bell_pairs, measurements)``.
        t_total, b_total: T states and Bell pairs of the whole timeline.
        after: per step, the private cycles of the steps after it.
        next_fence: per step, the index of the first fence at or after it (``len``: none).
        plain_after: per step, whether it and the steps after it draw no T state and no
            Bell pair (nothing shared but the decoder).
        exact_after: per step, whether it and the steps after it take a power of two
            cycles a repetition each (or none): run at their own rates, no rounding is
            left of them (:meth:`walk` finds none).
        plain_fenceless: per step, whether it is ``plain_after`` and no fence lies at or
            after it.
        private_cycles: the whole timeline's cycles on a private machine.
        whole_spans: per step, what :meth:`run_from` gives from it at full rate, as
            offsets from a whole cycle, where every step from it takes whole cycles.
    """

    __slots__ = (
        "after",
        "b_total",
        "bell_pairs",
        "cycles",
        "exact_after",
        "fence",
        "first",
        "measurements",
        "next_fence",
        "plain_after",
        "plain_fenceless",
        "private_cycles",
        "repeat",
        "steps",
        "t_after",
        "t_cycles_after",
        "t_states",
        "t_total",
        "whole_spans",
    )

    def __init__(self, footprint: Footprint) -> None:
        steps = footprint.steps
        self.cycles = tuple(s.cycles for s in steps)
        self.repeat = tuple(s.repeat for s in steps)
        self.t_states = tuple(s.t_states for s in steps)
        self.bell_pairs = tuple(s.bell_pairs for s in steps)
        self.measurements = tuple(s.measurements for s in steps)
        self.fence = tuple(s.kind == "fence" for s in steps)
        self.t_total = sum(t * r for t, r in zip(self.t_states, self.repeat, strict=True))
        self.b_total = sum(b * r for b, r in zip(self.bell_pairs, self.repeat, strict=True))
        #: per step, what the event loop loads: (fence, cycles, repeat, T states, Bell
        #: pairs, measurements)
        self.steps = tuple(
            zip(
                self.fence,
                self.cycles,
                self.repeat,
                self.t_states,
                self.bell_pairs,
                self.measurements,
                strict=True,
            )
        )
        after: list[int] = []
        total = 0
        for c, r in zip(reversed(self.cycles), reversed(self.repeat), strict=True):
            after.append(total)
            total += c * r
        self.after = tuple(reversed(after))
        self.private_cycles = total
        t_after: list[int] = []
        states = 0
        for t, r in zip(reversed(self.t_states), reversed(self.repeat), strict=True):
            t_after.append(states)
            states += t * r
        #: per step, the T states of the steps after it
        self.t_after = tuple(reversed(t_after))
        t_cycles: list[int] = []
        busy = 0
        for c, r, t in zip(
            reversed(self.cycles), reversed(self.repeat), reversed(self.t_states), strict=True
        ):
            t_cycles.append(busy)
            busy += c * r if t else 0
        #: per step, the private cycles of the steps after it that draw T states
        self.t_cycles_after = tuple(reversed(t_cycles))
        nxt: list[int] = []
        ahead = len(steps)
        for i in reversed(range(len(steps))):
            if self.fence[i]:
                ahead = i
            nxt.append(ahead)
        self.next_fence = tuple(reversed(nxt))
        plain: list[bool] = []
        alone = True
        for t, b in zip(reversed(self.t_states), reversed(self.bell_pairs), strict=True):
            alone = alone and not t and not b
            plain.append(alone)
        self.plain_after = tuple(reversed(plain))
        exact: list[bool] = []
        alone = True
        for c in reversed(self.cycles):
            alone = alone and c & (c - 1) == 0  # 0 or a power of two
            exact.append(alone)
        self.exact_after = tuple(reversed(exact))
        #: the first step a job loads (that takes time or draws), as the scheduler's
        #: ``_enter`` finds it from the start; -1: none (the job ends at once)
        self.first = next(
            (i for i, (f, c, _r, t, b, _m) in enumerate(self.steps) if not f and (c or t or b)), -1
        )
        self.plain_fenceless = tuple(
            plain and ahead == len(steps)
            for plain, ahead in zip(self.plain_after, self.next_fence, strict=True)
        )
        #: per step, what :meth:`run_from` gives from it at full rate, as offsets from a
        #: start of a whole cycle (its last step's start, its end), where each step
        #: takes a whole number of cycles then (the sums exact, no rounding to snap);
        #: None where one does not
        spans: list[tuple[float, float] | None] = []
        span: tuple[float, float] | None = (0.0, 0.0)
        later = False  # a step that takes time after this one
        for fence, c, r, _t, _b, _m in reversed(self.steps):
            if span is not None and not fence and c:
                took = max(0.0, r - 0.0) / (1.0 / c)  # as run_from computes it
                if took.is_integer():  # the last step's start moves by it, if not this
                    span = (span[0] + took if later else 0.0, span[1] + took)
                    later = True
                else:
                    span = None
            spans.append(span)
        self.whole_spans = tuple(reversed(spans))

    @staticmethod
    def of(footprint: Footprint) -> Timeline:
        return Timeline(footprint)

    def run_from(self, index: int, start: float, f: float = 1.0) -> tuple[float, float]:
        """When the steps from ``index`` on start their last step and end.

        They run one after another from ``start`` at their own rates (``f / cycles``
        repetitions a cycle: nothing shared slows them). Each end is found from the last
        as the scheduler's step events compute it (a time within 1e-7 of a whole cycle is
        that cycle).

        >>> from qmk.execution.footprint import Footprint, Step
        >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...                routing_tiles=2, code_distance=9,
        ...                steps=(Step(kind="gates", cycles=3, repeat=2),
        ...                       Step(kind="fence", cycles=0), Step(kind="idle", cycles=5)))
        >>> Timeline(fp).run_from(0, 100.0)
        (106.0, 111.0)
        """
        if f == 1.0 and start.is_integer() and 0.0 <= start < _EXACT:
            span = self.whole_spans[index] if index < len(self.steps) else (0.0, 0.0)
            if span is not None:  # the loop's sums, each exact
                return start + span[0], start + span[1]
        return self.stepwise(index, start, f)

    def stepwise(self, index: int, start: float, f: float = 1.0) -> tuple[float, float]:
        """What :meth:`run_from` gives, one step after another as the scheduler's step
        events compute it (its sums kept per step give the same, to the bit, where they
        apply).

        >>> from qmk.execution.footprint import Footprint, Step
        >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...                routing_tiles=2, code_distance=9,
        ...                steps=(Step(kind="gates", cycles=3, repeat=2),
        ...                       Step(kind="fence", cycles=0), Step(kind="idle", cycles=5)))
        >>> Timeline(fp).stepwise(0, 100.0, f=0.5)
        (112.0, 122.0)
        """
        at = last = start
        for fence, c, r, _t, _b, _m in self.steps[index:]:
            if fence or not c:
                continue
            last = at
            at = at + max(0.0, r - 0.0) / (f / c)
            near = round(at)
            if abs(at - near) < 1e-7:
                at = float(near)
        return last, at

    def walk(
        self, index: int, start: float, until: float = math.inf, f: float = 1.0
    ) -> tuple[list[tuple[int, float]], tuple[int, float, float] | None]:
        """The steps from ``index`` on, run as :meth:`run_from` runs them from ``start``.

        It returns, of those that end by ``until``, each whose time exceeds its
        repetitions at its rate by a rounding, and by how much: the wait the scheduler
        records at that step's end, step by step. Then the step running at ``until``, its
        start and end (None: every step ended by then).

        >>> from qmk.execution.footprint import Footprint, Step
        >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...                routing_tiles=2, code_distance=9,
        ...                steps=(Step(kind="gates", cycles=3, repeat=2),
        ...                       Step(kind="idle", cycles=4)))
        >>> rounding, running = Timeline(fp).walk(0, 2.7)
        >>> [(i, lost < 1e-12) for i, lost in rounding], running
        ([(0, True)], None)
        >>> Timeline(fp).walk(0, 3.0, until=10.0)  # from a whole cycle, no rounding
        ([], (1, 9.0, 13.0))
        """
        rounding: list[tuple[int, float]] = []
        at = start
        for i in range(index, len(self.steps)):
            fence, c, r, _t, _b, _m = self.steps[i]
            if fence or not c:
                continue
            rate = f / c
            end = at + max(0.0, r - 0.0) / rate
            near = round(end)
            if abs(end - near) < 1e-7:
                end = float(near)
            if end > until:
                return rounding, (i, at, end)
            dt = end - at
            if dt > 0 and dt - rate * dt * c > 0:
                rounding.append((i, dt - rate * dt * c))
            at = end
        return rounding, None


@dataclass(frozen=True, slots=True)
class Injected:
    """A step the scheduler adds to a job's timeline: a move into or out of storage, a
    migration over the link. All its time is a wait of ``cause``."""

    cycles: int
    bell_pairs: int
    cause: str
    action: str  # "to-storage", "from-storage", "migrate"


class MachineJob:
    """The scheduler's record of one job (mutable; the event loop's own)."""

    __slots__ = (
        "arrival",
        "b",
        "b_alloc",
        "b_used",
        "bound0",
        "budget",
        "c",
        "capped",
        "cause",
        "chain_end",
        "cost",
        "data_tiles",
        "demand",
        "done",
        "end",
        "f",
        "forced",
        "fp",
        "id",
        "idx",
        "inject",
        "kind",
        "last",
        "m",
        "module",
        "own",
        "p",
        "pos",
        "pos_in_module",
        "preemptions",
        "priority",
        "r",
        "range",
        "rate",
        "segment",
        "seq",
        "sole",
        "spec",
        "start",
        "state",
        "stop_at",
        "stopping",
        "storage_module",
        "t",
        "t_alloc",
        "t_used",
        "tenant",
        "tiles",
        "tjoin",
        "tl",
        "version",
        "vfinish",
        "vjoin",
        "waits",
        "waits_at",
        "want",
    )

    def __init__(self, spec: JobSpec, timeline: Timeline, seq: int) -> None:
        self.spec = spec
        # the spec's, read at every event (the spec and its footprint are immutable)
        self.id = spec.id
        self.tenant = spec.tenant
        self.priority = spec.priority
        #: where it runs: its footprint (the spec's, or the same program at a larger
        #: code distance, :meth:`take`) and its patches' logical error a machine
        #: cycle there (-1: the machine's own)
        self.fp = spec.footprint
        self.p = -1.0
        #: its own logical error where its placement fixed it (-1: not chosen, the
        #: record computes it at the spec's distance and block, :func:`own_error`)
        self.own = -1.0
        self.tiles = spec.footprint.tiles
        self.data_tiles = spec.footprint.data_tiles
        #: its waiting's cost (live patches, each idling at one logical error a cycle)
        self.cost = spec.footprint.logical_qubits
        self.budget = spec.error_budget
        self.arrival = spec.arrival_cycle
        self.tl = timeline
        self.seq = seq
        self.state = QUEUED
        self.range = -1
        self.module = -1
        self.pos = 0
        self.pos_in_module = 0
        self.idx = 0
        self.done = 0.0
        self.inject: list[Injected] = []
        self.c = self.r = self.t = self.b = self.m = 0
        self.forced: str | None = None
        self.rate = 0.0
        self.cause = ""
        self.last = 0.0
        self.t_alloc = 0.0
        self.b_alloc = 0.0
        self.t_used = 0.0
        self.b_used = 0.0
        self.version = 0
        self.waits = _NO_WAITS.copy()
        self.waits_at: dict[int, float] = {}
        self.start = -1.0
        self.end = -1.0
        self.stop_at = 0.0
        self.stopping: str | None = None
        self.storage_module = -1
        self.preemptions = 0
        # its tenant's decoder throttle while it runs (1: none)
        self.f = 1.0
        # T-state sharing (qmk.kernel.machine.supply): what it wants a cycle, its bus
        # segment, its demand on the factories (what the segment carries of its want),
        # whether it draws at its tenant's level, and its place on that virtual clock
        self.want = 0.0
        self.bound0 = 0.0
        self.segment = -1
        self.capped = False
        self.demand = 0.0
        self.vjoin = self.vfinish = self.tjoin = 0.0
        # its steps left run as one event (Scheduler(whole=True)): when they end (-1:
        # they run step by step)
        self.chain_end = -1.0
        # started past its tenant's part of the factories, nothing else drawing T states
        # (policies/budget.py): other tenants' T-drawing jobs wait on its module
        self.sole = False
        # what a start's verdict reads of it queued (its placement, its tenant's hold,
        # its budget's projection): queued jobs alike in it get one verdict in one
        # machine state (it has never run, so no idle wait of its own tells it apart)
        self.kind = (self.tenant, id(timeline), self.tiles, self.budget, self.cost)

    def take(self, footprint: Footprint, timeline: Timeline, p: float, own: float = -1.0) -> None:
        """Run, once placed, as ``footprint`` (its program at another code distance or
        block) and ``timeline``, its patches at logical error ``p`` a machine cycle (-1:
        the machine's), its own logical error ``own`` there (-1: as its spec came).
        Its budget for waiting is what its error budget leaves beside ``own``
        (:func:`added_budget`). Only a queued job changes its placement; its ``kind``
        stays the program's."""
        self.fp = footprint
        self.tl = timeline
        self.p = p
        self.own = own
        self.tiles = footprint.tiles
        self.data_tiles = footprint.data_tiles
        budget = self.spec.error_budget
        self.budget = budget if budget is None or own < 0 else added_budget(budget, own)

    def wait(self, cause: str, cycles: float) -> None:
        """Record ``cycles`` waited for ``cause`` (not ``queue``) at its current step."""
        self.waits[cause] += cycles
        self.waits_at[self.idx] = self.waits_at.get(self.idx, 0.0) + cycles

    def idle_waited(self) -> float:
        """Cycles its patches idled so far (every wait but ``queue``)."""
        return sum(self.waits.values()) - self.waits["queue"]

    def remaining_t(self, done: float | None = None) -> float:
        """T states left to draw: of the current step and those after."""
        tl = self.tl
        if self.idx >= len(tl.cycles):
            return 0.0
        done = 0.0 if self.inject else (self.done if done is None else done)
        return max(0.0, tl.repeat[self.idx] - done) * tl.t_states[self.idx] + tl.t_after[self.idx]

    def remaining_t_cycles(self, done: float | None = None) -> float:
        """Private cycles left in steps that draw T states (where it asks for them)."""
        tl = self.tl
        if self.idx >= len(tl.cycles):
            return 0.0
        done = 0.0 if self.inject else (self.done if done is None else done)
        here = tl.cycles[self.idx] if tl.t_states[self.idx] else 0
        return max(0.0, tl.repeat[self.idx] - done) * here + tl.t_cycles_after[self.idx]

    def has_fence_ahead(self) -> bool:
        """Whether a fence lies ahead of its current step (where it may stop)."""
        n = len(self.tl.cycles)
        return self.idx < n and self.tl.next_fence[self.idx] < n

    def remaining(self, done: float | None = None) -> float:
        """Private cycles left: of the injected steps, the current step and those after
        (``done``: its current step's progress, where not :attr:`done`)."""
        tl = self.tl
        left = 0.0
        main_done = self.done if done is None else done
        if self.inject:
            head = self.inject[0]
            left += max(0.0, head.cycles * (1.0 - main_done))
            left += sum(s.cycles for s in self.inject[1:])
            main_done = 0.0
        if self.idx < len(tl.cycles):
            left += max(0.0, tl.repeat[self.idx] - main_done) * tl.cycles[self.idx]
            left += tl.after[self.idx]
        return left

    def __repr__(self) -> str:
        return f"MachineJob({self.id!r}, {self.state})"


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A finished job's machine record (all cycles are logical cycles of machine time).

    Attributes:
        id, tenant, program, priority: the job.
        arrival_cycle, start_cycle, end_cycle: when it arrived, first started, ended.
        tiles: the tiles it held; module: the module it ended on.
        logical_qubits: its live patches (idle waits are charged to them).
        wait_cycles: cycles waited, by cause (:data:`WAIT_CAUSES`).
        idle_logical_error: the probability that its waits (all but ``queue``) added a
            logical error: ``1 - (1 - p_L)^(n W)`` for ``n`` patches idle ``W`` cycles.
        runtime_alone_cycles: its run alone on the empty machine (None: not computed).
        waits_at: its waits but ``queue`` by where they fell: the index of the
            footprint's step it was at (waiting to do it, or stopped at the fence
            before it; :meth:`idle_after` turns them into idle cycles after nodes).
        error_budget: the idle logical error it was allowed (None: no bound).
        preemptions: how many times it stopped at a fence.
        code_distance, block: where its patches ran: the footprint's distance and
            block layout (0, "": not known).
        own_logical_error: the chance of a logical error in its own run, its memory
            and gate error at its distance and in its block (:func:`own_error`: the
            estimator's formula, every patch of its block's layout through each of its
            private cycles, and each T state it consumes; a slow block's longer run
            costs it here, not in the idle error).
    """

    id: str
    tenant: str
    program: str
    priority: int
    arrival_cycle: float
    start_cycle: float
    end_cycle: float
    tiles: int
    module: int
    logical_qubits: int
    wait_cycles: dict[str, float]
    idle_logical_error: float
    runtime_alone_cycles: float | None = None
    waits_at: dict[int, float] = msgspec.field(default_factory=dict)
    error_budget: float | None = None
    preemptions: int = 0
    code_distance: int = 0
    block: str = ""
    own_logical_error: float = 0.0

    @property
    def total_logical_error(self) -> float:
        """Its whole logical error: its own run's and what its waits added, either
        failing: ``1 - (1 - own)(1 - added)``.

        >>> record = JobRecord(id="j", tenant="t", program="", priority=0,
        ...     arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=4, module=0,
        ...     logical_qubits=1, wait_cycles={}, idle_logical_error=0.5,
        ...     own_logical_error=0.5)
        >>> record.total_logical_error
        0.75
        """
        return whole_error(self.own_logical_error, self.idle_logical_error)

    @property
    def within_budget(self) -> bool | None:
        """Whether its whole logical error (:attr:`total_logical_error`) stayed within
        its budget (None: it had none)."""
        if self.error_budget is None:
            return None
        return self.total_logical_error <= self.error_budget

    @staticmethod
    def of(job: MachineJob, logical_error_rate: float, t_error: float = 0.0) -> JobRecord:
        """``job``'s record, as it ended (it is gone: its waits are the record's, not
        copied); ``logical_error_rate``: a patch's per cycle, for its own and its idle
        error; ``t_error``: a T state's, for its own error (:func:`own_error`)."""
        spec = job.spec
        fp = job.fp
        qubits = fp.logical_qubits
        if job.p >= 0:
            logical_error_rate = job.p
        own = job.own
        if own < 0:
            tl = job.tl
            own = own_error(logical_error_rate, fp.tiles, tl.private_cycles, tl.t_total, t_error)
        waits = job.waits
        if job.waits_at:
            idle = sum(v for k, v in waits.items() if k != "queue")
            error = idle_error(logical_error_rate, qubits, idle)
        else:  # no wait but in the queue (each other is at a step)
            error = 0.0
        return JobRecord(
            id=spec.id,
            tenant=spec.tenant,
            program=spec.program,
            priority=spec.priority,
            arrival_cycle=spec.arrival_cycle,
            start_cycle=job.start,
            end_cycle=job.end,
            tiles=fp.tiles,
            module=job.module,
            logical_qubits=qubits,
            wait_cycles=waits,
            waits_at=job.waits_at,
            idle_logical_error=error,
            runtime_alone_cycles=spec.runtime_alone_cycles,
            error_budget=spec.error_budget,
            preemptions=job.preemptions,
            code_distance=fp.code_distance,
            block=fp.block,
            own_logical_error=own,
        )

    def idle_after(self, footprint: Footprint) -> dict[str, float]:
        """Its waits as idle cycles after the program's nodes, in program order.

        A wait at step ``i`` falls after the node of the last step before ``i`` that names
        one. A wait before any named node falls before the program's qubits live, and is
        dropped.

        >>> from qmk.execution.footprint import Footprint, Step
        >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...                routing_tiles=2, code_distance=9,
        ...                steps=(Step(kind="gates", cycles=1, node="a"),
        ...                       Step(kind="rotation", cycles=1, t_states=1, node="t"),
        ...                       Step(kind="rotation", cycles=1, t_states=1)))
        >>> record = JobRecord(id="j", tenant="t", program="", priority=0,
        ...     arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=4, module=0,
        ...     logical_qubits=1, wait_cycles={}, idle_logical_error=0.0,
        ...     waits_at={0: 1.0, 1: 2.5, 2: 3.0})
        >>> record.idle_after(fp)
        {'a': 2.5, 't': 3.0}
        """
        if not self.waits_at:
            return {}
        named: list[str | None] = []
        last: str | None = None
        for step in footprint.steps:
            named.append(last)  # the node done before this step starts
            last = step.node or last
        out: dict[str, float] = {}
        for index in sorted(self.waits_at):
            cycles = self.waits_at[index]
            node = named[index] if index < len(named) else last
            if node is not None and cycles > 0:
                out[node] = out.get(node, 0.0) + cycles
        return out

    @property
    def turnaround(self) -> float:
        return self.end_cycle - self.arrival_cycle

    @property
    def slowdown(self) -> float:
        """Turnaround over the run alone (1: no slower than alone)."""
        alone = self.runtime_alone_cycles
        if not alone:
            return 1.0
        return self.turnaround / alone

    def machine_run(self, idle: dict[str, float]) -> MachineRun:
        """Its schedule as a run request carries it, cycles rounded to whole cycles
        (:func:`_whole`; a whole float is its int without the call: a kernel builds
        one a job), with ``idle`` (:meth:`idle_after`).

        >>> record = JobRecord(id="j", tenant="t", program="", priority=0,
        ...     arrival_cycle=0.0, start_cycle=2.0, end_cycle=6.5000000001, tiles=4,
        ...     module=0, logical_qubits=1, wait_cycles={"queue": 2.0, "factory": 0.0},
        ...     idle_logical_error=0.0)
        >>> run = record.machine_run({})
        >>> run.start_cycle, run.end_cycle, run.wait_cycles
        (2, 7, {'queue': 2, 'factory': 0})
        """
        a, s, e = self.arrival_cycle, self.start_cycle, self.end_cycle
        w = self.wait_cycles
        if (
            not self.waits_at  # a job that waited only in the queue (JobRecord.of's)
            and tuple(w) == WAIT_CAUSES
            and (i := int(q := w["queue"])) == q
            and not (w["factory"] or w["routing"] or w["link"] or w["decoder"] or w["preempted"])
        ):  # the comprehension's dict, without its frame and six conversions
            waits = {
                "queue": i,
                "factory": 0,
                "routing": 0,
                "link": 0,
                "decoder": 0,
                "preempted": 0,
            }
        else:
            waits = {k: i if (i := int(v)) == v else _whole(v) for k, v in w.items()}
        return MachineRun(
            arrival_cycle=i if (i := int(a)) == a else _whole(a),
            start_cycle=i if (i := int(s)) == s else _whole(s),
            end_cycle=i if (i := int(e)) == e else _whole(e),
            tiles=self.tiles,
            module=self.module,
            wait_cycles=waits,
            idle_logical_error=self.idle_logical_error,
            error_budget=self.error_budget,
            preemptions=self.preemptions,
            code_distance=self.code_distance,
            block=self.block,
            own_logical_error=self.own_logical_error,
            idle=idle,
        )

    def machine_json(self) -> dict[str, Any]:
        """The ``machine`` record of the issue, cycles rounded to whole cycles (the
        kernel's, :class:`~qmk.execution.request.MachineRun`'s: where the job ran and its
        own, added and whole error with them)."""
        return self.machine_run({}).record()

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "tenant": self.tenant,
            "program": self.program,
            "priority": self.priority,
            "logical_qubits": self.logical_qubits,
            "runtime_alone_cycles": (
                None if self.runtime_alone_cycles is None else _whole(self.runtime_alone_cycles)
            ),
            "slowdown": self.slowdown,
            "code_distance": self.code_distance,
            "block": self.block,
            "own_logical_error": self.own_logical_error,
            "added_logical_error": self.idle_logical_error,
            "total_logical_error": self.total_logical_error,
            "within_budget": self.within_budget,
            "machine": self.machine_json(),
        }


def _whole(cycles: float) -> int:
    """Cycles as a whole number (the fluid model's times are exact up to float rounding:
    a value within 1e-6 of a whole number is that number, otherwise the next one up)."""
    near = round(cycles)  # an int
    return near if abs(cycles - near) < 1e-6 else math.ceil(cycles)


def own_error(
    rate: float, patches: int, cycles: float, t_states: float = 0.0, t_error: float = 0.0
) -> float:
    """A job's own logical error over its run: its memory and gate error, as the
    estimator counts a program's (``qmk estimate``: its layout's logical qubits through
    its logical depth, and each T state it consumes). Each of its ``patches`` (its
    block's tiles, data and routing: the lattice-surgery gates run through the routing
    patches) fails at ``rate`` a cycle through its ``cycles`` private cycles, and each
    of its ``t_states`` at ``t_error`` (the factories' output error); any failing:
    ``1 - (1 - rate)^(patches cycles) (1 - t_error)^t_states``.

    >>> round(own_error(1e-3, 2, 50, 10, 1e-4), 9) == round(
    ...     1 - (1 - 1e-3) ** 100 * (1 - 1e-4) ** 10, 9)
    True
    """
    memory = idle_error(rate, patches, cycles)
    if t_states <= 0 or t_error <= 0:
        return memory
    gates = -math.expm1(t_states * math.log1p(-t_error))
    return memory + gates - memory * gates


def added_budget(budget: float, own: float) -> float:
    """What an error ``budget`` over a job's whole run leaves for waiting beside its
    ``own`` error: the most ``a`` with ``1 - (1 - own)(1 - a) <= budget`` (0 where its
    own error alone passes it).

    >>> added_budget(0.75, 0.5), added_budget(1e-3, 2e-3)
    (0.5, 0.0)
    """
    if own >= budget:
        return 0.0
    return (budget - own) / (1.0 - own)


def whole_error(own: float, added: float) -> float:
    """``1 - (1 - own)(1 - added)``: a job's whole logical error, its own run's and what
    its waits added, either failing.

    >>> whole_error(0.5, 0.5)
    0.75
    """
    return own + added - own * added


def idle_error(rate: float, patches: int, cycles: float) -> float:
    """``1 - (1 - rate)^(patches * cycles)``: a logical error on any of ``patches`` idle
    ``cycles`` cycles each, at ``rate`` per patch and cycle.

    >>> round(idle_error(1e-3, 2, 50), 6) == round(1 - (1 - 1e-3) ** 100, 6)
    True
    """
    if rate <= 0 or patches <= 0 or cycles <= 0:
        return 0.0
    return -math.expm1(patches * cycles * math.log1p(-rate))
