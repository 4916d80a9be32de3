"""The compiler: a verified QVM program lowered onto a neutral-atom device profile.

Public API:

- :func:`compile_program` -- ``(program, profile) -> (wire job, CompileReport)``: the job
  is the device's wire form (``qmk device run`` reads it, the kernel serves it), the
  report says what the compiler did;
- :func:`run_program` -- compile, then run on the emulator
  (:func:`~qmk.devices.neutral_atom.emulator.run_job`); its :class:`DeviceRun` has
  ``counts`` keyed as :func:`qmk.run` keys them (events in the program's order, or its
  ``metadata.output`` layout; a lost atom reads ``L``);
- :data:`ROUTINGS`, :class:`CompileReport`, :class:`DeviceRun`.

What it does, in order:

1. **Lowering** (node by node, list order): every gate becomes one-qubit unitaries and
   CZ (``CNOT`` is ``H CZ H`` on the target, Toffoli and CCZ the six-CNOT circuit with
   T gates, ``TELEPORT_CNOT`` acts as the CNOT it is); ``SWAP`` costs nothing: the
   compiler relabels which atom holds which qubit. ``MEASURE_X/Y/ANGLE/BELL`` measure in
   Z after a basis change, undone when the qubit is used again; ``RESET`` and
   ``INJECT_T_STATE`` use the device's Reset. ``FREE_LQ``, ``FENCE_EPOCH``,
   ``BAR_REGION`` and ``SET_POLICY`` change no atom. Guards, ``COND_PAULI`` and channels
   need classical feed-forward or links the ISA does not have: ``QD301`` naming the node.
2. **Placement** of the program's qubits on the configuration's atoms: the coupling graph
   is the pairs the device's own ``connectivity`` and ``blockade`` validators accept for
   a CZ; a greedy embedding from several start atoms keeps the fewest interacting pairs
   apart (then the fewest atoms allocated). ``QD302`` when there are too few atoms.
3. **Routing** of each CZ whose atoms are not coupled: a ``MoveAtom`` of one of them to a
   free lattice site next to the other, checked by the device's ``transport`` validator
   (transport edges, move budgets, spacing), or else SWAPs (three CNOTs, as CZ and H)
   along the shortest coupled path. ``routing="move"`` or ``"swap"`` allows only one kind;
   ``QD303`` when neither gets there.
4. **Native gates**: runs of one-qubit gates on an atom fuse into one unitary, emitted as
   the shortest word of catalog Cliffords when it is one, T/TDG, a Z rotation, or ``U3``
   (else ``RZ RY RZ`` or ``RZ RX RZ``), angles wrapped or split into the catalog's range;
   a run before a Z measurement drops its diagonal part, a run after a qubit's last
   measurement is dropped (neither changes an outcome).
5. **Validation**: the job goes through the device's validator registry and scheduler
   (:func:`~qmk.devices.neutral_atom.validate.validate_job`), so the compiled program
   passes exactly the checks any job passes; the timeline gives its duration.

>>> from qmk.qvm.asm import assemble
>>> ghz = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1, vq:q2
... h: APPLY_H vq:q0
... c1: APPLY_CNOT vq:q0, vq:q2
... c2: APPLY_CNOT vq:q2, vq:q1
... m0: MEASURE_Z vq:q0, out:m0
... m1: MEASURE_Z vq:q1, out:m1
... m2: MEASURE_Z vq:q2, out:m2
... ''')
>>> job, report = compile_program(ghz, "ideal_small_array")
>>> sorted(report.placement.items()), report.gates_after["CZ"], report.swaps, report.moves
([('q0', 0), ('q1', 2), ('q2', 1)], 2, 0, 0)
>>> sorted(run_program(ghz, "ideal_small_array", shots=200, seed=3).counts)
['000', '111']
"""

from __future__ import annotations

import cmath
import itertools
import math
import os
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.isa import CURRENT, GATES, Instruction
from qmk.devices.neutral_atom.job import AUTO, parse_job
from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import (
    Configuration,
    Connectivity,
    Hardware,
    Profile,
    load_profile,
    presets,
)
from qmk.devices.neutral_atom.validate import VALIDATORS, Context, Geometry
from qmk.qvm.graph import Graph
from qmk.qvm.ops import OPS as QVM_OPS
from qmk.qvm.output import layout_of
from qmk.qvm.verify import VerifiedProgram, verify

