"""The executor's contract: engine choice, batching modes, determinism, results and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import qmk
from qmk.engines import EngineError
from qmk.execution.executor import load_program
from qmk.execution.runs import run
from qmk.qvm.asm import assemble
from qmk.qvm.graph import from_json
from support.paths import EXAMPLES

BELL = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
c: APPLY_CNOT vq:q0, vq:q1
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""

T_PROGRAM = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q
h: APPLY_H vq:q
t: APPLY_T vq:q
h2: APPLY_H vq:q
m: MEASURE_Z vq:q, out:m
f: FREE_LQ vq:q
"""

MID_CIRCUIT = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
h: APPLY_H vq:q0
m0: MEASURE_Z vq:q0, out:m0
t: APPLY_T vq:q1
x: APPLY_H vq:q1 when ev:m0 == 1
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""


def test_clifford_programs_run_on_stim_in_one_batch() -> None:
    result = run(assemble(BELL), shots=5000, seed=1)
    assert result.engine == "stabilizer"
    assert result.telemetry.mode == "stim-batch"
    assert result.telemetry.simulations == 1
    assert set(result.counts) == {"00", "11"}


def test_non_clifford_programs_run_on_the_statevector_simulated_once() -> None:
    result = run(assemble(T_PROGRAM), shots=5000, seed=1, noise=False)
    assert result.engine == "statevector"
    assert result.telemetry.mode == "trajectories"
    assert result.telemetry.simulations == 1  # terminal measurement: simulate once, sample


def test_mid_circuit_outcomes_branch_instead_of_one_simulation_per_shot() -> None:
    result = run(assemble(MID_CIRCUIT), shots=5000, seed=1, noise=False)
    assert result.telemetry.simulations == 2
    assert set(result.counts) <= {"00", "01", "10", "11"}


def test_same_seed_gives_the_same_counts_and_memory() -> None:
    for text in (BELL, T_PROGRAM, MID_CIRCUIT):
        first = run(assemble(text), shots=500, seed=42)
        second = run(assemble(text), shots=500, seed=42)
        assert first.counts == second.counts
        assert first.memory == second.memory


def test_different_seeds_give_different_memory() -> None:
    assert (
        run(assemble(BELL), shots=200, seed=1).memory
        != run(assemble(BELL), shots=200, seed=2).memory
    )


def test_memory_agrees_with_counts_and_lists_events_first_leftmost() -> None:
    text = """
.caps CAP_ALLOC
a: ALLOC_LQ vq:q0, vq:q1
x: APPLY_X vq:q1
m0: MEASURE_Z vq:q0, out:m0
m1: MEASURE_Z vq:q1, out:m1
f: FREE_LQ vq:q0, vq:q1
"""
    result = run(assemble(text), shots=10, seed=0)
    assert result.counts == {"01": 10}
    assert result.memory == ["01"] * 10
    assert result.bits.shape == (10, 2)


def test_forcing_the_stabilizer_engine_on_a_t_gate_fails_before_any_work() -> None:
    with pytest.raises(EngineError) as info:
        run(assemble(T_PROGRAM), shots=10, seed=0, engine="stabilizer")
    assert info.value.code == "QE103"
    assert "'t'" in str(info.value) and "APPLY_T" in str(info.value)


def test_an_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(EngineError) as info:
        run(assemble(BELL), shots=10, seed=0, engine="tensor")
    assert info.value.code == "QE101"


def test_too_many_qubits_for_the_statevector_is_refused_before_any_work() -> None:
    names = " ".join(f"vq:q{i}," for i in range(30)).rstrip(",")
    text = f".caps CAP_ALLOC\na: ALLOC_LQ {names}\nt: APPLY_T vq:q0\nf: FREE_LQ {names}\n"
    with pytest.raises(EngineError) as info:
        run(assemble(text), shots=1, seed=0, engine_options={"max_bytes": 2**20})
    assert info.value.code == "QE102"
    assert "30 qubits" in str(info.value)


def test_bad_shot_counts_are_refused() -> None:
    for shots in (0, -1, 1.5, True):
        with pytest.raises(EngineError):
            run(assemble(BELL), shots=shots, seed=0)  # type: ignore[arg-type]


def test_unknown_qubit_parameters_are_a_clear_error() -> None:
    with pytest.raises(qmk.QMKError) as info:
        run(assemble(BELL), shots=1, seed=0, qubit="qubit_quantum_dot")
    assert "qubit_quantum_dot" in str(info.value)


