"""The ``lattice-surgery`` target: a program run as a fault-tolerant machine runs it
(:mod:`qmk.execution.target`).

1. The program is lowered to Pauli product measurements and pi/8 rotations
   (:mod:`qmk.ft.lower`).
2. Its patches are laid out in one of Litinski's blocks (:mod:`qmk.ft.layout`, the
   option ``block``: ``compact``, ``intermediate`` or ``fast``, the default).
3. It is scheduled with the estimator's T factories (:mod:`qmk.ft.schedule`). The code,
   its distance and the factories come from :func:`qmk.ft.model.ft_model`: the
   request's ``profile`` names the code and distance, ``auto`` the estimator's
   distance, and its ``qubit`` the physical qubits.
4. It is executed on an engine (:mod:`qmk.ft.execute`) with its shots batched. A
   Clifford schedule is one batch circuit where the engine samples one (the
   stabilizer, mode ``stim-batch``). Else its shots are grouped by error pattern and
   split only where an event is measured (mode ``branches``).

The engine is the router's (:mod:`qmk.engines.router`), for the work the schedule is:
its patches and the magic-state ancilla, the gates of its PPMs and injections, its
Clifford-ness and mid-circuit measurements. A job names one as any job does
(``engine``), and the router refuses an engine that cannot run it with its own code.

The run's :class:`~qmk.execution.footprint.Footprint` is what the shared machine
(``docs/machine.md``) places and advances: the block's data and routing tiles, and its
timeline in ticks (one tick is one logical cycle) op by op in program order. Each op's
ticks are those in the block (:func:`qmk.ft.schedule.ticks`) on a private machine whose
factory output is always ready. (The machine shares its factories, so a wait for one is
the machine's, never the footprint's.)

- A pi/8 rotation takes one T state and two logical measurements (its ``P x Z`` and
  the ancilla's X).
- A synthesised rotation takes the estimator's T states per rotation, each a rotation
  of the block's ``X``-or-``Y`` ticks.
- A PPM takes one measurement. An op of more than zero ticks is routed.
- Each ``FENCE_EPOCH`` of the program is a fence (where the machine may preempt it).

Its code distance is the request's profile's (a kernel's machine runs every job at its
own). Its telemetry has the schedule's figures (``ppm_count``, ``factory_wait_cycles``,
``routing_stalls``, ``physical_qubits``...), and its result's JSON the ``layout`` and
the ``schedule``. A run with a shared machine's schedule (a kernel job) took the span
that schedule gave it: its logical cycles and factory waits are the machine's (the
private schedule's cycles are ``private_logical_cycles``).

Settings it cannot honour (a precision, a noise model, a calibration, an initial or
final state, a split into parts, a resume) are refused with ``QM102``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from qmk.execution.footprint import Block, Footprint, Step, merged
from qmk.execution.target import own_options, read_qvm, refuse

if TYPE_CHECKING:
    from qmk.engines.router import Choice
    from qmk.execution.request import RunRequest
    from qmk.execution.result import RunResult
    from qmk.execution.trajectories import Control
    from qmk.ft.layout import Layout
    from qmk.ft.lower import Lowered
    from qmk.ft.model import FTModel
    from qmk.ft.schedule import Schedule
    from qmk.qvm.verify import VerifiedProgram

NAME = "lattice-surgery"

#: Settings of a run request this target cannot honour: field -> the option's name.
_UNHONOURED = {
    "precision": "precision",
    "noise_model": "noise_model",
    "calibration": "calibration",
    "engine_options": "engine_options",
    "part": "part",
    "rewrite": "rewrite",
}
_WHY = (
    "its physics is the layout's (the estimator's factory and the profile's logical error "
    "rate), its shots run in one pass"
)


class SurgeryOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The target's options (``RunRequest.target_options``)."""

    #: Litinski's block the patches are laid out in.
    block: Block = "fast"