#: How the compiler may route a CZ whose atoms are not coupled.
ROUTINGS: tuple[str, ...] = ("auto", "move", "swap")

#: Start atoms the placement tries (all of them on small arrays).
_MAX_STARTS = 48
_TOL = 1e-9

Matrix = np.ndarray

# --------------------------------------------------------------------------- matrices

_I2 = np.eye(2, dtype=complex)
_H = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.diag([1, -1]).astype(complex)
_S = np.diag([1, 1j])
_SDG = np.diag([1, -1j])
_T = np.diag([1, cmath.exp(1j * math.pi / 4)])
_TDG = np.diag([1, cmath.exp(-1j * math.pi / 4)])


def _rx(t: float) -> Matrix:
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]], dtype=complex)


def _ry(t: float) -> Matrix:
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def _rz(t: float) -> Matrix:
    return np.diag([cmath.exp(-0.5j * t), cmath.exp(0.5j * t)])


#: The device's fixed one-qubit gates as matrices (names of the ISA's gate table).
_FIXED: Mapping[str, Matrix] = {
    "X": _X,
    "Y": _Y,
    "Z": _Z,
    "H": _H,
    "S": _S,
    "SDG": _SDG,
    "T": _T,
    "TDG": _TDG,
}
_CLIFFORD_NAMES = ("H", "S", "SDG", "X", "Y", "Z")
_ROTATIONS = {"APPLY_RX": _rx, "APPLY_RY": _ry, "APPLY_RZ": _rz}
_QVM_FIXED = {
    "APPLY_H": _H,
    "APPLY_S": _S,
    "APPLY_SDG": _SDG,
    "APPLY_X": _X,
    "APPLY_Y": _Y,
    "APPLY_Z": _Z,
    "APPLY_T": _T,
    "APPLY_TDG": _TDG,
}


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


# --------------------------------------------------------------------------- lowered ops


@dataclass(frozen=True, slots=True)
class _Op:
    """One lowered operation on program wires: ``u`` (a one-qubit unitary), ``cz``,
    ``measure`` (with its event), ``reset``."""

    kind: str
    wires: tuple[int, ...]
    matrix: Matrix | None = None
    event: str = ""
    node: str = ""


def _unsupported(node: Any, index: int, why: str) -> DeviceError:
    return DeviceError.of(
        "compile-unsupported",
        f"node #{index} {node.id!r} ({node.op}): {why}",
        node=node.id,
        op=node.op,
        index=index,
    )


@dataclass(slots=True)
class _Lowering:
    """QVM nodes -> :class:`_Op` on wires (a SWAP relabels wires instead of moving states)."""

    ops: list[_Op] = field(default_factory=list)
    wire_of: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    before: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def wire(self, vq: str) -> int:
        if vq not in self.wire_of:
            self.wire_of[vq] = len(self.names)
            self.names.append(vq)
        return self.wire_of[vq]

    def u(self, vq: str, matrix: Matrix, node: str) -> None:
        self.ops.append(_Op("u", (self.wire(vq),), matrix=matrix, node=node))

    def cz(self, a: str, b: str, node: str) -> None:
        self.ops.append(_Op("cz", (self.wire(a), self.wire(b)), node=node))

    def cx(self, c: str, t: str, node: str) -> None:
        self.u(t, _H, node)
        self.cz(c, t, node)
        self.u(t, _H, node)

    def measure(self, vq: str, event: str, node: str) -> None:
        self.ops.append(_Op("measure", (self.wire(vq),), event=event, node=node))

    def reset(self, vq: str, node: str) -> None:
        self.ops.append(_Op("reset", (self.wire(vq),), node=node))

    def ccx(self, a: str, b: str, t: str, node: str) -> None:
        """The six-CNOT Toffoli (Nielsen and Chuang, figure 4.9)."""
        self.u(t, _H, node)
        self.cx(b, t, node)
        self.u(t, _TDG, node)
        self.cx(a, t, node)
        self.u(t, _T, node)
        self.cx(b, t, node)
        self.u(t, _TDG, node)
        self.cx(a, t, node)
        self.u(b, _T, node)
        self.u(t, _T, node)
        self.u(t, _H, node)
        self.cx(a, b, node)
        self.u(a, _T, node)
        self.u(b, _TDG, node)
        self.cx(a, b, node)


