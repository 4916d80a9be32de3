"""The device interface: the simulated logical machine's inventory, capabilities,
calibration ingest and health, its fault schedule, and BBPSSW purification."""

from __future__ import annotations

import pytest

from qmk.devices.hal import Device
from qmk.devices.purification import bbpssw_round, purify
from qmk.kernel.config import ConfigError, config_from_dict
from qmk.kernel.device import FaultSchedule, LogicalMachine
from qmk.qec.errors import QECError
from qmk.qec.logical import Calibration, logical_model
from qmk.qec.noise import Drift, parse_noise_model
from qmk.qec.params import qubit_params


def test_the_simulated_machine_meets_the_device_protocol() -> None:
    assert isinstance(LogicalMachine(physical_qubits=1000), Device)


def test_inventory_splits_the_physical_qubits_into_modules_and_reports_them_as_json() -> None:
    machine = LogicalMachine(physical_qubits=1003, modules=3)
    inventory = machine.inventory()
    assert [m.physical_qubits for m in inventory.modules] == [335, 334, 334]
    data = inventory.to_json()
    assert data["physical_qubits_up"] == data["physical_qubits_total"] == 1003
    assert data["qubit"]["name"] == "qubit_gate_ns_e3"
    assert data["profiles"] == ["logical:surface_code(d=9)"]


def test_capabilities_count_logical_qubits_of_the_modules_up() -> None:
    machine = LogicalMachine(physical_qubits=162 * 10, modules=2)
    assert machine.capabilities().max_logical_qubits == 10
    machine.fail(1, epoch=4)
    caps = machine.capabilities()
    assert caps.max_logical_qubits == 5
    assert caps.instruction_set == "gate_based" and "APPLY_H" in caps.ops
    assert "surface_code" in caps.code_families
    assert machine.inventory().modules[1].to_json() == {
        "module_id": 1,
        "physical_qubits": 810,
        "up": False,
        "failed_at": 4,
    }


def test_health_follows_the_fault_schedule_epoch_by_epoch() -> None:
    faults = FaultSchedule(
        drift_per_epoch=0.1,
        drift_start_epoch=10,
        link_fidelity=0.99,
        link_drop_per_epoch=0.05,
        decoder_capacity=1e6,
    )
    machine = LogicalMachine(physical_qubits=1000, faults=faults)
    assert machine.health(10).drift_factor == 1.0
    assert machine.health(30).drift_factor == pytest.approx(3.0)
    assert machine.health(2).link_fidelity == pytest.approx(0.89)
    assert machine.health(100).link_fidelity == 0.25  # never below the fully mixed pair
    health = machine.health(0, decoder_load=1.5e6)
    assert health.decoder_backlog_bits_per_second == pytest.approx(5e5)
    assert health.to_json()["decoder_backlog_bits_per_second"] == pytest.approx(5e5)


def test_the_drifted_model_multiplies_every_physical_error_rate() -> None:
    faults = FaultSchedule(drift_per_epoch=0.5)
    machine = LogicalMachine(
        physical_qubits=1000, profile="logical:surface_code(d=3)", faults=faults
    )
    drifted = machine.model(epoch=2)  # factor 2
    assert drifted.physical_error_rate == pytest.approx(2e-3)
    expected = logical_model(
        "logical:surface_code(d=3)", noise=parse_noise_model("drift(factor=2.0)")
    )
    assert drifted.logical_error_per_cycle == expected.logical_error_per_cycle
    assert machine.noise_model_at(2) == "drift(factor=2.0)"
    assert Drift(factor=3).apply(qubit_params("qubit_gate_ns_e4")).idle_error_rate == pytest.approx(
        3e-4
    )


def test_calibration_ingest_changes_the_model_later_jobs_get() -> None:
    machine = LogicalMachine(physical_qubits=1000, profile="logical:surface_code(d=3)")
    before = machine.model().logical_error_per_cycle
    machine.calibrate(
        calibration=Calibration(
            family="surface_code",
            crossing_prefactor=0.1,
            error_correction_threshold=0.01,
        )
    )
    assert machine.model().logical_error_per_cycle == pytest.approx(before * 0.1 / 0.03)
    custom = qubit_params("qubit_gate_ns_e3").replace(name="lab", two_qubit_gate_error_rate=2e-3)
    machine.calibrate(qubit=custom)
    assert machine.inventory().qubit.name == "lab"
    assert machine.model().physical_error_rate == 2e-3
    assert machine.calibrations == 2


