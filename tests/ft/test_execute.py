"""Lattice surgery executed on the engines, its shots batched (the lattice-surgery target):
with noise off the outcome distribution is the program's exact one (chi-square against
numpy's exact distribution, stated seeds), on the stabilizer's batch sampler and on
grouped, split branches alike; with noise on, logical errors arrive per patch and tick at
the model's rate and a factory's Z error costs the rotation its sign."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import msgspec
import pytest

from qmk.engines import EngineError
from qmk.estimate.counts import count_graph
from qmk.execution.runs import build_request
from qmk.execution.runs import run as gate_level_run
from qmk.execution.surgery import SurgeryTarget
from qmk.frontends import read_program
from qmk.ft.model import ft_model
from qmk.ft.schedule import schedule
from qmk.qvm.asm import assemble
from qmk.qvm.verify import verify
from support.exact import chi2_pvalue, exact_distribution

PROGRAMS = Path(__file__).parent / "programs"
SEED = 20261123


def t_count(graph, per_rotation: int | None) -> int:
    """The program's T count in Clifford+T: T and T^dag, four per Toffoli or CCZ (the AND
    construction), one per odd multiple of pi/4 in a rotation, ``per_rotation`` for any
    other angle (counted here from the graph, not by the lowering)."""
    count = 0
    for node in graph.nodes:
        if node.op in ("APPLY_T", "APPLY_TDG", "INJECT_T_STATE"):
            count += 1
        elif node.op in ("APPLY_CCX", "APPLY_CCZ"):
            count += 4
        elif node.op in ("APPLY_RX", "APPLY_RY", "APPLY_RZ"):
            eighths = float(node.args["theta"]) / (math.pi / 4)
            if abs(eighths - round(eighths)) > 1e-9:
                assert per_rotation is not None
                count += per_rotation
            else:
                count += round(eighths) % 2
    return count


def compiled(program, *, block="fast", noise=False, engine=None, shots=1, profile="auto"):
    """The lattice-surgery executable of ``program`` (qubits qubit_gate_ns_e3, the
    estimator's distance unless ``profile`` names one)."""
    request = build_request(
        program, shots=shots, seed=1, noise=noise, engine=engine, qubit="qubit_gate_ns_e3"
    )
    request = msgspec.structs.replace(
        request, target="lattice-surgery", target_options={"block": block}, profile=profile
    )
    return SurgeryTarget().compile(program, request)


def setup(name: str):
    path = PROGRAMS / name if "/" not in name else Path(__file__).parents[2] / name
    graph = read_program(str(path))
    return graph, verify(graph), ft_model(count_graph(graph), "qubit_gate_ns_e3")


@pytest.mark.parametrize(
    ("name", "block", "shots"),
    [
        ("toffoli.qasm", "fast", 800),
        ("qft2.qasm", "compact", 800),
        ("qft3_approx.qasm", "intermediate", 500),
        ("qft3.qasm", "fast", 400),
        ("random_ct4.qasm", "fast", 300),
        ("adder2.qasm", "fast", 80),
        ("controlled_cliffords.qvm.asm", "fast", 500),
        ("t_teleport.qvm.asm", "compact", 400),
        ("resets.qvm.asm", "intermediate", 500),
        ("examples/t_gate_injection.qvm.json", "intermediate", 600),
    ],
)
def test_noiseless_lattice_surgery_gives_the_exact_distribution(name, block, shots):
    graph, program, model = setup(name)
    executable = compiled(program, block=block)
    result = executable.run(shots, SEED)
    expected = exact_distribution(graph)
    assert set(result.counts) <= set(expected)
    assert chi2_pvalue(result.counts, expected) > 1e-4, (result.counts, expected)
    tel = result.telemetry.to_json()
    expected_t = t_count(graph, model.ts_per_rotation)
    assert tel["magic_states_consumed"] == tel["magic_states"] == expected_t
    assert executable.footprint.t_states == expected_t
    if model.factory is not None:  # the estimator counts the same magic states
        assert (
            tel["magic_states_consumed"]
            == model.estimate["physicalCounts"]["breakdown"]["numTstates"]
        )
    assert result.telemetry.injected_logical_errors == 0
    assert result.engine == "statevector" and result.telemetry.mode == "branches"
    # batched: each op simulated once per branch of the events, never once per shot
    assert result.telemetry.simulations <= min(shots, 2 ** len(graph.resources.events) * 4)


def test_the_exact_distributions_agree_with_the_gate_level_executor():
    # the numpy reference checked against QMK's own gate-level run, on the programs with
    # feed-forward (where the reference branches on mid-circuit outcomes)
    for name in ("controlled_cliffords.qvm.asm", "t_teleport.qvm.asm", "resets.qvm.asm"):
        graph, _, _ = setup(name)
        gates = gate_level_run(graph, shots=3000, seed=SEED, noise=False)
        assert chi2_pvalue(gates.counts, exact_distribution(graph)) > 1e-4


def test_its_keys_are_the_gate_level_runs_keys():
    graph, program, _ = setup("toffoli.qasm")
    surgery = compiled(program).run(200, SEED)
    gates = gate_level_run(graph, shots=200, seed=SEED, noise=False)
    assert set(surgery.counts) == set(gates.counts) == set(exact_distribution(graph))


def test_the_same_seed_gives_the_same_counts_and_another_seed_others():
    _, program, _ = setup("qft2.qasm")
    executable = compiled(program, noise=True)
    first, again = executable.run(300, 7), executable.run(300, 7)
    assert first.counts == again.counts
    assert first.memory == again.memory
    assert executable.run(300, 8).memory != first.memory


CLIFFORD = (
    ".version 0.2\n.caps CAP_ALLOC\n.vqs a b\n.events m n\n"
    "al: ALLOC_LQ vq:a, vq:b, n=2\nh: APPLY_H vq:a\nc: APPLY_CNOT vq:a, vq:b\n"
    "m1: MEASURE_Z vq:a, out:m\nm2: MEASURE_Z vq:b, out:n\n"
)


def test_a_clifford_program_is_one_batch_circuit_on_the_stabilizer_engine():
    program = verify(assemble(CLIFFORD))
    result = compiled(program).run(4000, SEED)
    assert result.engine == "stabilizer" and result.telemetry.mode == "stim-batch"
    assert result.telemetry.simulations == 1
    assert set(result.counts) == {"00", "11"}
    assert chi2_pvalue(result.counts, {"00": 0.5, "11": 0.5}) > 1e-4


def test_a_clifford_program_with_feed_forward_batches_to_the_exact_distribution():
    # a Clifford program whose feed-forward is Paulis controlled by events batches (the
    # corpus' t_teleport has T gates; controlled_cliffords' frames are beyond a batch)
    text = (
        ".version 0.2\n.caps CAP_ALLOC\n.vqs a b\n.events m n\n"
        "al: ALLOC_LQ vq:a, vq:b, n=2\nh: APPLY_H vq:a\nm1: MEASURE_Z vq:a, out:m\n"
        "x: APPLY_X vq:b when ev:m == 1\ns: APPLY_H vq:a\nm2: MEASURE_Z vq:b, out:n\n"
    )
    clifford = verify(assemble(text))
    result = compiled(clifford).run(3000, SEED)
    assert result.telemetry.mode == "stim-batch"
    assert set(result.counts) == {"00", "11"}
    assert chi2_pvalue(result.counts, exact_distribution(clifford.graph)) > 1e-4


def test_batching_is_faster_than_a_shot_by_shot_loop_would_be():
    # 2,000 shots of a Toffoli: the branches simulate each op a handful of times, where
    # a loop over shots simulated it 2,000 times (0.4 s a thousand shots, the old runner)
    _, program, _ = setup("toffoli.qasm")
    executable = compiled(program)
    began = time.perf_counter()
    result = executable.run(2000, SEED)
    assert result.telemetry.simulations <= 2**3
    assert time.perf_counter() - began < 5.0  # generous: a loaded machine


def test_an_engine_that_cannot_run_the_injections_is_refused_by_the_router():
    _, program, _ = setup("toffoli.qasm")
    with pytest.raises(EngineError) as caught:
        compiled(program, engine="stabilizer").run(1, 1)
    assert caught.value.code == "QE103"


def noisy_executable(p: float, text: str):
    program = verify(assemble(text))
    executable = compiled(program, noise=True, profile="logical:surface_code(d=9)")
    base = executable.model
    factory = base.factory
    if factory is not None:  # one copy, one state every 10 ticks, no error of its own
        factory = dataclasses.replace(
            factory, copies=1, duration_cycles=10, states_per_run=1, output_error_rate=0.0
        )
    model = dataclasses.replace(base, logical_error_rate=p, factory=factory)
    return dataclasses.replace(
        executable, model=model, schedule=schedule(executable.lowered, executable.layout, model)
    )


def test_logical_errors_arrive_per_patch_and_tick_at_the_models_rate():
    # |00>, a T on b (its state ready at tick 10), then Z_a Z_b measured at tick 11. Each
    # patch idles 10 ticks before the rotation and 1 before the measurement; in a window
    # of t ticks it gets X, Y or Z with q = 1 - (1 - p)^t. The parity flips when the two
    # patches' X-or-Y counts differ in parity.
    text = (
        ".version 0.2\n.caps CAP_ALLOC\n.vqs a b\n.events m\n"
        "al: ALLOC_LQ vq:a, vq:b, n=2\nt: APPLY_T vq:b\nc: APPLY_CNOT vq:a, vq:b\n"
        "m: MEASURE_Z vq:b, out:m\n"
    )
    p = 0.05
    executable = noisy_executable(p, text)
    shots = 3000
    result = executable.run(shots, SEED)
    assert executable.schedule.slots[0].start == 10 and executable.schedule.slots[1].start == 11
    q1, q2 = 1 - (1 - p) ** 10, p
    f1, f2 = 2 * q1 / 3, 2 * q2 / 3
    flip = f1 * (1 - f2) + f2 * (1 - f1)  # one patch's X-or-Y parity
    expected = 2 * flip * (1 - flip)
    observed = result.counts.get("1", 0) / shots
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / shots)
    mean = 2 * (q1 + q2)
    var = 2 * (q1 * (1 - q1) + q2 * (1 - q2))
    errors = result.telemetry.injected_logical_errors
    assert abs(errors / shots - mean) < 4 * math.sqrt(var / shots)
    assert result.telemetry.noise_sampling == "per-pattern"


