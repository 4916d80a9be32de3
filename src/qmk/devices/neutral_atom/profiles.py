"""Device profiles: the hardware (lattice, configuration, zones, gates, limits) and its noise.

Public API:

- :class:`Hardware` -- the wire form's ``hardware`` object as one checked value. It
  holds the **lattice** (``sites``: every trap site, with coordinates and zone) apart
  from the **configuration** (``site_ids``: atom ``i`` starts at site ``site_ids[i]``).
  It holds the native gate catalog (:class:`NativeGate`), per-gate interaction graphs
  and the blockade model (:class:`Blockade`: isotropic, anisotropic per axis, per
  zone). It holds timing limits, pulse limits, the transport graph
  (:class:`TransportEdge`) and move limits. Legacy 1.0 fields
  (``positions``, ``coordinates``, ``blockade_radius``) are read and become sites.
  ``Hardware.from_json`` / ``to_json`` (the wire form);
- :class:`Profile` -- a named hardware + :class:`~qmk.devices.neutral_atom.noise.NoiseModel`
  with its configuration families and regions; ``Profile.from_json`` reads the profile file
  format (TOML or JSON; a ``lattice`` table generates sites, a ``transport`` table edges);
- :func:`presets` (the shipped names), :func:`load_profile` (a preset name or a profile
  file), :data:`PRESET_DIR`;
- the schemas that read them: :class:`HardwareWire` (a job's ``hardware`` object) and
  :class:`ProfileFile` (a profile file), frozen ``msgspec.Struct`` objects that refuse
  unknown fields and state each field's type and range; the limit tables
  (:class:`TimingLimits`, :class:`PulseLimits`, :class:`MoveLimits`) and
  :class:`TransportEdge` are their own schema. A value that does not fit is ``QD105``
  naming its field; what one object cannot say (ids that name sites, gates of the ISA,
  one atom per site) ``Hardware`` checks. ``HardwareWire`` is the ``hardware`` of the job
  schema (:mod:`qmk.devices.neutral_atom.schema`).

Distances are in micrometres (the unit of the coordinates), durations in ns. Connectivity
is derived from geometry: ``NearestNeighborChain``/``NearestNeighborGrid`` join atoms whose
distance at that instruction is at most the lattice's nearest-neighbour spacing (so moves
change who is connected); ``AllToAll`` joins every pair (blockade still applies).

>>> sorted(presets())[:3]
['benchmark_chain', 'ideal_small_array', 'ideal_square_grid']
>>> chain = load_profile("benchmark_chain")
>>> len(chain.hardware.sites), chain.hardware.blockade.radius, chain.hardware.gate("CZ").arity
(20, 1.6, 2)
"""

from __future__ import annotations

import enum
import functools
import itertools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from qmk import values
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import CURRENT, GATES, IsaVersion, parse_version
from qmk.devices.neutral_atom.noise import NoiseModel

#: The shipped presets (package data): ``NAME.toml``.
PRESET_DIR = Path(__file__).with_name("presets")

#: Two coordinates closer than this are the same point (micrometres).
TOLERANCE = 1e-9

#: Region roles a configuration may give its regions.
ROLES = ("DATA", "ANCILLA", "PARKING", "CALIB", "STORAGE", "ENTANGLING")


def _invalid(message: str, **details: Any) -> DeviceError:
    return DeviceError.of("profile-invalid", message, **details)


def _invalid_key(message: str, key: str) -> DeviceError:
    """``QD105`` from the schema library: one line naming the field (its ``field`` too)."""
    return _invalid(message, field=key)


#: A number (finite: every wire object refuses TOML's inf and nan, see ``_Wire``).
Finite = float
#: A number >= 0.
NonNegative = Annotated[float, Meta(ge=0)]
#: A count >= 0 (0 often means: no limit).
Count = Annotated[int, Meta(ge=0)]


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


class _Wire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An object of the wire form or the profile file: frozen, no fields but its own, and
    finite numbers (a JSON number is one; TOML also has inf and nan)."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not _finite(value):
                # msgspec turns this into a ValidationError at this object's path
                raise ValueError(f"{name}: not a finite number, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        data: dict[str, Any] = values.to_builtins(self)
        return data


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """One trap site of the lattice."""

    id: int
    x: float
    y: float = 0.0
    z: float = 0.0
    zone_id: int = 0

    @property
    def point(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.z)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "x": self.x, "y": self.y, "z": self.z, "zone_id": self.zone_id}


