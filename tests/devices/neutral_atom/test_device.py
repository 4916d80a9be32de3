"""The neutral-atom device behind the HAL."""

from __future__ import annotations

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.hal import Device
from qmk.devices.neutral_atom.device import NeutralAtomDevice, qubit_params
from qmk.devices.neutral_atom.profiles import load_profile
from qmk.qec.logical import Calibration
from qmk.qec.params import qubit_params as predefined


def test_it_is_a_hal_device_with_inventory_capabilities_and_health():
    device = NeutralAtomDevice("ideal_square_grid")
    assert isinstance(device, Device)
    assert device.inventory().physical_qubits_up == 16
    caps = device.capabilities()
    assert caps.instruction_set.startswith("neutral-atom-isa") and "MoveAtom" in caps.ops
    available = ("state-vector", "stabilizer", "mps")
    assert caps.engines in (available, (*available, "gpu-state-vector"))
    assert device.health(3).modules_up == (0,)
    data = device.to_json(3)
    assert data["kind"] == "neutral-atom" and data["isa_versions"] == ["1.0", "1.1", "1.2"]


def test_the_qubit_parameters_follow_the_profile():
    params = qubit_params(load_profile("benchmark_chain"))
    assert params.one_qubit_gate_time == 500 and params.two_qubit_gate_time == 1000
    assert params.two_qubit_gate_error_rate > params.one_qubit_gate_error_rate > 0


def test_ingested_qubit_parameters_become_the_noise_of_later_jobs():
    device = NeutralAtomDevice("ideal_small_array")
    wire = {"program": [{"op": "AllocArray", "n_qubits": 1}, {"op": "Measure", "targets": [0]}]}
    assert device.run(wire, shots=2000, seed=1).counts() == {"0": 2000}
    device.calibrate(qubit=predefined("qubit_gate_ns_e3"))
    assert device.calibrations_ingested == 1
    assert device.profile.noise.readout.p_flip0_to_1 == pytest.approx(1e-3)
    flips = device.run(wire, shots=20000, seed=1).counts().get("1", 0)
    assert 0 < flips < 60


def test_a_logical_calibration_or_majorana_qubits_are_refused():
    device = NeutralAtomDevice("ideal_small_array")
    calibration = Calibration(
        family="surface_code", crossing_prefactor=0.03, error_correction_threshold=0.01
    )
    with pytest.raises(DeviceError) as caught:
        device.calibrate(calibration=calibration)
    assert caught.value.code == "QD109"
    with pytest.raises(DeviceError) as caught:
        device.calibrate(qubit=predefined("qubit_maj_ns_e4"))
    assert caught.value.code == "QD109"
