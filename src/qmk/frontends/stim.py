"""stim circuits into QVM graphs: ``qmk run circuit.stim``.

A ``.stim`` file (or ``stim.Circuit``, or its text) is parsed by stim itself and lowered
instruction by instruction, ``REPEAT`` blocks unrolled; the result is the measurement
record, as stim's own ``circuit.compile_sampler()`` samples it: one group, the record in
order, the first measurement leftmost.

- **Unitary gates**: every one of stim's Clifford gates. ``H S S_DAG X Y Z CX CY CZ
  SWAP`` are QVM's (or the decomposition table's); the rest through stim's own tableau
  written in ``H S CX`` (``stim.Tableau.to_circuit("elimination")``), exact up to a
  global phase, which no measurement sees. ``I`` is nothing. A Pauli controlled by a
  measurement record (``CX rec[-1] 3``, ``CZ rec[-2] 0``, ``CY``; either order for
  ``CZ``) is that Pauli guarded by the event.
- **Measurements** ``M MX MY MR MRX MRY`` (``MZ``, ``MRZ``), Pauli products ``MPP`` and
  ``MXX MYY MZZ`` (the product's parity gathered onto its last qubit by ``CX``, measured
  in Z and put back: the exact projective measurement), inverted results ``!q`` (the
  qubit flipped before and after, so the record reads the flipped result).
- **Resets** ``R RX RY`` (``RZ``): a reset, then ``H`` (``H S`` for Y).
- **Noise**, honoured exactly: ``X_ERROR Y_ERROR Z_ERROR DEPOLARIZE1 PAULI_CHANNEL_1``,
  ``E``/``CORRELATED_ERROR`` and a measurement's flip probability (``M(0.01)``) by a
  dilation: scratch qubits prepared in the square roots of the channel's probabilities
  control the Paulis and are reset, which discards them (the same channel on the
  target). ``I_ERROR``/``II_ERROR`` change nothing. A noisy circuit is not Clifford
  for the engines (the scratch qubits' rotations), so it runs on a statevector engine.
- **Annotations** ``TICK QUBIT_COORDS SHIFT_COORDS DETECTOR OBSERVABLE_INCLUDE`` change
  no measurement: skipped, as ``compile_sampler`` skips them; detectors and observables
  are not computed, which the warning ``QL114 annotation-ignored`` says.

Refused (QL104 naming the instruction): ``DEPOLARIZE2``, ``PAULI_CHANNEL_2``,
``ELSE_CORRELATED_ERROR``, the heralded channels, ``MPAD``, ``SPP``/``SPP_DAG``, sweep
bits (``sweep[k]``). A circuit stim cannot parse is QL101 with stim's message.

>>> graph = from_stim("H 0\\nCX 0 1\\nM 0 1\\n")
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from qmk.errors import one_line, warning
from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS, ProgramBuilder, guard_of
from qmk.frontends.errors import FrontendError
from qmk.gates import GATES
from qmk.qvm.graph import Graph

#: stim's gates that are QVM's (or the decomposition table's) own, by stim's name: the
#: stim names of the op table's gate records, and ``CY``.
NAMED = {
    **{name: gate for gate in GATE_OPS for name in GATES[gate].names.of("stim")},
    "CY": "cy",
}
#: The Pauli a measurement record controls, by stim's controlled-gate name.
_FEEDBACK = {"CX": "x", "CY": "y", "CZ": "z"}
#: Measurements: their basis, and whether they reset the qubit after.
_MEASURES = {
    "M": ("Z", False),
    "MX": ("X", False),
    "MY": ("Y", False),
    "MR": ("Z", True),
    "MRX": ("X", True),
    "MRY": ("Y", True),
}
_PARITY = {"MXX": "X", "MYY": "Y", "MZZ": "Z"}
_RESETS = {"R": "Z", "RX": "X", "RY": "Y"}
#: One-qubit Pauli channels: (px, py, pz) from the instruction's arguments.
_CHANNELS = {
    "X_ERROR": lambda a: (a[0], 0.0, 0.0),
    "Y_ERROR": lambda a: (0.0, a[0], 0.0),
    "Z_ERROR": lambda a: (0.0, 0.0, a[0]),
    "DEPOLARIZE1": lambda a: (a[0] / 3, a[0] / 3, a[0] / 3),
    "PAULI_CHANNEL_1": lambda a: (a[0], a[1], a[2]),
}
_ANNOTATIONS = frozenset({"TICK", "QUBIT_COORDS", "SHIFT_COORDS", "DETECTOR", "OBSERVABLE_INCLUDE"})
_NOTHING = frozenset({"I", "II", "I_ERROR", "II_ERROR"})
#: The basis change that reads a Pauli in Z, and its undoing.
_TO_Z = {"X": ("h",), "Y": ("sdg", "h"), "Z": ()}
_FROM_Z = {"X": ("h",), "Y": ("h", "s"), "Z": ()}
#: The Pauli that flips a measurement's result in each basis (anticommutes with it).
_FLIP = {"X": "z", "Y": "x", "Z": "x"}


def from_stim(
    circuit: Any,
    *,
    profile: str | None = None,
    name: str = "stim",
    max_nodes: int | None = None,
) -> Graph:
    """Lower a stim circuit: a ``stim.Circuit`` or its text.

    Args:
        circuit: the circuit.
        profile: the code profile of the qubits (None: the runner's default).
        name: the name used in errors and ``metadata.source``.
        max_nodes: refuse a circuit whose ``REPEAT`` blocks unroll past this many nodes
            (None: no cap).

    Raises:
        FrontendError: text stim cannot parse (QL101), an instruction QMK does not
            lower (QL104), a circuit past ``max_nodes`` (QL110).
    """
    try:
        import stim
    except ImportError:  # pragma: no cover - stim is a dependency
        raise FrontendError.of("missing-extra", "from_stim needs stim: pip install stim") from None
    if isinstance(circuit, str):
        try:
            circuit = stim.Circuit(circuit)
        except ValueError as exc:
            raise FrontendError.of("syntax", f"{name}: {one_line(exc)}", source=name) from None
    if not isinstance(circuit, stim.Circuit):
        raise FrontendError.of(
            "bad-value", f"from_stim takes a stim.Circuit or its text, got {type(circuit).__name__}"
        )
    return _Lowerer(circuit, profile=profile, name=name, max_nodes=max_nodes).run()


class _Lowerer:
    def __init__(
        self, circuit: Any, *, profile: str | None, name: str, max_nodes: int | None
    ) -> None:
        self.circuit = circuit
        self.name = name
        self.max_nodes = max_nodes
        self.builder = ProgramBuilder(profile=profile, source=name, description=name)
        self.qubits = self.builder.allocate(circuit.num_qubits) if circuit.num_qubits else []
        self.scratch: list[str] = []
        self.record: list[str] = []
        self.ignored: dict[str, int] = {}
        self.where = name

    def error(self, kind: str, message: str) -> FrontendError:
        return FrontendError.of(kind, f"{self.where}: {message}", source=self.name)

    def run(self) -> Graph:
        for index, instruction in _walk(self.circuit, ()):
            self.where = f"{self.name}#{'.'.join(map(str, index))} [{instruction}]"
            self.instruction(instruction)
            if self.max_nodes is not None and len(self.builder.nodes) > self.max_nodes:
                raise self.error(
                    "loop-cap", f"the circuit unrolls past {self.max_nodes} nodes (max_nodes)"
                )
        metadata: dict[str, Any] = {"language": "stim"}
        if self.ignored:
            listed = ", ".join(f"{n} {k}" for k, n in sorted(self.ignored.items()))
            metadata["warnings"] = [
                warning(
                    FrontendError,
                    "annotation-ignored",
                    f"{listed}: QMK samples the measurement record, as stim's "
                    "compile_sampler does; detectors and observables are not computed",
                )
            ]
        return self.builder.build(output=[self.record], separator="", metadata=metadata)

    # ------------------------------------------------------------------ instructions

    def instruction(self, instruction: Any) -> None:
        import stim

        name = stim.gate_data(instruction.name).name  # aliases (CNOT, MZ, RZ) canonical
        args = instruction.gate_args_copy()
        targets = instruction.targets_copy()
        if name in _ANNOTATIONS:
            if name in ("DETECTOR", "OBSERVABLE_INCLUDE"):
                self.ignored[name] = self.ignored.get(name, 0) + 1
        elif name in _NOTHING:
            return
        elif any(t.is_sweep_bit_target for t in targets):
            raise self.error("unsupported", "sweep bits (sweep[k]) are not supported by QMK")
        elif name in _MEASURES:
            basis, reset = _MEASURES[name]
            for target in targets:
                self.measure(target, basis, args, reset=reset)
        elif name in _RESETS:
            for target in targets:
                self.reset(self.qubits[target.value], _RESETS[name])
        elif name == "MPP" or name in _PARITY:
            for product in _products(targets, _PARITY.get(name)):
                self.parity(product, args)
        elif name in _CHANNELS:
            px, py, pz = _CHANNELS[name](args)
            for target in targets:
                self.pauli_channel(self.qubits[target.value], px, py, pz)
        elif name == "E":
            self.correlated(targets, args[0])
        elif stim.gate_data(name).is_unitary and not stim.gate_data(name).takes_pauli_targets:
            self.unitary(name, targets)
        else:
            raise self.error("unsupported", f"{name} is not supported by QMK")

    def unitary(self, name: str, targets: Sequence[Any]) -> None:
        import stim

        arity = 2 if stim.gate_data(name).is_two_qubit_gate else 1
        for k in range(0, len(targets), arity):
            group = targets[k : k + arity]
            records = [t for t in group if t.is_measurement_record_target]
            if records:
                self.feedback(name, group)
                continue
            qubits = [self.qubits[t.value] for t in group]
            for gate, local in _gates(name):
                self.builder.gate(gate, [qubits[q] for q in local], where=self.where)

    def feedback(self, name: str, group: Sequence[Any]) -> None:
        """A Pauli on a qubit, controlled by a measurement record."""
        record = [t for t in group if t.is_measurement_record_target]
        qubit = [t for t in group if t.is_qubit_target]
        order_ok = group[0].is_measurement_record_target or name == "CZ"
        if name not in _FEEDBACK or len(record) != 1 or len(qubit) != 1 or not order_ok:
            raise self.error(
                "unsupported", f"{name} with measurement records as {group} is not supported"
            )
        event = self.event(record[0].value)
        guard = guard_of([(event, 1)])
        self.builder.gate(
            _FEEDBACK[name], [self.qubits[qubit[0].value]], guard=guard, where=self.where
        )

    def event(self, lookback: int) -> str:
        """The event of ``rec[lookback]`` (negative: counted from the latest)."""
        if -lookback > len(self.record):
            raise self.error("bad-value", f"rec[{lookback}] reaches before the first measurement")
        return self.record[lookback]

    def measure(self, target: Any, basis: str, args: Sequence[float], *, reset: bool) -> None:
        qubit = self.qubits[target.value]
        flip = _FLIP[basis]
        if target.is_inverted_result_target:
            self.builder.gate(flip, [qubit], where=self.where)
        event = self.noisy_measure(qubit, basis, args)
        if target.is_inverted_result_target:
            self.builder.gate(flip, [qubit], where=self.where)
        self.record.append(event)
        if reset:
            self.reset(qubit, basis)

    def noisy_measure(self, qubit: str, basis: str, args: Sequence[float]) -> str:
        """Measure ``qubit`` in ``basis``; with a flip probability, its result flipped
        with that probability and its state not (a scratch qubit flips it before and
        after the measurement)."""
        p = float(args[0]) if args else 0.0
        if p <= 0:
            return self.builder.measure(qubit, basis=basis, where=self.where)
        (coin,) = self.take(1)
        self.builder.gate("ry", [coin], [_angle(p)], where=self.where)
        controlled = {"x": "cx", "z": "cz"}[_FLIP[basis]]
        self.builder.gate(controlled, [coin, qubit], where=self.where)
        event = self.builder.measure(qubit, basis=basis, where=self.where)
        self.builder.gate(controlled, [coin, qubit], where=self.where)
        self.builder.reset(coin, where=self.where)
        return event

    def reset(self, qubit: str, basis: str) -> None:
        self.builder.reset(qubit, where=self.where)
        for gate in _FROM_Z[basis]:
            self.builder.gate(gate, [qubit], where=self.where)

    def parity(self, product: Sequence[tuple[str, int, bool]], args: Sequence[float]) -> None:
        """Measure a Pauli product: each factor turned to Z, the parity gathered onto the
        last qubit by CX, measured, and everything put back."""
        qubits = [self.qubits[q] for _, q, _ in product]
        if len(set(qubits)) != len(qubits):
            raise self.error("unsupported", "a Pauli product acting twice on one qubit")
        inverted = sum(inv for _, _, inv in product) % 2 == 1
        for (pauli, _, _), qubit in zip(product, qubits, strict=True):
            for gate in _TO_Z[pauli]:
                self.builder.gate(gate, [qubit], where=self.where)
        last = qubits[-1]
        for qubit in qubits[:-1]:
            self.builder.gate("cx", [qubit, last], where=self.where)
        if inverted:
            self.builder.gate("x", [last], where=self.where)
        self.record.append(self.noisy_measure(last, "Z", args))
        if inverted:
            self.builder.gate("x", [last], where=self.where)
        for qubit in reversed(qubits[:-1]):
            self.builder.gate("cx", [qubit, last], where=self.where)
        for (pauli, _, _), qubit in zip(product, qubits, strict=True):
            for gate in _FROM_Z[pauli]:
                self.builder.gate(gate, [qubit], where=self.where)

    # ------------------------------------------------------------------ noise

    def take(self, count: int) -> list[str]:
        """``count`` scratch qubits in |0> (allocated once, reset after each use)."""
        if len(self.scratch) < count:
            self.scratch += self.builder.allocate(count - len(self.scratch), where=self.where)
        return self.scratch[:count]

    def pauli_channel(self, qubit: str, px: float, py: float, pz: float) -> None:
        """X, Y, Z on ``qubit`` with probabilities ``px, py, pz``: scratch qubits ``a``
        (controls X) and ``b`` (controls Z) in ``sqrt(1-px-py-pz)|00> + sqrt(px)|10> +
        sqrt(pz)|01> + sqrt(py)|11>`` (XZ is Y up to a phase), then reset."""
        if not 0 <= px + py + pz <= 1 or min(px, py, pz) < 0:
            raise self.error("bad-value", f"probabilities {px}, {py}, {pz} are not a channel")
        if px + py + pz == 0:
            return
        if py == 0 and (px == 0 or pz == 0):  # one Pauli: one scratch qubit
            pauli, p = ("cx", px) if px else ("cz", pz)
            (a,) = self.take(1)
            self.builder.gate("ry", [a], [_angle(p)], where=self.where)
            self.builder.gate(pauli, [a, qubit], where=self.where)
            self.builder.reset(a, where=self.where)
            return
        a, b = self.take(2)
        on_a = px + py
        self.builder.gate("ry", [a], [_angle(on_a)], where=self.where)
        # b's rotation given a: P(b=1 | a=0) = pz / (1 - on_a), P(b=1 | a=1) = py / on_a
        rest = _angle(pz / (1 - on_a)) if on_a < 1 else 0.0
        given = _angle(py / on_a) if on_a > 0 else 0.0
        self.builder.gate("ry", [b], [rest], where=self.where)
        self.lowered("cry", [a, b], [given - rest])
        self.builder.gate("cx", [a, qubit], where=self.where)
        self.builder.gate("cz", [b, qubit], where=self.where)
        self.builder.reset(a, where=self.where)
        self.builder.reset(b, where=self.where)

    def correlated(self, targets: Sequence[Any], p: float) -> None:
        """``E(p) X1 Y2 ...``: the Pauli product with probability ``p``."""
        (a,) = self.take(1)
        self.builder.gate("ry", [a], [_angle(p)], where=self.where)
        for target in targets:
            pauli = "x" if target.is_x_target else "y" if target.is_y_target else "z"
            controlled = {"x": "cx", "y": "cy", "z": "cz"}[pauli]
            self.lowered(controlled, [a, self.qubits[target.value]])
        self.builder.reset(a, where=self.where)

    def lowered(self, gate: str, qubits: Sequence[str], params: Sequence[float] = ()) -> None:
        """A gate of the decomposition table on ``qubits``, as QVM gates."""
        for name, local, args in decompose.lower_gate(gate, tuple(params)).ops:
            self.builder.gate(name, [qubits[q] for q in local], args, where=self.where)


def _walk(circuit: Any, prefix: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], Any]]:
    """Every instruction of ``circuit`` in order, ``REPEAT`` blocks unrolled, with its
    position (``k`` at the top, ``k.i.j`` for instruction ``j`` of repetition ``i``)."""
    import stim

    for k, item in enumerate(circuit):
        if isinstance(item, stim.CircuitRepeatBlock):
            for i in range(item.repeat_count):
                yield from _walk(item.body_copy(), (*prefix, k, i))
        else:
            yield (*prefix, k), item


def _products(targets: Sequence[Any], pauli: str | None) -> list[list[tuple[str, int, bool]]]:
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
def _gates(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Gate ``name`` as QVM gates on its local qubits, up to a global phase."""
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


def _angle(p: float) -> float:
    """The ``ry`` angle that puts |1> at probability ``p``."""
    return 2 * math.asin(math.sqrt(min(max(p, 0.0), 1.0)))


__all__ = ["NAMED", "from_stim"]
