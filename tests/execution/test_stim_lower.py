"""stim text -> QVM (folded) -> stim: the circuit the stim target runs is stim's own.

Checked against stim itself on its generated circuits (every noise kind at p = 0.004,
REPEAT blocks): the same detector error model (``detector_error_model()`` equal), the
same measurement and detection samples at the same seeds, and ``REPEAT`` kept a block.
"""

from __future__ import annotations

import json

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
