"""The statevector engine's density matrix: noisy circuits held exactly, sampled in bulk.

Checked against a dense reference written here (``rho -> U rho U^dagger`` with the
gates' textbook matrices from :data:`qmk.engines.gates.GATES`, every channel as its
Pauli sum, a reset as a measurement and a flip), which shares nothing with the fused
superoperators of :mod:`qmk.engines.density` but the gate matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2

from qmk.engines.base import EngineError
from qmk.engines.batch import PAULI_PAIRS, BatchCircuit, Errors, Instruction, Kind
from qmk.engines.density import compile_density, why_not
from qmk.engines.gates import unitary

SEED = 20261127

ONE_QUBIT = ("h", "t", "s", "rx", "ry", "rz", "x", "y")
ANGLED = ("rx", "ry", "rz")


def _gate(name: str, *qubits: int, params: tuple[float, ...] = (), **fields) -> Instruction:
    return Instruction(kind=Kind.GATE, qubits=qubits, gate=name, params=params, **fields)


def _channel(qubit: int, probs: tuple[float, float, float]) -> Instruction:
    return Instruction(kind=Kind.PAULI_CHANNEL, qubits=(qubit,), probs=probs)


def _measure(qubit: int, basis: str = "Z", invert: bool = False) -> Instruction:
    return Instruction(kind=Kind.MEASURE, qubits=(qubit,), basis=basis, invert=invert)


def random_circuit(n: int, layers: int, rng: np.random.Generator) -> list[Instruction]:
    """Layers of random one-qubit gates, each with a random Pauli channel, a CX brickwork
    and a two-qubit channel; a reset of a qubit midway."""
    out: list[Instruction] = []
    for layer in range(layers):
        for q in range(n):
            name = str(rng.choice(ONE_QUBIT))
            params = (float(rng.uniform(0, 2 * math.pi)),) if name in ANGLED else ()
            out.append(_gate(name, q, params=params))
            out.append(_channel(q, tuple(float(p) for p in rng.uniform(0, 0.04, 3))))
        out += [_gate("cx", q, q + 1) for q in range(layer % 2, n - 1, 2)]
        if n > 1:
            probs = tuple(float(p) for p in rng.uniform(0, 0.01, 15))
            out.append(Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(n - 1, 0), probs=probs))
        if layer == layers // 2:
            out.append(Instruction(kind=Kind.RESET, qubits=(n // 2,)))
    return out


def reference(n: int, instructions: list[Instruction]) -> dict[tuple[int, ...], float]:
    """The records' exact distribution, by dense matrices (qubit 0 the most significant
    bit of ``unitary``'s index): each measurement copies its qubit's Z value (after the
    basis change) onto a fresh record qubit with a CNOT, read at the end, so whatever
    follows on the measured qubit is applied and still changes no record."""
    measures = sum(1 for ins in instructions if ins.kind is Kind.MEASURE)
    width = n + measures
    rho = np.zeros((2**width, 2**width), dtype=complex)
    rho[0, 0] = 1.0
    records: list[bool] = []

    def conj(gates: list[tuple[str, tuple[int, ...], tuple[float, ...]]]) -> None:
        nonlocal rho
        u = unitary(gates, width)
        rho = u @ rho @ u.conj().T

    for ins in instructions:
        if ins.kind is Kind.GATE:
            conj([(ins.gate, ins.qubits, ins.params)])
        elif ins.kind in (Kind.PAULI_CHANNEL, Kind.PAULI_CHANNEL_2):
            letters = ("X", "Y", "Z") if ins.kind is Kind.PAULI_CHANNEL else PAULI_PAIRS
            out = (1 - sum(ins.probs)) * rho
            for p, letter in zip(ins.probs, letters, strict=True):
                paulis = [
                    (c.lower(), (q,), ())
                    for c, q in zip(letter, ins.qubits, strict=True)
                    if c != "I"
                ]
                u = unitary(paulis, width)
                out = out + p * (u @ rho @ u.conj().T)
            rho = out
        elif ins.kind is Kind.RESET:
            for q in ins.qubits:
                index = np.arange(2**width)
                zero = np.diag(((index >> (width - 1 - q)) & 1) == 0).astype(complex)
                one = np.eye(2**width) - zero
                flip = unitary([("x", (q,), ())], width)
                rho = zero @ rho @ zero + flip @ one @ rho @ one @ flip
        else:
            (q,) = ins.qubits
            change = {"Z": [], "X": [("h", (q,), ())], "Y": [("sdg", (q,), ()), ("h", (q,), ())]}
            undo = {"Z": [], "X": [("h", (q,), ())], "Y": [("h", (q,), ()), ("s", (q,), ())]}
            conj([*change[ins.basis], ("cx", (q, n + len(records)), ()), *undo[ins.basis]])
            records.append(ins.invert)
    diagonal = np.real(np.diag(rho))
    out: dict[tuple[int, ...], float] = {}
    for i, p in enumerate(diagonal):
        key = tuple(((i >> (measures - 1 - j)) & 1) ^ inv for j, inv in enumerate(records))
        out[key] = out.get(key, 0.0) + float(p)
    return out


def _distribution(n: int, instructions: list[Instruction]) -> dict[tuple[int, ...], float]:
    """What the compiled density matrix gives for the records (its inversions applied)."""
    sampler = compile_density(BatchCircuit(num_qubits=n, instructions=tuple(instructions)))
    assert sampler is not None
    out: dict[tuple[int, ...], float] = {}
    for i, p in enumerate(sampler.probabilities()):
        key = tuple(((i >> j) & 1) ^ inv for j, (_, inv) in enumerate(sampler.records))
        out[key] = out.get(key, 0.0) + float(p)
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_random_noisy_circuits_give_the_exact_distribution_of_their_records(n: int) -> None:
    rng = np.random.default_rng(SEED + n)
    for _ in range(3):
        body = random_circuit(n, 4, rng)
        bases = [str(rng.choice(["Z", "X", "Y"])) for _ in range(n)]
        order = [int(q) for q in rng.permutation(n)]
        tail = [_measure(q, bases[q], invert=bool(q % 2)) for q in order]
        circuit = body + tail
        expected = reference(n, circuit)
        got = _distribution(n, circuit)
        assert set(got) == set(expected)
        assert max(abs(got[k] - expected[k]) for k in got) < 1e-12


def test_what_follows_a_measurement_on_its_qubit_alone_changes_no_record() -> None:
    # after q0's measurement: a flip channel, an H and a Y on it, and a channel on
    # (q0, q1) whose q1 part still counts, its q0 letters summed over
    pairs = tuple(0.005 * (k + 1) if PAULI_PAIRS[k][1] != "I" else 0.05 for k in range(15))
    circuit = [
        _gate("h", 0),
        _gate("cx", 0, 1),
        _measure(0),
        _channel(0, (0.3, 0.0, 0.0)),
        _gate("h", 0),
        _gate("y", 0),
        Instruction(kind=Kind.PAULI_CHANNEL_2, qubits=(0, 1), probs=pairs),
        _gate("ry", 1, params=(0.4,)),
        _measure(1),
    ]
    got = _distribution(2, circuit)
    expected = reference(2, circuit)
    assert max(abs(got[k] - expected.get(k, 0.0)) for k in got) < 1e-12
    # the q1 part of the pair channel flips q1: m0 and m1 no longer always agree
    assert got[(0, 1)] > 0.05


def test_samples_fit_the_distribution_and_repeat_at_a_seed() -> None:
    rng = np.random.default_rng(SEED)
    n = 4
    circuit = random_circuit(n, 3, rng) + [_measure(q) for q in range(n)]
    sampler = compile_density(BatchCircuit(num_qubits=n, instructions=tuple(circuit)))
    assert sampler is not None
    shots = 20_000
    bits, heralds = sampler.sample(shots, SEED, tuple(range(n)), ())
    assert heralds == 0 and bits.shape == (shots, n)
    keys = bits @ (1 << np.arange(n))
    observed = np.bincount(keys, minlength=2**n)
    expected = shots * sampler.probabilities()
    kept = expected > 5
    statistic = float(((observed[kept] - expected[kept]) ** 2 / expected[kept]).sum())
    assert chi2.sf(statistic, int(kept.sum()) - 1) > 1e-4
    again, _ = sampler.sample(shots, SEED, tuple(range(n)), ())
    other, _ = sampler.sample(shots, SEED + 1, tuple(range(n)), ())
    assert np.array_equal(bits, again) and not np.array_equal(bits, other)
    packed = sampler.sample_packed(shots, SEED)
    assert np.array_equal(np.unpackbits(packed, axis=1, count=n, bitorder="little"), bits)


@pytest.mark.parametrize(
    ("instructions", "reason"),
    [
        ((_gate("t", 0), _measure(0)), "no noise"),
        ((_gate("t", 0), _channel(0, (0.1, 0, 0))), "nothing measured"),
        (
            (Instruction(kind=Kind.ERROR_SITE, qubits=(0,), probs=(0.1, 0, 0)), _measure(0)),
            "drawn per shot",
        ),
        (
            (Instruction(kind=Kind.HERALDED_PAULI_CHANNEL, qubits=(0,), probs=(0.1, 0, 0)),),
            "drawn per shot",
        ),
        (
            (
                _channel(0, (0.1, 0, 0)),
                Instruction(kind=Kind.MEASURE_PRODUCT, qubits=(0, 1), paulis="ZZ"),
            ),
            "product measurement",
        ),
        ((_channel(0, (0.1, 0, 0)), _measure(0), _gate("x", 1, controls=(0,))), "feed-forward"),
        ((_channel(0, (0.1, 0, 0)), _measure(0), _gate("cx", 0, 1)), "measured before"),
        ((_channel(0, (0.1, 0, 0)), _measure(0), _measure(0)), "measured before"),
    ],
)
def test_a_circuit_a_density_matrix_does_not_hold_exactly_is_not_compiled_and_says_why(
    instructions: tuple[Instruction, ...], reason: str
) -> None:
    circuit = BatchCircuit(num_qubits=2, instructions=instructions)
    assert compile_density(circuit) is None
    assert reason in (why_not(circuit) or "")


def test_errors_for_sites_a_density_matrix_has_not_are_refused() -> None:
    circuit = BatchCircuit(num_qubits=1, instructions=(_channel(0, (0.1, 0, 0)), _measure(0)))
    sampler = compile_density(circuit)
    assert sampler is not None and sampler.num_sites == 0
    one = np.array([0])
    with pytest.raises(EngineError, match="QE105"):
        sampler.sample(10, SEED, (0,), (), Errors(shots=one, sites=one, paulis=one + 1))
    with pytest.raises(EngineError, match="QE105"):
        sampler.flips(one)
    none = Errors(shots=one[:0], sites=one[:0], paulis=one[:0])
    bits, _ = sampler.sample(10, SEED, (0,), (), none)
    assert bits.shape == (10, 1)