class SurgeryTarget:
    """Lattice surgery as a target (module docstring)."""

    name = NAME

    def read(self, source: Any, *, limits: Any = None) -> VerifiedProgram:
        """A verified program (:func:`~qmk.execution.target.read_qvm`)."""
        program: VerifiedProgram = read_qvm(source, limits=limits)
        return program

    def compile(
        self, program: VerifiedProgram, request: RunRequest, *, local: bool = False, **options: Any
    ) -> Surgery:
        """``program`` lowered, laid out, scheduled and routed for ``request`` (``local``
        changes nothing here).

        Raises:
            TargetError: ``QM102`` an option or setting it cannot honour.
            FTError: ``QP101``-``QP104``, ``QP107`` (the lowering's and the model's refusals).
            EngineError: the engine the request names cannot run it.
        """
        from qmk.estimate.counts import count_graph
        from qmk.ft.layout import layout_for
        from qmk.ft.lower import lower
        from qmk.ft.model import ft_model
        from qmk.ft.schedule import schedule
        from qmk.qec.values import qubit_of  # custom qubits travel as JSON

        chosen = own_options(
            NAME,
            request,
            options,
            SurgeryOptions,
            unhonoured=_UNHONOURED,
            why=_WHY,
            channels="lattice surgery joins no other tenant's qubits",
        )
        family, distance = _code(request.profile)
        lowered = lower(program)
        model = ft_model(count_graph(program.graph), qubit_of(request.qubit), family, distance)
        layout = layout_for(model, chosen.block, lowered.qubits[: lowered.data_qubits])
        sched = schedule(lowered, layout, model)
        return Surgery(
            program=program,
            request=request,
            lowered=lowered,
            model=model,
            layout=layout,
            schedule=sched,
        )


def _code(profile: str) -> tuple[str, int | None]:
    """The code family and distance of a request's profile (``auto``: the estimator's
    distance of the surface code)."""
    if profile == "auto":
        return "surface_code", None
    from qmk.qec.errors import QECError
    from qmk.qvm.profiles import ProfileError, parse_profile

    try:
        parsed = parse_profile(profile)
    except ProfileError as exc:
        raise QECError.of("unknown-profile", f"profile {profile}: {exc}") from None
    return parsed.family, parsed.distance


@dataclass(frozen=True, slots=True, kw_only=True)
class Surgery:
    """A program lowered, laid out and scheduled for lattice surgery: its executable."""

    program: VerifiedProgram
    request: RunRequest
    lowered: Lowered
    model: FTModel
    layout: Layout
    schedule: Schedule
    _kept: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def footprint(self) -> Footprint:
        """The schedule's footprint (module docstring)."""
        found = self._kept.get("footprint")
        if found is None:
            found = self._kept["footprint"] = _footprint(self)
        assert isinstance(found, Footprint)
        return found

    @property
    def batch(self) -> Any:
        """The schedule as one batch circuit (:func:`qmk.ft.execute.batch_form`), or None."""
        if "batch" not in self._kept:
            from qmk.ft.execute import batch_form

            self._kept["batch"] = batch_form(
                self.lowered, self.schedule, self.model, noise=self.request.noise, idle=self.idle
            )
        return self._kept["batch"]

    @property
    def idle(self) -> dict[int, float]:
        """The request's machine schedule's idle cycles (a kernel job's waits on the
        shared machine), by the position in the schedule's order of the first op after
        the node each follows; empty with noise off or no schedule."""
        found = self._kept.get("idle")
        if found is None:
            found = self._kept["idle"] = _idle_positions(self)
        assert isinstance(found, dict)
        return found

    def route(self, shots: int) -> Choice:
        """The router's engine for ``shots`` shots of the schedule (named, or the cheapest
        able: :func:`qmk.engines.router.route`)."""
        from qmk.engines.router import route

        return route(_workload(self, shots), self.request.engine)

    def run(
        self,
        shots: int,
        seed: int,
        *,
        control: Control | None = None,
        resume: Any = None,
    ) -> RunResult:
        """Execute the schedule ``shots`` times (module docstring). ``control`` is never
        asked: a lattice-surgery run has no pause points.

        Raises:
            TargetError: ``QM102`` for a ``resume``.
            EngineError: the engine named cannot run it.
        """
        from qmk.engines import engine_class
        from qmk.engines.batch import batch_compiler

        if resume is not None:
            raise refuse(NAME, "resume", "a lattice-surgery run has no pause points to resume at")
        started = time.perf_counter()
        choice = self.route(shots)
        cls = engine_class(choice.engine)
        compiler = batch_compiler(cls)
        form = self.batch
        sampler = None if compiler is None or form is None else compiler(form[0])
        if sampler is not None:
            bits, injected, mode, sampling, simulations = _sampled(self, sampler, shots, seed)
        else:
            from qmk.ft.execute import locations, run_branches

            bits, injected, tally = run_branches(
                lambda: cls(seed=0, **choice.options),
                self.lowered,
                self.schedule,
                self.model,
                shots=shots,
                seed=seed,
                noise=self.request.noise,
                idle=self.idle,
            )
            where = locations(self.lowered, self.schedule, self.model, self.idle)
            noisy = self.request.noise and bool(where)
            mode, sampling = "branches", "per-pattern" if noisy else "off"
            simulations = tally.simulations
        return _result(
            self, choice, bits, shots, seed, injected, mode, sampling, simulations, started
        )


