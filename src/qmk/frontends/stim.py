"""stim circuits for the targets that apply gates: the one folded program, its noise written
in gates, unrolled.

``qmk run circuit.stim`` runs a stim circuit on stim's own samplers (the ``stim`` target).
The targets that run QVM gates one at a time (``qmk.run(..., target="logical")``,
``--lattice-surgery``, ``--device``) and QMK's other tools (``qmk qasm``, ``qmk asm``)
take :func:`from_stim`: the circuit read once, by the one stim reader
(:func:`qmk.frontends.stim_fold.read_folded`), its stim-only rows written in gates, and
unrolled (:func:`qmk.qvm.fold.unroll`, the one unrolling). The result is the measurement
record, as stim's own ``circuit.compile_sampler()`` samples it: one group, the record in
order, the first measurement leftmost.

- **Noise**, honoured exactly by a dilation: a ``NOISE`` row (``X_ERROR Y_ERROR Z_ERROR
  DEPOLARIZE1 PAULI_CHANNEL_1 DEPOLARIZE2 PAULI_CHANNEL_2``, ``E``/``CORRELATED_ERROR``,
  ``ELSE_CORRELATED_ERROR``) and a ``NOISY_MEASURE`` row (a measurement's flip
  probability ``M(0.01)``, the heralded ``HERALDED_ERASE HERALDED_PAULI_CHANNEL_1`` whose
  herald is a record bit, ``MPAD(p)``). Scratch qubits are prepared in the square roots
  of the channel's outcomes' probabilities (rotations uniformly controlled by the scratch
  qubits before, written in ``ry`` and CX). They control the Paulis and are reset, which
  discards them: the same channel on the target. An ``E`` chain keeps one scratch qubit
  that says whether an error of it struck. ``I_ERROR``/``II_ERROR`` change nothing. A
  noisy circuit is not Clifford for the engines (the scratch qubits' rotations), so it
  runs on a statevector engine, shot by shot: the stim target is the way to run one.
- **Annotations** ``TICK QUBIT_COORDS SHIFT_COORDS DETECTOR OBSERVABLE_INCLUDE`` change
  no measurement: left out, as ``compile_sampler`` leaves them; detectors and observables
  are not computed here, which the warning ``QL114 annotation-ignored`` says (the stim
  target computes them).

Refused as the reader refuses (``QL101``, ``QL104``, ``QS1006``: its rows past
``max_nodes``), a circuit that unrolls past ``max_nodes`` (``QL110``), and, with no
``max_nodes``, one that unrolls past ``Limits.max_unrolled_nodes`` (``QV505``, as every
consumer that unrolls): a 26-byte ``REPEAT`` of 10^9 turns is never built.

>>> graph = from_stim("H 0\\nCX 0 1\\nM 0 1\\n")
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgspec

from qmk.errors import warning
from qmk.frontends import decompose
from qmk.frontends.builder import MEASURE_OPS, gate_op
from qmk.frontends.errors import FrontendError
from qmk.frontends.stim_fold import FLIP, FROM_Z, MEASURES, read_folded
from qmk.qvm.fold import unroll, unrolled_size
from qmk.qvm.graph import CURRENT_VERSION, Graph, Guard, GuardTerm, Node, Resources
from qmk.qvm.limits import DEFAULT_MAX_NODES, Limits

#: One-qubit Pauli channels: (px, py, pz) from the instruction's arguments.
_CHANNELS = {
    "X_ERROR": lambda a: (a[0], 0.0, 0.0),
    "Y_ERROR": lambda a: (0.0, a[0], 0.0),
    "Z_ERROR": lambda a: (0.0, 0.0, a[0]),
    "DEPOLARIZE1": lambda a: (a[0] / 3, a[0] / 3, a[0] / 3),
    "PAULI_CHANNEL_1": lambda a: (a[0], a[1], a[2]),
}
#: Two-qubit Pauli channels: the 15 probabilities of ``IX IY IZ XI ... ZZ`` (stim's order).
_CHANNELS_2 = {
    "DEPOLARIZE2": lambda a: (a[0] / 15,) * 15,
    "PAULI_CHANNEL_2": lambda a: tuple(a),
}
#: Heralded channels: the probabilities of a herald with I, X, Y, Z on the qubit.
_HERALDED = {
    "HERALDED_ERASE": lambda a: (a[0] / 4,) * 4,
    "HERALDED_PAULI_CHANNEL_1": lambda a: tuple(a),
}
#: A Pauli's (X part, Z part): which of the CX and CZ its dilation applies.
_PARTS = {"I": (0, 0), "X": (1, 0), "Y": (1, 1), "Z": (0, 1)}
#: Rows that change no measurement: left out (the first two with QL114).
_ANNOTATIONS = frozenset({"TICK", "QUBIT_COORDS", "SHIFT_COORDS", "DETECTOR", "OBSERVABLE_INCLUDE"})


def from_stim(
    circuit: Any,
    *,
    profile: str | None = None,
    name: str = "stim",
    max_nodes: int | None = None,
    limits: Limits | None = None,
) -> Graph:
    """A stim circuit (a ``stim.Circuit`` or its text) in gates, unrolled (module
    docstring).

    Args:
        circuit: the circuit.
        profile: the code profile of the qubits (None: the runner's default).
        name: the name used in errors and ``metadata.source``.
        max_nodes: refuse a circuit whose ``REPEAT`` blocks unroll past this many nodes
            (None: ``limits.max_unrolled_nodes`` caps the unrolling instead).
        limits: the caps of the unrolling when ``max_nodes`` is None (None: the defaults).

    Raises:
        FrontendError: text stim cannot parse (QL101), an instruction QMK does not
            read (QL104), a circuit past ``max_nodes`` (QL110).
        UnrollError: with no ``max_nodes``, a circuit that unrolls past
            ``limits.max_unrolled_nodes`` (QV505); nothing is unrolled.
        QuotaError: its rows past ``max_nodes`` (or the verifier's default) as read.
    """
    rows = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
    folded = read_folded(circuit, name=name, profile=profile, max_rows=rows)
    if max_nodes is not None and unrolled_size(folded) > max_nodes:
        raise FrontendError.of(
            "loop-cap",
            f"{name}: the circuit unrolls past {max_nodes} nodes (max_nodes)",
            source=name,
        )
    cap = max_nodes if max_nodes is not None else (limits or Limits()).max_unrolled_nodes
    graph = _Dilation(unroll(folded, max_nodes=cap), name=name, profile=profile).run()
    if max_nodes is not None and len(graph.nodes) > max_nodes:
        raise FrontendError.of(
            "loop-cap",
            f"{name}: the circuit's noise, written in gates, passes {max_nodes} nodes (max_nodes)",
            source=name,
        )
    return graph


class _Dilation:
    """One unrolled stim program's noise and annotation rows written in gates
    (:func:`from_stim`)."""

    def __init__(self, graph: Graph, *, name: str, profile: str | None) -> None:
        self.graph = graph
        self.name = name
        self.profile = profile
        self.out: list[Node] = []
        self.scratch: list[str] = []
        #: The scratch qubit that says whether an ``E``/``ELSE_CORRELATED_ERROR`` chain
        #: has struck yet (None: no chain is open).
        self.chain: str | None = None
        self.ignored: dict[str, int] = {}
        self.where = name

    def error(self, kind: str, message: str) -> FrontendError:
        return FrontendError.of(kind, f"{self.where}: {message}", source=self.name)

    def run(self) -> Graph:
        for node in self.graph.nodes:
            self.where = f"{self.name} node {node.id!r} [{node.op}]"
            if node.op != "NOISE" or node.args["channel"] != "ELSE_CORRELATED_ERROR":
                self.end_chain()
            if node.op == "NOISE":
                self.noise(node.args["channel"], node.args["p"], node)
            elif node.op == "NOISY_MEASURE":
                self.noisy(node)
            elif node.op in _ANNOTATIONS:
                if node.op in ("DETECTOR", "OBSERVABLE_INCLUDE"):
                    self.ignored[node.op] = self.ignored.get(node.op, 0) + 1
            else:
                self.out.append(node)
        self.end_chain()
        metadata: dict[str, Any] = dict(self.graph.metadata or {})
        nodes = _record_named(self.out)
        record = [event for node in nodes for event in node.produces]
        metadata["output"] = {"groups": [record], "separator": ""}
        if self.ignored:
            listed = ", ".join(f"{n} {k}" for k, n in sorted(self.ignored.items()))
            metadata["warnings"] = [
                warning(
                    FrontendError,
                    "annotation-ignored",
                    f"{listed}: lowered to QVM, the circuit gives its measurement record, as "
                    "stim's compile_sampler does; the stim target (qmk run's default for a "
                    "stim circuit) computes detectors and observables",
                )
            ]
        if self.scratch:  # allocated after the circuit's qubits, freed at the end
            args: dict[str, Any] = {"n": len(self.scratch)}
            if self.profile is not None:
                args["profile"] = self.profile
            first = next(k for k, n in enumerate(nodes) if n.op != "ALLOC_LQ")
            alloc = Node(id="scratch", op="ALLOC_LQ", vqs=tuple(self.scratch), args=args)
            free = Node(id="scratch/free", op="FREE_LQ", vqs=tuple(self.scratch))
            nodes = [*nodes[:first], alloc, *nodes[first:], free]
        resources = self.graph.resources
        return replace(
            self.graph,
            version=CURRENT_VERSION,
            nodes=tuple(nodes),
            resources=Resources(vqs=(*resources.vqs, *self.scratch), events=tuple(record)),
            caps=("CAP_ALLOC",) if resources.vqs or self.scratch else (),
            metadata=metadata,
        )

    # ------------------------------------------------------------------ rows

    def gate(self, name: str, qubits: Sequence[str], params: Sequence[float] = ()) -> None:
        op, theta = gate_op(name, len(qubits), params)
        args = {} if theta is None else {"theta": theta}
        self.out.append(Node(id=f"d{len(self.out)}", op=op, vqs=tuple(qubits), args=args))

    def measure(self, qubit: str, event: str, basis: str = "Z") -> None:
        node = Node(id=f"d{len(self.out)}", op=MEASURE_OPS[basis], vqs=(qubit,), produces=(event,))
        self.out.append(node)

    def reset(self, qubit: str) -> None:
        self.out.append(Node(id=f"d{len(self.out)}", op="RESET", vqs=(qubit,)))

    def noise(self, name: str, args: Sequence[float], node: Node) -> None:
        """A ``NOISE`` row of one channel on its target group."""
        if name in _CHANNELS:
            px, py, pz = _CHANNELS[name](args)
            self.pauli_channel(node.vqs[0], px, py, pz)
        elif name in _CHANNELS_2:
            self.pauli_channel_2(node.vqs, _CHANNELS_2[name](args))
        elif name == "E":
            self.correlated(node, args[0])
        elif name == "ELSE_CORRELATED_ERROR":
            self.otherwise(node, args[0])
        # I_ERROR, II_ERROR: nothing

    def noisy(self, node: Node) -> None:
        """A ``NOISY_MEASURE`` row: a noisy measurement (and its reset), a herald, or a
        pad of its instruction."""
        instruction, args = node.args["instruction"], node.args["p"]
        (event,) = node.produces
        if instruction in MEASURES:
            basis, reset = MEASURES[instruction]
            self.noisy_measure(node.vqs[0], basis, args, event)
            if reset:
                self.reset(node.vqs[0])
                for gate in FROM_Z[basis]:
                    self.gate(gate, [node.vqs[0]])
        elif instruction in _HERALDED:
            probs = _HERALDED[instruction](args)
            self.paulis([node.vqs[0]], dict(zip("IXYZ", probs, strict=True)), herald=event)
        else:
            self.pad(int(node.args.get("bit", 0)), args, event)

    def noisy_measure(self, qubit: str, basis: str, args: Sequence[float], event: str) -> None:
        """Measure ``qubit`` in ``basis``, its result flipped with the probability
        ``args[0]`` and its state not (a scratch qubit flips it before and after)."""
        (coin,) = self.take(1)
        self.gate("ry", [coin], [_angle(float(args[0]))])
        controlled = {"x": "cx", "z": "cz"}[FLIP[basis]]
        self.gate(controlled, [coin, qubit])
        self.measure(qubit, event, basis)
        self.gate(controlled, [coin, qubit])
        self.reset(coin)

    def pad(self, bit: int, args: Sequence[float], event: str) -> None:
        """``MPAD(p)``: a record bit that is ``bit`` flipped with the probability ``p``,
        measured off a scratch qubit rotated to read 1 with the probability it must,
        then reset."""
        flip = float(args[0]) if args else 0.0
        (pad,) = self.take(1)
        one = 1 - flip if bit else flip
        if one:
            self.gate("ry", [pad], [_angle(one)])
        self.measure(pad, event)
        self.reset(pad)

    # ------------------------------------------------------------------ noise

    def take(self, count: int) -> list[str]:
        """``count`` scratch qubits in |0> (allocated once, reset after each use)."""
        while len(self.scratch) < count:
            self.scratch.append(f"s{len(self.scratch)}")
        return self.scratch[:count]

    def pauli_channel(self, qubit: str, px: float, py: float, pz: float) -> None:
        """X, Y, Z on ``qubit`` with probabilities ``px, py, pz`` (:meth:`paulis`)."""
        if px + py + pz == 0:
            return
        if py == 0 and (px == 0 or pz == 0):  # one Pauli: one scratch qubit
            if not 0 <= px + pz <= 1:
                raise self.error("bad-value", f"probability {px + pz} is not one")
            pauli, p = ("cx", px) if px else ("cz", pz)
            (a,) = self.take(1)
            self.gate("ry", [a], [_angle(p)])
            self.gate(pauli, [a, qubit])
            self.reset(a)
            return
        self.paulis([qubit], {"X": px, "Y": py, "Z": pz})

    def pauli_channel_2(self, pair: Sequence[str], probs: Sequence[float]) -> None:
        """``PAULI_CHANNEL_2``: the 15 two-qubit Paulis other than ``II`` with ``probs``
        in stim's order (``IX IY IZ XI ... ZZ``, the first letter on ``pair[0]``)."""
        names = [p + q for p in "IXYZ" for q in "IXYZ"][1:]
        self.paulis(pair, dict(zip(names, probs, strict=True)))

    def paulis(
        self, qubits: Sequence[str], probs: Mapping[str, float], *, herald: str | None = None
    ) -> None:
        """A Pauli on ``qubits`` (one letter per qubit) with its probability in
        ``probs``, none with the rest, by a dilation. The scratch qubits are an X part
        and a Z part per qubit (and first a herald, measured into the event ``herald``
        before its reset: 1 where the channel struck). They are prepared in the square
        roots of the outcomes' probabilities (:meth:`prepare`), control CX and CZ on the
        qubits, and are reset. (XZ is Y up to a phase, which a mixture does not see.)
        """
        values = list(probs.values())
        total = sum(values)
        if min(values, default=0.0) < 0 or total > 1 + 1e-12:
            raise self.error(
                "bad-value", f"probabilities {', '.join(map(repr, values))} are not a channel"
            )
        if total == 0 and herald is None:
            return
        offset = int(herald is not None)
        bits = self.take(offset + 2 * len(qubits))
        outcomes = [0.0] * (1 << len(bits))
        for paulis, p in probs.items():
            index = offset  # the herald's bit, set for every Pauli of a heralded channel
            for k, pauli in enumerate(paulis):
                x, z = _PARTS[pauli]
                index |= x << (offset + 2 * k) | z << (offset + 2 * k + 1)
            outcomes[index] += p
        outcomes[0] = max(0.0, 1.0 - total)
        self.prepare(bits, outcomes)
        for k, qubit in enumerate(qubits):
            self.gate("cx", [bits[offset + 2 * k], qubit])
            self.gate("cz", [bits[offset + 2 * k + 1], qubit])
        if herald is not None:
            self.measure(bits[0], herald)
        for bit in bits:
            self.reset(bit)

    def prepare(self, bits: Sequence[str], outcomes: Sequence[float]) -> None:
        """Put ``bits`` (in |0>) in ``sum_i sqrt(outcomes[i]) |i>``, bit ``k`` of ``i``
        on ``bits[k]``. Each bit is rotated by ``ry`` to its probability given the bits
        before it: a rotation uniformly controlled by them, written as ``ry`` and CX
        (Mottonen et al., PRL 93, 130502: 2^k rotations and CX for k controls)."""
        for k, bit in enumerate(bits):
            mask = (1 << k) - 1
            ones = [0.0] * (1 << k)  # P(bit k = 1 and the bits before = c), by c
            every = [0.0] * (1 << k)
            for index, p in enumerate(outcomes):
                every[index & mask] += p
                if index >> k & 1:
                    ones[index & mask] += p
            angles = [
                _angle(one / all_) if all_ > 0 else 0.0
                for one, all_ in zip(ones, every, strict=True)
            ]
            self.controlled_ry(bits[:k], bit, angles)

    def controlled_ry(self, controls: Sequence[str], target: str, angles: Sequence[float]) -> None:
        """``ry(angles[c])`` on ``target`` when ``controls`` read ``c`` (control ``k`` bit
        ``k``): rotations by the Gray-code transform of ``angles`` between CX from the
        control whose bit the code changes next (Mottonen et al.)."""
        size = len(angles)
        if size == 1:
            if angles[0]:
                self.gate("ry", [target], [angles[0]])
            return
        gray = [i ^ (i >> 1) for i in range(size)]
        for i in range(size):
            alpha = sum(
                angle * (-1 if bin(c & gray[i]).count("1") % 2 else 1)
                for c, angle in enumerate(angles)
            )
            self.gate("ry", [target], [alpha / size])
            changed = (gray[i] ^ gray[(i + 1) % size]).bit_length() - 1
            self.gate("cx", [controls[changed], target])

    def correlated(self, row: Node, p: float) -> None:
        """``E(p) X1 Y2 ...``: the Pauli product with probability ``p``. Its scratch
        qubit stays, saying whether it struck, for an ``ELSE_CORRELATED_ERROR`` chain
        (:meth:`otherwise`) until the next other instruction resets it."""
        (a,) = self.take(1)
        self.gate("ry", [a], [_angle(p)])
        self.product(a, row)
        self.chain = a

    def otherwise(self, row: Node, p: float) -> None:
        """``ELSE_CORRELATED_ERROR(p) ...``: the product with probability ``p`` when no
        error of its chain has struck yet: a scratch qubit rotated only while the chain's
        flag is 0, which then joins the flag (the two never both 1)."""
        if self.chain is None:  # pragma: no cover - stim refuses such a circuit
            raise self.error("bad-value", "ELSE_CORRELATED_ERROR without an E before it")
        flag = self.chain
        b = self.take(2)[1]
        self.gate("x", [flag])
        self.lowered("cry", [flag, b], [_angle(p)])
        self.gate("x", [flag])
        self.product(b, row)
        self.gate("cx", [b, flag])
        self.reset(b)

    def product(self, control: str, row: Node) -> None:
        """The Pauli product of an ``E`` row (``X1 Y2 ...``), controlled by ``control``."""
        for pauli, qubit in zip(row.args["paulis"], row.vqs, strict=True):
            self.lowered(f"c{pauli.lower()}", [control, qubit])

    def end_chain(self) -> None:
        """Reset the flag of an open ``E`` chain: the next row is no part of it."""
        if self.chain is not None:
            self.reset(self.chain)
            self.chain = None

    def lowered(self, gate: str, qubits: Sequence[str], params: Sequence[float] = ()) -> None:
        """A gate of the decomposition table on ``qubits``, as QVM gates."""
        for name, local, args in decompose.lower_gate(gate, tuple(params)).ops:
            self.gate(name, [qubits[q] for q in local], args)


def _record_named(nodes: Sequence[Node]) -> list[Node]:
    """``nodes`` with their events named ``m0 m1 ...`` in record order (the unrolling
    names a turn's ``m3@1``), guards following."""
    names: dict[str, str] = {}
    for node in nodes:
        for event in node.produces:
            names[event] = f"m{len(names)}"
    out: list[Node] = []
    for node in nodes:
        if node.produces or node.guard is not None:
            guard = node.guard
            if guard is not None:
                terms = tuple(GuardTerm(event=names[t.event], equals=t.equals) for t in guard.terms)
                guard = Guard(terms=terms, conjunction=guard.conjunction)
            produces = tuple(names[e] for e in node.produces)
            node = msgspec.structs.replace(node, produces=produces, guard=guard)
        out.append(node)
    return out


def _angle(p: float) -> float:
    """The ``ry`` angle that puts |1> at probability ``p``."""
    return 2 * math.asin(math.sqrt(min(max(p, 0.0), 1.0)))


__all__ = ["from_stim"]