def test_the_python_api_takes_paths_json_and_graphs() -> None:
    bell_json, bell_asm = str(EXAMPLES / "bell.qvm.json"), str(EXAMPLES / "bell.qvm.asm")
    by_path = qmk.run(bell_json, shots=100, seed=5)
    by_asm = qmk.run(bell_asm, shots=100, seed=5)
    with open(bell_json, encoding="utf-8") as handle:
        by_json = qmk.run(json.load(handle), shots=100, seed=5)
    assert by_path.counts == by_asm.counts == by_json.counts
    assert load_program(bell_json).graph.resources.events == by_path.events


def test_telemetry_counts_epochs_magic_states_regions_and_channel_uses() -> None:
    text = """
.caps CAP_ALLOC CAP_MAGIC CAP_LINK
a: ALLOC_LQ vq:q0, vq:q1, vq:q2
p: SET_POLICY priority=3
r: BAR_REGION vq:q0, tag="prep"
i: INJECT_T_STATE vq:q0
fence: FENCE_EPOCH
o: OPEN_CHAN vq:q1, vq:q2, ch:c
u: USE_CHAN ch:c, semantic="teleport"
cl: CLOSE_CHAN ch:c
m: MEASURE_X vq:q0, out:m
f: FREE_LQ vq:q0, vq:q1, vq:q2
"""
    t = run(assemble(text), shots=100, seed=1).telemetry
    assert t.epochs == 2
    assert t.magic_states == 1
    assert t.regions == ("prep",)
    assert t.channel_uses == {"teleport": 1}
    assert t.policies[0]["priority"] == 3
    assert t.peak_logical_qubits == 3
    assert t.peak_physical_qubits == 3 * 2 * 9**2  # surface code d=9: 2 d^2 per logical qubit
    assert t.logical_cycles > 0 and t.decoder_rounds >= t.logical_cycles
    assert t.wall_time_s > 0


def test_teleport_cnot_costs_ancillas_and_cycles_over_a_plain_cnot() -> None:
    def program(op: str, caps: str) -> str:
        return f"""
.caps CAP_ALLOC {caps}
a: ALLOC_LQ vq:c, vq:t
x: APPLY_X vq:c
g: {op} vq:c, vq:t
m0: MEASURE_Z vq:c, out:m0
m1: MEASURE_Z vq:t, out:m1
f: FREE_LQ vq:c, vq:t
"""

    plain = run(assemble(program("APPLY_CNOT", "")), shots=50, seed=1)
    tele = run(assemble(program("TELEPORT_CNOT", "CAP_TELEPORT")), shots=50, seed=1)
    assert plain.counts == tele.counts == {"11": 50}
    assert tele.telemetry.teleports == 1
    assert tele.telemetry.peak_logical_qubits == plain.telemetry.peak_logical_qubits + 2
    assert tele.telemetry.logical_cycles > plain.telemetry.logical_cycles


def test_result_json_has_the_documented_keys() -> None:
    data = run(assemble(BELL), shots=10, seed=3).to_json(memory=True)
    assert {"counts", "shots", "seed", "engine", "events", "telemetry", "memory"} <= set(data)
    assert sum(data["counts"].values()) == 10
    json.dumps(data)


def test_complex64_statevector_gives_the_same_distribution() -> None:
    double = run(assemble(T_PROGRAM), shots=4000, seed=9, noise=False)
    single = run(
        assemble(T_PROGRAM), shots=4000, seed=9, noise=False, engine_options={"dtype": "complex64"}
    )
    p_double = double.counts.get("1", 0) / 4000
    p_single = single.counts.get("1", 0) / 4000
    assert abs(p_double - p_single) < 0.05
    assert np.isclose(p_double, np.sin(np.pi / 8) ** 2, atol=0.03)


