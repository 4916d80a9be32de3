"""A random Clifford circuit on 1,000 qubits with long-range CX: it runs on the stabilizer
engine, by default and by name, and its samples are what stim's tableau says they are.

Theory (Dehaene and De Moor): the Z-basis outcomes of a stabilizer state are uniform
over an affine space. The products of the final state's stabilizer generators (stim's
tableau) whose X parts cancel are its Z-only stabilizers: each is a parity every shot
must give exactly (the sign stim gives it). Parities whose every combination stim's
tableau gives expectation 0 are jointly uniform: a chi-square bound on QMK's samples,
and a TVD bound against stim's own compiled sampler, at the seeds stated.
"""

from __future__ import annotations

import numpy as np
import pytest
import stim
from scipy import stats

from qmk import defaults
from qmk._front import read
from qmk.execution.executor import load_program
from qmk.execution.runs import run
from qmk.kernel.machine.programs import random_clifford
from support.workloads import stim_unitary

WIDTH = 1000
SHOTS = 4000
#: Random parities tested jointly: their 2**PARITIES outcomes are the chi-square's bins.
PARITIES = 4


@pytest.fixture(scope="module", params=[3, 100], ids=["depth-3", "depth-100"])
def circuit(request: pytest.FixtureRequest) -> tuple[int, str, object]:
    text = random_clifford(WIDTH, request.param, seed=2026)
    return request.param, text, load_program(read(text))


def test_a_thousand_qubit_long_range_clifford_circuit_runs_on_the_stabilizer_by_default_and_by_name(
    circuit: tuple[int, str, object],
) -> None:
    _, _, program = circuit
    for engine in (None, defaults.STABILIZER):  # logical noise on: the default run
        result = run(program, shots=100, seed=1, engine=engine)
        assert result.engine == defaults.STABILIZER and result.shots == 100
        assert result.choice is not None
        refused = {c.engine: c.refusal for c in result.choice.candidates}
        if engine is None:  # an MPS at the bond of 500 long-range crossings: not a route
            assert refused[defaults.MPS] == "too-slow"


def _z_only(tableau: stim.TableauSimulator) -> list[tuple[np.ndarray, int]]:
    """A basis of the final state's Z-only stabilizers, each as (its qubits, the parity
    every shot gives there): the products of stim's stabilizer generators whose X parts
    cancel (Gaussian elimination over the X parts, as Python ints), signed by stim's
    own expectation of each."""
    width = len(tableau.canonical_stabilizers())
    pivots: dict[int, tuple[int, int]] = {}
    found = []
    for generator in tableau.canonical_stabilizers():
        xs, zs = generator.to_numpy()
        x = int.from_bytes(np.packbits(xs, bitorder="little").tobytes(), "little")
        z = int.from_bytes(np.packbits(zs, bitorder="little").tobytes(), "little")
        while x:
            low = x & -x
            if low not in pivots:
                pivots[low] = (x, z)
                break
            px, pz = pivots[low]
            x, z = x ^ px, z ^ pz
        if not x and z:
            qubits = np.array([z >> q & 1 for q in range(width)], dtype=bool)
            pauli = stim.PauliString("".join("Z" if b else "_" for b in qubits))
            sign = tableau.peek_observable_expectation(pauli)
            assert sign in (1, -1)
            found.append((qubits, int(sign < 0)))
    return found


def _parity_outcomes(bits: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Each shot's parities under ``masks`` (rows), as one integer a shot."""
    parities = (bits.astype(np.int64) @ masks.T.astype(np.int64)) & 1
    return parities @ (1 << np.arange(len(masks)))


def test_the_samples_of_a_thousand_qubit_random_clifford_circuit_are_those_of_stims_tableau(
    circuit: tuple[int, str, object],
) -> None:
    depth, text, program = circuit
    unitary = stim_unitary(text)
    assert unitary.num_qubits == WIDTH
    tableau = stim.TableauSimulator()
    tableau.do_circuit(unitary)
    result = run(program, shots=SHOTS, seed=20260, noise=False)
    assert result.engine == defaults.STABILIZER
    bits = result.bits  # events m0..m999 are qubits 0..999
    assert bits.shape == (SHOTS, WIDTH)
    # every deterministic parity, exactly, in every shot (depth 3 keeps 584 independent
    # ones, depth 100 two)
    fixed = _z_only(tableau)
    assert len(fixed) == {3: 584, 100: 2}[depth]
    for zs, value in fixed:
        assert ((bits[:, zs].sum(axis=1) & 1) == value).all()
    # each qubit alone: its value where the tableau fixes it, else a fair coin (chi-square)
    expected = np.array([tableau.peek_z(q) for q in range(WIDTH)])
    ones = bits.sum(axis=0)
    assert (ones[expected == -1] == SHOTS).all() and (ones[expected == 1] == 0).all()
    coins = ones[expected == 0]
    chi2 = float((((coins - SHOTS / 2) ** 2) / (SHOTS / 4)).sum())
    assert stats.chi2.sf(chi2, len(coins)) > 1e-3
    # random parities, jointly uniform by the tableau: chi-square on QMK's samples
    rng = np.random.default_rng(7)
    masks = rng.integers(0, 2, size=(PARITIES, WIDTH)).astype(bool)
    for combo in range(1, 1 << PARITIES):
        mask = np.bitwise_xor.reduce(masks[[k for k in range(PARITIES) if combo >> k & 1]])
        pauli = stim.PauliString(WIDTH)
        for q in np.flatnonzero(mask):
            pauli[int(q)] = "Z"
        assert tableau.peek_observable_expectation(pauli) == 0
    ours = np.bincount(_parity_outcomes(bits, masks), minlength=1 << PARITIES)
    assert stats.chisquare(ours).pvalue > 1e-3
    # against stim's own sampler of the same circuit, measured at the end
    measured = unitary.copy()
    measured.append("M", range(WIDTH))
    theirs_bits = measured.compile_sampler(seed=31).sample(SHOTS).astype(np.uint8)
    theirs = np.bincount(_parity_outcomes(theirs_bits, masks), minlength=1 << PARITIES)
    tvd = 0.5 * np.abs(ours / SHOTS - theirs / SHOTS).sum()
    assert tvd < 0.06  # 16 bins, 4,000 shots each side: a mean of about 0.025
    for zs, value in fixed:  # stim's own shots keep the same parities
        assert ((theirs_bits[:, zs].sum(axis=1) & 1) == value).all()
