"""Physics files: the original design's ``qec_scheme``/``error_budget``/``decoder`` JSON
runs, estimates and refuses what it cannot honour with a code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qmk as qmk_api
from qmk.errors import QMKError
from qmk.estimate import estimate
from qmk.estimate.counts import LogicalCounts
from qmk.execution.plan import build_plan
from qmk.qec import logical_model, qubit_params, scheme_for
from qmk.qec.noise import IdleNoise
from qmk.qec.physics import CYCLE_TOLERANCE, PhysicsConfig, load_physics
from qmk.qvm.graph_file import load as load_graph
from qmk.qvm.verify import verify
from support.cli import qmk
from support.exact import chi2_pvalue
from support.paths import EXAMPLES

#: The implementation plan's own configuration (neuralground/qmk, IMPLEMENTATION_PLAN.md).
PLAN = EXAMPLES / "physics.json"
BELL = EXAMPLES / "bell.qvm.json"


def _plan(**changes: dict[str, Any]) -> dict[str, Any]:
    """The plan's JSON with parts of its sections replaced (a value None drops the key)."""
    data: dict[str, Any] = json.loads(PLAN.read_text(encoding="utf-8"))
    for section, keys in changes.items():
        part = dict(data.get(section) or {})
        for key, value in keys.items():
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
        data[section] = part
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "physics.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def _code(call: Any) -> str:
    with pytest.raises(QMKError) as info:
        call()
    return info.value.code


# ------------------------------------------------------------------ what it resolves to


def test_the_plans_config_is_surface_code_d9_at_the_qre_formulas_logical_rate() -> None:
    resolved = load_physics(PLAN).resolve()
    assert resolved.profile == "logical:surface_code(d=9)"
    model = resolved.model
    # p is QRE's max(Clifford rate, readout rate): the measurement's 1e-2 here
    assert model.physical_error_rate == 1e-2
    scheme = scheme_for("surface_code", qubit_params("qubit_gate_ns_e3"))
    a, threshold = scheme.crossing_prefactor, scheme.error_correction_threshold
    assert model.logical_error_per_cycle == pytest.approx(a * (1e-2 / threshold) ** 5, rel=1e-15)
    assert model.physical_qubits_per_logical == 162 == 2 * 9 * 9
    # the file's 1.0 us is (4 t_2q + 2 t_meas) 9 of whole-ns times: 14 and 28 ns give 1008
    qubit = resolved.qubit
    assert (qubit.two_qubit_gate_time, qubit.one_qubit_measurement_time) == (14, 28)
    assert model.cycle_time_ns == (4 * 14 + 2 * 28) * 9 == 1008
    assert (qubit.t1_ns, qubit.t2_ns) == (100_000, 80_000)
    effective = resolved.effective_qubit
    assert effective.one_qubit_gate_error_rate == effective.two_qubit_gate_error_rate == 1e-3
    assert effective.t_gate_error_rate == 1e-3
    assert effective.one_qubit_measurement_error_rate == 1e-2
    assert effective.idle_error_rate == 1e-4


def test_each_approximation_and_unused_value_is_a_coded_warning_naming_both_values() -> None:
    warnings = load_physics(PLAN).resolve().warnings
    assert [w["code"] for w in warnings] == ["QC132", "QC133", "QC133"]
    cycle, idle, weight = (w["message"] for w in warnings)
    assert "logical_cycle_time_us 1 is realized as 1.008 us" in cycle
    implied = IdleNoise().apply(load_physics(PLAN).resolve().qubit).idle_error_rate
    assert "idle_error_rate 0.0001 is the idle rate" in idle and f"{implied:.3g}" in idle
    assert "max_syndrome_weight 10" in weight


def test_a_cycle_time_the_qubit_can_make_exactly_is_taken_without_a_warning() -> None:
    data = _plan(qec_scheme={"logical_cycle_time_us": 3.6})  # qubit_gate_ns_e3's own
    resolved = PhysicsConfig.from_json(data).resolve()
    assert resolved.model.cycle_time_ns == 3600
    assert resolved.qubit.two_qubit_gate_time == 50
    assert "QC132" not in [w["code"] for w in resolved.warnings]


