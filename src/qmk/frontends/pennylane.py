"""PennyLane tapes and QNodes into QVM graphs.

``from_pennylane(tape)`` lowers a ``qml.tape.QuantumScript`` (what a QNode builds; a
QNode with its arguments is accepted too: ``from_pennylane(qnode, x, y)``). First
PennyLane's own transforms make the tape plain: ``qml.defer_measurements`` turns
mid-circuit measurements and ``qml.cond`` into controlled gates on fresh wires, and
``qml.devices.preprocess.decompose`` rewrites every operation the table below does not
know into ones it does (PennyLane's decompositions, exact). Then:

- one-qubit operations go through their exact matrix (``op.matrix()``, phase kept);
- the multi-qubit gates of :data:`NAMED` through the shared decomposition table
  (:mod:`qmk.frontends.decompose`), each tested against PennyLane's matrix;
- ``GlobalPhase``, ``Identity``, ``Barrier`` and ``Snapshot`` change no measured
  outcome and are skipped; a state preparation that PennyLane cannot decompose, or a
  non-unitary operation, is QL104 naming it.

Measurements: the wires that the tape's measurements read (all its wires for a
measurement that names none) are measured at the end, after the observables'
diagonalizing gates. So samples and counts of the graph are those of ``qml.sample``
and ``qml.counts``. The result key is one group, the wires in the tape's order, first
wire leftmost (PennyLane's ``qml.counts`` keys). Observables that do not commute on a
wire cannot be measured in one run: QL104 (split the tape, or use the
``qmk.statevector`` device, which splits it).

>>> import pennylane as qml
>>> tape = qml.tape.QuantumScript(
...     [qml.Hadamard(0), qml.CNOT([0, 1])], [qml.counts(wires=[0, 1])]
... )
>>> [n.op for n in from_pennylane(tape).nodes]
['ALLOC_LQ', 'APPLY_H', 'APPLY_CNOT', 'MEASURE_Z', 'MEASURE_Z', 'FREE_LQ']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from qmk.frontends import decompose
from qmk.frontends.builder import GATE_OPS, ProgramBuilder
from qmk.frontends.errors import FrontendError
from qmk.gates import GATES
from qmk.qvm.graph import Graph

#: PennyLane's gates and the decomposition table's names for them (the same matrices and
#: wire order: the first wire is Qiskit's first qubit argument): the PennyLane names of
#: the op table's gate records, then of gates written in them. Any other one-qubit
#: operation is read by its matrix.
NAMED: Mapping[str, str] = MappingProxyType(
    {
        **{
            name: gate
            for gate in GATE_OPS
            for name in GATES[gate].names.of("pennylane")
            if name.isidentifier()
        },
        "PhaseShift": "p",
        "U1": "p",
        "U2": "u2",
        "U3": "u",
        "SX": "sx",
        "CY": "cy",
        "CH": "ch",
        "ISWAP": "iswap",
        "ECR": "ecr",
        "CSWAP": "cswap",
        "IsingXX": "rxx",
        "IsingYY": "ryy",
        "IsingZZ": "rzz",
        "CRX": "crx",
        "CRY": "cry",
        "CRZ": "crz",
        "ControlledPhaseShift": "cp",
    }
)
#: Operations that change no measured outcome.
SKIPPED = frozenset({"GlobalPhase", "Identity", "Barrier", "Snapshot"})
#: The operations of :data:`NAMED` with one parameter that a gradient differentiates:
#: those whose decomposition is additive in it (:data:`~qmk.frontends.decompose.ADDITIVE`),
#: lowered with each angle affine in the parameter (:func:`~qmk.frontends.decompose.affine`).
DIFFERENTIABLE: Mapping[str, str] = MappingProxyType(
    {
        name: gate
        for name, gate in NAMED.items()
        if decompose.ADDITIVE.get(gate) == 0 and decompose.arity(gate)[1] == 1
    }
)


def supported(op: Any) -> bool:
    """Whether :func:`from_pennylane` lowers ``op`` as it is (else PennyLane decomposes it)."""
    if op.name in SKIPPED or op.name in NAMED:
        return True
    return len(op.wires) == 1 and bool(op.has_matrix)


def plain_tape(tape: Any) -> Any:
    """``tape`` with mid-circuit measurements deferred and every operation that
    :func:`supported` refuses decomposed by PennyLane (one tape out).

    Raises:
        FrontendError: an operation PennyLane cannot decompose into supported ones (QL104).
    """
    import pennylane as qml
    from pennylane.devices.preprocess import decompose as pl_decompose
    from pennylane.exceptions import DeviceError

    (tape,), _ = qml.defer_measurements(tape)
    try:
        (tape,), _ = pl_decompose(
            tape,
            stopping_condition=supported,
            # an initial StatePrep/BasisState is decomposed like any other operation
            # (PennyLane's default leaves it to devices that load states)
            skip_initial_state_prep=False,
            decomposer=decomposition,
            name="qmk",
        )
    except DeviceError as exc:
        raise FrontendError.of("unsupported", f"pennylane: {exc}") from None
    return tape


def decomposition(op: Any) -> Any:
    """PennyLane's decomposition of ``op``; an operation that has none but has a matrix
    (``BlockEncode``, a user's matrix-only operator) becomes the ``QubitUnitary`` of its
    matrix, which PennyLane decomposes exactly."""
    import pennylane as qml

    if op.has_decomposition or not op.has_matrix:
        return op.decomposition()
    return [qml.QubitUnitary(op.matrix(), wires=op.wires)]


def from_pennylane(
    tape: Any, *args: Any, profile: str | None = None, name: str = "pennylane", **kwargs: Any
) -> Graph:
    """Lower a PennyLane tape, or a QNode called with ``args``/``kwargs``.

    Raises:
        FrontendError: not a tape or QNode (QL107), an operation QMK cannot lower or
            observables that do not commute on a wire (QL104).
    """
    try:
        import pennylane as qml
    except ImportError:  # pragma: no cover - pennylane is an optional extra
        raise FrontendError.of(
            "missing-extra", "from_pennylane needs pennylane: pip install 'qmk[pennylane]'"
        ) from None
    if isinstance(tape, qml.QNode):
        tape = qml.workflow.construct_tape(tape)(*args, **kwargs)
    elif args or kwargs:
        raise FrontendError.of("bad-value", "arguments are taken with a QNode, not a tape")
    if not isinstance(tape, qml.tape.QuantumScript):
        raise FrontendError.of(
            "bad-value", f"from_pennylane takes a tape or a QNode, got {type(tape).__name__}"
        )
    tape = plain_tape(tape)
    low = lowered(tape, list(tape.wires), profile=profile, name=name)
    measured = _measured_wires(tape)
    events = measure(low.builder, low.handles, _diagonalizing(tape, measured), measured, name=name)
    return low.builder.build(output=[events] if events else [], metadata={"language": "pennylane"})


@dataclass(frozen=True)
class Lowering:
    """A plain tape's operations in a builder (:func:`lowered`).

    Attributes:
        builder: the program so far (``wires`` allocated in order, the operations applied).
        handles: each wire's qubit handle.
        phase: the global phase the program does not carry: the tape's state is
            ``exp(1j * phase)`` times the program's (``GlobalPhase`` operations and the
            decompositions' phases), which the device puts back on ``qml.state()``.
    """

    builder: ProgramBuilder
    handles: Mapping[Any, str]
    phase: float


def lowered(tape: Any, wires: Sequence[Any], *, profile: str | None, name: str) -> Lowering:
    """A builder with ``wires`` allocated in order and a plain tape's operations applied
    (:func:`plain_tape`), each wire's handle, and the global phase left out."""
    builder = ProgramBuilder(profile=profile, source=name, description=name)
    handles = dict(zip(wires, builder.allocate(len(wires)), strict=True)) if wires else {}
    phase = 0.0
    for k, op in enumerate(tape.operations):
        phase += apply(builder, op, [handles[w] for w in op.wires], where=f"{name}#{k}")
    return Lowering(builder, MappingProxyType(handles), phase)


def lowered_for_gradient(
    tape: Any, wires: Sequence[Any], *, profile: str | None, name: str
) -> tuple[Lowering, tuple[tuple[tuple[str, float], ...], ...]]:
    """:func:`lowered`, each trainable parameter of the tape (``tape.trainable_params``)
    written through :data:`DIFFERENTIABLE`'s affine lowering, and for each one, the
    nodes whose angle it sets and by what slope: ``d/dp = sum(slope * d/d(node angle))``.

    Raises:
        FrontendError: a trainable operation that is not :data:`DIFFERENTIABLE` (QL104:
            decompose it first, as the device's preprocessing does).
    """
    builder = ProgramBuilder(profile=profile, source=name, description=name)
    handles = dict(zip(wires, builder.allocate(len(wires)), strict=True)) if wires else {}
    trainable = set(tape.trainable_params)
    columns: list[tuple[tuple[str, float], ...]] = []
    phase = 0.0
    first = 0  # the index of the operation's first parameter among the tape's
    for k, op in enumerate(tape.operations):
        where = f"{name}#{k}"
        qubits = [handles[w] for w in op.wires]
        mine = trainable.intersection(range(first, first + op.num_params))
        if not mine or op.name in SKIPPED:
            phase += apply(builder, op, qubits, where=where)
            # a global phase changes no expectation value: nothing to differentiate
            columns.extend(() for _ in mine)
        elif op.name in DIFFERENTIABLE and op.num_params == 1:
            t = float(op.parameters[0])
            ops, offset, slope = decompose.affine(DIFFERENTIABLE[op.name])
            nodes = []
            for gate, qs, at, by in ops:
                angle = (at + by * t,) if decompose.arity(gate)[1] else ()
                builder.gate(gate, [qubits[q] for q in qs], angle, where=where)
                if by:
                    nodes.append((builder.nodes[-1].id, by))
            columns.append(tuple(nodes))
            phase += offset + slope * t
        else:
            raise FrontendError.of(
                "unsupported",
                f"{where}: {op.name} has a trainable parameter that QMK's gradient does not "
                f"differentiate; decompose it into {', '.join(sorted(DIFFERENTIABLE))}",
            )
        first += op.num_params
    return Lowering(builder, MappingProxyType(handles), phase), tuple(columns)


def measure(
    builder: ProgramBuilder,
    handles: Mapping[Any, str],
    diagonalizing: Sequence[Any],
    wires: Sequence[Any],
    *,
    name: str,
) -> list[str]:
    """The observables' ``diagonalizing`` gates (decomposed by PennyLane where
    :func:`supported` refuses them: a two-wire ``Hermitian``'s ``QubitUnitary``), then
    ``wires`` measured: their events."""
    import pennylane as qml

    for k, op in enumerate(plain_tape(qml.tape.QuantumScript(list(diagonalizing))).operations):
        apply(builder, op, [handles[w] for w in op.wires], where=f"{name}#diag{k}")
    return [builder.measure(handles[w], where=f"{name}#measure") for w in wires]


def apply(builder: ProgramBuilder, op: Any, qubits: list[str], *, where: str) -> float:
    """Append ``op`` (a :func:`supported` operation) on ``qubits`` to ``builder``.

    Returns:
        the global phase written gates leave out: ``op``'s matrix is ``exp(1j * phase)``
        times theirs (``GlobalPhase(phi)`` is ``exp(-1j * phi)``, nothing written).

    Raises:
        FrontendError: an operation that is neither skipped, named nor one-qubit (QL104).
    """
    if op.name == "GlobalPhase":
        return -float(op.parameters[0])
    if op.name in SKIPPED:
        return 0.0
    if op.name in NAMED:
        low = decompose.lower_gate(NAMED[op.name], tuple(float(p) for p in op.parameters))
    elif len(qubits) == 1 and op.has_matrix:
        low = decompose.unitary(np.asarray(op.matrix(), dtype=complex))
    else:
        raise FrontendError.of(
            "unsupported", f"{where}: operation {op.name} on {len(qubits)} wires is not supported"
        )
    for gate, qs, params in low.ops:
        builder.gate(gate, [qubits[q] for q in qs], params, where=where)
    return float(low.phase)


def _measured_wires(tape: Any) -> list[Any]:
    """The wires the measurements read, in the tape's wire order."""
    read: set[Any] = set()
    for mp in tape.measurements:
        read.update(mp.wires if len(mp.wires) else tape.wires)
    return [w for w in tape.wires if w in read]


def _diagonalizing(tape: Any, measured: list[Any]) -> list[Any]:
    """The observables' diagonalizing gates, once each, refusing two observables that
    read a wire in different bases."""
    import pennylane as qml

    basis: dict[Any, tuple[Any, list[Any]]] = {}
    gates: list[Any] = []
    for mp in tape.measurements:
        obs = mp.obs
        if obs is None:
            continue
        diagonalizing = obs.diagonalizing_gates()
        claimed = set(basis)
        for wire in obs.wires:
            # a wire's basis: the diagonalizing gates that touch it, matrices included
            # (two Hermitians differ by matrix, not by their gates' names)
            mine = [g for g in diagonalizing if wire in g.wires]
            first, theirs = basis.setdefault(wire, (obs, mine))
            if len(theirs) != len(mine) or not all(map(qml.equal, theirs, mine)):
                raise FrontendError.of(
                    "unsupported",
                    f"observables {first} and {obs} read wire {wire} in different bases, "
                    "which one run cannot: split the tape (qml.transforms.split_non_commuting)",
                )
        # an earlier observable already turned these wires into the same basis
        gates.extend(g for g in diagonalizing if not set(g.wires) <= claimed)
    return gates
