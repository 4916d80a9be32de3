"""The device side of the neutral-atom compiler: coupling, placement, routing, native gates.

The steps of :mod:`qmk.devices.neutral_atom.compile` after lowering
(:mod:`.lowering`): which atoms a CZ may join (:class:`Device`: the pairs the device's
own ``connectivity`` and ``blockade`` validators accept), where the program's wires go
(:func:`place`), and :class:`Emitter`, which writes the device program: runs of
one-qubit unitaries fused and emitted as catalog gates, each CZ routed by a ``MoveAtom``
the ``transport`` validator accepts or by SWAPs. Gate matrices come from the ISA's
lowering onto the engines' gates (:data:`qmk.devices.neutral_atom.isa.GATES`,
:data:`qmk.engines.gates.GATES`).

>>> from qmk.devices.neutral_atom.profiles import load_profile
>>> profile = load_profile("benchmark_chain")
>>> device = Device(profile, profile.hardware)
>>> everyone = Geometry.start(profile.hardware, device.n_configured)
>>> device.entangler, device.coupled(everyone, 0, 1), device.coupled(everyone, 0, 2)
('CZ', True, False)
"""

from __future__ import annotations

import cmath
import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.geometry import Geometry
from qmk.devices.neutral_atom.isa import GATES, Instruction
from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.profiles import Connectivity, Hardware, Profile
from qmk.devices.neutral_atom.validate import VALIDATORS, Context
from qmk.engines.gates import GATES as ENGINE_GATES

#: Start atoms the placement tries (all of them on small arrays).
_MAX_STARTS = 48
_TOL = 1e-9

Matrix = np.ndarray

_I2 = np.eye(2, dtype=complex)
_H = ENGINE_GATES["h"].matrix()


def _isa_matrix(name: str) -> Matrix:
    """The unitary of a fixed one-qubit ISA gate: its lowering onto engine gates."""
    matrix = _I2
    for gate, params in GATES[name].engine_gates():
        matrix = ENGINE_GATES[gate].matrix(params) @ matrix
    return matrix


#: The device's fixed one-qubit gates as matrices (names of the ISA's gate table).
_FIXED: Mapping[str, Matrix] = {
    name: _isa_matrix(name) for name, spec in GATES.items() if spec.arity == 1 and not spec.params
}
_CLIFFORD_NAMES = ("H", "S", "SDG", "X", "Y", "Z")


def _same_up_to_phase(a: Matrix, b: Matrix) -> bool:
    overlap = np.vdot(b, a)  # tr(b^dagger a)
    return bool(abs(abs(overlap) - 2.0) < 1e-9)


def _is_identity(u: Matrix) -> bool:
    return _same_up_to_phase(u, _I2)


def _is_diagonal(u: Matrix) -> bool:
    return bool(abs(u[0, 1]) < 1e-12 and abs(u[1, 0]) < 1e-12)


def _zyz(u: Matrix) -> tuple[float, float, float]:
    """``(theta, phi, lam)`` with ``u = e^{ia} Rz(phi) Ry(theta) Rz(lam)``."""
    det = np.linalg.det(u)
    v = u / cmath.sqrt(det)
    theta = 2 * math.atan2(abs(v[1, 0]), abs(v[0, 0]))
    plus = 2 * cmath.phase(v[1, 1]) if abs(v[1, 1]) > 1e-12 else 0.0
    minus = 2 * cmath.phase(v[1, 0]) if abs(v[1, 0]) > 1e-12 else 0.0
    phi = (plus + minus) / 2
    lam = (plus - minus) / 2
    return theta, phi, lam


def _wrap(angle: float) -> float:
    """``angle`` in (-pi, pi]."""
    wrapped = math.remainder(angle, 2 * math.pi)
    return math.pi if abs(wrapped + math.pi) < 1e-12 else wrapped