class Connectivity(str, enum.Enum):
    """Which atoms a multi-qubit native gate may join (derived from the geometry)."""

    ALL_TO_ALL = "AllToAll"
    NEAREST_NEIGHBOR_CHAIN = "NearestNeighborChain"
    NEAREST_NEIGHBOR_GRID = "NearestNeighborGrid"


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeGate:
    """One entry of the native gate catalog (``angle_max > angle_min`` bounds the angle)."""

    name: str
    arity: int
    duration_ns: float
    angle_min: float = 0.0
    angle_max: float = 0.0
    connectivity: Connectivity = Connectivity.ALL_TO_ALL

    @property
    def bounds_angle(self) -> bool:
        return self.angle_max > self.angle_min

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arity": self.arity,
            "duration_ns": self.duration_ns,
            "angle_min": self.angle_min,
            "angle_max": self.angle_max,
            "connectivity": self.connectivity.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractionGraph:
    """The site pairs a gate may act on (unordered)."""

    gate_name: str
    pairs: frozenset[tuple[int, int]]

    def allows(self, a: int, b: int) -> bool:
        return (min(a, b), max(a, b)) in self.pairs

    def to_json(self) -> dict[str, Any]:
        return {
            "gate_name": self.gate_name,
            "allowed_pairs": [{"site_a": a, "site_b": b} for a, b in sorted(self.pairs)],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Blockade:
    """The blockade model: a radius (0: none), per-axis limits (0: none), zone overrides."""

    radius: float = 0.0
    radius_x: float = 0.0
    radius_y: float = 0.0
    radius_z: float = 0.0
    zone_overrides: tuple[tuple[int, float], ...] = ()

    def radius_in(self, zone: int | None) -> float:
        """The isotropic radius for an atom in ``zone`` (None: off the lattice)."""
        for zone_id, radius in self.zone_overrides:
            if zone_id == zone and radius > 0:
                return radius
        return self.radius

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "radius": self.radius,
            "radius_x": self.radius_x,
            "radius_y": self.radius_y,
            "radius_z": self.radius_z,
        }
        if self.zone_overrides:
            out["zone_overrides"] = [{"zone_id": z, "radius": r} for z, r in self.zone_overrides]
        return out


class TimingLimits(_Wire, frozen=True, kw_only=True):
    """Timing limits (ns; a cap of 0 means unlimited, a max wait of 0 means none)."""

    min_wait_ns: NonNegative = 0.0
    max_wait_ns: NonNegative = 0.0
    max_parallel_single_qubit: Count = 0
    max_parallel_two_qubit: Count = 0
    max_parallel_per_zone: Count = 0
    measurement_cooldown_ns: NonNegative = 0.0
    measurement_duration_ns: NonNegative = 0.0
    reset_duration_ns: Annotated[
        float, Meta(ge=0, description="QMK extension: how long a Reset takes")
    ] = 1000.0


class PulseLimits(_Wire, frozen=True, kw_only=True):
    """Pulse limits (a range with max <= min is unbounded; 0 overlapping means unlimited)."""

    detuning_min: Finite = 0.0
    detuning_max: Finite = 0.0
    duration_min_ns: Finite = 0.0
    duration_max_ns: Finite = 0.0
    max_overlapping_pulses: Count = 0


#: The van der Waals coefficient of Rb 70S (rad/us * um^6): 2 pi x 862690 MHz um^6, the
#: value QuEra's Aquila and Bloqade use.
C6_RB70S = 2 * math.pi * 862690.0


class DriveLimits(_Wire, frozen=True, kw_only=True):
    """Limits of the analog Rydberg drive (``Evolve``, ISA 1.2): rad/us, rad/us^2, ns.

    A limit of 0 means none (``delta_min``/``delta_max``: a range with max <= min is
    unbounded). ``max_states`` is the emulator's: the largest basis (after the exact
    blockade reduction) an analog job may need; ``max_states_noisy`` the largest for a
    density-matrix (Lindblad) run.
    """

    omega_max: Annotated[float, Meta(ge=0, description="rad/us; Omega in [0, omega_max]")] = 0.0
    delta_min: Annotated[Finite, Meta(description="rad/us")] = 0.0
    delta_max: Annotated[Finite, Meta(description="rad/us")] = 0.0
    omega_slew_max: Annotated[float, Meta(ge=0, description="rad/us per us")] = 0.0
    delta_slew_max: Annotated[float, Meta(ge=0, description="rad/us per us")] = 0.0
    local_delta_max: Annotated[
        float, Meta(ge=0, description="rad/us; |scale * local delta| at most this")
    ] = 0.0
    duration_max_ns: NonNegative = 0.0
    max_states: Annotated[int, Meta(ge=1)] = 1 << 14
    max_states_noisy: Annotated[int, Meta(ge=1)] = 128


