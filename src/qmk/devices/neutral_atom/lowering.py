"""QVM programs lowered for the neutral-atom compiler: one-qubit unitaries, CZ, measure, reset.

The first step of :mod:`qmk.devices.neutral_atom.compile`. Every node becomes
:class:`WireOp` values on *wires* (the program's qubits, in order of first use), read
from the op table (:data:`qmk.qvm.ops.OPS`) and the engines' gate table
(:data:`qmk.engines.gates.GATES`), never from a list of its own:

- a gate op applies its engine gate: a one-qubit gate is its matrix, ``cx`` is ``H CZ H``
  on the target, ``ccx`` the six-CNOT Toffoli with T gates, ``ccz`` that between H on the
  target, and ``swap`` costs nothing: the wires of its two qubits trade places;
- a measurement in X or Y turns its basis to Z first (:data:`qmk.engines.gates.TO_Z`)
  and back after, when the qubit is used again;
- a composite op is its expansion in the op table (:func:`qmk.execution.plan.expand`):
  ``MEASURE_ANGLE``, ``MEASURE_BELL``, ``INJECT_T_STATE``, ``TELEPORT_CNOT`` (its undo
  steps, too, only when a qubit is used again);
- ``FREE_LQ``, ``FENCE_EPOCH``, ``BAR_REGION`` and ``SET_POLICY`` change no atom;
- guards, ``COND_PAULI`` and channels need classical feed-forward or links the ISA does
  not have: ``QD301 compile-unsupported`` naming the node (:func:`refusal` says why).

>>> from qmk.qvm.asm import assemble
>>> from qmk.qvm.verify import verify
>>> program = verify(assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... c: APPLY_CNOT vq:q0, vq:q1
... m: MEASURE_BELL vq:q0, vq:q1, out:xx, out:zz
... '''))
>>> [(op.kind, op.wires) for op in lower(program).ops]  # doctest: +NORMALIZE_WHITESPACE
[('u', (1,)), ('cz', (0, 1)), ('u', (1,)), ('u', (1,)), ('cz', (0, 1)), ('u', (1,)),
 ('u', (0,)), ('measure', (0,)), ('measure', (1,))]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qmk.devices.errors import DeviceError
from qmk.engines.gates import GATES, TO_Z
from qmk.execution.plan import Call, expand
from qmk.qvm.expansions import EXPANSIONS, Micro
from qmk.qvm.graph import Node
from qmk.qvm.ops import OPS, Category, Exec
from qmk.qvm.verify import VerifiedProgram

Matrix = np.ndarray

_I2 = np.eye(2, dtype=complex)
_H = GATES["h"].matrix()
_T = GATES["t"].matrix()
_TDG = GATES["tdg"].matrix()


@dataclass(frozen=True, slots=True)
class WireOp:
    """One lowered operation on program wires: ``u`` (the one-qubit unitary ``matrix``),
    ``cz``, ``measure`` (writing ``event``) or ``reset``; ``node`` is the node's id."""

    kind: str
    wires: tuple[int, ...]
    matrix: Matrix | None = None
    event: str = ""
    node: str = ""


def unsupported(node: Node, index: int, why: str) -> DeviceError:
    """``QD301 compile-unsupported`` naming node #``index``."""
    return DeviceError.of(
        "compile-unsupported",
        f"node #{index} {node.id!r} ({node.op}): {why}",
        node=node.id,
        op=node.op,
        index=index,
    )


@dataclass(slots=True)
class Lowering:
    """The wire ops of a program, its qubits' wires (a SWAP relabels wires instead of
    moving states), and its ops by name: all of them (``before``), and those that change
    no atom (``ignored``)."""

    ops: list[WireOp] = field(default_factory=list)
    wire_of: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    before: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def wire(self, vq: str) -> int:
        """The wire of ``vq`` (a new one at its first use)."""
        if vq not in self.wire_of:
            self.wire_of[vq] = len(self.names)
            self.names.append(vq)
        return self.wire_of[vq]

    def u(self, vq: str, matrix: Matrix, node: str) -> None:
        self.ops.append(WireOp("u", (self.wire(vq),), matrix=matrix, node=node))

    def cz(self, a: str, b: str, node: str) -> None:
        self.ops.append(WireOp("cz", (self.wire(a), self.wire(b)), node=node))

    def cx(self, c: str, t: str, node: str) -> None:
        self.u(t, _H, node)
        self.cz(c, t, node)
        self.u(t, _H, node)

    def swap(self, a: str, b: str) -> None:
        wa, wb = self.wire(a), self.wire(b)
        self.wire_of[a], self.wire_of[b] = wb, wa

    def measure(self, vq: str, event: str, node: str) -> None:
        self.ops.append(WireOp("measure", (self.wire(vq),), event=event, node=node))

    def reset(self, vq: str, node: str) -> None:
        self.ops.append(WireOp("reset", (self.wire(vq),), node=node))

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

    def gate(self, gate: str, qubits: Sequence[str], params: Sequence[float], node: str) -> bool:
        """Lower the engine gate ``gate``; False when it has no lowering here."""
        if GATES[gate].qubits == 1:
            self.u(qubits[0], GATES[gate].matrix(params), node)
        elif gate == "cx":
            self.cx(qubits[0], qubits[1], node)
        elif gate == "cz":
            self.cz(qubits[0], qubits[1], node)
        elif gate == "swap":
            self.swap(qubits[0], qubits[1])
        elif gate == "ccx":
            self.ccx(qubits[0], qubits[1], qubits[2], node)
        elif gate == "ccz":
            self.u(qubits[2], _H, node)
            self.ccx(qubits[0], qubits[1], qubits[2], node)
            self.u(qubits[2], _H, node)
        else:
            return False
        return True


