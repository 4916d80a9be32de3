"""A verified QVM program lowered to Pauli product measurements and pi/8 rotations.

Litinski's form ("A Game of Surface Codes", arXiv:1808.02892, Sec. 1): a Clifford+T
circuit is a sequence of ``pi/8`` rotations ``P_{pi/8} = exp(-i pi/8 P)`` of Pauli
products ``P`` and Pauli product measurements (PPM), with every Clifford gate commuted
to the end of the circuit, where it is absorbed into the measurements. We take that
choice (his Fig. 4): no Clifford gate is executed; QMK keeps the accumulated Clifford
``C`` as a stim tableau, and each T gate on qubit ``q`` becomes the rotation of
``C^dagger Z_q C``, each measurement of ``B_q`` (B in X, Y, Z) the measurement of
``C^dagger B_q C``. Because ``C`` acts after everything measured so far, the state the
rotations and measurements act on, followed by ``C``, is the program's state: the
outcome distribution is the program's exactly.

- ``APPLY_T``/``APPLY_TDG``: one rotation by +-pi/8 of ``C^dag Z C``.
- ``APPLY_RZ/RX/RY`` by ``k pi/4``: ``k`` odd, one +-pi/8 rotation; the rest of the
  angle is a Clifford (``S``, ``SQRT_X``, ``SQRT_Y`` powers) into ``C``. By any other
  angle (the estimator's :func:`~qmk.estimate.counts.rotation_kind` decides, so both
  count alike): one ``"synth"`` rotation ``exp(-i theta/2 P)``, which the schedule prices
  as the estimator's ``numTsPerRotation`` T states and the engine applies exactly.
- ``APPLY_CCX``/``APPLY_CCZ``: the AND construction (:func:`_and_toffoli`) on one ancilla
  patch: four pi/8 rotations, one X measurement, a controlled CZ: four magic states,
  as the estimator counts a CCZ.
- Clifford gates (H, S, SDG, X, Y, Z, CNOT, CZ, SWAP, quarter-turn rotations): into ``C``.
- ``MEASURE_X/Y/Z``: one PPM producing the node's event.
- ``FREE_LQ`` and the admin ops: nothing. ``ALLOC_LQ`` and ``RESET`` of a patch used
  before: its Z measured (a PPM, into a hidden event), then X when that gave 1; of a
  fresh patch, nothing.
- ``INJECT_T_STATE``: the same reset, ``H`` into ``C``, then a pi/8 rotation (``T|+>``).
- Feed-forward: a Pauli under a guard, and ``COND_PAULI``, become a controlled Pauli
  ``C^dag Q C`` (no PPM). A guarded H, S, SDG, CNOT, CZ or SWAP ``G`` becomes a controlled
  frame update ``K = C^dag G C``: the shot that applies it conjugates every later op's
  Pauli by ``K`` (Litinski's classically tracked Clifford corrections; no PPM).

Everything else (channels, other guarded ops) is refused with a ``QP`` code.

>>> from qmk.qvm.asm import assemble
>>> from qmk.qvm.verify import verify
>>> prog = verify(assemble('''
... .version 0.2
... .caps CAP_ALLOC
... .vqs a b
... .events m
... al: ALLOC_LQ vq:a, vq:b, n=2
... h: APPLY_H vq:a
... c: APPLY_CNOT vq:a, vq:b
... t: APPLY_T vq:b
... m: MEASURE_Z vq:b, out:m
... '''))
>>> [str(op) for op in lower(prog).ops]
['R(+XZ, +pi/8)', 'M(+XZ) -> m']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qmk.ft.errors import FTError
from qmk.gates import GATES
from qmk.qvm.ops import OPS, Category, Exec

if TYPE_CHECKING:
    import stim

    from qmk.qvm.graph import Node
    from qmk.qvm.verify import VerifiedProgram


@dataclass(frozen=True, slots=True, kw_only=True)
class PauliOp:
    """One step of the lowered program.

    Attributes:
        pauli: the Pauli product over the program's qubits, ``"+XZ_"``-style (stim's
            text: a sign, then one of ``_XYZ`` per qubit in ``qubits`` order).
        kind: ``"rotation"`` (``exp(-i sign pi/8 P)``, one magic state), ``"synth"`` (an
            arbitrary-angle ``exp(-i angle P)``: a synthesised sequence), ``"measure"``
            (a PPM), ``"pauli"`` (a classically controlled Pauli, no PPM) or ``"frame"``
            (a classically controlled Clifford, tracked in the shot's frame: no PPM).
        sign: +1 or -1: the rotation's direction (always +1 for a measurement; the
            measured operator's sign is the Pauli's).
        event: the event a measurement produces, or None.
        node: the id of the node it came from.
        when: a guard's terms ``(event, value)``, all of which must hold.
        parity: events whose XOR must be 1 (``COND_PAULI``'s inputs).
        frame: for a ``"frame"`` op, the stim tableau of ``P -> K^dag P K``, with
            ``K = C^dag G C`` the controlled Clifford ``G`` seen before the frame ``C``.
        label: what a ``"frame"`` op applies, for people.
        angle: a ``"synth"`` rotation's angle.
    """

    pauli: str
    kind: str
    sign: int = 1
    event: str | None = None
    node: str = ""
    when: tuple[tuple[str, int], ...] = ()
    parity: tuple[str, ...] = ()
    frame: Any = None
    label: str = ""
    angle: float = 0.0

    @property
    def support(self) -> tuple[int, ...]:
        """The qubits (indices) the Pauli acts on."""
        return tuple(i for i, c in enumerate(self.pauli[1:]) if c != "_")

    @property
    def z_only(self) -> bool:
        """Whether every factor is Z (a rotation a patch's Z boundary alone can do)."""
        return all(c in "_Z" for c in self.pauli[1:])

    @property
    def needs_magic_state(self) -> bool:
        return self.kind in ("rotation", "synth")

    @property
    def is_ppm(self) -> bool:
        """Whether it is one Pauli product measurement (a synthesised rotation is as many
        as its sequence has T gates: the schedule counts them)."""
        return self.kind in ("rotation", "measure")

    @property
    def reads(self) -> tuple[str, ...]:
        """The events its condition reads."""
        return tuple(e for e, _ in self.when) + self.parity

    def holds(self, outcomes: dict[str, int]) -> bool:
        """Whether its condition holds for these outcomes (no condition: always)."""
        if any(outcomes.get(e, 0) != v for e, v in self.when):
            return False
        return not self.parity or sum(outcomes.get(e, 0) for e in self.parity) % 2 == 1

    def __str__(self) -> str:
        turn = "+" if self.sign > 0 else "-"
        text = {
            "rotation": f"R({self.pauli}, {turn}pi/8)",
            "synth": f"R({self.pauli}, {self.angle:.6g})",
            "frame": f"F({self.label})",
            "pauli": f"P({self.pauli})",
        }.get(self.kind, f"M({self.pauli}) -> {self.event}")
        terms = [f"{e}=={v}" for e, v in self.when]
        if self.parity:
            terms.append("^".join(self.parity) + "==1")
        return text + (f" if {' and '.join(terms)}" if terms else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Lowered:
    """A program as pi/8 rotations and PPMs.

    Attributes:
        qubits: the program's qubits, in patch order (index ``i`` of every Pauli), then the
            ancilla patch of the Toffolis' AND (``_and``) when there is one.
        ops: the rotations and measurements, in program order.
        events: the program's events (``resources.events`` order).
        t_count: the pi/8 rotations (one magic state each).
        rotation_count: the arbitrary-angle rotations (each a synthesised sequence).
        cliffords: the Clifford gates absorbed into the frame.
    """

    qubits: tuple[str, ...]
    data_qubits: int
    ops: tuple[PauliOp, ...]
    events: tuple[str, ...]
    t_count: int
    rotation_count: int
    cliffords: int

    @property
    def ppm_count(self) -> int:
        """Pauli product measurements: one per pi/8 rotation (``P x Z`` with the magic
        state) and one per measurement (the AND's uncomputing X included); arbitrary-angle
        rotations apart (:class:`~qmk.ft.schedule.Schedule` adds their sequences')."""
        return sum(1 for op in self.ops if op.is_ppm)


#: Clifford ops as stim gates (applied to the frame ``C``): the gate ops whose gate
#: records name a stim gate at every parameter.
_CLIFFORD = {
    name: stim
    for name, spec in OPS.items()
    if spec.kind is Exec.GATE
    and spec.gate
    and (stim := GATES[spec.gate].names.first("stim")) is not None
}
#: exp(-i pi/4 B) as a stim gate, per axis: the rotation's stim gate at a quarter turn.
_QUARTER = {
    axis: quarter[1]
    for axis in "XYZ"
    if (quarter := GATES[f"r{axis.lower()}"].names.stim_quarter) is not None
}
_Condition = tuple[tuple[tuple[str, int], ...], tuple[str, ...]]


class _Frame:
    """The accumulated Clifford ``C`` and the ops lowered so far."""

    def __init__(self, qubits: tuple[str, ...]) -> None:
        import stim

        self.names = qubits
        self.index = {q: i for i, q in enumerate(qubits)}
        self.n = len(qubits)
        self.sim = stim.TableauSimulator()
        if self.n:
            self.sim.set_num_qubits(self.n)
        self.ops: list[PauliOp] = []
        self.cliffords = 0
        self.t_count = 0
        self.rotation_count = 0
        self.touched: set[int] = set()

    def clifford(self, gate: str, qubits: list[int]) -> None:
        import stim

        self.sim.do(stim.Circuit(f"{gate} {' '.join(map(str, qubits))}"))
        self.cliffords += 1

    def _conjugated(self, paulis: dict[int, str]) -> str:
        import stim

        text = "".join(paulis.get(i, "_") for i in range(self.n))
        inv: stim.Tableau = self.sim.current_inverse_tableau()
        return str(inv(stim.PauliString(text)))

    def rotate(self, paulis: dict[int, str], sign: int, node: str) -> None:
        self.ops.append(
            PauliOp(pauli=self._conjugated(paulis), kind="rotation", sign=sign, node=node)
        )
        self.t_count += 1

    def synth(self, paulis: dict[int, str], angle: float, node: str) -> None:
        self.ops.append(
            PauliOp(pauli=self._conjugated(paulis), kind="synth", angle=angle, node=node)
        )
        self.rotation_count += 1

    def controlled(
        self, kind: str, paulis: dict[int, str], sign: int, node: str, condition: _Condition
    ) -> None:
        when, parity = condition
        self.ops.append(
            PauliOp(
                pauli=self._conjugated(paulis),
                kind=kind,
                sign=sign,
                node=node,
                when=when,
                parity=parity,
            )
        )

    def controlled_clifford(
        self, gate: str, qubits: list[int], node: str, condition: _Condition
    ) -> None:
        """``gate`` on ``qubits`` when ``condition`` holds: ``K = C^dag G C``, kept as the
        map ``P -> K^dag P K`` the shot's frame applies to every later op."""
        import stim

        n = self.n
        circuit = stim.Circuit(
            f"I {' '.join(map(str, range(n)))}\n{gate} {' '.join(map(str, qubits))}"
        )
        g = stim.Tableau.from_circuit(circuit)
        c_inv = self.sim.current_inverse_tableau()
        k = c_inv.inverse().then(g).then(c_inv)
        when, parity = condition
        self.ops.append(
            PauliOp(
                pauli="+" + "_" * n,
                kind="frame",
                node=node,
                when=when,
                parity=parity,
                frame=k.inverse(),
                label=f"{gate} {' '.join(self.names[q] for q in qubits)}",
            )
        )

    def measure(self, paulis: dict[int, str], event: str, node: str) -> None:
        self.ops.append(
            PauliOp(pauli=self._conjugated(paulis), kind="measure", event=event, node=node)
        )


def _rotation(frame: _Frame, node: Node, q: int, axis: str) -> None:
    from qmk.estimate.counts import rotation_kind

    theta = float(node.args["theta"])
    if rotation_kind(theta) == "rotation":
        frame.synth({q: axis}, theta / 2, node.id)  # R_B(theta) = exp(-i theta/2 B)
        return
    # R_B(theta) = exp(-i theta B / 2) = exp(-i k pi/8 B) for theta = k pi/4
    k = round(theta / (math.pi / 4)) % 8
    if k % 2:
        frame.rotate({q: axis}, 1, node.id)
        k -= 1
    for _ in range(k // 2):
        frame.clifford(_QUARTER[axis], [q])


def _controlled(frame: _Frame, node: Node, qs: list[int], condition: _Condition) -> None:
    """A classically controlled Pauli or Clifford (both cost no PPM)."""
    if node.op in ("APPLY_X", "APPLY_Y", "APPLY_Z"):
        frame.controlled("pauli", {qs[0]: node.op[-1]}, 1, node.id, condition)
    elif node.op in _CLIFFORD:
        frame.controlled_clifford(_CLIFFORD[node.op], qs, node.id, condition)
    else:
        raise FTError.of(
            "guard-unsupported",
            f"node {node.id} ({node.op}) is classically controlled; lattice surgery controls "
            "Paulis and the Cliffords H, S, SDG, CNOT, CZ, SWAP only (its schedule is static)",
            node=node.id,
        )


def _and_toffoli(frame: _Frame, a: int, b: int, c: int, target: str, node: str) -> None:
    """CCX (``target`` CX) or CCZ (CZ) on ``a, b, c`` by the AND of Jones and Gidney
    (arXiv:1212.5069, 1709.06648).

    1. The ancilla ``t`` goes from ``|0>`` to ``|ab>`` by ``H``, four pi/8 rotations
       (``Z_t, Z_aZ_bZ_t`` by +pi/8, ``Z_aZ_t, Z_bZ_t`` by -pi/8), ``H`` and ``S``.
    2. ``target`` from ``t`` to ``c``.
    3. ``t`` is measured in X, with ``CZ(a, b)`` when that gave 1, and returned to
       ``|0>`` (``H``, then X when it gave 1)."""
    t = frame.n - 1
    event = f"{node}.and"
    frame.clifford("H", [t])
    for support, sign in (((t,), 1), ((a, t), -1), ((b, t), -1), ((a, b, t), 1)):
        frame.rotate(dict.fromkeys(support, "Z"), sign, node)
    frame.clifford("H", [t])
    frame.clifford("S", [t])
    frame.clifford(target, [t, c])
    frame.measure({t: "X"}, event, node)
    frame.controlled_clifford("CZ", [a, b], node, (((event, 1),), ()))
    frame.clifford("H", [t])
    frame.controlled("pauli", {t: "X"}, 1, node, (((event, 1),), ()))


def _reset(frame: _Frame, q: int, node: str) -> None:
    """Return patch ``q`` to ``|0>`` if it was used: Z measured (a PPM of ``C^dag Z C``)
    into a hidden event, then X when that gave 1. A fresh patch needs nothing."""
    if q not in frame.touched:
        return
    event = f"{node}.reset.{frame.names[q]}"
    frame.measure({q: "Z"}, event, node)
    frame.controlled("pauli", {q: "X"}, 1, node, (((event, 1),), ()))
    frame.touched.discard(q)


def _lower_node(frame: _Frame, node: Node) -> None:
    spec = OPS[node.op]
    qs = [frame.index[v] for v in node.vqs]
    if node.guard is not None:
        when = tuple((t.event, t.equals) for t in node.guard.terms)
        _controlled(frame, node, qs, (when, ()))
        return
    if node.op == "COND_PAULI":
        mask = str(node.args["mask"])
        if mask != "I":
            frame.controlled("pauli", {qs[0]: mask}, 1, node.id, ((), tuple(node.inputs)))
        return
    if node.op == "INJECT_T_STATE":
        _reset(frame, qs[0], node.id)
        frame.clifford("H", qs)  # T|+> from the patch's |0>: the rotation takes the state
        frame.rotate({qs[0]: "Z"}, 1, node.id)
        return
    if node.op in ("ALLOC_LQ", "RESET"):
        for q in qs:
            _reset(frame, q, node.id)
    elif node.op == "FREE_LQ" or spec.category is Category.ADMIN:
        return
    elif node.op in _CLIFFORD:
        frame.clifford(_CLIFFORD[node.op], qs)
    elif node.op in ("APPLY_T", "APPLY_TDG"):
        frame.rotate({qs[0]: "Z"}, 1 if node.op == "APPLY_T" else -1, node.id)
    elif node.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
        _rotation(frame, node, qs[0], node.op[-1])
    elif node.op in ("APPLY_CCX", "APPLY_CCZ"):
        target = "CX" if node.op == "APPLY_CCX" else "CZ"
        _and_toffoli(frame, qs[0], qs[1], qs[2], target, node.id)
    elif node.op in ("MEASURE_X", "MEASURE_Y", "MEASURE_Z"):
        frame.measure({qs[0]: node.op[-1]}, node.produces[0], node.id)
    else:
        raise FTError.of(
            "op-unsupported",
            f"node {node.id}: {node.op} has no Pauli-product form in the lattice-surgery lowering",
            node=node.id,
            op=node.op,
        )


def lower(program: VerifiedProgram) -> Lowered:
    """Lower ``program`` to pi/8 rotations and PPMs (module docstring).

    Raises:
        FTError: ``QP101`` an op with no Pauli-product form here, ``QP103`` a
            classically controlled node that is no Pauli or listed Clifford.
    """
    graph = program.graph
    data = tuple(graph.resources.vqs)
    toffolis = any(node.op in ("APPLY_CCX", "APPLY_CCZ") for node in graph.nodes)
    qubits = (*data, "_and") if toffolis else data
    frame = _Frame(qubits)
    for node in graph.nodes:
        _lower_node(frame, node)
        if node.op not in ("ALLOC_LQ", "RESET"):
            frame.touched.update(frame.index[v] for v in node.vqs)
    return Lowered(
        qubits=qubits,
        data_qubits=len(data),
        ops=tuple(frame.ops),
        events=tuple(graph.resources.events),
        t_count=frame.t_count,
        rotation_count=frame.rotation_count,
        cliffords=frame.cliffords,
    )
