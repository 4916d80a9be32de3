"""`qmk run`: counts as JSON or text, reproducible by seed, bad input as one line with a code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qmk.kernel.machine.programs import random_clifford
from support.cli import qmk
from support.paths import EXAMPLES


def test_run_json_prints_counts_shots_seed_engine_and_telemetry() -> None:
    status, out, err = qmk(
        "run", str(EXAMPLES / "bell.qvm.json"), "--shots", "500", "--seed", "7", "--json"
    )
    assert status == 0, err
    data = json.loads(out)
    assert {"counts", "shots", "seed", "engine", "telemetry"} <= set(data)
    assert data["shots"] == 500 and data["seed"] == 7 and data["engine"] == "stabilizer"
    assert set(data["counts"]) <= {"00", "11"} and sum(data["counts"].values()) == 500


def test_run_with_the_same_seed_prints_the_same_counts() -> None:
    runs = [
        json.loads(
            qmk("run", str(EXAMPLES / "t_gate_injection.qvm.asm"), "--seed", "3", "--json")[1]
        )["counts"]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_run_without_a_seed_reports_the_seed_it_drew() -> None:
    status, out, _ = qmk("run", str(EXAMPLES / "bell.qvm.json"), "--shots", "50", "--json")
    first = json.loads(out)
    again = json.loads(
        qmk(
            "run",
            str(EXAMPLES / "bell.qvm.json"),
            "--shots",
            "50",
            "--seed",
            str(first["seed"]),
            "--json",
        )[1]
    )
    assert status == 0 and again["counts"] == first["counts"]


def test_run_text_lists_outcomes_and_telemetry() -> None:
    status, out, _ = qmk(
        "run", str(EXAMPLES / "ghz.qvm.asm"), "--shots", "100", "--seed", "1", "--no-noise"
    )
    assert status == 0
    assert "engine stabilizer (stim-batch), noise off" in out
    assert "telemetry:" in out and "logical cycles" in out


def test_run_text_says_a_density_matrix_applied_the_noise_exactly(tmp_path: Path) -> None:
    # 6 qubits, 8 layers, errors in most of 4000 shots: thousands of trajectories against
    # one 12-bit matrix, whatever the process has compiled already
    lines = ['OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[6];']
    for layer in range(8):
        lines += [f"ry({0.3 + 0.1 * q + 0.2 * layer:.2f}) q[{q}];\nt q[{q}];" for q in range(6)]
        lines += [f"cx q[{q}],q[{q + 1}];" for q in range(layer % 2, 5, 2)]
    program = tmp_path / "noisy.qasm"
    program.write_text("\n".join([*lines, "measure q -> c;"]) + "\n")
    argv = ["run", str(program), "--shots", "4000", "--seed", "5"]
    noisy = ["--profile", "logical:surface_code(d=3)", "--noise-model", "depolarizing(p=5e-3)"]
    status, out, err = qmk(*argv, *noisy)
    assert status == 0, err
    assert "engine statevector (density-matrix)" in out
    assert "logical errors as exact channels of a density matrix" in out
    assert "1 simulation" in out and "injected" not in out
    status, out, err = qmk(*argv, "--no-noise")
    assert status == 0, err
    assert "0 logical errors injected over all shots" in out


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.qvm.json")))
def test_every_example_runs(example: str) -> None:
    status, out, err = qmk(
        "run", str(EXAMPLES / example), "--shots", "200", "--seed", "1", "--json"
    )
    assert status == 0, err
    assert sum(json.loads(out)["counts"].values()) == 200


def test_run_on_the_stabilizer_engine_of_a_t_program_is_one_line_exit_2() -> None:
    status, out, err = qmk(
        "run", str(EXAMPLES / "t_gate_injection.qvm.asm"), "--engine", "stabilizer"
    )
    assert status == 2 and out == ""
    assert err.startswith("QE103 gate-unsupported:") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv", [["--shots", "0"], ["--shots", "x"], ["--seed", "-1"], ["--engine", "tensor"]]
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    status, _, _ = qmk("run", str(EXAMPLES / "bell.qvm.json"), *argv)
    assert status == 2


def test_unknown_qubit_parameters_are_one_line_with_a_code() -> None:
    status, _, err = qmk("run", str(EXAMPLES / "bell.qvm.json"), "--qubit", "qubit_nope")
    assert status == 2 and err.count("\n") == 1 and "qubit_nope" in err


def test_a_program_with_findings_does_not_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.qvm.asm"
    bad.write_text("a: ALLOC_LQ vq:q\nm: MEASURE_Z vq:q, out:m\n", encoding="utf-8")
    status, out, err = qmk("run", str(bad))
    assert status == 1 and out == ""
    assert "QV501" in err


def test_run_as_a_real_process_gives_json_and_no_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qmk",
            "run",
            str(EXAMPLES / "teleport_cond_pauli.qvm.json"),
            "--shots",
            "100",
            "--seed",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shots"] == 100


def test_a_code_family_that_does_not_fit_the_qubits_is_refused_before_running(
    tmp_path: Path,
) -> None:
    program = tmp_path / "floquet.qvm.asm"
    program.write_text(
        '.caps CAP_ALLOC\na: ALLOC_LQ vq:q, profile="logical:floquet_code(d=7)"\n'
        "m: MEASURE_Z vq:q, out:m\nf: FREE_LQ vq:q\n",
        encoding="utf-8",
    )
    status, out, err = qmk("run", str(program), "--qubit", "qubit_gate_ns_e3")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("QC105")
    status, out, _ = qmk("run", str(program), "--qubit", "qubit_maj_ns_e4", "--json")
    assert status == 0 and json.loads(out)["counts"] == {"0": 1024}


def test_run_noise_model_sets_the_physical_rates_and_telemetry_says_so() -> None:
    bell = str(EXAMPLES / "bell.qvm.json")
    status, out, err = qmk(
        "run", bell, "--seed", "4", "--json", "--noise-model", "depolarizing(p=0.009)"
    )
    assert status == 0, err
    telemetry = json.loads(out)["telemetry"]
    assert telemetry["noise_model"] == "depolarizing(p=0.009)"
    assert telemetry["injected_logical_errors"] > 0
    status, out, err = qmk("run", bell, "--noise-model", "depolarizing(p=0.009)", "--no-noise")
    assert status == 2 and out == "" and err.startswith("QC103 bad-parameter: --noise-model")
    status, _, err = qmk("run", bell, "--noise-model", "thermal(t=1)")
    assert status == 2 and "unknown model 'thermal'" in err and len(err.splitlines()) == 1


def test_run_takes_custom_qubit_params_and_a_calibration_file(tmp_path: Path) -> None:
    bell = str(EXAMPLES / "bell.qvm.json")
    qubit = tmp_path / "qubit.json"
    qubit.write_text(
        json.dumps(
            {
                "name": "my_qubit",
                "instructionSet": "GateBased",
                "oneQubitGateTime": "40 ns",
                "oneQubitMeasurementTime": "120 ns",
                "oneQubitGateErrorRate": 2e-4,
                "tGateErrorRate": 2e-4,
                "oneQubitMeasurementErrorRate": 2e-4,
            }
        )
    )
    status, out, err = qmk("run", bell, "--json", "--seed", "1", "--qubit-params", str(qubit))
    assert status == 0, err
    assert json.loads(out)["telemetry"]["qubit_params"] == "my_qubit"
    calibration = tmp_path / "cal.json"
    calibration.write_text(
        json.dumps(
            {
                "kind": "qmk.qec.calibration",
                "version": 1,
                "family": "bacon_shor",
                "crossing_prefactor": 0.1,
                "error_correction_threshold": 0.01,
            }
        )
    )
    status, out, err = qmk("run", bell, "--calibration", str(calibration))
    assert status == 2 and "no qubit of this program is" in err
    status, out, err = qmk(
        "run",
        str(EXAMPLES / "bell.qasm"),  # lowered qubits take --profile
        "--json",
        "--calibration",
        str(calibration),
        "--profile",
        "logical:bacon_shor(d=5)",
    )
    assert status == 0, err
    assert json.loads(out)["telemetry"]["calibration"]["profiles"] == ["logical:bacon_shor(d=5)"]


def test_profile_auto_on_a_program_whose_qubits_all_name_a_profile_is_a_coded_warning() -> None:
    bell = str(EXAMPLES / "bell.qvm.asm")  # its ALLOC_LQ names logical:surface_code(d=9)
    status, out, err = qmk("run", bell, "--profile", "auto", "--shots", "50", "--seed", "1")
    assert status == 0
    assert err.startswith(f"{bell}: warning: QC130 profile-auto-unused: every qubit names")
    assert len(err.splitlines()) == 1 and "00" in out
    status, out, err = qmk("run", bell, "--profile", "auto", "--shots", "50", "--json")
    assert status == 0 and err == ""
    [notice] = json.loads(out)["warnings"]
    assert (notice["code"], notice["name"]) == ("QC130", "profile-auto-unused")


def test_profile_auto_gives_no_warning_where_a_qubit_takes_the_chosen_profile() -> None:
    status, out, err = qmk(
        "run", str(EXAMPLES / "bell.qasm"), "--profile", "auto", "--shots", "50", "--json"
    )
    assert status == 0 and err == ""
    data = json.loads(out)
    assert "warnings" not in data and data["telemetry"]["profiles"]


@pytest.mark.parametrize("named", [[], ["--engine", "stabilizer"]], ids=["default", "named"])
def test_run_of_a_thousand_qubit_clifford_circuit_with_long_range_cx_takes_the_stabilizer(
    tmp_path: Path, named: list[str]
) -> None:
    program = tmp_path / "clifford-1000.qasm"
    program.write_text(random_clifford(1000, 4, seed=62), encoding="utf-8")
    status, out, err = qmk("run", str(program), "--shots", "100", "--seed", "1", *named, "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["engine"] == "stabilizer" and sum(data["counts"].values()) == 100


def test_run_of_a_program_no_engine_runs_within_a_day_is_one_line_qe118_exit_2(
    tmp_path: Path,
) -> None:
    # a T gate: not Clifford; 1,000 qubits: no dense engine holds them; CX between far
    # qubits: an MPS at bond 2**500
    program = tmp_path / "t-1000.qasm"
    program.write_text(
        random_clifford(1000, 4, seed=62).replace("measure q", "t q[0];\nmeasure q"),
        encoding="utf-8",
    )
    for named in ([], ["--engine", "mps"]):
        status, out, err = qmk("run", str(program), "--shots", "10", *named)
        assert status == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith("QE118 engine-too-slow: ")
        assert "its own estimate is 1e+" in err


def test_a_noisy_device_run_names_the_device_noise_not_injected_logical_errors() -> None:
    status, out, err = qmk(
        "run",
        str(EXAMPLES / "bell.qasm"),
        "--device",
        "noisy_square_array",
        "--shots",
        "200",
        "--seed",
        "3",
    )
    assert status == 0, err
    assert "logical errors injected" not in out
    assert "the device's physical noise drawn per shot at 8 locations" in out
    assert "(noisy_square_array)," in out


def test_an_ideal_device_run_says_it_drew_no_device_noise() -> None:
    status, out, err = qmk(
        "run", str(EXAMPLES / "bell.qasm"), "--device", "ideal_small_array", "--shots", "50"
    )
    assert status == 0, err
    assert "no device noise (ideal_small_array)" in out
