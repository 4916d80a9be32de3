"""The stim target: a stim circuit sampled by stim's own compiled samplers, its detectors and
observables, decoded by matching when asked.

Three kinds of check, at stated seeds:

- it is stim's sampler: the shots of a run at seed ``s`` are those of
  ``compile_sampler(seed=s)`` (``compile_detector_sampler`` with ``detectors``), bit for
  bit, for stim's generated QEC circuits and a circuit of every instruction;
- its statistics are stim's: detector and observable flip rates of QMK's run against
  stim's own sample at another seed (support.stim_circuits: per column a two-proportion
  z test, Bonferroni at 1e-4, and the detection weights' histogram by chi-square);
- decoding: the logical errors per observable are pymatching's on stim's own samples of
  the same seed, and a hand-built code's rate is its exact one (binomial, p > 1e-4).
"""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pymatching
import pytest
import stim
from scipy import stats

import qmk
from qmk.engines.base import EngineError
from qmk.execution import target as targets
from qmk.execution.request import RunRequest
from qmk.execution.stim_target import StimTarget, Work, least_result_bytes, named_qubits
from qmk.execution.target import TargetError
from support.paths import ROOT
from support.stim_circuits import (
    EVERY_INSTRUCTION,
    TASKS,
    assert_same_rates,
    generated,
    noisy_d5_surface_code,
    unwritable,
)

SEED = 20261126
SHOTS = 20_000

CIRCUITS = {
    **{f"{task} d={d}": (task, d) for task in TASKS for d in (3, 5)},
    "every-instruction": None,
}


def _circuit(label: str) -> stim.Circuit:
    spec = CIRCUITS[label]
    return stim.Circuit(EVERY_INSTRUCTION) if spec is None else generated(*spec, p=0.004)


