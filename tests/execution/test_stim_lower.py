"""stim text -> QVM (folded) -> stim: the circuit the stim target runs is stim's own.

Checked against stim itself on its generated circuits (every noise kind at p = 0.004,
REPEAT blocks): the same detector error model (``detector_error_model()`` equal), the
same measurement and detection samples at the same seeds, and ``REPEAT`` kept a block.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import stim

import qmk
from qmk.engines.base import EngineError
from qmk.execution.stim_lower import to_stim
from qmk.execution.stim_target import StimTarget
from qmk.frontends.stim_fold import read_folded
from qmk.qvm.graph import Graph, Node, Resources
from support.stim_circuits import EVERY_INSTRUCTION, generated

SEEDS = (3, 20261128)
TASKS = (
    "surface_code:rotated_memory_x",
    "surface_code:rotated_memory_z",
    "surface_code:unrotated_memory_z",
    "repetition_code:memory",
    "color_code:memory_xyz",
)


def _blocks(circuit: stim.Circuit) -> list[int]:
    return [item.repeat_count for item in circuit if isinstance(item, stim.CircuitRepeatBlock)]


@pytest.mark.parametrize("task", TASKS)
def test_stims_generated_circuits_come_back_with_the_same_model_and_samples(task):
    circuit = generated(task, distance=3, p=0.004, rounds=6)
    back = to_stim(read_folded(circuit))
    assert back.detector_error_model() == circuit.detector_error_model()
    assert back.detector_error_model(decompose_errors=True) == circuit.detector_error_model(
        decompose_errors=True
    )
    assert _blocks(back) == _blocks(circuit) != []
    for seed in SEEDS:
        ours = back.compile_sampler(seed=seed).sample(500)
        theirs = circuit.compile_sampler(seed=seed).sample(500)
        np.testing.assert_array_equal(ours, theirs)
        ours_d, ours_o = back.compile_detector_sampler(seed=seed).sample(
            500, separate_observables=True
        )
        theirs_d, theirs_o = circuit.compile_detector_sampler(seed=seed).sample(
            500, separate_observables=True
        )
        np.testing.assert_array_equal(ours_d, theirs_d)
        np.testing.assert_array_equal(ours_o, theirs_o)
    if task != "color_code:memory_xyz":  # C_XYZ comes back in H and S
        assert back == circuit


def test_every_instruction_comes_back_as_stim_wrote_it_but_a_sweep_controlled_gate():
    circuit = stim.Circuit(EVERY_INSTRUCTION)
    back = to_stim(read_folded(circuit))
    without = stim.Circuit(EVERY_INSTRUCTION.replace("CX sweep[0] 3\n", ""))
    assert back == without
    for seed in SEEDS:
        np.testing.assert_array_equal(
            back.compile_sampler(seed=seed).sample(300),
            circuit.compile_sampler(seed=seed).sample(300),
        )


def test_the_ten_million_round_example_comes_back_as_one_repeat_block():
    circuit = stim.Circuit.generated("surface_code:rotated_memory_x", distance=3, rounds=10**7)
    assert to_stim(read_folded(circuit)) == circuit


def test_a_feedback_pauli_comes_back_controlled_by_its_record_bit():
    circuit = stim.Circuit(
        "H 0\nREPEAT 4 {\n  M 0\n  CX rec[-1] 1\n  H 1\n  M 1\n  CZ rec[-2] 2\n}\n"
    )
    back = to_stim(read_folded(circuit))
    assert back == stim.Circuit(
        "H 0\nREPEAT 4 {\n  M 0\n  CX rec[-1] 1\n  H 1\n  M 1\n  CZ rec[-2] 2\n}\n"
    )


def test_a_row_stim_has_no_instruction_for_is_a_coded_error_naming_it():
    graph = Graph(
        version="0.3",
        nodes=(
            Node(id="a", op="ALLOC_LQ", vqs=("q",), args={"n": 1}),
            Node(id="t", op="APPLY_T", vqs=("q",)),
            Node(id="f", op="FREE_LQ", vqs=("q",)),
        ),
        resources=Resources(vqs=("q",)),
    )
    with pytest.raises(EngineError) as caught:
        to_stim(graph)
    assert caught.value.code == "QE103" and "'t' (APPLY_T)" in str(caught.value)


def test_a_qvm_program_of_stim_rows_runs_on_the_stim_target_as_its_circuit_does():
    circuit = generated("repetition_code:memory", distance=3, p=0.01, rounds=4)
    data = read_folded(circuit).to_json()
    result = qmk.run(json.dumps(data), shots=400, seed=11, target="stim", noise=True)
    theirs = circuit.compile_sampler(seed=11).sample(400).astype(np.uint8)
    np.testing.assert_array_equal(result.bits, theirs)
    assert StimTarget().read(data).circuit == circuit


def test_a_noisy_program_is_refused_on_the_logical_target_with_its_code():
    graph = read_folded("X_ERROR(0.1) 0\nM 0\n")
    with pytest.raises(EngineError) as caught:
        qmk.run(graph, shots=10, seed=1)
    assert caught.value.code == "QE110" and "NOISE" in str(caught.value)


#: The instructions of :func:`_random_circuit`: ones the reader keeps as they are (``CY``
#: comes back as ``S_DAG CX S``, ``M`` then ``R`` of one qubit as ``MR``: not here).
_GATES = ("H", "S", "S_DAG", "X", "Y", "Z", "SQRT_X", "SQRT_Y", "CX", "CZ", "SWAP")
_PAIRS = frozenset({"CX", "CZ", "SWAP"})


def _random_circuit(rng: random.Random, qubits: int, rows: int, depth: int = 0) -> str:
    """A seeded stim circuit of gates, noise, measurements, products, detectors and
    REPEAT blocks (nested twice at most), consecutive lines often of one name."""
    lines: list[str] = []
    bits = 0
    for _ in range(rows):
        qs = [str(q) for q in rng.sample(range(qubits), rng.randint(1, min(4, qubits)))]
        pick = rng.randrange(9)
        if pick < 3:
            gate = rng.choice(_GATES)
            if gate in _PAIRS:
                qs = qs[: len(qs) // 2 * 2] or ["0", "1"]
            lines.append(" ".join((gate, *qs)))
        elif pick == 3:
            channel = rng.choice(("X_ERROR", "DEPOLARIZE1"))
            lines.append(" ".join((f"{channel}({rng.choice((0.01, 1 / 3))})", *qs)))
        elif pick == 4:
            lines.append(" ".join((rng.choice(("M", "MR", "MX", "M(0.01)")), *qs)))
            bits += len(qs)
        elif pick == 5 and bits:
            lines.append(f"DETECTOR rec[-{rng.randint(1, bits)}]")
        elif pick == 6 and len(qs) > 1:
            lines.append(f"MPP X{qs[0]}*Z{qs[-1]}")
            bits += 1
        elif pick == 7 and depth < 2:
            body = _random_circuit(rng, qubits, rng.randint(1, 5), depth + 1)
            if body and stim.Circuit(body).num_measurements:
                lines.append(f"REPEAT {rng.randint(2, 4)} {{\n{body}\n}}")
        else:
            lines.append(rng.choice(("TICK", f"E(0.01) X{qs[0]}", f"H {qs[0]}")))
    return "\n".join(lines)


def test_seeded_random_circuits_come_back_as_stim_reads_them_with_the_same_samples():
    rng = random.Random(20261130)
    for _ in range(80):
        circuit = stim.Circuit(_random_circuit(rng, rng.randint(2, 10), rng.randint(1, 50)))
        back = to_stim(read_folded(circuit))
        assert back == circuit and str(back) == str(circuit), circuit
        if circuit.num_measurements:
            np.testing.assert_array_equal(
                back.compile_sampler(seed=7).sample(32), circuit.compile_sampler(seed=7).sample(32)
            )


def test_a_wide_layer_comes_back_as_one_instruction_per_gate():
    qubits = " ".join(map(str, range(3000)))
    circuit = stim.Circuit(f"R {qubits}\nH {qubits}\nX_ERROR(0.01) {qubits}\nM {qubits}")
    back = to_stim(read_folded(circuit))
    assert back == circuit and len(back) == 4


def test_lines_stim_merges_come_back_merged_and_those_it_keeps_apart_apart():
    text = """\
