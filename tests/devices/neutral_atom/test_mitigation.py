"""Mitigation on device jobs: readout correction from a calibration run and zero-noise
extrapolation, checked against the exact noiseless expectation at stated seeds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from qmk.cli import main
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.mitigation import (
    apply_confusion,
    apply_inverse,
    expectation,
    mitigate,
    parse_observable,
    parse_scales,
    richardson,
    scale_noise,
)
from qmk.devices.neutral_atom.profiles import load_profile

#: Atom 0 flipped by X, atom 1 left in 0: <Z0Z1> = -1 exactly without noise.
FLIP = {
    "profile": "readout_stress",
    "program": [
        {"op": "AllocArray", "n_qubits": 2},
        {"op": "ApplyGate", "name": "X", "targets": [0]},
        {"op": "Measure", "targets": [0, 1]},
    ],
}
#: A Bell pair: <Z0Z1> = +1 exactly without noise.
BELL = {
    "profile": "noisy_square_array",
    "program": [
        {"op": "AllocArray", "n_qubits": 2},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "Measure", "targets": [0, 1]},
    ],
}


def test_the_tensored_inverse_undoes_a_known_confusion_exactly() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random(8)
    probs /= probs.sum()
    confusions = [
        np.array([[0.97, 0.06], [0.03, 0.94]]),
        np.array([[0.9, 0.2], [0.1, 0.8]]),
        np.array([[0.99, 0.01], [0.01, 0.99]]),
    ]
    noisy = apply_confusion(probs, confusions)
    full = np.kron(np.kron(confusions[0], confusions[1]), confusions[2])
    assert np.allclose(noisy, full @ probs, atol=1e-14)  # bit 0 is the most significant
    assert np.allclose(apply_inverse(noisy, confusions), probs, atol=1e-12)


def test_expectation_is_the_parity_of_the_chosen_bits() -> None:
    probs = np.zeros(4)
    probs[0b10] = 1.0  # bit 0 reads 1, bit 1 reads 0
    assert expectation(probs, (0,), 2) == -1.0
    assert expectation(probs, (1,), 2) == 1.0
    assert expectation(probs, (0, 1), 2) == -1.0


def test_richardson_recovers_a_quadratic_at_zero_and_linear_fits_a_line() -> None:
    assert richardson((1, 2, 3), [2 - 0.1 * s + 0.01 * s * s for s in (1, 2, 3)]) == (
        pytest.approx(2.0, abs=1e-12)
    )
    assert richardson((1, 2, 3), [1 - 0.1 * s for s in (1, 2, 3)], linear=True) == (
        pytest.approx(1.0, abs=1e-12)
    )


def test_readout_mitigation_brings_the_expectation_within_a_few_errors_of_exact() -> None:
    m = mitigate(FLIP, "Z0Z1", method="readout", shots=20_000, seed=11)
    exact = -1.0
    assert m.readout is not None
    raw_error, mitigated_error = abs(m.raw - exact), abs(m.readout - exact)
    # Readout flips 2% / 5% plus prep errors: raw ~ -0.82; the margin is > 20 standard errors.
    assert raw_error - mitigated_error > 20 * m.raw_stderr
    assert mitigated_error < 0.02
    # The calibrated confusion matches the preset's flips (with its 1% prep error and X noise).
    (c0, _) = m.confusion
    assert c0[1][0] == pytest.approx(0.02 + 0.01 * (1 - 0.02 - 0.05), abs=0.006)
    assert c0[0][1] == pytest.approx(0.05, abs=0.02)


def test_zne_extrapolates_closer_to_the_noiseless_expectation_than_the_device_noise() -> None:
    m = mitigate(BELL, "Z0Z1", method="zne", shots=20_000, seed=11)
    exact = 1.0
    assert m.zne is not None and m.scaled[0] == m.raw
    assert m.scaled[0] > m.scaled[1] > m.scaled[2]  # more noise, less parity
    # Richardson on (1, 2, 3) amplifies the shot noise by sqrt(19) ~ 4.4: the gap (~0.08)
    # is still > 5 of those standard errors.
    assert abs(m.raw - exact) - abs(m.zne - exact) > 5 * 4.4 * m.raw_stderr


def test_both_corrects_readout_at_every_scale_before_extrapolating() -> None:
    m = mitigate(FLIP, "Z0Z1", method="both", shots=20_000, seed=5)
    assert m.readout is not None and m.zne is not None
    assert m.scaled[0] == m.readout
    assert abs(m.zne + 1.0) < abs(m.raw + 1.0) - 0.1


def test_scaling_the_noise_scales_gate_and_idle_rates_and_keeps_readout() -> None:
    noise = load_profile("readout_stress").noise
    doubled = scale_noise(noise, 2.0)
    assert doubled.gate.single_qubit.px == 2 * noise.gate.single_qubit.px
    assert doubled.phase.idle == 2 * noise.phase.idle
    assert doubled.readout == noise.readout
    assert (doubled.p_loss, doubled.p_prep) == (noise.p_loss, noise.p_prep)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: parse_observable("X0", 2), "not a Z string"),
        (lambda: parse_observable("Z0Z0", 2), "twice"),
        (lambda: parse_observable("Z2", 2), "records 2 bits"),
        (lambda: parse_scales("1"), "at least two"),
        (lambda: parse_scales("2,3"), "the first 1"),
        (lambda: parse_scales("1,a"), "not a comma-separated"),
        (lambda: scale_noise(load_profile("readout_stress").noise, 200.0), "exceeds 1"),
        (lambda: mitigate(FLIP, "Z0", method="magic", shots=10, seed=1), "not one of"),
    ],
)
def test_bad_mitigation_requests_are_coded_errors(call, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DeviceError) as info:
        call()
    assert info.value.code == "QD112"
    assert fragment in str(info.value)


def test_a_job_measuring_an_atom_twice_cannot_be_readout_mitigated() -> None:
    twice = dict(FLIP, program=[*FLIP["program"], {"op": "Measure", "targets": [0]}])
    with pytest.raises(DeviceError, match=r"QD112.*more than once"):
        mitigate(twice, "Z0", method="readout", shots=10, seed=1)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_cli_prints_raw_and_mitigated_expectations(tmp_path: Path) -> None:
    job = tmp_path / "flip.json"
    job.write_text(json.dumps(FLIP))
    status, out, _ = _cli(
        "device", "run", str(job), "--shots", "4000", "--seed", "3", "--mitigate", "both",
        "--observable", "Z0Z1", "--zne-scales", "1,2", "--json",
    )  # fmt: skip
    assert status == 0
    data = json.loads(out)
    assert data["scales"] == [1.0, 2.0] and data["extrapolation"] == "richardson (degree 1)"
    assert abs(data["readout"] + 1) < abs(data["raw"] + 1)
    assert sum(data["corrected_counts"].values()) == pytest.approx(4000 - data["discarded"])


@pytest.mark.parametrize(
    "extra",
    [
        ["--mitigate", "zne"],  # no observable
        ["--observable", "Z0"],  # no --mitigate
        ["--mitigate", "readout", "--observable", "Z0", "--zne-scales", "1,2"],
        ["--mitigate", "zne", "--observable", "Y0"],
    ],
)
def test_cli_refuses_unsupported_combinations_with_one_coded_line(
    tmp_path: Path, extra: list[str]
) -> None:
    job = tmp_path / "flip.json"
    job.write_text(json.dumps(FLIP))
    status, out, err = _cli("device", "run", str(job), "--shots", "10", "--seed", "1", *extra)
    assert status == 2 and out == ""
    assert err.startswith("QD112 mitigation-invalid") and err.count("\n") == 1