def _unpacked(rows: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(rows, axis=1, count=width, bitorder="little")


@pytest.mark.parametrize("label", sorted(CIRCUITS))
def test_a_run_is_stims_own_sampler_bit_for_bit_at_its_seed(label):
    circuit = _circuit(label)
    record = qmk.run(circuit, shots=2000, seed=SEED)
    assert record.target == "stim" and record.engine == "stabilizer"
    theirs = circuit.compile_sampler(seed=SEED).sample(2000).astype(np.uint8)
    np.testing.assert_array_equal(record.bits, theirs)
    assert record.events == tuple(f"m{k}" for k in range(circuit.num_measurements))
    detected = qmk.run(circuit, shots=2000, seed=SEED, target_options={"detectors": True})
    dets, obs = circuit.compile_detector_sampler(seed=SEED).sample(2000, separate_observables=True)
    np.testing.assert_array_equal(detected.detectors, dets.astype(np.uint8))
    np.testing.assert_array_equal(detected.observables, obs.astype(np.uint8))
    assert detected.events[-1] == f"L{circuit.num_observables - 1}"
    assert detected.telemetry.mode == "stim-detector-sampler"


@pytest.mark.parametrize("label", sorted(CIRCUITS))
def test_detector_and_observable_flip_rates_are_stims_at_other_seeds(label):
    circuit = _circuit(label)
    ours = qmk.run(circuit, shots=SHOTS, seed=SEED, target_options={"detectors": True})
    dets, obs = circuit.compile_detector_sampler(seed=SEED + 1).sample(
        SHOTS, separate_observables=True
    )
    assert_same_rates(ours.detectors, dets.astype(np.uint8), f"{label} detectors")
    assert_same_rates(ours.observables, obs.astype(np.uint8), f"{label} observables")


def test_detectors_of_a_record_run_are_stims_conversion_of_those_very_shots():
    circuit = generated("surface_code:rotated_memory_z", 3, p=0.01)
    result = qmk.run(circuit, shots=3000, seed=SEED)
    dets, obs = circuit.compile_m2d_converter().convert(
        measurements=result.bits.astype(bool), separate_observables=True
    )
    np.testing.assert_array_equal(result.detectors, dets.astype(np.uint8))
    np.testing.assert_array_equal(result.observables, obs.astype(np.uint8))
    # and their rates are those of a detector run's
    detected = qmk.run(circuit, shots=SHOTS, seed=SEED + 2, target_options={"detectors": True})
    assert_same_rates(result.detectors, detected.detectors, "record vs detector run")


def test_noise_off_runs_the_circuit_without_its_channels():
    circuit = noisy_d5_surface_code()
    result = qmk.run(circuit, shots=500, seed=SEED, noise=False, target_options={"detectors": True})
    assert not result.detectors.any() and not result.observables.any()
    assert result.telemetry.noise is False and result.telemetry.noise_sampling == "off"
    noisy = qmk.run(circuit, shots=500, seed=SEED, target_options={"detectors": True})
    assert noisy.detectors.any() and noisy.telemetry.noise_sampling == "stim"
    assert noisy.telemetry.noise_locations == noisy.details["stim"]["noise_locations"] > 0


@pytest.mark.parametrize("label", ["surface_code:rotated_memory_z d=5", "every-instruction"])
def test_decoding_gives_pymatchings_logical_errors_on_stims_own_samples(label):
    circuit = _circuit(label)
    result = qmk.run(circuit, shots=SHOTS, seed=SEED, target_options={"decode": True})
    decoded = result.details["decode"]
    dem = circuit.detector_error_model(decompose_errors=True, approximate_disjoint_errors=True)
    matching = pymatching.Matching.from_detector_error_model(dem)
    dets, obs = circuit.compile_detector_sampler(seed=SEED).sample(SHOTS, separate_observables=True)
    wrong = matching.decode_batch(dets) != obs
    assert decoded["logical_errors"] == wrong.sum(axis=0).tolist()
    assert decoded["any_observable_errors"] == int(wrong.any(axis=1).sum())
    assert decoded["logical_error_rate"] == [e / SHOTS for e in decoded["logical_errors"]]
    for errors, (low, high) in zip(decoded["logical_errors"], decoded["interval"], strict=True):
        assert low <= errors / SHOTS <= high
    assert "logical error rate L0" in result.summary


def test_a_two_observable_code_decodes_each_observable_at_its_exact_rate():
    # two repetition codes of three bits, one round: matching fails when two or three
    # of a code's bits flip, 3 p^2 (1 - p) + p^3
    p = 0.05
    circuit = stim.Circuit(
        f"X_ERROR({p}) 0 1 2 3 4 5\nM 0 1 2 3 4 5\n"
        "DETECTOR rec[-6] rec[-5]\nDETECTOR rec[-5] rec[-4]\n"
        "DETECTOR rec[-3] rec[-2]\nDETECTOR rec[-2] rec[-1]\n"
        "OBSERVABLE_INCLUDE(0) rec[-6]\nOBSERVABLE_INCLUDE(1) rec[-3]\n"
    )
    exact = 3 * p**2 * (1 - p) + p**3
    decoded = qmk.run(circuit, shots=SHOTS, seed=SEED, target_options={"decode": True}).details[
        "decode"
    ]
    assert len(decoded["logical_errors"]) == 2
    for errors in decoded["logical_errors"]:
        assert stats.binomtest(errors, SHOTS, exact).pvalue > 1e-4


def test_the_footprint_and_figures_are_the_circuits():
    circuit = noisy_d5_surface_code()
    target = StimTarget()
    request = RunRequest(program_digest="ab" * 32, shots=10, seed=1, target="stim")
    executable = target.compile(target.read(circuit), request)
    fp = executable.footprint
    assert (fp.target, fp.logical_qubits, fp.physical_qubits) == ("stim", circuit.num_qubits, 0)
    assert fp.measurements == circuit.num_measurements and fp.tiles == 0
    figures = executable.run(10, 1).details["stim"]
    assert figures["detectors"] == circuit.num_detectors and figures["ticks"] == circuit.num_ticks


def _request(**fields: object) -> RunRequest:
    base = RunRequest(program_digest="ab" * 32, shots=10, seed=1, target="stim")
    return msgspec.structs.replace(base, **fields)


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"engine": "statevector"}, "engine"),
        ({"profile": "logical:surface_code(d=3)"}, "profile"),
        ({"noise_model": "depolarizing(p=0.001)"}, "noise_model"),
        ({"precision": "single"}, "precision"),
        ({"target_options": {"detector": True}}, "target_options"),
    ],
)
def test_the_logical_machines_settings_are_refused_with_qm102(fields, option):
    target = StimTarget()
    program = target.read("H 0\nM 0\n")
    with pytest.raises(TargetError) as caught:
        target.compile(program, _request(**fields))
    assert caught.value.code == "QM102" and f"{option} is not an option" in caught.value.message


