"""The ``logical`` target: the gate-level logical machine (:mod:`qmk.execution.target`).

A program runs on the executor (:func:`qmk.execution.executor.execute`): the router's
engine, the stabilizer batch sampler or trajectories, logical errors from the code
profiles. Its :class:`~qmk.execution.footprint.Footprint` is cut from the plan's ASAP
schedule (:attr:`qmk.execution.plan.Plan.timing`, from the op table's logical cycles
under each qubit's code): the time axis is cut at every start and end of an op, each
stretch a step with the T states, Bell pairs and logical measurements of the ops that
start in it, routed when one of them joins two or more qubits; equal stretches in a row
are one step repeated, and every ``FENCE_EPOCH`` a fence. Its tiles are the estimator's
fast block (Litinski's, :mod:`qmk.ft.layout`) for the program's peak of logical qubits.

T states per op, as the estimator counts them (:mod:`qmk.estimate.counts`): one per T,
T^dag and INJECT_T_STATE, four per Toffoli or CCZ, one per rotation by an odd multiple
of pi/4 and the estimator's ``numTsPerRotation`` per rotation by any other angle.

>>> from qmk.execution.request import RunRequest
>>> from qmk.qvm.asm import assemble
>>> program = LogicalTarget().read(assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... h: APPLY_H vq:q0
... t: APPLY_T vq:q0
... c: APPLY_CNOT vq:q0, vq:q1
... m0: MEASURE_Z vq:q0, out:m0
... m1: MEASURE_Z vq:q1, out:m1
... '''))
>>> request = RunRequest(program_digest="ab" * 32, shots=100, seed=5, noise=False)
>>> executable = LogicalTarget().compile(program, request)
>>> fp = executable.footprint
>>> fp.logical_qubits, fp.t_states, fp.measurements, fp.duration_cycles, fp.tiles
(2, 1, 2, 5, 9)
>>> [(s.kind, s.cycles, s.repeat, s.t_states, s.routed) for s in fp.steps]
... # doctest: +NORMALIZE_WHITESPACE
[('gates', 1, 2, 0, False), ('gates', 1, 1, 1, False), ('gates', 1, 1, 0, True),
 ('measure', 1, 1, 0, False)]
>>> executable.run(100, 5).counts == executable.run(100, 5).counts
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.estimate.tallies import TALLIES, Tally
from qmk.execution.footprint import Block, Footprint, Step, StepKind, merged
from qmk.execution.target import read_qvm, refuse
from qmk.memo import Memo
from qmk.qvm.expansions import measures
from qmk.qvm.ops import OPS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qmk.engines.observables import Observable
    from qmk.execution.gradient import Gradient
    from qmk.execution.plan import Plan
    from qmk.execution.request import RunRequest
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Control
    from qmk.qvm.verify import FoldedProgram, VerifiedProgram

#: The block the logical machine's tiles are counted in: the estimator's layout.
BLOCK: Block = "fast"
#: A time of the plan's schedule as a whole logical cycle (sums of the op table's
#: integer cycles; a code whose ops take fractions of a cycle rounds up).
_SLACK = 1e-9


#: The ops that join two or more patches (a lattice-surgery merge over routing tiles).
_JOINS = frozenset({Tally.TWO_QUBIT, Tally.CCZ, Tally.BELL_MEASURE})


def _tick(time: float) -> int:
    return math.ceil(time - _SLACK)


class LogicalTarget:
    """The gate-level logical machine as a target."""

    name = "logical"

    def read(self, source: Any, *, limits: Any = None) -> VerifiedProgram:
        """A verified program from a graph, QVM JSON (text or data), a verified program or
        a file path (:func:`qmk.execution.executor.load_program`).

        Raises:
            QMKError: unreadable input, a source that does not lower, a graph with errors.
        """
        program: VerifiedProgram = read_qvm(source, limits=limits)
        return program

    def compile(
        self,
        program: VerifiedProgram | FoldedProgram,
        request: RunRequest,
        *,
        local: bool = False,
        initial_state: Any = None,
        final_state: bool | str = False,
    ) -> LogicalExecutable:
        """``program`` under ``request`` on the logical machine; ``initial_state`` and
        ``final_state`` are :func:`qmk.execution.executor.execute`'s (``local``, a run
        in the caller's own process, changes nothing here). A program kept folded
        (:class:`~qmk.qvm.verify.FoldedProgram`) has its footprint, and no run.

        Raises:
            TargetError: ``QM102`` for target options (the logical machine takes none).
        """
        for option in sorted(request.target_options):
            raise refuse(self.name, option, "the gate-level machine takes no target options")
        return LogicalExecutable(
            program=program, request=request, initial_state=initial_state, final_state=final_state
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogicalExecutable:
    """A verified program and its run request on the logical machine."""

    program: VerifiedProgram | FoldedProgram
    request: RunRequest
    initial_state: Any = None
    final_state: bool | str = False
    _footprint: list[Footprint] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def footprint(self) -> Footprint:
        """The run's footprint (module docstring), from the plan the run uses.

        Raises:
            QECError: a profile or qubit set the QEC layer does not know.
        """
        if not self._footprint:
            from qmk.execution.executor import plan_for
            from qmk.qvm.verify import FoldedProgram

            program = self.program
            if isinstance(program, FoldedProgram):  # its one-turn view's plan, multiplied
                turn = plan_for(program.turn, self.request)
                self._footprint.append(folded_footprint(turn, program))
                return self._footprint[0]
            plan = plan_for(program, self.request)
            self._footprint.append(_FOOTPRINTS.get((id(plan),), plan, lambda: footprint(plan)))
        return self._footprint[0]

    def run(
        self,
        shots: int,
        seed: int,
        *,
        control: Control | None = None,
        resume: Any = None,
        started: float | None = None,
    ) -> RunResult:
        """:func:`qmk.execution.executor.execute` of the program, ``shots`` shots seeded
        ``seed`` (``started``: when the caller's clock for the run's wall time began).

        Raises:
            UnrollError: ``QV505 unrolled-too-large`` for a program kept folded: the
                logical machine applies operations one at a time.
        """
        from qmk.execution.executor import execute

        program = _runnable(self.program)
        request = self.request
        if (request.shots, request.seed) != (shots, seed):
            request = msgspec.structs.replace(request, shots=shots, seed=seed)
        return execute(
            program,
            request,
            control=control,
            resume=resume,
            initial_state=self.initial_state,
            final_state=self.final_state,
            started=started,
        )

    def gradient(self, observables: Sequence[Observable]) -> Gradient:
        """Exact expectation values of ``observables`` on the program's final state and
        their derivatives by every gate angle (:func:`qmk.execution.gradient.gradient`).

        Raises:
            EngineError: ``QE113`` for a program that is not unitary, or noise on.
        """
        from qmk.execution.gradient import gradient

        program = _runnable(self.program)
        return gradient(program, self.request, observables, initial_state=self.initial_state)


def _runnable(program: VerifiedProgram | FoldedProgram) -> VerifiedProgram:
    """``program`` to apply one operation at a time.

    Raises:
        UnrollError: ``QV505 unrolled-too-large`` for a program kept folded.
    """
    from qmk.qvm.verify import FoldedProgram

    if not isinstance(program, FoldedProgram):
        return program
    from qmk.qvm.errors import UnrollError

    raise UnrollError.of(
        "unrolled-too-large",
        f"the program unrolls to {program.totals.nodes} nodes, past the unrolling limit it "
        "was verified under; the logical machine applies operations one at a time, so it "
        "has a footprint and an estimate but no run",
        size=program.totals.nodes,
    )


#: A plan's footprint, kept with the plan (a function of it alone).
_FOOTPRINTS: Memo[Footprint] = Memo(64)


@dataclass(slots=True)
class _Stretch:
    """What starts in one stretch of the timeline."""

    t_states: int = 0
    bell_pairs: int = 0
    measurements: int = 0
    routed: bool = False
    teleport: bool = False
    gates: bool = False
    node: str | None = None


def footprint(plan: Plan) -> Footprint:
    """The logical machine's footprint of ``plan`` (module docstring)."""
    steps = _timeline(zip(plan.steps.nodes, plan.timing, strict=True), _ts_per_rotation(plan), 0)
    return _footprint(plan, merged(steps), plan.logical_cycles)


