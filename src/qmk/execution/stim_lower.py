"""A verified QVM program written as a stim circuit, REPEAT rows as ``REPEAT`` blocks.

What the ``stim`` target runs (:mod:`qmk.execution.stim_target`): the program a stim
circuit reads as (:func:`qmk.frontends.stim_fold.read_folded`), or any program of the
same rows, written back row for row. Nothing is unrolled: a REPEAT row's body is
written once, inside a ``REPEAT`` block of its count.

- Qubit handles are stim's qubits in the order the graph declares them; ``ALLOC_LQ`` of
  a handle allocated before is ``R`` (it starts in |0> again), ``FREE_LQ`` is nothing.
- A gate op is its gate record's stim name (a rotation at a quarter turn its
  ``stim_quarter`` name). A Pauli guarded by one event of its own turn (equals 1) is
  ``CX``/``CY``/``CZ`` controlled by that record bit.
- ``MEASURE_*`` is ``M``/``MX``/``MY``; a measurement followed by the reset (and basis
  change) of its qubit is ``MR``/``MRX``/``MRY``, a reset followed by ``H`` (``H S``)
  ``RX`` (``RY``), and rows that are exactly the gathered measurement of the Pauli
  product their first row names (``metadata.product``) are ``MPP``: the same
  operations, as stim writes them (so stim samples them as it samples the circuit read).
- ``NOISE``, ``NOISY_MEASURE``, ``TICK``, ``QUBIT_COORDS``, ``SHIFT_COORDS``,
  ``DETECTOR`` and ``OBSERVABLE_INCLUDE`` are the stim instructions they record; a
  constant ``CALC`` (no inputs, ``bool``, ``True``/``False``) is ``MPAD``.
- ``FENCE_EPOCH``, ``BAR_REGION`` and ``SET_POLICY`` (scheduling only) are nothing.

Anything else (a non-Clifford gate, channels, a computation on events, a guard that is
not one event's) is ``QE103``, naming the node.

The rows are written as stim's text, a line an instruction, and stim reads it once: it
merges a line into the instruction before it as it merges an appended one (same name
and arguments), so the circuit is the one appending each instruction makes, where
``Circuit.append`` costs a copy of the merged targets each time (seconds on a wide
layer).

>>> from qmk.frontends.stim_fold import read_folded
>>> print(to_stim(read_folded("R 0\\nREPEAT 3 {\\n  H 0\\n  MR 0\\n  DETECTOR rec[-1]\\n}")))
R 0
REPEAT 3 {
    H 0
    MR 0
    DETECTOR rec[-1]
}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from qmk.engines.base import EngineError
from qmk.gates import GATES
from qmk.qvm.graph import REPEAT, Graph, Node
from qmk.qvm.ops import OPS, Exec

if TYPE_CHECKING:
    import stim

_MEASURE = {"MEASURE_Z": "M", "MEASURE_X": "MX", "MEASURE_Y": "MY"}
#: A measurement (or reset) and the rows after it on its qubit that make one stim
#: instruction: (op, then the ops of the next rows) -> stim's name.
_JOINED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("MEASURE_Z", "RESET"), "MR"),
    (("MEASURE_X", "RESET", "APPLY_H"), "MRX"),
    (("MEASURE_Y", "RESET", "APPLY_H", "APPLY_S"), "MRY"),
    (("RESET", "APPLY_H", "APPLY_S"), "RY"),
    (("RESET", "APPLY_H"), "RX"),
    (("RESET",), "R"),
)
_STARTS = frozenset(ops[0] for ops, _ in _JOINED)
_NOTHING = frozenset({"FREE_LQ", "FENCE_EPOCH", "BAR_REGION", "SET_POLICY"})
_PAULI_CONTROL = {"x": "CX", "y": "CY", "z": "CZ"}


def to_stim(graph: Graph) -> stim.Circuit:
    """``graph`` (verified) as one stim circuit (module docstring).

    Raises:
        EngineError: ``QE103`` a row stim has no instruction for, naming it.
    """
    import stim

    from qmk.qvm.fold import calls_bound

    writer = _Writer({handle: str(k) for k, handle in enumerate(graph.resources.vqs)})
    lines: list[str] = []
    writer.rows(calls_bound(graph).nodes, lines)
    return stim.Circuit("\n".join(lines))


class _Writer:
    """Rows written as stim instructions, level by level (a REPEAT body a level)."""

    def __init__(self, qubits: Mapping[str, str]) -> None:
        #: Each handle's stim qubit, as its text.
        self.qubits = qubits
        self.allocated: set[str] = set()
        #: An unparameterised gate op's stim name ("" for ``I``, which writes nothing).
        self.names: dict[str, str] = {}

    def rows(self, nodes: Sequence[Node], circuit: list[str]) -> int:
        """Write ``nodes`` as lines of stim text; returns the record bits one pass writes."""
        #: The record position of each event this level's turn has written.
        position: dict[str, int] = {}
        bits = 0
        k = 0
        while k < len(nodes):
            node = nodes[k]
            if node.op == REPEAT:
                count = int(node.args["count"])
                circuit.append(f"REPEAT {count} {{")
                per_turn = self.rows(node.body, circuit)
                circuit.append("}")
                bits += count * per_turn
                k += 1
                continue
            product = self.product(nodes, k)
            if product is not None:
                targets, args, size, event = product
                circuit.append(_line("MPP", targets, args))
                position[event] = bits
                bits += 1
                k += size
                continue
            joined = self.joined(nodes, k)
            if joined is not None:
                name, size = joined
                circuit.append(f"{name} {self.qubits[node.vqs[0]]}")
                if name.startswith("M"):
                    position[node.produces[0]] = bits
                    bits += 1
                k += size
                continue
            written = self.row(circuit, node, position, bits)
            for event in node.produces:
                position[event] = bits
                bits += 1
            assert written == len(node.produces), node
            k += 1
        return bits

    def product(
        self, nodes: Sequence[Node], k: int
    ) -> tuple[list[str], list[float], int, str] | None:
        """``MPP``'s targets, arguments, rows and event when rows ``k``... are exactly a
        Pauli product's measurement (:func:`~qmk.frontends.stim_fold.product_ops`) of
        the product their first row names (``metadata.product``); else None."""
        from qmk.frontends.stim_fold import parity_middle, product_ops

        named = (nodes[k].metadata or {}).get("product")
        if not named:
            return None
        factors = [(str(p), str(q), bool(inv)) for p, q, inv in named]
        for measure in ("MEASURE_Z", "NOISY_MEASURE"):
            expected = product_ops(factors, parity_middle(factors, measure))
            rows = nodes[k : k + len(expected)]
            if len(rows) != len(expected) or any(
                (row.op, row.vqs) != want or row.guard is not None
                for row, want in zip(rows, expected, strict=True)
            ):
                continue
            (measured,) = [row for row in rows if row.op == measure]
            if measure == "NOISY_MEASURE" and measured.args.get("instruction") != "M":
                continue
            product = "*".join(
                f"{'!' if inverted else ''}{pauli}{self.qubits[qubit]}"
                for pauli, qubit, inverted in factors
            )
            args = list(measured.args.get("p", ()))
            return [product], args, len(expected), measured.produces[0]
        return None

    def joined(self, nodes: Sequence[Node], k: int) -> tuple[str, int] | None:
        """The stim instruction rows ``k``... make on one qubit (:data:`_JOINED`)."""
        node = nodes[k]
        if node.guard is not None or node.op not in _STARTS:
            return None
        after = nodes[k + 1] if k + 1 < len(nodes) else None
        if after is None or after.vqs != node.vqs or after.guard is not None:
            # (most rows: nothing joins them, so the table is not walked)
            return ("R", 1) if node.op == "RESET" else None
        for ops, name in _JOINED:
            rows = nodes[k : k + len(ops)]
            if len(rows) == len(ops) and all(
                row.op == op and row.vqs == node.vqs and row.guard is None
                for row, op in zip(rows, ops, strict=True)
            ):
                return name, len(ops)
        return None

    def row(self, circuit: list[str], node: Node, position: Mapping[str, int], bits: int) -> int:
        """Write one row; returns the record bits it wrote."""
        op, args = node.op, node.args
        targets = [self.qubits[h] for h in node.vqs]
        spec = OPS.get(op)
        if spec is not None and spec.kind is Exec.GATE and spec.gate is not None:
            self.gate(circuit, node, spec.gate, targets, position, bits)
            return 0
        if op in _MEASURE:
            circuit.append(_line(_MEASURE[op], targets))
            return 1
        if op == "ALLOC_LQ":
            again = [self.qubits[h] for h in node.vqs if h in self.allocated]
            self.allocated.update(node.vqs)
            if again:
                circuit.append(_line("R", again))
            return 0
        if op == "NOISE":
            if args["channel"] in ("E", "ELSE_CORRELATED_ERROR"):
                targets = [f"{p}{q}" for p, q in zip(args["paulis"], targets, strict=True)]
            circuit.append(_line(args["channel"], targets, args["p"]))
            return 0
        if op == "NOISY_MEASURE":
            padded = [str(int(args.get("bit", 0)))] if args["instruction"] == "MPAD" else targets
            circuit.append(_line(args["instruction"], padded, args["p"]))
            return 1
        bit = _constant(node) if op == "CALC" else None
        if bit is not None:
            circuit.append(f"MPAD {bit}")
            return 1
        if op in ("TICK", "QUBIT_COORDS", "SHIFT_COORDS"):
            circuit.append(_line(op, targets, args.get("coords", ())))
            return 0
        if op in ("DETECTOR", "OBSERVABLE_INCLUDE"):
            recs = [f"rec[{int(r)}]" for r in args["rec"]]
            numbers = [args["index"]] if op == "OBSERVABLE_INCLUDE" else args.get("coords", ())
            circuit.append(_line(op, recs, numbers))
            return 0
        if op in _NOTHING:
            return 0
        raise _unwritable(node, f"stim has no instruction for {op}")

    def gate(
        self,
        circuit: list[str],
        node: Node,
        gate: str,
        targets: list[str],
        position: Mapping[str, int],
        bits: int,
    ) -> None:
        name = self.names.get(gate)
        if name is None:
            name = self.name(node, gate)
        if node.guard is None:
            if name:
                circuit.append(_line(name, targets))
            return
        terms = node.guard.terms
        event = terms[0].event if len(terms) == 1 and terms[0].equals == 1 else None
        if gate not in _PAULI_CONTROL or event is None or event not in position:
            raise _unwritable(
                node, "a guard stim writes is one Pauli controlled by a record bit of its turn"
            )
        back = position[event] - bits
        circuit.append(_line(_PAULI_CONTROL[gate], [f"rec[{back}]", *targets]))

    def name(self, node: Node, gate: str) -> str:
        """``gate``'s stim name at ``node`` ("" for ``I``); an unparameterised one kept."""
        record = GATES[gate]
        if record.params:
            theta = float(node.args[record.params[0]])
            turns = theta / (math.pi / 2)
            quarter = record.names.stim_quarter
            if quarter is None or abs(turns - round(turns)) > 1e-9:
                raise _unwritable(node, f"{gate}({theta}) is not Clifford")
            name = quarter[round(turns) % 4]
        else:
            found = record.names.first("stim")
            if found is None:
                raise _unwritable(node, f"{gate} is not one of stim's gates")
            name = found
        name = "" if name == "I" else name
        if not record.params:
            self.names[gate] = name
        return name


def _line(name: str, targets: Sequence[str], args: Sequence[float] = ()) -> str:
    """One instruction as stim's text (an argument as Python writes it: stim reads back
    the same double)."""
    numbers = f"({', '.join(map(repr, args))})" if args else ""
    return " ".join((f"{name}{numbers}", *targets))


def _constant(node: Node) -> int | None:
    """The bit a constant ``CALC`` (no inputs, ``bool``, ``True``/``False``) writes."""
    args = node.args
    if node.inputs or args.get("type") != "bool" or len(node.produces) != 1:
        return None
    return {"True": 1, "False": 0}.get(args.get("expr", ""))


def _unwritable(node: Node, why: str) -> EngineError:
    return EngineError.of(
        "gate-unsupported",
        f"node {node.id!r} ({node.op}) cannot run on the stim target: {why}",
        node=node.id,
    )


__all__ = ["to_stim"]
