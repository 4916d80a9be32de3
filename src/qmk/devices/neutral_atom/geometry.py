"""Where the atoms are: the geometry a program walks, and where a MoveAtom takes an atom.

Public API: :class:`Geometry` (every atom's point, site and zone at one instruction, and
the move bookkeeping), :class:`MovePlan` and :func:`move_plan` (where a MoveAtom goes,
by which path of transport edges, how far, how long), and :func:`violation`, the
``QD2xx`` error that names an instruction, its atoms and the limit.

The validators (:mod:`.validate`), the scheduler (:mod:`.schedule`) and the compiler's
router all walk programs on this one geometry; it sits below all of them.

>>> from qmk.devices.neutral_atom.profiles import load_profile
>>> geometry = Geometry.start(load_profile("benchmark_chain").hardware, 3)
>>> geometry.where(2), round(geometry.distance(0, 2), 6)
('atom 2 (site 2 at (2.6, 0, 0))', 2.6)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import Instruction
from qmk.devices.neutral_atom.profiles import Hardware

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

    def copy(self) -> Geometry:
        """An independent copy (the lattice's site index is shared: it never changes)."""
        return Geometry(
            hardware=self.hardware,
            points=list(self.points),
            sites=list(self.sites),
            moves=list(self.moves),
            displacement=list(self.displacement),
            total_moves=self.total_moves,
            _site_at=self._site_at,
            _occupied=dict(self._occupied),
        )

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


def violation(
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
            raise violation(
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
        raise violation(
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
        raise violation(
            "transport",
            instruction,
            geometry,
            [atom],
            f"{geometry.where(atom)} cannot go to {_fmt_point(point)}: with transport edges "
            "an atom moves between lattice sites only",
        )
    path, length, duration = _shortest_path(hw, start, site)
    if path is None:
        raise violation(
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


__all__ = ["Geometry", "MovePlan", "Point", "move_plan", "violation"]
