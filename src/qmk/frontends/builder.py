"""Build QVM graphs op by op: the common back end of every front-end.

A front-end walks its source (OpenQASM, QIR, a Qiskit or Cirq circuit) and calls
the builder. The builder names handles and nodes, and records where each node came
from (``metadata.source``, e.g. ``"prog.qasm:12"``). It allocates qubits with the
chosen code profile and frees every live qubit at the end. It writes the output
layout (:mod:`qmk.qvm.output`) that makes result keys look like the source
language's.


>>> b = ProgramBuilder(description="Bell pair")
>>> q = b.allocate(2)
>>> b.gate("h", [q[0]])
>>> b.gate("cx", q)
>>> m = [b.measure(q[0]), b.measure(q[1])]
>>> graph = b.build(output=[[m[1], m[0]]])  # qubit 0 rightmost, as Qiskit writes it
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
>>> from qmk.execution import run
>>> sorted(run(graph, shots=200, seed=3).counts)
['00', '11']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from qmk.qvm.graph import (
    CALL,
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

#: A row a front-end's fast lane writes: ``(op, qubits, angle or None)``, or
#: ``(CALL, qubits, block name)`` for a call of a block.
Emitted = tuple[str, tuple[str, ...], float | str | None]
#: The argument an emitted row's third item is: a gate's angle, a call's block.
_ARG = ("theta", "block")


def gate_emitter(nodes: list[Node], prefix: str) -> Callable[[Sequence[Emitted], int | None], None]:
    """``emit(steps, line)``: unguarded gate nodes ``(op, qubits, angle or None)`` (or
    CALL rows, :data:`Emitted`) appended to ``nodes`` as they are, from
    ``f"{prefix}{line}"``: the fast lane of a front-end that has checked them already
    (:func:`gate_op` checks one; its hot loop calls it once per gate statement)."""
    append = nodes.append
    node_class = Node

    def emit(steps: Sequence[Emitted], line: int | None) -> None:
        meta = {"source": f"{prefix}{line}"}
        for op, vqs, theta in steps:
            append(
                node_class(
                    id=f"n{len(nodes)}",
                    op=op,
                    args={} if theta is None else {_ARG[op == CALL]: theta},
                    vqs=vqs,
                    metadata=meta,
                )
            )

    return emit


#: Gate name (lower case, as the engines name them) -> QVM op: the op table's gate ops.
GATE_OPS: Mapping[str, str] = MappingProxyType(
    {spec.gate: name for name, spec in OPS.items() if spec.kind is Exec.GATE and spec.gate}
)

_ARITY = {spec.gate: spec.vqs.low for spec in OPS.values() if spec.kind is Exec.GATE and spec.gate}
_ROTATIONS = frozenset(
    spec.gate for spec in OPS.values() if spec.kind is Exec.GATE and spec.gate and spec.args
)
#: Basis (``Z``, ``X``, ``Y``) -> its measurement op: the op table's measurement ops.
MEASURE_OPS: Mapping[str, str] = MappingProxyType(
    {spec.basis: name for name, spec in OPS.items() if spec.kind is Exec.MEASURE and spec.basis}
)


def gate_op(name: str, n_qubits: int, params: Sequence[float] = ()) -> tuple[str, float | None]:
    """The op of gate ``name`` on ``n_qubits`` and its angle (None for a fixed gate).

    Raises:
        KeyError: a gate that is not in :data:`GATE_OPS`. ValueError: the wrong
            number of qubits or parameters, or a non-finite angle.

    >>> gate_op("rz", 1, [0.5])
    ('APPLY_RZ', 0.5)
    """
    op = GATE_OPS[name]
    arity = _ARITY[name]
    if n_qubits != arity:
        raise ValueError(f"gate {name} takes {arity} qubits, got {n_qubits}")
    if name in _ROTATIONS:
        (theta,) = params
        if not math.isfinite(theta):
            raise ValueError(f"gate {name} got a non-finite angle {theta!r}")
        return op, float(theta)
    if params:
        raise ValueError(f"gate {name} takes no parameters")
    return op, None


def guard_of(terms: Sequence[tuple[str, int]]) -> Guard | None:
    """The guard "every ``(event, value)`` holds", or None for no terms."""
    if not terms:
        return None
    return Guard(
        terms=tuple(GuardTerm(event=e, equals=int(v)) for e, v in terms),
        conjunction=len(terms) > 1,
    )


class ProgramBuilder:
    """Accumulates nodes; :meth:`build` returns the graph.

    Args:
        profile: the code profile written on every ALLOC_LQ (None: the runner's default).
        description: the graph's description.
        source: the default ``metadata.source`` of nodes (a file name), or None.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        description: str | None = None,
        source: str | None = None,
    ) -> None:
        self.profile = profile
        self.description = description
        self.source = source
        self.nodes: list[Node] = []
        self.vqs: list[str] = []
        self.events: list[str] = []
        self.caps: set[str] = set()
        # the blocks calls were kept as (qmk.frontends.folding.call_pass), by their key
        self.blocks: dict[tuple[Any, ...], Node] = {}
        self._live: dict[str, None] = {}
        # the metadata of the last node without extra keys, shared by the nodes of one
        # source line (node metadata is read-only)
        self._meta_where: str | None = None
        self._meta: dict[str, Any] | None = None

    # ------------------------------------------------------------------ nodes

    def _add(
        self,
        op: str,
        *,
        vqs: Sequence[str] = (),
        args: Mapping[str, Any] | None = None,
        produces: Sequence[str] = (),
        inputs: Sequence[str] = (),
        guard: Guard | None = None,
        where: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        where = where if where is not None else self.source
        meta: dict[str, Any] | None
        if metadata:
            meta = dict(metadata)
            if where is not None:
                meta["source"] = where
        else:
            meta = self.metadata_at(where)
        nodes = self.nodes
        nodes.append(
            Node(
                id=f"n{len(nodes)}",
                op=op,
                args=dict(args) if args else {},
                vqs=tuple(vqs),
                produces=tuple(produces),
                inputs=tuple(inputs),
                guard=guard,
                metadata=meta,
            )
        )

    def metadata_at(self, where: str | None) -> dict[str, Any] | None:
        """``{"source": where}`` (None for no place), one dict shared by consecutive
        nodes from the same place."""
        if where is None:
            return None
        if where != self._meta_where:
            self._meta_where = where
            self._meta = {"source": where}
        return self._meta

    def allocate(
        self, count: int, *, where: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Allocate ``count`` fresh qubits (one ALLOC_LQ node) and return their handles."""
        if count < 1:
            return []
        start = len(self.vqs)
        names = [f"q{start + i}" for i in range(count)]
        self.vqs.extend(names)
        self._live.update(dict.fromkeys(names))
        args: dict[str, Any] = {"n": count}
        if self.profile is not None:
            args["profile"] = self.profile
        self.caps.add("CAP_ALLOC")
        self._add("ALLOC_LQ", vqs=names, args=args, where=where, metadata=metadata)
        return names

    def gate(
        self,
        name: str,
        qubits: Sequence[str],
        params: Sequence[float] = (),
        *,
        guard: Guard | None = None,
        where: str | None = None,
    ) -> None:
        """Apply gate ``name`` (a key of :data:`GATE_OPS`) to ``qubits``.

        Rotations take one angle in ``params``; a rotation by a multiple of 4*pi is
        still written (it is the identity up to a phase the program cannot see).
        """
        op, theta = gate_op(name, len(qubits), params)
        args = None if theta is None else {"theta": theta}
        self._add(op, vqs=qubits, args=args, guard=guard, where=where)

    def measure(
        self,
        qubit: str,
        *,
        basis: str = "Z",
        guard: Guard | None = None,
        where: str | None = None,
    ) -> str:
        """Measure ``qubit`` (it stays live) and return the new event's name."""
        event = f"m{len(self.events)}"
        self.events.append(event)
        self._add(MEASURE_OPS[basis], vqs=[qubit], produces=[event], guard=guard, where=where)
        return event

    def reset(self, qubit: str, *, guard: Guard | None = None, where: str | None = None) -> None:
        """Reset ``qubit`` to |0>."""
        self._add("RESET", vqs=[qubit], guard=guard, where=where)

    def cond_pauli(
        self, qubit: str, mask: str, events: Sequence[str], *, where: str | None = None
    ) -> None:
        """Apply Pauli ``mask`` to ``qubit`` when the XOR of ``events`` is 1."""
        self._add("COND_PAULI", vqs=[qubit], args={"mask": mask}, inputs=events, where=where)

    def calc(
        self,
        type_: str,
        width: int,
        expr: str,
        *,
        reads: str = "",
        inputs: Sequence[str] = (),
        guard: Guard | None = None,
        where: str | None = None,
    ) -> list[str]:
        """Compute a run-time classical value (one CALC node, :mod:`qmk.qvm.classical`):
        ``expr`` over operands of the types ``reads`` whose bits are ``inputs``; the new
        events holding the ``width`` bits of the ``type_`` value, least significant first.
        """
        start = len(self.events)
        events = [f"x{start + k}" for k in range(width)]
        self.events.extend(events)
        args = {"type": type_, "expr": expr}
        if reads:
            args["reads"] = reads
        self._add("CALC", args=args, inputs=inputs, produces=events, guard=guard, where=where)
        return events

    def halt(self, message: str, *, guard: Guard | None = None, where: str | None = None) -> None:
        """Stop the run with QE115 when this node runs (its guard holds)."""
        self._add("HALT", args={"message": message}, guard=guard, where=where)

    def fence(self, *, where: str | None = None) -> None:
        """Close the current epoch (a barrier)."""
        self._add("FENCE_EPOCH", where=where)

    def free(self, qubits: Sequence[str], *, where: str | None = None) -> None:
        """Free ``qubits`` (measure-and-forget)."""
        for q in qubits:
            self._live.pop(q, None)
        if qubits:
            self._add("FREE_LQ", vqs=qubits, where=where)

    # ------------------------------------------------------------------ result

    def build(
        self,
        *,
        output: Sequence[Sequence[str | None]] | None = None,
        separator: str = " ",
        metadata: Mapping[str, Any] | None = None,
    ) -> Graph:
        """The graph: every live qubit freed at the end, ``output`` as its key layout.

        Args:
            output: groups of events (None for a bit nothing wrote), left to right;
                None keeps the default keys (events in order, first leftmost).
            separator: the text between groups.
            metadata: more graph metadata (e.g. the source language).
        """
        if self._live:
            self.free(list(self._live), where=None)
        meta = dict(metadata or {})
        if output is not None:
            meta["output"] = {
                "groups": [g if isinstance(g, Mapping) else list(g) for g in output],
                "separator": separator,
            }
        folded = bool(self.blocks) or any(node.op == REPEAT for node in self.nodes)
        return Graph(
            version=FOLDED_VERSION if folded else CURRENT_VERSION,
            nodes=tuple(self.nodes),
            blocks=tuple(self.blocks.values()),
            resources=Resources(vqs=tuple(self.vqs), events=tuple(self.events)),
            caps=tuple(sorted(self.caps)),
            description=self.description,
            metadata=meta or None,
        )