def test_calibration_ingest_refuses_what_the_machine_cannot_run() -> None:
    machine = LogicalMachine(physical_qubits=1000)
    with pytest.raises(QECError, match="majorana"):
        machine.calibrate(qubit=qubit_params("qubit_maj_ns_e4"))
    with pytest.raises(QECError, match="floquet_code"):
        machine.calibrate(
            calibration=Calibration(
                family="floquet_code",
                crossing_prefactor=0.07,
                error_correction_threshold=0.01,
            )
        )
    above = qubit_params("qubit_gate_ns_e3").replace(name="hot", two_qubit_gate_error_rate=0.02)
    with pytest.raises(QECError) as caught:
        machine.calibrate(qubit=above)
    assert caught.value.code == "QC106"
    assert machine.inventory().qubit.name == "qubit_gate_ns_e3"  # nothing changed


def test_one_bbpssw_round_follows_the_werner_formulas() -> None:
    f = 0.8
    e = (1 - f) / 3
    out, success = bbpssw_round(f)
    assert success == pytest.approx(f**2 + 2 * f * e + 5 * e**2)
    assert out == pytest.approx((f**2 + e**2) / success)
    assert bbpssw_round(0.5)[0] == pytest.approx(0.5)  # 1/2 is the fixed point


def test_purification_runs_rounds_until_the_target_and_counts_the_pairs_it_consumes() -> None:
    found = purify(0.85, target=0.95, max_rounds=5)
    f, cost = 0.85, 1.0
    for _ in range(found.rounds):
        f, success = bbpssw_round(f)
        cost *= 2 / success
    assert found.reached and found.fidelity == pytest.approx(f) and f >= 0.95
    assert found.raw_pairs_per_pair == pytest.approx(cost)
    assert not purify(0.85, target=0.99, max_rounds=2).reached
    assert purify(0.97, target=0.95, max_rounds=3).rounds == 0


def _config(faults: dict[str, object], modules: int = 1) -> object:
    return config_from_dict(
        {"machine": {"physical_qubits": 10_000, "modules": modules}, "faults": faults}
    )


def test_the_faults_table_is_read_into_the_schedule() -> None:
    config = _config(
        {
            "drift_per_epoch": 0.01,
            "link_fidelity": 0.9,
            "module_failures": [{"module": 1, "epoch": 5}],
            "decoder_capacity_bits_per_s": 1e7,
        },
        modules=2,
    )
    faults = config.faults  # type: ignore[attr-defined]
    assert faults.module_failures == ((1, 5),)
    assert faults.drift_factor(100) == pytest.approx(2.0)
    assert faults.decoder_capacity == 1e7
    assert config.machine.modules == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"drift_per_epoch": -1}, "faults.drift_per_epoch: Expected `float` >= 0.0"),
        ({"link_fidelity": 1.5}, "faults.link_fidelity: Expected `float` <= 1.0"),
        ({"module_failures": [{"module": 3, "epoch": 1}]}, "must name a module 0..1"),
        (
            {"module_failures": [{"module": 0}]},
            "faults.module_failures[0].epoch is missing",
        ),
        (
            {"decoder_capacity_bits_per_s": 0},
            "faults.decoder_capacity_bits_per_s: Expected `float` > 0.0",
        ),
        ({"colour": "red"}, "faults.colour: unknown key"),
    ],
)
def test_a_bad_faults_key_is_a_coded_config_error_naming_it(
    faults: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(faults, modules=2)
    assert caught.value.code == "QK101"
    assert message in str(caught.value)


def test_a_config_without_faults_or_modules_behaves_as_before() -> None:
    config = config_from_dict({"machine": {"physical_qubits": 10_000}})
    assert config.machine.modules == 1
    assert config.faults == FaultSchedule()
