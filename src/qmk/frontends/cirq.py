"""Cirq ``Circuit`` into a QVM graph.

Qubits are allocated in ``sorted(circuit.all_qubits())`` order. Gates:

- one-qubit gates of any kind (``XPowGate``, ``ZPowGate``, ``HPowGate``,
  ``PhasedXPowGate``, ``MatrixGate``, ...) through their exact unitary;
- ``CZPowGate``, ``CXPowGate``, ``SWAP``, ``ISWAP``, ``CCZ``, ``CCX``, ``CSWAP`` and the
  ``XX``/``YY``/``ZZ`` powers through the shared decomposition table;
- controlled operations (any control values) exactly, with the sub-operation's phase;
- everything else through ``cirq.decompose_once``.

A ``CircuitOperation`` repeated more than once (no ``repeat_until``) whose sub-circuit
measures nothing is read folded: one repetition is lowered and, where it wrote only
gates, kept as the body of a ``REPEAT`` row of the repetitions' count (nested ones fold
inside out). Any other ``CircuitOperation`` is decomposed, their repetitions unrolled.

``cirq.measure`` (with ``invert_mask``), ``cirq.reset`` and
classically controlled operations on measurement keys (``KeyCondition``: the key's
value is not 0) are lowered. Noise channels and other non-unitary operations are a
:class:`~qmk.frontends.errors.FrontendError` naming the operation and its moment.

Result keys: one group per measurement key, in the order the keys are first
measured in the circuit, joined by spaces. Within a group the measured qubits come in
the order the measurement lists them, first qubit leftmost. That is the order of
``result.measurements[key]`` columns, which ``cirq.big_endian_bits_to_int`` reads.

>>> import cirq
>>> a, b = cirq.LineQubit.range(2)
>>> circuit = cirq.Circuit(cirq.H(a), cirq.CNOT(a, b), cirq.measure(a, b, key="m"))
>>> [n.op for n in from_cirq(circuit).nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qmk.frontends import conditions, decompose
from qmk.frontends.builder import ProgramBuilder, guard_of
from qmk.frontends.errors import FrontendError
from qmk.frontends.folding import fold_pass
from qmk.qvm.graph import Graph

#: How deep ``cirq.decompose_once`` may recurse.
MAX_DEPTH = 32


def from_cirq(circuit: Any, *, profile: str | None = None, name: str = "cirq") -> Graph:
    """Lower a ``cirq.Circuit`` (no free symbols).

    Args:
        circuit: the circuit.
        profile: the code profile of the qubits (None: the runner's default).
        name: the name used in errors and ``metadata.source``.

    Raises:
        FrontendError: an unresolved symbol, a measurement key measured twice, or an
            unsupported operation, with its moment.
    """
    try:
        import cirq
    except ImportError:  # pragma: no cover - cirq is an optional extra
        raise FrontendError.of("missing-extra", "from_cirq needs cirq-core") from None
    if not isinstance(circuit, cirq.AbstractCircuit):
        raise FrontendError.of(
            "bad-value", f"from_cirq takes a cirq.Circuit, got {type(circuit).__name__}"
        )
    if cirq.is_parameterized(circuit):
        names = ", ".join(sorted(str(s) for s in cirq.parameter_names(circuit)))
        raise FrontendError.of(
            "bad-value", f"{name}: unresolved symbol(s) {names}: use cirq.resolve_parameters"
        )
    return _Lowerer(circuit, profile=profile, name=name).run()


class _Lowerer:
    def __init__(self, circuit: Any, *, profile: str | None, name: str) -> None:
        self.circuit = circuit
        self.name = name
        self.builder = ProgramBuilder(profile=profile, source=name, description=name)
        qubits = sorted(circuit.all_qubits())
        handles = self.builder.allocate(len(qubits)) if qubits else []
        self.qmap = dict(zip(qubits, handles, strict=True))
        self.keys: dict[str, list[str]] = {}
        self.moment = 0
        self.folds = 0  # repeated CircuitOperations read folded into REPEAT rows so far

    def error(self, kind: str, message: str) -> FrontendError:
        return FrontendError.of(
            kind, f"{self.name}: moment {self.moment}: {message}", source=self.name
        )

    def where(self) -> str:
        return f"{self.name}#moment{self.moment}"

    def run(self) -> Graph:
        for m, moment in enumerate(self.circuit):
            self.moment = m
            for op in moment.operations:
                self.operation(op, conditions.TRUE, 0)
        groups = [list(events) for events in self.keys.values()]
        return self.builder.build(output=groups, metadata={"language": "cirq"})

    def operation(self, op: Any, cond: conditions.Cond, depth: int) -> None:
        import cirq

        op = op.untagged
        if isinstance(op, cirq.ClassicallyControlledOperation):
            here = conditions.TRUE
            try:
                for condition in op.classical_controls:
                    here = conditions.conjoin(here, self.key_condition(condition))
                inner = conditions.conjoin(cond, here)
            except ValueError as exc:
                raise self.error("unsupported", str(exc)) from None
            self.operation(op.without_classical_controls(), inner, depth)
            return
        gate = op.gate
        if isinstance(gate, cirq.MeasurementGate):
            self.measure(op, gate, cond)
            return
        if isinstance(gate, cirq.ResetChannel):
            for terms in cond:
                self.builder.reset(
                    self.qmap[op.qubits[0]], guard=guard_of(list(terms.items())), where=self.where()
                )
            return
        if isinstance(gate, cirq.GlobalPhaseGate | cirq.IdentityGate):
            return
        if isinstance(op, cirq.CircuitOperation) and self.repeated(op, cond, depth):
            return
        if isinstance(op, cirq.CircuitOperation) or (
            not cirq.has_unitary(op) and cirq.decompose_once(op, default=None) is not None
        ):
            self.decomposed(op, cond, depth)
            return
        low = self.unitary_op(op, depth)
        handles = [self.qmap[q] for q in op.qubits]
        for terms in cond:
            guard = guard_of(list(terms.items()))
            for name, qs, ps in low.ops:
                self.builder.gate(
                    name, [handles[k] for k in qs], ps, guard=guard, where=self.where()
                )

    def repeated(self, op: Any, cond: conditions.Cond, depth: int) -> bool:
        """A ``CircuitOperation`` of more than one repetition that measures nothing, read
        once per repetition: its one lowered repetition kept as a REPEAT row where it wrote
        only gates (:func:`~qmk.frontends.folding.fold_pass`), else written out. False
        (nothing written) for any other: it is decomposed, its repetitions unrolled."""
        import cirq

        turns = abs(op.repetitions)
        if turns < 2 or op.repeat_until is not None or cond != conditions.TRUE:
            return False
        if cirq.is_measurement(op):  # keys differ by repetition, or are measured twice
            return False
        one = op.replace(repetitions=1 if op.repetitions > 0 else -1, repetition_ids=None)
        before = len(self.builder.nodes)
        self.decomposed(one, cond, depth)
        self.folds += 1
        if not fold_pass(self.builder.nodes, before, turns, self.folds):
            for _ in range(turns - 1):  # a reset, say: the repetitions are alike, written out
                self.decomposed(one, cond, depth)
        return True

    def decomposed(self, op: Any, cond: conditions.Cond, depth: int) -> None:
        import cirq

        if depth > MAX_DEPTH:
            raise self.error("unsupported", f"{op!r}: decompositions nest too deeply")
        parts = cirq.decompose_once(op, default=None)
        if parts is None:
            raise self.error("unsupported", f"operation {op!r} is not supported by QMK")
        for part in parts:
            self.operation(part, cond, depth + 1)

    def measure(self, op: Any, gate: Any, cond: conditions.Cond) -> None:
        key = str(gate.mkey)
        if key in self.keys:
            raise self.error(
                "unsupported", f"measurement key {key!r} is measured twice: use distinct keys"
            )
        if cond != conditions.TRUE and len(cond) != 1:
            raise self.error("unsupported", "a measurement under a compound condition")
        if gate.confusion_map:
            raise self.error("unsupported", f"measurement {key!r} with a confusion map")
        guard = guard_of(list(cond[0].items())) if cond else None
        if not cond:
            self.keys[key] = [None] * len(op.qubits)  # type: ignore[list-item]
            return
        mask = gate.full_invert_mask()
        events = []
        for k, qubit in enumerate(op.qubits):
            handle = self.qmap[qubit]
            # an inverted result: X before and after, so the qubit ends as measured
            if mask[k]:
                self.builder.gate("x", [handle], guard=guard, where=self.where())
            events.append(self.builder.measure(handle, guard=guard, where=self.where()))
            if mask[k]:
                self.builder.gate("x", [handle], guard=guard, where=self.where())
        self.keys[key] = events

    def key_condition(self, condition: Any) -> conditions.Cond:
        import cirq

        if not isinstance(condition, cirq.KeyCondition) or condition.index != -1:
            raise self.error(
                "unsupported",
                f"the condition {condition}: QMK lowers conditions on measurement keys only",
            )
        key = str(condition.key)
        if key not in self.keys:
            raise self.error("undefined", f"measurement key {key!r} is not measured before use")
        events = self.keys[key]
        return conditions.negate(conditions.equals(list(reversed(events)), 0))

    # ------------------------------------------------------------------ unitaries

    def unitary_op(self, op: Any, depth: int) -> decompose.Lowered:
        """``op`` as exact basic gates on its qubits (local index = position in op.qubits)."""
        import cirq

        if depth > MAX_DEPTH:
            raise self.error("unsupported", f"{op!r}: decompositions nest too deeply")
        gate = op.gate
        n = len(op.qubits)
        if isinstance(op, cirq.ControlledOperation):
            return self.controlled(op, depth)
        if n == 1 and cirq.has_unitary(op):
            return decompose.unitary(cirq.unitary(op))
        known = self.known_gate(gate)
        if known is not None:
            return self.with_exact_phase(known, op)
        parts = cirq.decompose_once(op, default=None)
        if parts is None:
            raise self.error("unsupported", f"operation {op!r} is not supported by QMK")
        index = {q: k for k, q in enumerate(op.qubits)}
        ops: list[decompose.Instr] = []
        phase = 0.0
        for part in parts:
            part = part.untagged
            if isinstance(part.gate, cirq.GlobalPhaseGate):
                phase += float(np.angle(complex(part.gate.coefficient)))
                continue
            if not cirq.has_unitary(part):
                raise self.error("unsupported", f"{op!r} decomposes into non-unitary {part!r}")
            low = self.unitary_op(part, depth + 1)
            local = [index[q] for q in part.qubits]
            ops.extend((g, tuple(local[k] for k in qs), ps) for g, qs, ps in low.ops)
            phase += low.phase
        lowered = decompose.Lowered(num_qubits=n, ops=tuple(ops), phase=phase)
        # Cirq's decompositions may hold only up to a global phase: fit it to the unitary
        return self.with_exact_phase(lowered, op) if n <= 8 else lowered

    def known_gate(self, gate: Any) -> decompose.Lowered | None:
        """The table's form of a common multi-qubit gate (exact up to a global phase)."""
        import cirq

        t = getattr(gate, "exponent", None)
        if not isinstance(t, int | float):
            return None
        t = float(t)
        if isinstance(gate, cirq.CZPowGate):
            return decompose.lower_gate("cp", (math.pi * t,))
        if isinstance(gate, cirq.CXPowGate):
            if t == 1:
                return decompose.lower_gate("cx")
            seq = decompose.lower_gate("cp", (math.pi * t,))
            h = ("h", (1,), ())
            return decompose.Lowered(num_qubits=2, ops=(h, *seq.ops, h), phase=seq.phase)
        if isinstance(gate, cirq.ZZPowGate):
            return decompose.lower_gate("rzz", (math.pi * t,))
        if isinstance(gate, cirq.XXPowGate):
            return decompose.lower_gate("rxx", (math.pi * t,))
        if isinstance(gate, cirq.YYPowGate):
            return decompose.lower_gate("ryy", (math.pi * t,))
        fixed = {
            cirq.SwapPowGate: "swap",
            cirq.ISwapPowGate: "iswap",
            cirq.CCZPowGate: "ccz",
            cirq.CCXPowGate: "ccx",
        }
        for cls, name in fixed.items():
            if isinstance(gate, cls) and t == 1:
                return decompose.lower_gate(name)
        return None

    def with_exact_phase(self, low: decompose.Lowered, op: Any) -> decompose.Lowered:
        """``low`` with its global phase fitted to ``cirq.unitary(op)``."""
        import cirq

        target = decompose.little_endian(cirq.unitary(op))
        mine = decompose.matrix_of(low)
        k = int(np.argmax(np.abs(target)))
        ratio = target.flat[k] / mine.flat[k]
        return decompose.Lowered(
            num_qubits=low.num_qubits, ops=low.ops, phase=low.phase + float(np.angle(ratio))
        )

    def controlled(self, op: Any, depth: int) -> decompose.Lowered:
        controls = op.controls
        state = 0
        for k, (qubit, values) in enumerate(zip(controls, op.control_values, strict=True)):
            if getattr(qubit, "dimension", 2) != 2:
                raise self.error("unsupported", f"a control on a qudit {qubit}")
            allowed = tuple(values) if isinstance(values, tuple) else (values,)
            if len(allowed) != 1 or allowed[0] not in (0, 1):
                raise self.error("unsupported", f"control values {values!r} on {qubit}")
            state |= int(allowed[0]) << k
        inner = self.unitary_op(op.sub_operation, depth + 1)
        try:
            return decompose.controlled(inner, len(controls), state)
        except ValueError as exc:
            raise self.error("unsupported", str(exc)) from None