def test_t1_and_t2_alone_give_the_idle_rate_of_the_pauli_twirl_over_the_idle_step() -> None:
    data = _plan(error_budget={"idle_error_rate": None}, decoder={"max_syndrome_weight": None})
    resolved = PhysicsConfig.from_json(data).resolve()
    step = 28  # the qubit's longest operation: its 28 ns measurement
    damp, dephase = 1 - math.exp(-step / 100_000), 1 - math.exp(-step / 80_000)
    rate = damp / 4 + damp / 4 + (dephase / 2 - damp / 4)
    assert resolved.effective_qubit.idle_error_rate == pytest.approx(rate, rel=1e-12)
    assert [w["code"] for w in resolved.warnings] == ["QC132"]


def test_an_idle_rate_that_t1_and_t2_agree_with_draws_no_warning() -> None:
    implied = IdleNoise().apply(load_physics(PLAN).resolve().qubit).idle_error_rate
    data = _plan(error_budget={"idle_error_rate": implied})
    assert [w["code"] for w in PhysicsConfig.from_json(data).resolve().warnings] == [
        "QC132",
        "QC133",  # max_syndrome_weight's alone
    ]


def test_the_decoders_load_is_the_models_syndrome_bits_and_it_keeps_up() -> None:
    resolved = load_physics(PLAN).resolve()
    load = resolved.decoder
    assert load is not None and load.type == "MWPM"
    assert load.round_time_ns == 1008 / 9 == 112
    assert load.decoder_time_ns == 100
    assert load.bits_per_second == resolved.model.decoder_bits_per_second == 80 * 1e9 / 112
    assert load.capacity_bits_per_second == 80 * 1e9 / 100


# ------------------------------------------------------------------ refusals, each coded


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"decoder": {"type": "UnionFind"}}, "QC112", "QMK models MWPM only"),
        ({"decoder": {"cycle_time_us": 0.2}}, "QC113", "200 ns a syndrome round"),
        ({"qec_scheme": {"physical_qubit_count": 160}}, "QC103", "is 160, but surface_code"),
        ({"qec_scheme": {"logical_cycle_time_us": 0.01}}, "QC103", "nearest cycle"),
        ({"qec_scheme": {"code_family": "toric"}}, "QC102", "toric"),
        ({"qec_scheme": {"code_family": "floquet_code"}}, "QC105", "floquet_code"),
        ({"qec_scheme": {"code_distance": 999}}, "QC102", "999"),
        ({"error_budget": {"physical_gate_error_rate": 0.02}}, "QC106", "threshold"),
        ({"error_budget": {"t2_us": 300}}, "QC103", "T2"),
        ({"error_budget": {"measurement_error_rate": 1.5}}, "QC103", "measurement_error_rate"),
        ({"decoder": {"max_syndrome_weight": -1}}, "QC103", "max_syndrome_weight"),
        ({"decoder": {"latency_us": 1}}, "QC103", "physics.decoder.latency_us: unknown key"),
    ],
)
def test_what_the_physics_cannot_honour_is_refused_with_a_code(
    changes: dict[str, Any], code: str, words: str
) -> None:
    with pytest.raises(QMKError) as info:
        PhysicsConfig.from_json(_plan(**changes)).resolve()
    assert info.value.code == code
    assert words in str(info.value)


def test_a_slow_decoder_is_told_with_both_times() -> None:
    with pytest.raises(QMKError) as info:
        PhysicsConfig.from_json(_plan(decoder={"cycle_time_us": 0.2})).resolve()
    assert "200 ns a syndrome round" in str(info.value) and "every 112 ns" in str(info.value)


def test_a_qubit_count_mismatch_names_both_counts() -> None:
    with pytest.raises(QMKError) as info:
        PhysicsConfig.from_json(_plan(qec_scheme={"physical_qubit_count": 160})).resolve()
    assert "is 160" in str(info.value) and "takes 162" in str(info.value)


