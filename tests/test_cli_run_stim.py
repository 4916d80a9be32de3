"""``qmk run FILE.stim``: a stim circuit runs on the stim target by default (stim's own
samplers), every instruction its generators write read, with ``--detectors`` and
``--decode``; what it cannot honour is one coded line."""

from __future__ import annotations

import json
from pathlib import Path

import stim

import qmk
from support.cli import qmk as qmk_cli
from support.stim_circuits import EVERY_INSTRUCTION, noisy_d5_surface_code

SEED = "20261126"
REPETITION = str(
    stim.Circuit.generated(
        "repetition_code:memory", distance=3, rounds=3, after_clifford_depolarization=0.02
    )
)


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_noisy_d5_surface_code_runs_on_stim_not_on_a_statevector_or_mps(tmp_path):
    # the failure: routed to aer-mps, LinAlgError after two minutes, exit 3
    source = _file(tmp_path, "d5.stim", str(noisy_d5_surface_code()))
    status, stdout, stderr = qmk_cli("run", source, "--shots", "10000", "--seed", SEED, "--json")
    assert (status, stderr) == (0, "")
    data = json.loads(stdout)
    assert (data["target"], data["engine"]) == ("stim", "stabilizer")
    assert data["telemetry"]["mode"] == "stim-sampler" and sum(data["counts"].values()) == 10000
    assert data["stim"]["detectors"] == 5 * 24  # rounds x stabilizers


def test_every_instruction_stims_generators_and_papers_write_runs(tmp_path):
    # DEPOLARIZE2, PAULI_CHANNEL_2, E/ELSE, heralded channels, MPAD and sweep bits were
    # each QL104 before
    source = _file(tmp_path, "every.stim", EVERY_INSTRUCTION)
    status, stdout, stderr = qmk_cli("run", source, "--shots", "500", "--seed", SEED, "--json")
    assert (status, stderr) == (0, "")
    data = json.loads(stdout)
    assert data["target"] == "stim" and len(data["events"]) == 20


def test_detectors_and_decoding_are_printed_and_given_as_json(tmp_path):
    source = _file(tmp_path, "d5.stim", str(noisy_d5_surface_code()))
    status, stdout, stderr = qmk_cli(
        "run", source, "--shots", "4000", "--seed", SEED, "--decode", "--json"
    )
    assert (status, stderr) == (0, "")
    data = json.loads(stdout)
    here = qmk.run(source, shots=4000, seed=int(SEED), target_options={"decode": True})
    assert data["decode"] == {**here.details["decode"], "seconds": data["decode"]["seconds"]}
    assert data["events"][:2] == ["D0", "D1"] and data["events"][-1] == "L0"
    assert data["detection"]["observable_flips"] == [int(here.observables.sum())]
    status, text, _ = qmk_cli("run", source, "--shots", "4000", "--seed", SEED, "--detectors")
    assert status == 0 and "detectors: 120, fired in" in text and "observables flipped: L0" in text
    assert "stim-detector-sampler" in text and "decoded" not in text
    status, text, _ = qmk_cli("run", source, "--shots", "4000", "--seed", SEED, "--decode")
    assert status == 0 and "logical error rate L0" in text


def test_decoder_chooses_bposd_and_an_unknown_one_is_one_coded_line(tmp_path):
    source = _file(tmp_path, "rep.stim", REPETITION)
    status, text, stderr = qmk_cli(
        "run", source, "--shots", "2000", "--seed", SEED, "--decoder", "bposd"
    )
    assert (status, stderr) == (0, "")
    assert "decoded by bposd on the circuit's undecomposed detector error model" in text
    status, stdout, stderr = qmk_cli("run", source, "--decode", "--decoder", "uf")
    assert (status, stdout) == (2, "") and stderr.count("\n") == 1
    assert stderr.startswith("QC112 unknown-decoder: no decoder 'uf'") and "bposd" in stderr


def test_what_a_stim_run_cannot_honour_is_one_coded_line(tmp_path):
    circuit = _file(tmp_path, "bell.stim", "H 0\nCX 0 1\nM 0 1\n")
    qasm = _file(tmp_path, "bell.qasm", 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\n')
    for argv, says in (
        (("run", circuit, "--engine", "statevector"), "engine is not an option of the stim"),
        (("run", circuit, "--noise-model", "depolarizing(p=0.001)"), "noise_model"),
        (("run", circuit, "--decode"), "no OBSERVABLE_INCLUDE"),
        (("run", circuit, "--modules", "2"), "--modules"),
        (("run", qasm, "--detectors"), "detectors is not an option of the logical"),
    ):
        status, stdout, stderr = qmk_cli(*argv)
        assert status == 2 and stdout == "", argv
        assert stderr.startswith("QM102 option-unsupported:") and says in stderr, stderr
        assert stderr.count("\n") == 1


def test_a_noisy_stim_runs_telemetry_says_stim_drew_the_circuits_noise_not_injected_errors(
    tmp_path,
):
    # it said "0 logical errors injected over all shots (the circuit's own)" beside the
    # observables' flip rate of the very errors stim drew
    flip = "X_ERROR(0.2) 0\nM 0\nDETECTOR rec[-1]\nOBSERVABLE_INCLUDE(0) rec[-1]\n"
    source = _file(tmp_path, "flip.stim", flip)
    status, stdout, stderr = qmk_cli(
        "run", source, "--shots", "1000", "--seed", SEED, "--detectors"
    )
    assert (status, stderr) == (0, "")
    assert "the circuit's own noise drawn by stim at 1 location" in stdout, stdout
    assert "injected" not in stdout, stdout
    assert "observables flipped: L0 " in stdout, stdout


def test_the_stim_targets_telemetry_names_the_sampler_that_drew_the_shots(tmp_path):
    # a GHZ state of 64 qubits: at 100,000 shots QMK's own sampler of the outcomes' affine
    # support draws them (it said stim-sampler), at 100 stim's
    n = 64
    ghz = "H 0\n" + "".join(f"CX {i} {i + 1}\n" for i in range(n - 1))
    source = _file(tmp_path, "ghz.stim", ghz + "M " + " ".join(map(str, range(n))) + "\n")
    for shots, mode in ((100, "stim-sampler"), (100_000, "affine-support-sampler")):
        result = qmk.run(source, shots=shots, seed=int(SEED))
        assert result.telemetry.mode == mode, shots
        assert set(result.counts) == {"0" * n, "1" * n}, shots
