"""QEC memory experiments on a device profile: noiseless runs fire no detector (so the
compiled, routed circuit is the code's), matched physical noise with loss off gives the
logical error of the existing stim + pymatching experiment, and atom loss raises it."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from qmk.devices.neutral_atom.noise import NoiseModel
from qmk.devices.neutral_atom.profiles import load_profile
from qmk.devices.neutral_atom.qec import matched_noise, memory_experiment
from qmk.experiments.circuits import CircuitNoise
from qmk.experiments.memory import run_memory
from support.cli import qmk


@pytest.mark.parametrize(
    ("code", "device"),
    [
        ("repetition", "ideal_small_array"),
        ("repetition", "benchmark_chain"),
        ("surface", "benchmark_chain"),
    ],
)
def test_a_noiseless_profile_fires_no_detector_even_when_the_code_is_routed(code, device):
    profile = replace(load_profile(device), noise=NoiseModel())
    result = memory_experiment(code, distance=3, rounds=2, device=profile, shots=300, seed=5)
    assert result.detection_events == 0 and result.errors == 0
    if code == "surface":  # a 2D code on a chain: the compiler had to route
        assert result.moves + result.swaps > 0


def _depolarizing_profile(p2: float, readout: float, prep: float):
    noise = NoiseModel.from_json(
        {
            "p_prep": prep,
            "readout": {"p_flip0_to_1": readout, "p_flip1_to_0": readout},
            "correlated_gate": {
                "matrix": [[0.0 if i == j == 0 else p2 / 15 for j in range(4)] for i in range(4)]
            },
        }
    )
    return replace(load_profile("ideal_small_array"), noise=noise)


def test_loss_off_matches_the_existing_memory_experiment_at_matched_noise():
    # uniform two-qubit depolarizing (CZ = CX up to H on the target, which keeps it
    # uniform), symmetric readout and prep flips: exactly CircuitNoise's model
    profile = _depolarizing_profile(0.03, 0.02, 0.02)
    shots = 20_000
    device = memory_experiment(
        "repetition", distance=3, rounds=3, device=profile, shots=shots, seed=11, loss=False
    )
    noise = CircuitNoise(after_2q=0.03, measure_flip=0.02, reset_flip=0.02)
    decoder = matched_noise(profile)
    assert math.isclose(decoder.after_2q, 0.03) and decoder.after_1q == 0 == decoder.idle
    assert (decoder.measure_flip, decoder.reset_flip) == (0.02, 0.02)
    reference = run_memory(
        "repetition_code", distance=3, rounds=3, p=0.03, noise=noise, shots=shots, seed=11
    )
    a, b = device.errors / shots, reference.errors / shots
    pooled = (device.errors + reference.errors) / (2 * shots)
    z = (a - b) / math.sqrt(2 * pooled * (1 - pooled) / shots)
    assert abs(z) < 4.0, (device.errors, reference.errors)
    assert device.errors > 0  # the comparison compares something


def test_atom_loss_raises_the_logical_error():
    on = memory_experiment(
        "repetition", distance=3, rounds=3, device="lossy_chain", shots=4000, seed=2
    )
    off = memory_experiment(
        "repetition", distance=3, rounds=3, device="lossy_chain", shots=4000, seed=2, loss=False
    )
    assert on.lost_bits > 0 and off.lost_bits == 0
    assert on.errors > off.errors + 4 * math.sqrt(on.errors + 1)
    low, high = on.per_round_interval
    assert low <= on.per_round <= high


def test_qmk_device_qec_reports_the_logical_error_per_round():
    status, out, err = qmk(
        "device",
        "qec",
        "--code",
        "repetition",
        "--distance",
        "3",
        "--rounds",
        "2",
        "--device",
        "lossy_chain",
        "--shots",
        "500",
        "--seed",
        "3",
        "--json",
    )
    assert status == 0, err
    data = json.loads(out)
    assert data["profile"] == "lossy_chain" and data["shots"] == 500
    assert 0 <= data["per_round"] <= 0.5 and data["loss"] is True
    status, out, err = qmk(
        "device", "qec", "--code", "repetition", "--distance", "3", "--device", "lossy_chain",
        "--shots", "200", "--seed", "3", "--no-loss",
    )  # fmt: skip
    assert status == 0, err
    assert "logical error per round" in out


def test_qmk_device_qec_refuses_an_even_distance_in_one_line():
    status, _, err = qmk("device", "qec", "--code", "surface", "--distance", "4")
    assert status != 0 and err.startswith("QC103") and err.count("\n") == 1


def test_qmk_device_qec_refuses_rounds_past_the_unrolling_limit_before_building_them():
    # 10^8 rounds of d=3: ~10^9 rows the compiler would take one at a time (was unrolled
    # without a cap, the process growing until killed)
    status, out, err = qmk("device", "qec", "--code", "repetition", "--rounds", "100000000")
    assert status == 1 and out == ""
    assert err.startswith("QV505 unrolled-too-large:") and err.count("\n") == 1