def _lower(program: VerifiedProgram) -> _Lowering:
    low = _Lowering()
    nodes = program.graph.nodes
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if node.op != "FREE_LQ":
            for vq in node.vqs:
                last_use[vq] = index

    def used_later(vq: str, index: int) -> bool:
        return last_use.get(vq, -1) > index

    for index, node in enumerate(nodes):
        op, name = node.op, node.id
        if node.guard is not None:
            raise _unsupported(
                node,
                index,
                "a guarded node needs classical feed-forward, which the neutral-atom ISA "
                "cannot express (no instruction reads a measured bit)",
            )
        low.before[op] += 1
        q = node.vqs
        if op == "ALLOC_LQ":
            for vq in q:
                low.wire(vq)
        elif op in ("FREE_LQ", "FENCE_EPOCH", "BAR_REGION", "SET_POLICY"):
            low.ignored[op] += 1
        elif op in _QVM_FIXED:
            low.u(q[0], _QVM_FIXED[op], name)
        elif op in _ROTATIONS:
            low.u(q[0], _ROTATIONS[op](float(node.args["theta"])), name)
        elif op in ("APPLY_CNOT", "TELEPORT_CNOT"):
            low.cx(q[0], q[1], name)
        elif op == "APPLY_CZ":
            low.cz(q[0], q[1], name)
        elif op == "APPLY_SWAP":
            wa, wb = low.wire(q[0]), low.wire(q[1])
            low.wire_of[q[0]], low.wire_of[q[1]] = wb, wa
        elif op == "APPLY_CCX":
            low.ccx(q[0], q[1], q[2], name)
        elif op == "APPLY_CCZ":
            low.u(q[2], _H, name)
            low.ccx(q[0], q[1], q[2], name)
            low.u(q[2], _H, name)
        elif op == "RESET":
            low.reset(q[0], name)
        elif op == "INJECT_T_STATE":
            low.reset(q[0], name)
            low.u(q[0], _H, name)
            low.u(q[0], _T, name)
        elif op in ("MEASURE_Z", "MEASURE_X", "MEASURE_Y", "MEASURE_ANGLE"):
            if op == "MEASURE_Z":
                change = _I2
            elif op == "MEASURE_X":
                change = _H
            elif op == "MEASURE_Y":
                change = _H @ _SDG
            else:
                change = _H @ _rz(-float(node.args["angle"]))
            low.u(q[0], change, name)
            low.measure(q[0], node.produces[0], name)
            if used_later(q[0], index):
                low.u(q[0], change.conj().T, name)
        elif op == "MEASURE_BELL":
            a, b = q
            low.cx(a, b, name)
            low.u(a, _H, name)
            low.measure(a, node.produces[0], name)
            low.measure(b, node.produces[1], name)
            if used_later(a, index) or used_later(b, index):
                low.u(a, _H, name)
                low.cx(a, b, name)
        elif op in ("OPEN_CHAN", "USE_CHAN", "CLOSE_CHAN"):
            raise _unsupported(
                node,
                index,
                "channels (entanglement links between modules) are not part of the "
                "neutral-atom device; run the program on the logical machine (qmk run)",
            )
        elif op == "COND_PAULI":
            raise _unsupported(
                node,
                index,
                "COND_PAULI applies a Pauli chosen by measured bits: classical "
                "feed-forward, which the neutral-atom ISA cannot express",
            )
        else:  # pragma: no cover - every op of the table is handled above
            raise _unsupported(node, index, "no lowering onto the neutral-atom ISA")
    return low


# --------------------------------------------------------------------------- the device side


class _Device:
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


