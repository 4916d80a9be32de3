"""``qmk.run(..., target=...)``: every target through the one run-request builder, each
checked against the exact distribution of its program at a stated seed (or against the
device's own emulator for a device job), its options its own, and a target QMK does not
know refused with ``QM101`` before the program is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qmk
from qmk._front import read
from qmk.devices.neutral_atom.emulator import run_job
from qmk.execution.runs import run as execute
from support.cli import qmk as qmk_cli
from support.exact import chi2_pvalue, exact_distribution
from support.neutral_atom import gate, job

#: H T H on q[0], then CNOT: P(00) = cos^2(pi/8), P(11) = sin^2(pi/8); a T state for the
#: lattice surgery, a rotation for the device.
PROGRAM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2]; creg c[2];
h q[0]; t q[0]; h q[0];
cx q[0], q[1];
measure q -> c;
"""
SHOTS, SEED = 2000, 20260501
#: A correct sampler fails a chi-square test at this level once in 10^6 runs.
ALPHA = 1e-6


def _exact() -> dict[str, float]:
    return exact_distribution(read(PROGRAM))


def test_the_logical_target_is_the_default_and_gives_the_executors_counts():
    given = qmk.run(PROGRAM, target="logical", shots=SHOTS, seed=SEED, noise=False)
    plain = qmk.run(PROGRAM, shots=SHOTS, seed=SEED, noise=False)
    executor = execute(read(PROGRAM), shots=SHOTS, seed=SEED, noise=False)
    assert given.target == plain.target == "logical"
    assert given.counts == plain.counts == executor.counts
    assert given.memory == executor.memory
    assert chi2_pvalue(given.counts, _exact()) > ALPHA


def test_lattice_surgery_runs_the_program_on_its_layout_with_its_block():
    result = qmk.run(
        PROGRAM,
        target="lattice-surgery",
        target_options={"block": "compact"},
        shots=SHOTS,
        seed=SEED,
        noise=False,
    )
    assert result.target == "lattice-surgery"
    assert result.to_json()["layout"]["block"] == "compact"
    assert chi2_pvalue(result.counts, _exact()) > ALPHA
    again = qmk.run(
        PROGRAM,
        target="lattice-surgery",
        target_options={"block": "compact"},
        shots=SHOTS,
        seed=SEED,
        noise=False,
    )
    assert again.memory == result.memory  # the same seed, the same shots


def test_lattice_surgery_from_python_is_qmk_run_lattice_surgery(tmp_path: Path):
    path = tmp_path / "p.qasm"
    path.write_text(PROGRAM, encoding="utf-8")
    status, out, err = qmk_cli(
        "run",
        str(path),
        "--lattice-surgery",
        "--block",
        "compact",
        "--shots",
        str(SHOTS),
        "--seed",
        str(SEED),
        "--no-noise",
        "--json",
    )
    assert status == 0, err
    result = qmk.run(
        path,
        target="lattice-surgery",
        target_options={"block": "compact"},
        shots=SHOTS,
        seed=SEED,
        noise=False,
    )
    assert result.counts == json.loads(out)["counts"]


def test_the_neutral_atom_target_compiles_a_program_onto_the_preset_it_is_given():
    result = qmk.run(
        PROGRAM,
        target="neutral-atom",
        target_options={"preset": "ideal_small_array"},
        shots=SHOTS,
        seed=SEED,
    )
    assert result.target == "neutral-atom"
    assert result.to_json()["device"]["profile"] == "ideal_small_array"
    assert chi2_pvalue(result.counts, _exact()) > ALPHA


def _ghz_job() -> dict[str, Any]:
    return job(3, gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2), profile="benchmark_chain")


def test_a_device_job_as_data_text_or_file_runs_as_the_devices_emulator_runs_it(tmp_path: Path):
    wire = _ghz_job()
    expected = run_job(wire, shots=500, seed=7).counts()
    path = tmp_path / "ghz.json"
    path.write_text(json.dumps(wire), encoding="utf-8")
    for source in (wire, json.dumps(wire), path, str(path)):
        result = qmk.run(source, target="neutral-atom", shots=500, seed=7)
        assert result.counts == expected, type(source)
    preset = qmk.run(
        wire,
        target="neutral-atom",
        target_options={"preset": "ideal_small_array"},
        shots=500,
        seed=7,
    )
    assert preset.counts == run_job(wire, shots=500, seed=7, device="ideal_small_array").counts()


def test_an_unknown_target_is_qm101_with_the_closest_before_the_program_is_read(tmp_path: Path):
    with pytest.raises(qmk.QMKError) as caught:
        qmk.run(tmp_path / "missing.qasm", target="lattice_surgery")
    assert caught.value.code == "QM101"
    assert "did you mean 'lattice-surgery'?" in str(caught.value)


@pytest.mark.parametrize(
    ("target", "given", "option"),
    [
        ("logical", {"target_options": {"block": "fast"}}, "block"),
        ("lattice-surgery", {"target_options": {"block": "sideways"}}, "target_options"),
        ("lattice-surgery", {"final_state": True}, "final_state"),
        ("neutral-atom", {"engine": "statevector"}, "engine"),
        (
            "neutral-atom",
            {"target_options": {"preset": "ideal_small_array", "dpi": 3}},
            "target_options",
        ),
    ],
)
def test_what_a_target_cannot_honour_is_qm102_naming_it(
    target: str, given: dict[str, Any], option: str
):
    with pytest.raises(qmk.QMKError) as caught:
        qmk.run(PROGRAM, target=target, shots=10, seed=1, **given)
    assert caught.value.code == "QM102"
    assert f"{option} is not an option of the {target} target" in str(caught.value)


def test_a_device_job_takes_no_inputs_and_must_be_plain_json():
    with pytest.raises(qmk.FrontendError) as caught:
        qmk.run(_ghz_job(), target="neutral-atom", inputs={"theta": 1.0})
    assert caught.value.code == "QL104" and "inputs=" in str(caught.value)
    with pytest.raises(qmk.FrontendError) as unreadable:
        qmk.run({**_ghz_job(), "shots": object()}, target="neutral-atom")
    assert unreadable.value.code == "QL105" and "not plain JSON" in str(unreadable.value)
