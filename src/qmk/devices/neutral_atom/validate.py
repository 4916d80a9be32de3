"""The validator registry: every hardware constraint, checked before anything runs.

Public API:

- :data:`VALIDATORS` (name -> :class:`Validator`) -- the registry, in the order the
  checks run; each names the codes it raises. Program validators walk the program in
  order on the geometry current at each instruction (``MoveAtom`` really moves atoms);
  timeline validators read the schedule;
- :class:`Geometry` -- where every atom is at one instruction (point, site, zone), and the
  move bookkeeping; :func:`move_plan` (where a MoveAtom goes, by which path, how far, how
  long);
- :func:`validate_program` (program validators; returns the geometry after each move) and
  :func:`validate_job` (all of them; the scheduler's timeline included). The emulator
  calls :func:`validate_job` for every backend, so a job passes or fails the same way on
  each.

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

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import GATES, Instruction, OpKind
from qmk.devices.neutral_atom.profiles import TOLERANCE, Connectivity, Hardware
from qmk.errors import REGISTRY

if TYPE_CHECKING:
    from qmk.devices.neutral_atom.job import Job
    from qmk.devices.neutral_atom.schedule import Timeline

Point = tuple[float, float, float]


def _fmt_point(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in point) + ")"


@dataclass(slots=True)
class Geometry:
    """Where the atoms are, at one instruction of the program (mutable while walking it)."""

    hardware: Hardware
    points: list[Point]
    sites: list[int | None]
    moves: list[int]
    displacement: list[float]
    total_moves: int = 0
    _site_at: dict[tuple[int, int, int], int] = field(default_factory=dict)
    _occupied: dict[tuple[int, int, int], int] = field(default_factory=dict)

    @classmethod
    def start(cls, hardware: Hardware, n_atoms: int) -> Geometry:
        """Atoms ``0..n-1`` on the configuration's first ``n`` sites."""
        index = {s.id: s for s in hardware.sites}
        ids = hardware.site_ids[:n_atoms]
        geometry = cls(
            hardware=hardware,
            points=[index[i].point for i in ids],
            sites=list(ids),
            moves=[0] * n_atoms,
            displacement=[0.0] * n_atoms,
        )
        geometry._site_at = {_key(s.point): s.id for s in hardware.sites}
        geometry._occupied = {_key(p): atom for atom, p in enumerate(geometry.points)}
        return geometry

    @property
    def n_atoms(self) -> int:
        return len(self.points)

    def zone(self, atom: int) -> int | None:
        """The zone of the atom's site (None off the lattice)."""
        site = self.sites[atom]
        return None if site is None else self.hardware.site(site).zone_id

    def where(self, atom: int) -> str:
        """``atom 3 (site 3 at (3.9, 0, 0))``, for messages."""
        site = self.sites[atom]
        place = f"site {site} at " if site is not None else "off-lattice at "
        return f"atom {atom} ({place}{_fmt_point(self.points[atom])})"

    def details(self, atoms: Sequence[int]) -> dict[str, Any]:
        return {
            "atoms": list(atoms),
            "sites": [self.sites[a] for a in atoms],
            "points": [list(self.points[a]) for a in atoms],
        }

    def site_at(self, point: Point) -> int | None:
        """The lattice site at ``point``, or None."""
        return self._site_at.get(_key(point))

    def occupant(self, point: Point) -> int | None:
        """The atom at ``point``, or None."""
        return self._occupied.get(_key(point))

    def distance(self, a: int, b: int) -> float:
        return math.dist(self.points[a], self.points[b])

    def move(self, atom: int, point: Point, length: float) -> None:
        """Put ``atom`` at ``point`` after a move of ``length``."""
        self._occupied.pop(_key(self.points[atom]), None)
        self.points[atom] = point
        self.sites[atom] = self.site_at(point)
        self._occupied[_key(point)] = atom
        self.moves[atom] += 1
        self.displacement[atom] += length
        self.total_moves += 1


