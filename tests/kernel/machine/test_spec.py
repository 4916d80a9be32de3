"""The machine a [machine] table declares: every config loads, and the floorplan's
numbers come from the estimator's patch and factory."""

from __future__ import annotations

import math

import pytest

from qmk.estimate.estimator import JobParams
from qmk.estimate.tfactory import make_patch
from qmk.kernel.config import config_from_dict, load_config
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.derive import config_machine, machine_spec
from qmk.kernel.machine.factories import estimator_factory
from qmk.kernel.machine.hold import qubits_to_hold
from support.paths import EXAMPLES


@pytest.mark.parametrize("qubits", [1, 100, 10_000, 100_000, 2_000_000])
@pytest.mark.parametrize("modules", [1, 3])
def test_every_machine_that_loads_today_has_a_floorplan(qubits: int, modules: int):
    if modules > qubits:
        return
    config = config_from_dict({"machine": {"physical_qubits": qubits, "modules": modules}})
    machine = config_machine(config)
    assert len(machine.modules) == modules
    for module in machine.modules:
        f = module.factory
        used = module.tiles + module.bus_tiles + module.storage_tiles
        assert used * machine.patch_qubits + f.copies * f.physical_qubits <= qubits // modules


def test_the_example_configs_machine_is_the_estimators_patches_and_factories():
    machine = config_machine(load_config(EXAMPLES / "kernel.toml"))
    job = JobParams.from_json(
        {"qubitParams": {"name": "qubit_gate_ns_e3"}, "qecScheme": {"name": "surface_code"}}
    )
    patch = make_patch(job.scheme, job.qubit, 9)
    assert machine.patch_qubits == patch.physical_qubits == 2 * 9**2
    assert machine.cycle_time_ns == patch.cycle_time
    assert machine.logical_error_rate == patch.logical_error_rate
    factory = estimator_factory("surface_code", "qubit_gate_ns_e3", 9)
    assert factory is not None and factory.output_error_rate <= patch.logical_error_rate
    (module,) = machine.modules
    f = module.factory
    assert f.copies == math.floor(0.25 * 2_000_000 / factory.physical_qubits)
    assert f.duration_cycles == math.ceil(factory.duration / patch.cycle_time)
    assert f.tiles_per_copy == math.ceil(factory.physical_qubits / patch.physical_qubits)
    # a run delivers the estimator's expected states (its last round's units that do not
    # fail), not the number it guarantees with probability 0.99
    assert f.states_per_run == pytest.approx(factory.expected_output_states)
    assert factory.num_output_states == 1 and 1.9 < f.states_per_run < 2.0
    assert f.store == math.ceil(f.copies * f.states_per_run)
    assert module.routing_lanes == module.width == module.routing_segments  # one a bus tile
    assert machine.link.bell_pairs_per_cycle == 0  # one module: no link


def test_the_machine_tables_keys_set_the_floorplan_and_faults_fill_links_and_decoder():
    config = config_from_dict(
        {
            "machine": {
                "physical_qubits": 1_000_000,
                "modules": 2,
                "storage_tiles": 30,
                "epoch_cycles": 7,
                "policy": "backfill",
                "block": "compact",
                "factory": {"copies": 4, "states_per_run": 2, "duration_cycles": 10, "tiles": 50},
                "routing_lanes": 3,
            },
            "faults": {
                "link_latency_ns": 7200.0,
                "link_fidelity": 0.97,
                "decoder_capacity_bits_per_s": 1e9,
            },
        }
    )
    machine = config_machine(config)
    assert (machine.epoch_cycles, machine.policy, machine.block) == (7, "backfill", "compact")
    module = machine.modules[1]
    assert (module.storage_tiles, module.routing_lanes) == (30, 3)
    assert module.factory.rate == pytest.approx(4 * 2 / 10)
    assert machine.link.bell_pairs_per_cycle == pytest.approx(3600 / 7200)
    assert machine.link.latency_cycles == 2 and machine.link.fidelity == 0.97
    assert machine.decoder_bits_per_cycle == pytest.approx(1e9 * 3600e-9)


def test_a_code_without_patches_or_factories_past_a_module_is_a_coded_refusal():
    for table, match in (
        ({"profile": "logical:bacon_shor(d=5)"}, "patches"),
        ({"factory": {"copies": 1000}}, "factory copies"),
    ):
        config = config_from_dict({"machine": {"physical_qubits": 100_000, **table}})
        with pytest.raises(MachineError, match=match) as caught:
            machine_spec(config.machine)
        assert caught.value.code == "QK503"


