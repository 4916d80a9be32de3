"""Stacked trajectories (:mod:`qmk.execution.stacked`): a noisy program's shot groups run
as the rows of one stack of states, chunk by chunk.

Checked against the exact density matrix of the plan's channels
(:func:`support.exact.noisy_distribution`), for rows that depend neither on the chunks
nor on the parts a run is cut into, and for a run stopped between two chunks that
resumes bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from qmk.engines import EngineError
from qmk.execution import runs
from qmk.execution.parts import merge
from qmk.execution.stacked import StackedRunner, compile_ops
from qmk.execution.trajectories import YIELD_NOW, Suspended, observed
from qmk.qec.noise import Depolarizing
from qmk.qvm.asm import assemble
from support import workloads
from support.exact import assert_distribution, chi2_pvalue, noisy_distribution
from support.resume import StopAt
from support.workloads import graph_of, random_gates

SEED = 20261128
PROFILE = "logical:surface_code(d=3)"
#: A physical rate at which d=3 logical errors strike most shots (random-8 depth 20:
#: 1.77 errors a shot).
NOISE = Depolarizing(p=3e-3)


def _run(graph, shots: int, seed: int, noise=NOISE, max_bytes: int = 0, **options):
    """A run on the statevector whose state allowance (``max_bytes``; by default half
    what the program's density matrix and its copy take: 1 MiB at 8 qubits) holds the
    program's state and a stack of its rows, not its density matrix: the router takes
    the trajectories."""
    max_bytes = max_bytes or 2 ** (2 * len(graph.resources.vqs) + 4)
    return runs.run(
        graph,
        shots=shots,
        seed=seed,
        noise=noise,
        profile=PROFILE,
        engine="statevector",
        engine_options={"max_bytes": max_bytes},
        **options,
    )


def _stacked(graph) -> bool:
    """Whether the plan of ``graph`` runs on the stack (gates, then measurements)."""
    plan = workloads.noisy_plan(graph, PROFILE, NOISE)
    return compile_ops(observed(plan).ops) is not None


def test_stacked_trajectories_draw_the_exact_distribution_of_a_noisy_program():
    graph = graph_of(5, random_gates(5, 15, seed=1))
    plan = workloads.noisy_plan(graph, PROFILE, NOISE)
    assert sum(loc.total for loc in plan.noise) > 0.5  # most shots a group of their own
    assert _stacked(graph)
    shots = 20_000
    result = _run(graph, shots, SEED)
    assert (result.telemetry.mode, result.telemetry.noise_sampling) == (
        "trajectories",
        "per-pattern",
    )
    assert result.telemetry.simulations > shots // 10  # a row for each group
    assert_distribution(result.counts, noisy_distribution(plan), shots)


def test_measurements_in_x_and_y_draw_the_exact_distribution_on_the_stack():
    # their basis changes run on the stack after the gates; an error before one goes
    # before its basis change
    rng = np.random.default_rng(6)
    lines = [".caps CAP_ALLOC", "a: ALLOC_LQ vq:q0, vq:q1, vq:q2"]
    for k in range(30):
        q = k % 3
        lines += [
            f"r{k}: APPLY_RY vq:q{q}, theta={rng.uniform(0, 3):.4f}",
            f"z{k}: APPLY_RZ vq:q{q}, theta={rng.uniform(0, 3):.4f}",
            f"c{k}: APPLY_CNOT vq:q{q}, vq:q{(q + 1) % 3}",
        ]
    lines += [f"m{q}: MEASURE_{b} vq:q{q}, out:m{q}" for q, b in enumerate("XYZ")]
    graph = assemble("\n".join(lines) + "\n")
    plan = workloads.noisy_plan(graph, PROFILE, NOISE)
    assert _stacked(graph)
    shots = 20_000
    result = _run(graph, shots, SEED)
    assert result.telemetry.mode == "trajectories"
    assert_distribution(result.counts, noisy_distribution(plan), shots)


def test_a_state_saved_inside_a_group_is_refused_by_a_stacked_run():
    graph = graph_of(4, random_gates(4, 2, seed=5))
    plan = workloads.noisy_plan(graph, PROFILE, NOISE)
    ops = compile_ops(observed(plan).ops)
    assert ops is not None
    runner = StackedRunner(
        plan, ops, [([], np.arange(2))], [0], 2, np.random.SeedSequence(1), max_bytes=2**20
    )
    runner.stack = [object()]  # a waiting branch, as a group-by-group runner saves one
    with pytest.raises(EngineError) as refused:
        runner.run()
    assert refused.value.code == "QE106"


def test_random_8_at_1_77_errors_a_shot_passes_chi_square_at_100k_shots_on_trajectories():
    # the check (78): random-8 depth 20 on d=3 surface code qubits at p = 3e-3,
    # forced onto the trajectories by the state allowance, against the exact density
    # matrix of the plan's channels at alpha 1e-3; the same counts against the model at
    # p = 2e-3 (1.18 errors a shot) are rejected
    graph = graph_of(8, random_gates(8, 20, seed=0))
    plan = workloads.noisy_plan(graph, PROFILE, NOISE)
    assert abs(sum(loc.total for loc in plan.noise) - 1.77) < 0.01
    shots = 100_000
    result = _run(graph, shots, SEED)
    assert result.telemetry.mode == "trajectories"
    assert _stacked(graph)
    exact = noisy_distribution(plan)
    assert chi2_pvalue(result.counts, exact) > 1e-3
    other = noisy_distribution(workloads.noisy_plan(graph, PROFILE, Depolarizing(p=2e-3)))
    assert chi2_pvalue(result.counts, other) < 1e-3


def test_the_rows_depend_neither_on_the_chunks_nor_on_the_parts_of_a_run():
    graph = graph_of(6, random_gates(6, 6, seed=2))
    assert _stacked(graph)
    whole = _run(graph, 3000, SEED)
    # chunks of 31 groups (2**16 bytes), and of 15 (2**15 bytes)
    small = _run(graph, 3000, SEED, max_bytes=2**15)
    assert np.array_equal(small.bits, whole.bits)
    parts = [_run(graph, 3000, SEED, part=(k, 3)) for k in range(3)]
    assert np.array_equal(merge(parts).bits, whole.bits)
    assert _run(graph, 3000, SEED + 1).counts != whole.counts


@pytest.mark.parametrize("stop_at", [1, 3])
def test_a_run_stopped_between_chunks_resumes_bit_for_bit(stop_at: int) -> None:
    graph = graph_of(6, random_gates(6, 6, seed=3))
    options = {"max_bytes": 2**15}  # chunks of 15 groups
    whole = _run(graph, 2000, SEED, **options)
    control = StopAt(YIELD_NOW, op=stop_at)  # asked once between two chunks
    with pytest.raises(Suspended):
        _run(graph, 2000, SEED, control=control, **options)
    (state,) = control.saved
    assert state.group == 15 * stop_at and not state.leaves and not state.branches
    resumed = _run(graph, 2000, SEED, resume=state, **options)
    assert np.array_equal(resumed.bits, whole.bits)
    assert resumed.telemetry.preempted_at_epochs == (0,)
    assert resumed.telemetry.simulations == whole.telemetry.simulations


def test_a_program_with_a_fence_before_its_measurements_runs_group_by_group():
    # every fence is a pause point inside each group: such a program is not stacked
    graph = graph_of(4, random_gates(4, 3, seed=4), fence_after=5)
    assert not _stacked(graph)
    result = _run(graph, 200, SEED)
    assert result.telemetry.mode == "trajectories"