class TransportEdge(_Wire, frozen=True, kw_only=True):
    """A transport path between two sites (both directions)."""

    src_site_id: int = 0
    dst_site_id: int = 0
    distance: Finite = 0.0
    duration_ns: Finite = 0.0


class MoveLimits(_Wire, frozen=True, kw_only=True):
    """Move budgets (0: unlimited) and, as QMK extensions, the speed of free moves and the
    minimum spacing between atoms."""

    max_total_displacement_per_atom: NonNegative = 0.0
    max_moves_per_atom: Count = 0
    max_moves_per_shot: Count = 0
    max_moves_per_configuration_change: Count = 0
    rearrangement_window_ns: NonNegative = 0.0
    duration_per_unit_ns: Annotated[
        float, Meta(ge=0, description="ns per micrometre of a move that follows no transport edge")
    ] = 0.0
    min_spacing: Annotated[
        float,
        Meta(ge=0, description="no two atoms closer than this after a move (0: not one point)"),
    ] = 0.0


# --------------------------------------------------------------------------- the wire form


class SiteWire(_Wire, frozen=True, kw_only=True):
    """A trap site of the lattice (its id defaults to its index)."""

    id: int | None = None
    x: Finite = 0.0
    y: Finite = 0.0
    z: Finite = 0.0
    zone_id: int = 0


class NativeGateWire(_Wire, frozen=True, kw_only=True):
    """A native gate (an ISA gate; arity and duration default to the ISA's)."""

    name: str
    arity: Annotated[int, Meta(ge=1)] | None = None
    duration_ns: Finite | None = None
    angle_min: Finite = 0.0
    angle_max: Finite = 0.0
    connectivity: Connectivity = Connectivity.ALL_TO_ALL


class SitePair(_Wire, frozen=True, kw_only=True):
    """Two sites a gate may join."""

    site_a: int = 0
    site_b: int = 0


class InteractionGraphWire(_Wire, frozen=True, kw_only=True):
    """The site pairs a gate may act on."""

    gate_name: str = ""
    allowed_pairs: list[SitePair] = []


class ZoneRadius(_Wire, frozen=True, kw_only=True):
    """The blockade radius of one zone."""

    zone_id: int = 0
    radius: Finite = 0.0


class BlockadeWire(_Wire, frozen=True, kw_only=True):
    """The blockade model (a radius of 0 keeps blockade_radius)."""

    radius: NonNegative | None = None
    radius_x: NonNegative | None = None
    radius_y: NonNegative | None = None
    radius_z: NonNegative | None = None
    zone_overrides: list[ZoneRadius] = []


class HardwareWire(_Wire, frozen=True, kw_only=True):
    """A job's hardware object: what it gives replaces its preset's, field by field."""

    positions: Annotated[
        list[Finite | Annotated[list[Finite], Meta(min_length=1, max_length=3)]] | None,
        Meta(description="um: x of each atom (a chain), or [x, y] (or [x, y, z]) pairs"),
    ] = None
    coordinates: Annotated[
        list[Annotated[list[Finite], Meta(min_length=1, max_length=3)]] | None,
        Meta(description="legacy 1.0: [x, y, z] of each atom (1 to 3 numbers)"),
    ] = None
    blockade_radius: Annotated[Finite | None, Meta(description="legacy 1.0")] = None
    sites: list[SiteWire] | None = None
    site_ids: Annotated[list[int] | None, Meta(description="atom i starts at site site_ids[i]")] = (
        None
    )
    native_gates: list[NativeGateWire] | None = None
    interaction_graphs: list[InteractionGraphWire] | None = None
    blockade_model: BlockadeWire | None = None
    timing_limits: TimingLimits | None = None
    pulse_limits: PulseLimits | None = None
    transport_edges: list[TransportEdge] | None = None
    move_limits: MoveLimits | None = None
    c6: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(description="van der Waals C6 in rad/us * um^6 (default Rb 70S: 2 pi x 862690)"),
    ] = None
    drive_limits: DriveLimits | None = None


