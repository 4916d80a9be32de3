"""QMKBackend runs Qiskit circuits in-process with Aer's count format; QMKSampler samples."""

from __future__ import annotations

import pytest

from qmk import defaults

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


#: The control flow QMKBackend runs, every one listed in its Target.
CONTROL_FLOW = {
    "if_else",
    "for_loop",
    "while_loop",
    "switch_case",
    "box",
    "break_loop",
    "continue_loop",
}


def test_the_target_is_the_qvm_gate_set_with_the_logical_models_costs():
    from qmk.frontends.builder import GATE_OPS
    from qmk.qec.logical import logical_model

    backend = QMKBackend()
    names = set(backend.target.operation_names)
    assert names == set(GATE_OPS) | {"measure", "reset", "delay"} | CONTROL_FLOW
    model = logical_model("logical:surface_code(d=9)", "qubit_gate_ns_e3")
    h = backend.target["h"][(3,)]
    assert h.duration == pytest.approx(model.op_time_ns("APPLY_H") * 1e-9)
    assert h.error == pytest.approx(model.op_error("APPLY_H").total)
    assert backend.target["x"][(0,)].error == 0.0  # a Pauli frame update: no cycle
    cx = backend.target["cx"][None]
    assert cx.error == pytest.approx(1 - (1 - model.op_error("APPLY_CNOT").total) ** 2)
    assert cx.duration == pytest.approx(model.op_time_ns("APPLY_CNOT") * 1e-9)
    ccz = backend.target["ccz"][None]
    assert ccz.error == pytest.approx(1 - (1 - model.op_error("APPLY_CCZ").total) ** 3)
    assert ccz.duration == pytest.approx(model.op_time_ns("APPLY_CCZ") * 1e-9)
    assert backend.target.build_coupling_map() is None  # no layout, no widening


def test_every_gate_of_the_target_has_a_duration_and_an_error_on_any_qubits():
    backend = QMKBackend()
    target = backend.target
    durations = target.durations()
    last = backend.num_qubits - 1
    for name in sorted(set(target.operation_names) - {"delay"} - CONTROL_FLOW):
        width = target.operation_from_name(name).num_qubits
        for qubits in ((0, 1, 2)[:width], tuple(range(last, last - width, -1))):
            props = target[name].get(qubits)
            assert props is not None and props.duration is not None, (name, qubits)
            assert props.error is not None, (name, qubits)
            assert durations.get(name, list(qubits), unit="s") == props.duration


def test_a_transpile_with_scheduling_reads_every_gates_duration():
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.cx(0, 1)
    qc.ccx(0, 1, 2)
    qc.measure(range(3), range(3))
    backend = QMKBackend()
    compiled = transpile(qc, backend, scheduling_method="alap", seed_transpiler=1)
    assert compiled.num_qubits == 3
    # the idle qubits wait exactly as long as the gates they skip take
    delays = [i for i in compiled.data if i.operation.name == "delay"]
    assert delays and all(i.operation.duration > 0 for i in delays)
    counts = backend.run(compiled, shots=SHOTS, seed_simulator=2).result().get_counts()
    assert_same_distribution(counts, aer_counts(qc, SHOTS, 2), "scheduled")


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_every_optimisation_level_keeps_the_width_and_the_distribution(level):
    from qiskit.circuit.library import UnitaryGate
    from qiskit.quantum_info import random_unitary

    qc = QuantumCircuit(3, 3)
    qc.append(UnitaryGate(random_unitary(4, seed=1)), [0, 1])
    qc.ecr(1, 2)
    qc.cu(0.1, 0.2, 0.3, 0.4, 0, 2)
    qc.append(UnitaryGate(random_unitary(4, seed=3)), [1, 2])
    qc.ccx(0, 1, 2)
    qc.measure(range(3), range(3))
    backend = QMKBackend()
    compiled = transpile(qc, backend, optimization_level=level, seed_transpiler=5)
    assert compiled.num_qubits == 3
    assert set(compiled.count_ops()) <= set(backend.target.operation_names) | {"barrier"}
    counts = backend.run(compiled, shots=SHOTS, seed_simulator=6).result().get_counts()
    assert_same_distribution(counts, aer_counts(qc, SHOTS, 6), f"level {level}")