def test_gate_rates_on_a_majorana_base_qubit_are_refused() -> None:
    data = _plan(qec_scheme={"logical_cycle_time_us": None}, decoder={"cycle_time_us": None})
    config = PhysicsConfig.from_json(data)
    assert _code(lambda: config.resolve("qubit_maj_ns_e4")) == "QC103"


def test_a_cycle_time_whole_ns_times_miss_by_more_than_the_tolerance_is_refused() -> None:
    # 0.1 us at d=9: whole-ns times in e3's 1:2 proportions give (4 * 1 + 2 * 2) 9 = 72 ns
    # or (4 * 2 + 2 * 3) 9 = 126 ns, both over 1% away
    with pytest.raises(QMKError) as info:
        PhysicsConfig.from_json(_plan(qec_scheme={"logical_cycle_time_us": 0.1})).resolve()
    assert info.value.code == "QC103"
    assert "logical_cycle_time_us is 0.1, but the nearest cycle" in str(info.value)
    assert "is 0.126 us" in str(info.value)
    assert abs(126 - 100) > CYCLE_TOLERANCE * 100


# ------------------------------------------------------------------ runs


def _exact_bell(resolved: Any) -> dict[str, float]:
    """The Bell program's outcome distribution under the plan's logical noise, exactly:
    a density matrix carried through each node with the plan's Pauli channels before and
    after it (the logical model's rates, placed by the executor's own plan)."""
    verified = verify(load_graph(BELL))
    plan = build_plan(
        verified,
        noise=True,
        qubit=resolved.qubit,
        default_profile=resolved.profile,
        noise_model=resolved.noise,
    )
    pauli = {
        "x": np.array([[0, 1], [1, 0]], dtype=complex),
        "y": np.array([[0, -1j], [1j, 0]]),
        "z": np.diag([1, -1]).astype(complex),
    }
    h = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
    cnot = np.eye(4, dtype=complex)[[0, 1, 3, 2]]
    index = {"q0": 0, "q1": 1}

    def on(matrix: np.ndarray, qubit: int) -> np.ndarray:
        return np.kron(matrix, np.eye(2)) if qubit == 0 else np.kron(np.eye(2), matrix)

    def channel(rho: np.ndarray, loc: Any) -> np.ndarray:
        q = index[loc.qubit]
        out = (1 - loc.total) * rho
        for name, p in (("x", loc.px), ("y", loc.py), ("z", loc.pz)):
            m = on(pauli[name], q)
            out = out + p * m @ rho @ m.conj().T
        return out

    rho = np.zeros((4, 4), dtype=complex)
    rho[0, 0] = 1
    at: dict[int, list[Any]] = {}
    for loc in plan.noise:
        at.setdefault(loc.step, []).append(loc)
    for i, node in enumerate(verified.graph.nodes):
        here = at.get(i, [])
        for loc in (loc for loc in here if loc.before):
            rho = channel(rho, loc)
        gate = {"APPLY_H": on(h, 0), "APPLY_CNOT": cnot}.get(node.op)
        if gate is not None:
            rho = gate @ rho @ gate.conj().T
        for loc in (loc for loc in here if not loc.before):
            rho = channel(rho, loc)
    assert plan.noise
    return {f"{k >> 1}{k & 1}": float(rho[k, k].real) for k in range(4)}


def test_the_plans_json_runs_bell_with_the_models_logical_error_rates(tmp_path: Path) -> None:
    status, out, err = qmk(
        "run", str(BELL), "--physics", str(PLAN), "--shots", "40000", "--seed", "5", "--json"
    )
    assert status == 0, err
    result = json.loads(out)
    telemetry = result["telemetry"]
    assert telemetry["noise_model"] == load_physics(PLAN).resolve().noise_model
    assert telemetry["logical_time_ns"] == telemetry["logical_cycles"] * 1008
    assert result["physics"]["logical_error_per_cycle"] == 0.03
    assert [w["code"] for w in result["warnings"]] == ["QC132", "QC133", "QC133"]
    expected = _exact_bell(load_physics(PLAN).resolve())
    assert expected["01"] > 0.02  # the plan's p sits at the threshold: errors are visible
    assert chi2_pvalue(result["counts"], expected) > 1e-4