def _closest_pair(points: Sequence[tuple[float, float, float]]) -> float:
    """The smallest distance between two of ``points`` (inf for fewer than two).

    Sorted neighbours give an upper bound ``h``; the closest pair then lies in one cell of
    side ``h`` or in adjacent cells, so only those are compared (linear for lattices).

    Raises:
        DeviceError: ``QD105`` when two sites are at one point.
    """
    if len(points) < 2:
        return math.inf
    ordered = sorted(points)
    bound = min(math.dist(a, b) for a, b in itertools.pairwise(ordered))
    if bound <= TOLERANCE:
        raise _invalid("two lattice sites are at one point", field="sites")
    cells: dict[tuple[int, int, int], list[tuple[float, float, float]]] = {}
    for p in points:
        key = (math.floor(p[0] / bound), math.floor(p[1] / bound), math.floor(p[2] / bound))
        cells.setdefault(key, []).append(p)
    best = bound
    offsets = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]
    for (cx, cy, cz), members in cells.items():
        for dx, dy, dz in offsets:
            other = cells.get((cx + dx, cy + dy, cz + dz))
            if other is None:
                continue
            for a in members:
                for b in other:
                    if a < b:
                        d = math.dist(a, b)
                        if d < best:
                            best = d
    if best <= TOLERANCE:
        raise _invalid("two lattice sites are at one point", field="sites")
    return best


@dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    """The device's hardware (see the module docstring)."""

    sites: tuple[Site, ...]
    site_ids: tuple[int, ...]
    native_gates: tuple[NativeGate, ...] = ()
    interaction_graphs: tuple[InteractionGraph, ...] = ()
    blockade: Blockade = field(default_factory=Blockade)
    timing: TimingLimits = field(default_factory=TimingLimits)
    pulse: PulseLimits = field(default_factory=PulseLimits)
    transport_edges: tuple[TransportEdge, ...] = ()
    move_limits: MoveLimits = field(default_factory=MoveLimits)
    #: The van der Waals coefficient (rad/us * um^6) of the analog drive.
    c6: float = C6_RB70S
    drive: DriveLimits = field(default_factory=DriveLimits)
    #: The lattice's nearest-neighbour spacing (derived; inf with fewer than two sites).
    neighbour_distance: float = field(init=False, repr=False, compare=False, default=math.inf)
    _index: dict[int, Site] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "neighbour_distance", _closest_pair([s.point for s in self.sites]))
        object.__setattr__(self, "_index", {s.id: s for s in self.sites})
        ids = [s.id for s in self.sites]
        if len(set(ids)) != len(ids):
            raise _invalid("two sites share an id", field="sites")
        known = set(ids)
        for slot, site_id in enumerate(self.site_ids):
            if site_id not in known:
                raise _invalid(
                    f"site_ids[{slot}] = {site_id} is not a site of the lattice", field="site_ids"
                )
        if len(set(self.site_ids)) != len(self.site_ids):
            raise _invalid("site_ids places two atoms on one site", field="site_ids")
        for edge in self.transport_edges:
            for end in (edge.src_site_id, edge.dst_site_id):
                if end not in known:
                    raise _invalid(f"transport edge names unknown site {end}", field="transport")
        for graph in self.interaction_graphs:
            for a, b in graph.pairs:
                if a not in known or b not in known:
                    raise _invalid(
                        f"interaction graph of {graph.gate_name} names unknown site "
                        f"{a if a not in known else b}",
                        field="interaction_graphs",
                    )
        names = [g.name for g in self.native_gates]
        if len(set(names)) != len(names):
            raise _invalid("the native gate catalog lists a gate twice", field="native_gates")
        for gate in self.native_gates:
            spec = GATES.get(gate.name)
            if spec is None:
                raise _invalid(
                    f"native gate {gate.name!r} is not an ISA gate; gates: {', '.join(GATES)}",
                    field="native_gates",
                )
            if spec.arity != gate.arity:
                raise _invalid(
                    f"native gate {gate.name} has arity {gate.arity}, the ISA says {spec.arity}",
                    field="native_gates",
                )

    # ---- lookups

    def site(self, site_id: int) -> Site:
        """The site with this id (KeyError if none)."""
        return self._index[site_id]

    def site_at(self, point: Sequence[float]) -> Site | None:
        """The lattice site at ``point`` (within :data:`TOLERANCE`), or None."""
        for site in self.sites:
            if math.dist(site.point, point) <= TOLERANCE:
                return site
        return None

    def gate(self, name: str) -> NativeGate | None:
        """The catalog entry of ``name``, or None (an empty catalog allows every ISA gate)."""
        for gate in self.native_gates:
            if gate.name == name:
                return gate
        return None

    def interaction_graph(self, name: str) -> InteractionGraph | None:
        """The interaction graph of gate ``name``, or None when it has none."""
        for graph in self.interaction_graphs:
            if graph.gate_name == name:
                return graph
        return None

    def gate_duration_ns(self, name: str) -> float:
        """How long gate ``name`` takes (the catalog's, else the ISA default)."""
        entry = self.gate(name)
        return entry.duration_ns if entry is not None else GATES[name].default_duration_ns

    @property
    def zones(self) -> tuple[int, ...]:
        """The zone ids of the lattice."""
        return tuple(sorted({s.zone_id for s in self.sites}))

    def with_site_ids(self, site_ids: Sequence[int]) -> Hardware:
        """The same hardware with another configuration."""
        return replace(self, site_ids=tuple(site_ids))

    # ---- wire form

    @classmethod
    def from_json(cls, data: Any, *, base: Hardware | None = None) -> Hardware:
        """The hardware of a wire ``hardware`` object; fields it lacks come from ``base``.

        Raises:
            DeviceError: ``QD105 profile-invalid`` naming the field.
        """
        given = {} if data is None else data
        wire: HardwareWire = values.convert(
            given, HardwareWire, where="hardware", error=_invalid_key
        )
        sites, site_ids = _sites(wire, base)
        if base is not None and sites != base.sites:
            # A new lattice: the preset's transport edges and interaction graphs name the
            # old lattice's sites, so they do not carry over (the job may give its own).
            base = replace(base, transport_edges=(), interaction_graphs=())
        return cls(
            sites=sites,
            site_ids=site_ids,
            native_gates=(
                tuple(_native_gate(g) for g in wire.native_gates)
                if wire.native_gates is not None
                else (base.native_gates if base else ())
            ),
            interaction_graphs=(
                tuple(_interaction_graph(g) for g in wire.interaction_graphs)
                if wire.interaction_graphs is not None
                else (base.interaction_graphs if base else ())
            ),
            blockade=_blockade(wire, base.blockade if base else Blockade()),
            timing=_over(base.timing if base else TimingLimits(), given, "timing_limits"),
            pulse=_over(base.pulse if base else PulseLimits(), given, "pulse_limits"),
            transport_edges=(
                tuple(wire.transport_edges)
                if wire.transport_edges is not None
                else (base.transport_edges if base else ())
            ),
            move_limits=_over(base.move_limits if base else MoveLimits(), given, "move_limits"),
            c6=wire.c6 if wire.c6 is not None else (base.c6 if base else C6_RB70S),
            drive=_over(base.drive if base else DriveLimits(), given, "drive_limits"),
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form (v1.1 fields, and the legacy ``positions``/``blockade_radius``)."""
        index = self._index
        return {
            "positions": [index[s].x for s in self.site_ids],
            "coordinates": [list(index[s].point) for s in self.site_ids],
            "blockade_radius": self.blockade.radius,
            "sites": [s.to_json() for s in self.sites],
            "site_ids": list(self.site_ids),
            "native_gates": [g.to_json() for g in self.native_gates],
            "interaction_graphs": [g.to_json() for g in self.interaction_graphs],
            "blockade_model": self.blockade.to_json(),
            "timing_limits": self.timing.to_json(),
            "pulse_limits": self.pulse.to_json(),
            "transport_edges": [e.to_json() for e in self.transport_edges],
            "move_limits": self.move_limits.to_json(),
            "c6": self.c6,
            "drive_limits": self.drive.to_json(),
        }


_Limits = TypeVar("_Limits", TimingLimits, PulseLimits, MoveLimits, DriveLimits)


def _over(base: _Limits, given: Mapping[str, Any], key: str) -> _Limits:
    """``base`` with the fields the table ``given[key]`` sets (checked already)."""
    table = given.get(key)
    if table is None:
        return base
    merged: _Limits = values.convert(
        {**values.to_builtins(base), **table},
        type(base),
        where=f"hardware.{key}",
        error=_invalid_key,
    )
    return merged


def _sites(wire: HardwareWire, base: Hardware | None) -> tuple[tuple[Site, ...], tuple[int, ...]]:
    """The lattice and the configuration: ``sites``, else the legacy ``coordinates`` or
    ``positions``, else ``base``'s; ``site_ids`` (default: every site)."""
    sites = base.sites if base is not None else ()
    site_ids: tuple[int, ...] | None = base.site_ids if base is not None else None
    if wire.sites is not None:
        sites = tuple(
            Site(id=i if s.id is None else s.id, x=s.x, y=s.y, z=s.z, zone_id=s.zone_id)
            for i, s in enumerate(wire.sites)
        )
        site_ids = None
    elif wire.coordinates:
        sites = tuple(_site_at(i, point) for i, point in enumerate(wire.coordinates))
        site_ids = None
    elif wire.positions:
        sites = tuple(
            _site_at(i, [p] if isinstance(p, float | int) else p)
            for i, p in enumerate(wire.positions)
        )
        site_ids = None
    if wire.site_ids is not None:
        site_ids = tuple(wire.site_ids)
    return sites, site_ids if site_ids is not None else tuple(s.id for s in sites)


def _site_at(i: int, point: Sequence[float]) -> Site:
    x, y, z = (*point, 0.0, 0.0)[:3]  # 1 to 3 coordinates; the rest are 0
    return Site(id=i, x=x, y=y, z=z)


def _native_gate(gate: NativeGateWire) -> NativeGate:
    name = gate.name.upper()
    spec = GATES.get(name)
    return NativeGate(
        name=name,
        arity=gate.arity if gate.arity is not None else (spec.arity if spec else 1),
        duration_ns=(
            gate.duration_ns
            if gate.duration_ns is not None
            else (spec.default_duration_ns if spec else 0.0)
        ),
        angle_min=gate.angle_min,
        angle_max=gate.angle_max,
        connectivity=gate.connectivity,
    )


def _interaction_graph(graph: InteractionGraphWire) -> InteractionGraph:
    pairs = frozenset(
        (min(p.site_a, p.site_b), max(p.site_a, p.site_b)) for p in graph.allowed_pairs
    )
    return InteractionGraph(gate_name=graph.gate_name.upper(), pairs=pairs)


def _blockade(wire: HardwareWire, base: Blockade) -> Blockade:
    out = base
    if wire.blockade_radius is not None:
        out = replace(out, radius=wire.blockade_radius)
    model = wire.blockade_model
    if model is not None:
        radii = ("radius", "radius_x", "radius_y", "radius_z")
        numbers = {r: getattr(model, r) for r in radii if getattr(model, r) is not None}
        if numbers.get("radius", 0.0) <= 0.0:
            numbers.pop("radius", None)  # 0 keeps the legacy blockade_radius
        overrides = tuple((o.zone_id, o.radius) for o in model.zone_overrides)
        out = replace(out, **numbers, zone_overrides=overrides or out.zone_overrides)
    return out


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """A named set of sites with a role (data, ancilla, parking, ...)."""

    name: str
    role: str
    site_ids: tuple[int, ...]
    zone_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "site_ids": list(self.site_ids),
        }
        if self.zone_id is not None:
            out["zone_id"] = self.zone_id
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Configuration:
    """A configuration family: which sites hold atoms (atom ``i`` at ``site_ids[i]``)."""

    name: str
    site_ids: tuple[int, ...]
    regions: tuple[Region, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "site_ids": list(self.site_ids),
            "regions": [r.to_json() for r in self.regions],
            "description": self.description,
        }