def _sampled(
    surgery: Surgery, sampler: Any, shots: int, seed: int
) -> tuple[Any, int, str, str, int]:
    """The batch circuit sampled (:func:`qmk.execution.batch.sample_chunked`): bits,
    errors injected, mode, noise sampling, simulations."""
    from qmk.execution import batch
    from qmk.execution.locations import Noise

    circuit, columns, sites = surgery.batch
    names = surgery.lowered.qubits
    noise = tuple(
        Noise(
            step=loc.position,
            before=True,
            qubit=names[loc.patch],
            px=loc.probs[0],
            py=loc.probs[1],
            pz=loc.probs[2],
            cause="idle",
        )
        for _, loc in sites
    )
    lowered = batch.LoweredPlan(
        circuit=circuit,
        event_columns=columns,
        sites=noise,
        rates=batch.site_rates(noise) if noise else None,
    )
    streams = np.random.SeedSequence(seed).spawn(2)
    batch_seed = int(streams[0].generate_state(1, np.uint64)[0]) >> 1
    bits, injected, _ = batch.sample_chunked(
        lowered, sampler, shots, batch_seed, np.random.default_rng(streams[1]), keep_packed=True
    )
    return bits, injected, sampler.mode, lowered.noise_sampling, 1


def _result(
    surgery: Surgery,
    choice: Choice,
    bits: Any,
    shots: int,
    seed: int,
    injected: int,
    mode: str,
    sampling: str,
    simulations: int,
    started: float,
) -> RunResult:
    from qmk.execution.result import RunResult, Telemetry, keyed_counts
    from qmk.ft.execute import locations
    from qmk.qvm.output import layout_of

    sched, model, lowered = surgery.schedule, surgery.model, surgery.lowered
    program, request = surgery.program, surgery.request
    figures = {k: v for k, v in sched.to_json().items() if k != "logical_cycles"}
    figures.update(profile=model.profile, logical_error_rate=model.logical_error_rate)
    cycles, runtime_ns = float(sched.logical_cycles), float(sched.runtime_ns)
    machine = request.machine
    if machine is not None:
        # on the shared machine its factories are the machine's: the run took the span
        # the machine's schedule gave it, its factory waits the machine's
        figures.update(
            private_logical_cycles=sched.logical_cycles,
            factory_wait_cycles=machine.wait_cycles.get("factory", 0),
        )
        cycles = float(machine.end_cycle - machine.start_cycle)
        runtime_ns = cycles * model.cycle_time_ns
    where = locations(lowered, sched, model, surgery.idle) if request.noise else ()
    telemetry = Telemetry(
        engine=choice.engine,
        mode=mode,
        shots=shots,
        epochs=len(program.epochs),
        logical_cycles=cycles,
        logical_time_ns=runtime_ns,
        peak_logical_qubits=len(lowered.qubits),
        peak_physical_qubits=sched.physical_qubits,
        decoder_rounds=cycles * model.distance,
        magic_states=sched.magic_states_consumed,
        teleports=0,
        injected_logical_errors=int(injected),
        noise=request.noise,
        noise_locations=len(where),
        qubit_params=model.qubit,
        profiles=(model.profile,),
        simulations=simulations,
        noise_sampling=sampling,
        wall_time_s=round(time.perf_counter() - started, 6),
        engine_reason=choice.reason,
        figures=figures,
        machine=None if machine is None else machine.record(),
    )
    keys = layout_of(program.graph.metadata, lowered.events)
    ops = lowered.ops
    details = {
        "layout": surgery.layout.to_json(),
        "schedule": [
            {"op": str(ops[i]), "start": sched.slots[i].start, "end": sched.slots[i].end}
            for i in sched.order
        ],
    }
    return RunResult(
        counts=keyed_counts(bits, keys),
        shots=shots,
        seed=seed,
        engine=choice.engine,
        events=lowered.events,
        telemetry=telemetry,
        shot_bits=bits,
        layout=keys,
        choice=choice,
        target=NAME,
        details=details,
    )


