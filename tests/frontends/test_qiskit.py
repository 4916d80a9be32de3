"""Qiskit circuits lowered by from_qiskit give Aer's distributions, with Aer's keys."""

from __future__ import annotations

import pytest

pytest.importorskip("qiskit")
pytest.importorskip("qiskit_aer")

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Instruction, Parameter

from qmk.execution.runs import run
from qmk.frontends.errors import FrontendError
from qmk.frontends.qiskit import from_qiskit
from qmk.qvm.verify import check
from support.frontends import aer_counts, assert_same_distribution

SHOTS = 2000
SEED = 20240605


def test_each_program_matches_aer_by_chi_square(qiskit_program):
    label, make = qiskit_program
    circuit = make()
    graph = from_qiskit(circuit)
    assert check(graph).ok
    qmk = run(graph, shots=SHOTS, seed=SEED, noise=False).counts
    aer = aer_counts(circuit, SHOTS, SEED)
    assert_same_distribution(qmk, aer, label)


def test_keys_list_registers_in_reverse_order_bit_zero_rightmost():
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(3, "b")
    qc = QuantumCircuit(QuantumRegister(3), a, b)
    qc.x(0)
    qc.x(2)
    qc.measure(0, a[0])
    qc.measure(2, b[1])
    counts = run(from_qiskit(qc), shots=10, seed=1, noise=False).counts
    assert counts == {"010 01": 10}


def test_circuit_without_registers_writes_all_clbits_as_one_group():
    qc = QuantumCircuit(2)
    qc.x(1)
    qc.measure_all(add_bits=True)
    assert run(from_qiskit(qc), shots=5, seed=1, noise=False).counts == {"10": 5}


def test_an_unbound_parameter_is_a_clear_error_naming_it_and_the_instruction():
    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.rx(theta, 0)
    with pytest.raises(FrontendError, match=r"instruction #1: gate rx has unbound.*theta"):
        from_qiskit(qc)


def test_an_unsupported_instruction_is_named_with_its_index():
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.append(Instruction("mystery", 1, 0, []), [0])
    with pytest.raises(FrontendError) as info:
        from_qiskit(qc)
    assert info.value.code == "QL104"
    assert "instruction #1" in str(info.value) and "mystery" in str(info.value)


def test_initialize_is_lowered_through_its_definition():
    qc = QuantumCircuit(1, 1)
    qc.initialize([0.6, 0.8], 0)
    qc.measure(0, 0)
    counts = run(from_qiskit(qc), shots=4000, seed=3, noise=False).counts
    assert abs(counts.get("1", 0) / 4000 - 0.64) < 0.04  # 5 sigma at p=0.64


def test_annotated_controlled_and_inverse_gates_match_their_matrices():
    from qiskit.circuit import AnnotatedOperation
    from qiskit.circuit.annotated_operation import ControlModifier, InverseModifier
    from qiskit.circuit.library import RZZGate
    from qiskit.quantum_info import Operator

    from qmk.frontends import decompose
    from qmk.frontends.qiskit import _Lowerer

    op = AnnotatedOperation(RZZGate(0.7), [InverseModifier(), ControlModifier(2, ctrl_state=1)])
    low = _Lowerer(QuantumCircuit(4), profile=None, name="t").gate(op, 0)
    assert np.allclose(decompose.matrix_of(low), Operator(op).data, atol=1e-9)


def test_a_while_loop_is_refused_by_name_not_dropped():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with qc.while_loop((qc.clbits[0], 1)):
        qc.x(0)
    with pytest.raises(FrontendError) as info:
        from_qiskit(qc)
    assert info.value.code == "QL104"
    assert "a while loop (while_loop) is not supported" in str(info.value)
    assert "c_if" not in str(info.value)  # its loop condition is no c_if


def test_a_conditional_measurement_over_an_earlier_result_is_refused():
    qc = QuantumCircuit(2, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.measure(1, 0)
    with pytest.raises(FrontendError, match="earlier result"):
        from_qiskit(qc)


def test_for_loop_unrolls_with_its_parameter_bound():
    qc = QuantumCircuit(1, 1)
    with qc.for_loop(range(3)) as i:
        qc.rx(i * 0.5, 0)
    qc.measure(0, 0)
    graph = from_qiskit(qc)
    angles = [n.args["theta"] for n in graph.nodes if n.op == "APPLY_RX"]
    assert angles == [0.5, 1.0]  # rx(0) is the identity and is not written


def test_nodes_record_the_instruction_they_came_from():
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    graph = from_qiskit(qc)
    assert [n.metadata["source"] for n in graph.nodes[1:3]] == ["bell#0", "bell#1"]


def test_the_profile_is_written_on_the_allocation():
    graph = from_qiskit(QuantumCircuit(2), profile="logical:surface_code(d=5)")
    assert graph.nodes[0].args["profile"] == "logical:surface_code(d=5)"
