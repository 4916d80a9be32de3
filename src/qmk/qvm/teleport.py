"""Teleportation insertion: a program placed on modules, its cross-module gates teleported.

A machine of several modules runs one program over them when the program does not fit
one. Each logical qubit lives on one module (a :class:`Placement`). A gate whose qubits
sit on different modules cannot be done by lattice surgery inside a module. This pass
(:func:`teleport`, QVM graph to QVM graph) rewrites each such gate into a *teleported
gate* over an EPR pair between the modules. It uses ops the verifier and every engine
already know (Eisert et al., PRA 62, 052317, 2000: one Bell pair per remote control
qubit):

1. ``ALLOC_LQ a b``; ``OPEN_CHAN a b`` (a on the remote qubit's module, b on the gate's
   home module; a Bell pair of the link's fidelity);
2. the *cat-entangler*: ``APPLY_CNOT r a``; ``MEASURE_Z a -> m1``; ``COND_PAULI X b
   [m1]``: b now carries r's computational value (``sum_x c_x |x>_r |x>_b``);
3. the gate on its home module, b standing in for r;
4. the *disentangler*: ``MEASURE_X b -> m2``; ``COND_PAULI Z r [m2]``; then
   ``USE_CHAN`` (semantic ``teleported-gate``), ``CLOSE_CHAN`` and ``FREE_LQ a b``.

This works for a gate on which every remote qubit acts as a *control* (the gate is
diagonal on it). The home module is the target's for ``APPLY_CNOT``, ``TELEPORT_CNOT``
(carried out as a real teleported CNOT) and ``APPLY_CCX``. For the diagonal
``APPLY_CZ`` and ``APPLY_CCZ`` it is the module holding most of the qubits.
``APPLY_SWAP`` becomes three teleported CNOTs; ``MEASURE_BELL`` its expansion
(CNOT, H, two measurements, H, CNOT) with both CNOTs teleported. A node's guard guards
every step of its gadget that touches a qubit; the pair is made unconditionally.

With a link of Werner fidelity F (``OPEN_CHAN`` puts X, Y or Z on b, each with
probability (1-F)/3), the teleported gate suffers a two-qubit Pauli error. An X on b
becomes the gate's action on the flipped control (X on a CNOT's target, Z on a CZ's
other qubit); a Z on b becomes Z on the remote qubit r. So a teleported CNOT(r, t) is
followed by ``I`` with probability F and each of ``X_t``, ``Z_r``, ``Z_r X_t`` with
(1-F)/3: a gate fidelity (process fidelity) of exactly F.

The rewritten graph lists the new events after the program's own and writes
``metadata.output`` (unless the program has one) so that results are keyed by the
program's own events: the noiseless output distribution equals the original's.

Placement (:func:`auto_placement`): when the program's qubits do not fit the largest
module, they are split to minimise the cross-module two-qubit interactions. A greedy
fill (each module grows by the qubit most connected to it) is refined by Kernighan-Lin
swaps and moves while one lowers the cut. :func:`explicit_placement` takes
the user's, given apart or declared in the program (:func:`declared_placement`: an integer
``metadata.module`` on each ``ALLOC_LQ``).

>>> from qmk.qvm.graph import loads
>>> g = loads('{"version": "0.2", "program": {"nodes": ['
...     '{"id": "a", "op": "ALLOC_LQ", "args": {"n": 2}, "vqs": ["c", "t"]},'
...     '{"id": "g", "op": "APPLY_CNOT", "vqs": ["c", "t"]}]},'
...     '"resources": {"vqs": ["c", "t"], "events": []}, "caps": ["CAP_ALLOC"]}')
>>> done = teleport(g, explicit_placement(g, {"c": 0, "t": 1}), fidelity=0.99)
>>> [n.op for n in done.graph.nodes][:6]
['ALLOC_LQ', 'ALLOC_LQ', 'OPEN_CHAN', 'APPLY_CNOT', 'MEASURE_Z', 'COND_PAULI']
>>> done.epr_pairs, done.gates[0].pairs
(1, ((0, 1),))
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmk.qvm.errors import PlacementError
from qmk.qvm.graph import Graph, Guard, Node, Resources
from qmk.qvm.ops import OPS, Category

#: ``USE_CHAN``'s semantic on each pair a teleported gate consumes (telemetry counts
#: them in ``channel_uses``).
SEMANTIC = "teleported-gate"
#: The key of the rewritten graph's ``metadata`` that says what the pass did (modules,
#: teleported gates, EPR pairs per shot, the link's fidelity and latency, latency added):
#: :func:`summary_of` reads it back (the kernel's telemetry).
METADATA_KEY = "teleported"
#: The capabilities the rewritten program needs besides its own: its pairs' qubits
#: (CAP_ALLOC) and its channels (CAP_LINK).
CAPS = ("CAP_ALLOC", "CAP_LINK")
#: Programs with more qubits than this are placed by the greedy fill alone (the
#: Kernighan-Lin refinement is quadratic in the qubits per step).
REFINE_MAX_QUBITS = 128
#: Most improving swaps or moves the refinement makes, per qubit.
REFINE_STEPS_PER_QUBIT = 4

#: Gates whose qubits but the last are controls: the home module is the last qubit's.
_CONTROLLED = {"APPLY_CNOT": "APPLY_CNOT", "TELEPORT_CNOT": "APPLY_CNOT", "APPLY_CCX": "APPLY_CCX"}
#: Gates diagonal in every qubit: any qubit may be the remote one.
_DIAGONAL = frozenset({"APPLY_CZ", "APPLY_CCZ"})
#: Op categories that never need a teleportation (a channel is the link itself).
_LOCAL_CATEGORIES = frozenset({Category.LIFECYCLE, Category.ADMIN, Category.CHANNEL})


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where each logical qubit lives.

    Attributes:
        module_of: qubit name -> module index.
        capacities: logical qubits each module holds (None: no bound, an explicit
            placement given without capacities).
        automatic: chosen by :func:`auto_placement` (False: the user's).
        cut: two-qubit interactions between qubits on different modules (each
            ``SWAP`` counts 3, each ``MEASURE_BELL`` 2: the pairs they consume).
    """

    module_of: Mapping[str, int]
    capacities: tuple[int, ...] | None
    automatic: bool
    cut: int

    @property
    def modules(self) -> int:
        """How many modules the placement uses (all of them when capacities are given)."""
        if self.capacities is not None:
            return len(self.capacities)
        return max(self.module_of.values(), default=0) + 1

    def qubits_on(self, module: int) -> tuple[str, ...]:
        return tuple(q for q, m in self.module_of.items() if m == module)

    def to_json(self) -> dict[str, Any]:
        return {
            "modules": self.modules,
            "capacities": None if self.capacities is None else list(self.capacities),
            "automatic": self.automatic,
            "cut": self.cut,
            "module_of": dict(self.module_of),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TeleportedGate:
    """One gate of the program that was teleported.

    Attributes:
        node: the program's node id; op: its op; qubits: its qubits.
        home: the module the gate ran on.
        pairs: one (remote module, home module) per EPR pair it consumed.
        channels: the graph channel of each pair.
    """

    node: str
    op: str
    qubits: tuple[str, ...]
    home: int
    pairs: tuple[tuple[int, int], ...]
    channels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "op": self.op,
            "qubits": list(self.qubits),
            "home": self.home,
            "pairs": [list(p) for p in self.pairs],
            "channels": list(self.channels),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Teleported:
    """What :func:`teleport` made: the rewritten graph and where it teleported.

    Attributes:
        graph: the rewritten program (verify it like any other).
        placement: the placement it was made for.
        gates: the program's gates that were teleported, in program order.
        fidelity: the Werner fidelity of every pair (the link's).
        latency_ns: the time the link takes to deliver one pair.
        latency_added_ns: ``latency_ns`` times the teleported gates on the longest chain
            of them that depend on each other through their qubits (pairs for
            independent gates are made at once).
        peak_qubits: most logical qubits live at once on each module, pairs included.
    """

    graph: Graph
    placement: Placement
    gates: tuple[TeleportedGate, ...]
    fidelity: float
    latency_ns: float
    latency_added_ns: float
    peak_qubits: tuple[int, ...] = field(default=())

    @property
    def epr_pairs(self) -> int:
        """EPR pairs the program consumes (each shot)."""
        return sum(len(g.pairs) for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        return {
            "placement": self.placement.to_json(),
            "teleported_gates": len(self.gates),
            "epr_pairs": self.epr_pairs,
            "link_fidelity": self.fidelity,
            "link_latency_ns": self.latency_ns,
            "latency_added_ns": self.latency_added_ns,
            "peak_qubits_per_module": list(self.peak_qubits),
            "gates": [g.to_json() for g in self.gates],
        }


# --------------------------------------------------------------------------- placement


def qubits_of(graph: Graph) -> tuple[str, ...]:
    """The program's allocated qubits, in order of allocation."""
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.op == "ALLOC_LQ":
            seen.update(dict.fromkeys(node.vqs))
    return tuple(seen)


def _entangling(node: Node) -> bool:
    spec = OPS.get(node.op)
    return spec is not None and len(node.vqs) >= 2 and spec.category not in _LOCAL_CATEGORIES


def _pair_cost(op: str) -> int:
    """EPR pairs one remote qubit of ``op`` costs."""
    return {"APPLY_SWAP": 3, "MEASURE_BELL": 2}.get(op, 1)


def interactions(graph: Graph) -> dict[tuple[str, str], int]:
    """Two-qubit interaction weights: for each pair of qubits (sorted) that some entangling
    op joins, the EPR pairs it would cost if they sat on different modules."""
    weights: Counter[tuple[str, str]] = Counter()
    for node in graph.nodes:
        if _entangling(node):
            for u, v in itertools.combinations(sorted(set(node.vqs)), 2):
                weights[(u, v)] += _pair_cost(node.op)
    return dict(weights)


def _cut(module_of: Mapping[str, int], weights: Mapping[tuple[str, str], int]) -> int:
    return sum(w for (u, v), w in weights.items() if module_of[u] != module_of[v])


def explicit_placement(
    graph: Graph, mapping: Mapping[str, int], *, capacities: Sequence[int] | None = None
) -> Placement:
    """The user's placement of ``graph``'s qubits.

    Raises:
        PlacementError: ``QV601`` for an unknown qubit, an unplaced one, or a module out of
            range (``0..len(capacities)-1`` when capacities are given).
    """
    qubits = qubits_of(graph)
    unknown = sorted(set(mapping) - set(qubits))
    if unknown:
        listed = ", ".join(qubits[:8]) + (" ..." if len(qubits) > 8 else "")
        raise PlacementError.of(
            "bad-placement",
            f"the placement names {', '.join(map(repr, unknown[:5]))}, which the program does "
            f"not allocate (its qubits: {listed})",
            qubits=unknown,
        )
    missing = [q for q in qubits if q not in mapping]
    if missing:
        raise PlacementError.of(
            "bad-placement",
            f"the placement leaves {', '.join(map(repr, missing[:5]))} unplaced; place every "
            "allocated qubit",
            qubits=missing,
        )
    top = None if capacities is None else len(capacities) - 1
    for q, module in mapping.items():
        if isinstance(module, bool) or not isinstance(module, int) or module < 0:
            raise PlacementError.of(
                "bad-placement", f"qubit {q!r} is placed on {module!r}; a module is 0, 1, ..."
            )
        if top is not None and module > top:
            raise PlacementError.of(
                "bad-placement",
                f"qubit {q!r} is placed on module {module}; the machine has modules 0..{top}",
            )
    module_of = {q: mapping[q] for q in qubits}
    return Placement(
        module_of=module_of,
        capacities=None if capacities is None else tuple(capacities),
        automatic=False,
        cut=_cut(module_of, interactions(graph)),
    )


def auto_placement(
    graph: Graph, capacities: Sequence[int], *, reserve: int = 2, spread: bool = False
) -> Placement:
    """Place ``graph``'s qubits on modules of ``capacities`` logical qubits each.

    A program that fits the largest module goes there whole (no teleportation), unless
    ``spread`` (split it anyway: ``qmk plan --modules N`` without capacities). Else
    the qubits are split, ``reserve`` places of each module kept for the EPR pairs'
    halves. A greedy fill comes first: the largest module first, each taking the
    unplaced qubit most connected to it (the first allocated among equals), starting
    from the most connected one. Kernighan-Lin refinement follows (programs of up to
    :data:`REFINE_MAX_QUBITS` qubits): the swap of two qubits, or the move of one into
    a module with room, that lowers the cut most, while one does. Deterministic.

    Raises:
        PlacementError: ``QV602`` when the qubits do not fit.
    """
    qubits = qubits_of(graph)
    caps = tuple(int(c) for c in capacities)
    if not caps or any(c < 0 for c in caps):
        raise PlacementError.of("bad-placement", "give one capacity >= 0 per module")
    weights = interactions(graph)
    largest = max(range(len(caps)), key=lambda m: (caps[m], -m))
    if not spread and len(qubits) <= caps[largest]:
        module_of = dict.fromkeys(qubits, largest)
        return Placement(module_of=module_of, capacities=caps, automatic=True, cut=0)
    room = [max(0, c - reserve) for c in caps]
    if sum(room) < len(qubits):
        raise PlacementError.of(
            "placement-does-not-fit",
            f"the program allocates {len(qubits)} logical qubits; the {len(caps)} modules hold "
            f"{sum(room)} besides {reserve} places each for the EPR pairs' halves "
            f"(capacities {', '.join(map(str, caps))})",
            needed=len(qubits),
            total=sum(room),
        )
    adjacency: dict[str, dict[str, int]] = {q: {} for q in qubits}
    for (u, v), w in weights.items():
        adjacency[u][v] = adjacency[u].get(v, 0) + w
        adjacency[v][u] = adjacency[v].get(u, 0) + w
    order = {q: i for i, q in enumerate(qubits)}
    module_of = _greedy(qubits, adjacency, room, order)
    if len(qubits) <= REFINE_MAX_QUBITS:
        _refine(module_of, adjacency, room, order)
    return Placement(
        module_of={q: module_of[q] for q in qubits},
        capacities=caps,
        automatic=True,
        cut=_cut(module_of, weights),
    )


def _greedy(
    qubits: Sequence[str],
    adjacency: Mapping[str, Mapping[str, int]],
    room: Sequence[int],
    order: Mapping[str, int],
) -> dict[str, int]:
    module_of: dict[str, int] = {}
    unplaced = dict.fromkeys(qubits)
    degree = {q: sum(adjacency[q].values()) for q in qubits}
    for module in sorted(range(len(room)), key=lambda m: (-room[m], m)):
        pull: Counter[str] = Counter()  # connection of each unplaced qubit to this module
        for _ in range(room[module]):
            if not unplaced:
                return module_of
            if pull:
                q = max(unplaced, key=lambda u: (pull[u], degree[u], -order[u]))
            else:
                q = max(unplaced, key=lambda u: (degree[u], -order[u]))
            del unplaced[q]
            module_of[q] = module
            for v, w in adjacency[q].items():
                if v in unplaced:
                    pull[v] += w
    assert not unplaced, "auto_placement checked the room"
    return module_of


def _refine(
    module_of: dict[str, int],
    adjacency: Mapping[str, Mapping[str, int]],
    room: Sequence[int],
    order: Mapping[str, int],
) -> None:
    """Kernighan-Lin: apply the best cut-lowering swap or move until none lowers it."""
    used = Counter(module_of.values())
    qubits = sorted(module_of, key=order.__getitem__)
    modules = range(len(room))
    for _ in range(REFINE_STEPS_PER_QUBIT * len(qubits)):
        # conn[u][m]: u's interactions with the qubits on module m
        conn = {u: [0] * len(room) for u in qubits}
        for u in qubits:
            for v, w in adjacency[u].items():
                conn[u][module_of[v]] += w
        best: tuple[int, str, str | None, int] | None = None  # gain, u, v (None: a move), to
        for i, u in enumerate(qubits):
            home = module_of[u]
            for module in modules:
                gain = conn[u][module] - conn[u][home]
                free = module != home and used[module] < room[module]
                if free and (best is None or gain > best[0]):
                    best = (gain, u, None, module)
            for v in qubits[i + 1 :]:
                there = module_of[v]
                if there == home:
                    continue
                gain = (
                    conn[u][there]
                    - conn[u][home]
                    + conn[v][home]
                    - conn[v][there]
                    - 2 * adjacency[u].get(v, 0)
                )
                if best is None or gain > best[0]:
                    best = (gain, u, v, there)
        if best is None or best[0] <= 0:
            return
        _, mover, partner, to = best
        if partner is None:
            used[module_of[mover]] -= 1
            used[to] += 1
            module_of[mover] = to
        else:
            module_of[mover], module_of[partner] = to, module_of[mover]


# --------------------------------------------------------------------------- the pass


class _Writer:
    """Emits the rewritten nodes, with fresh names that clash with none of the graph's."""

    def __init__(self, graph: Graph, placement: Placement, fidelity: float) -> None:
        names = {n.id for n in graph.nodes}
        names.update(graph.resources.vqs, graph.resources.chs, graph.resources.events)
        for node in graph.nodes:
            names.update(node.vqs, node.chs, node.produces)
        self.prefix = next(
            p
            for p in (f"tp{k}_" if k else "tp_" for k in itertools.count())
            if not any(name.startswith(p) for name in names)
        )
        self.module_of = dict(placement.module_of)
        self.fidelity = fidelity
        self.nodes: list[Node] = []
        self.vqs: list[str] = []
        self.chs: list[str] = []
        self.events: list[str] = []
        #: The ALLOC_LQ node of each qubit (a pair's qubits take its profile and tenant).
        self.alloc: dict[str, Node] = {}
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count}"

    def emit(self, op: str, guard: Guard | None = None, **fields: Any) -> None:
        self.nodes.append(Node(id=self.fresh(), op=op, guard=guard, **fields))

    def pair(self, remote: str, home: int, guard: Guard | None) -> tuple[str, str, str, int]:
        """Open a pair for ``remote``'s copy on module ``home`` and cat-entangle it: its
        copy's name, the far half, the channel and the remote module."""
        name = self.fresh()
        a, b, ch, m1 = f"{name}a", f"{name}b", f"{name}ch", f"{name}m1"
        self.vqs += [a, b]
        self.chs.append(ch)
        self.events.append(m1)
        there = self.module_of[remote]
        self.module_of[a], self.module_of[b] = there, home
        args: dict[str, Any] = {"n": 2}
        alloc = self.alloc.get(remote)
        if alloc is not None and alloc.args.get("profile") is not None:
            args["profile"] = alloc.args["profile"]
        # the pair belongs to the remote qubit's tenant (the firewall reads it)
        tenant = (alloc.metadata or {}).get("tenant") if alloc is not None else None
        metadata = None if tenant is None else {"tenant": tenant}
        self.emit("ALLOC_LQ", vqs=(a, b), args=args, metadata=metadata)
        self.emit(
            "OPEN_CHAN",
            vqs=(a, b),
            chs=(ch,),
            args={"opts": {"fidelity": self.fidelity, "type": "bell_pair"}},
        )
        self.emit("APPLY_CNOT", guard, vqs=(remote, a))
        self.emit("MEASURE_Z", guard, vqs=(a,), produces=(m1,))
        self.emit("COND_PAULI", guard, vqs=(b,), inputs=(m1,), args={"mask": "X"})
        return b, a, ch, there

    def unpair(self, remote: str, copy: str, far: str, ch: str, guard: Guard | None) -> None:
        """The disentangler: measure the copy in X, fix the remote qubit's phase, and
        consume, close and free the pair."""
        m2 = f"{ch[: -len('ch')]}m2"
        self.events.append(m2)
        self.emit("MEASURE_X", guard, vqs=(copy,), produces=(m2,))
        self.emit("COND_PAULI", guard, vqs=(remote,), inputs=(m2,), args={"mask": "Z"})
        self.emit("USE_CHAN", chs=(ch,), args={"semantic": SEMANTIC})
        self.emit("CLOSE_CHAN", chs=(ch,))
        self.emit("FREE_LQ", vqs=(far, copy))

    def gate(
        self, op: str, qubits: tuple[str, ...], guard: Guard | None, node_id: str | None = None
    ) -> tuple[int, tuple[tuple[int, int], ...], tuple[str, ...]]:
        """``op`` on ``qubits``, teleported where they span modules: its home module, pairs
        and channels."""
        modules = [self.module_of[q] for q in qubits]
        if op in _DIAGONAL:
            counts = Counter(modules)
            home = max(modules[::-1], key=lambda m: counts[m])  # ties: the later qubit's
        else:
            home = modules[-1]
        remote = [q for q, m in zip(qubits, modules, strict=True) if m != home]
        opened = [(q, *self.pair(q, home, guard)) for q in remote]
        copy = {q: b for q, b, *_ in opened}
        local = tuple(copy.get(q, q) for q in qubits)
        if node_id is None:
            self.emit(op, guard, vqs=local)
        else:
            self.nodes.append(Node(id=node_id, op=op, vqs=local, guard=guard))
        for q, b, a, ch, _ in reversed(opened):
            self.unpair(q, b, a, ch, guard)
        pairs = tuple((there, home) for *_, there in opened)
        return home, pairs, tuple(ch for *_, ch, _ in opened)


def _rewrite(writer: _Writer, node: Node) -> TeleportedGate:
    """The teleported form of ``node`` (its qubits span modules)."""
    guard = node.guard
    op = node.op
    if op in _CONTROLLED or op in _DIAGONAL:
        home, pairs, channels = writer.gate(_CONTROLLED.get(op, op), node.vqs, guard, node.id)
    elif op == "APPLY_SWAP":
        a, b = node.vqs
        steps = [writer.gate("APPLY_CNOT", qs, guard) for qs in ((a, b), (b, a), (a, b))]
        home = steps[0][0]
        pairs = tuple(p for s in steps for p in s[1])
        channels = tuple(c for s in steps for c in s[2])
    elif op == "MEASURE_BELL":  # its expansion: CNOT, H, measure both, H, CNOT
        a, b = node.vqs
        first = writer.gate("APPLY_CNOT", (a, b), guard)
        writer.emit("APPLY_H", guard, vqs=(a,))
        writer.emit("MEASURE_Z", guard, vqs=(a,), produces=(node.produces[0],))
        writer.emit("MEASURE_Z", guard, vqs=(b,), produces=(node.produces[1],))
        writer.emit("APPLY_H", guard, vqs=(a,))
        last = writer.gate("APPLY_CNOT", (a, b), guard)
        home, pairs, channels = first[0], first[1] + last[1], first[2] + last[2]
    else:
        raise PlacementError.of(
            "cannot-teleport",
            f"node {node.id!r} ({op}) acts on qubits of modules "
            f"{sorted({writer.module_of[q] for q in node.vqs})}; {op} has no teleported form",
            node=node.id,
        )
    return TeleportedGate(
        node=node.id, op=op, qubits=node.vqs, home=home, pairs=pairs, channels=channels
    )


def teleport(
    graph: Graph, placement: Placement, *, fidelity: float = 1.0, latency_ns: float = 0.0
) -> Teleported:
    """``graph`` with each gate across modules of ``placement`` teleported (module docstring).

    Args:
        graph: the program (read; verify it first: the pass assumes a well-formed one).
        placement: where its qubits live.
        fidelity: the Werner fidelity of the link's pairs, in (0, 1].
        latency_ns: the time the link takes to deliver a pair.

    Raises:
        PlacementError: ``QV601`` for a placement that misses a qubit, ``QV602`` when a
            module's peak (pairs' halves included) exceeds its capacity, ``QV603`` for
            an op across modules with no teleported form.
    """
    if not 0 < fidelity <= 1:
        raise PlacementError.of("bad-placement", f"link fidelity must be in (0, 1], got {fidelity}")
    missing = [q for q in qubits_of(graph) if q not in placement.module_of]
    if missing:
        raise PlacementError.of(
            "bad-placement", f"the placement leaves {missing[0]!r} unplaced", qubits=missing
        )
    writer = _Writer(graph, placement, fidelity)
    gates: list[TeleportedGate] = []
    depth: dict[str, int] = {}  # teleported gates on the longest chain ending at each qubit
    for node in graph.nodes:
        if node.op == "ALLOC_LQ":
            for q in node.vqs:
                writer.alloc[q] = node
        modules = {writer.module_of[q] for q in node.vqs if q in writer.module_of}
        if not _entangling(node) or len(modules) < 2:
            writer.nodes.append(node)
            if len(node.vqs) > 1:
                level = max(depth.get(q, 0) for q in node.vqs)
                depth.update(dict.fromkeys(node.vqs, level))
            continue
        gates.append(_rewrite(writer, node))
        level = max(depth.get(q, 0) for q in node.vqs) + 1
        depth.update(dict.fromkeys(node.vqs, level))
    latency_added = latency_ns * max(depth.values(), default=0)
    summary = {
        "modules": placement.modules,
        "teleported_gates": len(gates),
        "epr_pairs": sum(len(g.pairs) for g in gates),
        "link_fidelity": fidelity,
        "link_latency_ns": latency_ns,
        "latency_added_ns": latency_added,
    }
    rewritten = _rewritten(graph, writer, summary) if gates else graph
    peaks = _peaks(rewritten, writer.module_of, placement.modules)
    if placement.capacities is not None:
        for module, (peak, cap) in enumerate(zip(peaks, placement.capacities, strict=True)):
            if peak > cap:
                raise PlacementError.of(
                    "placement-does-not-fit",
                    f"module {module} holds {cap} logical qubits; the placed program has "
                    f"{peak} live on it at once (EPR pairs' halves included)",
                    module=module,
                    needed=peak,
                    total=cap,
                )
    return Teleported(
        graph=rewritten,
        placement=placement,
        gates=tuple(gates),
        fidelity=fidelity,
        latency_ns=latency_ns,
        latency_added_ns=latency_added,
        peak_qubits=peaks,
    )


def _rewritten(graph: Graph, writer: _Writer, summary: Mapping[str, Any]) -> Graph:
    resources = graph.resources
    metadata = dict(graph.metadata or {})
    if "output" not in metadata:  # results keyed by the program's own events only
        metadata["output"] = {"groups": [list(resources.events)], "separator": ""}
    metadata[METADATA_KEY] = dict(summary)
    caps = tuple(dict.fromkeys((*graph.caps, *CAPS)))
    return Graph(
        version=graph.version,
        nodes=tuple(writer.nodes),
        resources=Resources(
            vqs=(*resources.vqs, *writer.vqs),
            chs=(*resources.chs, *writer.chs),
            events=(*resources.events, *writer.events),
        ),
        caps=caps,
        description=graph.description,
        metadata=metadata,
    )


def _peaks(graph: Graph, module_of: Mapping[str, int], modules: int) -> tuple[int, ...]:
    """Most qubits live at once on each module, walking the program in list order."""
    live = [0] * modules
    peak = [0] * modules
    for node in graph.nodes:
        if node.op in ("ALLOC_LQ", "FREE_LQ"):
            step = 1 if node.op == "ALLOC_LQ" else -1
            for q in node.vqs:
                live[module_of[q]] += step
            peak = [max(p, n) for p, n in zip(peak, live, strict=True)]
    return tuple(peak)


def declared_placement(graph: Graph) -> dict[str, int] | None:
    """The placement the program declares: an integer ``metadata.module`` on its
    ``ALLOC_LQ`` nodes (each qubit of the node on that module), or None when no
    ``ALLOC_LQ`` declares one (a text label such as ``"A"`` declares none).

    Raises:
        PlacementError: ``QV601`` when some ``ALLOC_LQ`` nodes declare a module and
            others do not.
    """
    declared: dict[str, int] = {}
    bare: list[str] = []
    for node in graph.nodes:
        if node.op != "ALLOC_LQ":
            continue
        module = (node.metadata or {}).get("module")
        if isinstance(module, int) and not isinstance(module, bool):
            declared.update(dict.fromkeys(node.vqs, module))
        else:
            bare.append(node.id)
    if not declared:
        return None
    if bare:
        raise PlacementError.of(
            "bad-placement",
            f"ALLOC_LQ node {bare[0]!r} declares no metadata.module while others do; "
            "declare one on every ALLOC_LQ, or on none",
            node=bare[0],
        )
    return declared


def summary_of(graph: Graph) -> Mapping[str, Any] | None:
    """What :func:`teleport` did to ``graph`` (its ``metadata.teleported``), or None for a
    graph it did not rewrite."""
    found = (graph.metadata or {}).get(METADATA_KEY)
    return found if isinstance(found, Mapping) else None


def parse_placement(text: str) -> dict[str, int]:
    """A placement written ``NAME=MODULE,NAME=MODULE,...`` (spaces allowed).

    >>> parse_placement("q0=0, q1=1")
    {'q0': 0, 'q1': 1}

    Raises:
        PlacementError: ``QV601`` for text of another shape.
    """
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, module = (s.strip() for s in item.partition("="))
        if not sep or not name or not module.isdigit():
            raise PlacementError.of(
                "bad-placement", f"placement item {item!r} is not NAME=MODULE (e.g. q0=1)"
            )
        if name in mapping:
            raise PlacementError.of("bad-placement", f"the placement places {name!r} twice")
        mapping[name] = int(module)
    if not mapping:
        raise PlacementError.of("bad-placement", "the placement is empty (NAME=MODULE,...)")
    return mapping


__all__ = [
    "CAPS",
    "METADATA_KEY",
    "SEMANTIC",
    "Placement",
    "PlacementError",
    "Teleported",
    "TeleportedGate",
    "auto_placement",
    "declared_placement",
    "explicit_placement",
    "interactions",
    "parse_placement",
    "qubits_of",
    "summary_of",
    "teleport",
]
