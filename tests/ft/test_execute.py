"""Lattice surgery executed on the engines: with noise off the outcome distribution is the
program's exact one (chi-square against numpy's exact distribution, stated seeds); with
noise on, logical errors arrive per patch and tick at the model's rate."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from qmk.estimate.counts import count_graph
from qmk.execution.executor import run as gate_level_run
from qmk.frontends import read_program
from qmk.ft.errors import FTError
from qmk.ft.execute import run_lattice_surgery
from qmk.ft.model import ft_model
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
    result = run_lattice_surgery(program, model, block=block, shots=shots, seed=SEED, noise=False)
    expected = exact_distribution(graph)
    assert set(result.counts) <= set(expected)
    assert chi2_pvalue(result.counts, expected) > 1e-4, (result.counts, expected)
    tel = result.telemetry()
    expected_t = t_count(graph, model.ts_per_rotation)
    assert tel["magic_states_consumed"] == expected_t
    if model.factory is not None:  # the estimator counts the same magic states
        assert (
            tel["magic_states_consumed"]
            == model.estimate["physicalCounts"]["breakdown"]["numTstates"]
        )
    assert result.magic_states_executed == shots * expected_t
    assert result.ppms_executed == shots * tel["ppm_count"]
    assert result.injected_logical_errors == 0
    assert result.engine == "statevector"


def test_the_exact_distributions_agree_with_the_gate_level_executor():
    # the numpy reference checked against QMK's own gate-level run, on the programs with
    # feed-forward (where the reference branches on mid-circuit outcomes)
    for name in ("controlled_cliffords.qvm.asm", "t_teleport.qvm.asm", "resets.qvm.asm"):
        graph, _, _ = setup(name)
        gates = gate_level_run(graph, shots=3000, seed=SEED, noise=False)
        assert chi2_pvalue(gates.counts, exact_distribution(graph)) > 1e-4


def test_its_keys_are_the_gate_level_runs_keys():
    graph, program, model = setup("toffoli.qasm")
    surgery = run_lattice_surgery(program, model, shots=200, seed=SEED, noise=False)
    gates = gate_level_run(graph, shots=200, seed=SEED, noise=False)
    assert set(surgery.counts) == set(gates.counts) == set(exact_distribution(graph))


def test_the_same_seed_gives_the_same_counts():
    _, program, model = setup("qft2.qasm")
    first = run_lattice_surgery(program, model, shots=100, seed=7, noise=True)
    again = run_lattice_surgery(program, model, shots=100, seed=7, noise=True)
    assert first.counts == again.counts


def test_a_clifford_program_runs_on_the_stabilizer_engine():
    text = (
        ".version 0.2\n.caps CAP_ALLOC\n.vqs a b\n.events m n\n"
        "al: ALLOC_LQ vq:a, vq:b, n=2\nh: APPLY_H vq:a\nc: APPLY_CNOT vq:a, vq:b\n"
        "m1: MEASURE_Z vq:a, out:m\nm2: MEASURE_Z vq:b, out:n\n"
    )
    program = verify(assemble(text))
    model = ft_model(count_graph(program.graph), "qubit_gate_ns_e3")
    result = run_lattice_surgery(program, model, shots=400, seed=SEED, noise=False)
    assert result.engine == "stabilizer"
    assert set(result.counts) == {"00", "11"}
    assert chi2_pvalue(result.counts, {"00": 0.5, "11": 0.5}) > 1e-4


@pytest.mark.parametrize("engine", ["stabilizer", "mps"])
def test_an_engine_that_cannot_run_the_injections_is_refused(engine):
    _, program, model = setup("toffoli.qasm")
    with pytest.raises(FTError) as caught:
        run_lattice_surgery(program, model, shots=1, seed=1, noise=False, engine=engine)
    assert caught.value.code == "QP105"


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
    program = verify(assemble(text))
    base = ft_model(count_graph(program.graph), "qubit_gate_ns_e3")
    assert base.factory is not None
    p = 0.05
    model = dataclasses.replace(
        base,
        logical_error_rate=p,
        factory=dataclasses.replace(
            base.factory, copies=1, duration_cycles=10, states_per_run=1, output_error_rate=0.0
        ),
    )
    shots = 3000
    result = run_lattice_surgery(program, model, shots=shots, seed=SEED, noise=True)
    assert result.schedule.slots[0].start == 10 and result.schedule.slots[1].start == 11
    q1, q2 = 1 - (1 - p) ** 10, p
    f1, f2 = 2 * q1 / 3, 2 * q2 / 3
    flip = f1 * (1 - f2) + f2 * (1 - f1)  # one patch's X-or-Y parity
    expected = 2 * flip * (1 - flip)
    observed = result.counts.get("1", 0) / shots
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / shots)
    mean = 2 * (q1 + q2)
    var = 2 * (q1 * (1 - q1) + q2 * (1 - q2))
    assert abs(result.injected_logical_errors / shots - mean) < 4 * math.sqrt(var / shots)