def _key(point: Sequence[float]) -> tuple[int, int, int]:
    # Coordinates equal within a nanometre share a key (TOLERANCE is far below that).
    return (round(point[0] * 1e6), round(point[1] * 1e6), round(point[2] * 1e6))


@dataclass(frozen=True, slots=True, kw_only=True)
class MovePlan:
    """Where a MoveAtom goes and how: destination, site, path of sites, length, duration."""

    point: Point
    site: int | None
    path: tuple[int, ...]
    length: float
    duration_ns: float


def _violation(
    slug: str,
    instruction: Instruction,
    geometry: Geometry | None,
    atoms: Sequence[int],
    text: str,
    **limit: Any,
) -> DeviceError:
    what = instruction.describe().replace(", ", ",")
    details: dict[str, Any] = {"index": instruction.index, "op": instruction.op, **limit}
    if geometry is not None and atoms:
        details.update(geometry.details(atoms))
    return DeviceError.of(slug, f"instruction #{instruction.index} ({what}): {text}", **details)


def move_plan(geometry: Geometry, instruction: Instruction) -> MovePlan:
    """Where ``instruction`` (a MoveAtom) takes its atom, along which transport path.

    Raises:
        DeviceError: ``QD206 transport`` for an unknown or off-lattice destination, one
            with no transport path, or an occupied one.
    """
    hw, atom = geometry.hardware, instruction.atom
    if instruction.site is not None:
        try:
            point = hw.site(instruction.site).point
        except KeyError:
            raise _violation(
                "transport", instruction, geometry, [atom], f"no lattice site {instruction.site}"
            ) from None
        site: int | None = instruction.site
    else:
        assert instruction.position is not None
        point = instruction.position
        site = geometry.site_at(point)
    here = geometry.points[atom]
    occupant = geometry.occupant(point)
    if occupant is not None and occupant != atom:
        raise _violation(
            "transport",
            instruction,
            geometry,
            [atom, occupant],
            f"the destination {_fmt_point(point)} is occupied by {geometry.where(occupant)}",
        )
    if not hw.transport_edges:
        length = math.dist(here, point)
        return MovePlan(
            point=point,
            site=site,
            path=(),
            length=length,
            duration_ns=length * hw.move_limits.duration_per_unit_ns,
        )
    start = geometry.sites[atom]
    if site is None or start is None:
        raise _violation(
            "transport",
            instruction,
            geometry,
            [atom],
            f"{geometry.where(atom)} cannot go to {_fmt_point(point)}: with transport edges "
            "an atom moves between lattice sites only",
        )
    path, length, duration = _shortest_path(hw, start, site)
    if path is None:
        raise _violation(
            "transport",
            instruction,
            geometry,
            [atom],
            f"no transport path from site {start} to site {site}",
            limit="transport_edges",
        )
    return MovePlan(point=point, site=site, path=path, length=length, duration_ns=duration)