@pytest.mark.parametrize(
    ("engine", "mode", "sampling"),
    [("statevector", "branches", "per-pattern"), (None, "stim-batch", "flip-masks")],
)
def test_a_noisy_clifford_schedule_batched_or_branched_follows_the_idle_errors(
    engine, mode, sampling
):
    # Z_a Z_b of |00> measured three times in a row (one tick each on the bus): the first
    # reads 0; before each later one every patch idled one tick and took X, Y or Z with
    # probability p, so each later read flips its predecessor with r = 2f(1 - f), f =
    # 2p/3 (one patch's X-or-Y). (m2, m3) = (b1, b1 ^ b2), b1, b2 ~ Bernoulli(r).
    text = (
        ".version 0.2\n.caps CAP_ALLOC\n.vqs a b\n.events m1 m2 m3\n"
        "al: ALLOC_LQ vq:a, vq:b, n=2\nc: APPLY_CNOT vq:a, vq:b\n"
        "x1: MEASURE_Z vq:b, out:m1\nx2: MEASURE_Z vq:b, out:m2\nx3: MEASURE_Z vq:b, out:m3\n"
    )
    p = 0.15
    executable = noisy_executable(p, text)
    if engine is not None:
        request = msgspec.structs.replace(executable.request, engine=engine)
        executable = dataclasses.replace(executable, request=request)
    assert [executable.schedule.slots[i].start for i in executable.schedule.order] == [0, 1, 2]
    shots = 6000
    result = executable.run(shots, SEED)
    assert (result.telemetry.mode, result.telemetry.noise_sampling) == (mode, sampling)
    f = 2 * p / 3
    r = 2 * f * (1 - f)
    expected = {"000": (1 - r) ** 2, "001": (1 - r) * r, "011": r * (1 - r), "010": r * r}
    assert set(result.counts) <= set(expected)
    assert chi2_pvalue(result.counts, expected) > 1e-4, result.counts
    errors = result.telemetry.injected_logical_errors  # four windows of one tick
    assert abs(errors / shots - 4 * p) < 4 * math.sqrt(4 * p * (1 - p) / shots)


