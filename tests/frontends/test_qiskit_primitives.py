"""Qiskit's primitives on QMK, tested in the patterns of Qiskit's own primitives tests
(``StatevectorEstimator``, ``BackendSamplerV2``, ``BackendEstimatorV2``): one- and
two-qubit circuits with untouched qubits (the endianness checks), empty circuits, zero
angles, parameter sweeps broadcast against observables, several registers. Exact values
are compared with Qiskit's ``StatevectorEstimator`` to 1e-10, counts with Aer by a
chi-square test of homogeneity at stated seeds; every Qiskit control-flow form is run
(against Aer) or refused with a code.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.circuit.library import real_amplitudes
from qiskit.primitives import BackendEstimatorV2, StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from qmk.frontends.errors import FrontendError
from qmk.frontends.qiskit import from_qiskit
from qmk.qiskit import EstimatorV2, QMKBackend, QMKSampler
from qmk.qvm.fold import unroll
from support.frontends import aer_counts, assert_same_distribution

SEED = 20261125
SHOTS = 4000


def _reference(pubs):
    return [r.data.evs for r in StatevectorEstimator().run(pubs).result()]


def _ours(pubs, **options):
    return [r.data.evs for r in EstimatorV2(noise=False, **options).run(pubs).result()]


def _x_on_zero(width: int) -> QuantumCircuit:
    qc = QuantumCircuit(width)
    qc.x(0)
    return qc


# ----------------------------------------------------------------------------- estimator


@pytest.mark.parametrize(
    ("circuit", "labels"),
    [
        (QuantumCircuit(1), ["I", "Z", "X"]),
        (_x_on_zero(1), ["I", "Z"]),
        (QuantumCircuit(2), ["II", "ZI", "IZ", "XX"]),
        (_x_on_zero(2), ["II", "ZI", "IZ", "ZZ"]),  # qubit 1 untouched: Qiskit's endian check
        (_x_on_zero(5), ["ZZZZZ", "IIIIZ", "ZIIII", "XIIII"]),
    ],
    ids=["empty-1", "x-1", "empty-2", "x0-of-2", "x0-of-5"],
)
@pytest.mark.parametrize("engine", [None, "statevector", "stabilizer"])
def test_exact_values_of_empty_circuits_and_untouched_qubits_equal_qiskits(circuit, labels, engine):
    # EstimatorV2 was an IndexError (untouched highest qubits) or QE111 (empty circuit)
    pubs = [(circuit, [SparsePauliOp(label) for label in labels])]
    for ours, theirs in zip(_ours(pubs, engine=engine), _reference(pubs), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_zero_angles_and_a_vqe_sweep_starting_at_zero_equal_qiskits():
    ansatz = real_amplitudes(num_qubits=3, reps=2)
    sweep = np.vstack(
        [np.zeros(ansatz.num_parameters), np.random.default_rng(SEED).uniform(-3, 3, (4, 9))]
    )
    observables = [SparsePauliOp.from_list([("ZZI", 1.0), ("IXX", -0.5), ("YIY", 0.25)])]
    pubs = [(ansatz, observables, sweep)]
    np.testing.assert_allclose(_ours(pubs)[0], _reference(pubs)[0], atol=1e-10)
    one = QuantumCircuit(1)
    one.ry(0, 0)
    np.testing.assert_allclose(_ours([(one, "Z")])[0], 1.0, atol=1e-12)


def test_a_parameter_sweep_broadcasts_against_an_observable_array_as_qiskits():
    theta = Parameter("theta")
    qc = QuantumCircuit(2)
    qc.ry(theta, 0)
    qc.cx(0, 1)
    values = np.linspace(0, np.pi, 6).reshape(6, 1)
    observables = [[SparsePauliOp("ZZ")], [SparsePauliOp("XI")], [SparsePauliOp("IZ")]]
    values = values.reshape(1, 6, 1)
    pubs = [(qc, observables, values)]
    ours, theirs = _ours(pubs)[0], _reference(pubs)[0]
    assert ours.shape == theirs.shape == (3, 6)
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_shot_based_values_of_untouched_qubits_match_backend_estimator_on_aer():
    from qiskit_aer import AerSimulator

    qc = _x_on_zero(3)
    qc.h(1)
    observables = [SparsePauliOp("IIZ"), SparsePauliOp("ZII"), SparsePauliOp("IXI")]
    ours = EstimatorV2(noise=False, seed=SEED).run([(qc, observables)], precision=0.02).result()
    aer = BackendEstimatorV2(backend=AerSimulator(), options={"seed_simulator": SEED})
    theirs = aer.run([(qc, observables)], precision=0.02).result()
    # exact: -1, 1, 1; both within a few standard errors of 0.02 (here exact: eigenstates)
    np.testing.assert_allclose(ours[0].data.evs, [-1, 1, 1], atol=1e-12)
    np.testing.assert_allclose(theirs[0].data.evs, [-1, 1, 1], atol=1e-12)
    assert ours[0].metadata["noise"] is False


# ----------------------------------------------------------------------------- sampler


def test_the_sampler_reads_one_and_two_qubit_circuits_as_backend_sampler_v2_on_aer():
    from qiskit.primitives import BackendSamplerV2
    from qiskit_aer import AerSimulator

    circuits = []
    for width in (1, 2, 3):
        qc = _x_on_zero(width)
        qc.measure_all()
        circuits.append(qc)
    ours = QMKSampler(noise=False).run(circuits, shots=100).result()
    theirs = BackendSamplerV2(backend=AerSimulator()).run(circuits, shots=100).result()
    for k, width in enumerate((1, 2, 3)):
        key = "0" * (width - 1) + "1"
        assert ours[k].data.meas.get_counts() == theirs[k].data.meas.get_counts() == {key: 100}


def test_the_sampler_of_several_registers_and_a_parameter_sweep_follows_aer():
    from qiskit.primitives import BackendSamplerV2

    theta = Parameter("theta")
    qr = QuantumRegister(3)
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(qr, a, b)
    qc.ry(theta, 0)
    qc.cx(0, 2)
    qc.measure(0, a[0])
    qc.measure([1, 2], [b[0], b[1]])
    values = [[0.0], [0.7], [np.pi]]
    sampler = BackendSamplerV2(backend=QMKBackend(noise=False), options={"seed_simulator": SEED})
    data = sampler.run([(qc, values)], shots=SHOTS).result()[0].data
    assert data.a.num_shots == SHOTS and data.b.shape == (3,)
    for k, (value,) in enumerate(values):
        bound = qc.assign_parameters([value])
        reference = aer_counts(bound, SHOTS, SEED + k)
        a_counts: dict[str, int] = {}
        for key, n in reference.items():
            a_counts[key.split(" ")[1]] = a_counts.get(key.split(" ")[1], 0) + n
        assert_same_distribution(data.a.get_counts(k), a_counts, f"a at theta={value}")


def test_an_empty_circuit_samples_nothing_and_runs():
    qc = QuantumCircuit(2, 2)
    qc.measure([0, 1], [0, 1])
    assert QMKBackend(noise=False).run(qc, shots=50).result().get_counts() == {"00": 50}
    bare = QuantumCircuit(3)
    assert QMKBackend(noise=False).run(bare, shots=5).result().results[0].success


# ----------------------------------------------------------------------------- control flow


def _switch() -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    with qc.switch(qc.cregs[0]) as case:
        with case(0):
            qc.x(2)
        with case(1, 2):
            qc.h(2)
        with case(case.DEFAULT):
            qc.ry(0.3, 2)
    qc.measure(2, 2)
    return qc


def _switch_on_a_bit() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.switch(qc.clbits[0]) as case:
        with case(True):
            qc.rx(1.1, 1)
        with case(case.DEFAULT):
            qc.x(1)
    qc.measure(1, 1)
    return qc


def _continue() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.for_loop(range(3)):
        with qc.if_test((qc.clbits[0], 1)):
            qc.continue_loop()
        qc.rx(0.4, 1)
    qc.measure(1, 1)
    return qc


def _break() -> QuantumCircuit:
    qc = QuantumCircuit(3, 3)
    qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    with qc.for_loop(range(4)) as i:
        qc.ry(0.2 * i, 2)
        with qc.if_test((qc.clbits[0], 1)), qc.if_test((qc.clbits[1], 1)):
            qc.break_loop()
        qc.x(2)
    qc.measure(2, 2)
    return qc


def _box() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    with qc.box():
        qc.h(0)
        qc.cx(0, 1)
    qc.ry(0.3, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _for_loop_ignoring_its_parameter() -> QuantumCircuit:
    body = QuantumCircuit(1, 1)
    body.rx(0.5, 0)
    qc = QuantumCircuit(1, 1)
    qc.for_loop(range(3), Parameter("unused"), body, [0], [0])
    qc.measure(0, 0)
    return qc


def _rx_three_times() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    for _ in range(3):
        qc.rx(0.5, 0)
    qc.measure(0, 0)
    return qc


def _if_else() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as orelse:
        qc.h(1)
    with orelse:
        qc.ry(2.0, 1)
    qc.measure(1, 1)
    return qc


def _box_inlined() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.3, 1)
    qc.measure([0, 1], [0, 1])
    return qc


@pytest.mark.parametrize(
    ("build", "reference"),
    [
        (_if_else, _if_else),
        (_switch, _switch),
        (_switch_on_a_bit, _switch_on_a_bit),
        (_continue, _continue),
        (_break, _break),
        # Aer has no box, and its own compiler fails on a parameter the body ignores:
        # their references are the same circuits written without them
        (_box, _box_inlined),
        (_for_loop_ignoring_its_parameter, _rx_three_times),
    ],
    ids=["if_else", "switch", "switch-bit", "continue", "break", "box", "for-ignoring"],
)
def test_each_control_flow_form_runs_as_on_aer(build, reference):
    ours = QMKBackend(noise=False).run(build(), shots=SHOTS, seed_simulator=SEED)
    theirs = aer_counts(reference(), SHOTS, SEED)
    assert_same_distribution(ours.result().get_counts(), theirs, build.__name__)


def _switch_on(expression: bool) -> QuantumCircuit:
    """X on qubit 2 where the register c, measured, is 1, else RY: by a switch on ``c ^ 1``
    (case 0), or on ``c`` (case 1)."""
    from qiskit.circuit.classical import expr

    c, out = ClassicalRegister(2, "c"), ClassicalRegister(2, "out")
    qc = QuantumCircuit(QuantumRegister(3), c, out)
    qc.h([0, 1])
    qc.measure([0, 1], c)
    with qc.switch(expr.bit_xor(c, 1) if expression else c) as case:
        with case(0 if expression else 1):
            qc.x(2)
        with case(case.DEFAULT):
            qc.ry(0.7, 2)
    qc.measure([1, 2], out)
    return qc


def _switch_on_an_expression() -> QuantumCircuit:
    return _switch_on(expression=True)


def _switch_on_the_register() -> QuantumCircuit:
    return _switch_on(expression=False)


def _store_in_a_var() -> QuantumCircuit:
    from qiskit.circuit.classical import expr

    qc = QuantumCircuit(2, 2)
    flag = qc.add_var("flag", expr.lift(False))
    qc.h(0)
    qc.measure(0, 0)
    qc.store(flag, expr.logic_not(qc.clbits[0]))
    with qc.if_test(flag):
        qc.rx(1.2, 1)
    qc.measure(1, 1)
    return qc


def _while_loop() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.while_loop((qc.clbits[0], 1)):
        qc.rx(0.9, 1)
        qc.reset(0)
        qc.h(0)
        qc.measure(0, 0)
    qc.measure(1, 1)
    return qc


def _if_not_the_bit() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 0)):  # the flag's store, as a condition
        qc.rx(1.2, 1)
    qc.measure(1, 1)
    return qc


def _loose_bits_and_a_register() -> QuantumCircuit:
    from qiskit.circuit import Clbit

    loose, reg = [Clbit(), Clbit()], ClassicalRegister(2, "r")
    qc = QuantumCircuit(QuantumRegister(2), loose, reg)
    qc.h(0)
    qc.measure(0, loose[1])
    qc.measure(0, reg[0])
    with qc.while_loop((reg[0], 1)):
        qc.rx(0.9, 1)
        qc.reset(0)
        qc.h(0)
        qc.measure(0, reg[0])
    qc.measure(1, reg[1])
    qc.measure(1, loose[0])
    return qc


#: What the direct converter cannot express: the backend runs ``qasm3.dumps`` of them.
THROUGH_OPENQASM3 = (_switch_on_an_expression, _store_in_a_var, _while_loop)


@pytest.mark.parametrize(
    ("build", "reference"),
    # Aer switches on no expression and stores no Var: their references are the same
    # circuits written with a register and a condition
    [
        (_switch_on_an_expression, _switch_on_the_register),
        (_store_in_a_var, _if_not_the_bit),
        (_while_loop, _while_loop),
        (_loose_bits_and_a_register, _loose_bits_and_a_register),
    ],
    ids=["switch-expr", "store", "while", "loose-bits"],
)
def test_what_the_direct_converter_cannot_express_runs_as_on_aer(build, reference):
    with pytest.raises(FrontendError) as refused:  # the direct converter's refusal ...
        from_qiskit(build())
    assert refused.value.code == "QL104"
    ours = QMKBackend(noise=False).run(build(), shots=SHOTS, seed_simulator=SEED, memory=True)
    # each shot's memory (its counts merge the keys of shots whose loose clbits differ)
    theirs = aer_memory(reference(), SHOTS, SEED)
    assert_same_distribution(Counter(ours.result().get_memory()), theirs, build.__name__)


def test_transpile_for_the_backend_keeps_a_while_loop_and_runs_it_as_aer_does():
    # Qiskit's usual transpile(qc, backend) refused it: the backend's Target listed no
    # while_loop, though run handles one
    from qiskit import transpile

    backend = QMKBackend(noise=False)
    assert "while_loop" in backend.target.operation_names
    compiled = transpile(_while_loop(), backend, optimization_level=0, seed_transpiler=SEED)
    assert "while_loop" in compiled.count_ops()
    ours = backend.run(compiled, shots=SHOTS, seed_simulator=SEED, memory=True)
    theirs = aer_memory(_while_loop(), SHOTS, SEED)
    assert_same_distribution(Counter(ours.result().get_memory()), theirs, "transpiled while")


def aer_memory(circuit: QuantumCircuit, shots: int, seed: int) -> Counter[str]:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector")
    compiled = transpile(circuit, sim, optimization_level=0, seed_transpiler=seed)
    return Counter(
        sim.run(compiled, shots=shots, seed_simulator=seed, memory=True).result().get_memory()
    )


@pytest.mark.parametrize("build", THROUGH_OPENQASM3, ids=["switch-expr", "store", "while"])
def test_the_backend_and_qasm3_dumps_of_the_same_circuit_have_one_semantics(build):
    from qiskit import qasm3

    import qmk

    circuit = build()
    ours = QMKBackend(noise=False).run(circuit, shots=500, seed_simulator=SEED, memory=True)
    text = qmk.run(qasm3.dumps(circuit), shots=500, seed=SEED, noise=False)
    assert ours.result().get_counts() == dict(text.counts)
    assert ours.result().get_memory() == text.memory


def test_a_for_loop_whose_body_ignores_its_parameter_is_no_circuit_error():
    # was Qiskit's CircuitError 'Cannot bind parameters (unused) not present in the circuit'
    graph = from_qiskit(_for_loop_ignoring_its_parameter())
    assert [n.op for n in unroll(graph, max_nodes=None).nodes].count("APPLY_RX") == 3


def test_the_forms_qmk_does_not_run_are_refused_with_a_code():
    from qiskit.circuit import Annotation

    class _Twirl(Annotation):
        namespace = "test.twirl"

    boxed = QuantumCircuit(1)
    with boxed.box(annotations=[_Twirl()]):
        boxed.x(0)
    with pytest.raises(FrontendError) as caught:
        from_qiskit(boxed)
    assert caught.value.code == "QL104" and "annotations" in str(caught.value)
    # nor does its OpenQASM 3 read: the backend says what the direct converter says
    with pytest.raises(FrontendError) as caught:
        QMKBackend(noise=False).run(boxed, shots=10)
    assert caught.value.code == "QL104" and "annotations" in str(caught.value)


def test_transpile_keeps_the_control_flow_the_backend_runs():
    from qiskit import transpile

    backend = QMKBackend(noise=False)
    for build in (_switch, _break, _box):
        compiled = transpile(build(), backend, optimization_level=1, seed_transpiler=SEED)
        names = {instruction.operation.name for instruction in compiled.data}
        assert names & {"switch_case", "for_loop", "box"}
        backend.run(compiled, shots=10, seed_simulator=SEED).result()
