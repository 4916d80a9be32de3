"""Device profiles: the hardware (lattice, configuration, zones, gates, limits) and its noise.

Public API:

- :class:`Hardware` -- the wire form's ``hardware`` object as one checked value: the
  **lattice** (``sites``: every trap site, with coordinates and zone) apart from the
  **configuration** (``site_ids``: atom ``i`` starts at site ``site_ids[i]``), the native
  gate catalog (:class:`NativeGate`), per-gate interaction graphs, the blockade model
  (:class:`Blockade`: isotropic, anisotropic per axis, per zone), timing limits, pulse
  limits, the transport graph (:class:`TransportEdge`) and move limits. Legacy 1.0 fields
  (``positions``, ``coordinates``, ``blockade_radius``) are read and become sites.
  ``Hardware.from_json`` / ``to_json`` (the wire form);
- :class:`Profile` -- a named hardware + :class:`~qmk.devices.neutral_atom.noise.NoiseModel`
  with its configuration families and regions; ``Profile.from_json`` reads the profile file
  format (TOML or JSON; a ``lattice`` table generates sites, a ``transport`` table edges);
- :func:`presets` (the shipped names), :func:`load_profile` (a preset name or a profile
  file), :data:`PRESET_DIR`.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


def _get(data: Mapping[str, Any], key: str, default: Any, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _invalid(f"{key} = {value!r} is not a {getattr(kind, '__name__', kind)}", field=key)
    return value


def _known(path: str, data: Any, names: Iterable[str]) -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _invalid(f"{path} must be an object", field=path)
    allowed = set(names)
    extra = sorted(set(data) - allowed)
    if extra:
        raise _invalid(
            f"{path} has no field {extra[0]!r}; fields: {', '.join(sorted(allowed))}",
            field=f"{path}.{extra[0]}",
        )
    return data


def _floats(path: str, data: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        if name in data and data[name] is not None:
            value = data[name]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _invalid(f"{path}.{name} = {value!r} is not a number", field=name)
            if value < 0:
                raise _invalid(f"{path}.{name} = {value!r} is negative", field=name)
            out[name] = float(value)
    return out


def _ints(path: str, data: Mapping[str, Any], names: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        if name in data and data[name] is not None:
            value = data[name]
            whole = isinstance(value, float) and value.is_integer()
            if not (isinstance(value, int) or whole) or isinstance(value, bool) or value < 0:
                raise _invalid(f"{path}.{name} = {value!r} is not a count >= 0", field=name)
            out[name] = int(value)
    return out


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TimingLimits:
    """Timing limits (ns; a cap of 0 means unlimited, a max wait of 0 means none)."""

    min_wait_ns: float = 0.0
    max_wait_ns: float = 0.0
    max_parallel_single_qubit: int = 0
    max_parallel_two_qubit: int = 0
    max_parallel_per_zone: int = 0
    measurement_cooldown_ns: float = 0.0
    measurement_duration_ns: float = 0.0
    #: QMK extension: how long a Reset takes.
    reset_duration_ns: float = 1000.0

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TIMING_FIELDS}


_TIMING_FLOATS = (
    "min_wait_ns",
    "max_wait_ns",
    "measurement_cooldown_ns",
    "measurement_duration_ns",
    "reset_duration_ns",
)
_TIMING_INTS = ("max_parallel_single_qubit", "max_parallel_two_qubit", "max_parallel_per_zone")
_TIMING_FIELDS = _TIMING_FLOATS[:2] + _TIMING_INTS + _TIMING_FLOATS[2:]


@dataclass(frozen=True, slots=True, kw_only=True)
class PulseLimits:
    """Pulse limits (a range with max <= min is unbounded; 0 overlapping means unlimited)."""

    detuning_min: float = 0.0
    detuning_max: float = 0.0
    duration_min_ns: float = 0.0
    duration_max_ns: float = 0.0
    max_overlapping_pulses: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "detuning_min": self.detuning_min,
            "detuning_max": self.detuning_max,
            "duration_min_ns": self.duration_min_ns,
            "duration_max_ns": self.duration_max_ns,
            "max_overlapping_pulses": self.max_overlapping_pulses,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportEdge:
    """A transport path between two sites (both directions)."""

    src_site_id: int
    dst_site_id: int
    distance: float
    duration_ns: float

    def to_json(self) -> dict[str, Any]:
        return {
            "src_site_id": self.src_site_id,
            "dst_site_id": self.dst_site_id,
            "distance": self.distance,
            "duration_ns": self.duration_ns,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveLimits:
    """Move budgets (0: unlimited) and, as QMK extensions, the speed of free moves and the
    minimum spacing between atoms."""

    max_total_displacement_per_atom: float = 0.0
    max_moves_per_atom: int = 0
    max_moves_per_shot: int = 0
    max_moves_per_configuration_change: int = 0
    rearrangement_window_ns: float = 0.0
    #: ns per micrometre of a move that follows no transport edge.
    duration_per_unit_ns: float = 0.0
    #: No two atoms closer than this after a move (0: only not on the same point).
    min_spacing: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _MOVE_FLOATS + _MOVE_INTS}


_MOVE_FLOATS = (
    "max_total_displacement_per_atom",
    "rearrangement_window_ns",
    "duration_per_unit_ns",
    "min_spacing",
)
_MOVE_INTS = ("max_moves_per_atom", "max_moves_per_shot", "max_moves_per_configuration_change")

_HARDWARE_FIELDS = (
    "positions",
    "coordinates",
    "blockade_radius",
    "sites",
    "site_ids",
    "native_gates",
    "interaction_graphs",
    "blockade_model",
    "timing_limits",
    "pulse_limits",
    "transport_edges",
    "move_limits",
)


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return math.dist(a, b)


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
    bound = min(_distance(a, b) for a, b in itertools.pairwise(ordered))
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
                        d = _distance(a, b)
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

    def _site_index(self) -> dict[int, Site]:
        return self._index

    def site_at(self, point: Sequence[float]) -> Site | None:
        """The lattice site at ``point`` (within :data:`TOLERANCE`), or None."""
        for site in self.sites:
            if _distance(site.point, point) <= TOLERANCE:
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
        values = _known("hardware", data, _HARDWARE_FIELDS)
        sites = base.sites if base is not None else ()
        site_ids: tuple[int, ...] | None = base.site_ids if base is not None else None
        if "sites" in values and values["sites"] is not None:
            sites = tuple(_site(i, item) for i, item in enumerate(values["sites"]))
            site_ids = None
        elif values.get("coordinates"):
            sites = tuple(
                _site_from_point(i, point) for i, point in enumerate(values["coordinates"])
            )
            site_ids = None
        elif values.get("positions"):
            sites = tuple(_site_from_point(i, [x]) for i, x in enumerate(values["positions"]))
            site_ids = None
        if values.get("site_ids") is not None:
            raw = values["site_ids"]
            if not isinstance(raw, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in raw
            ):
                raise _invalid("site_ids must be a list of site ids", field="site_ids")
            site_ids = tuple(raw)
        if site_ids is None:
            site_ids = tuple(s.id for s in sites)
        out = cls(
            sites=sites,
            site_ids=site_ids,
            native_gates=(
                tuple(_native_gate(g) for g in values["native_gates"])
                if values.get("native_gates") is not None
                else (base.native_gates if base else ())
            ),
            interaction_graphs=(
                tuple(_interaction_graph(g) for g in values["interaction_graphs"])
                if values.get("interaction_graphs") is not None
                else (base.interaction_graphs if base else ())
            ),
            blockade=_blockade(values, base.blockade if base else Blockade()),
            timing=(
                TimingLimits(
                    **{
                        **_as_kwargs(base.timing if base else TimingLimits()),
                        **_floats(
                            "timing_limits",
                            _known("timing_limits", values["timing_limits"], _TIMING_FIELDS),
                            _TIMING_FLOATS,
                        ),
                        **_ints("timing_limits", values["timing_limits"], _TIMING_INTS),
                    }
                )
                if values.get("timing_limits") is not None
                else (base.timing if base else TimingLimits())
            ),
            pulse=_pulse(values.get("pulse_limits"), base.pulse if base else PulseLimits()),
            transport_edges=(
                tuple(_edge(e) for e in values["transport_edges"])
                if values.get("transport_edges") is not None
                else (base.transport_edges if base else ())
            ),
            move_limits=(
                MoveLimits(
                    **{
                        **_as_kwargs(base.move_limits if base else MoveLimits()),
                        **_floats(
                            "move_limits",
                            _known("move_limits", values["move_limits"], _MOVE_FLOATS + _MOVE_INTS),
                            _MOVE_FLOATS,
                        ),
                        **_ints("move_limits", values["move_limits"], _MOVE_INTS),
                    }
                )
                if values.get("move_limits") is not None
                else (base.move_limits if base else MoveLimits())
            ),
        )
        return out

    def to_json(self) -> dict[str, Any]:
        """The wire form (v1.1 fields, and the legacy ``positions``/``blockade_radius``)."""
        index = self._site_index()
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
        }


def _as_kwargs(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _number(path: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _invalid(f"{path} = {value!r} is not a number", field=path)
    return float(value)


def _site(i: int, item: Any) -> Site:
    values = _known(f"sites[{i}]", item, ("id", "x", "y", "z", "zone_id"))
    site_id = values.get("id", i)
    zone = values.get("zone_id", 0)
    if not isinstance(site_id, int) or not isinstance(zone, int):
        raise _invalid(f"sites[{i}]: id and zone_id must be integers", field="sites")
    return Site(
        id=site_id,
        x=_number(f"sites[{i}].x", values.get("x", 0.0)),
        y=_number(f"sites[{i}].y", values.get("y", 0.0)),
        z=_number(f"sites[{i}].z", values.get("z", 0.0)),
        zone_id=zone,
    )


def _site_from_point(i: int, point: Any) -> Site:
    if not isinstance(point, list | tuple) or not 1 <= len(point) <= 3:
        raise _invalid(f"coordinates[{i}] must be 1 to 3 numbers", field="coordinates")
    xyz = [_number(f"coordinates[{i}]", v) for v in point] + [0.0] * (3 - len(point))
    return Site(id=i, x=xyz[0], y=xyz[1], z=xyz[2])


def _native_gate(item: Any) -> NativeGate:
    values = _known(
        "native_gates[]",
        item,
        ("name", "arity", "duration_ns", "angle_min", "angle_max", "connectivity"),
    )
    name = values.get("name")
    if not isinstance(name, str):
        raise _invalid(f"a native gate needs a name, got {item!r}", field="native_gates")
    spec = GATES.get(name.upper())
    arity = values.get("arity", spec.arity if spec else 1)
    try:
        connectivity = Connectivity(values.get("connectivity", "AllToAll"))
    except ValueError:
        raise _invalid(
            f"native gate {name}: connectivity {values.get('connectivity')!r} is not one of "
            f"{', '.join(c.value for c in Connectivity)}",
            field="native_gates",
        ) from None
    return NativeGate(
        name=name.upper(),
        arity=int(arity),
        duration_ns=_number(
            f"{name}.duration_ns",
            values.get("duration_ns", spec.default_duration_ns if spec else 0.0),
        ),
        angle_min=_number(f"{name}.angle_min", values.get("angle_min", 0.0)),
        angle_max=_number(f"{name}.angle_max", values.get("angle_max", 0.0)),
        connectivity=connectivity,
    )


def _interaction_graph(item: Any) -> InteractionGraph:
    values = _known("interaction_graphs[]", item, ("gate_name", "allowed_pairs"))
    pairs: set[tuple[int, int]] = set()
    for pair in values.get("allowed_pairs") or []:
        ends = _known("allowed_pairs[]", pair, ("site_a", "site_b"))
        a, b = int(ends.get("site_a", 0)), int(ends.get("site_b", 0))
        pairs.add((min(a, b), max(a, b)))
    return InteractionGraph(
        gate_name=str(values.get("gate_name", "")).upper(), pairs=frozenset(pairs)
    )


def _blockade(values: Mapping[str, Any], base: Blockade) -> Blockade:
    out = base
    if values.get("blockade_radius") is not None:
        out = replace(out, radius=_number("blockade_radius", values["blockade_radius"]))
    model = values.get("blockade_model")
    if model is not None:
        fields_ = _known(
            "blockade_model",
            model,
            ("radius", "radius_x", "radius_y", "radius_z", "zone_overrides"),
        )
        numbers = _floats("blockade_model", fields_, ("radius", "radius_x", "radius_y", "radius_z"))
        if numbers.get("radius", 0.0) <= 0.0:
            numbers.pop("radius", None)  # 0 keeps the legacy blockade_radius
        overrides = tuple(
            (
                int(_known("zone_overrides[]", o, ("zone_id", "radius")).get("zone_id", 0)),
                _number("zone_overrides[].radius", o.get("radius", 0.0)),
            )
            for o in fields_.get("zone_overrides") or []
        )
        out = replace(out, **numbers, zone_overrides=overrides or out.zone_overrides)
    return out


def _pulse(data: Any, base: PulseLimits) -> PulseLimits:
    if data is None:
        return base
    values = _known(
        "pulse_limits",
        data,
        (
            "detuning_min",
            "detuning_max",
            "duration_min_ns",
            "duration_max_ns",
            "max_overlapping_pulses",
        ),
    )
    kwargs: dict[str, Any] = _as_kwargs(base)
    for name in ("detuning_min", "detuning_max", "duration_min_ns", "duration_max_ns"):
        if name in values:
            kwargs[name] = _number(f"pulse_limits.{name}", values[name])
    kwargs.update(_ints("pulse_limits", values, ("max_overlapping_pulses",)))
    return PulseLimits(**kwargs)


def _edge(item: Any) -> TransportEdge:
    values = _known(
        "transport_edges[]", item, ("src_site_id", "dst_site_id", "distance", "duration_ns")
    )
    return TransportEdge(
        src_site_id=int(values.get("src_site_id", 0)),
        dst_site_id=int(values.get("dst_site_id", 0)),
        distance=_number("transport_edges[].distance", values.get("distance", 0.0)),
        duration_ns=_number("transport_edges[].duration_ns", values.get("duration_ns", 0.0)),
    )


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


_PROFILE_FIELDS = (
    "name",
    "label",
    "description",
    "persona",
    "isa_version",
    "lattice",
    "transport",
    "hardware",
    "configurations",
    "default_configuration",
    "noise",
)


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
        values = _known("profile", data, _PROFILE_FIELDS)
        hardware_data = dict(_known("hardware", values.get("hardware"), _HARDWARE_FIELDS))
        if values.get("lattice") is not None:
            if hardware_data.get("sites") is not None:
                raise _invalid("give lattice or hardware.sites, not both", field="lattice")
            hardware_data["sites"] = [s.to_json() for s in _lattice(values["lattice"])]
        hardware = Hardware.from_json(hardware_data)
        if values.get("transport") is not None:
            if hardware.transport_edges:
                raise _invalid("give transport or hardware.transport_edges, not both")
            hardware = replace(
                hardware, transport_edges=_nearest_edges(hardware, values["transport"])
            )
        configurations = tuple(
            _configuration(hardware, item) for item in values.get("configurations") or []
        )
        default = _get(values, "default_configuration", "", str)
        if configurations and not default:
            default = configurations[0].name
        profile = cls(
            name=name or _get(values, "name", "custom", str),
            hardware=hardware,
            noise=NoiseModel.from_json(values.get("noise")),
            label=_get(values, "label", "", str),
            description=_get(values, "description", "", str),
            persona=_get(values, "persona", "", str),
            isa_version=parse_version(values.get("isa_version")),
            configurations=configurations,
            default_configuration=default,
        )
        if configurations:
            chosen = profile.configuration()
            profile = replace(profile, hardware=hardware.with_site_ids(chosen.site_ids))
        return profile


def _lattice(data: Any) -> tuple[Site, ...]:
    values = _known(
        "lattice",
        data,
        (
            "kind",
            "n",
            "rows",
            "cols",
            "layers",
            "spacing",
            "spacing_x",
            "spacing_y",
            "spacing_z",
            "zones",
        ),
    )
    kind = values.get("kind", "chain")
    spacing = float(values.get("spacing", 1.0))
    sx = float(values.get("spacing_x", spacing))
    sy = float(values.get("spacing_y", spacing))
    sz = float(values.get("spacing_z", spacing))
    if kind == "chain":
        shape = (int(values.get("n", 0)), 1, 1)
    elif kind == "grid":
        shape = (int(values.get("cols", 0)), int(values.get("rows", 0)), 1)
    elif kind == "block":
        shape = (
            int(values.get("cols", 0)),
            int(values.get("rows", 0)),
            int(values.get("layers", 0)),
        )
    else:
        raise _invalid(f"lattice.kind {kind!r} is not chain, grid or block", field="lattice.kind")
    if min(shape) < 1:
        raise _invalid(f"lattice {kind} needs positive sizes, got {shape}", field="lattice")
    zone_of: dict[int, int] = {}
    for entry in values.get("zones") or []:
        zone = _known("lattice.zones[]", entry, ("zone_id", "site_ids"))
        for site_id in zone.get("site_ids") or []:
            zone_of[int(site_id)] = int(zone.get("zone_id", 0))
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


def _nearest_edges(hardware: Hardware, data: Any) -> tuple[TransportEdge, ...]:
    values = _known("transport", data, ("kind", "duration_per_unit_ns"))
    if values.get("kind", "nearest") != "nearest":
        raise _invalid("transport.kind must be 'nearest'", field="transport.kind")
    per_unit = float(values.get("duration_per_unit_ns", 0.0))
    spacing = hardware.neighbour_distance
    edges = []
    for i, a in enumerate(hardware.sites):
        for b in hardware.sites[i + 1 :]:
            d = _distance(a.point, b.point)
            if d <= spacing * (1 + 1e-9):
                edges.append(
                    TransportEdge(
                        src_site_id=a.id, dst_site_id=b.id, distance=d, duration_ns=d * per_unit
                    )
                )
    return tuple(edges)


def _configuration(hardware: Hardware, item: Any) -> Configuration:
    values = _known("configurations[]", item, ("name", "site_ids", "regions", "description"))
    name = values.get("name")
    if not isinstance(name, str):
        raise _invalid("a configuration needs a name", field="configurations")
    raw = values.get("site_ids", "all")
    site_ids = tuple(s.id for s in hardware.sites) if raw == "all" else tuple(int(s) for s in raw)
    known = {s.id for s in hardware.sites}
    regions = []
    for region in values.get("regions") or []:
        r = _known("regions[]", region, ("name", "role", "site_ids", "zone_id"))
        role = str(r.get("role", "DATA")).upper()
        if role not in ROLES:
            raise _invalid(
                f"configuration {name}: region role {role!r} is not one of {', '.join(ROLES)}",
                field="regions",
            )
        ids = tuple(int(s) for s in r.get("site_ids") or [])
        unknown = [s for s in ids if s not in known]
        if unknown:
            raise _invalid(f"region {r.get('name')} names unknown site {unknown[0]}")
        regions.append(
            Region(
                name=str(r.get("name", role.lower())),
                role=role,
                site_ids=ids,
                zone_id=r.get("zone_id"),
            )
        )
    hardware.with_site_ids(site_ids)  # checks the ids
    return Configuration(
        name=name,
        site_ids=site_ids,
        regions=tuple(regions),
        description=str(values.get("description", "")),
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
    "PRESET_DIR",
    "ROLES",
    "Blockade",
    "Configuration",
    "Connectivity",
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