def _two_qubit_program(profile: str) -> dict:
    return {
        "version": "0.2",
        "program": {
            "nodes": [
                {
                    "id": "a",
                    "op": "ALLOC_LQ",
                    "args": {"n": 2, "profile": profile},
                    "vqs": ["p", "q"],
                },
                {"id": "h", "op": "APPLY_H", "vqs": ["p"]},
                {"id": "c", "op": "APPLY_CNOT", "vqs": ["p", "q"]},
                {"id": "mp", "op": "MEASURE_Z", "vqs": ["p"], "produces": ["e0"]},
                {"id": "mq", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e1"]},
                {"id": "f", "op": "FREE_LQ", "vqs": ["p", "q"]},
            ]
        },
        "resources": {"vqs": ["p", "q"], "events": ["e0", "e1"]},
        "caps": ["CAP_ALLOC"],
    }


def test_the_default_profile_does_not_leak_into_a_program_that_names_its_own():
    from qmk.qec import logical_model

    profile = "logical:bacon_shor(d=3)"
    result = run(from_json(_two_qubit_program(profile)), shots=50, seed=3)
    telemetry = result.telemetry
    model = logical_model(profile, "qubit_gate_ns_e3")
    assert list(telemetry.profiles) == [profile]
    assert telemetry.decoder_rounds == telemetry.logical_cycles * model.decoder_rounds_per_cycle
    assert telemetry.logical_time_ns == telemetry.logical_cycles * model.cycle_time_ns


def test_an_all_floquet_program_runs_on_majorana_qubits_whatever_the_default_profile():
    graph = from_json(_two_qubit_program("logical:floquet_code(d=5)"))
    result = run(graph, shots=200, seed=4, qubit="qubit_maj_ns_e4")
    assert sum(result.counts.values()) == 200
    assert result.counts.get("00", 0) + result.counts.get("11", 0) >= 195  # a Bell pair
    assert list(result.telemetry.profiles) == ["logical:floquet_code(d=5)"]


def test_a_noise_model_sets_the_logical_error_rates_of_a_run():
    from qmk.execution.plan import build_plan
    from qmk.qec import logical_model
    from qmk.qec.noise import Depolarizing

    model = Depolarizing(p=0.006)
    program = load_program(EXAMPLES / "bell.qvm.json")
    plan = build_plan(
        program,
        noise=True,
        qubit="qubit_gate_ns_e3",
        default_profile=qmk.defaults.PROFILE,
        noise_model=model,
    )
    noisy = logical_model(qmk.defaults.PROFILE, "qubit_gate_ns_e3", noise=model)
    clean = logical_model(qmk.defaults.PROFILE, "qubit_gate_ns_e3")
    assert noisy.logical_error_per_cycle > 100 * clean.logical_error_per_cycle
    for loc in plan.noise:
        assert loc.total > 0
    expected = sum(loc.total for loc in plan.noise)  # errors per shot, to first order
    shots = 20_000
    result = run(program, shots=shots, seed=8, noise=model)
    assert result.telemetry.noise_model == "depolarizing(p=0.006)"
    # each location fires independently: the total is a sum of binomials (5 sigma)
    variance = sum(shots * loc.total * (1 - loc.total) for loc in plan.noise)
    assert abs(result.telemetry.injected_logical_errors - shots * expected) < 5 * variance**0.5
    quiet = run(program, shots=shots, seed=8)
    assert quiet.telemetry.noise_model is None
    assert quiet.telemetry.injected_logical_errors < result.telemetry.injected_logical_errors


def test_noise_that_is_neither_a_flag_nor_a_model_is_refused_not_ignored():
    from qmk.qec.errors import QECError

    with pytest.raises(QECError) as err:
        run(EXAMPLES / "bell.qvm.json", shots=10, seed=1, noise="depolarizing")  # type: ignore[arg-type]
    assert err.value.code == "QC103"


def test_a_calibration_applies_to_its_family_and_is_refused_where_it_fits_no_qubit():
    from qmk.qec import logical_model
    from qmk.qec.errors import QECError
    from qmk.qec.logical import Calibration

    calibration = Calibration(
        family="surface_code",
        crossing_prefactor=0.08,
        error_correction_threshold=0.009,
        source="test",
    )
    result = run(EXAMPLES / "bell.qvm.json", shots=100, seed=2, calibration=calibration)
    applied = result.telemetry.calibration
    assert applied is not None and applied["profiles"] == [qmk.defaults.PROFILE]
    model = logical_model(qmk.defaults.PROFILE, qmk.defaults.QUBIT, calibration=calibration)
    assert model.scheme.crossing_prefactor == 0.08
    floquet = Calibration(
        family="floquet_code",
        instruction_set="majorana",
        crossing_prefactor=0.07,
        error_correction_threshold=0.01,
    )
    with pytest.raises(QECError) as err:
        run(EXAMPLES / "bell.qvm.json", shots=10, seed=1, calibration=floquet)
    assert "no qubit of this program is" in err.value.message
