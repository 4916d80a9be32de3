"""What a compiled program asks of the machine: its footprint.

A target (:mod:`qmk.execution`'s target protocol) compiles a verified program and its run
request into an executable, and the executable reports its :class:`Footprint`. That is
the tiles its patches need on the floorplan (in one block layout of Litinski's "A Game
of Surface Codes": ``compact``, ``intermediate`` or ``fast``), and its timeline in
logical cycles. The timeline is a sequence of :class:`Step` values, each repeated
``repeat`` times. A step says what one repetition takes on a private machine (its own
factory output always ready, its own routing, no other tenant). It says which shared
resources it draws on: T states from the factories, Bell pairs from the links between
modules, routing tiles, decoder work.

The kernel's machine scheduler (``[machine-time]``) places a job by its tiles and
advances it step by step, epoch by epoch, against the factories, links and decoder that
all jobs share; a wait there is charged to the job's qubits as idle cycles. Schedule-only
experiments build footprints from logical counts alone. One value serves both: steps
that repeat are one :class:`Step`, so a program of 10^5 T gates can be a few steps.

A footprint is plain data that crosses processes (admission to the scheduler, the
attestation): a frozen msgspec struct that round-trips through JSON.

>>> fp = Footprint(
...     target="lattice-surgery", logical_qubits=2, block="fast", data_tiles=4,
...     routing_tiles=5, code_distance=9,
...     steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=3),
...            Step(kind="measure", cycles=0, measurements=2, node="m")))
>>> fp.tiles, fp.duration_cycles, fp.t_states, fp.measurements
(9, 3, 3, 2)
>>> Footprint.from_json(fp.to_json()) == fp
True
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

from qmk.values import convert

_COUNT = Annotated[int, msgspec.Meta(ge=0)]
_POSITIVE = Annotated[int, msgspec.Meta(ge=1)]

#: What a step does (the machine reads only its numbers; the kind is for people and plots).
StepKind = Literal["gates", "ppm", "rotation", "measure", "teleport", "fence", "idle"]

#: Litinski's blocks, least space first (the names :mod:`qmk.ft.layout` draws).
Block = Literal["compact", "intermediate", "fast"]

#: A batch sampler draws shots in lanes of this many (stim's SIMD width): the record of
#: fewer shots takes as much memory as this many.
RECORD_LANES = 256
#: Copies of a run's measurement record a process holds at once: the sampler's own and
#: the shots it hands back.
RECORD_COPIES = 2


def record_bytes(measurements: int, shots: int) -> int:
    """The bytes a run's measurement record takes while it is sampled: ``measurements``
    bits a shot, at least :data:`RECORD_LANES` shots wide, :data:`RECORD_COPIES` copies.
    The kernel holds a job's to a worker's memory at submit, and a worker checks it
    against its own before it samples.

    >>> record_bytes(10**9, 1)  # stim's REPEAT 1000000000 { M 0 }, one shot
    64000000000
    """
    return measurements * max(shots, RECORD_LANES) // 8 * RECORD_COPIES


class Step(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One stretch of a footprint's timeline, done ``repeat`` times in a row.

    Attributes:
        kind: what the stretch does (:data:`StepKind`); ``fence`` marks a point where the
            scheduler may preempt or migrate the job (``cycles`` 0).
        cycles: logical cycles one repetition takes on a private machine.
        repeat: how many times the stretch is done in a row.
        t_states: T states one repetition consumes from the shared factories.
        bell_pairs: Bell pairs one repetition consumes from the links between modules.
        routed: whether a repetition occupies the job's routing tiles (a multi-patch PPM).
        measurements: logical measurements one repetition makes (decoder work beyond
            the steady syndrome stream of the job's live patches).
        node: the id of the program's last node the stretch covers, where known: waits
            before the next step become idle cycles after it.
    """

    kind: StepKind
    cycles: _COUNT
    repeat: _POSITIVE = 1
    t_states: _COUNT = 0
    bell_pairs: _COUNT = 0
    routed: bool = False
    measurements: _COUNT = 0
    node: str | None = None