def _shortest_path(
    hw: Hardware, start: int, goal: int
) -> tuple[tuple[int, ...] | None, float, float]:
    """The quickest path of transport edges (Dijkstra on duration, then distance)."""
    if start == goal:
        return (start,), 0.0, 0.0
    neighbours: dict[int, list[tuple[int, float, float]]] = {}
    for e in hw.transport_edges:
        d = e.distance or math.dist(hw.site(e.src_site_id).point, hw.site(e.dst_site_id).point)
        neighbours.setdefault(e.src_site_id, []).append((e.dst_site_id, e.duration_ns, d))
        neighbours.setdefault(e.dst_site_id, []).append((e.src_site_id, e.duration_ns, d))
    best: dict[int, tuple[float, float]] = {start: (0.0, 0.0)}
    previous: dict[int, int] = {}
    queue: list[tuple[float, float, int]] = [(0.0, 0.0, start)]
    while queue:
        duration, length, node = heapq.heappop(queue)
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return tuple(reversed(path)), length, duration
        if (duration, length) > best.get(node, (math.inf, math.inf)):
            continue
        for nxt, step_ns, step_len in neighbours.get(node, ()):
            cost = (duration + step_ns, length + step_len)
            if cost < best.get(nxt, (math.inf, math.inf)):
                best[nxt] = cost
                previous[nxt] = node
                heapq.heappush(queue, (cost[0], cost[1], nxt))
    return None, math.inf, math.inf


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
            raise _violation("atom-invalid", ins, None, [], "the atoms are allocated already")
        configured = len(ctx.job.hardware.site_ids)
        if ins.n_qubits > configured:
            raise _violation(
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
    if not atoms and kind is not OpKind.WAIT:
        raise _violation("atom-invalid", ins, None, [], "names no atom")
    if not ctx.allocated and kind is not OpKind.WAIT:
        raise _violation("atom-invalid", ins, None, list(atoms), "comes before AllocArray")
    if ctx.geometry is None:
        return
    n = ctx.geometry.n_atoms
    bad = [a for a in atoms if not 0 <= a < n]
    if bad:
        raise _violation(
            "atom-invalid",
            ins,
            None,
            bad,
            f"atom {bad[0]} is not one of the {n} allocated",
            limit=n,
        )
    if len(set(atoms)) != len(atoms):
        raise _violation("atom-invalid", ins, None, list(atoms), "names an atom twice")


def _check_catalog(ctx: Context, ins: Instruction) -> None:
    if ins.kind is not OpKind.GATE:
        return
    hw = ctx.job.hardware
    if not hw.native_gates:
        return
    entry = hw.gate(ins.gate)
    if entry is None:
        catalog = ", ".join(g.name for g in hw.native_gates)
        raise _violation(
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
                raise _violation(
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
            raise _violation(
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
            raise _violation(
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
            raise _violation(
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
        raise _violation(
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
            raise _violation(
                "move-budget", ins, geo, [atom], f"{count} {what}, more than {limit}", limit=limit
            )
    if limits.max_total_displacement_per_atom and (
        geo.displacement[atom] + plan.length > limits.max_total_displacement_per_atom + TOLERANCE
    ):
        raise _violation(
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
        raise _violation(
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
            raise _violation(
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
        raise _violation(
            "timing",
            ins,
            None,
            [],
            f"a wait of {ins.duration:g} ns is shorter than min_wait_ns {timing.min_wait_ns:g}",
            limit=timing.min_wait_ns,
        )
    if timing.max_wait_ns and ins.duration > timing.max_wait_ns:
        raise _violation(
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
            raise _violation(
                "pulse-limits",
                ins,
                ctx.geometry,
                [ins.atom],
                f"{name} {value:g}{unit} is outside [{low:g}, {high:g}]{unit}",
                limit=[low, high],
            )


def _check_cooldown(ctx: Context, timeline: Timeline) -> None:
    if not ctx.strict_timing:
        return
    for entry in timeline.entries:
        if entry.cooldown_delay_ns > 0:
            ins = ctx.job.program[entry.index]
            raise _violation(
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
    ctx = Context(job=job, strict_timing=strict_timing)
    program_checks = [v.check for v in VALIDATORS.values() if v.phase == "program"]
    seen: list[Geometry | None] = []
    for ins in job.program:
        ctx.clear_plan()
        for check in program_checks:
            check(ctx, ins)
        seen.append(ctx.geometry)
        if ins.kind is OpKind.MOVE and ctx.geometry is not None and ctx.plan is not None:
            geo = ctx.geometry
            # Each move gets its own geometry object so that earlier instructions keep theirs.
            ctx.geometry = Geometry(
                hardware=geo.hardware,
                points=list(geo.points),
                sites=list(geo.sites),
                moves=list(geo.moves),
                displacement=list(geo.displacement),
                total_moves=geo.total_moves,
                _site_at=geo._site_at,
                _occupied=dict(geo._occupied),
            )
            ctx.geometry.move(ins.atom, ctx.plan.point, ctx.plan.length)
    return seen


def validate_job(job: Job, *, strict_timing: bool = False) -> Timeline:
    """Run every validator (program, then timeline); the job's timeline.

    Raises:
        DeviceError: the first violation.
    """
    from qmk.devices.neutral_atom.schedule import schedule

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
