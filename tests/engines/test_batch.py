"""The batch capability: engines that can sample a whole circuit at once say so."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy.stats import chi2

from qmk.engines.base import EngineError
from qmk.engines.batch import PAULI_PAIRS, BatchCircuit, Instruction, Kind, batch_compiler
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.statevector import StatevectorEngine

SEED = 20261122

#: The single-qubit Paulis, for the exact density-matrix references below.
PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.diag([1, -1]).astype(complex),
}
#: Fifteen distinct probabilities (they sum to 0.48), so a channel that read them in
#: another order would give another distribution.
PAIR_PROBS = tuple(0.004 * (k + 1) for k in range(15))


def _gate(gate: str, *qubits: int, **fields) -> Instruction:
    return Instruction(kind=Kind.GATE, qubits=qubits, gate=gate, **fields)


def _measure(qubit: int, basis: str = "Z", invert: bool = False) -> Instruction:
    return Instruction(kind=Kind.MEASURE, qubits=(qubit,), basis=basis, invert=invert)


def test_the_statevector_engine_batch_samples_only_noisy_circuits_a_density_matrix_holds():
    assert batch_compiler(StabilizerEngine) is not None
    compile_density = batch_compiler(StatevectorEngine)
    assert compile_density is not None
    t = _gate("t", 0)
    noise = Instruction(kind=Kind.PAULI_CHANNEL, qubits=(0,), probs=(0.1, 0.0, 0.0))
    site = Instruction(kind=Kind.ERROR_SITE, qubits=(0,), probs=(0.1, 0.0, 0.0))
    fed = _gate("x", 1, controls=(0,))
    assert compile_density(BatchCircuit(num_qubits=1, instructions=(t, noise, _measure(0))))
    for refused in ((t, _measure(0)), (t, site, _measure(0)), (noise, _measure(0), fed)):
        assert compile_density(BatchCircuit(num_qubits=2, instructions=refused)) is None


def test_a_circuit_beyond_the_stabilizer_formalism_is_not_compiled():
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    t_gate = BatchCircuit(num_qubits=1, instructions=(_gate("t", 0), _measure(0)))
    assert compile_batch(t_gate) is None
    small_angle = BatchCircuit(num_qubits=1, instructions=(_gate("rz", 0, params=(0.1,)),))
    assert compile_batch(small_angle) is None
    controlled_h = BatchCircuit(
        num_qubits=2, instructions=(_measure(0), _gate("h", 1, controls=(0,)))
    )
    assert compile_batch(controlled_h) is None


def test_a_bell_pair_has_even_xx_and_zz_parities_measured_as_products():
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(
            _gate("h", 0),
            _gate("cx", 0, 1),
            Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0, 1), paulis="XX"),
            Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0, 1), paulis="ZZ"),
            _measure(0),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None and sampler.mode == "stim-batch"
    bits, ones = sampler.sample(2000, SEED, (0, 1, 2), ())
    assert not bits[:, :2].any()
    # the Z outcome of one half is a fair coin: 5 sigma is 112 of 2000
    assert abs(int(bits[:, 2].sum()) - 1000) < 112
    assert ones == 0


def test_an_inverted_product_measurement_records_the_negated_products_outcome():
    # a Bell pair's XX is +1: measured as -XX it reads 1 in every shot (the lattice-surgery
    # target measures C^dag Z C, which carries a sign, as such a product)
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(
            _gate("h", 0),
            _gate("cx", 0, 1),
            Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0, 1), paulis="XX", invert=True),
            Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0,), paulis="X", invert=True),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    bits, _ = sampler.sample(500, SEED, (0, 1), ())
    assert bits[:, 0].all()
    assert 150 < int(bits[:, 1].sum()) < 350  # X of one half: a fair coin either way


def test_feed_forward_applies_a_pauli_when_the_xor_of_record_bits_is_one_or_zero():
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    # q0 is a fair coin; q1 copies it by feed-forward, q2 gets its complement.
    circuit = BatchCircuit(
        num_qubits=3,
        instructions=(
            _gate("h", 0),
            _measure(0),
            _gate("x", 1, controls=(0,)),
            _gate("x", 2, controls=(0,), invert=True),
            _measure(1),
            _measure(2),
            _measure(2, invert=True),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    bits, _ = sampler.sample(500, SEED, (0, 1, 2, 3, None), ())
    assert (bits[:, 0] == bits[:, 1]).all()
    assert (bits[:, 2] == 1 - bits[:, 0]).all()
    assert (bits[:, 3] == bits[:, 0]).all()
    assert not bits[:, 4].any()


def test_heralds_count_exactly_the_errors_a_heralded_channel_injects():
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    p = 0.2
    circuit = BatchCircuit(
        num_qubits=1,
        instructions=(
            Instruction(kind=Kind.HERALDED_PAULI_CHANNEL, qubits=(0,), probs=(p, 0.0, 0.0)),
            _measure(0),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    shots = 4000
    bits, heralded = sampler.sample(shots, SEED, (1,), (0,))
    # an X error flips the Z outcome: every herald shows in the measurement
    assert heralded == int(bits.sum())
    sigma = math.sqrt(shots * p * (1 - p))
    assert abs(heralded - shots * p) < 5 * sigma
    assert np.array_equal(bits, sampler.sample(shots, SEED, (1,), (0,))[0])


def _pauli_channel_2(rho: np.ndarray, probs: tuple[float, ...]) -> np.ndarray:
    """rho (qubit 0 the most significant factor) after P x Q with ``probs[k]`` for
    ``PAULI_PAIRS[k] == P + Q``, and nothing with the rest."""
    out = (1.0 - sum(probs)) * rho
    for pair, p in zip(PAULI_PAIRS, probs, strict=True):
        k = np.kron(PAULI[pair[0]], PAULI[pair[1]])
        out = out + p * (k @ rho @ k.conj().T)
    return out


def _assert_fits(bits: np.ndarray, expected: Mapping[str, float]) -> None:
    """Chi-square goodness of fit of the rows of ``bits`` to exact probabilities (the
    seed fixes the sample; 1e-4 bounds how unlucky a right sampler may be)."""
    keys, counts = np.unique(["".join(map(str, row)) for row in bits.tolist()], return_counts=True)
    observed = dict(zip(keys.tolist(), counts.tolist(), strict=True))
    assert set(observed) <= {k for k, p in expected.items() if p > 1e-12}
    shots = len(bits)
    cells = [(observed.get(k, 0), p * shots) for k, p in expected.items() if p > 1e-12]
    stat = sum((o - e) ** 2 / e for o, e in cells)
    assert chi2.sf(stat, len(cells) - 1) > 1e-4, (observed, expected)


def test_a_two_qubit_pauli_channel_on_a_bell_pair_gives_the_exact_distribution():
    # A Bell pair, the channel, then XX measured as a product and both qubits in Z: the
    # XX bit shows the errors that anticommute with XX, the Z bits' parity those that
    # anticommute with ZZ, and each Z bit alone is a fair coin.
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(
            _gate("h", 0),
            _gate("cx", 0, 1),
            Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=PAIR_PROBS),
            Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0, 1), paulis="XX"),
            _measure(0),
            _measure(1),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    bits, _ = sampler.sample(20_000, SEED, (0, 1, 2), ())

    bell = np.zeros(4, dtype=complex)
    bell[[0, 3]] = 1 / math.sqrt(2)
    rho = _pauli_channel_2(np.outer(bell, bell.conj()), PAIR_PROBS)
    xx = np.kron(PAULI["X"], PAULI["X"])
    expected = {}
    for a in (0, 1):
        project = (np.eye(4) + (-1) ** a * xx) / 2
        after = project @ rho @ project
        for z in range(4):  # |z0 z1>, z0 the most significant bit
            expected[f"{a}{z >> 1}{z & 1}"] = float(after[z, z].real)
    assert math.isclose(sum(expected.values()), 1.0)
    _assert_fits(bits, expected)


def test_a_two_qubit_pauli_channel_puts_the_first_pauli_of_each_pair_on_its_first_qubit():
    # |0> and |+>, the channel, then Z on qubit 0 and X on qubit 1: the first bit flips
    # with X or Y on qubit 0, the second with Y or Z on qubit 1, which tells the qubits'
    # roles apart (a Bell pair cannot).
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(
            _gate("h", 1),
            Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=PAIR_PROBS),
            _measure(0),
            _measure(1, basis="X"),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    bits, _ = sampler.sample(20_000, SEED, (0, 1), ())

    plus = np.array([1, 1], dtype=complex) / math.sqrt(2)
    minus = np.array([1, -1], dtype=complex) / math.sqrt(2)
    state = np.kron(np.array([1, 0], dtype=complex), plus)
    rho = _pauli_channel_2(np.outer(state, state.conj()), PAIR_PROBS)
    zero, one = np.array([1, 0], dtype=complex), np.array([0, 1], dtype=complex)
    expected = {}
    for b0, z in ((0, zero), (1, one)):
        for b1, x in ((0, plus), (1, minus)):
            v = np.kron(z, x)
            expected[f"{b0}{b1}"] = float((v.conj() @ rho @ v).real)
    _assert_fits(bits, expected)


@pytest.mark.parametrize(
    "qubits, probs",
    [((0,), PAIR_PROBS), ((0, 1), PAIR_PROBS[:3]), ((0, 1), (*PAIR_PROBS, 0.0))],
    ids=["one-qubit", "three-probabilities", "sixteen-probabilities"],
)
def test_a_two_qubit_channel_of_the_wrong_shape_is_refused_with_qe105(qubits, probs):
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=qubits, probs=probs),),
    )
    with pytest.raises(EngineError, match="takes 2 qubit\\(s\\) and 15 probabilities") as info:
        compile_batch(circuit)
    assert (info.value.code, info.value.name) == ("QE105", "engine-misuse")


def test_a_two_qubit_channel_is_drawn_by_the_engine_and_silent_in_error_site_flips():
    # With error sites in the circuit, the flips an X at the site causes are those of the
    # noiseless circuit: the engine's own channels take no part in them.
    compile_batch = batch_compiler(StabilizerEngine)
    assert compile_batch is not None
    xx = tuple(1.0 if pair == "XX" else 0.0 for pair in PAULI_PAIRS)
    circuit = BatchCircuit(
        num_qubits=2,
        instructions=(
            Instruction(kind=Kind.ERROR_SITE, qubits=(0,), probs=(0.1, 0.0, 0.0)),
            Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=xx),
            _measure(0),
            _measure(1),
        ),
    )
    sampler = compile_batch(circuit)
    assert sampler is not None
    bits, _ = sampler.sample(100, SEED, (0, 1), ())
    assert (bits == 1).all()  # XX with probability 1
    assert sampler.flips(np.array([0])).tolist() == [[1], [0]]  # X on qubit 0 flips bit 0


@pytest.mark.parametrize(
    ("rows", "columns"), [(1, 1), (3, 5), (8, 8), (9, 17), (64, 3), (1000, 2999)]
)
def test_the_bit_transpose_of_packed_rows_is_numpys_transpose(rows: int, columns: int):
    from qmk.engines.stim_batch import transpose_bits

    bits = np.random.default_rng(rows * columns).integers(0, 2, (rows, columns), dtype=np.uint8)
    packed = np.packbits(bits, axis=1, bitorder="little")
    for count in (columns, (columns + 1) // 2):
        expected = np.packbits(np.ascontiguousarray(bits.T[:count]), axis=1, bitorder="little")
        assert np.array_equal(transpose_bits(packed, count), expected)


def test_packed_rows_unpack_to_their_columns_and_count_their_ones():
    from qmk.engines.batch import count_ones, unpack_columns

    bits = np.random.default_rng(4).integers(0, 2, (50, 21), dtype=np.uint8)
    packed = np.packbits(bits, axis=1, bitorder="little")
    assert np.array_equal(unpack_columns(packed, tuple(range(21))), bits)
    picked = unpack_columns(packed, (20, None, 3, 3, 0))
    assert np.array_equal(picked[:, [0, 2, 3, 4]], bits[:, [20, 3, 3, 0]])
    assert not picked[:, 1].any()
    assert count_ones(packed, (1, 9, 20)) == int(bits[:, [1, 9, 20]].sum())
    assert count_ones(packed, ()) == 0