def _idle_positions(surgery: Surgery) -> dict[int, float]:
    """:attr:`Surgery.idle` (its docstring): a wait after node ``n`` falls before the
    first op, in execution order, of a node the program lists after ``n`` (none: after
    the last op, where it changes no outcome)."""
    request = surgery.request
    machine = request.machine
    if not (request.noise and machine is not None and machine.idle):
        return {}
    order = {node.id: i for i, node in enumerate(surgery.program.graph.nodes)}
    ops = surgery.lowered.ops
    starts = [order.get(ops[index].node, 0) for index in surgery.schedule.order]
    out: dict[int, float] = {}
    for node, cycles in machine.idle.items():
        after = order.get(node)
        if after is None:
            continue
        first = next((p for p, at in enumerate(starts) if at > after), None)
        if first is not None:
            out[first] = out.get(first, 0.0) + cycles
    return out


def _workload(surgery: Surgery, shots: int) -> Any:
    """What executing the schedule asks of an engine (:class:`~qmk.engines.registry.Workload`)."""
    from qmk.engines.registry import Workload

    lowered = surgery.lowered
    rotations = [op for op in lowered.ops if op.kind in ("rotation", "synth")]
    gates = {"h", "s", "sdg", "cx", "x", "y", "z"}
    if any(op.kind == "rotation" for op in rotations):
        gates |= {"t", "tdg"}
    if any(op.kind == "synth" for op in rotations):
        gates.add("rz")
    measures = sum(1 for op in lowered.ops if op.kind == "measure")
    gate_count = sum(2 * len(op.support) + 2 * len(op.support) for op in lowered.ops)
    first = next(iter(rotations), None)
    batchable = surgery.batch is not None
    return Workload(
        qubits=len(lowered.qubits) + (1 if rotations else 0),
        gates=frozenset(gates),
        gate_count=gate_count,
        clifford=first is None,
        non_clifford=None if first is None else f"node {first.node!r} (a pi/8 rotation)",
        shots=shots,
        mid_circuit=bool(rotations) or measures > 0,
        segments=1 + measures + 2 * len(rotations),
        branches=min(shots, 2 ** min(measures, 40)),
        samples_only=True,
        batchable=batchable,
    )


def _footprint(surgery: Surgery) -> Footprint:
    """The run's footprint (module docstring): its ops' ticks on a private machine whose
    factory output is always ready, in program order, with the program's fences."""
    from qmk.ft.schedule import NON_Z_TICKS, ticks

    lowered, model, layout = surgery.lowered, surgery.model, surgery.layout
    graph = surgery.program.graph
    block = layout.block
    per_rotation = model.ts_per_rotation or 0
    where = {node.id: i for i, node in enumerate(graph.nodes)}
    fences = [i for i, node in enumerate(graph.nodes) if node.op == "FENCE_EPOCH"]
    steps: list[Step] = []
    ahead = 0
    for op in lowered.ops:
        at = where.get(op.node, 0)
        while ahead < len(fences) and fences[ahead] < at:
            if steps:  # a fence before any work stops nothing
                steps.append(Step(kind="fence", cycles=0, node=graph.nodes[fences[ahead]].id))
            ahead += 1
        if op.kind == "synth":  # the estimator's T states, each a rotation of the block
            if per_rotation:
                steps.append(
                    Step(
                        kind="rotation",
                        cycles=NON_Z_TICKS[block],
                        t_states=1,
                        repeat=per_rotation,
                        routed=True,
                        measurements=2,
                        node=op.node or None,
                    )
                )
            continue
        if op.kind not in ("rotation", "measure"):
            continue  # a Pauli or frame change: tracked, no tick
        cycles = ticks(block, op)
        rotation = op.kind == "rotation"
        steps.append(
            Step(
                kind="rotation" if rotation else ("ppm" if cycles else "measure"),
                cycles=cycles,
                t_states=int(rotation),
                routed=cycles > 0,
                measurements=2 if rotation else 1,
                node=op.node or None,
            )
        )
    timeline = merged(steps)
    cycles = sum(s.cycles * s.repeat for s in timeline)
    return Footprint(
        target=NAME,
        logical_qubits=lowered.data_qubits,
        block=block,  # type: ignore[arg-type]
        data_tiles=sum(len(p) for p in layout.patches),
        routing_tiles=len(layout.routing),
        code_distance=model.distance,
        steps=timeline,
        physical_qubits=surgery.schedule.physical_qubits,
        duration_ns=float(cycles * model.cycle_time_ns),
    )


__all__ = ["NAME", "Surgery", "SurgeryOptions", "SurgeryTarget"]
