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

from qmk.execution.footprint import Block, Footprint, Step, StepKind
from qmk.execution.target import read_qvm, refuse
from qmk.memo import Memo
from qmk.qvm.ops import OPS, Tally

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qmk.engines.observables import Observable
    from qmk.execution.gradient import Gradient
    from qmk.execution.plan import Plan
    from qmk.execution.request import RunRequest
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Control
    from qmk.qvm.verify import VerifiedProgram

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
        program: VerifiedProgram,
        request: RunRequest,
        *,
        local: bool = False,
        initial_state: Any = None,
        final_state: bool | str = False,
    ) -> LogicalExecutable:
        """``program`` under ``request`` on the logical machine; ``initial_state`` and
        ``final_state`` are :func:`qmk.execution.executor.execute`'s (``local``, a run
        in the caller's own process, changes nothing here).

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

    program: VerifiedProgram
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

            plan = plan_for(self.program, self.request)
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
        ``seed`` (``started``: when the caller's clock for the run's wall time began)."""
        from qmk.execution.executor import execute

        request = self.request
        if (request.shots, request.seed) != (shots, seed):
            request = msgspec.structs.replace(request, shots=shots, seed=seed)
        return execute(
            self.program,
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

        return gradient(self.program, self.request, observables, initial_state=self.initial_state)


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
    from qmk.ft.layout import layout_block
    from qmk.qvm.profiles import parse_profile

    stretches: dict[int, _Stretch] = {}
    fences: dict[int, int] = {}
    points = {0}
    per_rotation = _ts_per_rotation(plan)
    for step, (start, end) in zip(plan.steps, plan.timing, strict=True):
        node = step.node
        begin = _tick(start)
        points.update((begin, _tick(end)))
        if node.op == "FENCE_EPOCH":
            fences[begin] = fences.get(begin, 0) + 1
            continue
        spec = OPS[node.op]
        stretch = stretches.setdefault(begin, _Stretch())
        stretch.t_states += _t_states(node, spec.tally, per_rotation)
        teleport = step.kind == "teleport_cnot"
        stretch.bell_pairs += int(teleport or node.op == "OPEN_CHAN")
        stretch.measurements += len(node.produces) if step.measures else 0
        stretch.teleport = stretch.teleport or teleport
        stretch.gates = stretch.gates or not step.measures
        stretch.routed = stretch.routed or (spec.tally in _JOINS and end > start)
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
        steps=merged(steps),
        physical_qubits=plan.peak_physical_qubits,
        duration_ns=plan.logical_cycles * plan.cycle_time_ns,
    )


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
    from qmk.estimate.counts import count_graph
    from qmk.estimate.params import TS_PER_ROTATION_A, TS_PER_ROTATION_B, budget_from_json

    counts = count_graph(plan.program.graph)
    if not counts.rotation_count:
        return 0
    budget = budget_from_json(None, counts)
    return math.ceil(
        TS_PER_ROTATION_A * math.log2(counts.rotation_count / budget.rotations) + TS_PER_ROTATION_B
    )


__all__ = ["LogicalExecutable", "LogicalTarget", "footprint", "merged"]