def _standard_circuits() -> list[QuantumCircuit]:
    from qiskit.circuit.library import FullAdderGate, QFTGate, quantum_volume

    qft = QuantumCircuit(4, name="qft4")
    qft.x(0)
    qft.h(2)
    qft.append(QFTGate(4), range(4))
    volume = quantum_volume(3, seed=7)
    volume.name = "qv3"
    adder = FullAdderGate(2)  # carry-in, a (2 qubits), b (2 qubits), carry-out
    added = QuantumCircuit(adder.num_qubits, name="adder2")
    added.x([1, 3])  # a = 1, b = 1
    added.h([0, 2])  # carry-in and a's high bit in superposition
    added.append(adder, range(adder.num_qubits))
    circuits = [qft, volume.decompose(), added, random_circuit(4), ghz(4)]
    for circuit in circuits:
        if not circuit.num_clbits:
            circuit.measure_all()
    return circuits


def _expensive(circuit: QuantumCircuit) -> int:
    """Gates on two or more qubits: the costly ones in the logical model (a lattice
    surgery step on every qubit they touch; ccx/ccz three)."""
    skip = {"barrier", "measure"}
    return sum(1 for i in circuit.data if i.operation.num_qubits > 1 and i.name not in skip)


@pytest.mark.parametrize("index", range(5))
def test_level_3_uses_no_more_expensive_gates_than_level_1_and_every_level_agrees_with_aer(
    index: int,
):
    circuit = _standard_circuits()[index]
    backend = QMKBackend()
    aer = aer_counts(circuit, SHOTS, 12)
    compiled = {
        level: transpile(circuit, backend, optimization_level=level, seed_transpiler=3)
        for level in range(4)
    }
    for level, done in compiled.items():
        assert done.num_qubits == circuit.num_qubits, (circuit.name, level)
        counts = backend.run(done, shots=SHOTS, seed_simulator=12).result().get_counts()
        assert_same_distribution(counts, aer, f"{circuit.name} at level {level}")
    assert _expensive(compiled[3]) <= _expensive(compiled[1]), circuit.name


def test_the_width_offered_is_what_the_chosen_engine_holds():
    from qmk.engines.registry import max_qubits

    assert QMKBackend().num_qubits == max_qubits("statevector")
    assert QMKBackend(precision="single").num_qubits == max_qubits("statevector", "single")
    assert QMKBackend(method="stabilizer").num_qubits == max_qubits("stabilizer")
    assert QMKBackend(num_qubits=5).num_qubits == 5


def test_aer_options_map_to_engines_and_the_job_takes_a_timeout():
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    backend = QMKBackend()
    for method, engine in (("statevector", "statevector"), ("stabilizer", "stabilizer")):
        result = backend.run(qc, shots=20, seed_simulator=2, method=method).result(timeout=30)
        assert result.results[0].metadata["engine"] == engine
        assert set(result.get_counts()) <= {"00", "11"}
    single = backend.run(qc, shots=20, seed_simulator=2, precision="single").result()
    assert set(single.get_counts()) <= {"00", "11"}


@pytest.mark.parametrize(
    ("options", "code", "fragment"),
    [
        ({"method": "unitary"}, "QL104", "method='unitary' has no QMK engine"),
        ({"fusion_enable": True}, "QL107", "unknown option(s) ['fusion_enable']"),
        ({"device": "TPU"}, "QL107", "device='TPU'"),
        ({"precision": "half"}, "QL107", "precision='half'"),
        ({"method": "stabilizer", "engine": "statevector"}, "QL107", "means engine"),
        ({"noise_model": object()}, "QL104", "noise_model"),
    ],
)
def test_options_without_a_meaning_here_are_coded_errors(options, code, fragment):
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with pytest.raises(FrontendError) as info:
        QMKBackend().run(qc, shots=5, **options)
    assert info.value.code == code and fragment in str(info.value)


def test_a_circuit_without_classical_bits_has_no_counts_as_on_aer():
    from qiskit.exceptions import QiskitError
    from qiskit_aer import AerSimulator

    qc = QuantumCircuit(2)
    qc.h(0)
    for backend in (QMKBackend(), AerSimulator()):
        result = backend.run(qc, shots=10).result()
        with pytest.raises(QiskitError, match="No counts for experiment"):
            result.get_counts()


def test_noise_follows_the_machine_default_and_is_off_when_asked():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    assert QMKBackend().options.noise is defaults.NOISE
    assert QMKBackend(noise=False).options.noise is False
    assert QMKBackend(noise=False).run(qc, shots=100, seed_simulator=1).result().get_counts() == {
        "0": 100
    }


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
