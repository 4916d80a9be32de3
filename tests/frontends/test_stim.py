"""stim circuits lowered to QVM (``from_stim``: what the logical machine, lattice surgery
and the device run of a stim circuit): every instruction of stim's table lowered, each
gate to its own tableau, and measurement samples distributed as stim's own sampler's
(``stim.Circuit.compile_sampler``): a chi-square test of homogeneity of QMK's counts
(noise off: the circuit's own noise channels only) against stim's at the stated seeds,
each at p > 1e-4/40, and the total variation distance under a bound. ``qmk run`` of a
stim circuit runs on the stim target (tests/execution/test_stim_target.py).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import scipy.stats
import stim

import qmk
from qmk.errors import QuotaError
from qmk.execution.runs import run
from qmk.frontends import decompose, read_program
from qmk.frontends.errors import FrontendError
from qmk.frontends.stim import from_stim
from qmk.frontends.stim_fold import clifford_steps
from qmk.frontends.text import sniff
from qmk.qvm.errors import UnrollError
from qmk.qvm.limits import Limits
from support.cli import qmk as qmk_cli
from support.frontends import assert_same_distribution, tvd

SEED = 20261125
SHOTS = 4000


def _stim_counts(text: str, shots: int, seed: int) -> Counter[str]:
    samples = stim.Circuit(text).compile_sampler(seed=seed).sample(shots)
    return Counter("".join("1" if bit else "0" for bit in row) for row in samples)


def _qmk_counts(text: str, shots: int, seed: int) -> dict[str, int]:
    return run(from_stim(text), shots=shots, seed=seed, noise=False).counts


CIRCUITS = {
    "bell": "H 0\nCX 0 1\nM 0 1\n",
    "inverted-and-bases": "H 0\nCX 0 1\nM !0 1\nMX 0\nMY !1\nMR 0\nRX 1\nM 1\nRY 0\nMY 0\n",
    "pauli-products": "H 0\nCX 0 1\nS 1\nMPP X0*Y1 Z0*Z1 !Y0*X1\nMZZ 0 1\nMXX !0 1\nMYY 0 1\n",
    "feedback": "H 0\nM 0\nCX rec[-1] 1\nH 2\nM 2\nCZ 3 rec[-1]\nH 3\nCY rec[-2] 4\nM 1 3 4\n",
    "every-gate-family": (
        "H 0 1 2\nSQRT_XX 0 1\nISWAP 1 2\nC_XYZ 2\nH_YZ 0\nCXSWAP 0 2\nSQRT_Y_DAG 1\n"
        "XCZ 2 0\nYCY 1 2\nSWAPCX 0 1\nSQRT_ZZ_DAG 1 2\nM 0 1 2\nMX 0 1 2\n"
    ),
    "repeat": "REPEAT 3 {\n  H 0\n  CX 0 1\n  M 0\n  MR 1\n  DETECTOR rec[-1] rec[-2]\n}\n",
    # gates reading a record bit of an earlier turn, or of before their block (the
    # blocks written unrolled), noise and all
    "feedback-across-turns": (
        "H 0\nM 0\nREPEAT 2 {\n  M 0\n}\nCX rec[-3] 1\nX_ERROR(0.2) 1\nM(0.1) 1\n"
        "REPEAT 3 {\n  DEPOLARIZE1(0.1) 2\n  CY rec[-1] 2\n  M 2\n}\n"
    ),
    "one-qubit-noise": (
        "X_ERROR(0.2) 0\nM 0\nY_ERROR(0.3) 1\nM 1\nZ_ERROR(0.4) 2\nH 2\nM 2\n"
        "DEPOLARIZE1(0.3) 3\nM 3\nH 4\nPAULI_CHANNEL_1(0.1, 0.2, 0.3) 4\nMX 4\n"
    ),
    "correlated-and-measurement-noise": (
        "H 0\nCX 0 1\nE(0.25) X0 Z1 Y2\nM(0.1) 0\nMX(0.2) 1\nMPP(0.15) Z0*Z1\nI_ERROR(0.5) 2\nM 2\n"
    ),
    # what after_clifford_depolarization writes, and the general two-qubit channel, read
    # in bases where each of its fifteen Paulis shows
    "two-qubit-noise": (
        "H 0\nCX 0 1\nDEPOLARIZE2(0.3) 0 1\nCX 0 1\nH 0\nM 0 1\nH 3\n"
        "PAULI_CHANNEL_2(0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.01, "
        "0.02, 0.03, 0.04, 0.05) 2 3\nH 3\nM 2\nMX 3\n"
    ),
    "heralded": (
        "HERALDED_ERASE(0.3) 0\nHERALDED_PAULI_CHANNEL_1(0.1, 0.2, 0.05, 0.15) 1\nH 2\n"
        "HERALDED_PAULI_CHANNEL_1(0.1, 0.2, 0.05, 0.15) 2\nH 2\nM 0 1 2\n"
    ),
    "else-correlated-chain": (
        "E(0.2) X0 X1\nELSE_CORRELATED_ERROR(0.25) X1\nELSE_CORRELATED_ERROR(0.5) X2 Y0\n"
        "M 0 1 2\nE(0.3) X0\nELSE_CORRELATED_ERROR(0.4) X1\nM 0 1\n"
    ),
    # sweep bits are 0 with no sweep data, as in stim's samplers
    "pads-and-sweep-bits": "MPAD 1 0\nMPAD(0.2) 1\nX 0\nCX sweep[0] 0\nCZ 1 sweep[3]\nM 0\n",
    # S and S_DAG on Pauli products, each read where it decides the outcome
    "pauli-product-phases": (
        "RX 0\nSPP Z0\nMY 0\nRX 1\nSPP_DAG Z1\nMY 1\nRX 2\nSPP !Z2\nMY 2\nRY 3\n"
        "R 4\nSPP X3*Z4\nMZ 3\nH 5\nCX 5 6\nSPP Z5*Z6\nMPP Y5*X6\nSPP_DAG !X7\nH 7\n"
        "SPP Y7\nM 7\n"
    ),
}


@pytest.mark.parametrize("label", sorted(CIRCUITS))
def test_samples_are_distributed_as_stims_own_sampler(label):
    text = CIRCUITS[label]
    ours = _qmk_counts(text, SHOTS, SEED)
    theirs = _stim_counts(text, SHOTS, SEED)
    assert_same_distribution(ours, theirs, label)
    # 4000 shots of a distribution on at most 2^9 outcomes: far under this bound
    assert tvd(ours, theirs) < 0.1


def test_noiseless_clifford_circuits_run_on_the_stabilizer_engine_at_width():
    # a 300-qubit GHZ state measured in Z: two outcomes, each half the time
    text = (
        "H 0\n"
        + "".join(f"CX {k} {k + 1}\n" for k in range(299))
        + "M "
        + " ".join(map(str, range(300)))
    )
    result = run(from_stim(text), shots=400, seed=SEED, noise=False)
    assert result.engine == "stabilizer"
    assert set(result.counts) == {"0" * 300, "1" * 300}


def _unitary_gate_names() -> list[str]:
    return sorted(
        name
        for name, data in stim.gate_data().items()
        if data.name == name and data.is_unitary and not data.takes_pauli_targets
    )


@pytest.mark.parametrize("name", _unitary_gate_names())
def test_every_unitary_gate_of_stims_table_is_its_own_tableau(name):
    width = 2 if stim.gate_data(name).is_two_qubit_gate else 1
    ops = tuple((gate, qubits, ()) for gate, qubits in clifford_steps(name))
    ours = decompose.matrix_of(decompose.Lowered(num_qubits=width, ops=ops))
    tableau = stim.Tableau.from_named_gate(name).to_unitary_matrix(endian="little")
    theirs = np.asarray(tableau, dtype=complex)
    k = int(np.argmax(abs(theirs.ravel())))
    phase = ours.ravel()[k] / theirs.ravel()[k]
    assert abs(abs(phase) - 1) < 1e-6  # equal up to a global phase (stim keeps none)
    np.testing.assert_allclose(ours, phase * theirs, atol=1e-6)


#: Instructions whose arguments or targets the generic example does not fit.
SPECIAL = {
    "TICK": "TICK",
    "SHIFT_COORDS": "SHIFT_COORDS(1, 2)",
    "OBSERVABLE_INCLUDE": "OBSERVABLE_INCLUDE(0) rec[-1]",
    "PAULI_CHANNEL_2": f"PAULI_CHANNEL_2({', '.join(['0.01'] * 15)}) 0 1",
    "REPEAT": "REPEAT 2 {\n  H 0\n  M 0\n}",
    "ELSE_CORRELATED_ERROR": "E(0.1) X0\nELSE_CORRELATED_ERROR(0.1) Z1",
}


def _example(name: str) -> str:
    """One instruction of gate ``name`` on qubits 0 (and 1), after a measurement."""
    if name in SPECIAL:
        return f"M 0\n{SPECIAL[name]}\n"
    data = stim.gate_data(name)
    low, _high = data.num_parens_arguments_range.start, data.num_parens_arguments_range.stop
    args = f"({', '.join(['0.1'] * low)})" if low else ""
    if data.takes_pauli_targets:
        targets = "X0*Z1" if name not in ("E", "ELSE_CORRELATED_ERROR") else "X0 Z1"
    elif data.takes_measurement_record_targets and not data.is_unitary:
        targets = "rec[-1]"
    elif name == "MPAD":
        targets = "0"
    else:
        targets = "0 1" if data.is_two_qubit_gate else "0"
    return f"M 0\n{name}{args} {targets}\n"


@pytest.mark.parametrize("name", sorted(n for n, d in stim.gate_data().items() if d.name == n))
def test_every_instruction_of_stims_table_is_lowered(name):
    graph = from_stim(_example(name))
    assert graph.metadata["language"] == "stim"


def test_detectors_and_observables_are_skipped_with_a_coded_warning_naming_the_stim_target():
    graph = from_stim("H 0\nM 0\nDETECTOR rec[-1]\nOBSERVABLE_INCLUDE(0) rec[-1]\nTICK\n")
    (notice,) = graph.metadata["warnings"]
    assert notice["code"] == "QL114" and "1 DETECTOR, 1 OBSERVABLE_INCLUDE" in notice["message"]
    assert "the stim target" in notice["message"]


def test_what_stim_does_not_parse_and_a_product_on_one_qubit_twice_are_refused_with_codes():
    with pytest.raises(FrontendError) as caught:
        from_stim("stim is not this")
    assert caught.value.code == "QL101"
    with pytest.raises(FrontendError) as caught:
        from_stim("MPP X0*Z0\n")
    assert caught.value.code == "QL104" and "MPP X0*Z0" in str(caught.value)


def test_a_repeat_block_past_the_node_cap_is_refused_before_it_unrolls_all():
    with pytest.raises(FrontendError) as caught:
        from_stim("REPEAT 100000000 {\n  H 0\n}\n", max_nodes=1000)
    assert caught.value.code == "QL110"
    # a block whose gates read an earlier turn, refused from its first turn's rows
    with pytest.raises(QuotaError) as caught:
        from_stim("M 0\nREPEAT 100000000 {\n  M 0\n  CX rec[-2] 1\n}\n", max_nodes=1000)
    assert caught.value.code == "QS1006" and caught.value.details["needed"] == 2 + 2 * 10**8


def test_a_repeat_bomb_read_with_no_node_cap_is_refused_at_the_unroll_limit_not_built(tmp_path):
    # the 26-byte REPEAT of 10^9 turns that `qmk asm`/`qmk qasm FILE.stim` used to unroll
    # whole (no max_nodes: the reader took no cap); the default max_unrolled_nodes refuses it
    # the caller's limits set the cap: 12 nodes unrolled pass, 11 do not
    text = "REPEAT 10 {\n  M 0\n}\n"
    assert len(from_stim(text, limits=Limits(max_unrolled_nodes=12)).nodes) == 12
    with pytest.raises(UnrollError):
        from_stim(text, limits=Limits(max_unrolled_nodes=11))
    source = tmp_path / "bomb.stim"
    source.write_text("REPEAT 1000000000 {\n  M 0\n}\n", encoding="utf-8")
    with pytest.raises(UnrollError) as caught:
        read_program(source)
    assert caught.value.code == "QV505" and caught.value.details["size"] == 10**9 + 2
    status, stdout, stderr = qmk_cli("asm", str(source))
    assert status == 1 and stdout == "" and stderr.startswith("QV505 unrolled-too-large:")


def test_gates_reading_earlier_turns_give_the_exact_record_on_the_logical_machine():
    # turn k's CX reads turn k-1's measurement: q0 (1) is flipped to 0 in turn 1 and
    # stays; q1 is flipped once, by m0
    determined = "X 0\nM 0\nREPEAT 4 {\n  CX rec[-1] 0\n  M 0\n  CX rec[-2] 1\n}\nM 1\n"
    assert qmk.run(determined, shots=50, seed=SEED, target="logical").counts == {"100001": 50}
    # each turn copies the last turn's random bit onto q1, then draws a new one: the
    # record is a a b b c c d, its 16 values equally likely
    copied = "H 0\nM 0\nREPEAT 3 {\n  CX rec[-1] 1\n  MR 1\n  H 0\n  M 0\n}\n"
    counts = qmk.run(copied, shots=1600, seed=SEED, target="logical").counts
    assert all(k[0:2] in ("00", "11") and k[2:4] in ("00", "11") for k in counts)
    assert all(k[4:6] in ("00", "11") for k in counts) and len(counts) == 16
    assert scipy.stats.chisquare(list(counts.values())).pvalue > 1e-4


def test_a_stim_file_is_read_by_its_extension_and_lowered_on_another_target(tmp_path):
    source = tmp_path / "bell.stim"
    source.write_text(CIRCUITS["bell"] + "DETECTOR rec[-1] rec[-2]\n", encoding="utf-8")
    assert read_program(source).metadata["language"] == "stim"
    status, stdout, stderr = qmk_cli(
        "run", str(source), "--lattice-surgery", "--seed", "7", "--shots", "200", "--json"
    )
    assert (status, stderr) == (0, "")
    data = json.loads(stdout)
    assert set(data["counts"]) <= {"00", "11"} and data["target"] == "lattice-surgery"
    assert [w["code"] for w in data["warnings"]] == ["QL114"]


def test_qmk_run_refuses_a_stim_file_stim_cannot_parse_in_one_coded_line(tmp_path):
    source = tmp_path / "broken.stim"
    source.write_text("H 0\nDEPOLARIZE2(0.1) 0\nM 0\n", encoding="utf-8")  # an odd pair
    status, stdout, stderr = qmk_cli("run", str(source))
    assert status == 2 and stdout == ""
    assert stderr.startswith("QL101 syntax:") and stderr.count("\n") == 1


def test_qmk_run_in_python_takes_stim_text_by_sight_and_by_format():
    assert sniff("# a Bell pair\nH 0\nCX 0 1\nM 0 1\n") == "stim"
    assert sniff("MPP X0*Z1 Y2\n") == "stim"
    by_sight = qmk.run("H 0\nCX 0 1\nM 0 1\n", shots=100, seed=SEED, noise=False)
    by_format = qmk.run("H 0\nCX 0 1\nM 0 1\n", format="stim", shots=100, seed=SEED, noise=False)
    assert by_sight.counts == by_format.counts and set(by_sight.counts) <= {"00", "11"}
    assert by_sight.target == "stim"
    lowered = qmk.run("H 0\nCX 0 1\nM 0 1\n", target="logical", shots=100, seed=SEED, noise=False)
    assert lowered.target == "logical" and set(lowered.counts) <= {"00", "11"}