class Footprint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one run of a compiled program needs of the machine (module docstring).

    Attributes:
        target: the target that compiled it (``logical``, ``lattice-surgery``,
            ``neutral-atom``, ...).
        logical_qubits: the program's peak of live logical qubits.
        block: the block layout its tiles are counted in.
        data_tiles: tiles holding data patches.
        routing_tiles: tiles of the routing region the job's PPMs use.
        code_distance: the code distance of its patches (0: not a patch code).
        steps: the timeline, in order.
        physical_qubits: the physical qubits it holds at its peak (its patches', a
            device's atoms; 0: not counted).
        duration_ns: its time on a private machine in ns (0: not known beside its
            cycles). A target outside the patch machine (the neutral-atom device) keeps
            its time here, its steps of 0 cycles, and has no tiles.
        operations: the operations one run applies, unrolled, where its target counts
            them beside a verified program's (a stim circuit's; 0: not counted): the
            kernel bounds a job's work by them before it is queued.
    """

    target: str
    logical_qubits: _COUNT
    block: Block
    data_tiles: _COUNT
    routing_tiles: _COUNT
    code_distance: _COUNT
    steps: tuple[Step, ...] = ()
    physical_qubits: _COUNT = 0
    duration_ns: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    operations: _COUNT = 0

    @property
    def tiles(self) -> int:
        """The tiles a placement must hold together: data and routing."""
        return self.data_tiles + self.routing_tiles

    @property
    def duration_cycles(self) -> int:
        """Logical cycles of the whole timeline on a private machine."""
        return sum(s.cycles * s.repeat for s in self.steps)

    @property
    def t_states(self) -> int:
        """T states the run consumes in all."""
        return sum(s.t_states * s.repeat for s in self.steps)

    @property
    def bell_pairs(self) -> int:
        """Bell pairs the run consumes in all."""
        return sum(s.bell_pairs * s.repeat for s in self.steps)

    @property
    def measurements(self) -> int:
        """Logical measurements the run makes in all."""
        return sum(s.measurements * s.repeat for s in self.steps)

    @property
    def fences(self) -> int:
        """Points where the run may be preempted or migrated."""
        return sum(s.repeat for s in self.steps if s.kind == "fence")

    def fenced(
        self,
        every: int,
        *,
        t_per_cycle: float = math.inf,
        pairs_per_cycle: float = math.inf,
        most: int | None = None,
    ) -> Footprint:
        """The footprint with a fence wherever more than ``every`` cycles would run
        without one: the points where the machine may preempt the job.

        A patch machine can stop a job between any two logical operations (its patches
        keep their syndrome cycles, idle), so a fence here changes no outcome, only where
        the scheduler may stop it. A repetition counts the cycles it takes at its pace
        alone: its private cycles, or more where its T states come at ``t_per_cycle``
        or its Bell pairs at ``pairs_per_cycle`` (a job waiting on the factories holds
        its tiles too). A repeated step is cut between repetitions; a single repetition
        longer than ``every`` is not cut. With ``most``, the fences are spread wider
        where more would be needed (a run over ``every * most`` cycles): the scheduler's
        work grows with a job's steps. Only the last piece of a cut step keeps its
        ``node``: a wait at an added fence falls after the node done before the step
        (:meth:`~qmk.kernel.machine.jobs.JobRecord.idle_after`).

        >>> fp = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...                routing_tiles=2, code_distance=9,
        ...                steps=(Step(kind="gates", cycles=2, repeat=5, node="g"),))
        >>> [(s.kind, s.repeat, s.node) for s in fp.fenced(4).steps if s.kind != "fence"]
        [('gates', 2, None), ('gates', 2, None), ('gates', 1, 'g')]
        >>> fp.fenced(4).fences, fp.fenced(10) is fp
        (2, True)
        >>> t = Footprint(target="x", logical_qubits=1, block="fast", data_tiles=2,
        ...               routing_tiles=2, code_distance=9,
        ...               steps=(Step(kind="rotation", cycles=1, t_states=1, repeat=30),))
        >>> t.fenced(100) is t, t.fenced(100, t_per_cycle=0.1).fences  # 10 cycles a state
        (True, 2)
        """
        if every < 1:
            raise ValueError(f"fences every {every} cycles: at least 1")

        def pace(step: Step) -> float:
            return max(step.cycles, step.t_states / t_per_cycle, step.bell_pairs / pairs_per_cycle)

        if most is not None:
            total = sum(pace(step) * step.repeat for step in self.steps)
            every = max(every, math.ceil(total / max(most, 1)))
        steps: list[Step] = []
        run = 0.0  # cycles since the last fence, at the steps' pace alone
        for step in self.steps:
            if step.kind == "fence":
                run = 0.0
                steps.append(step)
                continue
            alone = pace(step)
            left = step.repeat
            while left:
                if not alone or run + alone * left <= every:
                    take = left
                else:  # as many as fit; one at least after a fence (it is not cut)
                    take = int(max(every - run, 0.0) // alone) or (0 if run else 1)
                if take:
                    node = step.node if take == left else None
                    steps.append(msgspec.structs.replace(step, repeat=take, node=node))
                    left -= take
                    run += alone * take
                if left:
                    steps.append(Step(kind="fence", cycles=0))
                    run = 0.0
        if len(steps) == len(self.steps):
            return self
        return msgspec.structs.replace(self, steps=tuple(steps))

    def to_json(self) -> dict[str, Any]:
        """The footprint as plain JSON data."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Footprint:
        """A footprint from its JSON (a coded one-line error for a bad one)."""
        footprint: Footprint = convert(data, cls, where="footprint")
        return footprint


def merged(steps: list[Step]) -> tuple[Step, ...]:
    """``steps`` with equal steps in a row (their node apart) made one, repeated; its node
    the last one's."""
    out: list[Step] = []
    for step in steps:
        if out and _same(out[-1], step):
            last = out[-1]
            out[-1] = msgspec.structs.replace(
                last, repeat=last.repeat + step.repeat, node=step.node or last.node
            )
        else:
            out.append(step)
    return tuple(out)


def _same(a: Step, b: Step) -> bool:
    return (a.kind, a.cycles, a.t_states, a.bell_pairs, a.routed, a.measurements) == (
        b.kind,
        b.cycles,
        b.t_states,
        b.bell_pairs,
        b.routed,
        b.measurements,
    )
