"""QMKBackend runs Qiskit circuits in-process with Aer's count format; QMKSampler samples."""

from __future__ import annotations

import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile

from qmk.frontends.errors import FrontendError
from qmk.qiskit import QMKBackend, QMKSampler
from support.frontends import aer_counts, assert_same_distribution, ghz, random_circuit, teleport

SHOTS = 2000


def test_run_matches_aer_with_identical_keys_for_several_circuits():
    circuits = [teleport(1.1, 0.4), random_circuit(3), ghz(3)]
    job = QMKBackend().run(circuits, shots=SHOTS, seed_simulator=4)
    counts = job.result().get_counts()
    assert len(counts) == 3
    for k, circuit in enumerate(circuits):
        aer = aer_counts(circuit, SHOTS, 4)
        assert_same_distribution(counts[k], aer, circuit.name)


def test_same_seed_same_counts_and_memory_has_one_key_per_shot():
    qc = QuantumCircuit(QuantumRegister(2), ClassicalRegister(1, "a"), ClassicalRegister(1, "b"))
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)
    qc.measure(1, 1)
    backend = QMKBackend()
    first = backend.run(qc, shots=50, seed_simulator=9, memory=True).result()
    second = backend.run(qc, shots=50, seed_simulator=9).result()
    assert first.get_counts() == second.get_counts()
    memory = first.get_memory()
    assert len(memory) == 50 and set(memory) <= {"0 0", "1 1"}


def test_the_target_lists_the_table_gates_and_transpile_keeps_them():
    backend = QMKBackend()
    for name in ("cx", "ecr", "cu", "rzz", "measure", "reset", "if_else"):
        assert name in backend.target.operation_names
    qc = QuantumCircuit(2)
    qc.ecr(0, 1)
    qc.cu(0.1, 0.2, 0.3, 0.4, 0, 1)
    ops = transpile(qc, backend, optimization_level=0).count_ops()
    assert set(ops) == {"ecr", "cu"}


def test_noise_is_off_by_default_and_on_when_asked():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    assert QMKBackend().options.noise is False
    assert QMKBackend(noise=True).options.noise is True
    assert QMKBackend().run(qc, shots=100, seed_simulator=1).result().get_counts() == {"0": 100}


def test_an_unsupported_circuit_is_a_frontend_error():
    from qiskit.circuit import Instruction

    qc = QuantumCircuit(1)
    qc.append(Instruction("mystery", 1, 0, []), [0])
    with pytest.raises(FrontendError):
        QMKBackend().run(qc, shots=10)


def test_the_sampler_returns_bit_arrays_per_register():
    qc = QuantumCircuit(QuantumRegister(2), ClassicalRegister(2, "c"))
    qc.x(1)
    qc.measure([0, 1], [0, 1])
    data = QMKSampler().run([qc], shots=30).result()[0].data
    assert data.c.get_counts() == {"10": 30}