def test_decoding_a_circuit_without_observables_is_refused_at_compile_naming_decode():
    target = StimTarget()
    with pytest.raises(TargetError) as caught:
        target.compile(
            target.read("X_ERROR(0.1) 0\nM 0\nDETECTOR rec[-1]\n"),
            _request(target_options={"decode": True}),
        )
    assert caught.value.code == "QM102" and "decode" in caught.value.message
    assert "no OBSERVABLE_INCLUDE" in caught.value.message


def test_decoding_a_circuit_it_cannot_model_is_refused_by_its_run_naming_decode():
    # the decoder is built by the run (a worker's), not by compile (a kernel's footprint)
    target = StimTarget()
    text = "H 0\nM 0\nDETECTOR rec[-1]\nOBSERVABLE_INCLUDE(0) rec[-1]\n"
    executable = target.compile(target.read(text), _request(target_options={"decode": True}))
    with pytest.raises(TargetError) as caught:
        executable.run(10, 1)
    assert caught.value.code == "QM102" and "decode" in caught.value.message
    assert "cannot model" in caught.value.message


def test_states_and_resumes_are_refused():
    target = StimTarget()
    with pytest.raises(TargetError) as caught:
        qmk.run("H 0\nM 0\n", final_state=True, noise=False)
    assert caught.value.code == "QM102" and "final_state" in caught.value.message
    executable = target.compile(target.read("H 0\nM 0\n"), _request())
    with pytest.raises(TargetError):
        executable.run(10, 1, resume=object())


def test_a_clifford_qvm_program_runs_on_stim_with_its_noise_off():
    bell = str(ROOT / "examples" / "bell.qasm")
    result = qmk.run(bell, target="stim", shots=2000, seed=SEED, noise=False)
    assert result.target == "stim" and set(result.counts) == {"00", "11"}
    assert 900 < result.counts["00"] < 1100 and result.detectors is None
    with pytest.raises(TargetError) as caught:  # the logical machine's noise is not stim's
        qmk.run(bell, target="stim", shots=10, seed=SEED, noise=True)
    assert caught.value.code == "QM102" and "noise" in caught.value.message
    with pytest.raises(EngineError) as refused:
        qmk.run(
            'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\nt q[0];\n'
            "measure q -> c;",
            target="stim",
            noise=False,
        )
    assert refused.value.code == "QE103"


def test_a_qvm_program_on_stim_runs_with_noise_off_by_default():
    # with default arguments it was refused: noise on is the logical machine's default
    bell = str(ROOT / "examples" / "bell.qasm")
    result = qmk.run(bell, target="stim", shots=2000, seed=SEED)
    assert result.target == "stim" and not result.telemetry.noise
    same = qmk.run(bell, target="stim", shots=2000, seed=SEED, noise=False)
    assert dict(result.counts) == dict(same.counts) and set(result.counts) == {"00", "11"}
    assert qmk.run(bell, shots=10, seed=SEED).telemetry.noise  # the logical machine's: on
    circuit = "X_ERROR(1) 0\nM 0\n"  # a stim circuit's own noise: on
    assert dict(qmk.run(circuit, shots=10, seed=SEED).counts) == {"1": 10}


def test_a_kernel_jobs_program_form_reads_back():
    target = targets.get("stim")
    program = target.read(noisy_d5_surface_code())
    again = target.read(program.to_json())
    assert again.circuit == program.circuit and again.required_caps == ("CAP_ALLOC",)


def test_a_run_whose_record_outgrows_the_address_space_raises_memory_error_not_a_crash():
    # stim does not check its allocations: under RLIMIT_AS the bomb's one shot would end
    # its process with SIGSEGV; the target refuses it first with a MemoryError (a
    # kernel's worker reports that as QK201 memory-limit)
    import subprocess
    import sys

    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from qmk.execution.request import RunRequest\n"
        "from qmk.execution.stim_target import StimTarget\n"
        "t = StimTarget()\n"
        "p = t.read('REPEAT 1000000000 {\\n M 0\\n}\\n')\n"
        "r = RunRequest(program_digest='ab' * 32, shots=1, seed=1, target='stim')\n"
        "try:\n"
        "    t.compile(p, r).run(1, 1)\n"
        "except MemoryError as exc:\n"
        "    print('MemoryError', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MemoryError the run's measurement record"), done.stdout


