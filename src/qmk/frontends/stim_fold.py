"""The one stim reader: stim circuits as QVM programs, kept folded.

:func:`read_folded` writes a stim circuit as a QVM graph row for row, so that the
verifier, the kernel's quotas and caps, and the stim target all read one program; the
targets that apply gates take the same program, its noise written in gates and unrolled
(:func:`qmk.frontends.stim.from_stim`). A
``REPEAT n { ... }`` block is a REPEAT row (graph version 0.3), its body read once,
however large ``n``; blocks nest. Nothing is unrolled, so stim's 10^7-round memory
experiment is a few hundred rows.

- **Qubits**: ``q0 .. q{n-1}``, every qubit the circuit names, allocated first and
  freed last (so a body's handle use is balanced), at most 1024 a row.
- **Gates**: stim's gates that are gate records of QVM ops (``H S S_DAG X Y Z CX CZ
  SWAP``) are those ops; ``SQRT_X SQRT_Y`` and their daggers are ``APPLY_RX``/``APPLY_RY``
  at a quarter turn (their records' ``stim_quarter`` names); the other Clifford gates
  are written in ``H S CX`` by stim's own tableau (exact up to a global phase). ``I``
  and ``II`` (identities) are no row. A Pauli controlled by a record bit of the same
  turn (``CX rec[-1] 3``) is that Pauli guarded by its event. A block whose record bits
  reach an earlier turn, or before the block, to control a gate (``REPEAT 5 { CX rec[-1]
  0  M 0 }``) is written unrolled, its rows held to ``max_rows`` before they are read
  (an event is read in the turn that measures it, QV702); the blocks around it stay
  folded where they can.
- **Measurements and resets**: ``M MX MY MR MRX MRY R RX RY`` (and ``MPP MXX MYY
  MZZ``, ``SPP SPP_DAG``, gathered onto one qubit by CX), each record bit one
  ``MEASURE_*`` row, in record order; an inverted result ``!q`` is the qubit flipped
  before and after. A noisy one (``M(0.01)``, ``MR(0.01)``) and a heralded channel's
  herald are a ``NOISY_MEASURE`` row of the instruction; ``MPAD``'s bit a constant
  ``CALC`` (``MPAD(p)``'s a ``NOISY_MEASURE`` row of no qubit).
- **Noise**: each channel a ``NOISE`` row per target group (its ``channel``, its
  probabilities ``p``, for ``E`` its Pauli product). ``NOISE`` and ``NOISY_MEASURE``
  run on the stim target only.
- **Annotations**: ``TICK QUBIT_COORDS SHIFT_COORDS DETECTOR OBSERVABLE_INCLUDE`` rows of
  their own names; a detector's and an observable's record bits are stim's offsets
  (``rec: [-1, -9]``), which reach across a REPEAT row's turns as stim's do.
- A gate controlled by a sweep bit is no row: the stim target's samplers take every
  sweep bit 0 (they are given no sweep data).

Refused, ``QL104`` naming the instruction: an observable of Pauli targets, and a record
bit (of a gate or a detector) that reaches before the record's start. Text stim cannot
parse is ``QL101``; blocks written unrolled past ``max_rows`` are ``QS1006``.

>>> graph = read_folded("R 0\\nREPEAT 1000 {\\n  H 0\\n  M 0\\n  DETECTOR rec[-1]\\n}")
>>> [n.op for n in graph.nodes], graph.version
(['ALLOC_LQ', 'RESET', 'REPEAT', 'FREE_LQ'], '0.3')
>>> [n.op for n in graph.nodes[2].body], graph.nodes[2].body[2].args
(['APPLY_H', 'MEASURE_Z', 'DETECTOR'], {'rec': [-1]})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from typing import Any

import msgspec

from qmk.errors import one_line
from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS, MEASURE_OPS, guard_of
from qmk.frontends.errors import FrontendError, too_many_nodes
from qmk.gates import GATES
from qmk.qvm.graph import CURRENT_VERSION, FOLDED_VERSION, REPEAT, Graph, Node, Resources
from qmk.qvm.limits import DEFAULT_MAX_NODES
from qmk.qvm.ops import NOISE_CHANNELS

#: stim's gates that are QVM's (or the decomposition table's) own, by stim's name: the
#: stim names of the op table's gate records, and ``CY``.
NAMED = {
    **{name: gate for gate in GATE_OPS for name in GATES[gate].names.of("stim")},
    "CY": "cy",
}
#: The Pauli a measurement record controls, by stim's controlled-gate name.
FEEDBACK = {"CX": "x", "CY": "y", "CZ": "z"}
#: Measurements: their basis, and whether they reset the qubit after.
MEASURES = {
    "M": ("Z", False),
    "MX": ("X", False),
    "MY": ("Y", False),
    "MR": ("Z", True),
    "MRX": ("X", True),
    "MRY": ("Y", True),
}
#: The measurement of each basis that does not reset (an inverted noisy ``MR``'s).
_UNRESET = {"Z": "M", "X": "MX", "Y": "MY"}
PARITY = {"MXX": "X", "MYY": "Y", "MZZ": "Z"}
RESETS = {"R": "Z", "RX": "X", "RY": "Y"}
#: The basis change that reads a Pauli in Z, and its undoing.
TO_Z = {"X": ("h",), "Y": ("sdg", "h"), "Z": ()}
FROM_Z = {"X": ("h",), "Y": ("h", "s"), "Z": ()}
#: The Pauli that flips a measurement's result in each basis (anticommutes with it).
FLIP = {"X": "z", "Y": "x", "Z": "x"}
_TWO_QUBIT_NOISE = frozenset({"DEPOLARIZE2", "PAULI_CHANNEL_2", "II_ERROR"})
_ANNOTATIONS = frozenset({"TICK", "QUBIT_COORDS", "SHIFT_COORDS"})


@cache
def _quarter_turns() -> dict[str, tuple[str, float]]:
    """stim's quarter-turn gates that are no op's own (``SQRT_X``...), as the rotation
    op's gate and angle: the gate records' ``stim_quarter`` names."""
    out: dict[str, tuple[str, float]] = {}
    for gate in GATE_OPS:
        quarter = GATES[gate].names.stim_quarter
        for k, name in enumerate(quarter or ()):
            if k and name not in NAMED and name not in out:
                out[name] = (gate, (k if k < 3 else -1) * math.pi / 2)
    return out


def read_folded(
    circuit: Any,
    *,
    name: str = "stim",
    profile: str | None = None,
    max_rows: int | None = DEFAULT_MAX_NODES,
) -> Graph:
    """A stim circuit (a ``stim.Circuit`` or its text) as a QVM graph, REPEAT blocks
    kept folded (module docstring); ``max_rows`` caps the rows of blocks written
    unrolled (None: no cap).

    Raises:
        FrontendError: ``QL101`` text stim cannot parse; ``QL104`` an instruction with
            no QVM form, naming it and where it is.
        QuotaError: blocks written unrolled past ``max_rows``, refused before they are.
    """
    parsed = read_circuit(circuit, name=name)
    return _Reader(parsed, name=name, profile=profile, max_rows=max_rows).run()


def read_circuit(circuit: Any, *, name: str = "stim") -> Any:
    """A ``stim.Circuit`` from itself or its text, parsed by stim.

    Raises:
        FrontendError: text stim cannot parse (QL101, with stim's message), a value that
            is neither (QL107).

    >>> read_circuit("H 0\\nM 0").num_measurements
    1
    """
    try:
        import stim
    except ImportError:  # pragma: no cover - stim is a dependency
        raise FrontendError.of("missing-extra", "QMK needs stim: pip install stim") from None
    if isinstance(circuit, str):
        try:
            return stim.Circuit(circuit)
        except ValueError as exc:
            raise FrontendError.of("syntax", f"{name}: {one_line(exc)}", source=name) from None
    if not isinstance(circuit, stim.Circuit):
        raise FrontendError.of(
            "bad-value",
            f"a stim circuit is a stim.Circuit or its text, not {type(circuit).__name__}",
        )
    return circuit


class _Reach(Exception):
    """A record bit out of the rows' reach (:meth:`_Reader.feedback`), and its refusal
    should no folded block be left to unroll."""

    def __init__(self, error: FrontendError) -> None:
        self.error = error


class _Reader:
    """One stim circuit read into rows (:func:`read_folded`)."""

    def __init__(
        self, circuit: Any, *, name: str, profile: str | None, max_rows: int | None
    ) -> None:
        self.circuit = circuit
        self.name = name
        self.profile = profile
        self.max_rows = max_rows
        self.qubits = tuple(f"q{k}" for k in range(circuit.num_qubits))
        self.events: list[str] = []
        self.count = 0
        self.where = name
        #: Record bits measured so far, at turn 0 of every block around (for the
        #: detectors' reach), and the events a gate may read here (feedback): those of
        #: this turn since the last block kept folded.
        self.measured = 0
        self.turn: list[str] = []

    def error(self, message: str) -> FrontendError:
        return FrontendError.of("unsupported", f"{self.where}: {message}", source=self.name)

    def node(self, op: str, **fields: Any) -> Node:
        self.count += 1
        return Node(id=f"n{self.count}", op=op, **fields)

    def run(self) -> Graph:
        rows: list[Node] = []
        for chunk in _chunks(self.qubits):
            args: dict[str, Any] = {"n": len(chunk)}
            if self.profile is not None:
                args["profile"] = self.profile
            rows.append(self.node("ALLOC_LQ", vqs=chunk, args=args))
        try:
            body = self.rows(self.circuit, ())
        except _Reach as reach:  # no block is left folded: before the record
            raise reach.error from None
        folded = any(row.op == REPEAT for row in body)
        rows.extend(body)
        rows.extend(self.node("FREE_LQ", vqs=chunk) for chunk in _chunks(self.qubits))
        return Graph(
            version=FOLDED_VERSION if folded else CURRENT_VERSION,
            nodes=tuple(rows),
            resources=Resources(vqs=self.qubits, events=tuple(self.events)),
            caps=("CAP_ALLOC",) if self.qubits else (),
            description=self.name,
            metadata={"language": "stim", "source": self.name},
        )

    def rows(self, circuit: Any, path: tuple[int, ...]) -> list[Node]:
        """The rows of ``circuit``'s items. A record bit out of reach (:class:`_Reach`)
        is brought in by reading the last block kept folded here unrolled, from there on
        (a block whose own turn reaches out: itself)."""
        import stim

        items, k = list(circuit), 0
        out: list[Node] = []
        unrolled: set[int] = set()
        folded: list[tuple[int, int, tuple[Any, ...]]] = []  # (item, rows before, mark)
        while k < len(items):
            item = items[k]
            self.where = f"{self.name}#{'.'.join(map(str, (*path, k)))}"
            try:
                if not isinstance(item, stim.CircuitRepeatBlock):
                    self.where += f" [{item}]"
                    out.extend(self.instruction(item))
                elif k in unrolled:
                    out.extend(self.unrolled(item, (*path, k)))
                else:
                    folded.append((k, len(out), self.mark()))
                    self.turn, before = [], self.measured
                    body = self.rows(item.body_copy(), (*path, k))
                    self.turn = []  # a turn's events stay in it (QV702)
                    self.measured += (item.repeat_count - 1) * (self.measured - before)
                    if body:
                        count = {"count": item.repeat_count}
                        out.append(self.node(REPEAT, args=count, body=tuple(body)))
            except _Reach:
                if not folded:
                    raise
                k, size, mark = folded.pop()
                self.count, events, self.measured, self.turn, turn = mark
                del out[size:], self.events[events:], self.turn[turn:]
                unrolled.add(k)
                continue
            k += 1
        return out

    def mark(self) -> tuple[Any, ...]:
        """What :meth:`rows` restores to read a block again, unrolled."""
        return self.count, len(self.events), self.measured, self.turn, len(self.turn)

    def unrolled(self, block: Any, path: tuple[int, ...]) -> list[Node]:
        """A block whose record bits reach an earlier turn, or before it, to control a
        gate, which QVM reads only in the turn that measures it: its turns read one
        after another in the rows around it. Its rows are held to ``max_rows`` (the
        verifier's ``max_nodes``) from its first turn's, before the others are read.

        Raises:
            QuotaError: past ``max_rows``; nothing more is read.
        """
        start = self.count
        out = self.rows(block.body_copy(), path)
        needed = start + block.repeat_count * (self.count - start)
        if self.max_rows is not None and needed > self.max_rows:
            where = ".".join(map(str, path))
            what = f"#{where} REPEAT {block.repeat_count}, unrolled (its record bits reach back)"
            raise too_many_nodes(self.name, what, needed, self.max_rows)
        for _ in range(block.repeat_count - 1):
            out += self.rows(block.body_copy(), path)
        return out

    # ------------------------------------------------------------------ instructions

    def instruction(self, instruction: Any) -> list[Node]:
        import stim

        data = stim.gate_data(instruction.name)
        name = data.name  # aliases (CNOT, MZ, RZ) canonical
        args = list(instruction.gate_args_copy())
        targets = instruction.targets_copy()
        if name in MEASURES:
            basis, reset = MEASURES[name]
            noisy = (name, args) if any(args) else None
            return [n for t in targets for n in self.measure(t, basis, reset, noisy)]
        if name in RESETS:
            return [n for t in targets for n in self.reset(self.qubits[t.value], RESETS[name])]
        if name == "MPP" or name in PARITY:
            noisy = ("M", args) if any(args) else None
            products = pauli_products(targets, PARITY.get(name))
            return [n for p in products for n in self.parity(p, noisy)]
        if name.startswith("HERALDED_"):  # a herald bit a qubit
            return [self.noisy_row(self.qubits[t.value], (name, args)) for t in targets]
        if name == "MPAD":
            return [self.pad(t.value, args) for t in targets]
        if name in ("SPP", "SPP_DAG"):
            dagger = name == "SPP_DAG"
            return [n for p in pauli_products(targets, None) for n in self.phase(p, dagger)]
        if name in NOISE_CHANNELS:
            return self.noise(name, args, targets)
        if name in _ANNOTATIONS:
            return self.annotation(name, args, targets)
        if name in ("DETECTOR", "OBSERVABLE_INCLUDE"):
            return [self.detector(name, args, targets)]
        if name in ("I", "II"):  # the identity: no row
            return []
        if data.is_unitary and not data.takes_pauli_targets:
            return self.unitary(name, targets)
        raise self.error(f"{name} has no QVM form yet (the stim target reads it as QVM)")

    def gate(self, gate: str, qubits: Sequence[str], params: Sequence[float] = ()) -> Node:
        op = GATE_OPS[gate]
        names = GATES[gate].params
        return self.node(op, vqs=tuple(qubits), args=dict(zip(names, params, strict=True)))

    def measure(
        self, target: Any, basis: str, reset: bool, noisy: tuple[str, list[float]] | None
    ) -> list[Node]:
        """One record bit of ``M``... (``MR``...: the qubit reset after). A noisy one
        (``M(p)``) is one ``NOISY_MEASURE`` row of the instruction, reset included."""
        qubit = self.qubits[target.value]
        inverted = target.is_inverted_result_target

        def flip() -> list[Node]:
            return [self.gate(FLIP[basis], [qubit])] if inverted else []

        if noisy is not None and not (inverted and reset):
            return [*flip(), self.noisy_row(qubit, noisy), *flip()]
        if noisy is not None:  # flipped back before the reset, so the reset leaves |0>
            row = self.noisy_row(qubit, (_UNRESET[basis], noisy[1]))
            return [*flip(), row, *flip(), *self.reset(qubit, basis)]
        out = [*flip(), self.measured_row(qubit, basis), *flip()]
        if reset:
            out += self.reset(qubit, basis)
        return out

    def noisy_row(self, qubit: str, noisy: tuple[str, list[float]]) -> Node:
        """The ``NOISY_MEASURE`` row of one noisy record bit of ``qubit``."""
        instruction, args = noisy
        event = self.record_bit()
        return self.node(
            "NOISY_MEASURE",
            vqs=(qubit,),
            produces=(event,),
            args={"instruction": instruction, "p": list(args)},
        )

    def pad(self, bit: int, args: Sequence[float]) -> Node:
        """``MPAD``: a record bit that is ``bit``, a constant (``CALC``); flipped with a
        probability (``MPAD(p)``), a ``NOISY_MEASURE`` row of no qubit."""
        if any(args):
            event = self.record_bit()
            found = {"instruction": "MPAD", "p": list(args), "bit": bit}
            return self.node("NOISY_MEASURE", produces=(event,), args=found)
        event = self.record_bit()
        expr = "True" if bit else "False"
        return self.node("CALC", produces=(event,), args={"type": "bool", "expr": expr})

    def record_bit(self) -> str:
        """The event of the record's next bit."""
        event = f"m{len(self.events)}"
        self.events.append(event)
        self.turn.append(event)
        self.measured += 1
        return event

    def measured_row(self, qubit: str, basis: str) -> Node:
        """The ``MEASURE_*`` row of one record bit."""
        return self.node(MEASURE_OPS[basis], vqs=(qubit,), produces=(self.record_bit(),))

    def reset(self, qubit: str, basis: str) -> list[Node]:
        return [self.node("RESET", vqs=(qubit,)), *(self.gate(g, [qubit]) for g in FROM_Z[basis])]

    def parity(
        self, product: Sequence[tuple[str, int, bool]], noisy: tuple[str, list[float]] | None
    ) -> list[Node]:
        """A Pauli product measured: its parity gathered onto its last qubit's Z
        (:func:`product_ops`); its first row names the product (``metadata.product``),
        by which the stim target writes the rows as ``MPP`` again."""
        factors = self.factors(product)
        measure = "MEASURE_Z" if noisy is None else "NOISY_MEASURE"
        rows: list[Node] = []
        for op, vqs in product_ops(factors, parity_middle(factors, measure)):
            if op == "MEASURE_Z":
                rows.append(self.measured_row(vqs[0], "Z"))
            elif op == "NOISY_MEASURE":
                assert noisy is not None
                rows.append(self.noisy_row(vqs[0], ("M", noisy[1])))
            else:
                rows.append(self.node(op, vqs=vqs))
        named = {"product": [list(factor) for factor in factors]}
        rows[0] = msgspec.structs.replace(rows[0], metadata=named)
        return rows

    def phase(self, product: Sequence[tuple[str, int, bool]], dagger: bool) -> list[Node]:
        """``SPP`` (``SPP_DAG``): S (S_DAG) on the product's gathered parity."""
        factors = self.factors(product)
        inverted = sum(inv for _, _, inv in factors) % 2 == 1
        middle = [GATE_OPS["sdg" if dagger != inverted else "s"]]
        return [self.node(op, vqs=vqs) for op, vqs in product_ops(factors, middle)]

    def factors(self, product: Sequence[tuple[str, int, bool]]) -> list[tuple[str, str, bool]]:
        """A product's factors on QVM's qubits."""
        factors = [(pauli, self.qubits[q], inverted) for pauli, q, inverted in product]
        if len({q for _, q, _ in factors}) != len(factors):
            raise self.error("a Pauli product acting twice on one qubit")
        return factors

    def unitary(self, name: str, targets: Sequence[Any]) -> list[Node]:
        """A unitary gate on each of its target groups; a Pauli controlled by a record bit
        of this turn is that Pauli guarded by its event."""
        import stim

        arity = 2 if stim.gate_data(name).is_two_qubit_gate else 1
        out: list[Node] = []
        for k in range(0, len(targets), arity):
            group = targets[k : k + arity]
            if any(t.is_sweep_bit_target for t in group):
                continue  # a sweep bit is 0: the stim target's samplers get no sweep data
            if any(t.is_measurement_record_target for t in group):
                out.append(self.feedback(name, group))
                continue
            qubits = [self.qubits[t.value] for t in group]
            if name in _quarter_turns():
                gate, angle = _quarter_turns()[name]
                out.append(self.gate(gate, qubits, [angle]))
                continue
            out += [
                self.gate(gate, [qubits[q] for q in local]) for gate, local in clifford_steps(name)
            ]
        return out

    def feedback(self, name: str, group: Sequence[Any]) -> Node:
        record = [t for t in group if t.is_measurement_record_target]
        qubits = [t for t in group if not t.is_measurement_record_target]
        if name not in FEEDBACK or len(record) != 1 or len(qubits) != 1:
            raise self.error("a gate controlled by record bits has no QVM form but a Pauli's")
        if name != "CZ" and group[0] is not record[0]:
            raise self.error("a record bit is a gate's control, not its target")
        back = -record[0].value
        if back > len(self.turn):
            raise _Reach(self.error(f"rec[-{back}] reaches before the record's start"))
        event = self.turn[-back]
        pauli = FEEDBACK[name]
        row = self.gate(pauli, [self.qubits[qubits[0].value]])
        return msgspec.structs.replace(row, guard=guard_of([(event, 1)]))

    def noise(self, name: str, args: list[float], targets: Sequence[Any]) -> list[Node]:
        """A ``NOISE`` row a target group (a pair for two-qubit channels, the whole
        product for ``E``)."""
        if name in ("E", "ELSE_CORRELATED_ERROR"):
            paulis = "".join(
                "X" if t.is_x_target else "Y" if t.is_y_target else "Z" for t in targets
            )
            qubits = tuple(self.qubits[t.value] for t in targets)
            if len(set(qubits)) != len(qubits):
                raise self.error("a Pauli product acting twice on one qubit")
            return [
                self.node("NOISE", vqs=qubits, args={"channel": name, "p": args, "paulis": paulis})
            ]
        size = 2 if name in _TWO_QUBIT_NOISE else 1
        return [
            self.node(
                "NOISE",
                vqs=tuple(self.qubits[t.value] for t in targets[k : k + size]),
                args={"channel": name, "p": list(args)},
            )
            for k in range(0, len(targets), size)
        ]

    def annotation(self, name: str, args: list[float], targets: Sequence[Any]) -> list[Node]:
        if name == "TICK":
            return [self.node("TICK")]
        if name == "SHIFT_COORDS":
            return [self.node("SHIFT_COORDS", args={"coords": args})]
        qubits = tuple(self.qubits[t.value] for t in targets)
        return [self.node("QUBIT_COORDS", vqs=c, args={"coords": args}) for c in _chunks(qubits)]

    def detector(self, name: str, args: list[float], targets: Sequence[Any]) -> Node:
        if any(not t.is_measurement_record_target for t in targets):
            raise self.error(f"{name} of Pauli targets has no QVM form yet")
        rec = [t.value for t in targets]
        if rec and -min(rec) > self.measured:
            raise self.error(
                f"rec[{min(rec)}] reaches before the record's start ({self.measured} bits)"
            )
        if name == "DETECTOR":
            found: dict[str, Any] = {"rec": rec}
            if args:
                found["coords"] = args
            return self.node("DETECTOR", args=found)
        return self.node("OBSERVABLE_INCLUDE", args={"index": int(args[0]), "rec": rec})


#: Most qubits one row names (a row's operands are bounded: Limits.max_operands).
_CHUNK = 1024


def _chunks(qubits: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``qubits`` in rows of at most :data:`_CHUNK`."""
    return [qubits[k : k + _CHUNK] for k in range(0, len(qubits), _CHUNK)]


def parity_middle(factors: Sequence[tuple[str, str, bool]], measure: str) -> list[str]:
    """The ops a product's parity measurement applies to its last qubit: ``measure``, in
    ``APPLY_X`` when the product is inverted (an odd number of ``!`` factors)."""
    if sum(inverted for _, _, inverted in factors) % 2 == 1:
        return ["APPLY_X", measure, "APPLY_X"]
    return [measure]


def product_ops(
    factors: Sequence[tuple[str, str, bool]], middle: Sequence[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """The ``(op, qubits)`` rows of ``middle`` on a Pauli product's parity: each factor
    turned to Z, the parity gathered onto the last qubit by CX, ``middle`` there, then
    everything put back. ``factors``: ``(pauli, qubit, inverted)``.

    >>> product_ops([("X", "a", False), ("Z", "b", False)], ["MEASURE_Z"])
    [('APPLY_H', ('a',)), ('APPLY_CNOT', ('a', 'b')), ('MEASURE_Z', ('b',)), \
('APPLY_CNOT', ('a', 'b')), ('APPLY_H', ('a',))]
    """
    out: list[tuple[str, tuple[str, ...]]] = []
    for pauli, qubit, _ in factors:
        out += [(GATE_OPS[gate], (qubit,)) for gate in TO_Z[pauli]]
    last = factors[-1][1]
    out += [("APPLY_CNOT", (qubit, last)) for _, qubit, _ in factors[:-1]]
    out += [(op, (last,)) for op in middle]
    out += [("APPLY_CNOT", (qubit, last)) for _, qubit, _ in reversed(factors[:-1])]
    for pauli, qubit, _ in factors:
        out += [(GATE_OPS[gate], (qubit,)) for gate in FROM_Z[pauli]]
    return out


def pauli_products(targets: Sequence[Any], pauli: str | None) -> list[list[tuple[str, int, bool]]]:
    """The Pauli products of an ``MPP`` (``X0*Z1 Y2``), or of ``MXX``/``MYY``/``MZZ``
    (pairs of qubits in ``pauli``): ``(pauli, qubit, inverted)`` factors."""
    products: list[list[tuple[str, int, bool]]] = []
    joined = False
    for target in targets:
        if target.is_combiner:
            joined = True
            continue
        if pauli is not None:
            factor = (pauli, target.value, target.is_inverted_result_target)
            if not products or len(products[-1]) == 2:
                products.append([])
            products[-1].append(factor)
            continue
        kind = "X" if target.is_x_target else "Y" if target.is_y_target else "Z"
        factor = (kind, target.value, target.is_inverted_result_target)
        if joined:
            products[-1].append(factor)
        else:
            products.append([factor])
        joined = False
    return products


@cache
def clifford_steps(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Gate ``name`` as QVM gates on its local qubits, up to a global phase: a gate of
    :data:`NAMED` through the decomposition table, any other through stim's own tableau
    written in ``H S CX`` (``stim.Tableau.to_circuit("elimination")``)."""
    import stim

    if name in NAMED:
        low = decompose.lower_gate(NAMED[name])
        return tuple((gate, tuple(qs)) for gate, qs, _ in low.ops)
    steps = stim.Tableau.from_named_gate(name).to_circuit("elimination")
    out: list[tuple[str, tuple[int, ...]]] = []
    for step in steps:
        qubits = [t.value for t in step.targets_copy()]
        arity = 2 if step.name == "CX" else 1
        for k in range(0, len(qubits), arity):
            out.append((NAMED[step.name], tuple(qubits[k : k + arity])))
    return tuple(out)


__all__ = [
    "FLIP",
    "FROM_Z",
    "MEASURES",
    "clifford_steps",
    "parity_middle",
    "pauli_products",
    "product_ops",
    "read_circuit",
    "read_folded",
]
