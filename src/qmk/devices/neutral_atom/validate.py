"""The validator registry: every hardware constraint, checked before anything runs.

Public API:

- :data:`VALIDATORS` (name -> :class:`Validator`) -- the registry, in the order the
  checks run; each names the codes it raises. Program validators walk the program in
  order on the geometry current at each instruction (``MoveAtom`` really moves atoms);
  timeline validators read the schedule;
- :func:`validate_program` (program validators, on the geometry of :mod:`.geometry`;
  returns the geometry after each move) and :func:`validate_job` (all of them; the
  scheduler's timeline included). The emulator calls :func:`validate_job` for every
  backend, so a job passes or fails the same way on each.

A violation is a :class:`~qmk.devices.errors.DeviceError` whose message names the
instruction index, what it is, the atoms with their sites and coordinates, and the limit;
``details`` carries ``index``, ``atoms``, ``sites``, ``points`` and ``limit``.

>>> from qmk.devices.neutral_atom.job import parse_job
>>> job = parse_job({"profile": "benchmark_chain", "program": [
...     {"op": "AllocArray", "n_qubits": 4},
...     {"op": "ApplyGate", "name": "CZ", "targets": [0, 2]}]})
>>> validate_program(job)
Traceback (most recent call last):
...
qmk.devices.errors.DeviceError: QD203 not-connected: instruction #1 (CZ targets=[0,2]): ...
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.geometry import Geometry, MovePlan, move_plan, violation
from qmk.devices.neutral_atom.isa import GATES, Instruction, OpKind
from qmk.devices.neutral_atom.profiles import TOLERANCE, Connectivity
from qmk.devices.neutral_atom.schedule import Timeline, schedule
from qmk.errors import REGISTRY

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.job import Job


# --------------------------------------------------------------------------- validators


@dataclass(slots=True)
class Context:
    """What the program validators share while walking a program."""

    job: Job
    strict_timing: bool
    geometry: Geometry | None = None
    allocated: bool = False
    #: The MoveAtoms of the current rearrangement (consecutive moves): count, duration.
    run_moves: int = 0
    run_ns: float = 0.0
    plan: MovePlan | None = None
    #: Whether the program has an Evolve (analog mode), and a Measure was seen.
    analog: bool = False
    measured: bool = False

    def clear_plan(self) -> None:
        """Forget the last move's plan (before the next instruction is checked)."""
        self.plan = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Validator:
    """One constraint check: its name, the codes it raises, what it checks."""

    name: str
    #: The slugs of the ``QD`` codes it raises.
    slugs: tuple[str, ...]
    description: str
    #: ``program``: called per instruction; ``timeline``: called once with the schedule.
    phase: str = "program"
    check: Callable[..., None]

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes it raises (``QD2xx``), from the error registry."""
        return tuple(REGISTRY.named(DeviceError, slug).code for slug in self.slugs)


def _check_atoms(ctx: Context, ins: Instruction) -> None:
    kind = ins.kind
    if kind is OpKind.ALLOC:
        if ctx.allocated:
            raise violation("atom-invalid", ins, None, [], "the atoms are allocated already")
        configured = len(ctx.job.hardware.site_ids)
        if ins.n_qubits > configured:
            raise violation(
                "atom-invalid",
                ins,
                None,
                [],
                f"{ins.n_qubits} atoms, but the configuration has {configured} occupied sites",
                limit=configured,
            )
        ctx.allocated = True
        ctx.geometry = Geometry.start(ctx.job.hardware, ins.n_qubits)
        return
    atoms = ins.atoms
    if kind is OpKind.EVOLVE and ins.drive is not None and ins.drive.local is not None:
        atoms = ins.drive.local.atoms
    if not atoms and kind not in (OpKind.WAIT, OpKind.EVOLVE):
        raise violation("atom-invalid", ins, None, [], "names no atom")
    if not ctx.allocated and kind is not OpKind.WAIT:
        raise violation("atom-invalid", ins, None, list(atoms), "comes before AllocArray")
    if ctx.geometry is None:
        return
    n = ctx.geometry.n_atoms
    bad = [a for a in atoms if not 0 <= a < n]
    if bad:
        raise violation(
            "atom-invalid",
            ins,
            None,
            bad,
            f"atom {bad[0]} is not one of the {n} allocated",
            limit=n,
        )
    if len(set(atoms)) != len(atoms):
        raise violation("atom-invalid", ins, None, list(atoms), "names an atom twice")


def _check_catalog(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.GATE:
        return
    hw = ctx.job.hardware
    if not hw.native_gates:
        return
    entry = hw.gate(ins.gate)
    if entry is None:
        catalog = ", ".join(g.name for g in hw.native_gates)
        raise violation(
            "gate-not-native",
            ins,
            ctx.geometry,
            ins.targets,
            f"{ins.gate} is not in the native gate catalog ({catalog})",
            limit=[g.name for g in hw.native_gates],
        )
    if entry.bounds_angle:
        for name, value in zip(GATES[ins.gate].params, ins.params, strict=True):
            if not entry.angle_min <= value <= entry.angle_max:
                raise violation(
                    "angle-out-of-range",
                    ins,
                    ctx.geometry,
                    ins.targets,
                    f"{name} = {value:g} is outside [{entry.angle_min:g}, {entry.angle_max:g}]",
                    limit=[entry.angle_min, entry.angle_max],
                )


def _check_connectivity(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.GATE or len(ins.targets) < 2 or ctx.geometry is None:
        return
    hw, geo = ctx.job.hardware, ctx.geometry
    a, b = ins.targets
    entry = hw.gate(ins.gate)
    kind = entry.connectivity if entry is not None else Connectivity.ALL_TO_ALL
    if kind is not Connectivity.ALL_TO_ALL:
        spacing = hw.neighbour_distance
        if geo.distance(a, b) > spacing * (1 + 1e-9):
            raise violation(
                "not-connected",
                ins,
                geo,
                [a, b],
                f"{geo.where(a)} and {geo.where(b)} are {geo.distance(a, b):g} apart; "
                f"{kind.value} joins atoms at most {spacing:g} apart (nearest neighbours)",
                limit=spacing,
            )
    graph = hw.interaction_graph(ins.gate)
    if graph is not None:
        sa, sb = geo.sites[a], geo.sites[b]
        if sa is None or sb is None or not graph.allows(sa, sb):
            raise violation(
                "not-connected",
                ins,
                geo,
                [a, b],
                f"the interaction graph of {ins.gate} has no pair ({sa}, {sb}) for "
                f"{geo.where(a)} and {geo.where(b)}",
                limit="interaction_graphs",
            )


def _check_blockade(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.GATE or len(ins.targets) < 2 or ctx.geometry is None:
        return
    model, geo = ctx.job.hardware.blockade, ctx.geometry
    a, b = ins.targets
    pa, pb = geo.points[a], geo.points[b]
    for axis, limit in enumerate((model.radius_x, model.radius_y, model.radius_z)):
        gap = abs(pa[axis] - pb[axis])
        if limit > 0 and gap > limit + TOLERANCE:
            raise violation(
                "blockade",
                ins,
                geo,
                [a, b],
                f"{geo.where(a)} and {geo.where(b)} are {gap:g} apart along {'xyz'[axis]}, "
                f"beyond the anisotropic blockade limit {limit:g}",
                limit=limit,
            )
    radii = [r for r in (model.radius_in(geo.zone(a)), model.radius_in(geo.zone(b))) if r > 0]
    if not radii:
        return
    radius = min(radii)
    distance = geo.distance(a, b)
    if distance > radius + TOLERANCE:
        zones = {geo.zone(a), geo.zone(b)}
        where = f" (zone {', '.join(str(z) for z in sorted(z for z in zones if z is not None))})"
        raise violation(
            "blockade",
            ins,
            geo,
            [a, b],
            f"{geo.where(a)} and {geo.where(b)} are {distance:g} apart, beyond the blockade "
            f"radius {radius:g}{where if model.zone_overrides else ''}",
            limit=radius,
        )


def _check_transport(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.MOVE:
        ctx.run_moves, ctx.run_ns = 0, 0.0
        return
    geo = ctx.geometry
    assert geo is not None
    plan = move_plan(geo, ins)
    limits = ctx.job.hardware.move_limits
    atom = ins.atom
    checks = (
        (limits.max_moves_per_atom, geo.moves[atom] + 1, f"moves of atom {atom}"),
        (limits.max_moves_per_shot, geo.total_moves + 1, "moves in the program"),
        (
            limits.max_moves_per_configuration_change,
            ctx.run_moves + 1,
            "moves in one rearrangement",
        ),
    )
    for limit, count, what in checks:
        if limit and count > limit:
            raise violation(
                "move-budget", ins, geo, [atom], f"{count} {what}, more than {limit}", limit=limit
            )
    if limits.max_total_displacement_per_atom and (
        geo.displacement[atom] + plan.length > limits.max_total_displacement_per_atom + TOLERANCE
    ):
        raise violation(
            "move-budget",
            ins,
            geo,
            [atom],
            f"atom {atom} would travel {geo.displacement[atom] + plan.length:g} in all, more than "
            f"{limits.max_total_displacement_per_atom:g}",
            limit=limits.max_total_displacement_per_atom,
        )
    window = max(ctx.run_ns, plan.duration_ns)
    if limits.rearrangement_window_ns and window > limits.rearrangement_window_ns + TOLERANCE:
        raise violation(
            "move-budget",
            ins,
            geo,
            [atom],
            f"the rearrangement takes {window:g} ns, longer than its window "
            f"{limits.rearrangement_window_ns:g} ns",
            limit=limits.rearrangement_window_ns,
        )
    spacing = limits.min_spacing
    for other in range(geo.n_atoms):
        if other == atom:
            continue
        gap = math.dist(plan.point, geo.points[other])
        if gap < max(spacing, TOLERANCE):
            raise violation(
                "spacing",
                ins,
                geo,
                [atom, other],
                f"atom {atom} would stand {gap:g} from {geo.where(other)}, closer than the "
                f"minimum spacing {spacing:g}",
                limit=spacing,
            )
    ctx.run_moves += 1
    ctx.run_ns = window
    ctx.plan = plan


def _check_timing(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.WAIT:
        return
    timing = ctx.job.hardware.timing
    if ins.duration < timing.min_wait_ns:
        raise violation(
            "timing",
            ins,
            None,
            [],
            f"a wait of {ins.duration:g} ns is shorter than min_wait_ns {timing.min_wait_ns:g}",
            limit=timing.min_wait_ns,
        )
    if timing.max_wait_ns and ins.duration > timing.max_wait_ns:
        raise violation(
            "timing",
            ins,
            None,
            [],
            f"a wait of {ins.duration:g} ns is longer than max_wait_ns {timing.max_wait_ns:g}",
            limit=timing.max_wait_ns,
        )


def _check_pulse(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.PULSE:
        return
    limits = ctx.job.hardware.pulse
    bounds = (
        ("detuning", ins.detuning, limits.detuning_min, limits.detuning_max, ""),
        ("duration", ins.duration, limits.duration_min_ns, limits.duration_max_ns, " ns"),
    )
    for name, value, low, high, unit in bounds:
        if high > low and not low <= value <= high:
            raise violation(
                "pulse-limits",
                ins,
                ctx.geometry,
                [ins.atom],
                f"{name} {value:g}{unit} is outside [{low:g}, {high:g}]{unit}",
                limit=[low, high],
            )


def _check_analog(ctx: Context, ins: Instruction) -> None:
    kind = ins.kind
    if not ctx.analog:
        return
    if kind in (OpKind.GATE, OpKind.PULSE, OpKind.RESET):
        raise violation(
            "analog-program",
            ins,
            None,
            [],
            "an analog program (it has an Evolve) takes AllocArray, MoveAtom, Evolve, Wait "
            "and a final Measure; gates, pulses and resets need a digital program",
        )
    if kind is OpKind.MEASURE:
        ctx.measured = True
    elif ctx.measured:
        raise violation(
            "analog-program",
            ins,
            None,
            [],
            "comes after a Measure; an analog program measures at its end only",
        )


def _check_drive(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.EVOLVE or ins.drive is None:
        return
    limits = ctx.job.hardware.drive
    drive = ins.drive

    def refuse(text: str, limit: Any) -> DeviceError:
        return violation("drive-limits", ins, None, [], text, limit=limit)

    if limits.duration_max_ns and ins.duration > limits.duration_max_ns + TOLERANCE:
        raise refuse(
            f"duration {ins.duration:g} ns is longer than duration_max_ns "
            f"{limits.duration_max_ns:g}",
            limits.duration_max_ns,
        )
    for t, value in drive.omega:
        if value < 0 or (limits.omega_max and value > limits.omega_max + TOLERANCE):
            raise refuse(
                f"omega {value:g} rad/us at t={t:g} ns is outside [0, {limits.omega_max:g}]",
                [0.0, limits.omega_max],
            )
    if limits.delta_max > limits.delta_min:
        for t, value in drive.delta:
            if not limits.delta_min - TOLERANCE <= value <= limits.delta_max + TOLERANCE:
                raise refuse(
                    f"delta {value:g} rad/us at t={t:g} ns is outside "
                    f"[{limits.delta_min:g}, {limits.delta_max:g}]",
                    [limits.delta_min, limits.delta_max],
                )
    slews = (
        ("omega", drive.omega, limits.omega_slew_max),
        ("delta", drive.delta, limits.delta_slew_max),
    )
    for name, wave, cap in slews:
        for (t0, v0), (t1, v1) in itertools.pairwise(wave):
            slew = abs(v1 - v0) / ((t1 - t0) * 1e-3)
            if cap and slew > cap * (1 + 1e-9):
                raise refuse(
                    f"{name} slews {slew:g} rad/us per us between t={t0:g} and {t1:g} ns, "
                    f"faster than {name}_slew_max {cap:g}",
                    cap,
                )
    local = drive.local
    if local is not None and limits.local_delta_max:
        peak = max(abs(v) for _, v in local.delta) * max(abs(s) for s in local.scale)
        if peak > limits.local_delta_max + TOLERANCE:
            raise refuse(
                f"local detuning reaches {peak:g} rad/us, beyond local_delta_max "
                f"{limits.local_delta_max:g}",
                limits.local_delta_max,
            )


def _check_cooldown(ctx: Context, timeline: Timeline) -> None:
    if not ctx.strict_timing:
        return
    for entry in timeline.entries:
        if entry.cooldown_delay_ns > 0:
            ins = ctx.job.program[entry.index]
            raise violation(
                "cooldown",
                ins,
                None,
                list(entry.atoms),
                f"starts {entry.cooldown_delay_ns:g} ns inside the measurement cooldown "
                f"({ctx.job.hardware.timing.measurement_cooldown_ns:g} ns) of atom "
                f"{entry.cooldown_atom}; add a Wait (strict timing inserts none)",
                limit=ctx.job.hardware.timing.measurement_cooldown_ns,
            )


#: Every validator, in the order they run.
VALIDATORS: Mapping[str, Validator] = MappingProxyType(
    {
        v.name: v
        for v in (
            Validator(
                name="atoms",
                slugs=("atom-invalid",),
                description="one AllocArray first, within the configured sites; targets "
                "allocated and distinct",
                check=_check_atoms,
            ),
            Validator(
                name="catalog",
                slugs=("gate-not-native", "angle-out-of-range"),
                description="the gate is in the native catalog with that arity; angles in range",
                check=_check_catalog,
            ),
            Validator(
                name="connectivity",
                slugs=("not-connected",),
                description="multi-qubit gates join nearest neighbours (chain, grid) at that "
                "instruction, and pairs of the gate's interaction graph",
                check=_check_connectivity,
            ),
            Validator(
                name="blockade",
                slugs=("blockade",),
                description="two-qubit gates within the blockade radius (per axis, per zone) "
                "at that instruction",
                check=_check_blockade,
            ),
            Validator(
                name="transport",
                slugs=("spacing", "transport", "move-budget"),
                description="moves follow transport edges to free sites, within the move "
                "budgets, keeping the minimum spacing",
                check=_check_transport,
            ),
            Validator(
                name="timing",
                slugs=("timing",),
                description="waits within [min_wait_ns, max_wait_ns]",
                check=_check_timing,
            ),
            Validator(
                name="pulse",
                slugs=("pulse-limits",),
                description="pulse detuning and duration within the pulse limits",
                check=_check_pulse,
            ),
            Validator(
                name="analog",
                slugs=("analog-program",),
                description="a program with an Evolve (ISA 1.2) has no gate, pulse or reset, "
                "and measures at its end only",
                check=_check_analog,
            ),
            Validator(
                name="drive",
                slugs=("drive-limits",),
                description="Evolve waveforms within drive_limits: 0 <= Omega <= omega_max, "
                "Delta in [delta_min, delta_max], slew rates, local detuning, duration",
                check=_check_drive,
            ),
            Validator(
                name="cooldown",
                slugs=("cooldown",),
                description="under strict timing, nothing on an atom inside its measurement "
                "cooldown (otherwise the scheduler waits it out)",
                phase="timeline",
                check=_check_cooldown,
            ),
        )
    }
)


def validate_program(job: Job, *, strict_timing: bool = False) -> list[Geometry | None]:
    """Run the program validators over ``job``; the geometry in force at each instruction.

    Returns:
        For each instruction, a snapshot (copy) of the geometry it ran on: None before
        AllocArray. The scheduler reads positions and zones from it.

    Raises:
        DeviceError: the first violation (``QD2xx``), naming the instruction.
    """
    ctx = Context(
        job=job,
        strict_timing=strict_timing,
        analog=any(i.kind is OpKind.EVOLVE for i in job.program),
    )
    program_checks = [v.check for v in VALIDATORS.values() if v.phase == "program"]
    seen: list[Geometry | None] = []
    for ins in job.program:
        ctx.clear_plan()
        for check in program_checks:
            check(ctx, ins)
        seen.append(ctx.geometry)
        if ins.kind is OpKind.MOVE and ctx.geometry is not None and ctx.plan is not None:
            # Each move gets its own geometry object so that earlier instructions keep theirs.
            ctx.geometry = ctx.geometry.copy()
            ctx.geometry.move(ins.atom, ctx.plan.point, ctx.plan.length)
    return seen


def validate_job(job: Job, *, strict_timing: bool = False) -> Timeline:
    """Run every validator (program, then timeline); the job's timeline.

    Raises:
        DeviceError: the first violation.
    """
    geometries = validate_program(job, strict_timing=strict_timing)
    timeline = schedule(job, geometries)
    ctx = Context(job=job, strict_timing=strict_timing)
    for validator in VALIDATORS.values():
        if validator.phase == "timeline":
            validator.check(ctx, timeline)
    return timeline


__all__ = [
    "VALIDATORS",
    "Context",
    "Geometry",
    "MovePlan",
    "Validator",
    "move_plan",
    "validate_job",
    "validate_program",
]