class Device:
    """The hardware as the compiler sees it: coupling by the device's own validators."""

    def __init__(self, profile: Profile, hardware: Hardware) -> None:
        self.profile = profile
        self.hw = hardware
        catalog = {g.name for g in hardware.native_gates}
        self.catalog = catalog or set(GATES)
        if "CZ" in self.catalog:
            self.entangler = "CZ"
        elif "CX" in self.catalog:
            self.entangler = "CX"
        else:
            raise DeviceError.of(
                "compile-unsupported",
                f"profile {profile.name}: the native catalog has no CZ or CX "
                f"({', '.join(sorted(self.catalog))}); nothing can entangle atoms",
            )
        self.n_configured = len(hardware.site_ids)
        job = parse_job(
            {"program": [{"op": "AllocArray", "n_qubits": max(1, self.n_configured)}]},
            preset=replace(profile, hardware=hardware),
        )
        self.job = job
        self.reach = self._reach()

    def _reach(self) -> float:
        """No two atoms farther apart than this can interact (inf: any may)."""
        hw = self.hw
        bounds = []
        radii = [hw.blockade.radius, *(r for _, r in hw.blockade.zone_overrides)]
        if all(r > 0 for r in radii) and radii:
            bounds.append(max(radii))
        entry = hw.gate(self.entangler)
        if entry is not None and entry.connectivity is not Connectivity.ALL_TO_ALL:
            bounds.append(hw.neighbour_distance)
        return (min(bounds) * (1 + 1e-9) + _TOL) if bounds else math.inf

    def context(self, geometry: Geometry) -> Context:
        return Context(job=self.job, strict_timing=False, geometry=geometry, allocated=True)

    def coupled(self, geometry: Geometry, a: int, b: int) -> bool:
        """Whether the device's connectivity and blockade validators accept a CZ on a, b."""
        if a == b:
            return False
        if geometry.distance(a, b) > self.reach:
            return False
        ins = Instruction(index=0, op="ApplyGate", gate=self.entangler, targets=(a, b))
        ctx = self.context(geometry)
        try:
            VALIDATORS["connectivity"].check(ctx, ins)
            VALIDATORS["blockade"].check(ctx, ins)
        except DeviceError:
            return False
        return True

    def neighbours(self, geometry: Geometry, atoms: Sequence[int]) -> dict[int, list[int]]:
        """The coupling graph among ``atoms`` at ``geometry`` (a grid of cells of the reach)."""
        out: dict[int, list[int]] = {a: [] for a in atoms}
        if math.isinf(self.reach):
            for a, b in itertools.combinations(atoms, 2):
                if self.coupled(geometry, a, b):
                    out[a].append(b)
                    out[b].append(a)
            return out
        cell = self.reach
        cells: dict[tuple[int, int, int], list[int]] = {}
        for a in atoms:
            p = geometry.points[a]
            cells.setdefault(tuple(math.floor(c / cell) for c in p), []).append(a)  # type: ignore[arg-type]
        for (cx, cy, cz), members in cells.items():
            for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3):
                for b in cells.get((cx + dx, cy + dy, cz + dz), ()):
                    for a in members:
                        if a < b and self.coupled(geometry, a, b):
                            out[a].append(b)
                            out[b].append(a)
        return out


def _hops(graph: Mapping[int, Sequence[int]], start: int) -> dict[int, int]:
    seen = {start: 0}
    queue = deque([start])
    while queue:
        a = queue.popleft()
        for b in graph[a]:
            if b not in seen:
                seen[b] = seen[a] + 1
                queue.append(b)
    return seen


# --------------------------------------------------------------------------- placement


