"""Observables of a pure state and their exact expectation values: no shots drawn.

An observable is a :class:`PauliSum` (real coefficients of Pauli words) or a
:class:`Hermitian` matrix, on a state's qubits by index: qubit ``k`` is bit ``k`` of an
amplitude's index, the order of :class:`~qmk.engines.state_io.Amplitudes`.
:func:`expectation_values` gives ``<psi|O|psi>`` for many observables of one state at
once: on amplitudes, the terms are grouped by the qubits they flip, so that each group
costs one pass over the state and one matrix product; on a stabilizer tableau, stim
gives each Pauli word's value exactly at any width. :func:`apply` gives ``O|psi>``,
which adjoint differentiation (:mod:`qmk.engines.adjoint`) starts from.

>>> import numpy as np
>>> from qmk.engines.state_io import Amplitudes
>>> bell = Amplitudes(qubits=("a", "b"), amplitudes=np.array([1, 0, 0, 1]) / np.sqrt(2))
>>> zz = PauliSum.of([(1.0, {0: "Z", 1: "Z"})])
>>> x0 = PauliSum.of([(2.0, {0: "X"}), (0.5, {})])
>>> expectation_values(bell, [zz, x0]).round(12).tolist()
[1.0, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmk.engines.base import EngineError
from qmk.engines.rows import apply_matrix, inner

#: Amplitudes a pass over the state handles at once (bounds the index and sign arrays).
CHUNK = 1 << 16
#: Entries of one block of signs (terms times amplitudes) multiplied at once.
SIGN_BLOCK = 1 << 20
#: How far from Hermitian a :class:`Hermitian` matrix may be (largest entry of H - H^dag).
HERMITIAN_TOLERANCE = 1e-10

#: A Pauli word: ``(qubit, letter)`` pairs, ascending by qubit, letters ``X``, ``Y``, ``Z``.
Word = tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class PauliSum:
    """``sum_k c_k P_k``: real coefficients of Pauli words, a Hermitian observable.

    Build one with :meth:`of`, which checks it; a word with no letter is the identity.
    """

    terms: tuple[tuple[float, Word], ...]

    @classmethod
    def of(
        cls, terms: Iterable[tuple[Any, Mapping[int, str] | Iterable[tuple[int, str]]]]
    ) -> PauliSum:
        """The sum of ``(coefficient, word)`` terms, a word a mapping (or pairs) of qubit
        index to ``"X"``, ``"Y"``, ``"Z"`` or ``"I"`` (left out).

        Raises:
            EngineError: ``QE105`` for a coefficient that is not a finite real number (a
                complex one with an imaginary part is not Hermitian), a letter that is no
                Pauli, or a qubit that is no index or is named twice.

        >>> PauliSum.of([(0.5, {1: "Z", 0: "X", 2: "I"})]).terms
        ((0.5, ((0, 'X'), (1, 'Z'))),)
        """
        out = []
        for coefficient, word in terms:
            pairs = list(word.items() if isinstance(word, Mapping) else word)
            out.append((_real(coefficient), _word(pairs)))
        return cls(tuple(out))

    @property
    def qubits(self) -> frozenset[int]:
        """The qubits some term acts on."""
        return frozenset(q for _, word in self.terms for q, _ in word)


@dataclass(frozen=True, slots=True)
class Hermitian:
    """A Hermitian matrix on ``qubits``: qubit 0 of the matrix is the most significant bit
    of its index (as a gate's matrix), and acts on state qubit ``qubits[0]``.

    Raises:
        EngineError: ``QE105`` for a matrix that is not ``2**k`` square for ``k``
            distinct qubit indices, or not Hermitian.
    """

    matrix: np.ndarray
    qubits: tuple[int, ...]

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.complex128)
        qubits = tuple(_index(q) for q in self.qubits)
        size = 1 << len(qubits)
        if matrix.shape != (size, size) or len(set(qubits)) != len(qubits) or not qubits:
            raise EngineError.of(
                "engine-misuse",
                f"a Hermitian observable on {len(qubits)} distinct qubit(s) is a "
                f"{size}x{size} matrix, got shape {matrix.shape} on qubits {list(qubits)}",
            )
        if np.max(np.abs(matrix - matrix.conj().T)) > HERMITIAN_TOLERANCE:
            raise EngineError.of("engine-misuse", "the observable's matrix is not Hermitian")
        matrix.flags.writeable = False
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "qubits", qubits)


#: An observable of :func:`expectation_values` and :func:`apply`.
Observable = PauliSum | Hermitian


def expectation_values(state: Any, observables: Sequence[Observable]) -> np.ndarray:
    """``<psi|O|psi>`` of each observable on a pure state: amplitudes
    (:class:`~qmk.engines.state_io.Amplitudes`, or their vector) or stabilizers
    (:class:`~qmk.engines.state_io.Stabilizers`: Pauli sums exactly from the tableau;
    a Hermitian matrix from its amplitudes).

    Raises:
        EngineError: ``QE105`` for an observable on a qubit the state does not have.
    """
    if getattr(state, "kind", None) == "stabilizers":
        if all(isinstance(o, PauliSum) for o in observables):
            return _stabilizer_values(state, observables)  # type: ignore[arg-type]
        state = state.to_amplitudes()
    psi = np.asarray(getattr(state, "amplitudes", state), dtype=np.complex128).reshape(-1)
    n = _width(psi)
    out = np.zeros(len(observables), dtype=np.float64)
    words: list[tuple[int, float, Word]] = []
    for k, observable in enumerate(observables):
        _check_qubits(observable, n)
        if isinstance(observable, Hermitian):
            out[k] = inner(psi, apply(psi, observable)).real
        else:
            words.extend((k, c, word) for c, word in observable.terms)
    if words:
        values = _word_values(psi, [word for _, _, word in words])
        np.add.at(out, [k for k, _, _ in words], np.array([c for _, c, _ in words]) * values)
    return out


def apply(psi: np.ndarray, observable: Observable) -> np.ndarray:
    """``O|psi>`` as a new vector (``psi`` little-endian, as :func:`expectation_values`).

    Raises:
        EngineError: ``QE105`` for an observable on a qubit the state does not have.
    """
    psi = np.asarray(psi, dtype=np.complex128).reshape(-1)
    n = _width(psi)
    _check_qubits(observable, n)
    if isinstance(observable, Hermitian):
        out = psi.copy()
        apply_matrix(out.reshape(1, -1), observable.matrix, observable.qubits)
        return out
    out = np.zeros_like(psi)
    for coefficient, word in observable.terms:
        flip, sign_mask, phase = masks(word)
        for start in range(0, psi.size, CHUNK):
            index = np.arange(start, min(psi.size, start + CHUNK), dtype=np.int64)
            source = index ^ flip
            signs = 1 - 2 * (np.bitwise_count(source & sign_mask) & 1).astype(np.int8)
            out[start : start + index.size] += (coefficient * phase) * signs * psi[source]
    return out


def masks(word: Word) -> tuple[int, int, complex]:
    """A Pauli word as index masks: the bits it flips (X and Y), the bits whose value
    signs it (Y and Z) and its phase ``i**(number of Y)``, so that
    ``(P psi)[j] = phase * (-1)**popcount((j ^ flip) & sign) * psi[j ^ flip]``."""
    flip = sign = ys = 0
    for qubit, letter in word:
        bit = 1 << qubit
        if letter != "Z":
            flip |= bit
        if letter != "X":
            sign |= bit
        ys += letter == "Y"
    return flip, sign, 1j**ys


def _word_values(psi: np.ndarray, words: Sequence[Word]) -> np.ndarray:
    """``<psi|P|psi>`` of each word: those that flip the same bits share one pass that
    forms ``conj(psi[i ^ flip]) psi[i]``, then one product with their signs."""
    groups: dict[int, list[tuple[int, int, complex]]] = {}
    for k, word in enumerate(words):
        flip, sign, phase = masks(word)
        groups.setdefault(flip, []).append((k, sign, phase))
    out = np.zeros(len(words), dtype=np.float64)
    for flip, members in groups.items():
        rows = np.array([k for k, _, _ in members])
        signs_of = np.array([s for _, s, _ in members], dtype=np.int64)
        phases = np.array([p for _, _, p in members])
        total = np.zeros(len(members), dtype=np.complex128)
        for start in range(0, psi.size, CHUNK):
            index = np.arange(start, min(psi.size, start + CHUNK), dtype=np.int64)
            part = psi[start : start + index.size]
            if flip:
                w = np.conj(psi[index ^ flip]) * part
            else:
                w = (part.real**2 + part.imag**2).astype(np.complex128)
            step = max(1, SIGN_BLOCK // index.size)
            for first in range(0, len(members), step):
                masks_ = signs_of[first : first + step, None]
                parity = np.bitwise_count(index[None, :] & masks_) & 1
                signs = 1.0 - 2.0 * parity
                # sums by einsum's own loop, not BLAS (rows.SERIAL says why)
                real = np.einsum("ki,i->k", signs, w.real)
                total[first : first + step] += real + 1j * np.einsum("ki,i->k", signs, w.imag)
        out[rows] = (phases * total).real
    return out


def _stabilizer_values(state: Any, observables: Sequence[PauliSum]) -> np.ndarray:
    """Pauli sums on a stabilizer state: each word's expectation (-1, 0 or +1) from stim."""
    import stim

    n = len(state.qubits)
    tableau = stim.Tableau.from_stabilizers([stim.PauliString(s) for s in state.stabilizers])
    simulator = stim.TableauSimulator()
    simulator.set_inverse_tableau(tableau.inverse())
    out = np.zeros(len(observables), dtype=np.float64)
    for k, observable in enumerate(observables):
        _check_qubits(observable, n)
        for coefficient, word in observable.terms:
            letters = ["_"] * n
            for qubit, letter in word:
                letters[qubit] = letter
            pauli = stim.PauliString("".join(letters))
            out[k] += coefficient * simulator.peek_observable_expectation(pauli)
    return out


def _real(value: Any) -> float:
    try:
        number = complex(value)
    except (TypeError, ValueError):
        number = complex("nan")
    if number.imag != 0 or not math.isfinite(number.real):
        raise EngineError.of(
            "engine-misuse",
            f"a Pauli sum's coefficient is a finite real number (a Hermitian observable), "
            f"got {value!r}",
        )
    return float(number.real)


def _word(pairs: Sequence[tuple[int, str]]) -> Word:
    qubits = [_index(q) for q, _ in pairs]
    if len(set(qubits)) != len(qubits):
        raise EngineError.of("engine-misuse", f"a Pauli word names a qubit twice: {pairs!r}")
    letters = [str(letter).upper() for _, letter in pairs]
    if set(letters) - set("IXYZ"):
        raise EngineError.of(
            "engine-misuse", f"a Pauli word's letters are I, X, Y and Z, got {pairs!r}"
        )
    return tuple(sorted((q, a) for q, a in zip(qubits, letters, strict=True) if a != "I"))


def _index(qubit: Any) -> int:
    if isinstance(qubit, bool) or not isinstance(qubit, int | np.integer) or qubit < 0:
        raise EngineError.of("engine-misuse", f"a qubit is an index >= 0, got {qubit!r}")
    return int(qubit)


def _width(psi: np.ndarray) -> int:
    n = psi.size.bit_length() - 1
    if psi.size != 1 << n:
        raise EngineError.of("engine-misuse", f"a state has 2**n amplitudes, got {psi.size}")
    return n


def _check_qubits(observable: Observable, n: int) -> None:
    qubits = observable.qubits
    beyond = sorted(q for q in qubits if q >= n)
    if beyond:
        raise EngineError.of(
            "engine-misuse",
            f"the observable acts on qubit(s) {beyond} of a state of {n} qubit(s)",
        )


__all__ = [
    "Hermitian",
    "Observable",
    "PauliSum",
    "Word",
    "apply",
    "expectation_values",
    "masks",
]
