"""Seeded random QVM graphs that are valid by construction.

Used by the property tests (every such graph must verify) and by the benchmarks
(a 100k-node graph). Every op of the table appears in large enough graphs:
lifecycle, gates, rotations, measurements, guards in both forms, COND_PAULI,
channels, magic-state injection, fences and admin ops.

>>> from qmk.qvm.verify import verify
>>> g = random_graph(seed=7, nodes=200)
>>> len(g.nodes) >= 200 and verify(g).counts.total == len(g.nodes)
True
>>> random_graph(seed=7, nodes=200) == g
True
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

from qmk.qvm.graph import (
    CURRENT_VERSION,
    FOLDED_VERSION,
    REPEAT,
    Graph,
    Guard,
    GuardTerm,
    Node,
    Resources,
)
from qmk.qvm.ops import OPS, Exec

_GATE_OPS = [spec for spec in OPS.values() if spec.kind is Exec.GATE]
#: The op table's gate ops by arity (the rotations apart: one qubit, angles).
_GATES_1Q = tuple(spec.name for spec in _GATE_OPS if spec.vqs.low == 1 and not spec.args)
_ROTATIONS = tuple(spec.name for spec in _GATE_OPS if spec.vqs.low == 1 and spec.args)
_GATES_2Q = tuple(spec.name for spec in _GATE_OPS if spec.vqs.low == 2)
_GATES_3Q = tuple(spec.name for spec in _GATE_OPS if spec.vqs.low == 3)
_PROFILES = (
    "logical:surface_code(d=9)",
    "logical:SHYPS(d=9)",
    "logical:floquet_code(d=7)",
    "logical:bacon_shor(d=5)",
)


class _Builder:
    def __init__(self, seed: int, max_live: int) -> None:
        self.rng = random.Random(seed)
        self.max_live = max_live
        self.nodes: list[Node] = []
        self.live: list[str] = []
        self.freed: list[str] = []
        self.vqs: list[str] = []
        self.chs: list[str] = []
        self.open_chs: list[str] = []
        self.events: list[str] = []
        self.caps: set[str] = set()

    def add(self, op: str, **fields: Any) -> None:
        self.nodes.append(Node(id=f"n{len(self.nodes)}", op=op, **fields))

    def alloc(self, count: int) -> None:
        names = []
        for _ in range(count):
            if self.freed and self.rng.random() < 0.3:  # reuse a freed handle: a new lifetime
                names.append(self.freed.pop(self.rng.randrange(len(self.freed))))
            else:
                names.append(f"q{len(self.vqs)}")
                self.vqs.append(names[-1])
        args: dict[str, Any] = {"profile": self.rng.choice(_PROFILES)}
        if self.rng.random() < 0.5:
            args["n"] = count
        self.add("ALLOC_LQ", vqs=tuple(names), args=args, caps=("CAP_ALLOC",))
        self.caps.add("CAP_ALLOC")
        self.live.extend(names)

    def free(self, names: list[str]) -> None:
        for name in names:
            self.live.remove(name)
        self.freed.extend(names)
        self.add("FREE_LQ", vqs=tuple(names))

    def event(self) -> str:
        name = f"m{len(self.events)}"
        self.events.append(name)
        return name

    def guard(self) -> Guard | None:
        if not self.events or self.rng.random() < 0.7:
            return None
        count = self.rng.randint(1, min(3, len(self.events)))
        chosen = self.rng.sample(self.events, count)
        terms = tuple(GuardTerm(event=e, equals=self.rng.randint(0, 1)) for e in chosen)
        return Guard(terms=terms, conjunction=count > 1 or self.rng.random() < 0.2)

    def qubits(self, count: int) -> tuple[str, ...]:
        return tuple(self.rng.sample(self.live, count))

    def angles(self, op: str) -> dict[str, Any]:
        """Angles for the arguments of gate op ``op`` (none for a gate without)."""
        return {arg.name: self.rng.uniform(-math.pi, math.pi) for arg in OPS[op].args}

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            self.add(rng.choice(_GATES_1Q), vqs=self.qubits(1), guard=self.guard())
        elif roll < 0.38:
            theta = rng.choice((rng.uniform(-math.pi, math.pi), math.pi / 2, -math.pi))
            op = rng.choice(_ROTATIONS)
            self.add(
                op,
                vqs=self.qubits(1),
                args={arg.name: theta for arg in OPS[op].args},
                guard=self.guard(),
            )
        elif roll < 0.52:
            op = rng.choice(_GATES_2Q)
            self.add(op, vqs=self.qubits(2), args=self.angles(op), guard=self.guard())
        elif roll < 0.54:
            op = rng.choice(_GATES_3Q)
            self.add(op, vqs=self.qubits(3), args=self.angles(op))
        elif roll < 0.56:
            self.add("TELEPORT_CNOT", vqs=self.qubits(2), caps=("CAP_TELEPORT",))
            self.caps.add("CAP_TELEPORT")
        elif roll < 0.66:
            op = rng.choice(("MEASURE_Z", "MEASURE_X", "MEASURE_Y", "MEASURE_ANGLE"))
            args = {"angle": rng.uniform(0, 2 * math.pi)} if op == "MEASURE_ANGLE" else {}
            self.add(op, vqs=self.qubits(1), produces=(self.event(),), args=args)
        elif roll < 0.68:
            self.add("MEASURE_BELL", vqs=self.qubits(2), produces=(self.event(), self.event()))
        elif roll < 0.70:
            self.add("RESET", vqs=self.qubits(1))
        elif roll < 0.72:
            self.add("INJECT_T_STATE", vqs=self.qubits(1))
            self.caps.add("CAP_MAGIC")
        elif roll < 0.76 and self.events:
            inputs = tuple(rng.sample(self.events, rng.randint(1, min(3, len(self.events)))))
            self.add(
                "COND_PAULI", vqs=self.qubits(1), inputs=inputs, args={"mask": rng.choice("IXYZ")}
            )
        elif roll < 0.80 and len(self.live) < self.max_live:
            self.alloc(rng.randint(1, 3))
        elif roll < 0.84 and len(self.live) > 4:
            self.free(list(self.qubits(rng.randint(1, 2))))
        elif roll < 0.86:
            name = f"c{len(self.chs)}"
            self.chs.append(name)
            self.open_chs.append(name)
            opts = {"fidelity": round(rng.uniform(0.9, 1.0), 6)}
            self.add("OPEN_CHAN", vqs=self.qubits(2), chs=(name,), args={"opts": opts})
            self.caps.add("CAP_LINK")
        elif roll < 0.88 and self.open_chs:
            self.add("USE_CHAN", chs=(rng.choice(self.open_chs),), args={"semantic": "teleport"})
        elif roll < 0.90 and self.open_chs:
            name = self.open_chs.pop(rng.randrange(len(self.open_chs)))
            self.add("CLOSE_CHAN", chs=(name,))
        elif roll < 0.94:
            self.add("FENCE_EPOCH")
        elif roll < 0.97:
            vqs = self.qubits(rng.randint(0, min(2, len(self.live))))
            self.add("BAR_REGION", vqs=vqs, args={"tag": f"region{len(self.nodes)}"})
        else:
            self.add("SET_POLICY", args={"priority": rng.randint(0, 9)})


def uniform_graph(n: int) -> Graph:
    """H on each of ``n`` qubits, each measured: ``2**n`` equally likely outcomes, so a
    run of fewer shots than that has about one distinct outcome per shot (a big result).

    >>> g = uniform_graph(3)
    >>> [node.op for node in g.nodes][:2], len(g.resources.events)
    (['ALLOC_LQ', 'APPLY_H'], 3)
    """
    names = tuple(f"q{i}" for i in range(n))
    nodes = [Node(id="a", op="ALLOC_LQ", args={"n": n}, vqs=names)]
    nodes += [Node(id=f"h{i}", op="APPLY_H", vqs=(q,)) for i, q in enumerate(names)]
    nodes += [
        Node(id=f"m{i}", op="MEASURE_Z", vqs=(q,), produces=(f"e{i}",)) for i, q in enumerate(names)
    ]
    nodes.append(Node(id="f", op="FREE_LQ", vqs=names))
    return Graph(
        version=CURRENT_VERSION,
        nodes=tuple(nodes),
        resources=Resources(vqs=names, events=tuple(f"e{i}" for i in range(n))),
        caps=("CAP_ALLOC",),
    )


def random_graph(*, seed: int, nodes: int = 100, max_live: int = 64) -> Graph:
    """A random graph of at least ``nodes`` nodes that verifies without errors or warnings.

    Args:
        seed: the random seed; the same seed gives the same graph.
        nodes: the least number of nodes (a few more close channels and free qubits).
        max_live: the most qubits live at once.
    """
    builder = _Builder(seed, max_live=max(max_live, 4))
    builder.alloc(4)
    while len(builder.nodes) < nodes:
        builder.step()
    for name in builder.open_chs:
        builder.add("CLOSE_CHAN", chs=(name,))
    if builder.live:
        builder.free(list(builder.live))
    return Graph(
        version=CURRENT_VERSION,
        nodes=tuple(builder.nodes),
        resources=Resources(
            vqs=tuple(builder.vqs), chs=tuple(builder.chs), events=tuple(builder.events)
        ),
        caps=tuple(sorted(builder.caps)),
    )


def random_folded_graph(*, seed: int, nodes: int = 100, max_count: int = 3) -> Graph:
    """:func:`random_graph` with runs of its nodes folded into REPEAT rows (nested), each
    a body the verifier accepts: it starts or ends no lifetime, and no node after it
    reads an event it produces. The unrolled program verifies too.

    >>> from qmk.qvm.graph import is_folded
    >>> g = random_folded_graph(seed=3, nodes=60)
    >>> is_folded(g), g.version
    (True, '0.3')
    """
    flat = random_graph(seed=seed, nodes=nodes)
    rng = random.Random(f"fold-{seed}")
    last_read: dict[str, int] = {}
    for index, node in enumerate(flat.nodes):
        for event in (*node.inputs, *node.guard_events):
            last_read[event] = index
    folder = _Folder(flat.nodes, last_read, rng, max_count)
    rows = folder.fold(0, len(flat.nodes), 0)
    if not folder.made:  # at least one REPEAT row: wrap the first gate that can be
        rows = folder.fold(0, len(flat.nodes), 0, force=True)
    return dataclasses.replace(flat, version=FOLDED_VERSION, nodes=tuple(rows))


class _Folder:
    """Chooses the runs :func:`random_folded_graph` folds."""

    def __init__(
        self, nodes: tuple[Node, ...], last_read: dict[str, int], rng: random.Random, most: int
    ) -> None:
        self.nodes, self.last_read, self.rng, self.most = nodes, last_read, rng, most
        self.made = 0

    def body_ok(self, start: int, end: int) -> bool:
        for node in self.nodes[start:end]:
            spec = OPS[node.op]
            if spec.opens is not None or spec.closes is not None:
                return False
            if any(self.last_read.get(event, -1) >= end for event in node.produces):
                return False
        return True

    def fold(self, start: int, end: int, depth: int, *, force: bool = False) -> list[Node]:
        rows: list[Node] = []
        index = start
        while index < end:
            length = self.rng.randint(1, 8)
            stop = min(end, index + length)
            wanted = (force and not self.made) or self.rng.random() < 0.25
            if depth < 3 and wanted and self.body_ok(index, stop) and (stop - index < end - start):
                self.made += 1
                name = f"r{self.made}"
                body = self.fold(index, stop, depth + 1)
                count = self.rng.randint(1, self.most)
                rows.append(Node(id=name, op=REPEAT, args={"count": count}, body=tuple(body)))
                index = stop
            else:
                rows.append(self.nodes[index])
                index += 1
        return rows