class LatticeZone(_Wire, frozen=True, kw_only=True):
    """The sites of one zone of a generated lattice."""

    zone_id: int = 0
    site_ids: list[int] = []


class Lattice(_Wire, frozen=True, kw_only=True):
    """A generated lattice: a chain of n sites, a grid of cols x rows, a block of
    cols x rows x layers (site ids in x, then y, then z order)."""

    kind: Literal["chain", "grid", "block"] = "chain"
    n: int = 0
    rows: int = 0
    cols: int = 0
    layers: int = 0
    spacing: Finite = 1.0
    spacing_x: Finite | None = None
    spacing_y: Finite | None = None
    spacing_z: Finite | None = None
    zones: list[LatticeZone] = []


class Transport(_Wire, frozen=True, kw_only=True):
    """Generated transport edges: between nearest-neighbour sites."""

    kind: Literal["nearest"] = "nearest"
    duration_per_unit_ns: Finite = 0.0


class RegionWire(_Wire, frozen=True, kw_only=True):
    """A region of a configuration (role: one of ROLES, any case)."""

    name: str | None = None
    role: str = "DATA"
    site_ids: list[int] = []
    zone_id: int | None = None


class ConfigurationWire(_Wire, frozen=True, kw_only=True):
    """A configuration family: the sites that hold atoms ("all": every site)."""

    name: str
    site_ids: Literal["all"] | list[int] = "all"
    regions: list[RegionWire] = []
    description: str = ""