def _nested(inner: int) -> stim.Circuit:
    return stim.Circuit(
        "PAULI_CHANNEL_1(0.1, 0.2, 0.3) 0 1\nTICK\nREPEAT 3 {\n MPP X0*X1 Z2\n"
        f" REPEAT {inner} {{\n  CX 0 1 2 3\n  M(0.01) 0\n  DETECTOR rec[-1]\n }}\n TICK\n}}\n"
    )


@pytest.mark.parametrize(
    "circuit",
    [
        stim.Circuit.generated(
            "surface_code:rotated_memory_z",
            distance=5,
            rounds=7,
            after_clifford_depolarization=0.01,
            before_measure_flip_probability=0.01,
        ),
        stim.Circuit.generated("repetition_code:memory", distance=3, rounds=4),
        _nested(1000),
    ],
    ids=["surface-d5", "repetition-d3", "nested"],
)
def test_the_footprint_is_the_verified_programs_totals_counted_folded(circuit):
    from qmk.frontends.stim_fold import read_folded
    from qmk.qvm.fold import unroll

    request = RunRequest(program_digest="ab" * 32, shots=1, seed=1, target="stim")
    footprint = StimTarget().compile(StimTarget().read(circuit), request).footprint
    unrolled = unroll(read_folded(circuit), max_nodes=None)  # every node built: counted
    assert footprint.operations == len(unrolled.nodes)
    assert footprint.logical_qubits == circuit.num_qubits
    assert footprint.measurements == circuit.num_measurements


def test_a_nested_repeat_of_three_million_turns_is_counted_without_unrolling():
    request = RunRequest(program_digest="ab" * 32, shots=1, seed=1, target="stim")
    small, big = (
        StimTarget().compile(StimTarget().read(_nested(n)), request).footprint
        for n in (1000, 10**6)
    )
    # each inner turn is 2 CX, a noisy M and a detector: 4 rows
    assert big.operations - small.operations == 3 * (10**6 - 1000) * 4
    assert big.measurements == _nested(10**6).num_measurements


def test_a_program_is_read_with_its_totals_and_written_as_a_circuit_when_compiled():
    # read: verified folded, its totals counted; it is written as a stim circuit at its
    # first compile, where a row stim has no instruction for (a T) is refused
    target = StimTarget()
    program = target.read(unwritable(2, turns=1000))
    assert program.work == Work(operations=1003, qubits=2, measurements=1)
    with pytest.raises(EngineError) as caught:
        target.compile(program, _request())
    assert caught.value.code == "QE103" and "'t' (APPLY_T)" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "H 0\nCX 0 1\nM 0 1\n",
        "H 29999\nM 0 29999\n",
        "R 0 1 2\nREPEAT 5 {\n  CX 0 1\n  MR 1\n  DETECTOR rec[-1]\n}\nMPP X0*Z2\n",
        str(stim.Circuit.generated("surface_code:rotated_memory_x", distance=3, rounds=4)),
        "M 0\n",
    ],
)
def test_the_qubits_stim_parses_are_the_verified_programs_peak(text):
    # what a kernel holds a stim circuit's qubits to before reading it into rows
    assert named_qubits({"stim": text}) == StimTarget().read({"stim": text}).work.qubits
    assert named_qubits({"program": {"nodes": []}}) is None


@pytest.mark.parametrize("bits", [1, 9, 10, 11, 100, 1234])
def test_a_record_runs_least_result_is_its_events_and_one_outcome(bits):
    # all zeros: one outcome, so the result's events and counts are the bound and the
    # counts' one number; the rest of the result (telemetry, ...) comes on top
    text = f"M {' '.join(str(k % 7) for k in range(bits))}\n"
    program = StimTarget().read(text)
    least = least_result_bytes(program, {})
    data = qmk.run(text, shots=50, seed=SEED).to_json()
    assert list(data["counts"]) == ["0" * bits]
    events = json.dumps(data["events"], separators=(",", ":"))
    assert least == len(events) + bits
    assert len(json.dumps(data, separators=(",", ":"))) > least
    # a detector run's events are its detectors': not bounded here
    assert least_result_bytes(program, {"detectors": True}) == 0
