"""The gates as engines use them: the records, the measurement bases, unitaries of circuits.

Engines know gates, not graphs: the kernel's executor translates QVM ops into the
names of the gate records (:data:`qmk.gates.GATES`, here as :data:`GATES`), whose
matrices are the reference that engines and the conformance tests
(:func:`qmk.testing.assert_engine_conformance`) agree with. Here beside them: the bases
an engine measures in, the unitary of a list of gates, a matrix read as a Pauli
product, and what a universal engine accepts; the records' registry is here too
(:func:`~qmk.gates.register`, :func:`~qmk.gates.registered`), for an engine's own gates.

>>> import numpy as np
>>> np.allclose(GATES["h"].matrix() @ GATES["h"].matrix(), np.eye(2))
True
>>> GATES["rz"].is_clifford((np.pi / 2,)), GATES["rz"].is_clifford((0.3,))
(True, False)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from qmk.gates import GATES, Gate, Names, fixed, named, quarter_turns, register, registered

#: Measurement bases an engine measures in: outcome 0 is the +1 eigenstate.
BASES = ("Z", "X", "Y")

#: The gates (in order) that turn each basis into Z: measuring Z after them measures the
#: basis, with the same outcome for the same eigenstate.
TO_Z: Mapping[str, tuple[str, ...]] = MappingProxyType({"Z": (), "X": ("h",), "Y": ("sdg", "h")})

#: A gate applied: its name, its qubits, its parameters.
Applied = tuple[str, Sequence[int], Sequence[float]]


def unitary(gates: Sequence[Applied], num_qubits: int) -> np.ndarray:
    """The unitary of ``gates`` applied in order to ``num_qubits`` qubits (qubit 0 the most
    significant bit, as in every gate's matrix).

    >>> bell = unitary([("h", (0,), ()), ("cx", (0, 1), ())], 2)
    >>> np.round(bell[:, 0].real, 6).tolist()
    [0.707107, 0.0, 0.0, 0.707107]
    """
    dim = 2**num_qubits
    u = np.eye(dim, dtype=np.complex128).reshape((2,) * num_qubits + (dim,))
    for name, qubits, params in gates:
        k = len(qubits)
        g = GATES[name].matrix(params).reshape((2,) * (2 * k))
        u = np.tensordot(g, u, axes=(list(range(k, 2 * k)), list(qubits)))
        u = np.moveaxis(u, list(range(k)), list(qubits))
    return u.reshape(dim, dim)


#: The Pauli matrices by letter (identity ``I`` included).
PAULIS: Mapping[str, np.ndarray] = MappingProxyType(
    {
        "I": np.eye(2, dtype=np.complex128),
        "X": GATES["x"].matrix(),
        "Y": GATES["y"].matrix(),
        "Z": GATES["z"].matrix(),
    }
)


def pauli_string(matrix: np.ndarray, *, tolerance: float = 1e-9) -> tuple[int, str] | None:
    """``(sign, letters)`` when ``matrix`` is a Pauli product times +1 or -1 (one letter
    per qubit, qubit 0 first), else None.

    >>> h = GATES["h"].matrix()
    >>> pauli_string(h @ GATES["z"].matrix() @ h), pauli_string(-np.kron(h @ h, PAULIS["Y"]))
    ((1, 'X'), (-1, 'IY'))
    >>> pauli_string(GATES["t"].matrix()) is None
    True
    """
    num_qubits = int(matrix.shape[0]).bit_length() - 1
    for letters in itertools.product("IXYZ", repeat=num_qubits):
        pauli = np.eye(1, dtype=np.complex128)
        for letter in letters:
            pauli = np.kron(pauli, PAULIS[letter])
        overlap = np.trace(pauli @ matrix) / matrix.shape[0]
        if abs(abs(overlap) - 1) < tolerance and abs(overlap.imag) < tolerance:
            return (1 if overlap.real > 0 else -1), "".join(letters)
    return None


def accepts(gate: object, params: Sequence[float] = ()) -> bool:
    """Whether ``gate`` is in :data:`GATES` and ``params`` are its number of finite numbers
    (what a universal engine's ``supports`` answers).

    >>> accepts("rz", [0.3]), accepts("rz", []), accepts("rz", [math.inf]), accepts("toffoli")
    (True, False, False, False)
    """
    entry = GATES.get(gate) if isinstance(gate, str) else None
    if entry is None or len(params) != len(entry.params):
        return False
    try:
        return all(math.isfinite(float(p)) for p in params)
    except (TypeError, ValueError):
        return False


__all__ = [
    "BASES",
    "GATES",
    "PAULIS",
    "TO_Z",
    "Applied",
    "Gate",
    "Names",
    "accepts",
    "fixed",
    "named",
    "pauli_string",
    "quarter_turns",
    "register",
    "registered",
    "unitary",
]