def _place(
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
class _Emitter:
    device: _Device
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
    dropped_tail: int = 0
    last_was_move: bool = False
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
        self.last_was_move = False

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
        self.last_was_move = True
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
        self.last_was_move = False

    def reset(self, atom: int) -> None:
        self.pending.pop(atom, None)  # a reset undoes any gate before it
        self.program.append({"op": "Reset", "targets": [atom]})
        self.last_was_move = False


def _moved(geometry: Geometry, atom: int, point: Any, length: float) -> Geometry:
    copy = Geometry(
        hardware=geometry.hardware,
        points=list(geometry.points),
        sites=list(geometry.sites),
        moves=list(geometry.moves),
        displacement=list(geometry.displacement),
        total_moves=geometry.total_moves,
        _site_at=geometry._site_at,
        _occupied=dict(geometry._occupied),
    )
    copy.move(atom, point, length)
    return copy


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileReport:
    """What the compiler did.

    Attributes:
        profile, configuration: the device and its configuration family.
        routing: the routing asked for (``auto``, ``move`` or ``swap``).
        qubits: the program's qubits, in order of first use.
        placement: qubit -> atom at the start; ``sites``: atom -> lattice site.
        final_placement: qubit -> atom at the end (SWAPs move qubits between atoms).
        atoms: atoms allocated (the AllocArray), of ``configured`` on the configuration.
        gates_before: the program's ops by name; ``gates_after``: the device program's
            instructions by gate name (``MoveAtom``, ``Measure``, ``Reset`` by op).
        routed: CZs whose atoms were not coupled; ``moves`` and ``swaps`` inserted for them.
        depth: layers of the device program (each atom's operations in order);
            ``two_qubit_depth``: layers counting two-qubit gates only.
        duration_ns: the scheduled program time (the device's timeline), per shot.
        events: the program's events; ``readout``: event -> column of the device's bits.
        ignored: ops that change no atom (FREE_LQ, fences, regions, policies), by name.
        dropped: one-qubit gate runs dropped after a qubit's last measurement.
    """

    profile: str
    configuration: str
    routing: str
    qubits: tuple[str, ...]
    placement: Mapping[str, int]
    final_placement: Mapping[str, int]
    sites: Mapping[int, int]
    atoms: int
    configured: int
    gates_before: Mapping[str, int]
    gates_after: Mapping[str, int]
    routed: int
    moves: int
    swaps: int
    depth: int
    two_qubit_depth: int
    duration_ns: float
    events: tuple[str, ...]
    readout: Mapping[str, int]
    ignored: Mapping[str, int]
    dropped: int
    output: Mapping[str, Any] | None = None

    @property
    def two_qubit_before(self) -> int:
        """Two- and three-qubit gates of the program (a CCX counts once)."""
        names = ("APPLY_CNOT", "APPLY_CZ", "APPLY_SWAP", "TELEPORT_CNOT", "APPLY_CCX", "APPLY_CCZ")
        return sum(self.gates_before.get(n, 0) for n in names)

    @property
    def gates_before_total(self) -> int:
        """The program's gates (unitary ops)."""
        return sum(c for op, c in self.gates_before.items() if QVM_OPS[op].unitary)

    @property
    def gates_after_total(self) -> int:
        """The device program's gates (ApplyGate instructions)."""
        return sum(c for name, c in self.gates_after.items() if name in GATES)

    @property
    def two_qubit_after(self) -> int:
        """Two-qubit gates of the device program."""
        return self.gates_after.get("CZ", 0) + self.gates_after.get("CX", 0)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON (``qmk run --device --json`` prints it as ``compile``)."""
        return {
            "profile": self.profile,
            "configuration": self.configuration,
            "routing": self.routing,
            "qubits": list(self.qubits),
            "placement": dict(self.placement),
            "final_placement": dict(self.final_placement),
            "sites": {str(a): s for a, s in self.sites.items()},
            "atoms": self.atoms,
            "configured_atoms": self.configured,
            "ops_before": dict(self.gates_before),
            "ops_after": dict(self.gates_after),
            "gates_before": self.gates_before_total,
            "gates_after": self.gates_after_total,
            "two_qubit_before": self.two_qubit_before,
            "two_qubit_after": self.two_qubit_after,
            "routed": self.routed,
            "moves": self.moves,
            "swaps": self.swaps,
            "depth": self.depth,
            "two_qubit_depth": self.two_qubit_depth,
            "duration_ns": self.duration_ns,
            "events": list(self.events),
            "readout": dict(self.readout),
            "ignored": dict(self.ignored),
            "dropped_gate_runs": self.dropped,
        }

    def summary(self) -> str:
        """A few lines for people (``qmk run --device`` prints them)."""
        place = ", ".join(f"{q}->{a}" for q, a in self.placement.items())
        before = self.gates_before_total
        after = sum(v for k, v in self.gates_after.items() if k in GATES)
        lines = [
            f"compiled onto {self.profile} ({self.configuration}): {self.atoms} of "
            f"{self.configured} atoms allocated, routing {self.routing}",
            f"  placement (qubit->atom): {place or '-'}",
            f"  gates {before} -> device gates {after} "
            f"({self.two_qubit_before} multi-qubit -> {self.two_qubit_after} CZ); "
            f"{self.routed} CZ routed: {self.moves} moves, {self.swaps} swaps",
            f"  depth {self.depth} ({self.two_qubit_depth} two-qubit layers), "
            f"program time {self.duration_ns / 1000:g} us per shot",
        ]
        return "\n".join(lines) + "\n"


def _depths(program: Sequence[Mapping[str, Any]], n_atoms: int) -> tuple[int, int]:
    depth = [0] * n_atoms
    two = [0] * n_atoms
    for item in program:
        op = item["op"]
        atoms = item.get("targets") or ([item["atom"]] if "atom" in item else [])
        if not atoms:
            continue
        layer = max(depth[a] for a in atoms) + 1
        for a in atoms:
            depth[a] = layer
        if op == "ApplyGate" and len(atoms) == 2:
            layer2 = max(two[a] for a in atoms) + 1
            for a in atoms:
                two[a] = layer2
    return max(depth, default=0), max(two, default=0)


# --------------------------------------------------------------------------- compile


def _profile_of(profile: str | os.PathLike[str] | Profile) -> Profile:
    return profile if isinstance(profile, Profile) else load_profile(os.fspath(profile))


def _verified(program: Graph | VerifiedProgram) -> VerifiedProgram:
    return program if isinstance(program, VerifiedProgram) else verify(program)


def compile_program(
    program: Graph | VerifiedProgram,
    profile: str | os.PathLike[str] | Profile,
    *,
    routing: str = "auto",
    configuration: str | None = None,
    shots: int = 1,
    seed: int | None = None,
    backend: str = AUTO,
    noiseless: bool = False,
    job_id: str = "compiled",
) -> tuple[dict[str, Any], CompileReport]:
    """Compile a QVM program onto a device profile (see the module docstring).

    Args:
        program: a graph (verified here) or a verified program.
        profile: a preset name, a profile file, or a :class:`Profile`.
        routing: ``auto`` (moves where the move limits allow, else SWAPs), ``move`` or
            ``swap``.
        configuration: the profile's configuration family (default: its default).
        shots, seed, backend: written into the job (``device_id`` is the backend).
        noiseless: the job carries an empty noise model (the profile's geometry and
            timing, no noise).
        job_id: the job's id.

    Returns:
        ``(job, report)``: the wire-form job (a JSON object) and the :class:`CompileReport`.

    Raises:
        DeviceError: ``QD301`` a construct the ISA cannot express (naming the node),
            ``QD302`` more qubits than atoms, ``QD303`` a CZ that cannot be routed,
            ``QD104``/``QD105`` for the profile; a ``QD2xx`` violation would be a
            compiler bug (the job is validated before it is returned).
        QMKError: the program does not verify.
    """
    if routing not in ROUTINGS:
        raise DeviceError.of(
            "job-malformed", f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}"
        )
    chosen = _profile_of(profile)
    config = chosen.configuration(configuration)
    hardware = chosen.hardware.with_site_ids(config.site_ids)
    if noiseless:
        chosen = replace(chosen, noise=NoiseModel())
    verified = _verified(program)
    low = _lower(verified)
    device = _Device(chosen, hardware)
    n_wires = len(low.names)
    if n_wires > device.n_configured:
        raise DeviceError.of(
            "too-few-atoms",
            f"the program uses {n_wires} qubits; {chosen.name} ({config.name}) has "
            f"{device.n_configured} atoms",
            needed=n_wires,
            atoms=device.n_configured,
        )
    weights: Counter[tuple[int, int]] = Counter()
    for op in low.ops:
        if op.kind == "cz":
            u, v = sorted(op.wires)
            weights[(u, v)] += 1
    everyone = Geometry.start(hardware, device.n_configured)
    layout = _place(n_wires, weights, device.neighbours(everyone, range(device.n_configured)))
    n_atoms = max(layout, default=-1) + 1 if n_wires else 0
    n_atoms = max(n_atoms, 1)
    geometry = Geometry.start(hardware, n_atoms)
    emitter = _Emitter(device=device, geometry=geometry, wire_atom=list(layout), routing=routing)
    for op in low.ops:
        if op.kind == "u":
            assert op.matrix is not None
            emitter.u(emitter.wire_atom[op.wires[0]], op.matrix)
        elif op.kind == "cz":
            emitter.cz(*op.wires)
        elif op.kind == "measure":
            emitter.measure(emitter.wire_atom[op.wires[0]], op.event)
        else:
            emitter.reset(emitter.wire_atom[op.wires[0]])
    dropped = len(emitter.pending)  # runs after the last measurement change no outcome
    emitter.pending.clear()
    instructions = [{"op": "AllocArray", "n_qubits": n_atoms}, *emitter.program]
    job = _job_json(
        chosen,
        config,
        instructions,
        shots=shots,
        seed=seed,
        backend=backend,
        noiseless=noiseless,
        job_id=job_id,
        readout=emitter.records,
    )
    from qmk.devices.neutral_atom.validate import validate_job

    timeline = validate_job(parse_job(job, preset=chosen))
    counts: Counter[str] = Counter()
    for item in emitter.program:
        counts[item["name"] if item["op"] == "ApplyGate" else item["op"]] += 1
    depth, two_depth = _depths(emitter.program, n_atoms)
    events = verified.graph.resources.events
    metadata = verified.graph.metadata
    report = CompileReport(
        profile=chosen.name,
        configuration=config.name,
        routing=routing,
        qubits=tuple(low.names),
        placement={low.names[w]: layout[w] for w in range(n_wires)},
        final_placement={low.names[w]: emitter.wire_atom[w] for w in range(n_wires)},
        sites={a: hardware.site_ids[a] for a in range(n_atoms)},
        atoms=n_atoms,
        configured=device.n_configured,
        gates_before=dict(low.before),
        gates_after=dict(sorted(counts.items())),
        routed=emitter.routed,
        moves=emitter.moves,
        swaps=emitter.swaps,
        depth=depth,
        two_qubit_depth=two_depth,
        duration_ns=timeline.total_ns,
        events=tuple(events),
        readout=dict(emitter.records),
        ignored=dict(low.ignored),
        dropped=dropped,
        output=None if metadata is None else metadata.get("output"),
    )
    return job, report


def _job_json(
    profile: Profile,
    configuration: Configuration,
    program: list[dict[str, Any]],
    *,
    shots: int,
    seed: int | None,
    backend: str,
    noiseless: bool,
    job_id: str,
    readout: Mapping[str, int],
) -> dict[str, Any]:
    """The wire-form job: the preset by name when it is one, else the hardware and noise."""
    job: dict[str, Any] = {
        "job_id": job_id,
        "device_id": backend,
        "isa_version": str(CURRENT),
        "shots": shots,
    }
    if seed is not None:
        job["seed"] = seed
    is_preset = (
        profile.name in presets() and load_profile(profile.name).hardware == profile.hardware
    )
    if is_preset:
        job["profile"] = profile.name
        if configuration.site_ids != profile.hardware.site_ids:
            job["hardware"] = {"site_ids": list(configuration.site_ids)}
    else:
        job["hardware"] = profile.hardware.with_site_ids(configuration.site_ids).to_json()
    if noiseless or not is_preset:
        job["noise"] = profile.noise.to_json()
    job["program"] = program
    job["metadata"] = {
        "compiled_by": "qmk.devices.neutral_atom.compile",
        "configuration": configuration.name,
        "readout": dict(readout),
    }
    return job


# --------------------------------------------------------------------------- run


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRun:
    """A program compiled and run on the device.

    Attributes:
        counts: outcome -> shots, keyed as :func:`qmk.run` keys them (events in program
            order, first leftmost, or the program's output layout); ``L`` for a bit whose
            atom was lost.
        result: the emulator's :class:`~qmk.devices.neutral_atom.emulator.Result`.
        report: the :class:`CompileReport`.
        job: the wire-form job that ran.
    """

    counts: Mapping[str, int]
    result: Any
    report: CompileReport
    job: Mapping[str, Any]

    @property
    def shots(self) -> int:
        return int(self.result.shots)

    @property
    def seed(self) -> int:
        return int(self.result.seed)

    def to_json(self) -> dict[str, Any]:
        """``counts``, ``shots``, ``seed``, ``events``, the device run (backend, telemetry)
        and the compile report."""
        device = self.result.to_json(measurements=False)
        return {
            "counts": dict(self.counts),
            "shots": self.shots,
            "seed": self.seed,
            "events": list(self.report.events),
            "device": {
                "profile": device["profile"],
                "backend": device["device_id"],
                "isa_version": device["isa_version"],
                "counts": device["counts"],
                "telemetry": device["telemetry"],
            },
            "compile": self.report.to_json(),
        }


def program_counts(bits: np.ndarray, report: CompileReport) -> dict[str, int]:
    """The device's bits (shots x columns, -1 lost) as counts keyed in program terms."""
    table = np.frombuffer(b"01L", dtype=np.uint8)
    shots = bits.shape[0]
    columns = [report.readout.get(e) for e in report.events]
    chars = np.full((shots, len(columns)), ord("0"), dtype=np.uint8)
    for k, column in enumerate(columns):
        if column is not None:
            chars[:, k] = table[np.where(bits[:, column] < 0, 2, bits[:, column]).astype(np.intp)]
    if not columns:
        return {"": shots}
    rows = np.ascontiguousarray(chars).view(f"S{len(columns)}").ravel()
    keys, counts = np.unique(rows, return_counts=True)
    out = {k.decode(): int(c) for k, c in zip(keys, counts, strict=True)}
    layout = layout_of({"output": report.output} if report.output else None, report.events)
    if layout is None:
        return out
    laid: Counter[str] = Counter()
    for key, count in out.items():
        laid[layout.key(key)] += count
    return dict(sorted(laid.items()))


def run_program(
    program: Graph | VerifiedProgram,
    device: str | os.PathLike[str] | Profile,
    *,
    shots: int = 1000,
    seed: int | None = None,
    routing: str = "auto",
    configuration: str | None = None,
    backend: str = AUTO,
    noiseless: bool = False,
) -> DeviceRun:
    """Compile ``program`` onto ``device`` and run it on the emulator.

    Raises:
        DeviceError: as :func:`compile_program` and
            :func:`~qmk.devices.neutral_atom.emulator.run_job`.
    """
    from qmk.devices.neutral_atom.emulator import run_job

    chosen = _profile_of(device)
    job, report = compile_program(
        program,
        chosen,
        routing=routing,
        configuration=configuration,
        shots=shots,
        seed=seed,
        backend=backend,
        noiseless=noiseless,
    )
    profile = replace(chosen, noise=NoiseModel()) if noiseless else chosen
    result = run_job(parse_job(job, preset=profile))
    return DeviceRun(
        counts=program_counts(result.bits, report), result=result, report=report, job=job
    )


__all__ = [
    "ROUTINGS",
    "CompileReport",
    "DeviceRun",
    "compile_program",
    "program_counts",
    "run_program",
]
