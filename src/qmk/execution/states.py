"""A run's initial and final quantum states: ``qmk run --initial-state`` and ``--state``.

The file format is :mod:`qmk.engines.state_io` (amplitudes or stabilizers, qubit order
stated). Here is what a run does with one.

**Initial state.** The qubits the program allocates first, in its opening ``ALLOC_LQ``
nodes (the nodes before anything else, in order, one qubit per handle), start in the
state instead of ``|0...0>``: state qubit k is the k-th of them (names need not match).
A state of another size, or opening allocations under a guard, is ``QE112
state-mismatch``. The engine prepares the state (with its own gates, or by loading
the amplitudes where it can: :func:`~qmk.engines.state_io.prepare`) the moment the
first of those qubits is allocated (:class:`Preloaded`), so a logical error after an
``ALLOC_LQ`` hits the state, as it would hit ``|0>``. Amplitudes need an engine that
applies any rotation: a run that names none goes to the statevector engine.

**Final state.** The state of the qubits live at the end of the program (before its
closing ``FREE_LQ`` nodes, which only discard them), in allocation order, named by
their handles, on the run's engine: stabilizers on the stabilizer engine, amplitudes
on the others, or the kind asked for. It is exported only when it is one pure state,
the same in every shot; anything else is ``QE113 state-unavailable`` naming the node,
never a state chosen at random (:func:`check_exportable`, before any work):

- a measurement of any kind (its outcome would pick the state);
- logical noise (``noise=True``, the default of ``qmk.run``) or a channel of fidelity
  below 1: each makes a mixture;
- a ``RESET``, ``FREE_LQ``, ``INJECT_T_STATE`` or ``OPEN_CHAN`` on a qubit entangled
  with the others (its Bloch vector is not of length 1): found while simulating.

>>> from qmk.qvm.asm import assemble
>>> from qmk.execution import run
>>> bell = assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0, vq:q1
... h: APPLY_H vq:q0
... c: APPLY_CNOT vq:q0, vq:q1
... f: FREE_LQ vq:q0, vq:q1
... ''')
>>> run(bell, shots=1, seed=1, noise=False, final_state=True).final_state.stabilizers
('+XX', '+ZZ')
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from qmk import defaults
from qmk.engines import EngineError
from qmk.engines.base import Engine, GateCall, apply_segment
from qmk.engines.state_io import QuantumState, capture, prepare, read
from qmk.execution.microcode import Reader
from qmk.execution.plan import Plan, expand
from qmk.execution.trajectories import closing_start, noiseless_ops
from qmk.qvm.expansions import Micro, measures
from qmk.qvm.ops import OPS, Exec

#: A Bloch vector this close to length 1 is a qubit in a product state with the rest.
PURE = 1e-9
#: The kinds ``final_state=`` takes (True means "auto": the engine's own).
FINAL_KINDS = ("auto", "amplitudes", "stabilizers")


def load(state: QuantumState | str | os.PathLike[str]) -> QuantumState:
    """A state, or the state in a file (``QE111 state-file`` when it is not one)."""
    if isinstance(state, str | os.PathLike):
        return read(state)
    return state


def opening_qubits(plan: Plan) -> tuple[str, ...]:
    """The handles the program's opening ``ALLOC_LQ`` nodes allocate, in order.

    Raises:
        EngineError: ``QE112 state-mismatch`` for an opening allocation under a guard.
    """
    handles: list[str] = []
    for index, node, kind in zip(itertools.count(), plan.steps.nodes, plan.steps.kinds):
        if kind != "alloc":
            break
        if node.guard is not None:
            raise EngineError.of(
                "state-mismatch",
                f"node #{index} {node.id!r} (ALLOC_LQ) allocates under a guard: "
                "an initial state needs the opening allocations to happen",
            )
        handles.extend(node.vqs)
    return tuple(handles)


def check_initial(plan: Plan, state: QuantumState) -> None:
    """Refuse (``QE112 state-mismatch``) a state that does not fit the program's opening
    allocations."""
    handles = opening_qubits(plan)
    if len(handles) != state.num_qubits:
        shown = ", ".join(handles[:8]) + (" ..." if len(handles) > 8 else "")
        raise EngineError.of(
            "state-mismatch",
            f"the initial state has {state.num_qubits} qubit(s) ({', '.join(state.qubits[:8])}"
            f"{' ...' if state.num_qubits > 8 else ''}) but the program's opening ALLOC_LQ "
            f"nodes allocate {len(handles)} ({shown or 'none'}): they must be as many",
            state_qubits=state.num_qubits,
            program_qubits=len(handles),
        )


def can_prepare(engine: Engine, state: QuantumState) -> bool:
    """Whether ``engine`` has the gates to prepare ``state`` (amplitudes: any rotation)."""
    gates = ("ry", "rz") if state.kind == "amplitudes" else ("h", "s")
    return all(engine.supports(g, (0.1,) if g in ("ry", "rz") else ()) for g in gates)


def engine_for(state: QuantumState, engine: Engine, *, named: bool) -> str | None:
    """None when ``engine`` can prepare ``state``; else the engine to run on instead
    (the statevector engine, which applies any rotation).

    Raises:
        EngineError: ``QE112 state-mismatch`` when the engine was ``named`` by the caller.
    """
    if can_prepare(engine, state):
        return None
    if named:
        raise EngineError.of(
            "state-mismatch",
            f"the {engine.name} engine cannot prepare an initial state of {state.kind} "
            f"(it applies only some rotations): use --engine {defaults.STATEVECTOR}, a "
            "stabilizer state, or let QMK choose",
        )
    return defaults.STATEVECTOR


class Preloaded:
    """An engine whose first ``n`` allocations come up in ``state``, not ``|0...0>``.

    At the first :meth:`allocate` it allocates all ``n`` qubits, prepares the state on
    them (:func:`qmk.engines.state_io.prepare`) and hands them out one per call; after
    that, and after any :meth:`restore` (every snapshot is taken after the opening
    allocations), it is the engine itself. Everything else goes to the engine.
    """

    def __init__(self, engine: Engine, state: QuantumState) -> None:
        self._engine = engine
        self._state = state
        self._waiting: list[int] | None = None
        self._done = False

    def allocate(self) -> int:
        if self._done:
            return self._engine.allocate()
        if self._waiting is None:
            qubits = [self._engine.allocate() for _ in range(self._state.num_qubits)]
            prepare(self._engine, qubits, self._state)
            self._waiting = qubits
        qubit = self._waiting.pop(0)
        self._done = not self._waiting
        return qubit

    def restore(self, snapshot: Any) -> None:
        self._done = True
        self._engine.restore(snapshot)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def factory(make: Callable[[], Engine], state: QuantumState | None) -> Callable[[], Engine]:
    """``make``, or engines from it that start in ``state`` (:class:`Preloaded`)."""
    if state is None:
        return make
    return lambda: Preloaded(make(), state)  # type: ignore[return-value]


def check_exportable(plan: Plan) -> None:
    """Refuse (``QE113 state-unavailable``) a program whose final state is not one pure
    state, naming the node, before any work (entangled resets are found while running)."""
    for index, node, kind in zip(itertools.count(), plan.steps.nodes, plan.steps.kinds):
        why = None
        werner = [c.fidelity for c in expand(node) if c.kind is Micro.WERNER and c.fidelity < 1]
        if measures(OPS[node.op]):
            why = "it measures, so the final state depends on the outcome"
        elif kind in (Exec.CALC, Exec.HALT):
            why = "it computes on outcomes at run time"
        elif werner:
            why = f"its channel's fidelity {werner[0]:g} < 1 makes a mixture"
        if why is not None:
            raise EngineError.of(
                "state-unavailable",
                f"node #{index} {node.id!r} ({node.op}): {why}; export the state of "
                "the program before it",
                node=node.id,
            )
    if plan.noise:
        raise EngineError.of(
            "state-unavailable",
            f"logical noise is on ({len(plan.noise)} error locations), which makes the final "
            "state a mixture; run with noise off (--no-noise, noise=False)",
        )


def final_state(plan: Plan, make: Callable[[], Engine], *, kind: str = "auto") -> QuantumState:
    """The program's final state (see the module docstring), simulated once on ``make()``.

    Raises:
        EngineError: ``QE113 state-unavailable`` (:func:`check_exportable`, or a reset or
            free of an entangled qubit); ``QE112 state-mismatch`` for a kind the engine
            cannot export.
    """
    check_exportable(plan)
    engine = make()
    ops = noiseless_ops(plan).ops
    qmap: dict[str, int] = {}
    gates: list[GateCall] = []  # a run of gates, applied as one segment (fused)
    try:
        for op in Reader(ops).span(0, closing_start(ops)):
            # nothing is measured: every event reads 0, a guard holds when it asks for 0s
            if op.guard is not None and any(t.equals for t in op.guard.terms):
                continue
            if op.kind == "gate":
                gates.append((op.gate, [qmap[q] for q in op.qubits], op.params))
                continue
            if gates:
                apply_segment(engine, gates)
                gates = []
            if op.kind == "alloc":
                qmap[op.qubits[0]] = engine.allocate()
            elif op.kind in ("reset", "free"):
                name = op.qubits[0]
                _discard(engine, qmap[name], name, op.kind)
                if op.kind == "free":
                    engine.free(qmap.pop(name))
                else:
                    engine.reset(qmap[name])
    finally:  # (the plan's micro-ops are kept: their rows are not)
        ops.forget()
    if gates:
        apply_segment(engine, gates)
    names = tuple(qmap)
    return capture(engine, [qmap[n] for n in names], names, kind=kind)


def _discard(engine: Engine, qubit: int, name: str, kind: str) -> None:
    """Collapse ``qubit`` onto its likelier Z outcome when it is in a product state with
    the rest (so the others keep their state whatever the outcome), else refuse."""
    p = {basis: engine.probability(qubit, basis) for basis in ("X", "Y", "Z")}
    length = sum((1 - 2 * value) ** 2 for value in p.values()) ** 0.5
    if length < 1 - PURE:
        what = "free" if kind == "free" else "reset"
        raise EngineError.of(
            "state-unavailable",
            f"qubit {name!r} is entangled with others (Bloch vector length {length:.3g}) where "
            f"the program {what}s it (FREE_LQ, RESET, INJECT_T_STATE or OPEN_CHAN): the "
            "others are left in a mixture",
            qubit=name,
        )
    engine.collapse(qubit, 1 if p["Z"] > 0.5 else 0, "Z")