def test_the_machine_has_one_decoder_the_old_faults_key_a_deprecated_name_of_it():
    from qmk.kernel.config import machine_warnings
    from qmk.kernel.errors import ConfigError

    machine = {"physical_qubits": 200_000}
    old = config_from_dict({"machine": machine, "faults": {"decoder_capacity_bits_per_s": 1e8}})
    (warning,) = machine_warnings(old)
    assert (warning["code"], warning["name"]) == ("QK504", "deprecated-decoder-key")
    assert config_machine(old).decoder_bits_per_cycle == pytest.approx(1e8 * 3600e-9)
    new = config_from_dict({"machine": {**machine, "decoder_bits_per_cycle": 360.0}})
    assert machine_warnings(new) == []
    assert config_machine(new).decoder_bits_per_cycle == 360.0
    with pytest.raises(ConfigError, match=r"give only machine\.decoder_bits_per_cycle") as both:
        config_from_dict(
            {
                "machine": {**machine, "decoder_bits_per_cycle": 360.0},
                "faults": {"decoder_capacity_bits_per_s": 1e8},
            }
        )
    assert both.value.code == "QK101"


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"modules": 3},
        {"storage_tiles": 7},
        {"factory_share": 0.1},
        {"factory_share": 0.6},
        {"factory_share": 0.75},
        {"factory_share": 0.0},
        {"factory": {"copies": 2}},
        {"factory": {"copies": 0}},
    ],
)
def test_the_qubits_a_refusal_names_are_the_least_whose_floorplan_holds_the_job(table):
    # checked against the floorplan itself: the answer holds the tiles (and a factory),
    # one qubit a module fewer does not, nor does a machine of any size below it (every
    # tile's worth a module, past each drop where factory_share adds a copy)
    def machine(qubits: int):
        config = config_from_dict({"machine": {**table, "physical_qubits": qubits}})
        return config_machine(config)

    def holds(qubits: int, tiles: int, factory: bool) -> bool:
        try:
            module = machine(qubits).modules[0]
        except MachineError:  # given copies past the module: no floorplan at all
            return False
        return module.tiles >= tiles and (module.factory.copies > 0 or not factory)

    modules = table.get("modules", 1)
    asked = machine(10**6 * modules)
    for tiles, factory in [(1, False), (59, False), (59, True), (300, True)]:
        least = qubits_to_hold(asked, tiles, factory=factory)
        never = factory and (
            table.get("factory_share") == 0.0 or table.get("factory", {}).get("copies") == 0
        )
        if never:
            assert least is None
            continue
        assert least is not None and least % modules == 0
        assert holds(least, tiles, factory)
        step = modules * asked.patch_qubits
        assert not any(holds(q, tiles, factory) for q in range(least - step, 0, -step))
        assert not holds(least - modules, tiles, factory)
        # and at least a module of a job's patches (admission's count): 30,000 a module
        floored = qubits_to_hold(asked, tiles, factory=factory, module_qubits=30_000)
        start = 30_000 * modules
        assert floored is not None and floored >= start and holds(floored, tiles, factory)
        assert floored == least or least < start
        assert floored == start or not holds(floored - modules, tiles, factory)


@pytest.mark.parametrize("cycles", [0, -5])
def test_a_machine_of_epochs_under_one_cycle_is_bad_machine(cycles: int):
    machine = config_machine(config_from_dict({"machine": {"physical_qubits": 100_000}}))
    with pytest.raises(MachineError) as caught:
        machine.with_(epoch_cycles=cycles)
    assert caught.value.code == "QK503" and f"epoch_cycles is {cycles}" in caught.value.message


@pytest.mark.parametrize(
    ("qubits", "copies"),
    [(10_000, 0), (19_359, 0), (19_360, 1), (38_719, 1), (58_080, 1), (77_440, 2)],
)
def test_a_module_whose_factory_share_rounds_to_no_copy_gets_one_that_takes_half_or_less(
    qubits: int, copies: int
):
    # a copy is 9,680 qubits; factory_share 0.25 gives floor(q / 38,720) copies, none
    # below 38,720, so every T program was refused on a smaller module. A module gets one
    # where it takes at most half the module (its jobs keep as many qubits), from 19,360
    module = config_machine(config_from_dict({"machine": {"physical_qubits": qubits}}))
    assert module.modules[0].factory.copies == copies
    off = config_from_dict({"machine": {"physical_qubits": qubits, "factory_share": 0}})
    assert config_machine(off).modules[0].factory.copies == 0  # switched off: none


@pytest.mark.parametrize(
    ("protocol", "copies", "tiles", "cycles", "states", "error"),
    [
        # the estimator's 2 x 15-to-1 (d=11): 9,680 qubits, 57.2 us = 16 cycles, 1.97
        # states a run on average (the estimator guarantees 1 at 0.99)
        ("estimator", 25, 60, 16, 1.96997864, 2.48e-07),
        # Litinski's 15-to-1: 11 tiles (1,782 qubits at d=9), 11 cycles, 35 p^3, p 1e-3
        ("litinski-15to1", 140, 11, 11, 1.0, 3.5e-08),
        # cultivation at p = 1e-3, the least volume with error <= p_L (3e-7): d1=5,
        # 463 qubits (3 tiles), 16,619 qubit-rounds = 35.9 rounds = 4 cycles of 9 rounds
        ("cultivation", 539, 3, 4, 1.0, 2.979e-07),
    ],
)
def test_each_factory_protocol_gives_its_published_figures_and_rate(
    protocol, copies, tiles, cycles, states, error
):
    table = {"physical_qubits": 1_000_000, "factory": {"protocol": protocol}}
    machine = config_machine(config_from_dict({"machine": table}))
    f = machine.modules[0].factory
    assert (f.protocol, f.copies, f.tiles_per_copy, f.duration_cycles) == (
        protocol,
        copies,
        tiles,
        cycles,
    )
    assert f.states_per_run == pytest.approx(states)
    assert f.output_error_rate == pytest.approx(error, rel=1e-3)
    assert f.output_error_rate <= machine.logical_error_rate
    # copies of a quarter of the module's qubits (physical per copy), at their rate
    assert f.copies == math.floor(0.25 * 1_000_000 / f.physical_qubits)
    assert f.rate == pytest.approx(copies * states / cycles)