def refusal(node: Node) -> str | None:
    """Why the neutral-atom ISA cannot carry ``node`` out, or None when it can."""
    if node.guard is not None:
        return (
            "a guarded node needs classical feed-forward, which the neutral-atom ISA "
            "cannot express (no instruction reads a measured bit)"
        )
    spec = OPS[node.op]
    if spec.category is Category.CHANNEL:
        return (
            "channels (entanglement links between modules) are not part of the "
            "neutral-atom device; run the program on the logical machine (qmk run)"
        )
    if spec.kind is Exec.COND_PAULI:
        return (
            "COND_PAULI applies a Pauli chosen by measured bits: classical "
            "feed-forward, which the neutral-atom ISA cannot express"
        )
    if node.op in ("NOISE", "NOISY_MEASURE"):
        return "a stim noise channel runs on the stim target; the device has its own noise"
    if spec.category is Category.CLASSICAL:
        return (
            f"{node.op} computes on measured bits at run time, which the neutral-atom ISA "
            "cannot express (no instruction reads a measured bit)"
        )
    return None


def lower(program: VerifiedProgram) -> Lowering:
    """The program's nodes, in list order, as wire ops (see the module docstring).

    Raises:
        DeviceError: ``QD301 compile-unsupported`` for the first node the ISA cannot
            carry out, naming it.
    """
    low = Lowering()
    nodes = program.graph.nodes
    last_use: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if node.op != "FREE_LQ":
            for vq in node.vqs:
                last_use[vq] = index
    for index, node in enumerate(nodes):
        why = refusal(node)
        if why is not None:
            raise unsupported(node, index, why)
        low.before[node.op] += 1
        later = any(last_use.get(vq, -1) > index for vq in node.vqs)
        _lower_node(low, node, index, later)
    return low


def _lower_node(low: Lowering, node: Node, index: int, later: bool) -> None:
    """One node; ``later``: one of its qubits is used after it."""
    spec = OPS[node.op]
    kind, name, qubits = spec.kind, node.id, node.vqs
    if kind is Exec.ALLOC:
        for vq in qubits:
            low.wire(vq)
    elif kind in (Exec.FREE, Exec.NONE):
        low.ignored[node.op] += 1
    elif kind is Exec.GATE and spec.gate is not None:
        params = tuple(float(node.args[p]) for p in GATES[spec.gate].params)
        if not low.gate(spec.gate, qubits, params, name):
            raise unsupported(node, index, f"no lowering of the engine gate {spec.gate!r}")
    elif kind is Exec.RESET:
        low.reset(qubits[0], name)
    elif kind is Exec.MEASURE and spec.basis is not None:
        change = _fused([GATES[g].matrix() for g in TO_Z[spec.basis]])
        low.u(qubits[0], change, name)
        low.measure(qubits[0], node.produces[0], name)
        if later:
            low.u(qubits[0], change.conj().T, name)
    elif spec.name in EXPANSIONS:
        _lower_calls(low, expand(node), later, node, index)
    else:  # pragma: no cover - every op of the table is handled above
        raise unsupported(node, index, "no lowering onto the neutral-atom ISA")


def _fused(matrices: Sequence[Matrix]) -> Matrix:
    """The product of one-qubit unitaries applied in order (the identity for none)."""
    if not matrices:
        return _I2
    product = matrices[0]
    for matrix in matrices[1:]:
        product = matrix @ product
    return product


def _lower_calls(low: Lowering, calls: Sequence[Call], later: bool, node: Node, index: int) -> None:
    """A composite's expansion: a run of one-qubit gates on a qubit is one unitary; undo
    steps only when a qubit is used again (``later``)."""
    runs: dict[str, list[Matrix]] = {}

    def flush() -> None:
        for vq, run in runs.items():
            low.u(vq, _fused(run), node.id)
        runs.clear()

    for call in calls:
        if call.undo and not later:
            continue
        if call.kind is Micro.GATE and len(call.qubits) == 1:
            runs.setdefault(call.qubits[0], []).append(GATES[call.gate].matrix(call.params))
            continue
        flush()
        if call.kind is Micro.GATE:
            if not low.gate(call.gate, call.qubits, call.params, node.id):
                raise unsupported(node, index, f"no lowering of the engine gate {call.gate!r}")
        elif call.kind is Micro.MEASURE:
            low.measure(call.qubits[0], call.event, node.id)
        elif call.kind is Micro.RESET:
            low.reset(call.qubits[0], node.id)
        elif call.fidelity < 1:  # WERNER: noise the device cannot be asked for
            raise unsupported(node, index, "a Werner channel is not a neutral-atom instruction")
    flush()


__all__ = ["Lowering", "WireOp", "lower", "refusal", "unsupported"]