H 0
H 0
X_ERROR(0.3333333333333333) 0
X_ERROR(0.3333333333333333) 0 1
X_ERROR(0.2) 0
E(0.1) X0
E(0.1) X0
ELSE_CORRELATED_ERROR(0.1) Z1
ELSE_CORRELATED_ERROR(0.1) Z1
M 0
M 0 1
MPP X0*Z1
MPP !Z1
DETECTOR rec[-1]
DETECTOR rec[-1]
OBSERVABLE_INCLUDE(0) rec[-1]
OBSERVABLE_INCLUDE(0) rec[-2]
TICK
TICK
SHIFT_COORDS(1)
SHIFT_COORDS(1)
"""
    circuit = stim.Circuit(text)
    back = to_stim(read_folded(circuit))
    assert str(back) == str(circuit) and back == circuit
    assert [instruction.name for instruction in back] == [
        "H",
        "X_ERROR",
        "X_ERROR",
        "E",
        "E",
        "ELSE_CORRELATED_ERROR",
        "ELSE_CORRELATED_ERROR",
        "M",
        "MPP",
        "DETECTOR",
        "DETECTOR",
        "OBSERVABLE_INCLUDE",
        "OBSERVABLE_INCLUDE",
        "TICK",
        "TICK",
        "SHIFT_COORDS",
        "SHIFT_COORDS",
    ]
