"""Terminal measurements of stabilizer circuits sampled from their affine support."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import stim

from qmk.engines.affine import (
    MIN_BITS,
    AffineSampler,
    FreeSampler,
    affine_sampler,
    support,
    worth_finding,
)
from qmk.engines.batch import PAULI_CODES, BatchCircuit, Errors, Instruction, Kind
from qmk.engines.stim_batch import compile_batch
from support.exact import chi2_pvalue

SEED = 20261125
ONE_QUBIT = ("H", "S", "S_DAG", "SQRT_X", "SQRT_Y", "X", "Y", "Z", "H_YZ", "C_XYZ")
TWO_QUBIT = ("CX", "CZ", "CY", "SWAP", "ISWAP", "XCZ")
BASES = {"M": None, "MX": "H", "MY": "H_YZ"}


def random_clifford(rng: np.random.Generator, n: int, depth: int) -> stim.Circuit:
    """``depth`` random Clifford gates on ``n`` qubits."""
    circuit = stim.Circuit()
    for _ in range(depth):
        if n > 1 and rng.random() < 0.5:
            a, b = rng.choice(n, size=2, replace=False).tolist()
            circuit.append(str(rng.choice(TWO_QUBIT)), [a, b])
        else:
            circuit.append(str(rng.choice(ONE_QUBIT)), [int(rng.integers(n))])
    return circuit


def exact_distribution(
    gates: stim.Circuit, reads: list[tuple[str, int, bool]], n: int
) -> dict[str, float]:
    """Record string -> probability of measuring ``reads`` (basis, qubit, inverted) in
    order after ``gates``, from stim's state vector."""
    turned = gates.copy()
    for basis, qubit, _ in reads:
        if BASES[basis] is not None:
            turned.append(BASES[basis], [qubit])
    simulator = stim.TableauSimulator()
    simulator.set_num_qubits(n)
    simulator.do(turned)
    probs = np.abs(simulator.state_vector(endian="little")) ** 2
    out: dict[str, float] = {}
    for index in np.flatnonzero(probs > 1e-12):
        key = "".join(str(((int(index) >> q) & 1) ^ inverted) for _, q, inverted in reads)
        out[key] = out.get(key, 0.0) + float(probs[index])
    return out


def record_counts(packed: np.ndarray, records: int) -> Counter[str]:
    bits = np.unpackbits(packed, axis=1, count=records, bitorder="little")
    return Counter("".join(map(str, row)) for row in bits.tolist())


def measured(gates: stim.Circuit, reads: list[tuple[str, int, bool]]) -> stim.Circuit:
    circuit = gates.copy()
    for basis, qubit, inverted in reads:
        circuit.append(basis, [stim.target_inv(qubit) if inverted else qubit])
    return circuit


def test_ghz_shots_are_all_zeros_or_all_ones_half_each() -> None:
    ghz = stim.Circuit("R " + " ".join(map(str, range(300))) + "\nH 0")
    for q in range(299):
        ghz.append("CX", [q, q + 1])
    ghz.append("M", range(300))
    sampler = affine_sampler(ghz)
    assert sampler is not None and sampler.rank == 1
    counts = record_counts(sampler.sample_packed(20_000, SEED), 300)
    assert set(counts) == {"0" * 300, "1" * 300}
    assert chi2_pvalue(counts, {"0" * 300: 0.5, "1" * 300: 0.5}) > 1e-3


@pytest.mark.parametrize("form", ["rows", "free"])
@pytest.mark.parametrize("trial", range(12))
def test_random_clifford_outcomes_follow_the_exact_distribution(trial: int, form: str) -> None:
    """Support exactly the state's, frequencies uniform over it (chi-square), for any
    basis, order, subset and inversion of the measurements, in either form."""
    rng = np.random.default_rng([SEED, trial])
    n = int(rng.integers(2, 8))
    gates = random_clifford(rng, n, 6 * n)
    reads = [
        (str(rng.choice(list(BASES))), int(q), bool(rng.random() < 0.3))
        for q in rng.permutation(n)[: int(rng.integers(1, n + 1))]
    ]
    found = support(measured(gates, reads))
    assert found is not None
    sampler = found.rows() if form == "rows" else found.free()
    expected = exact_distribution(gates, reads, n)
    assert sampler.rank == int(np.log2(len(expected)).round())
    counts = record_counts(sampler.sample_packed(8000, trial), len(reads))
    assert set(counts) <= set(expected)
    assert chi2_pvalue(counts, expected) > 1e-4


