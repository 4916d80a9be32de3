"""The batch capability: engines that can sample a whole circuit at once say so."""

from __future__ import annotations

import math

import numpy as np

from qmk.engines.batch import BatchCircuit, Instruction, Kind, batch_compiler
from qmk.engines.stabilizer import StabilizerEngine
from qmk.engines.statevector import StatevectorEngine

SEED = 20261122


def _gate(gate: str, *qubits: int, **fields) -> Instruction:
    return Instruction(kind=Kind.GATE, qubits=qubits, gate=gate, **fields)


def _measure(qubit: int, basis: str = "Z", invert: bool = False) -> Instruction:
    return Instruction(kind=Kind.MEASURE, qubits=(qubit,), basis=basis, invert=invert)


def test_the_stabilizer_engine_offers_batch_sampling_and_the_statevector_engine_does_not():
    assert batch_compiler(StabilizerEngine) is not None
    assert batch_compiler(StatevectorEngine) is None


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