def test_qmk_run_takes_the_physics_as_data_text_or_file_alike() -> None:
    data = json.loads(PLAN.read_text(encoding="utf-8"))
    runs = [
        qmk_api.run(str(BELL), shots=500, seed=9, physics=source)
        for source in (data, PLAN, json.dumps(data), PhysicsConfig.from_json(data))
    ]
    assert all(run.counts == runs[0].counts for run in runs)
    assert runs[0].telemetry.qubit_params == "physics(qubit_gate_ns_e3)"
    assert runs[0].telemetry.profiles == ("logical:surface_code(d=9)",)


def test_the_cli_prints_the_warnings_and_what_the_physics_made() -> None:
    status, out, err = qmk("run", str(BELL), "--physics", str(PLAN), "--shots", "10", "--seed", "1")
    assert status == 0
    assert "warning: QC132 physics-approximated" in err
    assert "physics: logical:surface_code(d=9), 162 physical qubits per logical" in out
    assert "decoder MWPM, 100 ns a round, rounds every 112 ns" in out


@pytest.mark.parametrize(
    "option",
    [
        ("--noise-model", "depolarizing(p=1e-3)"),
        ("--no-noise",),
        ("--profile", "logical:surface_code(d=5)"),
    ],
)
def test_an_option_that_sets_what_the_physics_sets_is_refused(option: tuple[str, ...]) -> None:
    status, _, err = qmk("run", str(BELL), "--physics", str(PLAN), "--shots", "10", *option)
    assert status == 2
    assert err.startswith("QC103 bad-parameter") and "contradicts" in err


def test_a_physics_file_that_does_not_read_is_one_coded_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    for path in (str(bad), str(tmp_path / "missing.json")):
        status, out, err = qmk("run", str(BELL), "--physics", path, "--shots", "10")
        assert (status, out) == (2, "")
        assert err.startswith("QC103 bad-parameter: physics") and err.count("\n") == 1


def test_a_target_that_cannot_take_the_physics_refuses_it() -> None:
    status, _, err = qmk(
        "run", str(BELL), "--physics", str(PLAN), "--shots", "10", "--lattice-surgery"
    )
    assert status != 0 and "QM102" in err


# ------------------------------------------------------------------ estimates


def test_the_plans_json_estimates_and_is_refused_at_its_threshold_not_for_its_keys() -> None:
    # before: QC103 "unknown field 'decoder'"; the plan's p = p* gives P_L = a at every d
    status, _, err = qmk("estimate", str(BELL), "--params", str(PLAN))
    assert status == 2
    assert (
        err.startswith("QC107 distance-too-large") and "maximum allowed code distance is 9" in err
    )


def test_an_estimate_of_a_physics_file_is_the_estimate_of_its_qre_parameters() -> None:
    data = _plan(error_budget={"measurement_error_rate": 1e-3})
    counts = LogicalCounts(num_qubits=4, t_count=100, measurement_count=10)
    ours = estimate(counts, data)
    resolved = PhysicsConfig.from_json(data).resolve()
    q = resolved.effective_qubit
    qre = {
        "qubitParams": {
            "name": q.name,
            "instructionSet": "GateBased",
            "oneQubitMeasurementTime": "28 ns",
            "oneQubitGateTime": "14 ns",
            "twoQubitGateTime": "14 ns",
            "tGateTime": "14 ns",
            "oneQubitMeasurementErrorRate": 1e-3,
            "oneQubitGateErrorRate": 1e-3,
            "twoQubitGateErrorRate": 1e-3,
            "tGateErrorRate": 1e-3,
            "idleErrorRate": 1e-4,
        },
        "qecScheme": {"name": "surface_code", "maxCodeDistance": 9},
    }
    theirs = estimate(counts, qre)
    assert ours["warnings"][: len(resolved.warnings)] == [
        f"{w['code']} {w['name']}: {w['message']}" for w in resolved.warnings
    ]
    del ours["warnings"]
    assert ours == theirs
    assert ours["logicalQubit"]["codeDistance"] <= 9
    assert ours["logicalQubit"]["logicalCycleTime"] == 112 * ours["logicalQubit"]["codeDistance"]


