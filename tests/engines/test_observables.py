"""Exact expectation values of Pauli sums and Hermitian matrices on a pure state,
checked against dense matrices built here with numpy (``np.kron`` of the Paulis), and
on stabilizer states against the same state's amplitudes."""

from __future__ import annotations

import numpy as np
import pytest
import stim

from qmk.engines import EngineError
from qmk.engines.observables import Hermitian, PauliSum, apply, expectation_values
from qmk.engines.state_io import Amplitudes, Stabilizers

SEED = 20261126
_PAULI = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1, -1]),
}


def _state(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=1 << n) + 1j * rng.normal(size=1 << n)
    return vector / np.linalg.norm(vector)


def _dense(observable: PauliSum, n: int) -> np.ndarray:
    """The observable's matrix: qubit k is bit k of the index (kron puts qubit n-1 first)."""
    total = np.zeros((1 << n, 1 << n), dtype=complex)
    for coefficient, word in observable.terms:
        letters = dict(word)
        term = np.eye(1)
        for qubit in range(n - 1, -1, -1):
            term = np.kron(term, _PAULI[letters.get(qubit, "I")])
        total += coefficient * term
    return total


def _random_sums(n: int, count: int, seed: int) -> list[PauliSum]:
    rng = np.random.default_rng(seed)
    sums = []
    for _ in range(count):
        terms = []
        for _ in range(int(rng.integers(1, 4))):
            qubits = rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False)
            word = {int(q): "IXYZ"[int(rng.integers(4))] for q in qubits}
            terms.append((float(rng.normal()), word))
        sums.append(PauliSum.of(terms))
    return sums


@pytest.mark.parametrize("n", [1, 3, 6])
def test_pauli_sums_equal_their_dense_matrices_on_random_states(n):
    psi = _state(n, SEED + n)
    sums = _random_sums(n, 40, SEED)
    values = expectation_values(Amplitudes(qubits=tuple(map(str, range(n))), amplitudes=psi), sums)
    for observable, value in zip(sums, values, strict=True):
        matrix = _dense(observable, n)
        assert value == pytest.approx(np.vdot(psi, matrix @ psi).real, abs=1e-12)
        np.testing.assert_allclose(apply(psi, observable), matrix @ psi, atol=1e-12)


def test_many_observables_at_once_equal_each_alone():
    psi = _state(8, SEED)
    sums = _random_sums(8, 100, SEED + 1)
    together = expectation_values(psi, sums)
    alone = [expectation_values(psi, [s])[0] for s in sums]
    np.testing.assert_allclose(together, alone, atol=1e-13)


def test_a_state_larger_than_one_pass_is_read_in_chunks_with_the_same_values():
    # 2**17 amplitudes: two passes of CHUNK; each word checked against numpy's tensor
    n = 17
    psi = _state(n, SEED)
    words = [{0: "X", 16: "Y"}, {3: "Z", 9: "Z", 12: "X"}, {5: "Y"}]
    values = expectation_values(psi, [PauliSum.of([(1.0, w)]) for w in words])
    for word, value in zip(words, values, strict=True):
        tensor = psi.reshape((2,) * n)
        for qubit, letter in word.items():
            axis = n - 1 - qubit
            tensor = np.moveaxis(np.tensordot(_PAULI[letter], tensor, axes=(1, axis)), 0, axis)
        assert value == pytest.approx(np.vdot(psi, tensor.reshape(-1)).real, abs=1e-12)


def test_a_hermitian_matrix_acts_on_its_qubits_first_most_significant():
    n = 3
    psi = _state(n, SEED)
    rng = np.random.default_rng(SEED)
    h = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    h = h + h.conj().T
    # on qubits (2, 0): the matrix's first qubit is state qubit 2 (kron: qubit 2 first)
    dense = np.zeros((8, 8), dtype=complex)
    for i in range(8):
        for j in range(8):
            if (i >> 1) & 1 == (j >> 1) & 1:
                dense[i, j] = h[((i >> 2) & 1) * 2 + (i & 1), ((j >> 2) & 1) * 2 + (j & 1)]
    value = expectation_values(psi, [Hermitian(h, (2, 0))])[0]
    assert value == pytest.approx(np.vdot(psi, dense @ psi).real, abs=1e-12)


def test_a_stabilizer_state_gives_the_values_of_its_amplitudes():
    n = 5
    tableau = stim.Tableau.random(n)
    stabilizers = Stabilizers(
        qubits=tuple(map(str, range(n))),
        stabilizers=tuple(str(tableau.z_output(k)) for k in range(n)),
    )
    sums = _random_sums(n, 30, SEED)
    np.testing.assert_allclose(
        expectation_values(stabilizers, sums),
        expectation_values(stabilizers.to_amplitudes(), sums),
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: PauliSum.of([(1j, {0: "X"})]),
        lambda: PauliSum.of([(float("nan"), {0: "X"})]),
        lambda: PauliSum.of([(1.0, {0: "W"})]),
        lambda: PauliSum.of([(1.0, [(0, "X"), (0, "Z")])]),
        lambda: PauliSum.of([(1.0, {-1: "X"})]),
        lambda: Hermitian(np.array([[0, 1], [0, 0]]), (0,)),
        lambda: Hermitian(np.eye(4), (0,)),
        lambda: expectation_values(_state(2, SEED), [PauliSum.of([(1.0, {2: "Z"})])]),
    ],
)
def test_an_observable_that_is_not_one_is_refused_with_a_code(make):
    with pytest.raises(EngineError) as caught:
        make()
    assert caught.value.code == "QE105"