def test_a_factorys_given_tiles_count_whether_or_not_its_output_error_is_given():
    # tiles 30 and nothing else: the copy is 30 tiles of 162 qubits (4,860), not the
    # estimator's 9,680 the other keys are read from, so a quarter holds 51 copies
    table = {"physical_qubits": 1_000_000, "factory": {"tiles": 30}}
    f = config_machine(config_from_dict({"machine": table})).modules[0].factory
    assert (f.tiles_per_copy, f.physical_qubits, f.copies) == (30, 4860, 51)


def test_an_unknown_factory_protocol_is_a_config_error_naming_the_choices():
    from qmk.kernel.errors import ConfigError

    table = {"physical_qubits": 1_000_000, "factory": {"protocol": "15-to-1 space efficient"}}
    with pytest.raises(ConfigError) as bad:
        config_from_dict({"machine": table})
    assert bad.value.code == "QK101" and "machine.factory.protocol" in str(bad.value)


def test_cultivation_with_no_state_as_good_as_asked_is_refused_with_a_code():
    from qmk.kernel.machine.factories import figures

    with pytest.raises(MachineError) as bad:
        figures("cultivation", "surface_code", "qubit_gate_ns_e3", 9, target=1e-12)
    assert bad.value.code == "QK503" and "output_error_rate" in bad.value.message


@pytest.mark.parametrize(
    "table",
    [
        {"physical_qubits": 20_696},
        {"physical_qubits": 2_000_000, "modules": 3, "links": {"latency_cycles": 4}},
        {"physical_qubits": 1_000_000, "factory": {"protocol": "litinski-15to1"}},
        {"physical_qubits": 1_000_000, "factory": {"protocol": "cultivation"}},
        {"physical_qubits": 500_000, "storage_tiles": 3, "error_budget": 0.01},
    ],
)
def test_the_machine_a_planner_answers_as_plain_data_reads_back_as_the_machine_made_here(
    table: dict[str, object],
):
    import pickle

    from qmk.kernel.machine.derive import planned_machine
    from qmk.kernel.machine.spec import machine_of

    config = config_from_dict({"machine": table, "faults": {"link_fidelity": 0.97}})
    answer = planned_machine(config.machine, config.faults, 3)
    plain = pickle.loads(pickle.dumps(answer))  # what crosses: dicts, lists and numbers
    here = machine_spec(config.machine, config.faults, preempt_gap=3)
    there = machine_of(plain, config.machine)
    assert there == here and there.to_json() == here.to_json()
    assert there.table is config.machine


def test_a_machine_the_planner_refuses_is_refused_with_its_own_class_and_code():
    from qmk.kernel.machine.derive import planned_machine
    from qmk.kernel.machine.spec import machine_of

    config = config_from_dict(
        {"machine": {"physical_qubits": 100_000, "profile": "logical:bacon_shor(d=5)"}}
    )
    answer = planned_machine(config.machine, config.faults, 1)
    with pytest.raises(MachineError, match="patches") as caught:
        machine_of(answer, config.machine)
    assert caught.value.code == "QK503"


def test_the_larger_distances_a_job_may_be_placed_at_cross_the_planners_wire():
    # the planner answers the machine as JSON: the (distance, p_L) pairs come back as
    # the tuples the scheduler reads, DISTANCE_STEPS (three) steps of two above the
    # profile's distance, each a step's suppression (p = 1e-3 against the surface
    # code's 1e-2: ten times)
    import json

    from qmk.kernel.config import config_from_dict
    from qmk.kernel.machine.derive import planned_machine
    from qmk.kernel.machine.spec import machine_of

    config = config_from_dict({"machine": {"physical_qubits": 20696}})
    planned = planned_machine(config.machine, config.faults, config.preempt_gap)
    answer = json.loads(json.dumps(planned))
    machine = machine_of(answer, config.machine)
    assert machine == config_machine(config)
    (d1, p1), (d2, p2), (d3, p3) = machine.larger_distances
    assert (d1, d2, d3) == (machine.distance + 2, machine.distance + 4, machine.distance + 6)
    assert p1 == pytest.approx(machine.logical_error_rate / 10)
    assert p2 == pytest.approx(machine.logical_error_rate / 100)
    assert p3 == pytest.approx(machine.logical_error_rate / 1000)