class ProfileFile(_Wire, frozen=True, kw_only=True):
    """A profile file (TOML or JSON; the presets are ones)."""

    name: str | None = None
    label: str = ""
    description: str = ""
    persona: str = ""
    isa_version: Annotated[Any, Meta(description="as a job's isa_version")] = None
    lattice: Lattice | None = None
    transport: Transport | None = None
    hardware: HardwareWire | None = None
    configurations: list[ConfigurationWire] = []
    default_configuration: str = ""
    noise: Annotated[Any, Meta(description="as a job's noise")] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A named device: hardware, noise, configuration families (see the module docstring)."""

    name: str
    hardware: Hardware
    noise: NoiseModel = field(default_factory=NoiseModel)
    label: str = ""
    description: str = ""
    persona: str = ""
    isa_version: IsaVersion = CURRENT
    configurations: tuple[Configuration, ...] = ()
    default_configuration: str = ""

    def configuration(self, name: str | None = None) -> Configuration:
        """The configuration family ``name`` (default: the profile's default).

        Raises:
            DeviceError: ``QD105`` when there is none of that name.
        """
        wanted = name or self.default_configuration
        for config in self.configurations:
            if config.name == wanted:
                return config
        if name is None and not self.configurations:
            return Configuration(name="all", site_ids=self.hardware.site_ids)
        raise _invalid(
            f"profile {self.name} has no configuration {wanted!r}; configurations: "
            f"{', '.join(c.name for c in self.configurations) or 'none'}",
            field="configuration",
        )

    def summary(self) -> dict[str, Any]:
        """A short description for listings."""
        hw = self.hardware
        return {
            "name": self.name,
            "label": self.label,
            "sites": len(hw.sites),
            "atoms": len(hw.site_ids),
            "zones": list(hw.zones),
            "blockade_radius": hw.blockade.radius,
            "native_gates": [g.name for g in hw.native_gates],
            "noisy": not self.noise.is_noiseless,
            "description": self.description,
        }

    def to_json(self) -> dict[str, Any]:
        """The profile as JSON: its metadata, the wire-form ``hardware`` and ``noise``."""
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "persona": self.persona,
            "isa_version": str(self.isa_version),
            "hardware": self.hardware.to_json(),
            "configurations": [c.to_json() for c in self.configurations],
            "default_configuration": self.default_configuration,
            "noise": self.noise.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any, *, name: str | None = None) -> Profile:
        """A profile from the profile file format (TOML or JSON, see ``docs/neutral-atom.md``).

        ``lattice`` generates ``hardware.sites`` (``kind`` chain, grid or block), ``transport``
        generates ``hardware.transport_edges`` between nearest-neighbour sites.

        Raises:
            DeviceError: ``QD105`` (or ``QD108`` for noise) naming the field.
        """
        given = {} if data is None else data
        file: ProfileFile = values.convert(given, ProfileFile, error=_invalid_key)
        hardware_data = dict(given.get("hardware") or {})
        if file.lattice is not None:
            if file.hardware is not None and file.hardware.sites is not None:
                raise _invalid("give lattice or hardware.sites, not both", field="lattice")
            hardware_data["sites"] = [s.to_json() for s in _lattice(file.lattice)]
        hardware = Hardware.from_json(hardware_data)
        if file.transport is not None:
            if hardware.transport_edges:
                raise _invalid("give transport or hardware.transport_edges, not both")
            hardware = replace(hardware, transport_edges=_nearest_edges(hardware, file.transport))
        configurations = tuple(_configuration(hardware, item) for item in file.configurations)
        default = file.default_configuration
        if configurations and not default:
            default = configurations[0].name
        profile = cls(
            name=name or (file.name if file.name is not None else "custom"),
            hardware=hardware,
            noise=NoiseModel.from_json(given.get("noise")),
            label=file.label,
            description=file.description,
            persona=file.persona,
            isa_version=parse_version(given.get("isa_version")),
            configurations=configurations,
            default_configuration=default,
        )
        if configurations:
            chosen = profile.configuration()
            profile = replace(profile, hardware=hardware.with_site_ids(chosen.site_ids))
        return profile


def _lattice(lattice: Lattice) -> tuple[Site, ...]:
    spacing = lattice.spacing
    sx, sy, sz = (
        spacing if given is None else given
        for given in (lattice.spacing_x, lattice.spacing_y, lattice.spacing_z)
    )
    shape = {
        "chain": (lattice.n, 1, 1),
        "grid": (lattice.cols, lattice.rows, 1),
        "block": (lattice.cols, lattice.rows, lattice.layers),
    }[lattice.kind]
    if min(shape) < 1:
        raise _invalid(f"lattice {lattice.kind} needs positive sizes, got {shape}", field="lattice")
    zone_of = {site_id: zone.zone_id for zone in lattice.zones for site_id in zone.site_ids}
    sites: list[Site] = []
    nx, ny, nz = shape
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                site_id = len(sites)
                sites.append(
                    Site(id=site_id, x=i * sx, y=j * sy, z=k * sz, zone_id=zone_of.get(site_id, 0))
                )
    return tuple(sites)


def _nearest_edges(hardware: Hardware, transport: Transport) -> tuple[TransportEdge, ...]:
    per_unit = transport.duration_per_unit_ns
    spacing = hardware.neighbour_distance
    edges = []
    for i, a in enumerate(hardware.sites):
        for b in hardware.sites[i + 1 :]:
            d = math.dist(a.point, b.point)
            if d <= spacing * (1 + 1e-9):
                edges.append(
                    TransportEdge(
                        src_site_id=a.id, dst_site_id=b.id, distance=d, duration_ns=d * per_unit
                    )
                )
    return tuple(edges)


def _configuration(hardware: Hardware, item: ConfigurationWire) -> Configuration:
    name = item.name
    site_ids = (
        tuple(s.id for s in hardware.sites) if item.site_ids == "all" else tuple(item.site_ids)
    )
    known = {s.id for s in hardware.sites}
    regions = []
    for region in item.regions:
        role = region.role.upper()
        if role not in ROLES:
            raise _invalid(
                f"configuration {name}: region role {role!r} is not one of {', '.join(ROLES)}",
                field="regions",
            )
        unknown = [s for s in region.site_ids if s not in known]
        if unknown:
            raise _invalid(f"region {region.name} names unknown site {unknown[0]}")
        regions.append(
            Region(
                name=region.name if region.name is not None else role.lower(),
                role=role,
                site_ids=tuple(region.site_ids),
                zone_id=region.zone_id,
            )
        )
    hardware.with_site_ids(site_ids)  # checks the ids
    return Configuration(
        name=name, site_ids=site_ids, regions=tuple(regions), description=item.description
    )


# --------------------------------------------------------------------------- presets


def presets() -> tuple[str, ...]:
    """The names of the shipped presets, sorted."""
    return tuple(sorted(path.stem for path in PRESET_DIR.glob("*.toml")))


def _read(path: Path) -> Any:
    try:
        if path.suffix == ".toml":
            with path.open("rb") as handle:
                return tomllib.load(handle)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _invalid(f"{path}: cannot read a profile: {exc}", path=str(path)) from None


@functools.lru_cache(maxsize=64)
def _preset(name: str) -> Profile:
    return Profile.from_json(_read(PRESET_DIR / f"{name}.toml"), name=name)


def load_profile(source: str | Path | Mapping[str, Any]) -> Profile:
    """A profile: a preset's name, a ``.toml``/``.json`` profile file, or its parsed data.

    Raises:
        DeviceError: ``QD104 preset-unknown`` (with the list) for a name that is neither a
            preset nor a file; ``QD105`` for a profile that does not check.
    """
    if isinstance(source, Mapping):
        return Profile.from_json(source)
    path = Path(source)
    if path.suffix in (".toml", ".json") and path.exists():
        return Profile.from_json(_read(path), name=None)
    name = str(source)
    preset = PRESET_DIR / f"{name}.toml"
    if not preset.exists():
        raise DeviceError.of(
            "preset-unknown",
            f"no preset {name!r}; presets: {', '.join(presets())}",
            preset=name,
            presets=list(presets()),
        )
    return _preset(name)


__all__ = [
    "C6_RB70S",
    "PRESET_DIR",
    "ROLES",
    "Blockade",
    "Configuration",
    "Connectivity",
    "DriveLimits",
    "Hardware",
    "InteractionGraph",
    "MoveLimits",
    "NativeGate",
    "Profile",
    "PulseLimits",
    "Region",
    "Site",
    "TimingLimits",
    "TransportEdge",
    "load_profile",
    "presets",
]
