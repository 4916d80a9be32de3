"""Adjoint differentiation: every gate angle's derivative of expectation values in one
backward sweep over the gates (Jones and Gacon, arXiv:2009.02823).

Given a circuit's final state ``|psi> = U_N ... U_1 |psi_0>`` and observables ``O_k``,
:func:`jacobian` keeps ``|phi> = |psi>`` and ``|lambda_k> = O_k |psi>`` and walks the gates
backwards, undoing each on all of them. At a gate ``U(t) = exp(-i t P / 2)`` (its
record's :attr:`~qmk.gates.Gate.generator` ``P``) the derivative of ``<O_k>`` by its
angle is ``Im <lambda_k| P |phi>``. The whole Jacobian costs about two state evolutions
whatever the number of angles (parameter shift costs two per angle).

The states are one array with a row per vector, so each gate is undone on all of them at
once (:func:`qmk.engines.rows.apply_matrix`). Qubit ``k`` is bit ``k`` of
an amplitude's index, as in :class:`~qmk.engines.state_io.Amplitudes`.

>>> import numpy as np
>>> from qmk.engines.observables import PauliSum
>>> t = 0.3
>>> psi = np.array([np.cos(t / 2), -1j * np.sin(t / 2)])  # rx(t)|0>
>>> out = jacobian(psi, [("rx", (0,), (t,))], [PauliSum.of([(1.0, {0: "Z"})])])
>>> round(float(out.values[0]), 12), round(float(out.jacobian[0, 0]), 12)  # cos t, -sin t
(0.955336489126, -0.295520206661)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk.engines.base import EngineError, GateCall
from qmk.engines.gates import GATES
from qmk.engines.observables import Observable, apply
from qmk.engines.rows import KERNEL_AMPLITUDES, apply_matrix, inner


@dataclass(frozen=True, slots=True)
class Derivatives:
    """Expectation values and their Jacobian by every gate angle.

    Attributes:
        values: ``<O_k>``, one per observable.
        jacobian: ``d<O_k>/d t_j``, a row per observable and a column per gate that has
            an angle, in circuit order.
        gates: the positions, in the gate list, of those gates (the columns).
    """

    values: np.ndarray
    jacobian: np.ndarray
    gates: tuple[int, ...]


def jacobian(
    state: np.ndarray, gates: Sequence[GateCall], observables: Sequence[Observable]
) -> Derivatives:
    """:class:`Derivatives` of ``observables`` on ``state``, the final state of ``gates``.

    Args:
        state: the final state's ``2**n`` amplitudes (qubit ``k`` bit ``k``).
        gates: the circuit, in order: ``(gate, qubits, params)`` with qubits as state
            qubit indices and gates of :data:`~qmk.engines.gates.GATES`.
        observables: Pauli sums or Hermitian matrices (:mod:`qmk.engines.observables`).

    Raises:
        EngineError: ``QE103`` for a gate with an angle but no generator; ``QE105``
            for a gate or observable on qubits the state does not have.
    """
    psi = np.asarray(state, dtype=np.complex128).reshape(-1)
    n = psi.size.bit_length() - 1
    angled = [j for j, (name, _, params) in enumerate(gates) if _angled(name, params)]
    for name, qubits, _ in gates:
        _check(name, qubits, n)
    stack = np.empty((1 + len(observables), psi.size), dtype=np.complex128)
    stack[0] = psi
    for k, observable in enumerate(observables):
        stack[1 + k] = apply(psi, observable)
    values = np.array([inner(psi, row).real for row in stack[1:]])
    out = np.zeros((len(observables), len(angled)), dtype=np.float64)
    column = len(angled)
    for j in range(len(gates) - 1, -1, -1):
        name, qubits, params = gates[j]
        record = GATES[name]
        if column and angled[column - 1] == j:
            column -= 1
            out[:, column] = _generator_values(stack, record.generator, qubits)
        if params:
            inverse, undo = record.adjoint(params)
            apply_matrix(stack, GATES[inverse].matrix(undo), qubits)
        else:
            apply_matrix(stack, _fixed(record.inverse or name), qubits)
    return Derivatives(values=values, jacobian=out, gates=tuple(angled))


def evolve(gates: Sequence[GateCall], num_qubits: int) -> np.ndarray:
    """The state ``gates`` make from ``|0...0>`` on ``num_qubits`` qubits, with the same
    passes as the backward sweep: a gradient's forward sweep where the state is small
    enough that a pass costs less than planning the engine's fused segments.

    Raises:
        EngineError: ``QE103``/``QE105`` as :func:`jacobian`.
    """
    stack = np.zeros((1, 1 << num_qubits), dtype=np.complex128)
    stack[0, 0] = 1
    for name, qubits, params in gates:
        _check(name, qubits, num_qubits)
        matrix = GATES[name].matrix(params) if params else _fixed(name)
        apply_matrix(stack, matrix, qubits)
    return stack[0]


def _generator_values(stack: np.ndarray, word: str, qubits: Sequence[int]) -> np.ndarray:
    """``Im <lambda_k|P|phi>`` for each observable row ``lambda_k`` of ``stack`` (row 0
    is ``phi``): for a one-qubit ``P`` and few rows, from the qubit's halves of the rows
    (no copy of ``P|phi>``); else from ``P|phi>`` and one matrix product."""
    rows, size = stack.shape
    if len(qubits) == 1 and rows <= _FEW_ROWS and size < KERNEL_AMPLITUDES:
        (qubit,) = qubits
        halves = stack.reshape(rows, size >> (qubit + 1), 2, 1 << qubit)
        phi0, phi1 = halves[0, :, 0, :], halves[0, :, 1, :]
        out = np.empty(rows - 1)
        for k in range(1, rows):
            lam0, lam1 = halves[k, :, 0, :], halves[k, :, 1, :]
            if word == "Z":
                value = inner(lam0, phi0) - inner(lam1, phi1)
            elif word == "X":
                value = inner(lam0, phi1) + inner(lam1, phi0)
            else:  # Y: -i on bit 0 (from bit 1), +i on bit 1
                value = 1j * (inner(lam1, phi0) - inner(lam0, phi1))
            out[k - 1] = value.imag
        return out
    turned = _turned(stack[0], word, qubits)
    return np.array([inner(row, turned).imag for row in stack[1:]])


#: Up to this many rows (the state and its observables' vectors), a one-qubit
#: generator's values are read from the rows' halves one observable at a time.
_FEW_ROWS = 5


def _turned(phi: np.ndarray, word: str, qubits: Sequence[int]) -> np.ndarray:
    """``P|phi>`` for the Pauli word ``word`` on ``qubits``, a new vector."""
    n = phi.size.bit_length() - 1
    out = phi
    for qubit, letter in zip(qubits, word, strict=True):
        if letter == "I":
            continue
        halves = out.reshape(1 << (n - 1 - qubit), 2, 1 << qubit)
        if letter != "Z":
            halves = halves[:, ::-1, :]  # X and Y flip the bit
        flipped = np.array(halves, copy=True)
        if letter != "X":
            # Z: +1 on bit 0, -1 on bit 1; Y = iXZ: -i on bit 0 (from 1), +i on bit 1
            factor = (1, -1) if letter == "Z" else (-1j, 1j)
            flipped[:, 0, :] *= factor[0]
            flipped[:, 1, :] *= factor[1]
        out = flipped.reshape(-1)
    return out if out is not phi else phi.copy()


def _fixed(name: str) -> np.ndarray:
    """The matrix of a gate without parameters (kept per record: a sweep meets the same
    gates often)."""
    record = GATES[name]
    found = _FIXED.get(record)
    if found is None:
        found = _FIXED[record] = record.matrix()
    return found


_FIXED: dict[Any, np.ndarray] = {}


def _angled(name: str, params: Sequence[float]) -> bool:
    """Whether the gate has an angle; ``QE103`` for one without a generator."""
    record = GATES.get(name)
    if record is None or not record.params:
        return False
    if not record.generator:
        raise EngineError.of(
            "gate-unsupported",
            f"gate {name} has a parameter but no generator: adjoint differentiation "
            "takes gates of the form exp(-i t P/2)",
            gate=name,
        )
    return True


def _check(name: str, qubits: Sequence[int], n: int) -> None:
    record = GATES.get(name)
    if record is None:
        raise EngineError.of("gate-unsupported", f"no gate named {name!r}", gate=repr(name))
    if len(qubits) != record.qubits or len(set(qubits)) != len(qubits):
        raise EngineError.of(
            "engine-misuse", f"{name} acts on {record.qubits} distinct qubit(s), got {qubits}"
        )
    if any(not 0 <= q < n for q in qubits):
        raise EngineError.of(
            "engine-misuse", f"{name} on qubits {list(qubits)} of a state of {n} qubit(s)"
        )


__all__ = ["Derivatives", "evolve", "jacobian"]
