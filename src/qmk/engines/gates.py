"""The gate set every engine understands: names, arities, parameters and matrices.

Engines know gates, not graphs: the kernel's executor translates QVM ops into these
names. Each gate is one :class:`Gate` record; the matrices here are the reference
that engines and the conformance tests (:func:`qmk.testing.assert_engine_conformance`)
agree with.

Conventions: qubit 0 of a gate is the most significant bit of its matrix index
(``cx`` on ``(c, t)`` is ``|c t> -> |c, t xor c>``); rotations take radians with
``rz(t) = exp(-i t Z / 2)``.

>>> import numpy as np
>>> np.allclose(GATES["h"].matrix() @ GATES["h"].matrix(), np.eye(2))
True
>>> GATES["rz"].is_clifford((np.pi / 2,)), GATES["rz"].is_clifford((0.3,))
(True, False)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

_S2 = 1 / math.sqrt(2)


def _fixed(rows: list[list[complex]]) -> Callable[[Sequence[float]], np.ndarray]:
    matrix = np.array(rows, dtype=np.complex128)
    matrix.setflags(write=False)
    return lambda _params: matrix


def _rx(params: Sequence[float]) -> np.ndarray:
    c, s = math.cos(params[0] / 2), math.sin(params[0] / 2)
    return np.array([[c, -1j * s], [-1j * s, c]], dtype=np.complex128)


def _ry(params: Sequence[float]) -> np.ndarray:
    c, s = math.cos(params[0] / 2), math.sin(params[0] / 2)
    return np.array([[c, -s], [s, c]], dtype=np.complex128)


def _rz(params: Sequence[float]) -> np.ndarray:
    half = params[0] / 2
    c, s = math.cos(half), math.sin(half)
    # two entries set in zeros: half the time of np.array of nested lists (a random
    # circuit's engine builds hundreds of these a run)
    matrix = np.zeros((2, 2), dtype=np.complex128)
    matrix[0, 0] = complex(c, -s)
    matrix[1, 1] = complex(c, s)
    return matrix


def quarter_turns(theta: float, *, tolerance: float = 1e-9) -> int | None:
    """``theta`` as a whole number of quarter turns (mod 4), or None when it is not one.

    >>> quarter_turns(math.pi), quarter_turns(-math.pi / 2), quarter_turns(0.1)
    (2, 3, None)
    """
    turns = theta / (math.pi / 2)
    nearest = round(turns)
    if abs(turns - nearest) > tolerance:
        return None
    return nearest % 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    """One gate: its name, arity, parameter names and unitary.

    ``clifford`` is True when the gate is Clifford for every parameter value,
    ``quarter_turn`` when it is Clifford exactly at multiples of pi/2 of its one
    parameter. ``diagonal`` gates commute with each other and with Z measurement.
    """

    name: str
    qubits: int
    params: tuple[str, ...] = ()
    clifford: bool = False
    quarter_turn: bool = False
    diagonal: bool = False
    pauli: bool = False
    #: The gate whose matrix is this one's adjoint (``rx`` etc. with the angle negated:
    #: see :meth:`adjoint`); a REV segment's rollback applies it.
    inverse: str = ""
    build: Callable[[Sequence[float]], np.ndarray]

    def matrix(self, params: Sequence[float] = ()) -> np.ndarray:
        """The unitary, a ``2**qubits`` square complex128 matrix."""
        if len(params) != len(self.params):
            raise ValueError(f"{self.name} takes {len(self.params)} parameters, got {len(params)}")
        return self.build(params)

    def adjoint(self, params: Sequence[float] = ()) -> tuple[str, tuple[float, ...]]:
        """The gate and parameters that undo this gate with ``params``.

        >>> GATES["t"].adjoint(), GATES["rz"].adjoint((0.5,)), GATES["cx"].adjoint()
        (('tdg', ()), ('rz', (-0.5,)), ('cx', ()))
        """
        return (self.inverse or self.name), tuple(-float(p) for p in params)

    def is_clifford(self, params: Sequence[float] = ()) -> bool:
        """Whether the gate with these parameters is a Clifford gate."""
        if self.clifford:
            return True
        return self.quarter_turn and quarter_turns(params[0]) is not None


_T = complex(_S2, _S2)

#: Every gate, by name.
GATES: Mapping[str, Gate] = MappingProxyType(
    {
        gate.name: gate
        for gate in (
            Gate(
                name="i",
                qubits=1,
                clifford=True,
                diagonal=True,
                pauli=True,
                build=_fixed([[1, 0], [0, 1]]),
            ),
            Gate(name="x", qubits=1, clifford=True, pauli=True, build=_fixed([[0, 1], [1, 0]])),
            Gate(name="y", qubits=1, clifford=True, pauli=True, build=_fixed([[0, -1j], [1j, 0]])),
            Gate(
                name="z",
                qubits=1,
                clifford=True,
                diagonal=True,
                pauli=True,
                build=_fixed([[1, 0], [0, -1]]),
            ),
            Gate(name="h", qubits=1, clifford=True, build=_fixed([[_S2, _S2], [_S2, -_S2]])),
            Gate(
                name="s",
                inverse="sdg",
                qubits=1,
                clifford=True,
                diagonal=True,
                build=_fixed([[1, 0], [0, 1j]]),
            ),
            Gate(
                name="sdg",
                inverse="s",
                qubits=1,
                clifford=True,
                diagonal=True,
                build=_fixed([[1, 0], [0, -1j]]),
            ),
            Gate(name="t", inverse="tdg", qubits=1, diagonal=True, build=_fixed([[1, 0], [0, _T]])),
            Gate(
                name="tdg",
                inverse="t",
                qubits=1,
                diagonal=True,
                build=_fixed([[1, 0], [0, _T.conjugate()]]),
            ),
            Gate(name="rx", qubits=1, params=("theta",), quarter_turn=True, build=_rx),
            Gate(name="ry", qubits=1, params=("theta",), quarter_turn=True, build=_ry),
            Gate(
                name="rz", qubits=1, params=("theta",), quarter_turn=True, diagonal=True, build=_rz
            ),
            Gate(
                name="cx",
                qubits=2,
                clifford=True,
                build=_fixed([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]),
            ),
            Gate(
                name="cz",
                qubits=2,
                clifford=True,
                diagonal=True,
                build=_fixed([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]]),
            ),
            Gate(
                name="swap",
                qubits=2,
                clifford=True,
                build=_fixed([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
            ),
            Gate(
                name="ccx",
                qubits=3,
                build=_fixed(
                    [
                        [1 if (r == c if r < 6 else r + c == 13) else 0 for c in range(8)]
                        for r in range(8)
                    ]
                ),
            ),
            Gate(
                name="ccz",
                qubits=3,
                diagonal=True,
                build=_fixed(
                    [[(-1 if r == 7 else 1) if r == c else 0 for c in range(8)] for r in range(8)]
                ),
            ),
        )
    }
)

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


_PAULIS = {
    "I": np.eye(2, dtype=np.complex128),
    "X": GATES["x"].matrix(),
    "Y": GATES["y"].matrix(),
    "Z": GATES["z"].matrix(),
}


def pauli_string(matrix: np.ndarray, *, tolerance: float = 1e-9) -> tuple[int, str] | None:
    """``(sign, letters)`` when ``matrix`` is a Pauli product times +1 or -1 (one letter
    per qubit, qubit 0 first), else None.

    >>> h = GATES["h"].matrix()
    >>> pauli_string(h @ GATES["z"].matrix() @ h), pauli_string(-np.kron(h @ h, _PAULIS["Y"]))
    ((1, 'X'), (-1, 'IY'))
    >>> pauli_string(GATES["t"].matrix()) is None
    True
    """
    num_qubits = int(matrix.shape[0]).bit_length() - 1
    for letters in itertools.product("IXYZ", repeat=num_qubits):
        pauli = np.eye(1, dtype=np.complex128)
        for letter in letters:
            pauli = np.kron(pauli, _PAULIS[letter])
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