def test_a_factory_error_on_the_magic_state_is_a_pauli_on_the_data():
    # H, T, H on one patch, measured: P(1) = sin^2(pi/8). A Z error on the magic state
    # applies Z after the rotation (the wrong correction), which H turns into an X: the
    # outcome flips, P(1) = cos^2(pi/8) in the shots it strikes.
    text = (
        ".version 0.2\n.caps CAP_ALLOC\n.vqs a\n.events m\n"
        "al: ALLOC_LQ vq:a, n=1\nh: APPLY_H vq:a\nt: APPLY_T vq:a\nh2: APPLY_H vq:a\n"
        "m: MEASURE_Z vq:a, out:m\n"
    )
    executable = noisy_executable(0.0, text)
    eps = 0.3
    model = dataclasses.replace(
        executable.model,
        factory=dataclasses.replace(executable.model.factory, output_error_rate=eps),
    )
    executable = dataclasses.replace(executable, model=model)
    shots = 4000
    result = executable.run(shots, SEED)
    low = math.sin(math.pi / 8) ** 2
    expected = (1 - eps) * low + eps * (1 - low)
    observed = result.counts.get("1", 0) / shots
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / shots)
    assert abs(result.telemetry.injected_logical_errors / shots - eps) < 4 * math.sqrt(
        eps * (1 - eps) / shots
    )
