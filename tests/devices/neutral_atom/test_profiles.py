"""Device profiles: presets, lattice vs configuration, zones, catalog, legacy hardware."""

from __future__ import annotations

import json

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.profiles import Hardware, Profile, load_profile, presets

PROTOTYPE_PRESETS = (
    "benchmark_chain",
    "ideal_small_array",
    "ideal_square_grid",
    "lossy_block",
    "lossy_chain",
    "noisy_square_array",
    "readout_stress",
)


def test_the_prototype_presets_are_shipped():
    assert set(PROTOTYPE_PRESETS) <= set(presets())


@pytest.mark.parametrize("name", PROTOTYPE_PRESETS)
def test_every_preset_has_cz_native_and_round_trips_through_json(name):
    profile = load_profile(name)
    assert profile.hardware.gate("CZ") is not None
    again = Profile.from_json(json.loads(json.dumps(profile.to_json())))
    assert again.hardware == profile.hardware
    assert again.noise == profile.noise


def test_an_unknown_preset_is_refused_with_the_list():
    with pytest.raises(DeviceError) as caught:
        load_profile("qpu9000")
    assert caught.value.code == "QD104"
    assert "benchmark_chain" in caught.value.message


def test_lattice_and_configuration_are_apart():
    grid = load_profile("ideal_square_grid")
    assert len(grid.hardware.sites) == 16
    checkerboard = grid.configuration("checkerboard")
    assert len(checkerboard.site_ids) == 8
    assert {r.role for r in checkerboard.regions} == {"DATA", "ANCILLA"}
    assert grid.hardware.zones == (0, 1)
    assert grid.hardware.blockade.radius_in(1) == 1.2
    assert grid.hardware.blockade.radius_in(0) == 1.5


def test_a_legacy_positions_hardware_becomes_a_chain_of_sites():
    hw = Hardware.from_json({"positions": [0.0, 1.0, 2.0], "blockade_radius": 1.5})
    assert [s.x for s in hw.sites] == [0.0, 1.0, 2.0]
    assert hw.site_ids == (0, 1, 2)
    assert hw.blockade.radius == 1.5 and hw.neighbour_distance == 1.0


def test_a_job_hardware_overrides_its_base_field_by_field():
    base = load_profile("benchmark_chain").hardware
    hw = Hardware.from_json({"blockade_model": {"radius": 3.0}}, base=base)
    assert hw.blockade.radius == 3.0 and hw.sites == base.sites


@pytest.mark.parametrize(
    "hardware",
    [
        {"sites": [{"id": 0, "x": 0.0}, {"id": 0, "x": 1.0}]},
        {"sites": [{"id": 0, "x": 0.0}, {"id": 1, "x": 0.0}]},
        {"positions": [0.0, 1.0], "site_ids": [0, 5]},
        {"positions": [0.0, 1.0], "native_gates": [{"name": "CCX", "arity": 3}]},
        {"positions": [0.0, 1.0], "timing_limits": {"max_wait": 5}},
    ],
)
def test_inconsistent_hardware_is_refused(hardware):
    with pytest.raises(DeviceError) as caught:
        Hardware.from_json(hardware)
    assert caught.value.code == "QD105"


def test_a_large_chain_is_built_quickly_enough_to_hold_ten_thousand_atoms():
    profile = Profile.from_json({"lattice": {"kind": "chain", "n": 10_000, "spacing": 2.0}})
    assert len(profile.hardware.site_ids) == 10_000
    assert profile.hardware.neighbour_distance == 2.0


def test_a_jobs_limit_tables_replace_only_the_fields_they_give():
    base = load_profile("benchmark_chain").hardware
    hw = Hardware.from_json({"timing_limits": {"min_wait_ns": 5}}, base=base)
    assert hw.timing.min_wait_ns == 5.0
    assert hw.timing.reset_duration_ns == base.timing.reset_duration_ns
    assert hw.move_limits == base.move_limits and hw.pulse == base.pulse


@pytest.mark.parametrize(
    ("hardware", "field"),
    [
        ({"positions": [0.0, "one"]}, "hardware.positions[1]"),
        ({"sites": [{"id": 0, "x": float("inf")}]}, "hardware.sites[0]"),
        ({"positions": [0.0, 1.0], "timing_limits": {"min_wait_ns": -1}}, "hardware.timing_limits"),
        (
            {"positions": [0.0], "native_gates": [{"name": "CZ", "connectivity": "Ring"}]},
            "hardware.native_gates[0].connectivity",
        ),
        ({"coordinates": [[0.0, 1.0, 2.0, 3.0]]}, "hardware.coordinates[0]"),
    ],
)
def test_a_bad_hardware_value_is_qd105_naming_its_field(hardware, field):
    with pytest.raises(DeviceError) as caught:
        Hardware.from_json(hardware)
    assert caught.value.code == "QD105" and caught.value.details["field"].startswith(field)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"lattice": {"kind": "ring", "n": 3}}, "lattice.kind"),
        ({"lattice": {"n": 3}, "transport": {"kind": "far"}}, "transport.kind"),
        ({"lattice": {"n": 3}, "configurations": [{"site_ids": "all"}]}, "configurations[0]"),
        ({"lattice": {"n": 3}, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_profile_file_is_qd105_naming_its_field(profile, field):
    with pytest.raises(DeviceError) as caught:
        Profile.from_json(profile)
    assert caught.value.code == "QD105" and caught.value.details["field"] == field
