"""stim circuits into QVM graphs: a stim circuit for the targets that run QVM programs.

``qmk run circuit.stim`` runs a stim circuit as stim wrote it, on stim's own samplers
(the ``stim`` target, :mod:`qmk.execution.stim_target`, which reads it with
:func:`read_circuit`). This module lowers one to QVM for the targets that run QVM
graphs (``qmk.run(..., target="logical")``, ``--lattice-surgery``, ``--device``), and for
QMK's other tools (``qmk qasm``, the verifier, the estimator). A ``.stim`` file (or
``stim.Circuit``, or its text) is parsed by stim itself and lowered instruction by
instruction, ``REPEAT`` blocks unrolled. The result is the measurement record, as stim's
own ``circuit.compile_sampler()`` samples it: one group, the record in order, the first
measurement leftmost. Every instruction of stim's table is lowered (a test walks it).

- **Unitary gates**: every one of stim's Clifford gates. ``H S S_DAG X Y Z CX CY CZ
  SWAP`` are QVM's (or the decomposition table's); the rest through stim's own tableau
  written in ``H S CX`` (``stim.Tableau.to_circuit("elimination")``), exact up to a
  global phase, which no measurement sees. ``I`` is nothing. A Pauli controlled by a
  measurement record (``CX rec[-1] 3``, ``CZ rec[-2] 0``, ``CY``; either order for
  ``CZ``) is that Pauli guarded by the event. One controlled by a sweep bit
  (``CX sweep[0] 1``) is nothing, as stim's samplers take a sweep bit given no sweep
  data (0). ``SPP``/``SPP_DAG`` phase a Pauli product's -1 eigenspace: ``S``/``S_DAG``
  on its parity, gathered as a product measurement gathers it.
- **Measurements** ``M MX MY MR MRX MRY`` (``MZ``, ``MRZ``). Pauli products ``MPP`` and
  ``MXX MYY MZZ``: the product's parity gathered onto its last qubit by ``CX``, measured
  in Z and put back (the exact projective measurement). Inverted results ``!q``: the
  qubit flipped before and after, so the record reads the flipped result. ``MPAD``: a
  record bit of its own, a scratch qubit rotated to read it.
- **Resets** ``R RX RY`` (``RZ``): a reset, then ``H`` (``H S`` for Y).
- **Noise**, honoured exactly: ``X_ERROR Y_ERROR Z_ERROR DEPOLARIZE1 PAULI_CHANNEL_1
  DEPOLARIZE2 PAULI_CHANNEL_2``, the heralded ``HERALDED_ERASE
  HERALDED_PAULI_CHANNEL_1`` (their herald a record bit), ``E``/``CORRELATED_ERROR``,
  ``ELSE_CORRELATED_ERROR`` and a measurement's flip probability (``M(0.01)``) by a
  dilation. Scratch qubits are prepared in the square roots of the channel's outcomes'
  probabilities (rotations uniformly controlled by the scratch qubits before, written
  in ``ry`` and CX). They control the Paulis and are reset, which discards them: the
  same channel on the target. An ``E`` chain keeps one scratch qubit that says whether an
  error of it struck. ``I_ERROR``/``II_ERROR`` change nothing. A noisy circuit is not
  Clifford for the engines (the scratch qubits' rotations), so it runs on a statevector
  engine, shot by shot: the stim target is the way to run one.
- **Annotations** ``TICK QUBIT_COORDS SHIFT_COORDS DETECTOR OBSERVABLE_INCLUDE`` change
  no measurement: skipped, as ``compile_sampler`` skips them; detectors and observables
  are not computed here, which the warning ``QL114 annotation-ignored`` says (the stim
  target computes them).

Refused: a Pauli product acting twice on one qubit (``MPP X0*Z0``, QL104 naming the
instruction). A circuit stim cannot parse is QL101 with stim's message.

>>> graph = from_stim("H 0\\nCX 0 1\\nM 0 1\\n")
>>> [n.op for n in graph.nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
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
PARITY = {"MXX": "X", "MYY": "Y", "MZZ": "Z"}
RESETS = {"R": "Z", "RX": "X", "RY": "Y"}
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
#: The noise channels (:meth:`_Lowerer.noise`).
_NOISE = frozenset({*_CHANNELS, *_CHANNELS_2, *_HERALDED, "E", "ELSE_CORRELATED_ERROR"})
#: A Pauli's (X part, Z part): which of the CX and CZ its dilation applies.
_PARTS = {"I": (0, 0), "X": (1, 0), "Y": (1, 1), "Z": (0, 1)}
_ANNOTATIONS = frozenset({"TICK", "QUBIT_COORDS", "SHIFT_COORDS", "DETECTOR", "OBSERVABLE_INCLUDE"})
_NOTHING = frozenset({"I", "II", "I_ERROR", "II_ERROR"})
#: The basis change that reads a Pauli in Z, and its undoing.
TO_Z = {"X": ("h",), "Y": ("sdg", "h"), "Z": ()}
FROM_Z = {"X": ("h",), "Y": ("h", "s"), "Z": ()}
#: The Pauli that flips a measurement's result in each basis (anticommutes with it).
FLIP = {"X": "z", "Y": "x", "Z": "x"}


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
    circuit = read_circuit(circuit, name=name)
    return _Lowerer(circuit, profile=profile, name=name, max_nodes=max_nodes).run()


def read_circuit(circuit: Any, *, name: str = "stim") -> Any:
    """A ``stim.Circuit`` from itself or its text, parsed by stim: what both QMK's
    lowering and the ``stim`` target (:mod:`qmk.execution.stim_target`) read.

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
        #: The scratch qubit that says whether an ``E``/``ELSE_CORRELATED_ERROR`` chain
        #: has struck yet (None: no chain is open).
        self.chain: str | None = None
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
        self.end_chain()
        metadata: dict[str, Any] = {"language": "stim"}
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
        return self.builder.build(output=[self.record], separator="", metadata=metadata)

    # ------------------------------------------------------------------ instructions

    def instruction(self, instruction: Any) -> None:
        import stim

        name = stim.gate_data(instruction.name).name  # aliases (CNOT, MZ, RZ) canonical
        args = instruction.gate_args_copy()
        targets = instruction.targets_copy()
        if name != "ELSE_CORRELATED_ERROR":
            self.end_chain()
        if name in _ANNOTATIONS:
            if name in ("DETECTOR", "OBSERVABLE_INCLUDE"):
                self.ignored[name] = self.ignored.get(name, 0) + 1
        elif name in _NOTHING:
            return
        elif name in MEASURES:
            basis, reset = MEASURES[name]
            for target in targets:
                self.measure(target, basis, args, reset=reset)
        elif name in RESETS:
            for target in targets:
                self.reset(self.qubits[target.value], RESETS[name])
        elif name == "MPP" or name in PARITY:
            for product in pauli_products(targets, PARITY.get(name)):
                self.parity(product, args)
        elif name in ("SPP", "SPP_DAG"):
            for product in pauli_products(targets, None):
                self.phase(product, dagger=name == "SPP_DAG")
        elif name == "MPAD":
            for target in targets:
                self.pad(target.value, args)
        elif name in _NOISE:
            self.noise(name, args, targets)
        elif stim.gate_data(name).is_unitary and not stim.gate_data(name).takes_pauli_targets:
            self.unitary(name, targets)
        else:  # pragma: no cover - every instruction of stim 1.16's table is lowered above
            raise self.error("unsupported", f"{name} is not supported by QMK")

    def noise(self, name: str, args: Sequence[float], targets: Sequence[Any]) -> None:
        """A noise channel of :data:`_NOISE` on its targets."""
        if name in _CHANNELS:
            px, py, pz = _CHANNELS[name](args)
            for target in targets:
                self.pauli_channel(self.qubits[target.value], px, py, pz)
        elif name in _CHANNELS_2:
            probs = _CHANNELS_2[name](args)
            for k in range(0, len(targets), 2):
                pair = [self.qubits[t.value] for t in targets[k : k + 2]]
                self.pauli_channel_2(pair, probs)
        elif name in _HERALDED:
            probs = _HERALDED[name](args)
            for target in targets:
                self.heralded(self.qubits[target.value], probs)
        elif name == "E":
            self.correlated(targets, args[0])
        else:
            self.otherwise(targets, args[0])

    def unitary(self, name: str, targets: Sequence[Any]) -> None:
        import stim

        arity = 2 if stim.gate_data(name).is_two_qubit_gate else 1
        for k in range(0, len(targets), arity):
            group = targets[k : k + arity]
            if any(t.is_sweep_bit_target for t in group):
                continue  # a sweep bit is 0, as stim's samplers take it given no sweep data
            records = [t for t in group if t.is_measurement_record_target]
            if records:
                self.feedback(name, group)
                continue
            qubits = [self.qubits[t.value] for t in group]
            for gate, local in clifford_steps(name):
                self.builder.gate(gate, [qubits[q] for q in local], where=self.where)

    def feedback(self, name: str, group: Sequence[Any]) -> None:
        """A Pauli on a qubit, controlled by a measurement record."""
        record = [t for t in group if t.is_measurement_record_target]
        qubit = [t for t in group if t.is_qubit_target]
        order_ok = group[0].is_measurement_record_target or name == "CZ"
        if name not in FEEDBACK or len(record) != 1 or len(qubit) != 1 or not order_ok:
            raise self.error(
                "unsupported", f"{name} with measurement records as {group} is not supported"
            )
        event = self.event(record[0].value)
        guard = guard_of([(event, 1)])
        self.builder.gate(
            FEEDBACK[name], [self.qubits[qubit[0].value]], guard=guard, where=self.where
        )

    def event(self, lookback: int) -> str:
        """The event of ``rec[lookback]`` (negative: counted from the latest)."""
        if -lookback > len(self.record):
            raise self.error("bad-value", f"rec[{lookback}] reaches before the first measurement")
        return self.record[lookback]

    def measure(self, target: Any, basis: str, args: Sequence[float], *, reset: bool) -> None:
        qubit = self.qubits[target.value]
        flip = FLIP[basis]
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
        controlled = {"x": "cx", "z": "cz"}[FLIP[basis]]
        self.builder.gate(controlled, [coin, qubit], where=self.where)
        event = self.builder.measure(qubit, basis=basis, where=self.where)
        self.builder.gate(controlled, [coin, qubit], where=self.where)
        self.builder.reset(coin, where=self.where)
        return event

    def reset(self, qubit: str, basis: str) -> None:
        self.builder.reset(qubit, where=self.where)
        for gate in FROM_Z[basis]:
            self.builder.gate(gate, [qubit], where=self.where)

    def parity(self, product: Sequence[tuple[str, int, bool]], args: Sequence[float]) -> None:
        """Measure a Pauli product: its parity on one qubit's Z (:meth:`gathered`),
        measured there."""

        def measure(last: str, inverted: bool) -> None:
            if inverted:
                self.builder.gate("x", [last], where=self.where)
            self.record.append(self.noisy_measure(last, "Z", args))
            if inverted:
                self.builder.gate("x", [last], where=self.where)

        self.gathered(product, measure)

    def phase(self, product: Sequence[tuple[str, int, bool]], *, dagger: bool) -> None:
        """``SPP`` (``SPP_DAG``): the -1 eigenspace of a Pauli product phased by i (-i):
        ``S`` (``S_DAG``) on its parity's qubit (:meth:`gathered`); a product inverted
        phases the +1 eigenspace, the other gate up to a global phase."""
        self.gathered(
            product,
            lambda last, inverted: self.builder.gate(
                "sdg" if dagger != inverted else "s", [last], where=self.where
            ),
        )

    def gathered(
        self, product: Sequence[tuple[str, int, bool]], middle: Callable[[str, bool], None]
    ) -> None:
        """``middle(last, inverted)`` with the product's parity on ``last``'s Z: each
        factor turned to Z, the parity gathered onto the last qubit by CX; then
        everything put back. ``inverted``: the product is negated (an odd number of
        ``!`` factors)."""
        qubits = [self.qubits[q] for _, q, _ in product]
        if len(set(qubits)) != len(qubits):
            raise self.error("unsupported", "a Pauli product acting twice on one qubit")
        inverted = sum(inv for _, _, inv in product) % 2 == 1
        for (pauli, _, _), qubit in zip(product, qubits, strict=True):
            for gate in TO_Z[pauli]:
                self.builder.gate(gate, [qubit], where=self.where)
        last = qubits[-1]
        for qubit in qubits[:-1]:
            self.builder.gate("cx", [qubit, last], where=self.where)
        middle(last, inverted)
        for qubit in reversed(qubits[:-1]):
            self.builder.gate("cx", [qubit, last], where=self.where)
        for (pauli, _, _), qubit in zip(product, qubits, strict=True):
            for gate in FROM_Z[pauli]:
                self.builder.gate(gate, [qubit], where=self.where)

    def pad(self, bit: int, args: Sequence[float]) -> None:
        """``MPAD``: a record bit that is ``bit`` (flipped with the instruction's
        probability), measured off a scratch qubit rotated to read 1 with the
        probability it must, then reset."""
        flip = float(args[0]) if args else 0.0
        (pad,) = self.take(1)
        one = 1 - flip if bit else flip
        if one:
            self.builder.gate("ry", [pad], [_angle(one)], where=self.where)
        self.record.append(self.builder.measure(pad, where=self.where))
        self.builder.reset(pad, where=self.where)

    # ------------------------------------------------------------------ noise

    def take(self, count: int) -> list[str]:
        """``count`` scratch qubits in |0> (allocated once, reset after each use)."""
        if len(self.scratch) < count:
            self.scratch += self.builder.allocate(count - len(self.scratch), where=self.where)
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
            self.builder.gate("ry", [a], [_angle(p)], where=self.where)
            self.builder.gate(pauli, [a, qubit], where=self.where)
            self.builder.reset(a, where=self.where)
            return
        self.paulis([qubit], {"X": px, "Y": py, "Z": pz})

    def pauli_channel_2(self, pair: Sequence[str], probs: Sequence[float]) -> None:
        """``PAULI_CHANNEL_2``: the 15 two-qubit Paulis other than ``II`` with ``probs``
        in stim's order (``IX IY IZ XI ... ZZ``, the first letter on ``pair[0]``)."""
        names = [p + q for p in "IXYZ" for q in "IXYZ"][1:]
        self.paulis(pair, dict(zip(names, probs, strict=True)))

    def heralded(self, qubit: str, probs: Sequence[float]) -> None:
        """A heralded channel: with ``probs`` (I, X, Y, Z) a herald and that Pauli on
        ``qubit``; the herald's bit is recorded (1: it struck)."""
        herald = self.paulis([qubit], dict(zip("IXYZ", probs, strict=True)), herald=True)
        assert herald is not None
        self.record.append(herald)

    def paulis(
        self, qubits: Sequence[str], probs: Mapping[str, float], *, herald: bool = False
    ) -> str | None:
        """A Pauli on ``qubits`` (one letter per qubit) with its probability in
        ``probs``, none with the rest, by a dilation. The scratch qubits are an X part
        and a Z part per qubit (and a herald first, with ``herald``). They are prepared
        in the square roots of the outcomes' probabilities (:meth:`prepare`), control CX
        and CZ on the qubits, and are reset. (XZ is Y up to a phase, which a mixture
        does not see.) Returns the herald's event (measured before its reset), or None.
        """
        values = list(probs.values())
        total = sum(values)
        if min(values, default=0.0) < 0 or total > 1 + 1e-12:
            raise self.error(
                "bad-value", f"probabilities {', '.join(map(repr, values))} are not a channel"
            )
        if total == 0 and not herald:
            return None
        offset = int(herald)
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
            self.builder.gate("cx", [bits[offset + 2 * k], qubit], where=self.where)
            self.builder.gate("cz", [bits[offset + 2 * k + 1], qubit], where=self.where)
        event = self.builder.measure(bits[0], where=self.where) if herald else None
        for bit in bits:
            self.builder.reset(bit, where=self.where)
        return event

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
                self.builder.gate("ry", [target], [angles[0]], where=self.where)
            return
        gray = [i ^ (i >> 1) for i in range(size)]
        for i in range(size):
            alpha = sum(
                angle * (-1 if bin(c & gray[i]).count("1") % 2 else 1)
                for c, angle in enumerate(angles)
            )
            self.builder.gate("ry", [target], [alpha / size], where=self.where)
            changed = (gray[i] ^ gray[(i + 1) % size]).bit_length() - 1
            self.builder.gate("cx", [controls[changed], target], where=self.where)

    def correlated(self, targets: Sequence[Any], p: float) -> None:
        """``E(p) X1 Y2 ...``: the Pauli product with probability ``p``. Its scratch
        qubit stays, saying whether it struck, for an ``ELSE_CORRELATED_ERROR`` chain
        (:meth:`otherwise`) until the next other instruction resets it."""
        (a,) = self.take(1)
        self.builder.gate("ry", [a], [_angle(p)], where=self.where)
        self.product(a, targets)
        self.chain = a

    def otherwise(self, targets: Sequence[Any], p: float) -> None:
        """``ELSE_CORRELATED_ERROR(p) ...``: the product with probability ``p`` when no
        error of its chain has struck yet: a scratch qubit rotated only while the chain's
        flag is 0, which then joins the flag (the two never both 1)."""
        if self.chain is None:  # pragma: no cover - stim refuses such a circuit
            raise self.error("bad-value", "ELSE_CORRELATED_ERROR without an E before it")
        flag = self.chain
        b = self.take(2)[1]
        self.builder.gate("x", [flag], where=self.where)
        self.lowered("cry", [flag, b], [_angle(p)])
        self.builder.gate("x", [flag], where=self.where)
        self.product(b, targets)
        self.builder.gate("cx", [b, flag], where=self.where)
        self.builder.reset(b, where=self.where)

    def product(self, control: str, targets: Sequence[Any]) -> None:
        """The Pauli product ``targets`` (``X1 Y2 ...``), controlled by ``control``."""
        for target in targets:
            pauli = "x" if target.is_x_target else "y" if target.is_y_target else "z"
            controlled = {"x": "cx", "y": "cy", "z": "cz"}[pauli]
            self.lowered(controlled, [control, self.qubits[target.value]])

    def end_chain(self) -> None:
        """Reset the flag of an open ``E`` chain: the next instruction is no part of it."""
        if self.chain is not None:
            self.builder.reset(self.chain, where=self.where)
            self.chain = None

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


__all__ = [
    "FEEDBACK",
    "FLIP",
    "FROM_Z",
    "MEASURES",
    "NAMED",
    "PARITY",
    "RESETS",
    "TO_Z",
    "clifford_steps",
    "from_stim",
    "pauli_products",
    "read_circuit",
]