def place(
    n_wires: int, weights: Mapping[tuple[int, int], int], graph: Mapping[int, Sequence[int]]
) -> list[int]:
    """Wire -> atom: greedy embeddings from several starts, the cheapest kept.

    Cost: sum over interacting wire pairs of weight * (hops - 1), then the highest atom
    index (fewer atoms to allocate)."""
    atoms = sorted(graph)
    partners: dict[int, dict[int, int]] = {w: {} for w in range(n_wires)}
    for (u, v), w in weights.items():
        partners[u][v] = partners[u].get(v, 0) + w
        partners[v][u] = partners[v].get(u, 0) + w
    hop_cache: dict[int, dict[int, int]] = {}

    def hops(a: int, b: int) -> int:
        table = hop_cache.get(a)
        if table is None:
            table = hop_cache[a] = _hops(graph, a)
        return table.get(b, 10 * len(atoms) + 10)

    if not weights:
        return atoms[:n_wires]
    degree = {w: sum(p.values()) for w, p in partners.items()}
    connected = [w for w in range(n_wires) if partners[w]]
    first_wires = sorted(
        {
            max(connected, key=lambda w: (degree[w], -w)),
            min(connected, key=lambda w: (degree[w], w)),
        }
    )
    if len(atoms) <= _MAX_STARTS:
        starts = atoms
    else:
        step = len(atoms) / _MAX_STARTS
        starts = sorted({atoms[int(i * step)] for i in range(_MAX_STARTS)} | {atoms[0]})
    best: tuple[tuple[int, int], list[int]] | None = None
    for first, start in itertools.product(first_wires, starts):
        where = {first: start}
        taken = {start}
        while len(where) < len(connected):
            # the unplaced wire most tied to the placed ones
            candidates = [w for w in connected if w not in where]
            nxt = max(
                candidates,
                key=lambda w: (sum(c for p, c in partners[w].items() if p in where), degree[w], -w),
            )
            placed = [(where[p], c) for p, c in partners[nxt].items() if p in where]
            near = {b for a, _ in placed for b in graph[a] if b not in taken}
            pool = sorted(near) if near else [a for a in atoms if a not in taken]
            choice = min(pool, key=lambda a: (sum(c * hops(a, b) for b, c in placed), a))
            where[nxt] = choice
            taken.add(choice)
        cost = sum(c * (hops(where[u], where[v]) - 1) for (u, v), c in weights.items())
        spare = iter(a for a in atoms if a not in taken)
        layout = [where[w] if w in where else next(spare) for w in range(n_wires)]
        score = (cost, max(layout))
        if best is None or score < best[0]:
            best = (score, layout)
        if cost == 0 and max(layout) == n_wires - 1:
            break
    assert best is not None
    return best[1]


# --------------------------------------------------------------------------- emission


def _clifford_words(allowed: Sequence[str]) -> list[tuple[Matrix, tuple[str, ...]]]:
    """The single-qubit Cliffords reachable from ``allowed`` gates, each with a shortest word."""
    found: list[tuple[Matrix, tuple[str, ...]]] = [(_I2, ())]
    frontier: list[tuple[Matrix, tuple[str, ...]]] = [(_I2, ())]
    for _ in range(6):
        fresh: list[tuple[Matrix, tuple[str, ...]]] = []
        for matrix, word in frontier:
            for name in allowed:
                product = _FIXED[name] @ matrix
                if not any(_same_up_to_phase(product, m) for m, _ in found):
                    found.append((product, (*word, name)))
                    fresh.append((product, (*word, name)))
        frontier = fresh
        if not frontier:
            break
    return found


