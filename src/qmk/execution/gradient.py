"""A program's gradient: exact expectation values of its ideal final state and their
derivatives by every gate angle, by adjoint differentiation.

The logical target's executable offers it
(:meth:`~qmk.execution.logical.LogicalExecutable.gradient`), so a variational
front-end (the PennyLane device's ``diff_method="adjoint"``) runs through the same
target and request as any run. The program is planned as any run's and its final state
computed. Then one backward sweep over its gates (:func:`qmk.engines.adjoint.jacobian`)
gives the derivative of every observable by the angle of every
``APPLY_RX``/``APPLY_RY``/``APPLY_RZ`` node.

The final state is the run's (``final_state="amplitudes"`` on the request's engine,
:mod:`qmk.execution.states`). The exception is where the statevector would run a small
state from ``|0...0>`` (no other engine or precision named, no initial state, fewer
than :data:`~qmk.engines.rows.KERNEL_AMPLITUDES` amplitudes). There the forward sweep
is the backward sweep's own passes (:func:`qmk.engines.adjoint.evolve`), since planning
the engine's fused segments costs more than a small state's passes.

The program must be unitary after its allocations: no measurement, reset or free before
its closing frees, and no logical noise (a final state that is a mixture has no such
gradient); anything else is ``QE113 state-unavailable`` naming the node. Observables act
on the final state's qubits by index (:mod:`qmk.engines.observables`): qubit ``k`` is
the ``k``-th the program allocates.

>>> from qmk.engines.observables import PauliSum
>>> from qmk.execution.logical import LogicalTarget
>>> from qmk.execution.request import RunRequest
>>> from qmk.qvm.asm import assemble
>>> program = LogicalTarget().read(assemble('''
... .caps CAP_ALLOC
... a: ALLOC_LQ vq:q0
... r: APPLY_RY vq:q0, theta=0.5
... '''))
>>> request = RunRequest(program_digest="ab" * 32, shots=1, seed=0, noise=False)
>>> out = LogicalTarget().compile(program, request).gradient([PauliSum.of([(1, {0: "Z"})])])
>>> out.nodes, round(float(out.values[0]), 9), round(float(out.jacobian[0, 0]), 9)
(('r',), 0.877582562, -0.479425539)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from qmk.engines.base import EngineError, GateCall

if TYPE_CHECKING:
    from qmk.engines.observables import Observable
    from qmk.execution.plan import Plan
    from qmk.execution.request import RunRequest
    from qmk.qvm.verify import VerifiedProgram


@dataclass(frozen=True, slots=True)
class Gradient:
    """Exact expectation values and their Jacobian by the program's gate angles.

    Attributes:
        values: ``<O_k>`` of each observable on the final state.
        jacobian: ``d<O_k>/d theta``: a row per observable, a column per node of ``nodes``.
        nodes: the ids of the program's gate nodes with an angle, in program order.
    """

    values: np.ndarray
    jacobian: np.ndarray
    nodes: tuple[str, ...]


def gradient(
    program: VerifiedProgram,
    request: RunRequest,
    observables: Sequence[Observable],
    *,
    initial_state: Any = None,
) -> Gradient:
    """The :class:`Gradient` of ``observables`` for ``program`` run as ``request`` says
    (its engine, precision and physics; noise must be off).

    Raises:
        EngineError: ``QE113`` for a program that is not unitary after its allocations or
            a request with noise on; ``QE103`` for a gate with an angle but no generator;
            ``QE105`` for an observable on a qubit the program does not have.
        QMKError: what the run of the program refuses.
    """
    from qmk import defaults
    from qmk.engines.adjoint import evolve, jacobian
    from qmk.engines.rows import KERNEL_AMPLITUDES
    from qmk.engines.state_io import Amplitudes
    from qmk.execution.executor import execute, plan_for
    from qmk.execution.states import check_exportable

    plan = plan_for(program, request)
    check_exportable(plan)
    calls, nodes, order = gate_calls(plan)
    if (
        initial_state is None
        and request.engine in (None, defaults.STATEVECTOR)
        and request.precision is None
        and 1 << len(order) < KERNEL_AMPLITUDES
    ):
        amplitudes = evolve(calls, len(order))
    else:
        once = msgspec.structs.replace(request, shots=1)
        run = execute(program, once, final_state="amplitudes", initial_state=initial_state)
        final = run.final_state
        assert isinstance(final, Amplitudes)  # execute(final_state="amplitudes") gave them
        if final.qubits != tuple(order):
            raise EngineError.of(  # pragma: no cover - gate_calls refuses what could differ
                "state-unavailable", "the final state's qubits are not the program's allocations"
            )
        amplitudes = np.asarray(final.amplitudes)
    out = jacobian(amplitudes, calls, observables)
    return Gradient(
        values=out.values, jacobian=out.jacobian, nodes=tuple(nodes[j] for j in out.gates)
    )


def gate_calls(plan: Plan) -> tuple[list[GateCall], list[str], list[str]]:
    """The program's gates as engine calls on qubit indices (the ``k``-th allocated
    qubit is ``k``), each gate's node id, and the qubits' handles in allocation order.

    Raises:
        EngineError: ``QE113`` for a reset, or a free before the program's closing ones.
    """
    from qmk.execution.microcode import Reader
    from qmk.execution.trajectories import closing_start, noiseless_ops

    noiseless = noiseless_ops(plan)
    ops = noiseless.ops
    end = closing_start(ops)
    rows = Reader(ops)
    index: dict[str, int] = {}
    calls: list[GateCall] = []
    nodes: list[str] = []
    steps = zip(plan.steps.nodes, noiseless.bounds, strict=True)
    try:
        for at, (node, (start, stop)) in enumerate(steps):
            for op in rows.span(start, min(stop, end)):
                if op.kind == "alloc":
                    index[op.qubits[0]] = len(index)
                elif op.kind == "gate":
                    calls.append((op.gate, tuple(index[q] for q in op.qubits), op.params))
                    nodes.append(node.id)
                elif op.kind != "fence":
                    raise EngineError.of(
                        "state-unavailable",
                        f"node #{at} {node.id!r} ({node.op}) is not a unitary "
                        "gate: a gradient needs gates only between the allocations and the "
                        "closing frees",
                        node=node.id,
                    )
    finally:  # (the plan's micro-ops are kept: their rows are not)
        rows.forget()
    return calls, nodes, list(index)


__all__ = ["Gradient", "gate_calls", "gradient"]