def folded_footprint(plan: Plan, program: FoldedProgram) -> Footprint:
    """The footprint of a program kept folded (module docstring), from ``plan``, the
    plan of its one-turn view.

    Each stretch of rows outside a REPEAT is cut as :func:`footprint` cuts the whole.
    Each REPEAT row is one step a turn, repeated ``count`` times: its cycles are the
    turn's span in the one-turn schedule, and it draws the turn's T states, Bell pairs
    and measurements. Stretches and turns follow each other with no overlap, so the
    duration is an upper bound of the unrolled schedule's, and the T states,
    measurements and tiles are the unrolled program's. A turn's fences are not points
    where the machine may preempt the job.
    """
    from qmk.qvm.fold import one_turn

    view = one_turn(program.folded)
    per_rotation = _ts_per_rotation_of(program.folded)
    by_index: dict[int, list[tuple[Any, tuple[float, float]]]] = {}
    for index, pair in enumerate(zip(plan.steps.nodes, plan.timing, strict=True)):
        by_index.setdefault(index, []).append(pair)

    def piece(lo: int, hi: int, depth: int) -> list[Step]:
        """The steps of view rows ``lo``..``hi`` whose REPEAT rows around are ``depth``."""
        out: list[Step] = []
        here = lo
        inner = [s for s in view.spans if len(s.path) == depth + 1 and lo <= s.start < hi]
        for span in (*inner, None):
            until = hi if span is None else span.start
            rows = [pair for i in range(here, until) for pair in by_index.get(i, ())]
            if rows:
                out.extend(_timeline(rows, per_rotation, min(t[0] for _, t in rows)))
            if span is None:
                break
            turn = piece(span.start, span.end, depth + 1)
            if turn:
                out.append(_turn_step(turn, span.count))
            here = span.end
        return out

    steps = merged(piece(0, len(view.nodes), 0))
    cycles = sum(step.cycles * step.repeat for step in steps)
    fp = _footprint(plan, steps, cycles)
    return msgspec.structs.replace(fp, operations=program.totals.nodes)