def test_an_estimate_takes_the_physics_or_the_qre_machine_not_both() -> None:
    data = {**_plan(), "qubitParams": {"name": "qubit_gate_ns_e4"}}
    assert _code(lambda: estimate(LogicalCounts(num_qubits=1, t_count=1), data)) == "QC103"


# ------------------------------------------------------------------ the schema


def test_the_plans_json_meets_the_shipped_schema_and_a_typo_does_not() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    status, out, _ = qmk("schema", "--kind", "physics")
    assert status == 0
    schema = json.loads(out)
    jsonschema.validate(json.loads(PLAN.read_text(encoding="utf-8")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_plan(decoder={"typ": "MWPM"}), schema)


def test_the_model_of_a_physics_file_is_the_logical_model_of_its_parts() -> None:
    resolved = load_physics(PLAN).resolve()
    again = logical_model(resolved.profile, resolved.qubit, noise=resolved.noise)
    assert again == resolved.model
    assert qubit_params("qubit_gate_ns_e3").two_qubit_gate_time == 50  # the base, untouched


# ------------------------------------------------------------------ memory experiments


def test_a_memory_experiment_of_the_physics_is_its_code_rates_and_capped_decoder() -> None:
    from qmk.experiments.circuits import CircuitNoise
    from qmk.experiments.memory import run_memory

    data = _plan(error_budget={"measurement_error_rate": 2e-3}, qec_scheme={"code_distance": 5})
    data["qec_scheme"]["physical_qubit_count"] = 50
    data["qec_scheme"]["logical_cycle_time_us"] = 0.56  # (4 * 14 + 2 * 28) * 5 ns
    data["decoder"]["max_syndrome_weight"] = 8
    status, out, err = qmk(
        "qec", "threshold", "--physics", json.dumps(data), "--shots", "800", "--seed", "3",
        "--json",
    )  # fmt: skip
    assert status == 0, err
    payload = json.loads(out)
    [point] = payload["results"]
    assert (point["distance"], point["rounds"], point["max_syndrome_weight"]) == (5, 5, 8)
    # the limit is used here: no QC133 about it (the one left is T1/T2's), none about
    # the cycle (exact here)
    [note] = payload["warnings"]
    assert note["code"] == "QC133" and note["message"].startswith("error_budget.idle_error_rate")
    resolved = PhysicsConfig.from_json(data).resolve(decodes=True)
    again = run_memory(
        "surface_code",
        distance=5,
        p=resolved.model.physical_error_rate,
        noise=CircuitNoise.from_qubit(resolved.qubit, noise=resolved.noise),
        shots=800,
        seed=3,
        max_syndrome_weight=8,
    )
    assert (point["errors"], point["gave_up"]) == (again.errors, again.gave_up)
    assert 0 < again.gave_up < 800
    assert point["noise"]["measure_flip"] == 2e-3 and point["noise"]["after_2q"] == 1e-3
    assert point["noise"]["idle"] == 1e-4


def test_the_plans_memory_experiment_runs_and_its_decoder_gives_up_at_threshold() -> None:
    status, out, err = qmk(
        "qec", "threshold", "--physics", str(PLAN), "--shots", "200", "--seed", "1"
    )
    assert status == 0, err
    assert "QC132" in err and "max_syndrome_weight" not in err
    assert "the decoder gave up on 200 of 200 shots (over 10 detection events)" in out


@pytest.mark.parametrize("option", [("--p", "0.001"), ("--d", "3"), ("--code", "bacon_shor")])
def test_a_memory_experiment_option_the_physics_sets_is_refused(option: tuple[str, ...]) -> None:
    status, _, err = qmk("qec", "threshold", "--physics", str(PLAN), "--shots", "10", *option)
    assert status == 2 and err.startswith("QC103") and option[0] in err
