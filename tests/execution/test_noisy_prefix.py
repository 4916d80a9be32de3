"""Noisy trajectories that start from the error-free state at their first error.

The shots that share a logical-error pattern form one group; a group's micro-ops up to
its first error are those of the error-free run, so it starts from a snapshot of that
run there (:class:`qmk.execution.trajectories.Runner` with ``base``). Checked against
exact theory (a density matrix with every noise location's Pauli channel), against the
same groups run from |0...0> where each group's outcome is deterministic, and across a
stop and resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qmk.engines.statevector import StatevectorEngine
from qmk.execution import executor
from qmk.execution.plan import Plan, build_plan
from qmk.execution.runs import run
from qmk.execution.trajectories import YIELD_NOW, Observed, Runner
from qmk.qec.noise import Depolarizing
from qmk.qvm.graph import Graph
from support import workloads
from support.exact import assert_distribution, noisy_distribution
from support.resume import StopAt, stopped_then_resumed
from support.workloads import Gate, graph_of, random_gates

PROFILE = "logical:surface_code(d=3)"
#: Physical error rate that makes d=3 logical errors frequent: many groups, most with one
#: or two errors at scattered places (about 0.4 errors per shot below).
NOISE = Depolarizing(p=5e-3)


def noisy_plan(graph: Graph) -> Plan:
    return workloads.noisy_plan(graph, PROFILE, NOISE)


def runner(plan: Plan, shots: int, seed: int, *, share: bool) -> Runner:
    """The trajectory runner ``qmk.run`` builds for ``plan`` (with prefix reuse or not)."""
    streams = np.random.SeedSequence(seed).spawn(3)
    groups, _ = executor.sample_error_patterns(plan, shots, np.random.default_rng(streams[1]))
    observed = Observed(plan)
    work = [(observed.with_errors(executor._pattern_errors(plan, p)), m) for p, m in groups.items()]
    return Runner(
        plan,
        lambda: StatevectorEngine(seed=0),
        work,
        shots,
        streams[2],
        base=observed.ops if share else None,
    )


# -- tests --------------------------------------------------------------------------


@pytest.mark.parametrize("paused", [True, False], ids=["trajectories", "density-matrix"])
def test_a_noisy_random_circuit_follows_the_exact_noisy_distribution(paused: bool) -> None:
    # a fence before the measurements (a pause point) keeps the run on trajectories;
    # without it the statevector samples the circuit's density matrix
    n, shots = 5, 20_000
    gates = random_gates(n, 4, seed=11)
    graph = graph_of(n, gates, fence_after=len(gates) - 1 if paused else -1)
    plan = noisy_plan(graph)
    rates = sum(loc.total for loc in plan.noise)
    assert 0.2 < rates < 1.0  # many error patterns: the prefix reuse is exercised
    result = run(graph, shots=shots, seed=17, engine="statevector", noise=NOISE, profile=PROFILE)
    if paused:
        assert result.telemetry.mode == "trajectories"
        assert result.telemetry.simulations > 100
    else:
        assert result.telemetry.mode == "density-matrix"
        assert result.telemetry.simulations == 1
    assert_distribution(result.counts, noisy_distribution(plan), shots)


def test_the_exact_theory_of_this_file_sees_the_noise() -> None:
    # the check above could not fail if the channels changed nothing at these rates
    n = 5
    plan = noisy_plan(graph_of(n, random_gates(n, 4, seed=11)))
    noisy = noisy_distribution(plan)
    clean = noisy_distribution(
        build_plan(
            executor.load_program(graph_of(n, random_gates(n, 4, seed=11))),
            noise=False,
            qubit=executor.DEFAULT_QUBIT,
            default_profile=PROFILE,
        )
    )
    tvd = 0.5 * sum(abs(noisy[k] - clean[k]) for k in noisy)
    assert tvd > 0.03


def test_each_group_starts_from_the_error_free_state_at_its_first_error() -> None:
    # X and CNOT on basis states: every group's outcome is fixed by its error pattern,
    # so the rows from shared prefixes must equal those of groups run from |0...0>
    n = 6
    gates: list[Gate] = [("x", (0,), ()), ("x", (3,), ())]
    for layer in range(6):
        gates += [("cx", (i, i + 1), ()) for i in range(layer % 2, n - 1, 2)]
        gates += [("x", (layer % n,), ())]
    plan = noisy_plan(graph_of(n, gates))
    shared = runner(plan, 3000, 5, share=True)
    alone = runner(plan, 3000, 5, share=False)
    assert len(shared.groups) > 50
    assert sum(cut > 0 for cut in shared.cuts) > len(shared.groups) // 2
    assert shared.order != list(range(len(shared.groups)))  # run by cut, not by index
    assert np.array_equal(shared.run(), alone.run())


@pytest.mark.parametrize("op", [5, 60, 400])
def test_a_noisy_run_stopped_inside_a_group_resumes_to_the_same_rows(op: int) -> None:
    # the fence keeps the first half of the gates out of the sampled tail: the control
    # is asked before each of them (inside a group's segment, rolled back), and the
    # groups with a later first error start from the error-free state
    n = 4
    gates = random_gates(n, 3, seed=2)
    graph = graph_of(n, gates, fence_after=len(gates) // 2)
    options: dict[str, Any] = {
        "shots": 2000,
        "seed": 9,
        "engine": "statevector",
        "noise": NOISE,
        "profile": PROFILE,
    }
    whole = run(graph, **options)
    control = StopAt(YIELD_NOW, op=op)
    resumed = stopped_then_resumed(graph, control, **options)
    assert control.saved  # it did stop
    assert np.array_equal(resumed.bits, whole.bits)


class _Counted(StatevectorEngine):
    """A statevector engine that counts the copies of state a run makes."""

    calls: dict[str, int]

    def snapshot(self) -> Any:
        self.calls["snapshot"] += 1
        return super().snapshot()

    def restore(self, snapshot: Any) -> None:
        self.calls["restore"] += 1
        super().restore(snapshot)


def test_a_group_runs_on_the_prefixs_engine_and_only_the_prefix_resumes_from_a_copy() -> None:
    # the error-free group and one with an X in the middle: the error group runs on the
    # prefix's own engine (one snapshot kept for the prefix), the prefix resumes in the
    # engine that group leaves (one restore), and the last group takes it as it is
    n = 5
    graph = graph_of(n, random_gates(n, 4, seed=3))
    plan = noisy_plan(graph)
    observed = Observed(plan)
    middle = len(plan.steps) // 2
    qubit = next(op.qubits[0] for op in observed.ops if op.kind == "gate")
    groups = [
        (observed.with_errors({}), np.arange(0, 600)),
        (observed.with_errors({middle: [(False, qubit, "X")]}), np.arange(600, 1000)),
    ]
    calls = {"engine": 0, "snapshot": 0, "restore": 0}

    def engine() -> StatevectorEngine:
        calls["engine"] += 1
        made = _Counted(seed=0)
        made.calls = calls
        return made

    def rows(factory: Any, base: Any) -> np.ndarray:
        seed = np.random.SeedSequence(4)
        return Runner(plan, factory, groups, 1000, seed, base=base).run()

    shared = rows(engine, observed.ops)
    assert calls == {"engine": 1, "snapshot": 1, "restore": 1}
    assert np.array_equal(shared, rows(lambda: StatevectorEngine(seed=0), None))