@dataclass(slots=True)
class Emitter:
    device: Device
    geometry: Geometry
    wire_atom: list[int]
    routing: str
    program: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, Matrix] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    columns: int = 0
    swaps: int = 0
    moves: int = 0
    routed: int = 0
    _graph: dict[int, list[int]] | None = None
    _words: list[tuple[Matrix, tuple[str, ...]]] | None = None

    # ---- one-qubit gates

    def u(self, atom: int, matrix: Matrix) -> None:
        self.pending[atom] = matrix @ self.pending.get(atom, _I2)

    def flush(self, atom: int, *, before_measure: bool = False) -> None:
        matrix = self.pending.pop(atom, None)
        if matrix is None:
            return
        if before_measure and _is_diagonal(matrix):
            return
        for name, params in self.native(matrix):
            self.gate(name, (atom,), params)

    def native(self, u: Matrix) -> list[tuple[str, tuple[float, ...]]]:
        """``u`` as catalog gates (time order), up to a global phase."""
        if _is_identity(u):
            return []
        catalog = self.device.catalog
        if self._words is None:
            self._words = _clifford_words([n for n in _CLIFFORD_NAMES if n in catalog])
        for matrix, word in self._words:
            if _same_up_to_phase(u, matrix):
                return [(name, ()) for name in word]
        for name in ("T", "TDG"):
            if name in catalog and _same_up_to_phase(u, _FIXED[name]):
                return [(name, ())]
        if _is_diagonal(u) and "RZ" in catalog:
            return self.rotation("RZ", cmath.phase(u[1, 1]) - cmath.phase(u[0, 0]))
        theta, phi, lam = _zyz(u)
        if "U3" in catalog:
            return [("U3", (theta, _wrap(phi), _wrap(lam)))]
        if "RZ" in catalog and "RY" in catalog:
            return [
                *self.rotation("RZ", lam),
                *self.rotation("RY", theta),
                *self.rotation("RZ", phi),
            ]
        if "RZ" in catalog and "RX" in catalog:
            return [
                *self.rotation("RZ", lam - math.pi / 2),
                *self.rotation("RX", theta),
                *self.rotation("RZ", phi + math.pi / 2),
            ]
        raise DeviceError.of(
            "compile-unsupported",
            f"profile {self.device.profile.name}: a one-qubit gate that is neither a catalog "
            f"Clifford nor T needs U3 or RZ with RY or RX; the catalog has "
            f"{', '.join(sorted(catalog))}",
        )

    def rotation(self, name: str, angle: float) -> list[tuple[str, tuple[float, ...]]]:
        """``name(angle)``, the angle wrapped (or split) into the catalog's range."""
        angle = _wrap(angle)
        if abs(angle) < 1e-12:
            return []
        entry = self.device.hw.gate(name)
        if entry is None or not entry.bounds_angle:
            return [(name, (angle,))]
        lo, hi = entry.angle_min, entry.angle_max
        for k in (0, 1, -1, 2, -2):
            candidate = angle + 2 * math.pi * k
            if lo - _TOL <= candidate <= hi + _TOL:
                return [(name, (min(max(candidate, lo), hi),))]
        # equal pieces within the range; a turn of 2 pi changes only a global phase
        splits = []
        for candidate in (angle, angle + 2 * math.pi, angle - 2 * math.pi):
            bound = hi if candidate > 0 else lo
            if bound * candidate > 0:
                splits.append((math.ceil(abs(candidate) / abs(bound) - 1e-12), candidate))
        if not splits:
            raise DeviceError.of(
                "angle-out-of-range",
                f"{name}({angle:g}) cannot be written with angles in [{lo:g}, {hi:g}]",
                limit=[lo, hi],
            )
        pieces, total = min(splits)
        return [(name, (total / pieces,))] * pieces

    def gate(self, name: str, atoms: tuple[int, ...], params: tuple[float, ...] = ()) -> None:
        entry: dict[str, Any] = {"op": "ApplyGate", "name": name, "targets": list(atoms)}
        if len(params) == 1:
            entry["param"] = params[0]
        elif params:
            entry["params"] = list(params)
        self.program.append(entry)

    # ---- two-qubit gates and routing

    def graph(self) -> dict[int, list[int]]:
        if self._graph is None:
            self._graph = self.device.neighbours(self.geometry, range(self.geometry.n_atoms))
        return self._graph

    def cz_atoms(self, a: int, b: int) -> None:
        self.flush(a)
        self.flush(b)
        if self.device.entangler == "CZ":
            self.gate("CZ", (a, b))
        else:  # CZ = H CX H on the target
            self.u(b, _H)
            self.flush(b)
            self.gate("CX", (a, b))
            self.u(b, _H)

    def cx_atoms(self, c: int, t: int) -> None:
        self.u(t, _H)
        self.cz_atoms(c, t)
        self.u(t, _H)

    def cz(self, u: int, v: int) -> None:
        a, b = self.wire_atom[u], self.wire_atom[v]
        if not self.device.coupled(self.geometry, a, b):
            self.routed += 1
            if not (self.routing in ("auto", "move") and self.move_next_to(a, b)):
                if self.routing == "move":
                    raise self.no_route(a, b, "no move within the profile's move limits")
                self.swap_towards(a, b)
                a, b = self.wire_atom[u], self.wire_atom[v]
        self.cz_atoms(a, b)

    def no_route(self, a: int, b: int, why: str) -> DeviceError:
        geo = self.geometry
        return DeviceError.of(
            "routing-failed",
            f"cannot bring {geo.where(a)} and {geo.where(b)} together for a CZ: {why}",
            atoms=[a, b],
            routing=self.routing,
        )

    def _try_move(
        self, geo: Geometry, atom: int, site: int, after: Any = None
    ) -> tuple[Geometry, Any] | None:
        """``geo`` after moving ``atom`` to ``site`` and the move's plan, if the device's
        transport validator accepts it (``after``: the plan of the move just before it,
        the two then form one rearrangement)."""
        ins = Instruction(index=0, op="MoveAtom", atom=atom, site=site)
        ctx = self.device.context(geo)
        if after is not None:
            ctx.run_moves, ctx.run_ns = 1, after.duration_ns
        try:
            VALIDATORS["transport"].check(ctx, ins)
        except DeviceError:
            return None
        plan = ctx.plan
        assert plan is not None
        return _moved(geo, atom, plan.point, plan.length), plan

    def move_next_to(self, a: int, b: int) -> bool:
        """Move a or b to a site coupled with the other: a free one (one move), else one
        whose atom first moves out to a free site (two moves, one rearrangement); the
        shortest total travel wins."""
        geo, hw = self.geometry, self.device.hw
        holder = {s: atom for atom, s in enumerate(geo.sites) if s is not None}
        free = [s.id for s in hw.sites if s.id not in holder]
        best: tuple[float, list[tuple[int, int]], Geometry] | None = None
        for mover, anchor in ((a, b), (b, a)):
            for site in hw.sites:
                if site.id == geo.sites[mover]:
                    continue
                if math.dist(site.point, geo.points[anchor]) > self.device.reach:
                    continue
                occupant = holder.get(site.id)
                steps: list[tuple[int, int]] = []
                trial, length, before = geo, 0.0, None
                if occupant is not None:
                    if occupant == anchor:
                        continue
                    out = None
                    for spot in sorted(free, key=lambda f: math.dist(hw.site(f).point, site.point)):
                        out = self._try_move(geo, occupant, spot)
                        if out is not None:
                            steps.append((occupant, spot))
                            break
                    if out is None:
                        continue
                    trial, before = out
                    length = before.length
                moved = self._try_move(trial, mover, site.id, before)
                if moved is None or not self.device.coupled(moved[0], mover, anchor):
                    continue
                if self.routing == "auto" and not self.connected(moved[0]):
                    continue  # keep a chain of coupled atoms for the SWAPs of later gates
                total = length + moved[1].length
                steps.append((mover, site.id))
                if best is None or (total, len(steps)) < (best[0], len(best[1])):
                    best = (total, steps, moved[0])
        if best is None:
            return False
        _, steps, geometry = best
        for atom, site_id in steps:
            self.program.append({"op": "MoveAtom", "atom": atom, "site": site_id})
            self.moves += 1
        self.geometry = geometry
        self._graph = None
        return True

    def connected(self, geometry: Geometry) -> bool:
        """Whether every allocated atom is coupled to every other through a chain."""
        graph = self.device.neighbours(geometry, range(geometry.n_atoms))
        return len(_hops(graph, 0)) == geometry.n_atoms

    def swap_towards(self, a: int, b: int) -> None:
        graph = self.graph()
        previous: dict[int, int] = {a: a}
        queue = deque([a])
        while queue and b not in previous:
            x = queue.popleft()
            for y in graph[x]:
                if y not in previous:
                    previous[y] = x
                    queue.append(y)
        if b not in previous:
            raise self.no_route(
                a, b, "no chain of coupled atoms joins them (and no move was possible)"
            )
        path = [b]
        while path[-1] != a:
            path.append(previous[path[-1]])
        path.reverse()  # a ... b
        atom_wire = {atom: w for w, atom in enumerate(self.wire_atom)}
        for x, y in itertools.pairwise(path[:-1]):  # a's state walks to b's neighbour
            self.cx_atoms(x, y)
            self.cx_atoms(y, x)
            self.cx_atoms(x, y)
            wx, wy = atom_wire.get(x), atom_wire.get(y)
            if wx is not None:
                self.wire_atom[wx] = y
            if wy is not None:
                self.wire_atom[wy] = x
            atom_wire = {atom: w for w, atom in enumerate(self.wire_atom)}
            self.swaps += 1

    # ---- measurement and reset

    def measure(self, atom: int, event: str) -> None:
        self.flush(atom, before_measure=True)
        self.program.append({"op": "Measure", "targets": [atom]})
        self.records[event] = self.columns
        self.columns += 1

    def reset(self, atom: int) -> None:
        self.pending.pop(atom, None)  # a reset undoes any gate before it
        self.program.append({"op": "Reset", "targets": [atom]})


def _moved(geometry: Geometry, atom: int, point: Any, length: float) -> Geometry:
    copy = geometry.copy()
    copy.move(atom, point, length)
    return copy


__all__ = ["Device", "Emitter", "place"]