@pytest.mark.parametrize("width", [1, 7, 8, 9, 64, 65, 130])
def test_the_free_form_keeps_every_bit_past_the_record_zero_and_its_pivots_uniform(
    width: int,
) -> None:
    # half the qubits in |+>, the other half copies of them: every record has pivots and
    # free columns, and a width that fills no whole byte or word leaves spare bits
    circuit = stim.Circuit()
    half = max(width // 2, 1)
    circuit.append("H", range(half))
    for q in range(half, width):
        circuit.append("CX", [q - half, q])
    circuit.append("M", range(width))
    found = support(circuit)
    assert found is not None and len(found.basis) == half
    packed = found.free().sample_packed(4000, 5)
    assert packed.shape == (4000, (width + 7) // 8) and packed.flags.c_contiguous
    if width % 8:
        assert not (packed[:, -1] >> (width % 8)).any()
    bits = np.unpackbits(packed, axis=1, count=width, bitorder="little")
    assert (bits[:, half:] == bits[:, : width - half]).all()
    ones = bits[:, list(found.pivots)].sum(axis=0).astype(np.int64)
    assert (abs(ones - 2000) < 4 * np.sqrt(1000)).all()  # each pivot a fair coin


def test_a_seed_draws_the_same_shots_and_another_seed_others() -> None:
    circuit = measured(
        random_clifford(np.random.default_rng(SEED), 10, 60), [("M", q, False) for q in range(10)]
    )
    sampler = affine_sampler(circuit)
    assert sampler is not None and sampler.rank > 2
    first = sampler.sample_packed(500, 7)
    assert np.array_equal(first, sampler.sample_packed(500, 7))
    assert not np.array_equal(first, sampler.sample_packed(500, 8))


@pytest.mark.parametrize(
    "text",
    [
        "H 0\nM 0\nCX 0 1\nM 1",  # a gate after a measurement
        "H 0\nM 0\nR 0\nM 0",  # a reset after a measurement
        "H 0\nCX 0 1\nR 1\nM 0 1",  # a reset after gates
        "H 0\nX_ERROR(0.1) 0\nM 0",  # a noise channel
        "H 0\nM(0.1) 0",  # a noisy measurement
        "H 0\nM 0 0",  # a qubit measured twice
        "H 0\nMR 0",  # a measure-and-reset
        "H 0\nMPP X0*X1",  # a product measurement
        "REPEAT 2 {\n    H 0\n}\nM 0",  # a loop
        "H 0",  # no measurement
    ],
    ids=lambda text: text.splitlines()[-1],
)
def test_circuits_beyond_terminal_measurements_are_left_to_stim(text: str) -> None:
    assert affine_sampler(stim.Circuit(text)) is None


def test_feed_forward_is_left_to_stim() -> None:
    assert affine_sampler(stim.Circuit("H 0\nM 0\nCX rec[-1] 1\nM 1")) is None


def test_each_support_is_drawn_by_the_form_that_costs_least_a_shot() -> None:
    ghz = stim.Circuit("H 0\nCX 0 1 1 2 2 3\nM 0 1 2 3")
    assert isinstance(affine_sampler(ghz), AffineSampler)  # one dimension: one table
    layer = " ".join(map(str, range(200)))
    every = stim.Circuit(f"H {layer}\nM {layer}")  # 200 dimensions of 200: no free column
    sampler = affine_sampler(every)
    assert isinstance(sampler, FreeSampler) and sampler.rank == 200
    found = support(every)
    assert found is not None
    costs = found.costs()
    assert costs["free"] < costs["rows"] and costs["free"] < costs["stim"]


def test_finding_the_support_is_worth_it_only_for_enough_shots() -> None:
    # below 2^22 record bits never (stim is quicker than the analysis); past them, a deep
    # circuit's stim shots cost its gates and its support costs them once, so a 1,000-
    # qubit circuit of 200,000 gate targets waits for more shots than a GHZ chain
    assert not worth_finding(MIN_BITS // 64 - 1, 64, 64)
    assert worth_finding(MIN_BITS // 64, 64, 64)
    assert worth_finding(MIN_BITS // 1000 + 1, 1000, 2000)
    assert not worth_finding(MIN_BITS // 1000 + 1, 1000, 200_000)
    assert worth_finding(100_000, 1000, 200_000)


def test_deterministic_outcomes_need_no_random_bits() -> None:
    sampler = affine_sampler(stim.Circuit("X 1\nCX 1 2\nM 0 1 2 !3"))
    assert sampler is not None and sampler.rank == 0
    assert set(record_counts(sampler.sample_packed(100, 1), 4)) == {"0111"}


def ghz_batch(n: int) -> BatchCircuit:
    gates = [Instruction(kind=Kind.GATE, qubits=(0,), gate="h")]
    gates += [Instruction(kind=Kind.GATE, qubits=(q, q + 1), gate="cx") for q in range(n - 1)]
    reads = [Instruction(kind=Kind.MEASURE, qubits=(q,)) for q in range(n)]
    return BatchCircuit(num_qubits=n, instructions=(*gates, *reads))


def _threshold(records: int, targets: int) -> int:
    """The fewest shots for which finding the support is worth it."""
    low, high = 1, 10**9
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if worth_finding(middle, records, targets) else (middle + 1, high)
    return low


def test_the_batch_sampler_draws_big_chunks_from_the_support_and_small_ones_from_stim() -> None:
    n = 64
    sampler = compile_batch(ghz_batch(n))
    assert sampler is not None and sampler.targets == 1 + 2 * (n - 1)
    big = _threshold(n, sampler.targets)
    small = big - 1
    assert np.array_equal(
        sampler.sample_packed(small, 3),
        sampler.circuit.compile_sampler(seed=3).sample(small, bit_packed=True),
    )
    support = affine_sampler(sampler.circuit)
    assert support is not None
    assert np.array_equal(sampler.sample_packed(big, 3), support.sample_packed(big, 3))


def test_errors_strike_the_support_drawn_shots_they_name() -> None:
    """An X after the CX chain on qubit 5 flips bit 5 of the shots it strikes, on top of
    shots drawn from the support; the others stay all zeros or all ones."""
    n = 64
    circuit = ghz_batch(n)
    site = Instruction(kind=Kind.ERROR_SITE, qubits=(5,), probs=(0.1, 0.0, 0.0))
    cut = 1 + (n - 1)  # after the H and the CX chain
    noisy = BatchCircuit(
        num_qubits=n,
        instructions=(*circuit.instructions[:cut], site, *circuit.instructions[cut:]),
    )
    sampler = compile_batch(noisy)
    assert sampler is not None
    shots = _threshold(n, sampler.targets)
    struck = np.arange(0, shots, 97)
    errors = Errors(
        shots=struck, sites=np.zeros_like(struck), paulis=np.full_like(struck, PAULI_CODES["X"])
    )
    bits, _ = sampler.sample(shots, SEED, tuple(range(n)), (), errors)
    assert sampler.affine and sampler.affine[0] is not None
    hit = np.zeros(shots, dtype=bool)
    hit[struck] = True
    others = np.delete(bits, 5, axis=1)
    assert (others == others[:, :1]).all()
    assert ((bits[:, 5] != bits[:, 0]) == hit).all()
    assert 0.45 < bits[:, 0].mean() < 0.55
