"""stim circuits read as QVM programs, REPEAT blocks kept folded (``read_folded``): what
``qmk validate``/``qmk info`` check and the stim target runs.

The rows are checked against stim itself: the measurement count, the qubits, and, for
noiseless memory experiments of stim's own generator, every detector's parity computed
on QMK's run of the rows (unrolled) through the rows' own record offsets, which must
all be 0 as stim's generator promises.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import stim

import qmk
from qmk.errors import QuotaError
from qmk.execution.runs import run
from qmk.execution.stim_target import StimTarget
from qmk.frontends import read_program
from qmk.frontends.errors import FrontendError
from qmk.frontends.stim_fold import read_folded
from qmk.qvm.fold import unroll
from qmk.qvm.graph import REPEAT
from qmk.qvm.limits import DEFAULT_MAX_NODES, Limits
from qmk.qvm.verify import check
from support.cli import qmk as qmk_cli

SEED = 20261128
#: stim's documented REPEAT example: a distance-3 surface-code memory of 10^7 rounds.
ROUNDS = 10**7


def _memory(task: str = "surface_code:rotated_memory_x", rounds: int = ROUNDS, **noise) -> str:
    return str(stim.Circuit.generated(task, distance=3, rounds=rounds, **noise))


def test_the_documented_ten_million_round_memory_experiment_is_checked_folded():
    circuit = stim.Circuit(_memory())
    graph = read_folded(circuit)
    report = check(graph, unroll=False)
    assert report.ok, report.findings
    totals = report.totals
    assert totals is not None and graph.version == "0.3"
    assert totals.rows < 400 and totals.repeats == 1
    (repeat,) = [row for row in graph.nodes if row.op == REPEAT]
    (block,) = [item for item in circuit if isinstance(item, stim.CircuitRepeatBlock)]
    assert repeat.args["count"] == block.repeat_count == ROUNDS - 1
    assert totals.counts.measurements == circuit.num_measurements
    assert totals.qubits == totals.peak_live_qubits == circuit.num_qubits
    assert totals.counts.by_op["DETECTOR"] == circuit.num_detectors
    assert totals.counts.by_op["OBSERVABLE_INCLUDE"] == 1


def test_qmk_validate_and_info_read_a_stim_file_folded(tmp_path):
    source = tmp_path / "memory.stim"
    source.write_text(_memory(), encoding="utf-8")
    status, stdout, stderr = qmk_cli("validate", str(source))
    assert (status, stderr) == (0, "")
    assert "ok (" in stdout and f"{stim.Circuit(_memory()).num_measurements}" not in stdout
    assert "1 REPEAT" not in stdout and " rows, " in stdout
    status, stdout, stderr = qmk_cli("info", str(source), "--json")
    assert (status, stderr) == (0, "")
    info = json.loads(stdout)
    assert info["counts"]["measurements"] == stim.Circuit(_memory()).num_measurements


@pytest.mark.parametrize(
    "task",
    [
        "surface_code:rotated_memory_x",
        "surface_code:unrotated_memory_z",
        "repetition_code:memory",
        "color_code:memory_xyz",
    ],
)
def test_every_detector_of_a_noiseless_memory_experiment_reads_zero_on_the_rows(task):
    graph = read_folded(_memory(task, rounds=4))
    assert check(graph, unroll=False).ok
    flat = unroll(graph, max_nodes=None)
    result = run(flat, shots=50, seed=SEED, noise=False)
    column = {event: k for k, event in enumerate(result.events)}
    bits = result.bits
    record: list[np.ndarray] = []
    detectors = 0
    for node in flat.nodes:
        if node.op.startswith("MEASURE_"):
            record.append(bits[:, column[node.produces[0]]])
        elif node.op == "DETECTOR":
            parity = np.bitwise_xor.reduce([record[k] for k in node.args["rec"]], axis=0)
            assert not parity.any(), (task, node)
            detectors += 1
    assert detectors == stim.Circuit(_memory(task, rounds=4)).num_detectors
    assert len(record) == stim.Circuit(_memory(task, rounds=4)).num_measurements


#: The ops that write a record bit.
RECORDING = {"MEASURE_Z", "MEASURE_X", "MEASURE_Y", "NOISY_MEASURE", "CALC"}
SPECIAL = {
    "TICK": "TICK",
    "SHIFT_COORDS": "SHIFT_COORDS(1, 2)",
    "DETECTOR": "DETECTOR(1, 2) rec[-1]",
    "OBSERVABLE_INCLUDE": "OBSERVABLE_INCLUDE(0) rec[-1]",
    "QUBIT_COORDS": "QUBIT_COORDS(1, 2) 0",
    "PAULI_CHANNEL_2": f"PAULI_CHANNEL_2({', '.join(['0.01'] * 15)}) 0 1",
    "ELSE_CORRELATED_ERROR": "E(0.1) X0\nELSE_CORRELATED_ERROR(0.1) Z1",
    "MPAD": "MPAD 0",
}


def _example(name: str) -> str:
    """One instruction of gate ``name`` on qubits 0 (and 1), after a measurement."""
    if name in SPECIAL:
        return f"M 0\n{SPECIAL[name]}\n"
    data = stim.gate_data(name)
    low = data.num_parens_arguments_range.start
    args = f"({', '.join(['0.1'] * low)})" if low else ""
    if data.takes_pauli_targets:
        targets = "X0*Z1" if name not in ("E",) else "X0 Z1"
    else:
        targets = "0 1" if data.is_two_qubit_gate else "0"
    return f"M 0\n{name}{args} {targets}\n"


@pytest.mark.parametrize(
    "name", sorted(n for n, d in stim.gate_data().items() if d.name == n and n != "REPEAT")
)
def test_every_instruction_of_stims_table_is_read_and_verifies(name):
    text = _example(name)
    graph = read_folded(text)
    assert check(graph, unroll=False).ok
    rows = [row.op for row in graph.nodes]
    measured = sum(op in RECORDING for op in rows)
    assert measured == stim.Circuit(text).num_measurements
    if name not in ("I", "II"):  # the identities alone write no row
        assert len(rows) > 3


def test_noise_and_annotations_are_rows_with_stims_arguments():
    graph = read_folded(
        "QUBIT_COORDS(1, 2) 0\nDEPOLARIZE2(0.01) 0 1 2 3\nE(0.2) X0 Y3\nM 0\n"
        "SHIFT_COORDS(0, 0, 1)\nDETECTOR(1, 2, 3) rec[-1]\nOBSERVABLE_INCLUDE(2) rec[-1]\n"
    )
    rows = [(row.op, dict(row.args), row.vqs) for row in graph.nodes[1:-1]]
    assert rows == [
        ("QUBIT_COORDS", {"coords": [1.0, 2.0]}, ("q0",)),
        ("NOISE", {"channel": "DEPOLARIZE2", "p": [0.01]}, ("q0", "q1")),
        ("NOISE", {"channel": "DEPOLARIZE2", "p": [0.01]}, ("q2", "q3")),
        ("NOISE", {"channel": "E", "p": [0.2], "paulis": "XY"}, ("q0", "q3")),
        ("MEASURE_Z", {}, ("q0",)),
        ("SHIFT_COORDS", {"coords": [0.0, 0.0, 1.0]}, ()),
        ("DETECTOR", {"rec": [-1], "coords": [1.0, 2.0, 3.0]}, ()),
        ("OBSERVABLE_INCLUDE", {"index": 2, "rec": [-1]}, ()),
    ]


def test_a_record_bit_controls_a_pauli_in_its_own_turn_kept_folded():
    graph = read_folded("REPEAT 3 {\n  H 0\n  M 0\n  CX rec[-1] 1\n  R 0\n}\nM 1\n")
    body = graph.nodes[1].body
    assert [row.op for row in body] == ["APPLY_H", "MEASURE_Z", "APPLY_X", "RESET"]
    assert body[2].guard is not None and body[2].guard.terms[0].event == body[1].produces[0]
    assert check(graph, unroll=False).ok


#: Gates controlled by a record bit of an earlier turn, or of before their block: each
#: block is written unrolled, the program the old unrolled reader made.
REACHING_BACK = {
    # turn k's CX reads turn k-1's measurement (turn 1: the one before the block)
    "previous turn": "X 0\nM 0\nREPEAT 4 {\n  CX rec[-1] 0\n  M 0\n  CX rec[-2] 1\n}\nM 1\n",
    # feedback: each turn copies the last turn's random bit, then draws a new one
    "feedback": "H 0\nM 0\nREPEAT 3 {\n  CX rec[-1] 1\n  MR 1\n  H 0\n  M 0\n}\n",
    # after a block, a gate reads into it
    "after": "H 0\nREPEAT 2 {\n  M 0\n}\nCZ rec[-1] 1\nH 1\nCY rec[-2] 2\nM 1 2\n",
    # the inner blocks reach back within the outer turn: the outer block stays folded
    "nested": "M 0\nREPEAT 2 {\n  H 0\n  REPEAT 2 {\n    M 0\n    CX rec[-1] 1\n  }\n"
    "  REPEAT 2 {\n    M 1\n    CX rec[-2] 0\n  }\n}\nM 0 1\n",
}


def test_a_block_reaching_an_earlier_turn_is_written_unrolled_and_verifies():
    for label, text in REACHING_BACK.items():
        graph = read_folded(text)
        assert check(graph, unroll=False).ok, label
        flat = unroll(graph, max_nodes=None)
        assert len(flat.resources.events) == stim.Circuit(text).num_measurements, label
        outer = [row for row in graph.nodes if row.op == REPEAT]
        assert len(outer) == (label == "nested"), label
    # turn k's guard is turn k-1's measurement: m0 m1 m2 m3 guard the turns' first CX
    rows = read_folded(REACHING_BACK["previous turn"]).nodes
    guards = [row.guard.terms[0].event for row in rows if row.guard and row.vqs == ("q0",)]
    assert guards == ["m0", "m1", "m2", "m3"]
    (outer,) = [row for row in read_folded(REACHING_BACK["nested"]).nodes if row.op == REPEAT]
    assert [row.op for row in outer.body].count("MEASURE_Z") == 4  # inner blocks unrolled


def test_cross_turn_feedback_on_the_stim_target_gives_stims_own_samples():
    for label, text in REACHING_BACK.items():
        sampled = stim.Circuit(text).compile_sampler(seed=SEED).sample(400)
        theirs: dict[str, int] = {}
        for row in sampled:
            key = "".join("1" if bit else "0" for bit in row)
            theirs[key] = theirs.get(key, 0) + 1
        ours = qmk.run(text, shots=400, seed=SEED)
        assert ours.target == "stim", label
        assert ours.counts == theirs, label


def test_a_huge_block_reaching_back_is_refused_before_it_is_unrolled():
    # 10^9 turns of two rows: refused from the first turn's rows, nothing more read (a
    # reader that unrolled first would not return here)
    bomb = "M 0\nREPEAT 1000000000 {\n  M 0\n  CX rec[-2] 1\n}\n"
    with pytest.raises(QuotaError) as caught:
        read_folded(bomb)
    assert caught.value.code == "QS1006"
    assert caught.value.details == {
        "limit": "max_graph_nodes",
        "value": DEFAULT_MAX_NODES,
        "needed": 2 + 2 * 10**9,  # ALLOC_LQ and M 0, then the turns' rows
    }
    # the cap is the caller's: the same block of 10 turns fits in 22 rows, not in 21
    small = bomb.replace("1000000000", "10")
    assert len(unroll(read_folded(small, max_rows=22), max_nodes=None).nodes) == 23
    with pytest.raises(QuotaError):
        read_folded(small, max_rows=21)
    with pytest.raises(QuotaError) as caught:
        StimTarget().read(bomb, limits=Limits(max_nodes=1000))
    assert caught.value.details["value"] == 1000


def test_a_gate_reading_before_the_record_is_refused_naming_it():
    for text in ("CX rec[-1] 0\n", "M 0\nREPEAT 3 {\n  M 0\n  CX rec[-3] 1\n}\n"):
        with pytest.raises(FrontendError) as caught:
            read_folded(text)
        assert caught.value.code == "QL104" and "before the record's start" in str(caught.value)
        assert "CX rec[" in str(caught.value), text


def test_what_has_no_qvm_form_yet_is_refused_naming_the_instruction():
    cases = {
        "M 0\nOBSERVABLE_INCLUDE(0) X0\n": "Pauli targets",
        "M 0\nDETECTOR rec[-2]\n": "before the record's start",
    }
    for text, why in cases.items():
        with pytest.raises(FrontendError) as caught:
            read_folded(text)
        assert caught.value.code == "QL104" and why in str(caught.value), text
        assert text.splitlines()[-1].split()[0] in str(caught.value)


def test_read_program_reads_a_stim_file_folded_when_asked(tmp_path):
    source = tmp_path / "loop.stim"
    source.write_text("REPEAT 1000000000 {\n  M 0\n}\n", encoding="utf-8")
    graph = read_program(source, folded=True)
    report = check(graph, unroll=False)
    assert report.ok and report.totals is not None
    assert report.totals.rows == 4 and report.totals.counts.measurements == 10**9


def test_noisy_record_bits_are_noisy_measure_rows_and_a_padding_bit_a_constant():
    graph = read_folded("M(0.1) !0\nMRX(0.2) 1\nHERALDED_ERASE(0.3) 2\nMPAD 1\nMPAD(0.4) 0\n")
    rows = [(row.op, dict(row.args), row.vqs) for row in graph.nodes[1:-1]]
    assert rows == [
        ("APPLY_X", {}, ("q0",)),
        ("NOISY_MEASURE", {"instruction": "M", "p": [0.1]}, ("q0",)),
        ("APPLY_X", {}, ("q0",)),
        ("NOISY_MEASURE", {"instruction": "MRX", "p": [0.2]}, ("q1",)),
        ("NOISY_MEASURE", {"instruction": "HERALDED_ERASE", "p": [0.3]}, ("q2",)),
        ("CALC", {"type": "bool", "expr": "True"}, ()),
        ("NOISY_MEASURE", {"instruction": "MPAD", "p": [0.4], "bit": 0}, ()),
    ]
    assert check(graph, unroll=False).ok


def test_a_gate_controlled_by_a_sweep_bit_is_no_row_as_the_samplers_take_it_zero():
    graph = read_folded("CX sweep[0] 1\nH 0\nM 1\n")
    assert [row.op for row in graph.nodes[1:-1]] == ["APPLY_H", "MEASURE_Z"]


def test_an_inverted_noisy_measure_and_reset_leaves_the_qubit_reset_as_stims_does():
    # MR(p) !q: the result inverted, the qubit reset after; the flip back comes before the
    # reset, so the next measurement reads 0 (it read 1 before). Every bit is determined
    # (p is far below one flip in 200 shots), so stim's one outcome is the only key.
    text = "MR(0.0001) !0\nM 0\nRX 1\nMRX(0.0001) !1\nMX 1\nRY 2\nMRY(0.0001) !2\nMY 2\n"
    (theirs,) = {tuple(row) for row in stim.Circuit(text).compile_sampler(seed=SEED).sample(200)}
    ours = qmk.run(text, shots=200, seed=SEED)
    assert ours.target == "stim"
    assert ours.counts == {"".join("1" if bit else "0" for bit in theirs): 200} == {"101010": 200}