def _turn_step(turn: list[Step], count: int) -> Step:
    """One turn of a REPEAT row (``turn``: its steps) as one step, ``count`` times."""
    kinds = {step.kind for step in turn if step.kind != "fence"}
    kind: StepKind = "gates"
    if "teleport" in kinds:
        kind = "teleport"
    elif kinds == {"measure"}:
        kind = "measure"
    return Step(
        kind=kind,
        cycles=sum(step.cycles * step.repeat for step in turn),
        repeat=count,
        t_states=sum(step.t_states * step.repeat for step in turn),
        bell_pairs=sum(step.bell_pairs * step.repeat for step in turn),
        routed=any(step.routed for step in turn),
        measurements=sum(step.measurements * step.repeat for step in turn),
        node=next((step.node for step in reversed(turn) if step.node), None),
    )


def _timeline(timed: Any, per_rotation: int, origin: float) -> list[Step]:
    """The steps of the plan's nodes ``timed`` (each with its ``(start, end)``), the time
    axis cut at every start and end from ``origin`` on (module docstring)."""
    stretches: dict[int, _Stretch] = {}
    fences: dict[int, int] = {}
    points = {_tick(origin)}
    for node, (start, end) in timed:
        begin = _tick(start)
        points.update((begin, _tick(end)))
        if node.op == "FENCE_EPOCH":
            fences[begin] = fences.get(begin, 0) + 1
            continue
        spec, tally = OPS[node.op], TALLIES[node.op]
        stretch = stretches.setdefault(begin, _Stretch())
        stretch.t_states += _t_states(node, tally, per_rotation)
        teleport = spec.kind == "teleport_cnot"
        stretch.bell_pairs += int(teleport or node.op == "OPEN_CHAN")
        measured = measures(spec)
        stretch.measurements += len(node.produces) if measured else 0
        stretch.teleport = stretch.teleport or teleport
        stretch.gates = stretch.gates or not measured
        stretch.routed = stretch.routed or (tally in _JOINS and end > start)
        stretch.node = node.id
    ordered = sorted(points)
    steps: list[Step] = []
    for k, point in enumerate(ordered):
        steps.extend(Step(kind="fence", cycles=0) for _ in range(fences.get(point, 0)))
        cycles = ordered[k + 1] - point if k + 1 < len(ordered) else 0
        found = stretches.get(point)
        if found is None and cycles == 0:
            continue
        here = found or _Stretch()
        kind: StepKind = "teleport" if here.teleport else "gates"
        if not here.teleport and here.measurements and not here.gates:
            kind = "measure"
        steps.append(
            Step(
                kind=kind,
                cycles=cycles,
                t_states=here.t_states,
                bell_pairs=here.bell_pairs,
                routed=here.routed,
                measurements=here.measurements,
                node=here.node,
            )
        )
    return steps


def _footprint(plan: Plan, steps: tuple[Step, ...], cycles: float) -> Footprint:
    """The footprint of ``steps`` (``cycles`` long) on the tiles of ``plan``'s peak."""
    from qmk.ft.layout import layout_block
    from qmk.qvm.profiles import parse_profile

    n = plan.peak_logical_qubits
    layout = layout_block(BLOCK, n)
    distances = [parse_profile(p).distance for p in plan.profiles]
    return Footprint(
        target="logical",
        logical_qubits=n,
        block=BLOCK,
        data_tiles=sum(len(p) for p in layout.patches) if n else 0,
        routing_tiles=len(layout.routing) if n else 0,
        code_distance=max(distances, default=0),
        steps=steps,
        physical_qubits=plan.peak_physical_qubits,
        duration_ns=cycles * plan.cycle_time_ns,
    )


def _t_states(node: Any, tally: Tally, per_rotation: int) -> int:
    """T states the node consumes (module docstring)."""
    from qmk.estimate.counts import rotation_kind

    if tally is Tally.T:
        return 1
    if tally is Tally.CCZ:
        return 4
    if tally in (Tally.ROTATION, Tally.ROTATION_MEASURE):
        theta = node.args.get("theta" if tally is Tally.ROTATION else "angle")
        kind = rotation_kind(float(theta)) if isinstance(theta, int | float) else "rotation"
        return {"clifford": 0, "t": 1}.get(kind, per_rotation)
    return 0


def _ts_per_rotation(plan: Plan) -> int:
    """The estimator's ``numTsPerRotation`` for the program (0: no arbitrary rotation)."""
    return _ts_per_rotation_of(plan.program.graph)


def _ts_per_rotation_of(graph: Any) -> int:
    """:func:`_ts_per_rotation` of ``graph``, counted as the estimator counts (a folded
    graph's REPEAT rows as often as they repeat)."""
    from qmk.estimate.counts import count_graph
    from qmk.estimate.params import TS_PER_ROTATION_A, TS_PER_ROTATION_B, budget_from_json

    counts = count_graph(graph)
    if not counts.rotation_count:
        return 0
    budget = budget_from_json(None, counts)
    return math.ceil(
        TS_PER_ROTATION_A * math.log2(counts.rotation_count / budget.rotations) + TS_PER_ROTATION_B
    )


__all__ = ["LogicalExecutable", "LogicalTarget", "folded_footprint", "footprint"]
